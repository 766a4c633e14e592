"""Dense tracking (flow_chain, dot_raft with stand-in refiners) and the flow algebra, against exact ground truth.

Ground truth comes from the sample scene (exact per-pixel motion, depth and occlusion) and from
sequences made here by warping smooth random textures with known affine maps, or by pasting a
textured square over a moving texture (exact tracks and occlusion by construction).
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from vid4d.py import flow as fl
from vid4d.py import tracking as tr
from vid4d.py.camera import intrinsics_from_fov, pixel_grid
from vid4d.py.depth import DepthVideo
from vid4d.py.scene import sample_scene

# --- synthetic sequences -------------------------------------------------------------------------------


def smooth_texture(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``[3, H, W]`` colour texture in 0..1: blurred noise at three scales (sigma 1.5, 4, 12 px)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(3, height, width)
    for sigma, amp in ((1.5, 0.5), (4.0, 0.35), (12.0, 0.25)):
        k = int(3 * sigma) * 2 + 1
        x = torch.arange(k, dtype=torch.float32) - k // 2
        ker = torch.exp(-x.square() / (2 * sigma**2))
        ker /= ker.sum()
        noise = torch.randn(3, 1, height + k - 1, width + k - 1, generator=g)
        noise = F.conv2d(F.conv2d(noise, ker.view(1, 1, 1, k)), ker.view(1, 1, k, 1))[:, 0]
        out += amp * noise / noise.std()
    return ((out - out.mean()) / (4 * out.std()) + 0.5).clamp(0, 1)


def resample(texture: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``texture [3, h, w]`` at pixel positions ``points [H, W, 2]`` (bicubic) → ``[H, W, 3]``."""
    h, w = texture.shape[1:]
    norm = points / torch.tensor([w - 1.0, h - 1.0]) * 2 - 1
    return F.grid_sample(texture[None], norm[None].float(), mode="bicubic", align_corners=True)[0].permute(1, 2, 0).clamp(0, 1)


def affine_sequence(num: int, size: int, rot: float, zoom: float, shift: tuple[float, float], margin: int = 128, seed: int = 0):
    """Frames ``[T, S, S, 3]`` of a texture under a slow similarity motion, and the exact tracks of frame 0.

    Frame 0 pixel p is at M_t p in frame t (M_t: rotation ``rot``·t degrees and scale 1 + ``zoom``·t
    about the centre, then a shift ``shift``·t); frame t(q) = texture(M_t⁻¹ q).
    """
    tex = smooth_texture(size + 2 * margin, size + 2 * margin, seed)
    grid = pixel_grid(size, size).double()
    c = (size - 1) / 2
    frames, uv = [], []
    for t in range(num):
        a, s = math.radians(rot * t), 1 + zoom * t
        m = torch.tensor([[s * math.cos(a), -s * math.sin(a)], [s * math.sin(a), s * math.cos(a)]], dtype=torch.float64)
        offset = torch.tensor([c + shift[0] * t, c + shift[1] * t], dtype=torch.float64)
        uv.append(((grid - c) @ m.T + offset).float())
        frames.append(resample(tex, ((grid - offset) @ torch.linalg.inv(m).T + c + margin)))
    return torch.stack(frames), torch.stack(uv)


def homography_sequence(num: int, width: int, height: int, margin: int = 160, seed: int = 0):
    """A smooth texture under a slow homography (rotation 0.15°/frame, zoom 0.3 %/frame, shift (2.5, 1.2)
    px/frame, a little perspective): frames ``[T, H, W, 3]`` and the exact tracks of frame 0."""
    tex = smooth_texture(height + 2 * margin, width + 2 * margin, seed)
    grid = torch.cat([pixel_grid(height, width).double().reshape(-1, 2), torch.ones(height * width, 1, dtype=torch.float64)], 1)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    centre = torch.tensor([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=torch.float64)
    frames, uv = [], []
    for t in range(num):
        a, s = math.radians(0.15 * t), 1 + 0.003 * t
        m = torch.tensor([[s * math.cos(a), -s * math.sin(a), 2.5 * t], [s * math.sin(a), s * math.cos(a), 1.2 * t], [2e-6 * t, -1.5e-6 * t, 1]], dtype=torch.float64)
        hom = torch.linalg.inv(centre) @ m @ centre
        p = grid @ hom.T
        uv.append((p[:, :2] / p[:, 2:]).float().reshape(height, width, 2))
        q = grid @ torch.linalg.inv(hom).T
        frames.append(resample(tex, (q[:, :2] / q[:, 2:]).reshape(height, width, 2) + margin))
    return torch.stack(frames), torch.stack(uv)


def square_sequence(num: int = 17, size: int = 128, side: int = 40, speed: float = 5.0, drift=(0.5, 0.3), seed: int = 0):
    """A textured square sliding right by ``speed`` px/frame over a background drifting by ``drift``.

    Returns frames ``[T, S, S, 3]``, exact ``uv [T, S, S, 2]`` and ``visible [T, S, S]`` of the frame-0
    pixels, and the square's frame-0 mask ``[S, S]``.
    """
    margin = 32
    bg = smooth_texture(size + 2 * margin, size + 2 * margin, seed)
    fg = 1 - smooth_texture(side + 8, side + 8, seed + 1)
    grid = pixel_grid(size, size)
    top = (size - side) / 2

    def in_square(p, left):
        return (p[..., 0] >= left) & (p[..., 0] < left + side) & (p[..., 1] >= top) & (p[..., 1] < top + side)

    square0 = in_square(grid, 8.0)
    frames, uv, visible = [], [], []
    for t in range(num):
        left, move = 8.0 + speed * t, torch.tensor([drift[0] * t, drift[1] * t])
        image = torch.where(in_square(grid, left)[..., None], resample(fg, grid - torch.tensor([left, top]) + 4), resample(bg, grid - move + margin))
        frames.append(image)
        p = torch.where(square0[..., None], grid + torch.tensor([speed * t, 0.0]), grid + move)
        uv.append(p)
        visible.append(fl.inside(p, size, size) & (square0 | ~in_square(p, left)))
    return torch.stack(frames), torch.stack(uv), torch.stack(visible), square0


def median_epe(uv, gt_uv, mask) -> float:
    return float((uv - gt_uv).norm(dim=-1)[mask].median())


# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene():
    return sample_scene(num_frames=24, width=128, height=80, seed=0)


@pytest.fixture(scope="module")
def scene_tracks(scene):
    return tr.track_dense(scene.frames, scene.depth, intrinsics=scene.intrinsics)


@pytest.fixture(scope="module")
def drift_sequence():
    # Slow similarity motion at 256x256: 2 px/frame of translation, 0.2°/frame rotation, 0.2 %/frame zoom.
    return affine_sequence(25, 256, rot=0.2, zoom=0.002, shift=(2.0, 1.0))


@pytest.fixture(scope="module")
def squares():
    frames, uv, visible, square0 = square_sequence()
    return frames, uv, visible, square0, tr.track_2d(frames)


# --- flow algebra --------------------------------------------------------------------------------------------


def test_import_does_not_load_cv2():
    code = "import sys, vid4d.py.flow, vid4d.py.tracking; assert 'cv2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_convention():
    image = torch.rand(5, 7, 3)
    grid = pixel_grid(5, 7)
    # Integer positions return the pixels (the centre of the top-left pixel is (0, 0)).
    assert torch.allclose(fl.sample(image, grid), image, atol=1e-6)
    assert torch.allclose(fl.sample(image, torch.tensor([[1.5, 2.0]])), (image[2, 1] + image[2, 2]) / 2, atol=1e-6)
    assert torch.allclose(fl.sample(image, torch.tensor([3.0, 1.25])), 0.75 * image[1, 3] + 0.25 * image[2, 3], atol=1e-6)
    # Outside: the nearest edge value.
    assert torch.allclose(fl.sample(image, torch.tensor([-3.0, 0.0])), image[0, 0], atol=1e-6)
    assert torch.allclose(fl.sample(image, torch.tensor([6.0, 9.0])), image[4, 6], atol=1e-6)
    # 2D fields and the channel-first variant agree.
    assert torch.allclose(fl.sample(image[..., 0], grid + 0.3), fl.sample(image, grid + 0.3)[..., 0])
    xy = (grid + 0.3).permute(2, 0, 1)
    assert torch.allclose(fl.sample_chw(image.permute(2, 0, 1), xy[0], xy[1]), fl.sample(image, grid + 0.3).permute(2, 0, 1), atol=1e-6)


def test_warp_is_backward_warp():
    image = torch.rand(6, 9, 2)
    flow = torch.zeros(6, 9, 2)
    flow[..., 0] = 1.0  # out(p) = image(p + (1, 0))
    out = fl.warp(image, flow)
    assert torch.allclose(out[:, :-1], image[:, 1:], atol=1e-6)
    assert torch.allclose(out[:, -1], image[:, -1], atol=1e-6)  # border: clamped


def _affine_flow(matrix, offset, height, width):
    grid = pixel_grid(height, width)
    return grid @ torch.tensor(matrix).T + torch.tensor(offset) - grid


def test_compose_of_affine_flows_is_the_direct_flow():
    h, w = 40, 50
    a, ta = [[1.02, 0.03], [-0.02, 0.99]], [1.5, -0.7]
    b, tb = [[0.98, -0.01], [0.04, 1.01]], [-2.25, 1.1]
    flow_ab = _affine_flow(a, ta, h, w)
    flow_bc = _affine_flow(b, tb, h, w)
    grid = pixel_grid(h, w)
    direct = (grid @ torch.tensor(a).T + torch.tensor(ta)) @ torch.tensor(b).T + torch.tensor(tb) - grid
    composed = fl.compose(flow_ab, flow_bc)
    interior = fl.inside(grid + flow_ab, w, h)
    # Bilinear interpolation of an affine field is exact.
    assert interior.float().mean() > 0.8
    assert torch.allclose(composed[interior], direct[interior], atol=1e-3)


def test_forward_backward_flags_a_synthetic_occlusion():
    h, w = 30, 40
    flow_ab = torch.zeros(h, w, 2)
    flow_ba = torch.zeros(h, w, 2)
    flow_ab[10:20, 10:20, 0] = 6.0  # a square moves 6 px right over a still background
    flow_ba[10:20, 16:26, 0] = -6.0
    ok = fl.forward_backward_consistent(flow_ab, flow_ba)
    covered = torch.zeros(h, w, dtype=torch.bool)
    covered[10:20, 20:26] = True  # background of a that the square covers in b
    assert not ok[covered].any()
    assert ok[~covered].all()
    # The test is relative to the motion (alpha) plus a constant slack (beta, px²).
    assert fl.fb_check(torch.tensor([10.0, 0.0]), torch.tensor([-10.5, 0.0])).item()
    assert not fl.fb_check(torch.tensor([10.0, 0.0]), torch.tensor([-12.0, 0.0])).item()


def test_inside():
    pts = torch.tensor([[0.0, 0.0], [9.0, 4.0], [9.01, 0.0], [-0.01, 2.0], [3.0, 4.5]])
    assert fl.inside(pts, 10, 5).tolist() == [True, True, False, False, False]


def test_dis_flow_recovers_a_translation_and_constant_images_give_zero():
    tex = smooth_texture(96 + 32, 128 + 32)
    grid = pixel_grid(96, 128)
    src = resample(tex, grid + 16)
    dst = resample(tex, grid + 16 - torch.tensor([2.5, -1.25]))  # content moves by (+2.5, -1.25)
    for preset in fl.PRESETS:
        flow = fl.dis_flow(src, dst, preset)
        assert flow.shape == (96, 128, 2) and flow.dtype == torch.float32
        err = (flow - torch.tensor([2.5, -1.25])).norm(dim=-1)[8:-8, 8:-8]
        assert float(err.median()) < (0.1 if preset == "medium" else 0.2), preset
    flat = torch.full((32, 48, 3), 0.4)
    assert torch.equal(fl.dis_flow(flat, flat), torch.zeros(32, 48, 2))
    with pytest.raises(ValueError, match="preset"):
        fl.dis_flow(src, dst, "slow")
    with pytest.raises(ValueError, match="one size"):
        fl.dis_flow(src, dst[:-1])


def test_finest_scale_follows_the_image_size():
    assert fl.finest_scale("medium", 480, 720) == 1
    assert fl.finest_scale("fast", 480, 720) == 2
    assert fl.finest_scale("medium", 256, 256) == 0
    assert fl.finest_scale("ultrafast", 80, 128) == 0


# --- accuracy: drift, occlusion, 3D ----------------------------------------------------------------------------


def test_reanchoring_stops_drift(drift_sequence):
    frames, gt = drift_sequence
    size = frames.shape[1]
    uv, vis = tr.track_2d(frames)
    naive_uv, naive_vis = tr.track_2d(frames, reanchor_every=0)
    inside = fl.inside(gt, size, size)
    assert (vis == inside).float().mean() > 0.99
    err8, err24 = median_epe(uv[8], gt[8], vis[8] & inside[8]), median_epe(uv[24], gt[24], vis[24] & inside[24])
    naive24 = median_epe(naive_uv[24], gt[24], naive_vis[24] & inside[24])
    assert err24 <= 0.5
    assert err24 < 2 * err8 + 0.1  # not growing linearly with the frame index
    # The baseline does drift (measured ~0.22 px at frame 24 vs ~0.07 re-anchored).
    assert naive24 > 2 * median_epe(naive_uv[8], gt[8], naive_vis[8] & inside[8]) - 0.01
    assert err24 < 0.6 * naive24


def test_accuracy_at_480x720_with_the_shipped_schedule():
    """The size the speed targets are set at (the consecutive flows at fast, the direct ones at medium):
    issue 16's bar, median error ≤ 0.3 px at frame 23 of a smooth 24-frame sequence (measured 0.263 px,
    0.054 at frame 8), and the sample scene's tracks and occlusions (measured 0.248 px at frame 23,
    visibility accuracy 0.942, occluded recall 0.982)."""
    frames, gt = homography_sequence(24, 720, 480)
    uv, vis = tr.track_2d(frames)
    inside = fl.inside(gt, 720, 480)
    assert (vis == inside).float().mean() > 0.998
    assert median_epe(uv[8], gt[8], vis[8] & inside[8]) <= 0.1
    assert median_epe(uv[23], gt[23], vis[23] & inside[23]) <= 0.3
    scene = sample_scene(24, 720, 480)
    truth = scene.tracks(0)
    tracks = tr.track_dense(scene.frames, scene.depth, intrinsics=scene.intrinsics)
    both = truth.visibility & tracks.visibility
    occluded = ~truth.visibility & fl.inside(truth.uv, 720, 480)
    assert median_epe(tracks.uv[23], truth.uv[23], both[23]) <= 0.3
    assert (tracks.visibility == truth.visibility).float().mean() > 0.93
    assert (~tracks.visibility[occluded]).float().mean() > 0.97


def test_occlusion_by_a_moving_square(squares):
    frames, gt_uv, gt_vis, square0, (uv, vis) = squares
    size = frames.shape[1]
    covered = ~gt_vis & fl.inside(gt_uv, size, size)
    assert covered.sum() > 1000
    assert (~vis[covered]).float().mean() >= 0.9  # covered points are reported hidden
    assert (vis == gt_vis).float().mean() >= 0.95
    # Background uncovered again by the last frame (a re-anchoring frame) is recovered, accurately.
    back = covered[:-1].any(0) & gt_vis[-1]
    assert back.sum() > 500
    assert vis[-1][back].float().mean() >= 0.8
    assert median_epe(uv[-1], gt_uv[-1], back & vis[-1]) < 0.3
    # The square itself is followed.
    assert median_epe(uv[-1], gt_uv[-1], square0 & vis[-1]) < 0.3


def test_sample_scene_tracks_2d_and_visibility(scene, scene_tracks):
    gt = scene.tracks(0)
    t = scene_tracks
    assert t.uv.shape == gt.uv.shape and t.visibility.dtype == torch.bool and t.ref_frame == 0
    assert torch.equal(t.uv[0], pixel_grid(80, 128)) and t.visibility[0].all()
    both = gt.visibility & t.visibility
    for frame in (8, 16, 23):
        assert median_epe(t.uv[frame], gt.uv[frame], both[frame]) < 0.3
    # Measured at this size: accuracy 0.944, occluded recall 0.89 (the ball passes in front of the box
    # and wall and spins, hiding its own surface).
    assert (t.visibility == gt.visibility).float().mean() >= 0.92
    occluded = ~gt.visibility & fl.inside(gt.uv, 128, 80)
    assert (~t.visibility[occluded]).float().mean() >= 0.8


def test_sample_scene_3d_with_exact_depth(scene, scene_tracks):
    gt = scene.tracks(0)
    t = scene_tracks
    assert torch.equal(t.depth[0], scene.depth[0])
    both = gt.visibility & t.visibility
    rel = (t.xyz() - gt.xyz()).norm(dim=-1) / gt.depth
    assert float(rel[both].median()) <= 0.02
    assert float(rel[both].quantile(0.9)) <= 0.05
    # Hidden tracks carry their own depth, not the occluder's: mostly within 10 % of the truth.
    hidden = ~gt.visibility & ~t.visibility & fl.inside(gt.uv, 128, 80)
    depth_err = ((t.depth - gt.depth).abs() / gt.depth)[hidden]
    assert float(depth_err.median()) < 0.05
    assert torch.isfinite(t.depth).all() and (t.depth > 0).all()


def test_reference_frame_in_the_middle(drift_sequence, scene):
    frames, gt = drift_sequence
    frames, gt = frames[:13], gt[:13]
    size = frames.shape[1]
    # Ground truth for reference frame 6: frame-0 positions re-indexed through the reference pixels.
    uv, vis = tr.track_2d(frames, ref_frame=6)
    assert torch.equal(uv[6], pixel_grid(size, size)) and vis[6].all()
    # The frame-0 pixel p is at gt[6][p] in frame 6; its track from frame 6 must reach gt[t][p].
    pick = fl.inside(gt[6], size, size)
    start = gt[6][pick]
    for frame in (0, 12):
        found = fl.sample(uv[frame], start)
        seen = fl.sample(vis[frame].float(), start) > 0.99
        assert float((found - gt[frame][pick]).norm(dim=-1)[seen & fl.inside(gt[frame][pick], size, size)].median()) < 0.2
    # Sample scene, reference 12 of 24: both directions against the exact tracks.
    t = tr.track_dense(scene.frames, scene.depth, ref_frame=12, intrinsics=scene.intrinsics)
    g = scene.tracks(12)
    both = t.visibility & g.visibility
    for frame in (0, 5, 18, 23):
        assert median_epe(t.uv[frame], g.uv[frame], both[frame]) < 0.3, frame
    assert (t.visibility == g.visibility).float().mean() >= 0.9


# --- depth coupling --------------------------------------------------------------------------------------------


def test_surface_depth_does_not_blend_across_edges():
    depth = torch.full((6, 8), 2.0)
    depth[:, 4:] = 5.0
    pts = torch.tensor([[3.5, 2.0], [3.5, 2.0], [1.5, 2.5], [6.25, 1.0]])
    pred = torch.tensor([2.1, 4.8, 2.0, 5.0])
    d, ok = tr.sample_surface_depth(depth, pts, pred)
    assert ok.all()
    assert torch.allclose(d, torch.tensor([2.0, 5.0, 2.0, 5.0]))
    # A smooth ramp is plain bilinear interpolation; unknown pixels (≤ 0 or not valid) are skipped.
    ramp = torch.arange(8.0).expand(6, 8) + 20.0  # 5 % per pixel
    d, _ = tr.sample_surface_depth(ramp, torch.tensor([[2.25, 3.0]]), torch.tensor([30.0]))
    assert torch.allclose(d, torch.tensor([22.25]))
    valid = torch.ones(6, 8, dtype=torch.bool)
    valid[:, :4] = False
    d, ok = tr.sample_surface_depth(depth, torch.tensor([[1.0, 1.0], [3.5, 1.0]]), torch.tensor([2.0, 2.0]), valid)
    assert ok.tolist() == [False, True] and d.tolist() == [2.0, 5.0]


def test_without_depth_tracks_lie_on_a_plane_at_one(squares):
    frames = squares[0][:5]
    t = tr.track_dense(frames, method="flow_chain")
    assert torch.equal(t.depth, torch.ones(5, 128, 128))
    assert torch.allclose(t.intrinsics, intrinsics_from_fov(60.0, 128, 128))
    uv, vis = tr.track_2d(frames)
    assert torch.equal(t.uv, uv) and torch.equal(t.visibility, vis)
    k = torch.tensor([[100.0, 0, 60], [0, 100, 60], [0, 0, 1]])
    assert torch.equal(tr.track_dense(frames, intrinsics=k).intrinsics, k)


def test_depth_video_input_and_smoothing(scene, scene_tracks):
    frames, depth = scene.frames[:9], scene.depth[:9]
    t = tr.track_dense(frames, DepthVideo(depth, kind="metric"), intrinsics=scene.intrinsics)
    assert torch.allclose(t.depth, scene_tracks.depth[:9], rtol=1e-5)
    # Temporal smoothing of noisy depth: per-track jitter over time goes down, the level stays.
    g = torch.Generator().manual_seed(0)
    noisy = depth * (1 + 0.05 * torch.randn(depth.shape, generator=g))
    raw = tr.track_dense(frames, noisy, intrinsics=scene.intrinsics)
    smooth = tr.track_dense(frames, noisy, intrinsics=scene.intrinsics, depth_smoothing=5)
    seen = raw.visibility.all(0)
    jitter_raw = (raw.depth[1:] - raw.depth[:-1]).abs()[:, seen].mean()
    jitter_smooth = (smooth.depth[1:] - smooth.depth[:-1]).abs()[:, seen].mean()
    assert jitter_smooth < 0.6 * jitter_raw
    assert abs(float(smooth.depth[:, seen].mean() / raw.depth[:, seen].mean()) - 1) < 0.01
    assert torch.equal(smooth.visibility, raw.visibility)


# --- dot_raft with stand-in refiners -------------------------------------------------------------------------


class FakeRefiner:
    """Records its calls; returns the initial flow plus ``shift`` and a constant visibility."""

    def __init__(self, shift=(0.0, 0.0), visibility=None):
        self.shift, self.visibility, self.calls = torch.tensor(shift).view(2, 1, 1), visibility, []

    def __call__(self, src, dst, flow_init, vis_init):
        self.calls.append((src, dst, flow_init.clone(), vis_init.clone()))
        vis = vis_init if self.visibility is None else torch.full_like(vis_init, self.visibility)
        return flow_init + self.shift, vis


def test_dot_raft_identity_refiner_reproduces_flow_chain(squares):
    frames = squares[0][:6]
    base = tr.track_dense(frames, method="flow_chain")
    fake = FakeRefiner()
    refined = tr.track_dense(frames, method="dot_raft", refiner=fake)
    assert torch.equal(refined.uv, base.uv) and torch.equal(refined.visibility, base.visibility)
    assert len(fake.calls) == 5  # every frame but the reference
    src, dst, flow, vis = fake.calls[0]
    assert src.shape == (3, 128, 128) and torch.equal(src, frames[0].permute(2, 0, 1))
    assert torch.equal(dst, frames[1].permute(2, 0, 1))
    assert flow.shape == (2, 128, 128) and vis.shape == (128, 128) and vis.dtype == torch.float32
    # "auto" uses a given refiner; "flow_chain" ignores it.
    assert torch.equal(tr.track_dense(frames, refiner=FakeRefiner((1.0, 0.0))).uv[1], base.uv[1] + torch.tensor([1.0, 0.0]))
    assert torch.equal(tr.track_dense(frames, method="flow_chain", refiner=FakeRefiner((1.0, 0.0))).uv, base.uv)


def test_dot_raft_applies_the_refiner_correction_and_threshold(squares):
    frames = squares[0][:6]
    base_uv, base_vis = tr.track_2d(frames, ref_frame=2)
    out = tr.track_dense(frames, ref_frame=2, method="dot_raft", refiner=FakeRefiner((0.25, -0.5), visibility=0.85))
    shifted = base_uv + torch.tensor([0.25, -0.5])
    others = [0, 1, 3, 4, 5]
    assert torch.allclose(out.uv[others], shifted[others], atol=1e-5)
    assert torch.equal(out.uv[2], base_uv[2])
    assert torch.equal(out.visibility[others], fl.inside(shifted[others], 128, 128))  # 0.85 >= 0.8: visible where inside
    hidden = tr.track_dense(frames, method="dot_raft", refiner=FakeRefiner(visibility=0.79))
    assert not hidden.visibility[1:].any() and hidden.visibility[0].all()


def test_dot_raft_needs_a_refiner_and_checks_its_output(squares):
    frames = squares[0][:3]
    with pytest.raises(ValueError, match="weights"):
        tr.track_dense(frames, method="dot_raft")
    with pytest.raises(ValueError, match="refiner flow"):
        tr.track_dense(frames, method="dot_raft", refiner=lambda s, d, f, v: (f[:, :-1], v))
    with pytest.raises(ValueError, match="refiner visibility"):
        tr.track_dense(frames, method="dot_raft", refiner=lambda s, d, f, v: (f, v * 2))
    with pytest.raises(ValueError, match="method"):
        tr.track_dense(frames, method="raft")


# --- progress, bad input, degenerate input ----------------------------------------------------------------------


def test_progress_counts_frames_and_may_cancel(squares):
    frames = squares[0][:5]
    seen = []
    tr.track_2d(frames, ref_frame=2, progress=seen.append)
    assert seen == [1, 2, 3, 4, 5]

    class Cancelled(Exception):
        pass

    def cancel(done):
        if done == 3:
            raise Cancelled

    import cv2

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    with pytest.raises(Cancelled):
        tr.track_dense(frames, progress=cancel)
    assert torch.get_num_threads() == threads and cv2.getNumThreads() == cv_threads


def test_bad_input_is_rejected_with_clear_messages(scene):
    frames = scene.frames[:4]
    with pytest.raises(ValueError, match="at least 2 frames"):
        tr.track_dense(frames[:1])
    with pytest.raises(ValueError, match="same size"):
        tr.track_2d([frames[0], frames[1][:, :-1]])
    uv, _ = tr.track_2d([frames[0], frames[1]])  # a list of equal frames is fine
    assert uv.shape == (2, 80, 128, 2)
    for ref in (4, -1, True, 1.0):
        with pytest.raises(ValueError, match="ref_frame"):
            tr.track_dense(frames, ref_frame=ref)
    with pytest.raises(ValueError, match="depth"):
        tr.track_dense(frames, scene.depth[:3])
    with pytest.raises(ValueError, match="depth"):
        tr.track_dense(frames, DepthVideo(scene.depth[:4, :, :-2]))
    bad = frames.clone()
    bad[1, 3, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tr.track_2d(bad)
    bad_depth = scene.depth[:4].clone()
    bad_depth[2, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN"):
        tr.track_dense(frames, bad_depth)
    with pytest.raises(ValueError, match="preset"):
        tr.track_2d(frames, preset="slow")
    with pytest.raises(ValueError, match="reanchor_every"):
        tr.track_2d(frames, reanchor_every=-1)
    with pytest.raises(ValueError, match="frames"):
        tr.track_2d(frames[..., :2])


def test_constant_frames_give_still_fully_visible_tracks():
    frames = torch.full((6, 24, 32, 3), 0.5)
    t = tr.track_dense(frames, torch.full((6, 24, 32), 3.0))
    assert torch.equal(t.uv, pixel_grid(24, 32).expand(6, 24, 32, 2))
    assert t.visibility.all()
    assert torch.equal(t.depth, torch.full((6, 24, 32), 3.0))
    assert torch.isfinite(t.xyz()).all()
