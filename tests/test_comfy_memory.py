"""Large networks under ComfyUI's model management when ComfyUI is present (CogVideoX transformer, T5, VAEs, the SVD
UNet), Vid4D's own placement headless.

Two checks: with the ``fake_comfy`` stand-ins (CI) the calls are recorded; with ComfyUI's *real*
``comfy.model_management`` / ``comfy.model_patcher`` from the harness checkout (skipped when it is absent) the
networks appear in ComfyUI's loaded-model list after a run, "free memory" (``unload_all_models``) detaches them, and
the output equals the headless run's.
"""

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

import vid4d
from vid4d.models.placement import LocalPlacement
from vid4d.nodes import runtime
from vid4d.nodes.depth import Vid4DDepthModelLoader, VideoDepth
from vid4d.nodes.gsdit import GSDiTSampler, Vid4DGSDiTModelLoader

SAMPLER = dict(prompt="a cat", negative_prompt="", mode="training_free", strength=0.8, steps=2, guidance=2.0, seed=0, scheduler="ddim", cameras=1, feather=1.0, resize_to_input=False)
HARNESS_COMFY = Path(os.environ.get("COMFY_HARNESS_COMFYUI", Path.home() / ".cache" / "comfy-harness" / "comfyui"))
HARNESS_PYTHON = Path(os.environ.get("COMFY_HARNESS_VENV", Path.home() / ".cache" / "comfy-harness" / "venv")) / "bin" / "python"


@pytest.fixture
def comfy_mm(fake_comfy, monkeypatch):
    """fake_comfy plus comfy.model_patcher.ModelPatcher and the model-management calls Vid4D makes, recorded."""
    calls = fake_comfy.calls
    calls.update(load_models_gpu=[], free_memory=[])
    mm = fake_comfy.mm

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device

    def load_models_gpu(models, memory_required=0, force_full_load=False, **_):
        calls["load_models_gpu"].append((sorted(type(m.model.held).__name__ for m in models), memory_required, force_full_load))
        for m in models:
            m.model.to(m.load_device)

    mm.load_models_gpu = load_models_gpu
    mm.free_memory = lambda memory_required, device, keep_loaded=(): calls["free_memory"].append((memory_required, str(device)))
    mp = types.ModuleType("comfy.model_patcher")
    mp.ModelPatcher = ModelPatcher
    monkeypatch.setitem(sys.modules, "comfy.model_patcher", mp)
    return fake_comfy


def _clip():
    frames = torch.rand(9, 32, 48, 3, generator=torch.Generator().manual_seed(0))
    holes = torch.zeros(9, 32, 48)
    holes[:, :, 32:] = 1
    return frames, holes


def test_headless_keeps_vid4ds_own_placement(tiny_models):
    pipe = Vid4DGSDiTModelLoader().load("CogVideoX-2b", "(model folder)", "fp32", "model", True)["result"][0]
    assert type(pipe.placement) is LocalPlacement and pipe.placement.offload


def test_gsdit_and_chronodepth_load_through_comfy_model_management(tiny_models, comfy_mm):
    calls = comfy_mm.calls
    pipe = Vid4DGSDiTModelLoader().load("CogVideoX-2b", "(model folder)", "fp32", "model", True)["result"][0]
    assert isinstance(pipe.placement, runtime.ComfyPlacement) and "ComfyUI's model management" in pipe.describe()
    frames, holes = _clip()
    GSDiTSampler().generate(pipe, images=frames, holes=holes, **SAMPLER)
    used = {tuple(names): (memory, full) for names, memory, full in calls["load_models_gpu"]}
    assert {("AutoencoderKLCogVideoX",), ("T5EncoderModel",), ("CogVideoXTransformer3DModel",)} <= set(used), used
    memory, full = used[("CogVideoXTransformer3DModel",)]
    assert memory > 0 and full  # room for the activations; a full load (these are not ComfyUI's own layers)
    # one ModelPatcher per network, reused on every use (ComfyUI keeps weak references: the placement holds them)
    assert len(pipe.placement._patchers) == 3
    depth = Vid4DDepthModelLoader().load("ChronoDepth-v1", "svd_xt.safetensors", "fp32", True)["result"][0]
    VideoDepth().estimate(depth, torch.rand(4, 64, 64, 3), steps=1, window=4, stride=2, mode="context", max_res=64, seed=0, colormap="grey", decode_chunk=4)
    assert (["AutoencoderKLTemporalDecoder", "UNetSpatioTemporalConditionModel"], True) in [(n, f) for n, _, f in calls["load_models_gpu"]]


def test_room_is_asked_for_before_a_gpu_computation(comfy_mm):
    placement = runtime.ComfyPlacement(torch.device("cuda"))
    placement.make_room(3 * 2**30)
    runtime.ComfyPlacement(torch.device("cpu")).make_room(2**30)  # nothing to free on the CPU
    assert comfy_mm.calls["free_memory"] == [(3 * 2**30, "cuda")]


REAL_COMFY = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, os.environ["COMFY_DIR"])
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # the harness machine has no GPU
    import comfy.model_management as mm
    import comfy.model_patcher  # what the server has imported before custom nodes load
    sys.path.insert(0, os.environ["PKG_DIR"])
    import torch
    from vid4d.nodes import runtime
    from vid4d.nodes.gsdit import GSDiTSampler, Vid4DGSDiTModelLoader
    from vid4d.nodes.depth import Vid4DDepthModelLoader, VideoDepth
    args = json.loads(os.environ["SAMPLER"])
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(9, 32, 48, 3, generator=g); holes = torch.zeros(9, 32, 48); holes[:, :, 32:] = 1
    pipe = Vid4DGSDiTModelLoader().load("CogVideoX-2b", "(model folder)", "fp32", "model", True)["result"][0]
    assert isinstance(pipe.placement, runtime.ComfyPlacement), pipe.placement
    video = GSDiTSampler().generate(pipe, images=frames, holes=holes, **args)["result"][0]
    depth = Vid4DDepthModelLoader().load("ChronoDepth-v1", "svd_xt.safetensors", "fp32", True)["result"][0]
    VideoDepth().estimate(depth, torch.rand(4, 64, 64, 3), steps=1, window=4, stride=2, mode="context", max_res=64, seed=0, colormap="grey", decode_chunk=4)
    loaded = sorted(type(p.model.held).__name__ for p in mm.loaded_models())
    mm.unload_all_models()  # what ComfyUI's "free memory" / unload_models does
    after = sorted(type(p.model.held).__name__ for p in mm.loaded_models())
    torch.save(video, os.environ["OUT"])
    print(json.dumps({"loaded": loaded, "after_free": after}))
    """
)


@pytest.mark.skipif(not (HARNESS_COMFY / "comfy" / "model_management.py").is_file() or not HARNESS_PYTHON.is_file(), reason="no ComfyUI harness checkout (~/.cache/comfy-harness)")
def test_real_comfy_model_management_sees_and_frees_vid4ds_models(tiny_models, tmp_path, capsys):
    import json

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "vid4d").symlink_to(Path(vid4d.__file__).resolve().parent)
    env = {**os.environ, "COMFY_DIR": str(HARNESS_COMFY), "PKG_DIR": str(pkg), "VID4D_MODELS_DIR": str(tiny_models), "SAMPLER": json.dumps(SAMPLER), "OUT": str(tmp_path / "video.pt")}
    run = subprocess.run([str(HARNESS_PYTHON), "-c", REAL_COMFY], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"AutoencoderKLCogVideoX", "T5EncoderModel", "CogVideoXTransformer3DModel", "UNetSpatioTemporalConditionModel", "AutoencoderKLTemporalDecoder"} <= set(report["loaded"]), report
    assert report["after_free"] == [], report
    # the same video as the headless placement
    pipe = Vid4DGSDiTModelLoader().load("CogVideoX-2b", "(model folder)", "fp32", "model", True)["result"][0]
    frames, holes = _clip()
    headless = GSDiTSampler().generate(pipe, images=frames, holes=holes, **SAMPLER)["result"][0]
    diff = float((torch.load(tmp_path / "video.pt") - headless).abs().max())
    with capsys.disabled():
        print(f"\n  real comfy.model_management: loaded {report['loaded']}, after unload_all_models {report['after_free']}; max abs diff vs headless {diff:.3g}")
    assert diff == 0.0
