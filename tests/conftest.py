"""Shared fixtures: a headless runtime in a temp folder, and stand-ins for ComfyUI's modules."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def headless(tmp_path):
    """Input/output folders under tmp_path for nodes that read or write files."""
    from vid4d.nodes import runtime

    (tmp_path / "input").mkdir()
    (tmp_path / "output").mkdir()
    runtime.configure_headless(input_dir=tmp_path / "input", output_dir=tmp_path / "output")
    yield tmp_path
    runtime.configure_headless()


@pytest.fixture
def fake_comfy(tmp_path, monkeypatch):
    """Minimal `comfy.model_management`, `comfy.utils` and `folder_paths` in sys.modules, recording calls."""
    calls = {"progress": [], "interrupt_checks": 0, "soft_empty_cache": 0}
    mm = types.ModuleType("comfy.model_management")
    mm.interrupted = False

    class InterruptProcessingException(Exception):
        pass

    def throw():
        calls["interrupt_checks"] += 1
        if mm.interrupted:
            raise InterruptProcessingException()

    mm.InterruptProcessingException = InterruptProcessingException
    mm.throw_exception_if_processing_interrupted = throw
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.soft_empty_cache = lambda *a, **k: calls.__setitem__("soft_empty_cache", calls["soft_empty_cache"] + 1)

    utils = types.ModuleType("comfy.utils")

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            calls["progress"].append((value, total))

        def update(self, n):
            calls["progress"].append(("+", n))

    utils.ProgressBar = ProgressBar
    comfy = types.ModuleType("comfy")
    comfy.model_management, comfy.utils = mm, utils

    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path / "models")
    fp.folder_names_and_paths = {}

    def add_model_folder_path(name, path, is_default=False):
        paths, exts = fp.folder_names_and_paths.setdefault(name, ([], set()))
        if path not in paths:
            paths.insert(0, path) if is_default else paths.append(path)

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: fp.folder_names_and_paths[name][0][:]
    fp.get_input_directory = lambda: str(tmp_path / "comfy_input")
    fp.get_output_directory = lambda: str(tmp_path / "comfy_output")
    fp.get_temp_directory = lambda: str(tmp_path / "comfy_temp")
    for name, module in {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils, "folder_paths": fp}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(mm=mm, utils=utils, folder_paths=fp, calls=calls)
