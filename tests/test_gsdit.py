"""GS-DiT sampler on tiny random CogVideoX models saved in the diffusers layout (tests/tiny_cogvideox.py)."""

import os

import pytest
import torch

from vid4d.models import gsdit as gs
from vid4d.models.loading import CheckpointFormatError, ModelNotFoundError

T, H, W = 9, 32, 48


def _load(root, name, **kw):
    return gs.load_pipeline(root / "gsdit" / name, **kw)


def _render(seed=0):
    g = torch.Generator().manual_seed(seed)
    render = torch.rand(T, H, W, 3, generator=g)
    holes = torch.zeros(T, H, W)
    holes[:, :, 32:] = 1  # right third is a hole
    return render, holes


def test_snapping_and_latent_mask():
    assert [gs.snap_frames(t) for t in (1, 4, 5, 8, 9, 16, 17, 49, 50)] == [1, 1, 1, 1, 9, 9, 17, 49, 49]
    assert gs.snap_size(35, 50) == (32, 48)
    with pytest.raises(ValueError, match="16x16"):
        gs.snap_size(8, 64)
    video = torch.zeros(11, 35, 50, 3)
    assert gs.snap_video(video).shape == (9, 32, 48, 3)
    holes = torch.zeros(9, 32, 48)
    holes[5, 0, 0] = 1  # frame 5 belongs to latent frame 2 (frames 5..8)
    lat = gs.latent_hole_mask(holes, feather=0.0)
    assert lat.shape == (3, 4, 6)
    assert lat[2, 0, 0] == 1 and lat[1].sum() == 0 and lat[2].sum() == 1
    soft = gs.latent_hole_mask(holes, feather=1.0)
    assert soft[2, 0, 0] == 1 and 0 < soft[2, 0, 2] < 1 and soft[2, 3, 5] < 0.05


def test_channel_detection_and_bad_vae(tiny_models):
    root = tiny_models / "gsdit"
    assert gs.transformer_in_channels(root / "CogVideoX-2b" / "transformer") == 16
    assert gs.transformer_in_channels(root / "CogVideoX-5b-I2V" / "transformer") == 32
    assert gs.transformer_in_channels(root / "GS-DiT-33" / "transformer") == 33
    assert _load(tiny_models, "GS-DiT-33").in_channels == 33
    with pytest.raises(CheckpointFormatError, match="VAE has 8 latent channels but the transformer takes 32"):
        _load(tiny_models, "GS-DiT-bad-vae")


def test_missing_part_is_named(tiny_models, tmp_path):
    folder = tmp_path / "CogVideoX-5b-I2V"
    folder.mkdir()
    for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
        os.symlink(tiny_models / "gsdit" / "CogVideoX-5b-I2V" / part, folder / part)
    with pytest.raises(ModelNotFoundError, match=r"transformer/ missing in .*CogVideoX-5b-I2V"):
        gs.load_pipeline(folder)
    with pytest.raises(ModelNotFoundError, match="components"):
        gs.load_pipeline(tiny_models / "gsdit" / "cogvideox_tiny_transformer.safetensors")


def test_training_free_shape_determinism_and_seed(tiny_models):
    pipe = _load(tiny_models, "CogVideoX-2b")
    render = torch.rand(11, 35, 50, 3, generator=torch.Generator().manual_seed(0))
    kw = dict(prompt="a cat", mode="training_free", strength=1.0, num_steps=2, guidance=2.0)
    holes = torch.zeros(11, 35, 50)
    holes[:, :, 30:] = 1
    a = pipe(render, holes, seed=1, **kw)
    assert a.shape == (9, 32, 48, 3) and torch.isfinite(a).all() and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, pipe(render, holes, seed=1, **kw))
    assert not torch.equal(a, pipe(render, holes, seed=2, **kw))
    with pytest.raises(ValueError, match="mode gsdit needs a GS-DiT checkpoint"):
        pipe(render, None, mode="gsdit", num_steps=1)


def test_training_free_keeps_known_regions(tiny_models):
    pipe = _load(tiny_models, "CogVideoX-2b")
    render, holes = _render()
    out = pipe(render, holes, "a room", mode="training_free", strength=0.6, num_steps=3, guidance=1.0, feather=0.0)
    # The tiny VAE is random: compare with the render's own VAE round trip, the best the known region can be.
    roundtrip = gs.decode_latents(pipe, gs.encode_video(pipe, render))
    err = (out - roundtrip).abs()
    known, hole = err[:, :, :16].mean(), err[:, :, 40:].mean()
    assert known < 0.5 * hole, (float(known), float(hole))


def test_gsdit_mode_uses_the_render(tiny_models):
    pipe = _load(tiny_models, "GS-DiT-33")
    render, holes = _render(0)
    other, _ = _render(1)
    kw = dict(prompt="a ball", mode="gsdit", num_steps=2, guidance=1.0, seed=0)
    a, b = pipe(render, holes, **kw), pipe(other, holes, **kw)
    c = pipe(render, torch.zeros_like(holes), **kw)
    assert a.shape == (T, H, W, 3)
    assert (a - b).abs().mean() > 1e-4 and (a - c).abs().mean() > 1e-5  # render and mask channel both matter
    with pytest.raises(ValueError, match="mode training_free needs a public CogVideoX"):
        pipe(render, holes, mode="training_free", num_steps=1)


def test_cfg_one_skips_the_unconditional_pass(tiny_models):
    pipe = _load(tiny_models, "CogVideoX-5b-I2V")
    render, holes = _render()
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["hidden_states"].shape[0]), with_kwargs=True)
    try:
        pipe(render, holes, "x", mode="gsdit", num_steps=2, guidance=1.0)
        assert seen == [1, 1]
        seen.clear()
        pipe(render, holes, "x", mode="gsdit", num_steps=2, guidance=5.0, scheduler="dpm")
        assert seen == [2, 2]
    finally:
        hook.remove()
    # I2V model in training-free mode: the render's first frame is the image condition.
    out = pipe(render, holes, "x", mode="training_free", strength=0.7, num_steps=3, guidance=1.0)
    assert out.shape == (T, H, W, 3) and pipe.stats["steps"] == 2


def test_single_file_transformers_match_the_folder(tiny_models):
    root = tiny_models / "gsdit"
    ref = _load(tiny_models, "CogVideoX-2b")
    render, holes = _render()
    kw = dict(prompt="a cat", mode="training_free", strength=0.7, num_steps=2, guidance=1.0)
    expected = ref(render, holes, **kw)
    for name in ("cogvideox_tiny_transformer.safetensors", "cogvideox_tiny_sat.safetensors"):
        pipe = gs.load_pipeline(root / name, components=root / "CogVideoX-2b")
        assert pipe.in_channels == 16 and pipe.transformer.config.num_layers == 2
        assert torch.allclose(pipe(render, holes, **kw), expected, atol=1e-5), name


def test_memory_estimate_error(tiny_models):
    pipe = _load(tiny_models, "CogVideoX-2b")
    small = gs.estimate_memory(pipe, 9, 32, 48, 6.0)
    assert 0 < small < gs.estimate_memory(pipe, 49, 480, 720, 6.0)
    assert gs.estimate_memory(pipe, 49, 480, 720, 1.0) <= gs.estimate_memory(pipe, 49, 480, 720, 6.0)
    with pytest.raises(MemoryError, match=r"needs about [\d.]+ GiB"):
        gs.check_memory(pipe, 400001, 8192, 8192, 6.0)


def test_sat_conversion_rejects_unknown_keys():
    with pytest.raises(CheckpointFormatError, match="does not know"):
        gs.convert_sat_keys({"transformer.layers.0.attention.weird.weight": torch.zeros(1)})
