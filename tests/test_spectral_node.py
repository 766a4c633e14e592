"""SpectralMotion and Vid4DMotionModelLoader run headless end to end in every mode."""

import math

import pytest
import torch

from tiny_motion import COMMUNITY_NAME, VID4D_NAME
from vid4d.models.loading import ModelNotFoundError
from vid4d.nodes.spectral import SpectralMotion, Vid4DMotionModelLoader
from vid4d.py.spectral import MotionTexture, SpectralVolume

WIDGETS = dict(num_freqs=8, amplitude_scale=1.0, num_frames=20, fps=30.0, loop=True, direction=0.0, amplitude=2.0, freq_low=0.5, freq_high=6.0, coherence=4.0, seed=0, remove_camera_motion=False, steps=2)


def _run(image, mode, **kw):
    return SpectralMotion().run(image, mode, **{**WIDGETS, **kw})


def _image(h=24, w=32):
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    v = 0.5 + 0.25 * torch.sin(0.5 * x) * torch.cos(0.4 * y) + 0.2 * torch.sin(0.23 * x + 0.31 * y)
    return torch.stack([v, 1 - v, 0.5 * v], -1)[None]


def _check_outputs(out, k, h, w, frames):
    volume, texture, bands, preview = out["result"]
    assert isinstance(volume, SpectralVolume) and volume.coeffs.shape == (k, h, w, 2)
    assert isinstance(texture, MotionTexture) and texture.displacement.shape == (frames, h, w, 2) and texture.fps == 30.0
    # One band image per frequency that moves (empty bands would be all-black previews), at least one image.
    moving = max(1, int((volume.coeffs.abs().flatten(1).amax(1) > 0).sum()))
    assert bands.shape == (moving, h, w, 3) and preview.shape == (frames, h, w, 3)
    assert all(float(b.max()) > 0 for b in bands) or moving == 1
    assert 0 <= float(bands.min()) and float(bands.max()) <= 1 and 0 <= float(preview.min()) and float(preview.max()) <= 1
    assert "vid4d_info" in out["ui"]
    return volume, texture


def test_procedural_mode_with_a_mask_loops():
    mask = torch.zeros(1, 24, 32)
    mask[0, 4:20, 6:26] = 1
    out = _run(_image(), "procedural", mask=mask)
    volume, texture = _check_outputs(out, 8, 24, 32, 20)
    assert volume.period == 20 and texture.displacement[:, mask[0] == 0].abs().max() == 0
    assert float(texture.displacement.norm(dim=-1).max()) > 0.1
    # The next frame after the last one is frame 0 again: the looping video has no seam.
    step = (texture.displacement[1:] - texture.displacement[:-1]).abs().max()
    assert (texture.displacement[0] - texture.displacement[-1]).abs().max() <= step + 1e-5
    again = _run(_image(), "procedural", mask=mask)["result"][0]
    assert torch.equal(again.coeffs, volume.coeffs)


def test_from_video_then_transfer_to_another_image():
    T, h, w = 12, 24, 32
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    shift = 1.5 * torch.sin(2 * math.pi * torch.arange(T, dtype=torch.float64) / T)
    video = torch.stack([torch.stack([0.5 + 0.3 * torch.sin(0.45 * (x - s)) * torch.cos(0.35 * y)] * 3, -1) for s in shift]).float()
    out = _run(_image(), "from_video", video=video, num_freqs=4, num_frames=T, loop=False)
    volume, texture = _check_outputs(out, 4, h, w, T)
    amp = float(volume.coeffs[1, 6:-6, 6:-6, 0].abs().median()) * 2 / T
    assert abs(amp - 1.5) < 0.3
    # Transfer: the same volume applied to a larger image, half as strong, only in the left half.
    mask = torch.zeros(1, 48, 64)
    mask[0, :, :32] = 1
    moved = _run(_image(48, 64), "transfer", spectral_volume=volume, amplitude_scale=0.5, mask=mask, num_frames=T, loop=False)
    big, big_texture = _check_outputs(moved, 4, 48, 64, T)
    assert big.coeffs[:, :, 32:].abs().max() == 0
    assert abs(float(big.coeffs[1, 12:-12, 12:30, 0].abs().median()) * 2 / T - amp) < 0.3  # x2 size, x0.5 amplitude


@pytest.mark.parametrize("name", [VID4D_NAME, COMMUNITY_NAME])
def test_model_mode_through_the_loader(tiny_models, name):
    assert name in Vid4DMotionModelLoader.INPUT_TYPES()["required"]["model_name"][0]
    model = Vid4DMotionModelLoader().load(name, "float32")["result"][0]
    out = _run(_image(), "model", model=model, num_frames=6)
    _check_outputs(out, model.num_freqs, 24, 32, 6)


def test_bad_inputs(tiny_models):
    with pytest.raises(ValueError, match="video"):
        _run(_image(), "from_video")
    with pytest.raises(ValueError, match="model"):
        _run(_image(), "model")
    with pytest.raises(ValueError, match="spectral_volume"):
        _run(_image(), "transfer")
    with pytest.raises(ValueError, match="empty"):
        _run(_image(), "procedural", mask=torch.zeros(1, 24, 32))
    with pytest.raises(ValueError, match="MASK of size"):
        _run(_image(), "procedural", mask=torch.ones(1, 10, 10))
    with pytest.raises(ValueError, match="zero size|IMAGE"):
        _run(torch.zeros(1, 0, 32, 3), "procedural")
    with pytest.raises(ValueError, match="distinct frequencies"):
        _run(_image(), "procedural", num_freqs=16, num_frames=10)
    with pytest.raises(ValueError, match="expected a VID4D_SPECTRAL_VOLUME"):
        _run(_image(), "transfer", spectral_volume=torch.zeros(3))
    with pytest.raises(ModelNotFoundError, match="models/vid4d/motion"):
        Vid4DMotionModelLoader().load("nope.safetensors", "float32")
