"""Cinematic camera paths, rigs and the path diagram: geometry and sign conventions, checked by projection."""

import json
import math

import pytest
import torch

from vid4d.py import camera
from vid4d.py.camera import CameraPath, CameraRig, camera_path, camera_rig, draw_camera_path, intrinsics_from_fov, unproject_pixels

W, H, T = 256, 144, 24
K0 = intrinsics_from_fov(60.0, W, H).double()
F0 = float(K0[0, 0])
PP = K0[:2, 2]
KEYS = [
    {"frame": 0, "position": [0, 0, 0]},
    {"frame": 10, "position": [1.0, -0.5, 1.0], "look_at": [0, 0, 3]},
    {"frame": T - 1, "position": [-1.0, 0.2, 2.0], "angles": [60, -10, 20], "fov": 45},
]


def _shaky(num_frames=T):
    """A hand-held source camera: an orbit with a deterministic wobble (frame 0 = identity)."""
    base = camera_path("orbit", num_frames, W, H, angle=20.0)
    wobble = camera_path("keyframes", num_frames, W, H, easing="linear",
                         keyframes=[{"frame": f, "position": [0.02 * math.sin(f), 0.01 * math.cos(2 * f) - 0.01, 0.0], "angles": [0.8 * math.sin(1.3 * f), 0.5 * math.sin(f), 0.0]}
                                    for f in range(num_frames)])
    return CameraPath(base.intrinsics, wobble.world_to_camera @ base.world_to_camera, W, H)


def _path(preset, num_frames=T, **kw):
    if preset == "keyframes" and "keyframes" not in kw:
        kw["keyframes"] = KEYS
    if preset in ("follow_source", "stabilize"):  # the default follow = 1 is the identity; half the source move moves
        kw = {"source_path": _shaky(num_frames), **({"follow": 0.5} if preset == "follow_source" else {}), **kw}
    if preset == "transfer":
        kw = {"reference_path": camera_path("arc", num_frames, W, H), **kw}
    return camera_path(preset, num_frames, W, H, **kw)


def _rot(path):
    """``[T, 3, 3]`` float64 camera-to-world rotations (columns: camera right, down, forward in world)."""
    return path.camera_to_world().double()[:, :3, :3]


def _ry(deg):
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=torch.float64)


def _rx(deg):
    a = math.radians(deg)
    return torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]], dtype=torch.float64)


def _rz(deg):
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=torch.float64)


def _project(path, points):
    uv, z = path.project(points.float())
    return uv.double(), z.double()


# ------------------------------------------------------------------------------------------ presets


def test_presets_constant_lists_every_preset():
    assert set(camera.PRESETS) == {"static", "orbit", "arc", "dolly", "dolly_zoom", "pan", "tilt", "roll", "truck", "pedestal", "zoom", "keyframes",
                                   "follow_source", "stabilize", "transfer"}


@pytest.mark.parametrize("preset", camera.PRESETS)
def test_every_preset_shapes_identity_start_and_rigidity(preset):
    path = _path(preset)
    assert isinstance(path, CameraPath)
    assert path.intrinsics.shape == (T, 3, 3) and path.world_to_camera.shape == (T, 4, 4)
    assert path.intrinsics.dtype == torch.float32 and path.world_to_camera.dtype == torch.float32
    assert (path.width, path.height) == (W, H)
    # Frame 0 is the source view for every preset (the keyframes above start at the origin, no rotation).
    assert torch.allclose(path.world_to_camera[0], torch.eye(4), atol=1e-6)
    assert torch.allclose(path.intrinsics[0].double(), K0, atol=1e-4)
    r = _rot(path)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(T, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(T, dtype=torch.float64), atol=1e-5)
    if preset not in ("static",):
        moved = (path.world_to_camera - path.world_to_camera[0]).abs().max() + (path.intrinsics - path.intrinsics[0]).abs().max()
        assert moved > 1e-3, "every non-static preset moves by default"


def test_static_is_exactly_the_identity():
    path = _path("static")
    assert torch.equal(path.world_to_camera, torch.eye(4).expand(T, 4, 4))
    assert torch.allclose(path.intrinsics, K0.float().expand(T, 3, 3))


def test_single_frame_path():
    path = _path("orbit", num_frames=1)
    assert path.num_frames == 1 and torch.allclose(path.world_to_camera[0], torch.eye(4), atol=1e-6)


def test_intrinsics_as_requested():
    assert torch.allclose(_path("static", fov=90.0).intrinsics[0, 0, 0], torch.tensor(W / 2.0))
    assert torch.allclose(_path("static", focal=200.0).intrinsics[:, 0, 0], torch.full((T,), 200.0))
    assert torch.allclose(_path("static", focal=200.0, fov=30.0).intrinsics[0, 1, 1], torch.tensor(200.0)), "focal overrides fov"
    k = torch.tensor([[300.0, 0.0, 120.0], [0.0, 280.0, 70.0], [0.0, 0.0, 1.0]])
    path = _path("static", intrinsics=k, fov=30.0, focal=10.0)
    assert torch.allclose(path.intrinsics, k.expand(T, 3, 3)), "intrinsics override fov and focal"
    # Focal changes keep the principal point and the fx:fy ratio of a given source camera.
    k[0, 1] = 4.0  # a skew scales with the focal (the whole image zooms about the principal point)
    z = _path("zoom", intrinsics=k, zoom=2.0).intrinsics[-1]
    assert torch.allclose(z, torch.tensor([[600.0, 8.0, 120.0], [0.0, 560.0, 70.0], [0.0, 0.0, 1.0]]))


# ------------------------------------------------------------------------------------------ dolly zoom


def test_dolly_zoom_keeps_the_focus_plane_and_moves_the_background():
    d = 3.0
    path = _path("dolly_zoom", focus_depth=d)
    ys, xs = torch.meshgrid(torch.linspace(10, H - 10, 7, dtype=torch.float64), torch.linspace(10, W - 10, 9, dtype=torch.float64), indexing="ij")
    grid = torch.stack([xs, ys], -1).reshape(-1, 2)
    plane = unproject_pixels(grid, torch.full((grid.shape[0],), d, dtype=torch.float64), K0)
    uv, z = _project(path, plane)
    assert (z > 0).all()
    assert (uv - grid).abs().max() < 0.5, "points on the focus plane keep their pixel over the whole path"
    far = unproject_pixels(grid, torch.full((grid.shape[0],), 2 * d, dtype=torch.float64), K0)
    uv_far, _ = _project(path, far)
    assert (uv_far[-1] - uv_far[0]).norm(dim=-1).max() > 5.0, "the background moves (perspective changes)"


@pytest.mark.parametrize("distance", [None, 1.2, -2.0])
@pytest.mark.parametrize("easing", ["linear", "ease_in_out"])
def test_dolly_zoom_follows_the_spec_formula(distance, easing):
    d = 3.0
    kw = {} if distance is None else {"distance": distance}
    path = _path("dolly_zoom", focus_depth=d, easing=easing, **kw)
    dist = 0.5 * d if distance is None else distance
    s = torch.arange(T, dtype=torch.float64) / (T - 1)
    p = s if easing == "linear" else 3 * s**2 - 2 * s**3
    dz = dist * p
    c = path.centers().double()
    assert torch.allclose(c[:, 2], dz, atol=1e-5) and c[:, :2].abs().max() < 1e-6, "moves along the optical axis"
    f_t = F0 * (d - dz) / d
    assert torch.allclose(path.intrinsics[:, 0, 0].double(), f_t, rtol=1e-5)
    assert torch.allclose(path.intrinsics[:, 1, 1].double(), f_t, rtol=1e-5)
    assert torch.allclose(path.intrinsics[:, :2, 2].double(), PP.expand(T, 2)), "principal point fixed"
    assert torch.allclose(_rot(path), torch.eye(3, dtype=torch.float64).expand(T, 3, 3), atol=1e-6)


@pytest.mark.parametrize("distance", [3.0, 4.5])
def test_dolly_zoom_through_the_subject_is_refused(distance):
    with pytest.raises(ValueError, match="distance"):
        _path("dolly_zoom", focus_depth=3.0, distance=distance)


# ------------------------------------------------------------------------------------------ orbit / arc


@pytest.mark.parametrize("preset", ["orbit", "arc"])
@pytest.mark.parametrize("elevation", [0.0, 20.0])
def test_orbit_and_arc_look_at_the_focus_point_from_focus_depth(preset, elevation):
    d = 2.5
    path = _path(preset, focus_depth=d, angle=50.0, elevation=elevation)
    focus = torch.tensor([[0.0, 0.0, d]], dtype=torch.float64)
    uv, z = _project(path, focus)
    assert torch.allclose(uv[:, 0], PP.expand(T, 2), atol=1e-3), "F stays at the principal point"
    assert torch.allclose(z[:, 0], torch.full((T,), d, dtype=torch.float64), atol=1e-5)
    assert torch.allclose((path.centers().double() - focus).norm(dim=-1), torch.full((T,), d, dtype=torch.float64), atol=1e-5)
    if elevation > 0:
        assert path.centers()[T // 2, 1] < -0.1, "positive elevation rises (y is down)"


def test_orbit_90_degrees_puts_the_camera_to_the_right():
    d = 2.0
    path = _path("orbit", focus_depth=d, angle=90.0)
    assert torch.allclose(path.centers()[-1].double(), torch.tensor([d, 0.0, d], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(_rot(path)[-1, :, 2], torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-6), "looks back at F"
    assert (path.centers()[1:, 0] > 0).all(), "positive angle: the camera moves to its right"
    left = _path("orbit", focus_depth=d, angle=-90.0)
    assert torch.allclose(left.centers()[-1].double(), torch.tensor([-d, 0.0, d], dtype=torch.float64), atol=1e-5)


def test_arc_swings_both_ways_and_returns():
    d, angle, n = 3.0, 40.0, 41
    path = _path("arc", num_frames=n, focus_depth=d, angle=angle)
    c = path.centers().double()
    # p = 0.25 (frame 10): the full half-angle to the right; p = 0.75 (frame 30): to the left.
    half = math.radians(angle / 2)
    assert torch.allclose(c[10], torch.tensor([d * math.sin(half), 0.0, d - d * math.cos(half)], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(c[30], torch.tensor([-d * math.sin(half), 0.0, d - d * math.cos(half)], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(path.world_to_camera[-1], torch.eye(4), atol=1e-6), "ends at the source view"


# ------------------------------------------------------------------------------------------ translations / rotations


@pytest.mark.parametrize(
    "preset,expected",
    [("dolly", [0.0, 0.0, 0.8]), ("truck", [0.8, 0.0, 0.0]), ("pedestal", [0.0, -0.8, 0.0])],
)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_translations_move_the_centre_by_the_documented_vector(preset, expected, sign):
    path = _path(preset, distance=0.8 * sign)
    p = torch.arange(T, dtype=torch.float64) / (T - 1)
    want = sign * p[:, None] * torch.tensor(expected, dtype=torch.float64)
    assert torch.allclose(path.centers().double(), want, atol=1e-6)
    assert torch.allclose(_rot(path), torch.eye(3, dtype=torch.float64).expand(T, 3, 3), atol=1e-7)


def test_pan_right_turns_right_and_the_scene_moves_left():
    path = _path("pan", angle=20.0)
    assert path.centers().abs().max() < 1e-6
    fwd = _rot(path)[-1, :, 2]
    assert torch.allclose(fwd, torch.tensor([math.sin(math.radians(20)), 0.0, math.cos(math.radians(20))], dtype=torch.float64), atol=1e-6)
    uv, _ = _project(path, torch.tensor([[0.0, 0.0, 5.0]]))
    assert uv[-1, 0, 0] < PP[0] - 10 and abs(uv[-1, 0, 1] - PP[1]) < 1e-3


def test_tilt_up_looks_up_and_the_scene_moves_down():
    path = _path("tilt", angle=20.0)
    assert path.centers().abs().max() < 1e-6
    assert _rot(path)[-1, 1, 2] < -0.3, "the viewing direction points up (−y)"
    uv, _ = _project(path, torch.tensor([[0.0, 0.0, 5.0]]))
    assert uv[-1, 0, 1] > PP[1] + 10 and abs(uv[-1, 0, 0] - PP[0]) < 1e-3


def test_roll_positive_turns_the_camera_clockwise_and_the_image_counter_clockwise():
    path = _path("roll", angle=20.0)
    r = _rot(path)[-1]
    assert path.centers().abs().max() < 1e-6
    assert torch.allclose(r[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-7), "optical axis unchanged"
    image_up = -r[:, 1]  # the camera's up in world coordinates
    assert image_up[0] > 0.3, "the top of the camera goes right (clockwise seen from behind)"
    # A point right of centre on the horizon rises in the image: content turns counter-clockwise.
    uv, _ = _project(path, torch.tensor([[1.0, 0.0, 5.0]]))
    assert uv[-1, 0, 1] < PP[1] - 5 and uv[-1, 0, 0] > PP[0]


def test_zoom_scales_focal_and_projections_about_the_principal_point():
    path = _path("zoom", zoom=1.5)
    assert torch.allclose(path.intrinsics[-1, 0, 0].double(), torch.tensor(1.5 * F0, dtype=torch.float64))
    assert torch.allclose(path.intrinsics[:, :2, 2].double(), PP.expand(T, 2))
    assert torch.equal(path.world_to_camera, torch.eye(4).expand(T, 4, 4))
    uv, _ = _project(path, torch.tensor([[0.7, -0.4, 3.0]]))
    assert torch.allclose(uv[-1, 0] - PP, 1.5 * (uv[0, 0] - PP), atol=1e-3)


def test_ease_in_out_starts_and_stops_gently_with_the_same_endpoints():
    lin = _path("dolly", distance=1.0).centers().double()
    eas = _path("dolly", distance=1.0, easing="ease_in_out").centers().double()
    assert torch.allclose(lin[[0, -1]], eas[[0, -1]], atol=1e-7)
    first, last = (eas[1] - eas[0]).norm(), (eas[-1] - eas[-2]).norm()
    assert first < 0.2 * (lin[1] - lin[0]).norm() and last < 0.2 * (lin[-1] - lin[-2]).norm()
    assert torch.allclose(eas[T // 2 - 1] + eas[T - T // 2], lin[T // 2 - 1] + lin[T - T // 2], atol=1e-6), "symmetric"


# ------------------------------------------------------------------------------------------ keyframes


def test_keyframes_pass_through_every_key():
    path = _path("keyframes")
    c, r = path.centers().double(), _rot(path)
    for key in KEYS:
        assert torch.allclose(c[key["frame"]], torch.tensor(key["position"], dtype=torch.float64), atol=1e-5)
    # look_at: the optical axis points at the target, no roll (camera x horizontal).
    fwd = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64) - torch.tensor(KEYS[1]["position"], dtype=torch.float64)
    assert torch.allclose(r[10, :, 2], fwd / fwd.norm(), atol=1e-5) and abs(r[10, 1, 0]) < 1e-6
    right = torch.tensor([fwd[2], 0.0, -fwd[0]], dtype=torch.float64)  # (down × forward): horizontal, upright camera
    assert torch.allclose(r[10, :, 0], right / right.norm(), atol=1e-5) and r[10, 1, 1] > 0.5
    # angles: yaw, then pitch, then roll with the pan/tilt/roll signs.
    assert torch.allclose(r[-1], _ry(60) @ _rx(-10) @ _rz(20), atol=1e-5)
    assert torch.allclose(path.intrinsics[-1, 0, 0].double(), torch.tensor(0.5 * W / math.tan(math.radians(22.5)), dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(path.intrinsics[10].double(), K0, atol=1e-4), "fov defaults to the base fov"
    rr = r @ r.transpose(1, 2)
    assert torch.allclose(rr, torch.eye(3, dtype=torch.float64).expand(T, 3, 3), atol=1e-5)


def test_keyframe_angles_match_the_pan_tilt_roll_presets():
    for preset, angles in (("pan", [15, 0, 0]), ("tilt", [0, 15, 0]), ("roll", [0, 0, 15])):
        key = _path("keyframes", keyframes=[{"frame": 0, "position": [0, 0, 0]}, {"frame": T - 1, "position": [0, 0, 0], "angles": angles}])
        assert torch.allclose(key.world_to_camera[-1], _path(preset).world_to_camera[-1], atol=1e-5), preset


def test_keyframes_hold_outside_their_range_and_two_keys_are_a_straight_line():
    keys = [{"frame": 5, "position": [1, 0, 0]}, {"frame": 15, "position": [3, -2, 1], "fov": 40}]
    path = camera_path("keyframes", 20, W, H, keyframes=keys)
    c = path.centers().double()
    assert torch.allclose(c[:6], torch.tensor([1.0, 0, 0], dtype=torch.float64).expand(6, 3), atol=1e-6)
    assert torch.allclose(c[15:], torch.tensor([3.0, -2, 1], dtype=torch.float64).expand(5, 3), atol=1e-5)
    assert torch.allclose(c[10], torch.tensor([2.0, -1, 0.5], dtype=torch.float64), atol=1e-5)
    f_end = 0.5 * W / math.tan(math.radians(20))
    assert torch.allclose(path.intrinsics[10, 0, 0].double(), torch.tensor((F0 + f_end) / 2, dtype=torch.float64), rtol=1e-5), "linear in f"


def test_keyframe_ease_in_out_stops_at_each_key_but_reaches_it_on_time():
    keys = [{"frame": 0, "position": [0, 0, 0]}, {"frame": 10, "position": [1, 0, 0]}, {"frame": 20, "position": [2, 1, 0]}]
    lin = camera_path("keyframes", 21, W, H, keyframes=keys).centers().double()
    eas = camera_path("keyframes", 21, W, H, keyframes=keys, easing="ease_in_out").centers().double()
    for k in keys:
        assert torch.allclose(eas[k["frame"]], torch.tensor(k["position"], dtype=torch.float64), atol=1e-5)
    assert (eas[11] - eas[10]).norm() < 0.4 * (lin[11] - lin[10]).norm()  # smoothstep: 0.28 of the linear step


def test_keyframe_positions_are_a_smooth_spline_not_a_polyline():
    keys = [{"frame": 0, "position": [0, 0, 0]}, {"frame": 10, "position": [1, 0, 1]}, {"frame": 20, "position": [2, 0, 0]}]
    c = camera_path("keyframes", 21, W, H, keyframes=keys).centers().double()
    before, after = c[10] - c[9], c[11] - c[10]
    # A polyline turns by 90° here (steps (0.1, 0, ±0.1)); the spline only by its curvature over one frame.
    assert (after - before).norm() < 0.5 * before.norm(), "no kink at the middle key (C1 Catmull-Rom)"
    assert torch.allclose(c[10], torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64), atol=1e-5)
    central = (c[11] - c[9]) / 2
    assert torch.allclose(central, torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64), atol=1e-3), "tangent = neighbours' secant"


def test_keyframe_slerp_takes_the_short_way():
    keys = [{"frame": 0, "position": [0, 0, 0], "angles": [170, 0, 0]}, {"frame": 10, "position": [0, 0, 0], "angles": [-170, 0, 0]}]
    path = camera_path("keyframes", 11, W, H, keyframes=keys)
    fwd = _rot(path)[:, :, 2]
    assert (fwd[:, 2] < -0.98).all(), "through 180°, never through 0°"
    assert torch.allclose(fwd[5], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-5)
    # Quaternions of opposite sign: the same rotation, and nearby rotations stay nearby (no flip).
    a, b = math.radians(20) / 2, math.radians(40) / 2
    q0, q1 = [math.cos(a), 0.0, math.sin(a), 0.0], [-math.cos(b), 0.0, -math.sin(b), 0.0]
    keys = [{"frame": 0, "position": [0, 0, 0], "quaternion": q0}, {"frame": 10, "position": [0, 0, 0], "quaternion": q1}]
    path = camera_path("keyframes", 11, W, H, keyframes=keys)
    yaw = torch.rad2deg(torch.atan2(_rot(path)[:, 0, 2], _rot(path)[:, 2, 2]))
    assert torch.allclose(yaw, torch.linspace(20, 40, 11, dtype=torch.float64), atol=1e-4)
    keys = [{"frame": 0, "position": [0, 0, 0], "quaternion": q0}, {"frame": 4, "position": [0, 0, 0], "quaternion": [-v for v in q0]}]
    same = camera_path("keyframes", 5, W, H, keyframes=keys)
    assert torch.allclose(same.world_to_camera, same.world_to_camera[:1].expand(5, 4, 4), atol=1e-6)


def test_keyframe_slerp_flips_the_quaternion_sign_when_needed():
    # yaw ±100° have canonical (w > 0) quaternions with a negative dot product: the short way is through 180°.
    keys = [{"frame": 0, "position": [0, 0, 0], "angles": [100, 0, 0]}, {"frame": 8, "position": [0, 0, 0], "angles": [-100, 0, 0]}]
    r = _rot(camera_path("keyframes", 9, W, H, keyframes=keys))
    yaw = torch.deg2rad(torch.linspace(100, 260, 9, dtype=torch.float64))
    want = torch.stack([torch.sin(yaw), torch.zeros_like(yaw), torch.cos(yaw)], -1)
    assert torch.allclose(r[:, :, 2], want, atol=1e-6)
    # A generic pair: constant angular speed along the geodesic (slerp, not a normalised lerp).
    q0 = torch.nn.functional.normalize(torch.tensor([0.3, -0.5, 0.7, 0.2]), dim=0).tolist()
    q1 = torch.nn.functional.normalize(torch.tensor([-0.6, 0.1, 0.4, 0.6]), dim=0).tolist()
    keys = [{"frame": 0, "position": [0, 0, 0], "quaternion": q0}, {"frame": 10, "position": [0, 0, 0], "quaternion": q1}]
    r = _rot(camera_path("keyframes", 11, W, H, keyframes=keys))
    step = (r[1:] @ r[:-1].transpose(1, 2)).diagonal(dim1=1, dim2=2).sum(-1).sub(1).div(2).clamp(-1, 1).acos()
    total = (r[-1] @ r[0].T).trace().sub(1).div(2).clamp(-1, 1).acos()
    assert torch.allclose(step, step.mean().expand(10), atol=1e-4) and torch.allclose(step.sum(), total, atol=1e-4)


def test_keyframes_are_sorted_by_frame():
    shuffled = [KEYS[2], KEYS[0], KEYS[1]]
    assert torch.equal(_path("keyframes", keyframes=shuffled).world_to_camera, _path("keyframes").world_to_camera)


def test_keyframes_json_string_and_t_are_accepted():
    from_list = _path("keyframes")
    from_json = _path("keyframes", keyframes=json.dumps(KEYS))
    assert torch.equal(from_list.world_to_camera, from_json.world_to_camera)
    with_t = [dict(k) for k in KEYS]
    with_t[-1].pop("frame")
    with_t[-1]["t"] = 1.0
    assert torch.allclose(_path("keyframes", keyframes=with_t).world_to_camera, from_list.world_to_camera, atol=1e-6)


@pytest.mark.parametrize(
    "keys,needle",
    [
        ([], "keyframes"),
        ("[{", "JSON"),
        ([{"frame": 0}], "position"),
        ([{"frame": T, "position": [0, 0, 0]}], "frame"),
        ([{"frame": -1, "position": [0, 0, 0]}], "frame"),
        ([{"t": 1.5, "position": [0, 0, 0]}], ".t"),
        ([{"position": [0, 0, 0]}], "frame"),
        ([{"frame": 0, "position": [1, 2, 3], "look_at": [1, 2, 3]}], "look_at"),
        ([{"frame": 0, "position": [1, 2]}], "position"),
        ([{"frame": 0, "position": [0, 0, 0], "look_at": [0, 0, 1], "angles": [0, 0, 0]}], "look_at"),
        ([{"frame": 0, "position": [0, 0, 0], "fov": 200}], "fov"),
        ([{"frame": 0, "position": [0, 0, 0], "speed": 2}], "speed"),
        ([{"frame": 3, "position": [0, 0, 0]}, {"frame": 3, "position": [1, 0, 0]}], "frame 3"),
        (["nope"], "keyframes[0]"),
    ],
)
def test_bad_keyframes_are_refused(keys, needle):
    with pytest.raises(ValueError, match="keyframes") as e:
        _path("keyframes", keyframes=keys)
    assert needle in str(e.value)


# ------------------------------------------------------------------------------------------ rigs


def test_rig_cameras_spread_on_the_arc_looking_at_the_focus_point():
    d, arc, n = 3.0, 60.0, 5
    rig = camera_rig(n, 4, W, H, arc_angle=arc, focus_depth=d)
    assert isinstance(rig, list) and len(rig) == n
    focus = torch.tensor([[0.0, 0.0, d]], dtype=torch.float64)
    for k, (path, yaw) in enumerate(zip(rig, torch.linspace(-arc / 2, arc / 2, n).tolist())):
        uv, _ = _project(path, focus)
        assert torch.allclose(uv[:, 0], PP.expand(4, 2), atol=1e-3), f"camera {k} looks at F"
        a = math.radians(yaw)
        want = torch.tensor([d * math.sin(a), 0.0, d - d * math.cos(a)], dtype=torch.float64)
        assert torch.allclose(path.centers().double(), want.expand(4, 3), atol=1e-5), f"camera {k} on the arc, static"
        assert torch.allclose(path.intrinsics.double(), K0.expand(4, 3, 3), atol=1e-4)
    assert rig[0].centers()[0, 0] < 0 < rig[-1].centers()[0, 0], "camera 0 is the leftmost"
    single = camera_rig(1, 3, W, H)
    assert torch.allclose(single[0].world_to_camera, torch.eye(4).expand(3, 4, 4), atol=1e-7)


def test_rig_with_base_composes_the_base_motion_after_the_offset():
    base = _path("dolly_zoom", focus_depth=3.0)
    rig = camera_rig(3, T, W, H, arc_angle=40.0, focus_depth=3.0, base=base)
    static = camera_rig(3, 1, W, H, arc_angle=40.0, focus_depth=3.0)
    points = torch.tensor([[0.3, -0.2, 2.0], [-1.0, 0.5, 4.0], [0.0, 0.0, 6.0]], dtype=torch.float64)
    for k in range(3):
        offset = static[k].world_to_camera[0].double()
        in_rig_frame = points @ offset[:3, :3].T + offset[:3, 3]  # O_k first ...
        want, _ = _project(base, in_rig_frame)  # ... then the base move
        got, _ = _project(rig[k], points)
        assert torch.allclose(got, want, atol=1e-2)
        assert torch.allclose(rig[k].intrinsics, base.intrinsics)
    # Each camera dolly-zooms on the shared F: F stays at the principal point for every camera.
    for path in rig:
        uv, _ = _project(path, torch.tensor([[0.0, 0.0, 3.0]]))
        assert torch.allclose(uv[:, 0], PP.expand(T, 2), atol=1e-2)


def test_camera_rig_dataclass_validates_and_moves():
    paths = camera_rig(3, 5, W, H)
    rig = CameraRig(paths)
    assert len(rig) == 3 and list(rig) == paths and rig[1] is paths[1]
    assert (rig.num_frames, rig.width, rig.height) == (5, W, H)
    moved = rig.to("cpu", torch.float64)
    assert isinstance(moved, CameraRig) and moved[0].world_to_camera.dtype == torch.float64
    with pytest.raises(ValueError, match=r"CameraRig.paths\[1\].*5 frames"):
        CameraRig([paths[0], _path("static", num_frames=6)])
    with pytest.raises(ValueError, match="CameraRig.paths"):
        CameraRig([])
    with pytest.raises(ValueError, match=r"CameraRig.paths\[0\]"):
        CameraRig(["camera"])
    with pytest.raises(ValueError, match=r"CameraRig.paths\[1\].*128x"):
        CameraRig([paths[0], camera_path("static", 5, 128, H)])


# ------------------------------------------------------------------------------------------ drawing


def _check_image(img, size=(640, 320)):
    assert img.shape == (size[1], size[0], 3) and img.dtype == torch.float32
    assert img.min() >= 0 and img.max() <= 1 and img.std() > 0.01


def test_draw_camera_path_shows_different_paths_differently():
    orbit = draw_camera_path(_path("orbit"), focus_depth=3.0)
    dolly = draw_camera_path(_path("dolly_zoom"), focus_depth=3.0)
    _check_image(orbit)
    _check_image(dolly)
    assert (orbit - dolly).abs().mean() > 0.005


def test_draw_camera_path_edge_cases_and_inputs():
    _check_image(draw_camera_path(_path("static")))
    _check_image(draw_camera_path(_path("pan", num_frames=1)))
    _check_image(draw_camera_path(camera_path("static", 1, W, H), size=(300, 150), focus_depth=2.0), (300, 150))
    rig = camera_rig(5, 6, W, H, arc_angle=60)
    a, b = draw_camera_path(rig, focus_depth=3.0), draw_camera_path(CameraRig(rig), focus_depth=3.0)
    _check_image(a)
    assert torch.equal(a, b)
    points = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)) + torch.tensor([0.0, 0.0, 4.0])
    with_points = draw_camera_path(_path("orbit"), focus_depth=3.0, scene_points=points)
    _check_image(with_points)
    assert (with_points - draw_camera_path(_path("orbit"), focus_depth=3.0)).abs().max() > 0.05
    points[::7] = float("nan")  # invalid depth in a lifted scene: dropped, it is only a preview
    _check_image(draw_camera_path(_path("orbit"), scene_points=points))


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: camera_path("spin", T, W, H), "preset"),
        (lambda: camera_path("static", 0, W, H), "num_frames"),
        (lambda: camera_path("static", 10001, W, H), "num_frames"),
        (lambda: camera_path("static", 2.5, W, H), "num_frames"),
        (lambda: camera_path("static", T, 0, H), "width"),
        (lambda: camera_path("static", T, W, 20000), "height"),
        (lambda: _path("orbit", focus_depth=0.0), "focus_depth"),
        (lambda: _path("orbit", focus_depth=float("nan")), "focus_depth"),
        (lambda: _path("static", fov=0.0), "fov"),
        (lambda: _path("static", fov=180.0), "fov"),
        (lambda: _path("static", fov="wide"), "fov"),
        (lambda: _path("static", focal=-3.0), "focal"),
        (lambda: _path("static", intrinsics=torch.eye(4)), "intrinsics"),
        (lambda: _path("static", intrinsics=torch.tensor([[0.0, 0, 1], [0, 1, 1], [0, 0, 1]])), "intrinsics"),
        (lambda: _path("dolly", easing="bounce"), "easing"),
        (lambda: _path("pan", distance=1.0), "distance"),
        (lambda: _path("static", angle=10.0), "angle"),
        (lambda: _path("pan", angle=float("inf")), "angle"),
        (lambda: _path("orbit", elevation=120.0), "elevation"),
        (lambda: _path("zoom", zoom=0.0), "zoom"),
        (lambda: _path("truck", distance="far"), "distance"),
        (lambda: _path("keyframes", keyframes=None), "keyframes"),
        (lambda: camera_rig(0, T, W, H), "num_cameras"),
        (lambda: camera_rig(3, T, W, H, arc_angle=-10.0), "arc_angle"),
        (lambda: camera_rig(3, T, W, H, focus_depth=-1.0), "focus_depth"),
        (lambda: camera_rig(3, T, W, H, tilt=3.0), "tilt"),
        (lambda: camera_rig(3, T, W, H, base=_path("dolly", num_frames=T + 1)), "base"),
        (lambda: camera_rig(3, T, W, H, base=_path("dolly"), fov=40.0), "fov"),
        (lambda: camera_rig(3, T, W, H, base="dolly"), "base"),
        (lambda: draw_camera_path("orbit"), "paths"),
        (lambda: draw_camera_path(_path("orbit"), size=(10, 10)), "size"),
        (lambda: draw_camera_path(_path("orbit"), size=640), "size"),
        (lambda: draw_camera_path(_path("orbit"), focus_depth=0.0), "focus_depth"),
        (lambda: draw_camera_path(_path("orbit"), scene_points=torch.zeros(10, 2)), "scene_points"),
    ],
)
def test_bad_parameters_name_the_parameter(call, needle):
    with pytest.raises(ValueError) as e:
        call()
    assert needle in str(e.value)


def test_unknown_parameter_lists_the_accepted_ones():
    with pytest.raises(ValueError) as e:
        _path("pan", distance=1.0)
    msg = str(e.value)
    assert "distance" in msg and "angle" in msg and "fov" in msg and "pan" in msg
