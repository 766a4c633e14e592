"""PointVid point maps and the 3D point regulariser: accuracy on synthetic rigid bodies and cloth, pass-through, bad input."""

import math

import pytest
import torch

from vid4d.py import points as pts
from vid4d.py.camera import intrinsics_from_fov
from vid4d.py.tracking import Tracks3D


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rotation(axis, angle):
    axis = torch.tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def rigid_scene(frames=10, seed=0):
    """``[T, N, 3]``: a static background plane and two spheres, each spinning and translating with acceleration."""
    g = torch.Generator().manual_seed(seed)
    u = torch.linspace(-2, 2, 18, dtype=torch.float64)
    bx, by = torch.meshgrid(u, u, indexing="xy")
    background = torch.stack([bx.flatten(), by.flatten(), torch.full_like(bx.flatten(), 6.0)], -1)
    bodies = []
    for centre, axis, spin in [((-0.8, 0.0, 4.0), (0, 1, 0.3), 0.08), ((0.9, 0.3, 3.5), (1, 0.2, 0), 0.05)]:
        p = torch.randn(180, 3, generator=g, dtype=torch.float64)
        bodies.append((0.5 * p / p.norm(dim=-1, keepdim=True), torch.tensor(centre, dtype=torch.float64), axis, spin))
    out = []
    for t in range(frames):
        parts = [background]
        for p, centre, axis, spin in bodies:
            r = rotation(axis, spin * t + 0.006 * t * t)  # accelerating spin
            shift = torch.tensor([0.03 * t + 0.003 * t * t, 0.0, -0.01 * t], dtype=torch.float64)
            parts.append(p @ r.T + centre + shift)
        out.append(torch.cat(parts))
    return torch.stack(out).float()


def corrupt(truth, noise=0.02, outliers=0.02, seed=1):
    g = torch.Generator().manual_seed(seed)
    noisy = truth + noise * torch.randn(truth.shape, generator=g)
    bad = torch.rand(truth.shape[:2], generator=g) < outliers
    noisy[bad] += 0.5 * torch.randn(int(bad.sum()), 3, generator=g)
    return noisy


def median_error(a, b):
    return float((a - b).norm(dim=-1).median())


@pytest.mark.parametrize("max_anchors", [100_000, 300], ids=["all_points", "anchors"])
def test_noisy_rigid_bodies_get_closer_to_the_truth(max_anchors):
    truth = rigid_scene()
    noisy = corrupt(truth)
    vis = torch.ones(truth.shape[:2], dtype=torch.bool)
    info = {}
    out = pts.regularize_points(noisy, vis, k=8, max_anchors=max_anchors, info=info)
    before, after = median_error(noisy, truth), median_error(out, truth)
    assert after <= 0.6 * before, (before, after)  # >= 40% less error
    assert info["objective_after"] < info["objective_before"]
    assert 0.01 < info["outlier_fraction"] < 0.1  # the 2% outliers are found, not much else
    rest = pts.knn_pairs(truth[0], 8)
    assert float(pts.rigidity_loss(out, rest)) < 0.5 * float(pts.rigidity_loss(noisy, rest))


@pytest.mark.parametrize("max_anchors", [100_000, 300], ids=["all_points", "anchors"])
def test_noise_free_rigid_motion_passes_through_unchanged(max_anchors):
    truth = rigid_scene()
    vis = torch.ones(truth.shape[:2], dtype=torch.bool)
    vis[::3, ::7] = False  # invisible observations are exact too, so they must not move either
    out = pts.regularize_points(truth, vis, max_anchors=max_anchors, smoothness=1.0)
    assert float((out - truth).norm() / truth.norm()) < 1e-4
    assert float((out - truth).norm(dim=-1).max()) < 1e-4 * float(truth.norm(dim=-1).max())


def cloth(frames=10):
    """A waving sheet: a travelling sine wave, bending (not rigid) but smooth."""
    u = torch.linspace(-1.5, 1.5, 20)
    gx, gy = torch.meshgrid(u, u, indexing="xy")
    gx, gy = gx.flatten(), gy.flatten()
    return torch.stack([torch.stack([gx, gy, 4.0 + 0.25 * torch.sin(2.5 * gx - 0.4 * t) * (1 + 0.3 * gy)], -1) for t in range(frames)])


def test_waving_cloth_is_not_flattened():
    truth = cloth()
    noisy = corrupt(truth, noise=0.01, outliers=0.0)
    out = pts.regularize_points(noisy, torch.ones(truth.shape[:2]), k=8)
    assert median_error(out, truth) <= median_error(noisy, truth)
    # The wave is still there: the height profile of every frame keeps its amplitude.
    amplitude = lambda p: float(p[..., 2].amax(1).mean() - p[..., 2].amin(1).mean())  # noqa: E731
    assert amplitude(out) > 0.9 * amplitude(truth)
    clean = pts.regularize_points(truth, torch.ones(truth.shape[:2]), k=8)
    # One rest shape for all frames biases a strongly bending surface a little: less than the noise it removes.
    assert median_error(clean, truth) < median_error(noisy, truth)


def test_progress_cancel_and_info():
    truth = rigid_scene(frames=4)
    seen = []

    def cancel():
        if len(seen) >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pts.regularize_points(truth, torch.ones(truth.shape[:2]), iterations=5, progress=seen.append, cancel=cancel)
    seen.clear()
    pts.regularize_points(truth, torch.ones(truth.shape[:2]), iterations=3, progress=seen.append)
    assert seen == [0, 1, 2, 4]


def test_bad_input():
    vis = torch.ones(4, 10, dtype=torch.bool)
    with pytest.raises(ValueError, match="xyz.*empty"):
        pts.regularize_points(torch.zeros(4, 0, 3), torch.ones(4, 0, dtype=torch.bool))
    with pytest.raises(ValueError, match="no point is visible"):
        pts.regularize_points(torch.rand(4, 10, 3), torch.zeros(4, 10, dtype=torch.bool))
    nan = torch.rand(4, 10, 3)
    nan[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="xyz.*NaN"):
        pts.regularize_points(nan, vis)
    with pytest.raises(ValueError, match="visibility: expected shape"):
        pts.regularize_points(torch.rand(4, 10, 3), torch.ones(4, 9, dtype=torch.bool))
    # k >= N is clamped to N - 1 (documented); one point has no neighbours and comes back unchanged.
    x = rigid_scene(frames=4)[:, :6]
    assert torch.allclose(pts.regularize_points(x, torch.ones(4, 6), k=50), x, atol=1e-5)
    one = torch.rand(4, 1, 3)
    assert torch.equal(pts.regularize_points(one, torch.ones(4, 1), k=8), one)


def test_losses_are_zero_for_rigid_motion_and_differentiable():
    truth = rigid_scene(frames=5)
    pairs = pts.knn_pairs(truth[0], 6)
    assert pairs.shape == (truth.shape[1] * 6, 2)
    assert float(pts.rigidity_loss(truth, pairs)) < 1e-9
    steady = truth[:1] + torch.arange(5.0)[:, None, None] * torch.tensor([0.1, 0.0, 0.05])
    assert float(pts.smoothness_loss(steady)) < 1e-10
    assert float(pts.smoothness_loss(corrupt(steady, outliers=0.0))) > 1e-4
    k = intrinsics_from_fov(60.0, 64, 48)
    uv, depth = pts.project_points(truth, k)
    assert float(pts.misalignment_loss(truth, uv, k)) < 1e-6
    x = corrupt(truth, outliers=0.0).requires_grad_(True)
    loss = pts.rigidity_loss(x, pairs) + pts.smoothness_loss(x) + pts.misalignment_loss(x, uv, k, torch.ones(truth.shape[:2]))
    loss.backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


def make_tracks(frames=5, h=24, w=32):
    """A plane at depth 4 with a square in front moving right; the square's last column hidden in frame 2."""
    k = intrinsics_from_fov(60.0, w, h)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    inside = (xs >= 8) & (xs < 16) & (ys >= 8) & (ys < 16)
    uv = torch.stack([torch.stack([xs + inside * 1.0 * t, ys], -1) for t in range(frames)])
    depth = torch.where(inside, torch.full_like(xs, 2.0), torch.full_like(xs, 4.0)).expand(frames, h, w).clone()
    vis = torch.ones(frames, h, w, dtype=torch.bool)
    vis[2, 8:16, 15] = False
    return Tracks3D(uv=uv, depth=depth, visibility=vis, intrinsics=k), inside


def test_point_maps_density_visibility_and_inverse():
    tracks, inside = make_tracks()
    bias = 3.0
    maps = pts.point_maps(tracks, mask=inside.float(), num_points=120, seed=0, foreground_bias=bias)
    chosen = torch.zeros(tracks.height * tracks.width, dtype=torch.bool)
    chosen[maps.index] = True
    chosen = chosen.reshape(tracks.height, tracks.width)
    density_in = float(chosen[inside].float().mean())
    density_out = float(chosen[~inside].float().mean())
    assert maps.index.numel() == 120 and density_in >= bias * density_out
    # Written exactly where a sampled visible point lands (the nearest one wins), never for invisible ones.
    xyz = tracks.xyz()
    for t in range(tracks.num_frames):
        expected = {}
        for n in maps.index.tolist():
            r, c = divmod(n, tracks.width)
            if not tracks.visibility[t, r, c]:
                continue
            pixel = (int(round(float(tracks.uv[t, r, c, 1]))), int(round(float(tracks.uv[t, r, c, 0]))))
            if pixel not in expected or xyz[t, r, c, 2] < expected[pixel][2]:
                expected[pixel] = xyz[t, r, c]
        assert set(map(tuple, maps.valid[t].nonzero().tolist())) == set(expected)
        for (r, c), point in expected.items():
            assert torch.allclose(maps.denormalize(maps.points[t, r, c]), point, rtol=1e-6, atol=1e-6)
    assert int(maps.valid[2].sum()) < int(maps.valid[1].sum())  # the hidden column is missing in frame 2
    assert float(maps.points.abs().max()) <= 1.0 + 1e-6 and bool((maps.points[~maps.valid] == 0).all())
    assert torch.allclose(maps.normalize(maps.denormalize(maps.points)), maps.points, atol=1e-6)
    image = maps.image()
    assert image.shape == (5, 24, 32, 3) and float(image.min()) >= 0 and float(image.max()) <= 1


def test_point_maps_from_motion_without_mask_and_bad_input():
    tracks, inside = make_tracks()
    assert torch.equal(pts.motion_foreground(tracks), inside)
    maps = pts.point_maps(tracks, num_points=60, seed=1, foreground_bias=4.0)
    chosen = torch.zeros(tracks.height * tracks.width, dtype=torch.bool)
    chosen[maps.index] = True
    assert float(chosen.reshape(24, 32)[inside].float().mean()) >= 4.0 * float(chosen.reshape(24, 32)[~inside].float().mean())
    with pytest.raises(ValueError, match="mask: expected shape"):
        pts.point_maps(tracks, mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match="num_points"):
        pts.point_maps(tracks, num_points=0)
    hidden = Tracks3D(uv=tracks.uv, depth=tracks.depth, visibility=torch.zeros_like(tracks.visibility), intrinsics=tracks.intrinsics)
    with pytest.raises(ValueError, match="no sampled point is visible"):
        pts.point_maps(hidden)
