"""The procedural sample scene: frames, exact depth, camera, dense 3D tracks with occlusion, flow.

Everything downstream is tested against this scene, so these tests check its ground truth against
independent computations: a per-pixel pure-Python ray caster, the analytic surfaces, bilinear
re-sampling of the rendered depth/colour at the tracked positions, and rigidity of the tracked points.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from vid4d.py import scene as sc
from vid4d.py.camera import pixel_grid, unproject_pixels
from vid4d.py.depth import DepthVideo
from vid4d.py.tracking import Tracks3D

T, W, H = 10, 64, 40


@pytest.fixture(scope="module")
def small():
    return sc.sample_scene(num_frames=T, width=W, height=H, seed=0)


@pytest.fixture(scope="module")
def tracks0(small):
    return small.tracks(0)


@pytest.fixture(scope="module")
def medium():
    # Photometric checks want a few pixels per texture period, so a slightly larger render.
    return sc.sample_scene(num_frames=8, width=128, height=80, seed=1)


# --- helpers -----------------------------------------------------------------------------------------


def bilinear(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Sample ``image [H, W, C]`` at pixel positions ``uv [N, 2]`` (pixel centres at integers) → ``[N, C]``."""
    h, w = image.shape[:2]
    grid = torch.stack([2 * uv[:, 0] / (w - 1) - 1, 2 * uv[:, 1] / (h - 1) - 1], dim=-1)
    out = F.grid_sample(image.permute(2, 0, 1)[None].double(), grid[None, None].double(), mode="bilinear", align_corners=True)
    return out[0, :, 0].T


def surface_labels(scene, t: int) -> torch.Tensor:
    """``[H, W]`` which analytic surface each pixel of frame t shows, from its unprojected depth.

    0 wall, 1 floor, 2..7 the six box faces, 8 the ball: creases between them are where depth and colour
    stop being smooth, so re-sampling tests skip pixels whose neighbours straddle two labels.
    """
    h, w = scene.height, scene.width
    p = world_points(scene, t, pixel_grid(h, w).reshape(-1, 2), scene.depth[t].reshape(-1))
    lo, hi = torch.tensor(sc._BOX_MIN, dtype=torch.float64), torch.tensor(sc._BOX_MAX, dtype=torch.float64)
    dist = torch.stack(
        [(p[:, 2] - sc._WALL_Z).abs(), (p[:, 1] - sc._FLOOR_Y).abs()]
        + [torch.where(box_sdf(p).abs() < 1e-3, d, torch.full_like(d, math.inf)) for d in torch.cat([(p - lo).abs(), (p - hi).abs()], -1).T],
        dim=-1,
    )
    labels = dist.argmin(-1)
    labels[scene.object_mask[t].reshape(-1)] = 8
    return labels.reshape(h, w)


def smooth_neighbourhood(labels: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """``[N]`` True where the 2x2 pixels around ``uv`` all show the same smooth surface (no edge, no crease)."""
    h, w = labels.shape
    x0 = uv[:, 0].floor().long().clamp(0, w - 2)
    y0 = uv[:, 1].floor().long().clamp(0, h - 2)
    m = torch.stack([labels[y0, x0], labels[y0, x0 + 1], labels[y0 + 1, x0], labels[y0 + 1, x0 + 1]], dim=-1)
    return (m == m[:, :1]).all(-1)


def world_points(scene, t: int, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """World points ``[N, 3]`` (float64) of pixels ``uv [N, 2]`` at ``depth [N]`` seen by camera t."""
    cam = unproject_pixels(uv.double(), depth.double(), scene.intrinsics.double())
    c2w = scene.camera.camera_to_world()[t].double()
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def ball_centre(t: int, num_frames: int) -> torch.Tensor:
    """The ball centre at frame t, recomputed from the documented layout (not from the module's pose code)."""
    s = t / (num_frames - 1)
    start, end = torch.tensor(sc._BALL_START, dtype=torch.float64), torch.tensor(sc._BALL_END, dtype=torch.float64)
    c = start + s * (end - start)
    c[1] -= sc._BALL_BOB * math.sin(math.pi * s)
    return c


def spin(t: int, num_frames: int) -> torch.Tensor:
    """``[3, 3]`` the ball's rotation at frame t: right-handed about the vertical (y) axis, from the layout."""
    a = sc._BALL_SPIN * t / (num_frames - 1)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def lambert(normal: torch.Tensor) -> torch.Tensor:
    """``[N]`` the documented shading factor 0.7 + 0.3 max(0, n·l) for world normals ``[N, 3]``."""
    light = torch.tensor(sc._LIGHT, dtype=torch.float64)
    return 0.7 + 0.3 * (normal @ (light / light.norm())).clamp_min(0)


def box_sdf(p: torch.Tensor) -> torch.Tensor:
    """Signed distance ``[N]`` to the static box."""
    lo, hi = torch.tensor(sc._BOX_MIN, dtype=torch.float64), torch.tensor(sc._BOX_MAX, dtype=torch.float64)
    q = (p - (lo + hi) / 2).abs() - (hi - lo) / 2
    return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)


def reference_cast(origin, direction, centre):
    """Pure-Python nearest hit of one ray: (ray parameter, primitive name)."""
    best = (math.inf, None)

    def take(lam, name):
        nonlocal best
        if 1e-9 < lam < best[0]:
            best = (lam, name)

    if direction[2] != 0:
        take((sc._WALL_Z - origin[2]) / direction[2], "wall")
    if direction[1] != 0:
        take((sc._FLOOR_Y - origin[1]) / direction[1], "floor")
    near, far = -math.inf, math.inf
    for a in range(3):
        if direction[a] == 0:
            if not sc._BOX_MIN[a] <= origin[a] <= sc._BOX_MAX[a]:
                near, far = math.inf, -math.inf
            continue
        t1 = (sc._BOX_MIN[a] - origin[a]) / direction[a]
        t2 = (sc._BOX_MAX[a] - origin[a]) / direction[a]
        near, far = max(near, min(t1, t2)), min(far, max(t1, t2))
    if near <= far:
        take(near, "box")
    oc = [origin[i] - centre[i] for i in range(3)]
    a = sum(d * d for d in direction)
    b = sum(direction[i] * oc[i] for i in range(3))
    c = sum(v * v for v in oc) - sc._BALL_RADIUS**2
    disc = b * b - a * c
    if disc >= 0:
        take((-b - math.sqrt(disc)) / a, "ball")
    return best


# --- construction ------------------------------------------------------------------------------------


def test_shapes_dtypes_ranges(small):
    assert small.frames.shape == (T, H, W, 3) and small.frames.dtype == torch.float32
    assert small.depth.shape == (T, H, W) and small.depth.dtype == torch.float32
    assert small.object_mask.shape == (T, H, W) and small.object_mask.dtype == torch.bool
    assert (small.num_frames, small.width, small.height) == (T, W, H)
    assert small.camera.num_frames == T and (small.camera.width, small.camera.height) == (W, H)
    assert 0.0 <= float(small.frames.min()) and float(small.frames.max()) <= 1.0
    assert float(small.frames.std()) > 0.1  # textured, not flat
    assert bool((small.depth > 0).all()) and float(small.depth.max()) < 10
    assert small.intrinsics.shape == (3, 3)
    assert torch.equal(small.camera.intrinsics, small.intrinsics.expand(T, 3, 3))
    # 60 degrees horizontal field of view, principal point at the centre.
    fx = float(small.intrinsics[0, 0])
    assert math.isclose(2 * math.degrees(math.atan((W / 2) / fx)), 60.0, rel_tol=1e-5)
    assert small.fps == 12.0 and small.seed == 0
    assert bool(small.object_mask.any(dim=(1, 2)).all())  # the ball is in every frame


def test_every_surface_is_textured(small):
    # No large flat regions: the local colour variation is non-zero over almost every 8x8 block.
    blocks = small.frames[0].permute(2, 0, 1).unfold(1, 8, 8).unfold(2, 8, 8)  # [3, 5, 8, 8, 8]
    spread = blocks.reshape(3, 5, 8, 64).std(-1).amax(0)
    assert float((spread > 0.01).float().mean()) > 0.95


def test_seed_determinism():
    a = sc.sample_scene(num_frames=3, width=32, height=24, seed=7)
    b = sc.sample_scene(num_frames=3, width=32, height=24, seed=7)
    c = sc.sample_scene(num_frames=3, width=32, height=24, seed=8)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.depth, b.depth)
    assert float((a.frames - c.frames).abs().mean()) > 0.01
    assert torch.equal(a.depth, c.depth)  # the seed changes textures only, not geometry


def test_camera_starts_at_identity_and_moves(small):
    assert torch.equal(small.camera.world_to_camera[0], torch.eye(4))
    centres = small.camera.centers()
    assert float((centres[-1] - centres[0]).norm()) > 0.5
    assert float((centres[1:] - centres[:-1]).norm(dim=-1).min()) > 0.01  # moves every frame
    rot = small.camera.world_to_camera[:, :3, :3]
    assert float((rot[-1] - torch.eye(3)).abs().max()) > 0.02  # and rotates


def test_object_moves_across_the_view(small):
    xs = pixel_grid(H, W)[..., 0]
    m = small.object_mask.float()
    centroid = (m * xs).sum((1, 2)) / m.sum((1, 2))
    assert float(centroid[-1] - centroid[0]) > W / 4  # left to right
    assert bool((centroid[1:] > centroid[:-1]).all())


def test_depth_video(small):
    dv = small.depth_video()
    assert isinstance(dv, DepthVideo) and dv.kind == "metric"
    assert torch.equal(dv.depth, small.depth)


# --- depth ---------------------------------------------------------------------------------------------


def test_depth_lies_on_the_analytic_surfaces(small):
    grid = pixel_grid(H, W).reshape(-1, 2)
    for t in range(T):
        d = small.depth[t].reshape(-1)
        p = world_points(small, t, grid, d)
        obj = small.object_mask[t].reshape(-1)
        tol = 1e-4 * d.double()
        on_static = torch.minimum(torch.minimum((p[:, 2] - sc._WALL_Z).abs(), (p[:, 1] - sc._FLOOR_Y).abs()), box_sdf(p).abs())
        assert bool((on_static[~obj] <= tol[~obj]).all()), t
        on_ball = ((p[obj] - ball_centre(t, T)).norm(dim=-1) - sc._BALL_RADIUS).abs()
        assert bool((on_ball <= tol[obj]).all()), t


def test_depth_and_mask_match_a_python_ray_caster(small):
    rng = random.Random(0)
    c2w = small.camera.camera_to_world().double()
    k = small.intrinsics.double()
    checked = {"wall": 0, "floor": 0, "box": 0, "ball": 0}
    for t in (0, T // 2, T - 1):
        origin = c2w[t, :3, 3].tolist()
        pixels = [(rng.randrange(W), rng.randrange(H)) for _ in range(150)]
        pixels += [(int(x), int(y)) for y, x in small.object_mask[t].nonzero()[::7].tolist()]
        for x, y in pixels:
            cam = [(x - float(k[0, 2])) / float(k[0, 0]), (y - float(k[1, 2])) / float(k[1, 1]), 1.0]
            direction = [sum(float(c2w[t, i, j]) * cam[j] for j in range(3)) for i in range(3)]
            lam, name = reference_cast(origin, direction, ball_centre(t, T).tolist())
            assert math.isclose(float(small.depth[t, y, x]), lam, rel_tol=2e-6), (t, x, y, name)
            assert bool(small.object_mask[t, y, x]) == (name == "ball"), (t, x, y, name)
            checked[name] += 1
    assert all(n > 0 for n in checked.values()), checked


# --- tracks ------------------------------------------------------------------------------------------------


def test_tracks_at_the_reference_frame(small, tracks0):
    assert isinstance(tracks0, Tracks3D)
    assert tracks0.uv.shape == (T, H, W, 2) and tracks0.depth.shape == (T, H, W) and tracks0.visibility.dtype == torch.bool
    assert tracks0.ref_frame == 0 and torch.equal(tracks0.intrinsics, small.intrinsics)
    assert torch.equal(tracks0.uv[0], pixel_grid(H, W))
    assert torch.equal(tracks0.depth[0], small.depth[0])
    assert bool(tracks0.visibility[0].all())
    assert not bool(tracks0.visibility[1:].all())  # something gets hidden or leaves


def check_rigid_motion(scene, tracks) -> None:
    """Static points keep their world position; ball points ride the ball (translation + documented spin)."""
    n, ref = scene.num_frames, tracks.ref_frame
    grid = pixel_grid(scene.height, scene.width).reshape(-1, 2)
    ref_world = world_points(scene, ref, grid, scene.depth[ref].reshape(-1))
    obj = scene.object_mask[ref].reshape(-1)
    assert int(obj.sum()) > 10
    # Offsets from the ball centre, rotated back into the ball's own frame (spin(ref)^T).
    ref_local = (ref_world[obj] - ball_centre(ref, n)) @ spin(ref, n)
    for t in range(n):
        front = tracks.depth[t].reshape(-1) > 0
        p = world_points(scene, t, tracks.uv[t].reshape(-1, 2), tracks.depth[t].reshape(-1))
        err = (p - ref_world).norm(dim=-1)
        assert float(err[~obj & front].max()) < 1e-4 * 8, t  # ~1e-4 relative at depths up to 8
        offset = p[obj] - ball_centre(t, n)
        assert float((offset.norm(dim=-1) - sc._BALL_RADIUS).abs().max()) < 1e-4 * 8, t
        assert float((offset - ref_local @ spin(t, n).T).abs().max()) < 1e-4 * 8, t


def test_tracked_points_move_rigidly(small, tracks0):
    check_rigid_motion(small, tracks0)


def depth_errors(scene, tracks, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative error between the tracks' depth at frame t and the rendered depth map re-sampled at ``uv[t]``.

    Only visible tracks whose 2x2 neighbourhood shows a single surface. Re-sampled in inverse depth, which
    is exactly affine in (u, v) on a plane, so on the planar static surfaces the error is float noise only;
    on the ball it is interpolation error of a curved surface. Returns (static errors, ball errors).
    """
    vis = tracks.visibility[t].reshape(-1)
    uv = tracks.uv[t].reshape(-1, 2)[vis]
    z = tracks.depth[t].reshape(-1)[vis].double()
    labels = surface_labels(scene, t)
    keep = smooth_neighbourhood(labels, uv)
    assert int(keep.sum()) > 0.4 * scene.height * scene.width
    uv, z = uv[keep], z[keep]
    sampled = 1.0 / bilinear(1.0 / scene.depth[t, :, :, None].double(), uv)[:, 0]
    err = ((sampled - z) / z).abs()
    on_ball = labels[uv[:, 1].round().long(), uv[:, 0].round().long()] == 8
    return err[~on_ball], err[on_ball]


def test_visible_tracks_agree_with_the_rendered_depth(small, tracks0):
    static, ball = zip(*(depth_errors(small, tracks0, t) for t in range(1, T)))
    static, ball = torch.cat(static), torch.cat(ball)
    assert static.numel() > 1000 and ball.numel() > 100
    assert float(static.max()) < 1e-5
    # The ball is ~10 px across at this size, so bilinear re-sampling of its curved depth is only close.
    assert float(ball.median()) < 3e-3 and float(ball.max()) < 2e-2


def test_visible_static_tracks_keep_their_colour(medium):
    tracks = medium.tracks(0)
    t_count, h, w = medium.num_frames, medium.height, medium.width
    static = ~medium.object_mask[0].reshape(-1)
    ref_colour = medium.frames[0].reshape(-1, 3)
    errors = []
    for t in range(1, t_count):
        vis = tracks.visibility[t].reshape(-1) & static
        uv = tracks.uv[t].reshape(-1, 2)[vis]
        keep = smooth_neighbourhood(surface_labels(medium, t), uv)
        sampled = bilinear(medium.frames[t], uv[keep])
        errors.append((sampled - ref_colour[vis][keep].double()).abs().mean(-1))
    err = torch.cat(errors)
    assert err.numel() > 0.4 * (t_count - 1) * h * w
    assert float(err.mean()) < 0.012  # ~0.006 in practice; a one-pixel offset gives ~0.03


def test_ball_texture_moves_with_the_ball(medium):
    # The ball's texture is fixed in its own frame: once the (world-light) shading is divided out, a tracked
    # point keeps its colour while the ball travels and spins.
    tracks = medium.tracks(0)
    obj = medium.object_mask[0].reshape(-1)
    grid = pixel_grid(medium.height, medium.width).reshape(-1, 2)
    p0 = world_points(medium, 0, grid[obj], medium.depth[0].reshape(-1)[obj])
    albedo0 = medium.frames[0].reshape(-1, 3)[obj].double() / lambert((p0 - ball_centre(0, 8)) / sc._BALL_RADIUS)[:, None]
    errors, moved = [], []
    for t in range(1, 4):
        vis = tracks.visibility[t].reshape(-1)[obj]
        uv = tracks.uv[t].reshape(-1, 2)[obj][vis]
        keep = smooth_neighbourhood(surface_labels(medium, t), uv)
        p = world_points(medium, t, uv[keep], tracks.depth[t].reshape(-1)[obj][vis][keep])
        albedo = bilinear(medium.frames[t], uv[keep]) / lambert((p - ball_centre(t, 8)) / sc._BALL_RADIUS)[:, None]
        errors.append((albedo - albedo0[vis][keep]).abs().mean(-1))
        # Against the colour that was at the same image position in frame 0, the error is much larger.
        moved.append((albedo - bilinear(medium.frames[0], uv[keep]) / lambert((p - ball_centre(t, 8)) / sc._BALL_RADIUS)[:, None]).abs().mean(-1))
    err, baseline = torch.cat(errors), torch.cat(moved)
    assert err.numel() > 300
    assert float(err.mean()) < 0.03 and float(baseline.mean()) > 4 * float(err.mean())


def test_occlusion_and_disocclusion_of_the_box(small, tracks0):
    grid = pixel_grid(H, W).reshape(-1, 2)
    p = world_points(small, 0, grid, small.depth[0].reshape(-1))
    on_box = (box_sdf(p).abs() < 1e-3) & ~small.object_mask[0].reshape(-1)
    assert int(on_box.sum()) > 20
    vis = tracks0.visibility.reshape(T, -1)[:, on_box]  # [T, n]
    uv = tracks0.uv.reshape(T, -1, 2)[:, on_box]
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= W - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= H - 1)
    hidden = inside & ~vis
    # Hidden while inside the image means something is in front: the ball, per the rendered mask there.
    ts, ns = hidden.nonzero(as_tuple=True)
    px = uv[ts, ns].round().long()
    assert bool(small.object_mask[ts, px[:, 1], px[:, 0]].float().mean() > 0.9)
    # Some box points are hidden for a while and then seen again.
    frames = torch.arange(T)[:, None]
    first_hidden = torch.where(hidden, frames, T).amin(0)
    seen_again = (vis & (frames > first_hidden)).any(0)
    assert int(hidden.any(0).sum()) > 10
    assert int(seen_again.sum()) > 5


def test_tracks_leaving_the_image_are_invisible(tracks0):
    uv = tracks0.uv
    outside = (uv[..., 0] < 0) | (uv[..., 0] > W - 1) | (uv[..., 1] < 0) | (uv[..., 1] > H - 1)
    assert int(outside.sum()) > 50
    assert not bool(tracks0.visibility[outside].any())


def test_ball_points_on_the_far_side_are_invisible(small, tracks0):
    centres = small.camera.centers().double()
    obj = small.object_mask[0].reshape(-1)
    back_count = 0
    for t in range(1, T):
        p = world_points(small, t, tracks0.uv[t].reshape(-1, 2)[obj], tracks0.depth[t].reshape(-1)[obj])
        normal = (p - ball_centre(t, T)) / sc._BALL_RADIUS
        view = p - centres[t]
        facing = (normal * view).sum(-1) / view.norm(dim=-1)  # > 0: faces away from camera t
        vis = tracks0.visibility[t].reshape(-1)[obj]
        uv = tracks0.uv[t].reshape(-1, 2)[obj]
        inside = (uv[:, 0] >= 0) & (uv[:, 0] <= W - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= H - 1)
        back = facing > 0.02
        assert not bool(vis[back].any()), t
        back_count += int(back.sum())
        # Nothing is in front of the ball, so its camera-facing side is visible wherever it is in the image.
        assert bool(vis[(facing < -0.05) & inside].all()), t
    assert back_count > 20


def test_reference_frame_in_the_middle(small):
    ref = T // 2
    tracks = small.tracks(ref)
    assert tracks.ref_frame == ref
    assert torch.equal(tracks.uv[ref], pixel_grid(H, W))
    assert torch.equal(tracks.depth[ref], small.depth[ref])
    assert bool(tracks.visibility[ref].all())
    check_rigid_motion(small, tracks)
    # Backwards in time the visible tracks still land on the rendered depth.
    static, _ = depth_errors(small, tracks, 0)
    assert float(static.max()) < 1e-5


def test_flow_matches_tracks(small, tracks0):
    grid = pixel_grid(H, W)
    for dst in (1, T - 1):
        flow, valid = small.flow(0, dst)
        assert flow.shape == (H, W, 2) and valid.shape == (H, W) and valid.dtype == torch.bool
        assert torch.allclose(flow, tracks0.uv[dst] - grid, atol=1e-4)
        assert torch.equal(valid, tracks0.visibility[dst])
    src, dst = T - 1, 2
    flow, valid = small.flow(src, dst)
    back = small.tracks(src)
    assert torch.allclose(flow, back.uv[dst] - grid, atol=1e-4) and torch.equal(valid, back.visibility[dst])
    flow, valid = small.flow(3, 3)
    assert bool((flow == 0).all()) and bool(valid.all())


# --- arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_frames": 1},
        {"num_frames": 1001},
        {"num_frames": 2.5},
        {"num_frames": "8"},
        {"num_frames": True},
        {"width": 15},
        {"width": 4097},
        {"height": 8},
        {"fps": 0},
        {"fps": -3.0},
        {"fps": float("nan")},
        {"fps": float("inf")},
        {"fps": "fast"},
        {"seed": -1},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        sc.sample_scene(**kwargs)


def test_bad_frame_indices(small):
    for bad in (-1, T, 1.0, None):
        with pytest.raises(ValueError):
            small.tracks(bad)
        with pytest.raises(ValueError):
            small.flow(0, bad)
        with pytest.raises(ValueError):
            small.flow(bad, 0)
