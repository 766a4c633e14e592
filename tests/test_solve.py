"""Camera solve against ground truth: the sample scene's exact camera, synthetic scenes with known
cameras and independently moving objects, with and without depth, and a camera that only turns."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vid4d.py.camera import CameraPath, intrinsics_from_fov, pixel_grid
from vid4d.py.scene import sample_scene
from vid4d.py.solve import CameraSolve, depth_from_tracks, rasterise_depth, solve_camera
from vid4d.py.tracking import Tracks3D, track_dense


def rotation_error_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle of a·bᵀ per frame, linear near zero (asin of the Frobenius distance, not acos of the trace)."""
    r = a.double() @ b.double().transpose(-1, -2)
    n = (r - torch.eye(3, dtype=torch.float64)).flatten(-2).norm(dim=-1)
    return torch.rad2deg(2 * torch.asin((n / (2 * math.sqrt(2))).clamp(max=1)))


def pose_errors(solve: CameraSolve, truth: CameraPath, fit_scale: bool) -> dict:
    """Max rotation error (deg), max centre error relative to the true path length (after a least-squares
    scale when the solve is scale-free), relative focal error."""
    rot = rotation_error_deg(solve.path.world_to_camera[:, :3, :3], truth.world_to_camera[:, :3, :3]).max()
    cg, ce = truth.centers().double(), solve.path.centers().double()
    length = (cg[1:] - cg[:-1]).norm(dim=-1).sum()
    s = (ce * cg).sum() / (ce * ce).sum().clamp_min(1e-12) if fit_scale else 1.0
    f_true = float(truth.intrinsics[0, 0, 0])
    return {"rot": float(rot), "trans": float((ce * s - cg).norm(dim=-1).max() / length), "focal": abs(solve.focal - f_true) / f_true, "scale": float(s) if fit_scale else 1.0}


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def without_depth(tracks: Tracks3D) -> Tracks3D:
    return dataclasses.replace(tracks, depth=torch.ones_like(tracks.depth), depth_known=False)


def with_intrinsics(tracks: Tracks3D, fov: float) -> Tracks3D:
    return dataclasses.replace(tracks, intrinsics=intrinsics_from_fov(fov, tracks.width, tracks.height))


@pytest.fixture(scope="module")
def scene():
    return sample_scene(12, 160, 96)


# --- the sample scene, exact tracks -----------------------------------------------------------------


def test_exact_depth_recovers_camera_focal_and_ball(scene):
    tracks = with_intrinsics(scene.tracks(0), 45.0)  # a wrong prior: the focal is estimated
    solve = solve_camera(tracks)
    e = pose_errors(solve, scene.camera, fit_scale=False)
    assert solve.mode == "depth" and solve.focal_estimated and solve.depth is None
    assert e["rot"] < 0.05 and e["trans"] < 0.005 and e["focal"] < 0.005, e
    assert torch.allclose(solve.path.world_to_camera[0], torch.eye(4), atol=1e-6)
    assert iou(~solve.static, scene.object_mask[0]) > 0.97
    assert solve.reprojection_px < 0.05 and solve.inlier_ratio > 0.9
    assert solve.path.width == scene.width and solve.path.num_frames == scene.num_frames


def test_no_depth_structure_from_motion_up_to_scale(scene):
    tracks = with_intrinsics(without_depth(scene.tracks(0)), 75.0)
    solve = solve_camera(tracks)
    e = pose_errors(solve, scene.camera, fit_scale=True)
    assert solve.mode == "motion" and solve.scale.startswith("free")
    assert e["rot"] < 0.1 and e["trans"] < 0.01 and e["focal"] < 0.01, e
    assert iou(~solve.static, scene.object_mask[0]) > 0.95
    # Depth from motion: scale-free (median static depth at the reference = 1), unknown on the ball.
    depth = solve.depth
    assert depth.kind == "relative" and depth.valid is not None and depth.depth.shape == scene.depth.shape
    ref_static = depth.valid[0] & solve.static
    assert float(depth.depth[0][ref_static].median()) == pytest.approx(1.0, rel=0.02)
    on_ball = (depth.valid & scene.object_mask).float().sum() / scene.object_mask.float().sum()
    assert on_ball < 0.06  # the 1-pixel ring where the depth raster's 2x2 splats touch the ball
    known = depth.valid & ~scene.object_mask
    assert known.float().mean() > 0.7
    d, g = depth.depth[known].double(), scene.depth[known].double()
    s = (d * g).sum() / (d * d).sum()
    rel = (d * s - g).abs() / g
    assert rel.median() < 0.005 and rel.quantile(0.9) < 0.03
    # The same scale as the poses: depth × s matches metres when the path does.
    assert float(s) == pytest.approx(e["scale"], rel=0.02)


# --- the flow_chain tracker -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracked(scene):
    return scene, track_dense(scene.frames, scene.depth_video(), intrinsics=scene.intrinsics), track_dense(scene.frames, None, intrinsics=scene.intrinsics)


def test_flow_chain_tracks_with_depth(tracked):
    scene, with_d, _ = tracked
    assert with_d.depth_known
    solve = solve_camera(with_d, fov=60.0)
    e = pose_errors(solve, scene.camera, fit_scale=False)
    assert solve.mode == "depth"
    assert e["rot"] < 0.4 and e["trans"] < 0.05, e
    assert iou(~solve.static, scene.object_mask[0]) > 0.85


def test_flow_chain_tracks_without_depth(tracked):
    scene, _, no_d = tracked
    assert not no_d.depth_known  # DenseTrack3D without depth marks its plane z = 1
    solve = solve_camera(no_d)
    e = pose_errors(solve, scene.camera, fit_scale=True)
    assert solve.mode == "motion"
    assert e["rot"] < 0.4 and e["trans"] < 0.05 and e["focal"] < 0.08, e
    assert iou(~solve.static, scene.object_mask[0]) > 0.75
    known = solve.depth.valid & ~scene.object_mask
    d, g = solve.depth.depth[known].double(), scene.depth[known].double()
    rel = (d * ((d * g).sum() / (d * d).sum()) - g).abs() / g
    assert rel.median() < 0.03


# --- synthetic scenes ---------------------------------------------------------------------------------


def _axis_angle(v) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=torch.float64)
    k = torch.zeros(3, 3, dtype=torch.float64)
    k[0, 1], k[0, 2], k[1, 2] = -v[2], v[1], -v[0]
    return torch.linalg.matrix_exp(k - k.T)


def synthetic(num=10, width=120, height=90, ref=3, translate=True, seed=0):
    """Exact tracks of a box-shaped room (random depth per pixel region) seen by a turning, moving
    camera, with two cubes moving on their own. Returns (tracks, true path, moving mask [H, W])."""
    gen = torch.Generator().manual_seed(seed)
    k = intrinsics_from_fov(70.0, width, height).double()
    # Camera-to-world of each frame (world = the reference camera), a smooth hand-held-like move.
    s = torch.linspace(0, 1, num, dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64).repeat(num, 1, 1)
    for t in range(num):
        c2w[t, :3, :3] = _axis_angle([0.04 * math.sin(3 * s[t]), 0.12 * (s[t] - s[ref]), 0.03 * math.cos(5 * s[t]) - 0.03 * math.cos(5 * s[ref])])
        if translate:
            c2w[t, :3, 3] = torch.tensor([0.6 * (s[t] - s[ref]), -0.1 * math.sin(4 * (s[t] - s[ref])), 0.3 * (s[t] - s[ref])], dtype=torch.float64)
    c2w[ref] = torch.eye(4, dtype=torch.float64)
    w2c = torch.linalg.inv(c2w)
    # Reference depth: a slanted floor, a back wall and a pillar; two moving cubes in front.
    grid = pixel_grid(height, width, dtype=torch.float64)
    x, y = grid[..., 0], grid[..., 1]
    depth = 4.0 + 2.0 * (1 - y / height) + 0.3 * torch.sin(x / 7) + 0.2 * torch.rand(height, width, generator=gen, dtype=torch.float64)
    depth = torch.where((x > 0.65 * width) & (x < 0.78 * width), torch.full_like(depth, 2.5), depth)
    cube_a = (x > 0.1 * width) & (x < 0.3 * width) & (y > 0.5 * height) & (y < 0.8 * height)
    cube_b = (x > 0.4 * width) & (x < 0.55 * width) & (y > 0.1 * height) & (y < 0.3 * height)
    depth = torch.where(cube_a, torch.full_like(depth, 2.0), torch.where(cube_b, torch.full_like(depth, 3.0), depth))
    rays = torch.cat([((grid - k[:2, 2]) / torch.stack([k[0, 0], k[1, 1]])), torch.ones(height, width, 1, dtype=torch.float64)], -1)
    points = (rays * depth[..., None]).reshape(-1, 3)
    move_a = torch.stack([0.5 * (s - s[ref]), 0.0 * s, -0.4 * (s - s[ref])], -1)  # cube a slides right and nearer
    move_b = torch.stack([-0.3 * (s - s[ref]), 0.25 * (s - s[ref]) ** 2, 0.0 * s], -1)
    uv = torch.empty(num, height * width, 2, dtype=torch.float64)
    z = torch.empty(num, height * width, dtype=torch.float64)
    for t in range(num):
        p = points + cube_a.reshape(-1, 1) * move_a[t] + cube_b.reshape(-1, 1) * move_b[t]
        cam = p @ w2c[t, :3, :3].T + w2c[t, :3, 3]
        z[t] = cam[:, 2]
        uv[t] = (cam[:, :2] / cam[:, 2:]) * torch.stack([k[0, 0], k[1, 1]]) + k[:2, 2]
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= width - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= height - 1) & (z > 0)
    tracks = Tracks3D(uv.reshape(num, height, width, 2).float(), z.reshape(num, height, width).float(), inside.reshape(num, height, width), k.float(), ref_frame=ref)
    # The true path in the solve's convention: frame 0 = identity.
    w2c0 = w2c @ c2w[0]
    truth = CameraPath(k.float().expand(num, 3, 3).clone(), w2c0.float(), width, height)
    return tracks, truth, cube_a | cube_b


def test_synthetic_independent_motion_and_reference_frame_not_zero():
    tracks, truth, moving = synthetic()
    solve = solve_camera(tracks, fov=70.0)
    e = pose_errors(solve, truth, fit_scale=False)
    assert e["rot"] < 0.02 and e["trans"] < 0.002, e
    assert torch.allclose(solve.path.world_to_camera[0], torch.eye(4), atol=1e-5)  # rebased on frame 0
    assert iou(~solve.static, moving) > 0.95

    flat = solve_camera(without_depth(tracks), fov=70.0)
    e = pose_errors(flat, truth, fit_scale=True)
    assert flat.mode == "motion" and e["rot"] < 0.1 and e["trans"] < 0.01, e
    # Without depth a point sliding along the camera's direction of travel looks like a static point at
    # another depth (the cubes here mostly do): only part of them can be told apart.
    assert iou(~flat.static, moving) > 0.55


def test_pure_rotation_is_reported_and_solved():
    tracks, truth, moving = synthetic(translate=False)
    solve = solve_camera(without_depth(tracks), fov=70.0)
    assert solve.mode == "rotation" and any("only turns" in n for n in solve.notes)
    assert not bool(solve.depth.valid.any())  # depth from motion unknown everywhere
    assert rotation_error_deg(solve.path.world_to_camera[:, :3, :3], truth.world_to_camera[:, :3, :3]).max() < 0.05
    assert float(solve.path.centers().abs().max()) < 1e-6
    assert iou(~solve.static, moving) > 0.9


# --- edges ------------------------------------------------------------------------------------------------


def test_bad_inputs_are_clear_errors(scene):
    tracks = scene.tracks(0)
    with pytest.raises(ValueError, match="Tracks3D"):
        solve_camera("tracks")
    with pytest.raises(ValueError, match="fov"):
        solve_camera(tracks, fov=0.0)
    hidden = dataclasses.replace(tracks, visibility=torch.zeros_like(tracks.visibility))
    with pytest.raises(ValueError, match="nothing to solve"):
        solve_camera(hidden)
    with pytest.raises(ValueError, match="depth_known"):
        dataclasses.replace(tracks, depth_known="no")


def test_progress_can_cancel(scene):
    calls = []

    def progress(done):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        solve_camera(scene.tracks(0), progress=progress)
    assert calls == [1, 2]


def test_known_fov_report_and_depth_helpers(scene):
    solve = solve_camera(with_intrinsics(scene.tracks(0), 50.0), fov=60.0)
    assert not solve.focal_estimated
    assert solve.focal == pytest.approx(float(scene.intrinsics[0, 0]), rel=1e-6)
    assert pose_errors(solve, scene.camera, fit_scale=False)["rot"] < 0.05
    r = solve.report()
    assert r["mode"] == "depth" and r["frames"] == scene.num_frames and 0 < r["inlier_ratio"] <= 1
    assert "camera solve (depth)" in solve.summary()
    video = depth_from_tracks(scene.tracks(0))
    assert video.kind == "metric" and bool(video.valid[0].all())
    assert torch.allclose(video.depth[0], scene.depth[0])
    d, ok = rasterise_depth(torch.tensor([[1.5, 1.5], [1.6, 1.4]], dtype=torch.float64), torch.tensor([2.0, 1.0], dtype=torch.float64), 4, 4)
    # Each point's nearest pixel first; the pixels around them take the nearer point (z-buffer).
    assert float(d[2, 2]) == 2.0 and float(d[1, 2]) == 1.0 and float(d[1, 1]) == 1.0 and int(ok.sum()) == 4
