"""ChronoDepth: loading both official layouts, window semantics, determinism, flat memory, clear errors."""

from __future__ import annotations

import shutil
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vid4d.models import chronodepth as cd
from vid4d.models.loading import CheckpointFormatError, ModelNotFoundError

import tiny_chronodepth as tiny


@pytest.fixture(scope="module")
def paths(tiny_models_root):
    root = tiny_models_root
    return {"unet": root / "depth" / tiny.UNET_NAME, "folder": root / "depth" / tiny.BASE_NAME, "single": root / "checkpoints" / tiny.SINGLE_FILE}


@pytest.fixture(scope="module")
def pipes(paths):
    return {name: cd.load_pipeline(paths["unet"], paths[name]) for name in ("folder", "single")}


def _video(t, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t, h, w, 3, generator=g)


def test_both_layouts_load_the_same_model_and_give_depth(pipes):
    a, b = pipes["folder"], pipes["single"]
    sa, sb = a.vae.state_dict(), b.vae.state_dict()
    assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa), "SGM conversion must reproduce the diffusers VAE"
    assert torch.allclose(a.image_embedding, b.image_embedding, atol=1e-6), "open_clip → CLIP conversion must give the same embedding"
    frames = _video(3, 64, 80)
    da, db = a(frames, num_steps=1), b(frames, num_steps=1)
    assert da.shape == (3, 64, 80) and da.dtype == torch.float32
    assert torch.isfinite(da).all() and da.min() >= 0 and da.max() <= 1
    assert torch.allclose(da, db, atol=1e-5)
    assert a.near_is == "low"


def test_deterministic_per_seed_and_one_frame_refused(pipes):
    pipe = pipes["folder"]
    frames = _video(2)
    d0, d0b, d1 = pipe(frames, num_steps=1, seed=0), pipe(frames, num_steps=1, seed=0), pipe(frames, num_steps=1, seed=1)
    assert torch.equal(d0, d0b) and not torch.equal(d0, d1)
    with pytest.raises(ValueError, match="at least 2 frames"):
        pipe(frames[:1], num_steps=1)


def test_per_frame_timesteps_reach_the_unet(pipes):
    pipe = pipes["folder"]
    unet = pipe.unet
    sample = torch.randn(3, 8, 8, 8)
    ids = torch.tensor([cd.ADDED_TIME_IDS])
    emb = pipe.image_embedding
    same = cd.unet_forward(unet, sample, torch.full((3,), 1.0), emb, ids)
    mixed = cd.unet_forward(unet, sample, torch.tensor([cd.CONTEXT_TIMESTEP, 1.0, 1.0]), emb, ids)
    assert same.shape == (3, 4, 8, 8)
    assert not torch.allclose(same[0], mixed[0])
    # With equal timesteps the per-frame path equals diffusers' own forward (one timestep per video).
    ref = unet(sample[None], torch.tensor(1.0), encoder_hidden_states=emb, added_time_ids=ids).sample[0]
    assert torch.allclose(same, ref, atol=1e-5)


@pytest.mark.parametrize("num,expected", [
    (1, [(0, 0, 1)]),
    (9, [(0, 0, 9)]),
    (10, [(0, 0, 10)]),
    (11, [(0, 0, 10), (1, 10, 11)]),
    (37, [(0, 0, 10), (5, 10, 15), (10, 15, 20), (15, 20, 25), (20, 25, 30), (25, 30, 35), (27, 35, 37)]),
])
def test_window_plan(num, expected):
    assert [(w.start, w.new, w.end) for w in cd.window_plan(num, 10, 5)] == expected


class _Recorder:
    """Stand-ins for the networks that record what the sampler feeds the UNet."""

    def __init__(self, pipe, monkeypatch):
        self.calls = []
        lat = lambda n, size: torch.zeros(n, 4, size[0] // pipe.latent_factor, size[1] // pipe.latent_factor)
        monkeypatch.setattr(pipe, "_encode", lambda frames, size: lat(frames.shape[0], size) + frames.mean())
        monkeypatch.setattr(pipe, "_decode", lambda latents, size: torch.rand(latents.shape[0], *size))
        monkeypatch.setattr(pipe, "_predict", self.predict)

    def predict(self, rgb, depth, timesteps, frames):
        self.calls.append((list(frames), timesteps.clone(), depth.clone()))
        return torch.randn_like(depth) * 0.1


@pytest.mark.parametrize("num", [2, 9, 10, 11, 37])
@pytest.mark.parametrize("mode", ["context", "replacement", "naive"])
def test_window_semantics(pipes, monkeypatch, num, mode):
    pipe = pipes["folder"]
    rec = _Recorder(pipe, monkeypatch)
    steps = 3
    out = pipe(_video(num, 64, 64), num_steps=steps, mode=mode)
    assert out.shape[0] == num
    plan = cd.window_plan(num, 10, 5)
    assert len(rec.calls) == len(plan) * steps
    denoised = torch.zeros(num, dtype=torch.long)
    final = {}
    for k, win in enumerate(plan):
        window_calls = rec.calls[k * steps : (k + 1) * steps]
        for frames, ts, depth in window_calls:
            assert frames == list(range(win.start, win.end))
            new = torch.tensor([f >= win.new for f in frames])
            if mode == "context":
                assert torch.all(ts[~new] == cd.CONTEXT_TIMESTEP) and torch.all(ts[new] != cd.CONTEXT_TIMESTEP)
                for i, f in enumerate(frames):
                    if f < win.new:  # context is fed exactly as it was finished: never re-noised
                        assert torch.equal(depth[i], final[f])
            else:
                assert torch.all(ts != cd.CONTEXT_TIMESTEP)
            denoised[win.new : win.end] += 1
        # the latents the next windows see as context
        if mode == "context" and k + 1 < len(plan):
            nxt = plan[k + 1]
            last_depth = None
            for frames, ts, depth in rec.calls[(k + 1) * steps : (k + 1) * steps + 1]:
                last_depth = depth
            for i in range(nxt.new - nxt.start):
                final.setdefault(nxt.start + i, last_depth[i])
    assert torch.all(denoised == steps), "every frame is denoised exactly `steps` times"


class _LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage allocated inside the mode and still alive (peak tracked)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.owners: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # Views of inputs (e.g. a slice of the video made before the mode) allocate nothing.
        inputs = {a.untyped_storage().data_ptr() for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                ptr, size = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
                if size and ptr not in self.owners and ptr not in inputs:
                    self.owners[ptr] = size
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, ptr)
        return out

    def _free(self, ptr):
        self.live -= self.owners.pop(ptr, 0)


def test_memory_is_flat_in_video_length(pipes, monkeypatch):
    """Peak live tensor memory of the sampler (real scheduler and windowing, light stand-in networks; the
    returned depth video excluded) for 200 frames is within 1.2x of that for 50."""
    pipe = pipes["folder"]
    _Recorder(pipe, monkeypatch)
    monkeypatch.setattr(pipe, "_predict", lambda rgb, depth, ts, frames: torch.randn_like(depth) * 0.1)
    peaks = {}
    for num in (50, 200):
        frames = _video(num, 64, 256)
        with _LiveBytes() as tracker:
            out = pipe(frames, num_steps=2)
        peaks[num] = tracker.peak - out.untyped_storage().nbytes()
    assert peaks[50] > 0
    assert peaks[200] <= 1.2 * peaks[50], peaks


def test_bad_inputs(pipes, paths, tmp_path):
    pipe = pipes["folder"]
    with pytest.raises(ValueError, match="no frames"):
        pipe(torch.zeros(0, 64, 64, 3))
    with pytest.raises(ValueError, match="at least 64 px"):
        pipe(_video(2, 48, 64))
    with pytest.raises(ValueError, match="mode"):
        pipe(_video(2), mode="bogus")
    # a UNet that is not 8 in / 4 out (e.g. the plain SVD UNet)
    wrong = tmp_path / "wrong_unet"
    tiny.save_unet(wrong, tiny.tiny_unet(in_channels=4, out_channels=4))
    with pytest.raises(CheckpointFormatError, match="8 input and 4 output"):
        cd.load_unet(wrong)
    # a truncated weight file
    cut = tmp_path / "cut_unet"
    shutil.copytree(paths["unet"], cut)
    weights = cut / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointFormatError, match="could not read"):
        cd.load_unet(cut)
    truncated = tmp_path / "svd_xt.safetensors"
    truncated.write_bytes(paths["single"].read_bytes()[:1000])
    with pytest.raises(CheckpointFormatError):
        cd.load_pipeline(paths["unet"], truncated)
    # wrong folders
    with pytest.raises(ModelNotFoundError, match="vae/"):
        cd.load_pipeline(paths["unet"], paths["unet"])
    with pytest.raises(ModelNotFoundError, match="config.json"):
        cd.load_unet(paths["folder"])
    with pytest.raises(ModelNotFoundError, match="ChronoDepth UNet not found: .*absent"):
        cd.load_unet(tmp_path / "absent")
