"""Camera moves relative to the solved source path (follow_source, stabilize, transfer) against ground truth.

The pseudo field of the sample scene (exact tracks) lives in the exact source camera's frame at each
time, so a path P rendered on it must show the static scene as the world camera P_t·S_t does: checked
by projecting the scene's analytic 3D points and by rendering (PSNR against the analytic frames).
Synthetic shaky paths check the stabiliser, known moves the transfer (scale, resampling, replacing).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vid4d.nodes.camera import CameraPath as CameraPathNode
from vid4d.nodes.camera import camera_path_request
from vid4d.py import camera as cam
from vid4d.py.camera.geometry import euler_rotation, pose_matrices
from vid4d.py.camera.source import poses_from_matrices, relative_to_source, retarget_poses, smooth_poses
from vid4d.py.gaussians import GaussianField, lift_depth, lift_tracks
from vid4d.py.render import render_gaussians
from vid4d.py.scene import sample_scene
from vid4d.py.solve import solve_camera
from vid4d.py.tracking import track_dense

T, W, H = 12, 96, 64
F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors on a shared machine


@pytest.fixture(scope="module")
def scene():
    return sample_scene(T, W, H)


@pytest.fixture(scope="module")
def field(scene):
    return lift_tracks(scene.tracks(0), scene.frames)


def _render(field, path):
    return render_gaussians(field, path, "torch", compile=False)


def _psnr(a, b, mask) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean(-1)[mask].mean()))


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotation angle between the rotation parts of ``[T, 4, 4]`` (or ``[T, 3, 3]``) a and b, degrees per frame."""
    r = a[:, :3, :3].double().transpose(1, 2) @ b[:, :3, :3].double()
    return torch.rad2deg(torch.acos(((r.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)))


def _static_points(scene, stride: int = 3):
    """World points of the static reference pixels (world = camera 0) and the same points in camera t's frame."""
    tracks = scene.tracks(0)
    keep = ~scene.object_mask[0][::stride, ::stride].reshape(-1)
    uv = tracks.uv[:, ::stride, ::stride].reshape(T, -1, 2)[:, keep]
    depth = tracks.depth[:, ::stride, ::stride].reshape(T, -1)[:, keep]
    cam_t = cam.unproject_pixels(uv.double(), depth.double(), scene.intrinsics.double())  # [T, N, 3] camera t frame
    return cam_t[0], cam_t, tracks.visibility[:, ::stride, ::stride].reshape(T, -1)[:, keep]


def _project(w2c: torch.Tensor, k: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Pixels ``[T, N, 2]`` of points ``[N, 3]`` or ``[T, N, 3]`` through cameras ``[T, 4, 4]``."""
    w2c = w2c.double()
    if points.dim() == 2:
        points = points.expand(w2c.shape[0], -1, -1)
    c = points @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
    pix = c @ k.double().T
    return pix[..., :2] / pix[..., 2:]


def _shaky(num_frames: int, seed: int = 0, jitter_deg: float = 0.6, jitter_m: float = 0.015):
    """A smooth world move G (truck, dolly, a constant-speed pan, a gentle tilt) and G with hand-held shake J: S = J·G."""
    gen = torch.Generator().manual_seed(seed)
    s = torch.linspace(0, 1, num_frames, dtype=F64)
    smooth = pose_matrices(euler_rotation(12.0 * s, 3.0 * torch.sin(math.pi * s), torch.zeros_like(s)),
                           torch.stack([0.6 * s, -0.05 * torch.sin(math.pi * s), 0.2 * s], -1))
    angles = torch.randn(num_frames, 3, generator=gen, dtype=F64) * jitter_deg
    shift = torch.randn(num_frames, 3, generator=gen, dtype=F64) * jitter_m
    angles[0], shift[0] = 0, 0  # frame 0 = identity, the solver's convention
    shake = pose_matrices(euler_rotation(angles[:, 0], angles[:, 1], angles[:, 2]), shift)
    return smooth, shake @ smooth


def _path(w2c: torch.Tensor, k: torch.Tensor, width: int = W, height: int = H) -> cam.CameraPath:
    return cam.CameraPath(k.float().expand(w2c.shape[0], 3, 3).clone(), w2c.float(), width, height)


# ------------------------------------------------------------------------------------ the pseudo field's frames


def test_follow_source_as_shot_is_exactly_the_identity_and_renders_the_source_video(scene, field):
    path = cam.camera_path("follow_source", T, W, H, intrinsics=scene.intrinsics, source_path=scene.camera)
    assert torch.equal(path.world_to_camera, torch.eye(4).expand(T, 4, 4))
    assert torch.equal(path.intrinsics, scene.intrinsics.expand(T, 3, 3))
    out = _render(field, path)
    covered = out.alpha > 0.9
    assert float(covered.float().mean()) > 0.7
    assert _psnr(out.rgb, scene.frames, covered) > 25  # the source video back (the splats' own blur aside)
    static = cam.camera_path("static", T, W, H, intrinsics=scene.intrinsics)
    assert torch.equal(out.rgb, _render(field, static).rgb)


def test_a_world_path_on_the_pseudo_field_sees_what_the_world_camera_sees(scene):
    """P_t = W_t·S_t⁻¹ on points in camera t's frame projects like W_t on the world points (the analytic scene)."""
    world, in_camera, _ = _static_points(scene)
    k = scene.intrinsics
    w = cam.camera_path("orbit", T, W, H, intrinsics=k, angle=25.0, elevation=5.0, focus_depth=4.0)
    p = relative_to_source(w, scene.camera)
    torch.testing.assert_close(_project(p.world_to_camera, k, in_camera), _project(w.world_to_camera, k, world), atol=2e-3, rtol=0)
    # Every other preset is relative to the source camera at each time: world camera P_t·S_t (the shake kept).
    torch.testing.assert_close(_project(w.world_to_camera, k, in_camera),
                               _project(w.world_to_camera.double() @ scene.camera.world_to_camera.double(), k, world), atol=2e-3, rtol=0)


def test_follow_source_locked_off_renders_frame_0_every_frame(scene, field):
    path = cam.camera_path("follow_source", T, W, H, intrinsics=scene.intrinsics, source_path=scene.camera, follow=0.0)
    torch.testing.assert_close(path.world_to_camera.double(), cam.source.rigid_inverse(scene.camera.world_to_camera.double()), atol=1e-6, rtol=0)
    world, in_camera, _ = _static_points(scene)
    grid = _project(torch.eye(4, dtype=F64).expand(1, 4, 4), scene.intrinsics, world)
    torch.testing.assert_close(_project(path.world_to_camera, scene.intrinsics, in_camera), grid.expand(T, -1, -1), atol=2e-3, rtol=0)
    out = _render(field, path)
    for t in (T // 2, T - 1):  # the static scene as frame 0 shows it (where it is covered and the ball is not)
        mask = ~scene.object_mask[0] & ~scene.object_mask[t] & (out.alpha[t] > 0.99)
        assert float(mask.float().mean()) > 0.5
        assert _psnr(out.rgb[t], scene.frames[0], mask) > 27


def test_follow_source_share_of_the_move_and_a_move_on_top(scene):
    k = scene.intrinsics
    half = cam.camera_path("follow_source", T, W, H, intrinsics=k, source_path=scene.camera, follow=0.5)
    world_cam = half.world_to_camera.double() @ scene.camera.world_to_camera.double()
    rot_s, centre_s = poses_from_matrices(scene.camera.world_to_camera.double())
    rot_h, centre_h = poses_from_matrices(world_cam)
    torch.testing.assert_close(centre_h, 0.5 * centre_s, atol=1e-5, rtol=0)
    eye = torch.eye(3, dtype=F64).expand(T, 3, 3)
    torch.testing.assert_close(_angle_deg(rot_h, eye), 0.5 * _angle_deg(rot_s, eye), atol=1e-3, rtol=0)
    # With a move on top (a second CameraPath) and follow = 1: exactly that move on the pseudo field.
    orbit = cam.camera_path("orbit", T, W, H, intrinsics=k, angle=20.0)
    for preset, extra in (("follow_source", {}), ("stabilize", {"smoothing": 0.0})):
        out = cam.camera_path(preset, T, W, H, intrinsics=k, source_path=scene.camera, reference_path=orbit, **extra)
        torch.testing.assert_close(out.world_to_camera, orbit.world_to_camera, atol=2e-6, rtol=0)


# ------------------------------------------------------------------------------------ stabilize


def test_stabilize_removes_the_shake_and_keeps_the_move():
    n = 32
    k = cam.intrinsics_from_fov(60.0, 64, 48)
    smooth, shaky = _shaky(n)
    path = cam.camera_path("stabilize", n, 64, 48, intrinsics=k, source_path=_path(shaky, k, 64, 48), smoothing=3.0)
    assert torch.allclose(path.world_to_camera[0], torch.eye(4), atol=1e-6)  # starts at the source view
    seen = path.world_to_camera.double() @ shaky  # the world camera the render shows
    gen = torch.Generator().manual_seed(1)
    points = torch.rand(300, 3, generator=gen, dtype=F64) * torch.tensor([4.0, 3.0, 3.0], dtype=F64) + torch.tensor([-2.0, -1.5, 3.0], dtype=F64)

    def shake_px(w2c):  # median image acceleration |u[t+1] − 2u[t] + u[t−1]| of the static points
        uv = _project(w2c, k, points)
        return float((uv[2:] - 2 * uv[1:-1] + uv[:-2]).norm(dim=-1).median())

    assert shake_px(shaky) > 2.0 and shake_px(seen) < 0.05 * shake_px(shaky)
    assert shake_px(seen) < 2.0 * shake_px(smooth) + 0.02
    assert float(_angle_deg(seen, smooth).mean()) < 0.7 * float(_angle_deg(shaky, smooth).mean())
    centre = lambda m: poses_from_matrices(m)[1]
    assert float((centre(seen) - centre(smooth)).norm(dim=-1).mean()) < 0.7 * float((centre(shaky) - centre(smooth)).norm(dim=-1).mean())


def test_stabilized_render_of_a_static_scene_moves_smoothly():
    """Three coloured splats of a static scene seen by a shaky camera (the pseudo field holds the shake):
    their centroids in the stabilised render move smoothly, in the source render they jitter."""
    n, w, h = 20, 64, 48
    k = cam.intrinsics_from_fov(60.0, w, h)
    _, shaky = _shaky(n, seed=2, jitter_deg=0.8)
    points = torch.tensor([[0.3, -0.2, 3.0], [0.9, 0.3, 3.5], [0.6, -0.4, 4.0]], dtype=F64)  # in view all along
    in_camera = (points @ shaky[:, :3, :3].transpose(1, 2) + shaky[:, None, :3, 3]).float()
    field = GaussianField(means=in_camera, colors=torch.eye(3), opacities=torch.ones(3), scales=torch.full((3, 3), 0.05),
                          quats=torch.tensor([[1.0, 0, 0, 0]]).expand(3, 4).clone())
    source = _path(shaky, k, w, h)

    def centroid_shake(path):
        rgb = _render(field, path).rgb  # [T, H, W, 3]: splat i is colour channel i
        grid = cam.pixel_grid(h, w)
        weight = rgb.permute(0, 3, 1, 2)  # [T, 3, H, W]
        c = (weight[..., None] * grid).sum((2, 3)) / weight.sum((2, 3))[..., None]  # [T, 3, 2]
        assert bool((weight.sum((2, 3)) > 1.0).all()), "a splat left the image"
        return float((c[2:] - 2 * c[1:-1] + c[:-2]).norm(dim=-1).median())

    stable = cam.camera_path("stabilize", n, w, h, intrinsics=k, source_path=source, smoothing=3.0)
    as_shot = cam.camera_path("static", n, w, h, intrinsics=k)
    assert centroid_shake(as_shot) > 0.8 and centroid_shake(stable) < 0.1 * centroid_shake(as_shot)


def test_smoothing_keeps_constant_velocity_moves_exactly():
    n = 15
    s = torch.arange(n, dtype=F64)
    step = euler_rotation(*(torch.tensor([v], dtype=F64) for v in (2.0, -0.5, 0.3)))[0]  # a constant angular velocity (in the camera frame)
    rot = torch.stack([torch.linalg.matrix_power(step, i) for i in range(n)])
    centre = torch.stack([0.1 * s, -0.02 * s, 0.05 * s + 1.0], -1)
    for sigma in (0.0, 2.0, 50.0):  # 50: wider than the clip; the fit is still exact for a linear move
        r, c = smooth_poses(rot, centre, sigma)
        torch.testing.assert_close(c, centre, atol=1e-9, rtol=0)
        torch.testing.assert_close(r, rot, atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------------ transfer


def test_transfer_retargets_scale_and_time():
    """A 13-frame move onto a 25-frame clip whose scene is twice as deep: frame 2k = the move's frame k, centres × 2."""
    k = cam.intrinsics_from_fov(60.0, 64, 48)
    move = cam.camera_path("keyframes", 13, 64, 48, intrinsics=k, easing="linear", keyframes=[
        {"frame": 0, "position": [0, 0, 0]}, {"frame": 6, "position": [0.4, -0.1, 0.3], "angles": [10, 3, -2], "fov": 50},
        {"frame": 12, "position": [0.2, 0.1, 0.8], "look_at": [0, 0, 4]}])
    out = cam.camera_path("transfer", 25, 64, 48, intrinsics=k, reference_path=move, focus_depth=6.0, reference_depth=3.0)
    rot_m, centre_m = poses_from_matrices(move.world_to_camera.double())
    rot_o, centre_o = poses_from_matrices(out.world_to_camera.double())
    torch.testing.assert_close(centre_o[::2], 2.0 * centre_m, atol=1e-5, rtol=0)
    torch.testing.assert_close(rot_o[::2], rot_m, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.intrinsics[::2, 0, 0] / float(k[0, 0]), move.intrinsics[:, 0, 0] / float(k[0, 0]), atol=1e-6, rtol=0)
    # Odd frames: halfway along the geodesic, centres and focal linear.
    torch.testing.assert_close(_angle_deg(rot_o[1:-1:2], rot_m[:-1]), 0.5 * _angle_deg(rot_m[1:], rot_m[:-1]), atol=1e-3, rtol=0)
    torch.testing.assert_close(centre_o[1::2], (centre_o[:-1:2] + centre_o[2::2]) / 2, atol=1e-5, rtol=0)
    # A move that does not start at the identity is taken relative to its own frame 0.
    offset = pose_matrices(euler_rotation(*(torch.tensor([v], dtype=F64) for v in (30.0, 10.0, 5.0))), torch.tensor([[1.0, 2.0, 3.0]], dtype=F64))
    shifted = _path(move.world_to_camera.double() @ offset, k, 64, 48)
    shifted = cam.CameraPath(move.intrinsics, shifted.world_to_camera, 64, 48)
    again = cam.camera_path("transfer", 25, 64, 48, intrinsics=k, reference_path=shifted, focus_depth=6.0, reference_depth=3.0)
    torch.testing.assert_close(again.world_to_camera, out.world_to_camera, atol=2e-5, rtol=0)


def test_transfer_replaces_the_source_move(scene):
    """B = the sample scene's pseudo field (its camera S moves); R = an arc: the render shows the world camera R_t, not R_t·S_t."""
    k = scene.intrinsics
    arc = cam.camera_path("arc", 7, W, H, intrinsics=k, angle=30.0, elevation=8.0, focus_depth=4.0)
    out = cam.camera_path("transfer", T, W, H, intrinsics=k, reference_path=arc, source_path=scene.camera, focus_depth=4.0, reference_depth=4.0)
    world, in_camera, _ = _static_points(scene)
    target = pose_matrices(*retarget_poses(arc, T)[:2])  # the arc resampled to 12 frames, as a world path
    torch.testing.assert_close(_project(out.world_to_camera, k, in_camera), _project(target, k, world), atol=2e-3, rtol=0)
    # Its own move transferred back (same length, same scale) is the identity: the source video.
    own = cam.camera_path("transfer", T, W, H, intrinsics=k, reference_path=scene.camera, source_path=scene.camera, focus_depth=1.0, reference_depth=1.0)
    torch.testing.assert_close(own.world_to_camera, torch.eye(4).expand(T, 4, 4), atol=1e-5, rtol=0)


def test_a_move_solved_from_pixels_alone_reshoots_another_scene(scene):
    """Video A's camera solved from 2D tracks (no depth: median static depth = 1) onto a still frame of
    another scene B, twice as deep, resampled from 12 to 23 frames: B's render matches B's own video,
    which was shot with the same (true, metric) move."""
    tracks = scene.tracks(0)
    solve = solve_camera(dataclasses.replace(tracks, depth=torch.ones_like(tracks.depth), depth_known=False), fov=60.0)
    assert solve.mode == "motion"
    b = sample_scene(23, W, H, seed=3)
    deep = 2.0 * b.depth[0]
    still = lift_depth(b.frames[0], deep, b.intrinsics)  # holds no camera motion: no source_path
    focus = float(deep[~b.object_mask[0]].median())  # B's median static depth, as A's is 1 in its solved units
    path = cam.camera_path("transfer", 23, W, H, intrinsics=b.intrinsics, reference_path=solve.path, focus_depth=focus, reference_depth=1.0)
    truth = cam.CameraPath(b.camera.intrinsics, b.camera.world_to_camera.double().clone(), W, H)
    truth.world_to_camera[:, :3, 3] *= 2.0  # B's own camera in the deeper scene
    assert float(_angle_deg(path.world_to_camera, truth.world_to_camera).max()) < 0.05
    assert float((path.centers() - truth.centers().float()).norm(dim=-1).max()) < 0.01 * float(truth.centers().norm(dim=-1).max())
    out = _render(still, path)
    for t in (7, 22):
        mask = ~b.object_mask[0] & ~b.object_mask[t] & (out.alpha[t] > 0.9)
        assert float(mask.float().mean()) > 0.3
        assert _psnr(out.rgb[t], b.frames[t], mask) > 25


def test_a_move_tracked_and_solved_by_the_pack_lands_on_the_other_scene_camera():
    """The chain of workflows/camera_transfer.json at 128×80: flow_chain tracks of A (no depth) → solve →
    transfer onto B (another seed, 23 frames, median static depth 7 m): B's true camera, up to the tracker."""
    a = sample_scene(12, 128, 80)
    solve = solve_camera(track_dense(a.frames, method="flow_chain"))
    b = sample_scene(23, 128, 80, seed=3)
    focus = float(b.depth[0][~b.object_mask[0]].median())
    path = cam.camera_path("transfer", 23, 128, 80, intrinsics=b.intrinsics, reference_path=solve.path, focus_depth=focus, reference_depth=1.0)
    assert float(_angle_deg(path.world_to_camera, b.camera.world_to_camera).max()) < 0.5
    length = float(b.camera.centers().norm(dim=-1).max())
    assert float((path.centers() - b.camera.centers()).norm(dim=-1).max()) < 0.05 * length


# ------------------------------------------------------------------------------------ the node, rigs, errors


def test_the_node_takes_the_solved_camera_on_sockets_and_places_a_rig_in_the_world(scene):
    source = cam.CameraPath.static(scene.intrinsics, T, W, H)  # LiftGaussians' source_camera
    arc = cam.camera_path("arc", T, W, H, intrinsics=scene.intrinsics)
    widgets = {"preset": "transfer", "num_frames": 0, "width": 0, "height": 0, "cameras": 3, "rig_angle": 20.0, "focus_depth": 3.0, "reference_depth": 3.0}
    rig = CameraPathNode().make(**widgets, source_camera=source, source_path=scene.camera, reference_path=arc)["result"][0]
    assert isinstance(rig, cam.CameraRig) and len(rig) == 3
    centred = cam.camera_rig(3, T, W, H, arc_angle=20.0, focus_depth=3.0, base=arc)
    for path, world in zip(rig, centred):  # camera k = W_t·O_k·S_t⁻¹: the rig is placed in the world
        torch.testing.assert_close(path.world_to_camera, relative_to_source(world, scene.camera).world_to_camera, atol=1e-5, rtol=0)
    single = CameraPathNode().make(**{**widgets, "preset": "stabilize", "cameras": 1}, source_camera=source, source_path=scene.camera)["result"][0]
    assert single.num_frames == T and torch.equal(single.intrinsics, source.intrinsics)
    with pytest.raises(ValueError, match="source_path: stabilize needs the solved source camera"):
        CameraPathNode().make(**{**widgets, "preset": "stabilize", "cameras": 1}, source_camera=source)
    status, data = camera_path_request({"preset": "stabilize", "num_frames": 8, "width": 64, "height": 48})
    assert status == 400 and data["error"] == "stabilize reads source_path and reference_path from a socket: its path shows after a run"


def test_bad_inputs_are_clear_errors(scene):
    k = scene.intrinsics
    with pytest.raises(ValueError, match="source_path: expected the source camera of the 5 frames this path renders, got 12"):
        cam.camera_path("stabilize", 5, W, H, intrinsics=k, source_path=scene.camera)
    with pytest.raises(ValueError, match="reference_path: expected one camera path .* got a rig of 2 cameras"):
        cam.camera_path("transfer", T, W, H, reference_path=cam.CameraRig(cam.camera_rig(2, T, W, H)))
    with pytest.raises(ValueError, match="reference_path: transfer needs"):
        cam.camera_path("transfer", T, W, H)
    with pytest.raises(ValueError, match="smoothing: expected a value in"):
        cam.camera_path("stabilize", T, W, H, source_path=scene.camera, smoothing=-1.0)
    with pytest.raises(ValueError, match="reference_depth: expected a number > 0"):
        cam.camera_path("transfer", T, W, H, reference_path=scene.camera, reference_depth=0.0)
    with pytest.raises(ValueError, match="follow: expected a finite number"):
        cam.camera_path("follow_source", T, W, H, source_path=scene.camera, follow=float("nan"))
    with pytest.raises(ValueError, match="smoothing: not a parameter of preset 'transfer'"):
        cam.camera_path("transfer", T, W, H, reference_path=scene.camera, smoothing=2.0)
