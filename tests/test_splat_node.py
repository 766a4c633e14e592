"""SoftmaxSplat and the synthesis model: headless end to end with a MotionTexture built directly."""

import math

import pytest
import torch

from vid4d.models import loading
from vid4d.models.synthesis import SynthesisConfig, SynthesisNet, load_synthesis_model, save_synthesis_model
from vid4d.nodes.splat import SoftmaxSplat, Vid4DSynthesisModelLoader
from vid4d.py.depth import DepthVideo
from vid4d.py.spectral import MotionTexture

H, W, T = 24, 32, 6


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    monkeypatch.setenv("VID4D_SPLAT_COMPILE", "0")  # compile is covered in test_splat.py; keep this file fast


def _inputs():
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    image = torch.stack([0.5 + 0.5 * torch.sin(xx / 2), 0.5 + 0.5 * torch.cos(yy / 3), xx / W], -1)[None]
    phase = torch.arange(T).float()[:, None, None] * 2 * math.pi / T
    disp = torch.stack([torch.sin(phase + xx / 9) * (xx > 10), 0.5 * torch.cos(phase) * (yy > 8)], -1)
    return image, MotionTexture(disp, fps=12.0)


def _run(**kw):
    image, texture = _inputs()
    args = dict(image=image, motion_texture=texture, weight_mode="motion_magnitude", weight_strength=1.0, pyramid_levels=3, fill_holes=True, chunk_frames=4, depth_encoding="disparity")
    args.update(kw)
    return SoftmaxSplat().render(**args)


@pytest.mark.parametrize("levels,fill", [(1, False), (3, True)])
def test_node_animates(levels, fill):
    res = _run(pyramid_levels=levels, fill_holes=fill)
    frames, holes, fps = res["result"]
    assert frames.shape == (T, H, W, 3) and holes.shape == (T, H, W) and fps == 12.0
    assert torch.isfinite(frames).all() and 0 <= float(frames.min()) and float(frames.max()) <= 1
    assert "holes" in res["ui"]["vid4d_info"][0]
    if fill:
        assert float(frames.sum(-1).eq(0).float().mean()) < 0.01  # filled: no black holes left


def test_weight_modes():
    image, texture = _inputs()
    depth = DepthVideo(torch.linspace(1, 5, W).expand(1, H, W).contiguous())
    assert _run(weight_mode="depth", depth=depth)["result"][0].shape == (T, H, W, 3)
    assert _run(weight_mode="custom", weight_image=image)["result"][0].shape == (T, H, W, 3)
    assert _run(weight_mode="none")["result"][0].shape == (T, H, W, 3)
    with pytest.raises(ValueError, match="depth"):
        _run(weight_mode="depth")
    with pytest.raises(ValueError, match="weight_image"):
        _run(weight_mode="custom")


def test_node_bad_inputs():
    image, texture = _inputs()
    with pytest.raises(ValueError, match="motion_texture is"):
        _run(image=image[:, :, :20])
    with pytest.raises(ValueError, match="motion_texture"):
        _run(motion_texture=torch.zeros(T, H, W, 2))
    with pytest.raises(ValueError, match="NaN"):
        MotionTexture(torch.full((T, H, W, 2), float("nan")))


def test_synthesis_model_saves_loads_and_renders(tmp_path):
    net = SynthesisNet(SynthesisConfig(channels=(4, 6, 8)))
    save_synthesis_model(net, tmp_path / "s.safetensors")
    model = load_synthesis_model(tmp_path / "s.safetensors")
    for k, v in net.state_dict().items():
        assert torch.equal(model.net.state_dict()[k], v)
    image, texture = _inputs()
    feats = model.encode(image.permute(0, 3, 1, 2))
    assert [f.shape[1] for f in feats] == [4, 6, 8] and feats[2].shape[-2:] == (6, 8)
    flow = texture.displacement[:3].permute(0, 3, 1, 2)
    out = model.render(feats, flow, torch.rand(3, 1, H, W))
    assert out.shape == (3, 3, H, W) and torch.isfinite(out).all()
    torch.save(net.state_dict(), tmp_path / "s.pt")
    with pytest.raises(loading.CheckpointFormatError, match="safetensors"):
        load_synthesis_model(tmp_path / "s.pt")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(loading.CheckpointFormatError, match="vid4d_synthesis"):
        load_synthesis_model(tmp_path / "other.safetensors")
    with pytest.raises(loading.ModelNotFoundError):
        load_synthesis_model(tmp_path / "missing.safetensors")


def test_node_with_tiny_synthesis_model(tiny_models):
    from tiny_synthesis import NAME

    assert NAME in Vid4DSynthesisModelLoader.INPUT_TYPES()["required"]["model_name"][0]
    model = Vid4DSynthesisModelLoader().load(NAME)["result"][0]
    res = _run(synthesis_model=model)
    frames, holes, _ = res["result"]
    assert frames.shape == (T, H, W, 3) and torch.isfinite(frames).all()
    assert "synthesis model" in res["ui"]["vid4d_info"][0]
    with pytest.raises(loading.ModelNotFoundError, match="models/vid4d/motion"):
        Vid4DSynthesisModelLoader().load("nope.safetensors")
