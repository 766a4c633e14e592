"""The motion LDM: tiny random models in both layouts (tests/tiny_motion.py) load through the real loader
and sample spectral volumes."""

import json

import pytest
import torch

from tiny_motion import COMMUNITY_NAME, TINY_SCALES, VID4D_NAME, tiny_config
from vid4d.models import loading
from vid4d.models import motion as mm
from vid4d.py.spectral import SpectralVolume


@pytest.fixture(scope="module")
def pipes(tiny_models_root):
    folder = tiny_models_root / "motion"
    return {"vid4d": mm.load_motion_model(folder / VID4D_NAME), "community": mm.load_motion_model(folder / COMMUNITY_NAME)}


def test_our_layout_loads_with_its_config_and_stats(pipes, tiny_models_root):
    pipe = pipes["vid4d"]
    assert pipe.layout == "vid4d" and pipe.num_freqs == 4 and pipe.period == 16 and pipe.latent_size == (8, 12)
    assert torch.equal(pipe.scales, TINY_SCALES)
    assert len(pipe.net.freq_attn) == 3  # after the mid block and both up blocks
    assert mm.load_motion_model(tiny_models_root / "motion" / VID4D_NAME) is pipe  # cached


@pytest.mark.parametrize("layout", ["vid4d", "community"])
def test_sampling_shape_finite_deterministic(pipes, layout):
    pipe = pipes[layout]
    image = torch.rand(20, 30, 3, generator=torch.Generator().manual_seed(0))
    done = []
    a = pipe(image, num_steps=2, seed=3, progress=done.append)
    b = pipe(image, num_steps=2, seed=3)
    assert isinstance(a, SpectralVolume) and a.coeffs.shape == (pipe.num_freqs, 20, 30, 2) and a.period == pipe.period
    assert bool(torch.isfinite(a.coeffs.real).all()) and float(a.coeffs.abs().max()) > 0
    assert torch.equal(a.coeffs, b.coeffs)
    assert done == [1, 2]
    if layout == "vid4d":  # (the community model is slower: one layout shows the seed matters)
        assert not torch.equal(a.coeffs, pipe(image, num_steps=2, seed=4).coeffs)


def test_denormalisation_uses_the_models_own_stats(pipes):
    pipe = pipes["vid4d"]
    latents = torch.ones(4, 4, 8, 12)
    volume = pipe._decode(latents)  # normalised 1 in every channel → s_k in every real channel
    assert torch.allclose(volume.coeffs[:, 0, 0, 0].real, TINY_SCALES)
    community = pipes["community"]
    assert community.num_freqs == 16 and community.period == 149
    assert torch.allclose(community.scales[0], torch.tensor(3.0 * mm.COMMUNITY_SCALE))


def test_frequency_attention_couples_the_slices(pipes):
    net = pipes["vid4d"].net
    x = torch.randn(4, 4, 8, 12, generator=torch.Generator().manual_seed(1))
    img = torch.zeros(4, 3, 8, 12)
    with torch.no_grad():
        base = net(x, img, 10, 4)
        x2 = x.clone()
        x2[3] += 1.0  # change only the last slice
        moved = net(x2, img, 10, 4)
    assert (moved[0] - base[0]).abs().max() > 1e-6  # slice 0 sees slice 3 through the frequency attention


def test_unet_config_inferred_from_community_weights(tiny_models_root):
    folder = tiny_models_root / "motion" / COMMUNITY_NAME
    state = loading.load_state_dict(folder / "unet_v1.pth")
    inferred = mm.infer_unet_config(state)
    saved = json.loads((folder / "config.json").read_text())
    for key in ("in_channels", "out_channels", "layers_per_block", "class_embed_type"):
        assert inferred[key] == saved[key]
    assert list(inferred["block_out_channels"]) == saved["block_out_channels"]
    assert list(inferred["down_block_types"]) == saved["down_block_types"] and list(inferred["up_block_types"]) == saved["up_block_types"]


def test_bad_files_are_clear_errors(tmp_path, tiny_models_root):
    with pytest.raises(loading.ModelNotFoundError, match="motion"):
        mm.load_motion_model(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(loading.CheckpointFormatError, match="not a Vid4D motion model"):
        mm.load_motion_model(tmp_path / "other.safetensors")
    (tmp_path / "half").mkdir()
    torch.save({"model": {"conv_in.weight": torch.zeros(1)}}, tmp_path / "half" / "unet_v1.pth")
    with pytest.raises(loading.ModelNotFoundError, match="fft_std.npy"):
        mm.load_motion_model(tmp_path / "half")
    with pytest.raises(ValueError, match="divisible"):
        mm.MotionModelConfig(sample_size=(10, 12), block_out_channels=(8, 8, 8), attention_levels=(False, False, False))
    with pytest.raises(ValueError, match="frequencies"):
        mm.MotionModelConfig(num_freqs=20, period=16)
    assert tiny_config().num_freqs == 4
