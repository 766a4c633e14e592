"""Vid4DGSDiTModelLoader + GSDiTSampler nodes on the tiny CogVideoX models."""

import pytest
import torch

from vid4d.nodes import runtime
from vid4d.nodes.gsdit import SAME_FOLDER, GSDiTSampler, Vid4DGSDiTModelLoader

ARGS = dict(prompt="a scene", negative_prompt="blurry", mode="training_free", strength=1.0, steps=2, guidance=2.0, seed=3, scheduler="ddim", cameras=1, feather=1.0, resize_to_input=False)


def _load(name="CogVideoX-2b", components=SAME_FOLDER):
    return Vid4DGSDiTModelLoader().load(name, components, "fp32", "none", True)["result"][0]


def test_loader_lists_and_loads(tiny_models):
    choices = Vid4DGSDiTModelLoader.INPUT_TYPES()["required"]["model"][0]
    assert {"CogVideoX-2b", "CogVideoX-5b-I2V", "cogvideox_tiny_sat.safetensors"} <= set(choices)
    assert "CogVideoX-2b" in Vid4DGSDiTModelLoader.INPUT_TYPES()["required"]["components"][0]
    pipe = _load("cogvideox_tiny_sat.safetensors", "CogVideoX-2b")
    assert pipe.in_channels == 16
    with pytest.raises(ValueError, match="single-file transformer"):
        _load("cogvideox_tiny_sat.safetensors")


def test_rig_same_seed_per_camera_progress_and_resize(tiny_models, fake_comfy):
    pipe = _load()
    clip = torch.rand(9, 34, 50, 3, generator=torch.Generator().manual_seed(0))
    holes = torch.zeros(9, 34, 50)
    holes[:, :, 36:] = 1
    out = GSDiTSampler().generate(pipe, images=torch.cat([clip, clip]), holes=torch.cat([holes, holes]), **{**ARGS, "cameras": 2})
    frames = out["result"][0]
    assert frames.shape == (18, 32, 48, 3)
    assert torch.equal(frames[:9], frames[9:])  # same seed and prompt for every camera
    assert fake_comfy.calls["progress"][-1] == (4, 4)
    assert "training-free" in out["ui"]["vid4d_info"][0]
    resized = GSDiTSampler().generate(pipe, images=clip[:1], holes=holes[:1], **{**ARGS, "resize_to_input": True})["result"][0]
    assert resized.shape == (1, 34, 50, 3)


def test_sampler_errors_and_cancel(tiny_models, fake_comfy):
    pipe = _load()
    clip = torch.rand(10, 32, 48, 3)
    with pytest.raises(ValueError, match="do not split into cameras = 3"):
        GSDiTSampler().generate(pipe, images=clip, **{**ARGS, "cameras": 3})
    with pytest.raises(ValueError, match="expected a VID4D_GSDIT_MODEL"):
        GSDiTSampler().generate("nope", images=clip, **ARGS)
    fake_comfy.mm.interrupted = True
    with pytest.raises(fake_comfy.mm.InterruptProcessingException):
        GSDiTSampler().generate(pipe, images=clip, **ARGS)
    assert runtime.comfy_present()
