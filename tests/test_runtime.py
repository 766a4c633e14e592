"""The runtime layer: device, progress + cancel, memory, folders — with and without ComfyUI."""

import os

import pytest
import torch

from vid4d.models import loading
from vid4d.nodes import runtime
from vid4d.nodes.common import output_path


def test_headless_device_and_progress_printer():
    assert runtime.get_device().type in ("cpu", "cuda")
    seen = []
    runtime.configure_headless(progress_printer=lambda label, done, total: seen.append((label, done, total)))
    try:
        p = runtime.Progress(3, "work")
        for _ in range(4):
            p.update()
    finally:
        runtime.configure_headless()
    assert seen == [("work", 1, 3), ("work", 2, 3), ("work", 3, 3), ("work", 3, 3)]


def test_headless_interrupt_stops_the_next_progress_update():
    p = runtime.Progress(10)
    runtime.request_interrupt()
    with pytest.raises(runtime.Interrupted):
        p.update()
    p.update()  # the request is consumed once


def test_env_device_override(monkeypatch):
    monkeypatch.setenv("VID4D_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")


def test_with_comfyui_progress_bar_device_and_cancel(fake_comfy):
    assert runtime.comfy_present()
    p = runtime.Progress(4, "x")
    p.update(2)
    assert fake_comfy.calls["progress"][-1] == (2, 4)
    fake_comfy.mm.interrupted = True
    with pytest.raises(fake_comfy.mm.InterruptProcessingException):
        p.update()
    assert fake_comfy.calls["interrupt_checks"] >= 3
    runtime.free_memory()
    assert fake_comfy.calls["soft_empty_cache"] == 1


def test_with_comfyui_folders_come_from_folder_paths(fake_comfy, tmp_path):
    assert runtime.input_directory() == tmp_path / "comfy_input"
    assert runtime.output_directory() == tmp_path / "comfy_output"
    runtime.register_model_folders()
    assert runtime.model_dirs("depth") == [tmp_path / "models" / "vid4d" / "depth"]
    weights = tmp_path / "models" / "vid4d" / "tracking"
    weights.mkdir(parents=True)
    (weights / "a.safetensors").write_bytes(b"x")
    (weights / "notes.txt").write_text("x")
    assert runtime.list_models("tracking") == ["a.safetensors"]
    assert runtime.resolve_model("tracking", "a.safetensors") == weights / "a.safetensors"


def test_resolve_input_file_forms(headless):
    f = headless / "input" / "clip.mp4"
    f.write_bytes(b"")
    assert runtime.resolve_input_file("clip.mp4") == f
    assert runtime.resolve_input_file("clip.mp4 [input]") == f
    assert runtime.resolve_input_file(str(f)) == f
    with pytest.raises(ValueError, match="no input file"):
        runtime.resolve_input_file("  ")


def test_output_path_counts_up_and_refuses_escapes(headless):
    p1, sub, name = output_path("vid4d/demo", "mp4")
    assert sub == "vid4d" and name == "demo_00001.mp4" and p1.parent == headless / "output" / "vid4d"
    p1.write_bytes(b"x")
    p2, _, _ = output_path("vid4d/demo", "mp4")
    assert p2.name == "demo_00002.mp4"
    for bad in ("../evil", "/abs/path", "a/../../b", "bad|name"):
        with pytest.raises(ValueError, match="filename_prefix"):
            output_path(bad, "mp4")


def test_free_memory_clears_weight_cache():
    loading.cached(("k",), lambda: 1)
    runtime.free_memory()
    calls = []
    loading.cached(("k",), lambda: calls.append(1) or 2)
    assert calls == [1]
