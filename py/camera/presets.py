"""Camera presets: the cinematic moves of GS-DiT's camera control, as a registry.

Every move is one :class:`Preset` in :data:`CAMERA_PRESETS`: its name, the parameters it takes (names
from :data:`PARAMS`, with this preset's defaults), its motion function and the line that documents it.
Everything that lists presets reads these two tables: :func:`camera_path` (the dispatch and its
docstring), the CameraPath node's widgets (nodes/camera.py), the browser preview's fields and the
frontend's widget list (both from the node's inputs) and the README's table (:func:`preset_table`).
So a new move is one entry in :data:`CAMERA_PRESETS`, its motion function, and its test.

A motion function takes a :class:`Move` (the checked inputs: frame count, size, base intrinsics, focus
depth, easing and this preset's parameter values) and returns a :class:`Motion`: camera-to-world
rotations, camera centres and focal factors per frame, in float64, relative to the source view.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import torch

from ..checks import check_finite_number, check_positive_int, check_vector
from .geometry import (
    POSE_DTYPE,
    CameraPath,
    base_intrinsics,
    check_positive,
    euler_rotation,
    focal_from_fov,
    look_at,
    orbit_pose,
    pose_matrices,
    scale_focal,
    slerp,
)
from .source import poses_from_matrices, rebased, rigid_inverse, relative_to_source, retarget_poses, scale_poses, smooth_poses

EASINGS = ("linear", "ease_in_out")
# camera_path's keywords for every preset; fov, focus_depth and easing are also widgets (PARAMS, scope "path").
COMMON_KEYWORDS = ("fov", "focal", "intrinsics", "focus_depth", "easing")


def _check_elevation(name: str, value) -> float:
    return check_finite_number(name, value, low=-90.0, high=90.0)


def _check_camera_path(name: str, value) -> CameraPath:
    if isinstance(value, CameraPath):
        return value
    count = len(getattr(value, "paths", ()) or ())
    got = f"a rig of {count} cameras" if count else type(value).__name__
    raise ValueError(f"{name}: expected one camera path (VID4D_CAMERA_PATH, e.g. Estimate Camera's camera), got {got}")


def _check_smoothing(name: str, value) -> float:
    return check_finite_number(name, value, low=0.0, high=MAX_SMOOTHING)


def _check_follow(name: str, value) -> float:
    return check_finite_number(name, value, low=-10.0, high=10.0)


MAX_SMOOTHING = 200.0  # frames (σ); the fit's window is ±3σ


@dataclass(frozen=True)
class Param:
    """A parameter of the moves and the CameraPath widget that sets it.

    ``kind``: ``FLOAT``, ``INT``, ``COMBO`` (``options["choices"]``) or ``JSON`` (a multiline STRING
    widget the node parses); ``default`` is the widget's default; ``options`` the widget's
    min/max/step/round. ``scope``: ``preset`` = only the presets that list it (the widget's tooltip
    names them), ``path`` = every preset (camera_path's common keywords), ``rig`` = the node's
    multi-camera rig (:func:`camera_rig`). ``check(name, value) -> value`` validates a value given to
    :func:`camera_path`; ``unit`` follows defaults in the tables.
    """

    name: str
    kind: str
    default: Any
    tooltip: str
    options: Mapping[str, Any] = field(default_factory=dict)
    scope: str = "preset"
    check: Callable[[str, Any], Any] | None = None
    unit: str = ""


@dataclass(frozen=True)
class Computed:
    """A preset default that is not a constant: ``None`` reaches the motion function, ``text`` documents it."""

    text: str


REQUIRED = Computed("required")


class Motion(NamedTuple):
    """A move relative to the source view, float64: camera-to-world ``rotation [T, 3, 3]``, ``centre [T, 3]``
    (world = the source camera at frame 0) and ``focal_scale [T]`` (fx, fy and skew times it).

    ``source``: for a move in the world of a solved source camera (stabilize, transfer, ...), that
    camera (the :class:`CameraPath` whose motion the pseudo field holds); the path is rendered as
    W_t·S_t⁻¹ (:func:`~vid4d.py.camera.source.relative_to_source`). None: the move is relative to the
    source camera at each time, as every other preset's."""

    rotation: torch.Tensor
    centre: torch.Tensor
    focal_scale: torch.Tensor
    source: CameraPath | None = None

    @classmethod
    def still(cls, num_frames: int) -> "Motion":
        """The source view held for every frame (exact identity)."""
        return cls(torch.eye(3, dtype=POSE_DTYPE).expand(num_frames, 3, 3).clone(), torch.zeros(num_frames, 3, dtype=POSE_DTYPE),
                   torch.ones(num_frames, dtype=POSE_DTYPE))


@dataclass(frozen=True)
class Move:
    """What a preset's motion function gets, all checked: ``intrinsics`` is the ``[3, 3]`` float64 base
    camera, ``params`` this preset's parameters with defaults filled in (``None`` for a :class:`Computed` one)."""

    num_frames: int
    width: int
    height: int
    intrinsics: torch.Tensor
    focus_depth: float
    easing: str
    params: Mapping[str, Any]

    def progress(self) -> torch.Tensor:
        """``[T]`` float64 progress p = ease(t / (T − 1)): exactly 0 at frame 0 and 1 at the last frame (0 for T = 1)."""
        if self.num_frames == 1:
            return torch.zeros(1, dtype=POSE_DTYPE)
        return ease(torch.arange(self.num_frames, dtype=POSE_DTYPE) / (self.num_frames - 1), self.easing)


@dataclass(frozen=True)
class Preset:
    """One camera move: ``params`` maps parameter names (keys of :data:`PARAMS`) to this preset's default
    (a value, or :class:`Computed`); ``doc`` is its line in the tables ("motion and sign"), ``details`` an
    optional longer paragraph for :func:`camera_path`'s docstring."""

    name: str
    params: Mapping[str, Any]
    motion: Callable[[Move], Motion]
    doc: str
    details: str = ""

    def signature(self) -> str:
        """The parameters with their defaults as the tables show them, e.g. ``angle=30°, elevation=0°``."""
        parts = []
        for name, default in self.params.items():
            if default is REQUIRED:
                parts.append(f"{name} (required)")
            elif isinstance(default, Computed):
                parts.append(f"{name}={default.text}")
            else:
                parts.append(f"{name}={default:g}{PARAMS[name].unit}")
        return ", ".join(parts)


def ease(s: torch.Tensor, easing: str) -> torch.Tensor:
    """Progress through a move: ``linear`` keeps s, ``ease_in_out`` is smoothstep 3s² − 2s³ (s in [0, 1])."""
    return s if check_easing(easing) == "linear" else s * s * (3.0 - 2.0 * s)


def check_easing(easing) -> str:
    easing = "linear" if easing is None else easing
    if easing not in EASINGS:
        raise ValueError(f"easing: expected one of {', '.join(EASINGS)}, got {easing!r}")
    return easing


# ---------------------------------------------------------------------------------------------------
# The parameters, in the CameraPath node's widget order: saved workflows store widget values by
# position, so a new parameter goes at the end (and a preset reuses a parameter where the meaning fits).
# ---------------------------------------------------------------------------------------------------

PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("fov", "FLOAT", 60.0, "horizontal field of view when no source camera is connected", dict(min=1.0, max=179.0, step=0.1, round=0.01), scope="path"),
    Param("focus_depth", "FLOAT", 3.0, "distance of the subject: orbit/arc turn around it, dolly zoom keeps it framed",
          dict(min=0.01, max=1e4, step=0.01, round=0.001), scope="path"),
    Param("angle", "FLOAT", 30.0, "degrees", dict(min=-3600.0, max=3600.0, step=0.5, round=0.01), check=check_finite_number, unit="°"),
    Param("distance", "FLOAT", 0.5, "scene units", dict(min=-1e4, max=1e4, step=0.01, round=0.001), check=check_finite_number),
    Param("zoom", "FLOAT", 1.5, "focal factor at the end", dict(min=0.05, max=20.0, step=0.01, round=0.001), check=check_positive),
    Param("elevation", "FLOAT", 0.0, "degrees the camera rises above the subject", dict(min=-89.0, max=89.0, step=0.5, round=0.01), check=_check_elevation, unit="°"),
    Param("easing", "COMBO", "ease_in_out", "linear, or ease_in_out: smoothstep, the camera starts and stops gently", dict(choices=EASINGS), scope="path"),
    Param("cameras", "INT", 1, "more than 1: a rig of synchronized cameras", dict(min=1, max=64, step=1), scope="rig"),
    Param("rig_angle", "FLOAT", 30.0, "arc the rig's cameras are spread over (degrees)", dict(min=0.0, max=360.0, step=0.5, round=0.01), scope="rig"),
    Param("keyframes", "JSON", "[]",
          'JSON list of keys: [{"frame": 0, "position": [0,0,0], "look_at": [0,0,3]}, {"frame": 24, "position": [1,0,0.5], "look_at": [0,0,3], "fov": 50}]',
          dict(multiline=True)),
    # Moves relative to the solved source path (py/camera/source.py): sockets, then their widgets.
    Param("source_path", "CAMERA_PATH", None,
          "the solved source camera (Estimate Camera's camera, frame 0 = identity): the camera motion the pseudo field holds",
          check=_check_camera_path),
    Param("reference_path", "CAMERA_PATH", None,
          "a camera path whose move is used: transfer copies it (another video's solved camera); follow_source and stabilize add it on top "
          "(any CameraPath, e.g. an orbit)", check=_check_camera_path),
    Param("follow", "FLOAT", 1.0, "share of the source camera's move kept: 1 = as shot, 0 = locked off at frame 0, 0.5 = half",
          dict(min=-10.0, max=10.0, step=0.05, round=0.001), check=_check_follow),
    Param("smoothing", "FLOAT", 8.0, "frames: shake faster than this is removed (σ of a Gaussian-weighted local linear fit)",
          dict(min=0.0, max=MAX_SMOOTHING, step=0.5, round=0.01), check=_check_smoothing, unit=" frames"),
    Param("reference_depth", "FLOAT", 1.0,
          "focus (or median) depth of reference_path's scene in its units (1 for a camera solved without depth); translation × focus_depth / reference_depth",
          dict(min=0.001, max=1e4, step=0.01, round=0.001), check=check_positive),
)}


# ---------------------------------------------------------------------------------------------------
# Motion functions
# ---------------------------------------------------------------------------------------------------


def _static(move: Move) -> Motion:
    return Motion.still(move.num_frames)


def _orbit(move: Move) -> Motion:
    p = move.progress()
    rot, centre = orbit_pose(move.params["angle"] * p, move.params["elevation"] * p, move.focus_depth)
    return Motion(rot, centre, torch.ones_like(p))


def _arc(move: Move) -> Motion:
    p = move.progress()
    yaw, elevation = 0.5 * move.params["angle"] * torch.sin(2 * math.pi * p), move.params["elevation"] * torch.sin(math.pi * p)
    rot, centre = orbit_pose(yaw, elevation, move.focus_depth)
    return Motion(rot, centre, torch.ones_like(p))


def _turn(axis: int) -> Callable[[Move], Motion]:
    """Pan (axis 0 = yaw), tilt (1 = pitch) or roll (2) by angle·p about the camera centre."""

    def motion(move: Move) -> Motion:
        a = move.params["angle"] * move.progress()
        angles = [torch.zeros_like(a)] * 3
        angles[axis] = a
        return Motion(euler_rotation(*angles), torch.zeros(a.shape[0], 3, dtype=POSE_DTYPE), torch.ones_like(a))

    return motion


def _translate(axis: int, sign: float) -> Callable[[Move], Motion]:
    """Dolly (z), truck (x) or pedestal (−y: up) by distance·p."""

    def motion(move: Move) -> Motion:
        still = Motion.still(move.num_frames)
        still.centre[:, axis] = sign * (move.params["distance"] * move.progress())
        return still

    return motion


def _dolly_zoom(move: Move) -> Motion:
    d = move.focus_depth
    distance = 0.5 * d if move.params["distance"] is None else move.params["distance"]
    if distance >= d:
        raise ValueError(f"distance: a dolly zoom must stay in front of the subject, expected distance < focus_depth = {d:g}, got {distance:g}")
    still = Motion.still(move.num_frames)
    dz = distance * move.progress()
    still.centre[:, 2] = dz
    return Motion(still.rotation, still.centre, (d - dz) / d)  # f_t = f_0 (d − Δz_t) / d keeps the focus plane's image size


def _zoom(move: Move) -> Motion:
    still = Motion.still(move.num_frames)
    return Motion(still.rotation, still.centre, 1.0 + (move.params["zoom"] - 1.0) * move.progress())


_KEY_FIELDS = ("frame", "t", "position", "look_at", "angles", "quaternion", "fov", "focal")

_KEYFRAMES_DETAILS = """\
Keyframes: a list (or a JSON string of a list) of dicts, each with
    ``frame`` (int in [0, T-1]) or ``t`` (in [0, 1], frame = t·(T-1));
    ``position`` [x, y, z] (required): the camera centre in world coordinates;
    orientation, at most one of: ``look_at`` [x, y, z] (world up = −y, no roll; looking straight
        up or down keeps image right = +x), ``angles`` [yaw, pitch, roll] in degrees (the pan/tilt/
        roll signs above), ``quaternion`` [w, x, y, z] (camera-to-world); none = identity;
    ``fov`` (horizontal degrees) or ``focal`` (pixels), optional, default the base focal.
Keys are sorted by frame; the first and last are held outside their range. Between keys:
positions follow a Catmull-Rom spline timed by frame (a cubic Hermite through the keys with the
tangent at a key = (P[i+1] − P[i−1]) / (frame[i+1] − frame[i−1]), one-sided at the ends, so two
keys give a straight line at constant speed); rotations slerp between consecutive keys along the
short way (the quaternion sign is flipped when needed); the focal length is linear in f (the image
magnification changes at a constant rate). ``easing="ease_in_out"`` eases each segment, so the
camera slows into and out of every key (same curve, different timing), and every key is still
reached exactly at its frame."""


def _parse_keyframes(keyframes, num_frames: int, width: int, k0: torch.Tensor) -> list[tuple[float, torch.Tensor, torch.Tensor, float]]:
    """Sorted keys as (frame, centre [3], camera-to-world rotation [3, 3], focal factor)."""
    from kornia.geometry.conversions import quaternion_to_rotation_matrix

    if keyframes is None:
        raise ValueError("keyframes: the keyframes preset needs a list of keys, e.g. [{'frame': 0, 'position': [0, 0, 0]}], got none")
    if isinstance(keyframes, str):
        try:
            keyframes = json.loads(keyframes)
        except json.JSONDecodeError as e:
            raise ValueError(f"keyframes: expected a JSON list of keys, got invalid JSON ({e})") from None
    if not isinstance(keyframes, (list, tuple)) or len(keyframes) < 1:
        raise ValueError(f"keyframes: expected a list of at least 1 key (dicts with frame/t and position), got {keyframes!r}")

    def vector(name: str, value, size: int) -> torch.Tensor:
        return torch.tensor(check_vector(name, value, size), dtype=POSE_DTYPE)

    keys = []
    for i, key in enumerate(keyframes):
        name = f"keyframes[{i}]"
        if not isinstance(key, dict):
            raise ValueError(f"{name}: expected a dict with frame/t and position, got {key!r}")
        unknown = sorted(set(key) - set(_KEY_FIELDS))
        if unknown:
            raise ValueError(f"{name}.{unknown[0]}: not a keyframe field; accepted: {', '.join(_KEY_FIELDS)}")
        if ("frame" in key) == ("t" in key):
            given = sorted(k for k in key if k in ("frame", "t"))
            raise ValueError(f"{name}: expected exactly one of 'frame' (0..{num_frames - 1}) or 't' (0..1), got {given}")
        if "frame" in key:
            frame = float(check_positive_int(f"{name}.frame", key["frame"], minimum=0, maximum=num_frames - 1))
        else:
            frame = check_finite_number(f"{name}.t", key["t"], low=0.0, high=1.0) * (num_frames - 1)
        if "position" not in key:
            raise ValueError(f"{name}.position: missing; expected the camera centre [x, y, z] in world coordinates")
        position = vector(f"{name}.position", key["position"], 3)
        orientations = [k for k in ("look_at", "angles", "quaternion") if k in key]
        if len(orientations) > 1:
            raise ValueError(f"{name}: expected at most one of look_at, angles, quaternion, got {orientations}")
        if "look_at" in key:
            target = vector(f"{name}.look_at", key["look_at"], 3)
            if float((target - position).norm()) < 1e-9:
                raise ValueError(f"{name}.look_at: expected a point other than the position {position.tolist()}, got {target.tolist()}")
            rot = look_at(position, target)
        elif "angles" in key:
            yaw, pitch, roll = vector(f"{name}.angles", key["angles"], 3)
            rot = euler_rotation(yaw[None], pitch[None], roll[None])[0]
        elif "quaternion" in key:
            q = vector(f"{name}.quaternion", key["quaternion"], 4)
            if float(q.norm()) < 1e-9:
                raise ValueError(f"{name}.quaternion: expected a non-zero [w, x, y, z], got {q.tolist()}")
            rot = quaternion_to_rotation_matrix(q / q.norm())
        else:
            rot = torch.eye(3, dtype=POSE_DTYPE)
        if key.get("fov") is not None and key.get("focal") is not None:
            raise ValueError(f"{name}: expected at most one of fov, focal")
        factor = 1.0
        if key.get("fov") is not None:
            factor = focal_from_fov(key["fov"], width, name=f"{name}.fov") / float(k0[0, 0])
        elif key.get("focal") is not None:
            factor = check_positive(f"{name}.focal", key["focal"]) / float(k0[0, 0])
        keys.append((frame, position, rot, factor))
    keys.sort(key=lambda k: k[0])
    for a, b in zip(keys, keys[1:]):
        if b[0] - a[0] < 1e-9:
            raise ValueError(f"keyframes: expected one key per frame, got two at frame {a[0]:g}")
    return keys


def _keyframes(move: Move) -> Motion:
    """Through the keys (see ``_KEYFRAMES_DETAILS``): a Catmull-Rom spline of positions, slerp of rotations, linear focal."""
    from kornia.geometry.conversions import quaternion_to_rotation_matrix, rotation_matrix_to_quaternion

    num_frames = move.num_frames
    keys = _parse_keyframes(move.params["keyframes"], num_frames, move.width, move.intrinsics)
    frames = torch.tensor([k[0] for k in keys], dtype=POSE_DTYPE)
    pos = torch.stack([k[1] for k in keys])
    quat = rotation_matrix_to_quaternion(torch.stack([k[2] for k in keys]), eps=1e-12)
    factor = torch.tensor([k[3] for k in keys], dtype=POSE_DTYPE)
    n = len(keys)

    # Catmull-Rom tangents in units per frame: neighbours' secant, one-sided at the ends.
    tangent = torch.zeros_like(pos)
    if n > 1:
        tangent[1:-1] = (pos[2:] - pos[:-2]) / (frames[2:] - frames[:-2])[:, None]
        tangent[0] = (pos[1] - pos[0]) / (frames[1] - frames[0])
        tangent[-1] = (pos[-1] - pos[-2]) / (frames[-1] - frames[-2])

    t = torch.arange(num_frames, dtype=POSE_DTYPE).clamp(float(frames[0]), float(frames[-1]))  # hold outside the keys
    seg = (torch.searchsorted(frames, t, right=True) - 1).clamp(0, max(n - 2, 0))
    if n == 1:
        return Motion(quaternion_to_rotation_matrix(quat).expand(num_frames, 3, 3).clone(), pos.expand(num_frames, 3).clone(), factor.expand(num_frames).clone())
    span = frames[seg + 1] - frames[seg]
    u = ease(((t - frames[seg]) / span).clamp(0.0, 1.0), move.easing)[:, None]

    h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
    centre = h00 * pos[seg] + h10 * span[:, None] * tangent[seg] + h01 * pos[seg + 1] + h11 * span[:, None] * tangent[seg + 1]
    rot = quaternion_to_rotation_matrix(slerp(quat[seg], quat[seg + 1], u[:, 0]))
    scale = (1 - u[:, 0]) * factor[seg] + u[:, 0] * factor[seg + 1]
    return Motion(rot, centre, scale)


# --- moves relative to the solved source path (the maths: py/camera/source.py) ---------------------


def _source(move: Move, preset: str) -> tuple[CameraPath, torch.Tensor, torch.Tensor]:
    """source_path relative to its frame 0 (a solved path already is): the path, and its float64
    camera-to-world rotations and centres."""
    path = move.params["source_path"]
    if path is None:
        raise ValueError(f"source_path: {preset} needs the solved source camera (connect Estimate Camera's camera), got none")
    if path.num_frames != move.num_frames:
        raise ValueError(f"source_path: expected the source camera of the {move.num_frames} frames this path renders, got {path.num_frames} frames")
    m = rebased(path)
    return CameraPath(path.intrinsics.detach().cpu(), m.float(), path.width, path.height), *poses_from_matrices(m)


def _on_top(move: Move, rotation: torch.Tensor, centre: torch.Tensor, source: CameraPath) -> Motion:
    """reference_path's move (if any; relative to its frame 0, resampled) performed from the world poses
    (rotation, centre): W_t = M_t · B_t; the field holds ``source``."""
    added = move.params.get("reference_path")
    if added is None:
        return Motion(rotation, centre, torch.ones(move.num_frames, dtype=POSE_DTYPE), source)
    m_rot, m_centre, focal = retarget_poses(added, move.num_frames)
    w2c = pose_matrices(m_rot, m_centre) @ pose_matrices(rotation, centre)
    return Motion(*poses_from_matrices(w2c), focal, source)


def _follow_source(move: Move) -> Motion:
    source, rotation, centre = _source(move, "follow_source")
    if move.params["follow"] == 1.0 and move.params.get("reference_path") is None:
        return Motion.still(move.num_frames)  # exactly the source video back
    return _on_top(move, *scale_poses(rotation, centre, move.params["follow"]), source)


def _stabilize(move: Move) -> Motion:
    source, rotation, centre = _source(move, "stabilize")
    rotation, centre = smooth_poses(rotation, centre, move.params["smoothing"])
    # Re-anchored to start at the source view (frame 0 = the original frame): W_t = smooth_t·smooth_0⁻¹.
    w2c = pose_matrices(rotation, centre)
    return _on_top(move, *poses_from_matrices(w2c @ rigid_inverse(w2c[:1]).expand_as(w2c)), source)


def _transfer(move: Move) -> Motion:
    reference = move.params["reference_path"]
    if reference is None:
        raise ValueError("reference_path: transfer needs the camera path whose move it copies (e.g. another video's Estimate Camera), got none")
    source = None if move.params["source_path"] is None else _source(move, "transfer")[0]
    rotation, centre, focal = retarget_poses(reference, move.num_frames, move.focus_depth / move.params["reference_depth"])
    return Motion(rotation, centre, focal, source)


_SOURCE_DETAILS = """Relative to the solved source path (follow_source, stabilize, transfer; py/camera/source.py). The
pseudo field lives in the source camera's frame at each time: its time-t Gaussians are S_t·X, with
S_t the solved source camera's world_to_camera (``source_path``, world = the source camera at frame
0) and X the world point. So every other preset, rendered on it, is relative to the source camera at
each time: on a hand-held clip it keeps the shake and the source move and adds its own, and its
identity (e.g. orbit by 0) renders the source video back. These three presets make a world path W_t
(world_to_camera) and render it as P_t = W_t·S_t⁻¹:
    follow_source: W_t = M_t·S_t^a, a = ``follow``; S^a turns each camera by a times its rotation
        angle (same axis) and moves its centre to a·C_t. a = 1 without M gives exactly the identity.
    stabilize: W_t = M_t·Z_t·Z_0⁻¹, Z = smooth(S): a Gaussian-weighted local linear fit over ±3σ
        frames (σ = ``smoothing``) of the centres and of the rotations in the tangent space at each
        frame (constant-velocity moves are kept, also at the clip's ends; σ = 0 = as shot), moved
        rigidly to start at the source view, so frame 0 is the original frame.
    transfer: W_t = R'_t, the move of ``reference_path`` R relative to its own frame 0 (R_τ·R_0⁻¹),
        sampled at τ = t·(T_R − 1)/(T − 1) (rotations along the geodesic, centres linearly), centres
        × focus_depth / ``reference_depth``, focal × f_τ/f_0. Without source_path, S = identity: the
        move is added to whatever the field holds (a still camera, a first_frame field).
M_t: ``reference_path``'s move (follow_source, stabilize; optional), relative to its frame 0 and
resampled the same way, performed from the camera at each time: any CameraPath, e.g. an orbit.
``source_path`` is taken relative to its own frame 0 (a solved path already is), so frame 0 of every
one of these paths is the source view.
With ``cameras`` > 1 the rig is placed in the world: camera k renders W_t·O_k·S_t⁻¹. A field that
holds no camera motion (a first_frame lift, an imported PLY) needs no source_path: render a world
path W on it directly (transfer without source_path)."""


# ---------------------------------------------------------------------------------------------------
# The registry: one entry per preset, in the order of the node's menu
# ---------------------------------------------------------------------------------------------------

CAMERA_PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("static", {}, _static, "identity every frame"),
    Preset("orbit", {"angle": 30.0, "elevation": 0.0}, _orbit,
           "circles F at radius focus_depth looking at F, yaw angle·p: + = the camera moves to its right (to +x; the scene seems "
           "to turn the other way); orbit 90° puts the centre at (+d, 0, d). elevation·p: + = rises above F (to −y), looking down at it"),
    Preset("arc", {"angle": 30.0, "elevation": 0.0}, _arc,
           "swings both ways around F looking at F: yaw(t) = (angle/2)·sin(2π·p) (+ = first to the right), rising by "
           "elevation·sin(π·p); ends at the source view"),
    Preset("dolly", {"distance": 1.0}, _translate(2, 1.0), "centre at (0, 0, distance·p): + = forward"),
    Preset("dolly_zoom", {"distance": Computed("0.5·focus_depth")}, _dolly_zoom,
           "centre at (0, 0, Δz), Δz = distance·p (+ = forward, − = pull back), f_t = f_0·(d − Δz)/d: the focus plane keeps its "
           "image size while the background swells or shrinks. Needs distance < d"),
    Preset("pan", {"angle": 15.0}, _turn(0), "yaw about the centre, + = turn right (a point ahead moves left in the image)"),
    Preset("tilt", {"angle": 15.0}, _turn(1), "pitch about the centre, + = look up (a point ahead moves down in the image)"),
    Preset("roll", {"angle": 15.0}, _turn(2),
           "about the optical axis, + = the camera turns clockwise as seen from behind it (its top goes right), so the image "
           "content turns counter-clockwise"),
    Preset("truck", {"distance": 0.5}, _translate(0, 1.0), "centre at (distance·p, 0, 0): + = right"),
    Preset("pedestal", {"distance": 0.5}, _translate(1, -1.0), "centre at (0, −distance·p, 0): + = up"),
    Preset("zoom", {"zoom": 1.5}, _zoom, "pose fixed, focal × (1 + (zoom − 1)·p) (zoom > 0)"),
    Preset("keyframes", {"keyframes": REQUIRED}, _keyframes,
           "starts at the first key and passes through every key at its frame: positions on a Catmull-Rom spline, rotations "
           "slerped, focal linear (keys: frame or t, position, look_at / angles / quaternion, fov / focal)",
           details=_KEYFRAMES_DETAILS),
    Preset("follow_source", {"source_path": REQUIRED, "follow": 1.0, "reference_path": Computed("none")}, _follow_source,
           "the solved source camera S (source_path), which the pseudo field already holds, kept at follow × its move (1 = as shot: the "
           "identity, the source video back; 0 = locked off at frame 0), with reference_path's move M (e.g. an orbit CameraPath) on top: "
           "renders M_t·S_t^follow·S_t⁻¹", details=_SOURCE_DETAILS),
    Preset("stabilize", {"source_path": REQUIRED, "smoothing": 8.0, "reference_path": Computed("none")}, _stabilize,
           "the solved source camera S (source_path) with its shake removed: a Gaussian-weighted local linear fit over ±3·smoothing frames "
           "of its centres and rotations (constant-speed moves kept; moved to start at the source view), reference_path's move M on top: "
           "renders M_t·smooth(S)_t·S_t⁻¹"),
    Preset("transfer", {"reference_path": REQUIRED, "reference_depth": 1.0, "source_path": Computed("none")}, _transfer,
           "the move of reference_path R (another video's solved camera) on this clip: relative to its frame 0, resampled to num_frames, "
           "translation × focus_depth / reference_depth, focal × f_t/f_0; with source_path S it replaces the source move (renders "
           "R'_t·S_t⁻¹), without it is added to the field's"),
)}
PRESETS = tuple(CAMERA_PRESETS)  # the names, in menu order (the registry is the source)


def get_preset(name) -> Preset:
    """The registry entry of ``name``; a ValueError listing the presets otherwise."""
    if not isinstance(name, str) or name not in CAMERA_PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(CAMERA_PRESETS)}, got {name!r}")
    return CAMERA_PRESETS[name]


def param_users(name: str) -> list[str]:
    """The presets that take parameter ``name``, in menu order."""
    return [p.name for p in CAMERA_PRESETS.values() if name in p.params]


# ---------------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------------


def camera_path(preset: str, num_frames: int, width: int, height: int, **params) -> CameraPath:
    return relative_to_source(*camera_move(preset, num_frames, width, height, **params))


def camera_move(preset: str, num_frames: int, width: int, height: int, **params) -> tuple[CameraPath, CameraPath | None]:
    """The preset's move and the solved source camera it is a world path for: ``(W, S)``.

    :func:`camera_path` renders ``relative_to_source(W, S)`` (W_t·S_t⁻¹; S None for every preset
    that is relative to the source camera at each time, then W is the path). A rig goes in between:
    the CameraPath node renders camera k as W_t·O_k·S_t⁻¹. Parameters as :func:`camera_path`.
    """
    entry = get_preset(preset)
    num_frames = check_positive_int("num_frames", num_frames, maximum=10000)
    width = check_positive_int("width", width, maximum=16384)
    height = check_positive_int("height", height, maximum=16384)
    accepted = COMMON_KEYWORDS + tuple(entry.params)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a parameter of preset {preset!r}; accepted: {', '.join(accepted)}")
    k0 = base_intrinsics(width, height, fov=params.get("fov"), focal=params.get("focal"), intrinsics=params.get("intrinsics"))
    focus_depth = check_positive("focus_depth", 3.0 if params.get("focus_depth") is None else params["focus_depth"])
    easing = check_easing(params.get("easing"))
    values = {}
    for name, default in entry.params.items():
        # None means "the default", so a node can forward unset widgets as None.
        value = params.get(name)
        if value is None:
            value = None if isinstance(default, Computed) else default
        check = PARAMS[name].check
        values[name] = check(name, value) if check is not None and value is not None else value
    motion = entry.motion(Move(num_frames, width, height, k0, focus_depth, easing, values))
    path = CameraPath(scale_focal(k0, motion.focal_scale).float(), pose_matrices(motion.rotation, motion.centre).float(), width, height)
    return path, motion.source


_CAMERA_PATH_DOC = """A scheduled camera for GS-DiT: ``num_frames`` poses and intrinsics relative to the source view.

World = the source camera at frame 0 (OpenCV axes: x right, y down, z forward), so the identity
pose is the original view. The subject is the focus point F = (0, 0, ``focus_depth``) straight
ahead. Every move is driven by a progress p = ease(s), s = t / (T - 1) going from 0 at frame 0 to 1
at the last frame (s = 0 for a single frame); ``easing="ease_in_out"`` uses the smoothstep
3s² - 2s³, so the camera starts and stops without a jolt.

Parameters common to every preset:
    fov: horizontal field of view in degrees, in (0, 180); default 60.
    focal: focal length in pixels (> 0), overrides ``fov``.
    intrinsics: ``[3, 3]`` source camera matrix, overrides both (pass it when the source camera is
        known; moves that change the focal scale fx, fy and the skew and keep cx, cy).
    focus_depth: depth of the subject F in scene units (> 0); default 3.
    easing: ``"linear"`` (default) or ``"ease_in_out"``.

Presets, from the registry :data:`CAMERA_PRESETS` (parameters with their defaults; sign conventions in
camera terms, "right", "up" as the camera sees it at frame 0; d = focus_depth):

<presets>

In matrices: yaw ψ, pitch θ, roll φ give the camera-to-world rotation R_y(ψ) R_x(θ) R_z(φ) (yaw
first, then pitch about the turned camera's x, then roll about its optical axis), with
R_y(ψ) z = (sin ψ, 0, cos ψ), R_x(θ) z = (0, −sin θ, cos θ), R_z(φ) x = (cos φ, sin φ, 0).

<details>

Returns:
    :class:`CameraPath` with float32 CPU tensors ``intrinsics [T, 3, 3]`` and
    ``world_to_camera [T, 4, 4]``.

Raises:
    ValueError: naming the parameter, what was expected and what came.
"""


def preset_docs(width: int = 100) -> str:
    """The presets as camera_path's docstring lists them: ``name: parameters`` and the wrapped doc line."""
    lines = []
    for p in CAMERA_PRESETS.values():
        lines.append(f"{p.name}: {p.signature() or 'no parameters'}")
        lines += textwrap.wrap(p.doc, width - 4, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(lines)


def preset_table() -> str:
    """The presets as a markdown table: the README's "Camera presets" section (a test keeps the two equal)."""
    rows = ["| preset | parameters (default) | motion and sign |", "| --- | --- | --- |"]
    rows += [f"| `{p.name}` | {p.signature() or '–'} | {p.doc} |" for p in CAMERA_PRESETS.values()]
    return "\n".join(rows)


camera_path.__doc__ = (_CAMERA_PATH_DOC.replace("<presets>", textwrap.indent(preset_docs(), "    "))
                       .replace("<details>", "\n\n".join(p.details for p in CAMERA_PRESETS.values() if p.details)))
