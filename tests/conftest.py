"""Shared fixtures: a headless runtime in a temp folder, and stand-ins for ComfyUI's modules."""

from __future__ import annotations

import os
import sys
import tempfile
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

# The native kernels (vid4d.py.native) are built into a cache of this run, not the user's ~/.cache.
os.environ.setdefault("VID4D_CACHE_DIR", tempfile.mkdtemp(prefix="vid4d-test-native-"))


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


def _tiny_model_modules():
    """``tests/tiny_*.py``: each builds one learned model kind at toy size in its official file layout."""
    import importlib

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return [importlib.import_module(p.stem) for p in sorted(Path(here).glob("tiny_*.py"))]


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory):
    """A models root (``<root>/<kind>/...``, ``<root>/checkpoints/...``) filled by every ``tests/tiny_*.py``
    module's ``build(root)`` with tiny random-weight models saved in the layouts users download."""
    root = tmp_path_factory.mktemp("models")
    for module in _tiny_model_modules():
        module.build(root)
    return root


@pytest.fixture
def tiny_models(tiny_models_root, monkeypatch):
    """``VID4D_MODELS_DIR`` pointing at the tiny models; the model cache is cleared around the test."""
    from vid4d.models import loading

    monkeypatch.setenv("VID4D_MODELS_DIR", str(tiny_models_root))
    loading.clear_cache()
    yield tiny_models_root
    loading.clear_cache()


def tiny_workflow_overrides() -> dict:
    """Per node type widget overrides that shrink example workflows to test size (``WORKFLOW_OVERRIDES`` of
    each ``tests/tiny_*.py`` module)."""
    merged: dict = {}
    for module in _tiny_model_modules():
        for node, values in getattr(module, "WORKFLOW_OVERRIDES", {}).items():
            merged.setdefault(node, {}).update(values)
    return merged


@pytest.fixture(scope="module")
def one_torch_thread():
    """Many small tensor ops (the point regulariser) run several times faster on one thread on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def texture(height: int, width: int, a: float = 0.31, b: float = 0.23) -> torch.Tensor:
    """``[H, W, 3]`` a smooth colour texture (sines of frequencies ``a`` across, ``b`` down) that optical flow can follow:
    the material of the synthetic clips that stand in for a user's own footage."""
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    return torch.stack([0.5 + 0.3 * torch.sin(a * x) * torch.cos(b * y), 0.5 + 0.3 * torch.sin(0.6 * a * x + 1.7 * b * y), 0.5 + 0.25 * torch.cos(0.9 * b * y - 0.4 * a * x)], -1)
