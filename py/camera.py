"""Scheduled pinhole cameras: one intrinsic and one extrinsic matrix per frame.

Conventions (see the library contract): OpenCV camera axes (x right, y down, z forward), pixel
centres at integer coordinates with (0, 0) the centre of the top-left pixel, ``world_to_camera`` a
rigid 4x4 transform, intrinsics 3x3 in pixels. Paths made for GS-DiT are relative to the source
camera at frame 0, so the identity pose is the original view.

Cinematic controls (GS-DiT spec, "Cinematic controls"): :func:`camera_path` makes the preset moves
(orbit, arc, dolly, dolly zoom, pan/tilt/roll, truck, pedestal, zoom, keyframed paths),
:func:`camera_rig` the synchronized multi-camera rigs, and :func:`draw_camera_path` a top/side
diagram of either, so a user sees the move before anything is rendered.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch

from .checks import TensorData, check_finite_number, check_positive_int, check_tensor

_RIGID_TOL = 1e-3


@dataclass
class CameraPath(TensorData):
    """A camera per frame.

    Attributes:
        intrinsics: ``[T, 3, 3]`` pinhole matrices in pixels (fx, fy > 0, no skew row terms).
        world_to_camera: ``[T, 4, 4]`` rigid transforms (OpenCV axes).
        width, height: image size in pixels the intrinsics refer to.
    """

    intrinsics: torch.Tensor
    world_to_camera: torch.Tensor
    width: int
    height: int

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("CameraPath.intrinsics", self.intrinsics, ("T", 3, 3), dims=dims)
        check_tensor("CameraPath.world_to_camera", self.world_to_camera, ("T", 4, 4), dims=dims)
        self.width = check_positive_int("CameraPath.width", self.width, maximum=16384)
        self.height = check_positive_int("CameraPath.height", self.height, maximum=16384)
        k = self.intrinsics.double()
        if bool((k[:, 0, 0] <= 0).any()) or bool((k[:, 1, 1] <= 0).any()):
            raise ValueError("CameraPath.intrinsics: focal lengths fx = K[0,0] and fy = K[1,1] must be > 0")
        bottom = torch.tensor([0.0, 0.0, 1.0], dtype=k.dtype, device=k.device)
        if not torch.allclose(k[:, 2, :], bottom.expand_as(k[:, 2, :]), atol=1e-6) or bool((k[:, 1, 0].abs() > 1e-6).any()):
            raise ValueError("CameraPath.intrinsics: expected rows [fx, s, cx], [0, fy, cy], [0, 0, 1]")
        m = self.world_to_camera.double()
        last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=m.dtype, device=m.device)
        if not torch.allclose(m[:, 3, :], last.expand_as(m[:, 3, :]), atol=1e-6):
            raise ValueError("CameraPath.world_to_camera: the last row of every 4x4 matrix must be [0, 0, 0, 1]")
        r = m[:, :3, :3]
        eye = torch.eye(3, dtype=m.dtype, device=m.device)
        err = (r @ r.transpose(1, 2) - eye).abs().amax()
        if float(err) > _RIGID_TOL or bool((torch.linalg.det(r) < 0).any()):
            raise ValueError(f"CameraPath.world_to_camera: rotation part must be orthonormal with det +1 (max error {float(err):.3g})")

    @property
    def num_frames(self) -> int:
        return int(self.intrinsics.shape[0])

    def __len__(self) -> int:
        return self.num_frames

    def camera_to_world(self) -> torch.Tensor:
        """``[T, 4, 4]`` inverse of ``world_to_camera`` (exact for rigid transforms)."""
        r = self.world_to_camera[:, :3, :3]
        t = self.world_to_camera[:, :3, 3:]
        out = torch.zeros_like(self.world_to_camera)
        out[:, :3, :3] = r.transpose(1, 2)
        out[:, :3, 3:] = -r.transpose(1, 2) @ t
        out[:, 3, 3] = 1
        return out

    def centers(self) -> torch.Tensor:
        """``[T, 3]`` camera centres in world coordinates."""
        return self.camera_to_world()[:, :3, 3]

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points ``[T, N, 3]`` (or ``[N, 3]``, the same for every frame) → pixels ``[T, N, 2]``, depth ``[T, N]``.

        Depth is the camera-space z; points behind the camera get a non-positive depth and
        meaningless pixel coordinates, so callers mask on ``depth > 0``.
        """
        if points.dim() == 2:
            points = points.unsqueeze(0).expand(self.num_frames, -1, -1)
        cam = points @ self.world_to_camera[:, :3, :3].transpose(1, 2) + self.world_to_camera[:, None, :3, 3]
        z = cam[..., 2]
        pix = cam @ self.intrinsics.transpose(1, 2)
        safe = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
        return pix[..., :2] / safe[..., None], z

    def unproject(self, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Pixels ``[T, N, 2]`` with depth ``[T, N]`` → world points ``[T, N, 3]``."""
        cam = unproject_pixels(uv, depth, self.intrinsics)
        c2w = self.camera_to_world()
        return cam @ c2w[:, :3, :3].transpose(1, 2) + c2w[:, None, :3, 3]

    @classmethod
    def static(cls, intrinsics: torch.Tensor, num_frames: int, width: int, height: int) -> "CameraPath":
        """The source view held for ``num_frames`` frames (identity pose)."""
        num_frames = check_positive_int("num_frames", num_frames)
        k = intrinsics.reshape(1, 3, 3).float().expand(num_frames, 3, 3).clone()
        pose = torch.eye(4, device=intrinsics.device).expand(num_frames, 4, 4).clone()
        return cls(k, pose, width, height)


def intrinsics_from_fov(fov_degrees: float, width: int, height: int, axis: str = "horizontal") -> torch.Tensor:
    """``[3, 3]`` pinhole matrix with square pixels and the principal point at the image centre.

    ``fov_degrees`` is the full field of view across the ``axis`` (``horizontal`` or ``vertical``).
    """
    if not 0.0 < fov_degrees < 180.0:
        raise ValueError(f"fov_degrees: expected a field of view in (0, 180) degrees, got {fov_degrees}")
    extent = width if axis == "horizontal" else height
    f = 0.5 * extent / math.tan(math.radians(fov_degrees) / 2)
    return torch.tensor([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``[H, W, 2]`` pixel centres (x, y), (0, 0) at the top-left pixel."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype), torch.arange(width, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([xs, ys], dim=-1)


def unproject_pixels(uv: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-space points ``[..., 3]`` = depth · K⁻¹ [u, v, 1] for pixels ``uv [..., 2]``, ``depth [...]``.

    ``intrinsics`` is ``[3, 3]`` or batched ``[B, 3, 3]`` matching the leading dimension of ``uv``.
    """
    k = intrinsics
    while k.dim() < uv.dim() + 1:
        k = k.unsqueeze(-3)
    fx, fy, cx, cy, s = k[..., 0, 0], k[..., 1, 1], k[..., 0, 2], k[..., 1, 2], k[..., 0, 1]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - s * y) / fx
    return torch.stack([x * depth, y * depth, depth], dim=-1)


# ---------------------------------------------------------------------------------------------------
# Cinematic camera paths
# ---------------------------------------------------------------------------------------------------

PRESETS = ("static", "orbit", "arc", "dolly", "dolly_zoom", "pan", "tilt", "roll", "truck", "pedestal", "zoom", "keyframes")
EASINGS = ("linear", "ease_in_out")

# Accepted by every preset, so a node can pass its whole widget set whatever the preset.
_COMMON_PARAMS = ("fov", "focal", "intrinsics", "focus_depth", "easing")
# Preset-specific parameters and their defaults (None: computed, see camera_path); nodes read it to
# pass each preset only the widgets it uses.
PRESET_PARAMS: dict[str, dict[str, object]] = {
    "static": {},
    "orbit": {"angle": 30.0, "elevation": 0.0},
    "arc": {"angle": 30.0, "elevation": 0.0},
    "dolly": {"distance": 1.0},
    "dolly_zoom": {"distance": None},
    "pan": {"angle": 15.0},
    "tilt": {"angle": 15.0},
    "roll": {"angle": 15.0},
    "truck": {"distance": 0.5},
    "pedestal": {"distance": 0.5},
    "zoom": {"zoom": 1.5},
    "keyframes": {"keyframes": None},
}
_KEY_FIELDS = ("frame", "t", "position", "look_at", "angles", "quaternion", "fov", "focal")
_DT = torch.float64  # poses are composed in float64 and rounded once, at the end


def camera_path(preset: str, num_frames: int, width: int, height: int, **params) -> CameraPath:
    """A scheduled camera for GS-DiT: ``num_frames`` poses and intrinsics relative to the source view.

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

    Presets (sign conventions in camera terms; "right", "up" as the camera sees it at frame 0):

    ============ ============================ ================ =====================================================
    preset       parameters (default)         frame 0          motion and sign
    ============ ============================ ================ =====================================================
    static       -                            identity         identity every frame
    orbit        angle=30°, elevation=0°      identity         circles F at radius focus_depth looking at F, yaw
                                                               angle·p: + = camera moves to its right (to +x; the
                                                               scene seems to turn the other way); orbit 90° puts
                                                               the centre at (+d, 0, d). elevation·p: + = rises
                                                               above F (to -y), looking down at it
    arc          angle=30°, elevation=0°      identity         swings both ways around F looking at F: yaw(t) =
                                                               (angle/2)·sin(2π·p) (+ = first to the right), rising
                                                               by elevation·sin(π·p); ends at the source view
    dolly        distance=1.0                 identity         centre at (0, 0, distance·p): + = forward
    dolly_zoom   distance=0.5·focus_depth     identity         centre at (0, 0, Δz), Δz = distance·p (+ = forward,
                                                               − = pull back), f_t = f_0·(d − Δz)/d: the focus
                                                               plane keeps its image size. Needs distance < d
    pan          angle=15°                    identity         yaw about the centre, + = turn right (a point ahead
                                                               moves left in the image)
    tilt         angle=15°                    identity         pitch about the centre, + = look up (a point ahead
                                                               moves down in the image)
    roll         angle=15°                    identity         about the optical axis, + = the camera turns
                                                               clockwise as seen from behind it (its top goes
                                                               right), so the image content turns counter-clockwise
    truck        distance=0.5                 identity         centre at (distance·p, 0, 0): + = right
    pedestal     distance=0.5                 identity         centre at (0, −distance·p, 0): + = up
    zoom         zoom=1.5                     identity         pose fixed, focal × (1 + (zoom − 1)·p) (zoom > 0)
    keyframes    keyframes (required)         first key        see below
    ============ ============================ ================ =====================================================

    In matrices: yaw ψ, pitch θ, roll φ give the camera-to-world rotation R_y(ψ) R_x(θ) R_z(φ) (yaw
    first, then pitch about the turned camera's x, then roll about its optical axis), with
    R_y(ψ) z = (sin ψ, 0, cos ψ), R_x(θ) z = (0, −sin θ, cos θ), R_z(φ) x = (cos φ, sin φ, 0).

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
    reached exactly at its frame.

    Returns:
        :class:`CameraPath` with float32 CPU tensors ``intrinsics [T, 3, 3]`` and
        ``world_to_camera [T, 4, 4]``.

    Raises:
        ValueError: naming the parameter, what was expected and what came.
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    num_frames = check_positive_int("num_frames", num_frames, maximum=10000)
    width = check_positive_int("width", width, maximum=16384)
    height = check_positive_int("height", height, maximum=16384)
    specific = PRESET_PARAMS[preset]
    accepted = _COMMON_PARAMS + tuple(specific)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a parameter of preset {preset!r}; accepted: {', '.join(accepted)}")
    k0 = _base_intrinsics(width, height, fov=params.get("fov"), focal=params.get("focal"), intrinsics=params.get("intrinsics"))
    focus_depth = _check_positive("focus_depth", 3.0 if params.get("focus_depth") is None else params["focus_depth"])
    easing = _check_easing(params.get("easing"))
    # None means "the default", so a node can forward unset widgets as None.
    values = {name: default if params.get(name) is None else params[name] for name, default in specific.items()}

    if preset == "keyframes":
        rot, centre, scale = _keyframe_motion(values["keyframes"], num_frames, width, k0, easing)
    else:
        p = _progress(num_frames, easing)
        rot, centre, scale = _preset_motion(preset, p, focus_depth, values)
    return CameraPath(_scale_focal(k0, scale).float(), _world_to_camera(rot, centre).float(), width, height)


def _preset_motion(preset: str, p: torch.Tensor, focus_depth: float, values: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Camera-to-world rotations ``[T, 3, 3]``, centres ``[T, 3]`` and focal factors ``[T]`` of a preset."""
    n = p.shape[0]
    rot = torch.eye(3, dtype=_DT).expand(n, 3, 3).clone()
    centre = torch.zeros(n, 3, dtype=_DT)
    scale = torch.ones(n, dtype=_DT)
    zero = torch.zeros(n, dtype=_DT)
    if preset in ("orbit", "arc"):
        angle = check_finite_number("angle", values["angle"])
        elevation = check_finite_number("elevation", values["elevation"], low=-90.0, high=90.0)
        if preset == "orbit":
            yaw, elev = angle * p, elevation * p
        else:
            yaw, elev = 0.5 * angle * torch.sin(2 * math.pi * p), elevation * torch.sin(math.pi * p)
        rot, centre = _orbit_pose(yaw, elev, focus_depth)
    elif preset in ("pan", "tilt", "roll"):
        a = check_finite_number("angle", values["angle"]) * p
        rot = _euler_rotation(a if preset == "pan" else zero, a if preset == "tilt" else zero, a if preset == "roll" else zero)
    elif preset in ("dolly", "truck", "pedestal"):
        d = check_finite_number("distance", values["distance"]) * p
        axis, sign = {"dolly": (2, 1.0), "truck": (0, 1.0), "pedestal": (1, -1.0)}[preset]  # pedestal up = −y
        centre[:, axis] = sign * d
    elif preset == "dolly_zoom":
        distance = values["distance"]
        distance = 0.5 * focus_depth if distance is None else check_finite_number("distance", distance)
        if distance >= focus_depth:
            raise ValueError(
                f"distance: a dolly zoom must stay in front of the subject, expected distance < focus_depth = {focus_depth:g}, got {distance:g}"
            )
        dz = distance * p
        centre[:, 2] = dz
        scale = (focus_depth - dz) / focus_depth  # f_t = f_0 (d − Δz_t) / d keeps the focus plane's image size
    elif preset == "zoom":
        zoom = _check_positive("zoom", values["zoom"])
        scale = 1.0 + (zoom - 1.0) * p
    return rot, centre, scale


def _check_positive(name: str, value) -> float:
    value = check_finite_number(name, value)
    if value <= 0:
        raise ValueError(f"{name}: expected a number > 0, got {value:g}")
    return value


def _check_easing(easing) -> str:
    easing = "linear" if easing is None else easing
    if easing not in EASINGS:
        raise ValueError(f"easing: expected one of {', '.join(EASINGS)}, got {easing!r}")
    return easing


def ease(s: torch.Tensor, easing: str) -> torch.Tensor:
    """Progress through a move: ``linear`` keeps s, ``ease_in_out`` is smoothstep 3s² − 2s³ (s in [0, 1])."""
    return s if _check_easing(easing) == "linear" else s * s * (3.0 - 2.0 * s)


def _progress(num_frames: int, easing: str) -> torch.Tensor:
    """``[T]`` float64 progress p = ease(t / (T − 1)): exactly 0 at frame 0 and 1 at the last frame."""
    if num_frames == 1:
        return torch.zeros(1, dtype=_DT)
    return ease(torch.arange(num_frames, dtype=_DT) / (num_frames - 1), easing)


def _base_intrinsics(width: int, height: int, *, fov=None, focal=None, intrinsics=None) -> torch.Tensor:
    """``[3, 3]`` float64 source camera: ``intrinsics`` if given, else from ``focal`` or ``fov`` (centred)."""
    if intrinsics is not None:
        k = check_tensor("intrinsics", intrinsics, (3, 3)).detach().to("cpu", _DT)
        if float(k[0, 0]) <= 0 or float(k[1, 1]) <= 0:
            raise ValueError(f"intrinsics: expected focal lengths K[0,0], K[1,1] > 0, got {float(k[0, 0]):g}, {float(k[1, 1]):g}")
        if float(k[1, 0].abs()) > 1e-6 or not torch.allclose(k[2], torch.tensor([0.0, 0.0, 1.0], dtype=_DT), atol=1e-6):
            raise ValueError(f"intrinsics: expected rows [fx, s, cx], [0, fy, cy], [0, 0, 1], got {k.tolist()}")
        return k
    if focal is not None:
        f = _check_positive("focal", focal)
    else:
        fov = check_finite_number("fov", 60.0 if fov is None else fov)
        if not 0.0 < fov < 180.0:
            raise ValueError(f"fov: expected a horizontal field of view in (0, 180) degrees, got {fov:g}")
        f = 0.5 * width / math.tan(math.radians(fov) / 2)
    return torch.tensor([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]], dtype=_DT)


def _scale_focal(k0: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``[T, 3, 3]``: fx, fy and the skew times ``scale [T]`` (a zoom about the fixed principal point)."""
    k = k0.to(_DT).expand(scale.shape[0], 3, 3).clone()
    k[:, 0, 0] *= scale
    k[:, 0, 1] *= scale
    k[:, 1, 1] *= scale
    return k


def _world_to_camera(rot: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """``[T, 4, 4]`` from camera-to-world rotations ``[T, 3, 3]`` and centres ``[T, 3]``: [Rᵀ | −Rᵀ C]."""
    out = torch.zeros(rot.shape[0], 4, 4, dtype=_DT)
    rt = rot.to(_DT).transpose(1, 2)
    out[:, :3, :3] = rt
    out[:, :3, 3] = -(rt @ centre.to(_DT)[:, :, None])[:, :, 0]
    out[:, 3, 3] = 1.0
    return out


def _euler_rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``[T, 3, 3]`` camera-to-world R_y(yaw) R_x(pitch) R_z(roll) from degrees ``[T]`` (signs: see camera_path).

    Written out rather than via axis-angle so that a zero angle gives an exact identity.
    """
    def axis_rotation(deg: torch.Tensor, i: int, j: int, sign: float) -> torch.Tensor:
        a = torch.deg2rad(deg.to(_DT))
        c, s = torch.cos(a), torch.sin(a)
        r = torch.eye(3, dtype=_DT).expand(a.shape[0], 3, 3).clone()
        r[:, i, i], r[:, j, j] = c, c
        r[:, i, j], r[:, j, i] = -sign * s, sign * s
        return r

    # R_y: z → (sin, 0, cos), so + turns right; R_x: z → (0, −sin, cos), so + looks up (y is down);
    # R_z: x → (cos, sin, 0), so the camera's right side dips: clockwise seen from behind.
    r_y = axis_rotation(yaw, 2, 0, 1.0)
    r_x = axis_rotation(pitch, 1, 2, 1.0)
    r_z = axis_rotation(roll, 0, 1, 1.0)
    return r_y @ r_x @ r_z


def _orbit_pose(yaw: torch.Tensor, elevation: torch.Tensor, focus_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotations ``[T, 3, 3]`` and centres ``[T, 3]`` on the sphere of radius d around F, looking at F.

    ``yaw`` + = the camera moves to its right (so it turns left to keep F in view), ``elevation`` + =
    above F (so it looks down); both in degrees ``[T]``. Zero gives the identity pose exactly.
    """
    rot = _euler_rotation(-yaw, -elevation, torch.zeros_like(yaw))
    focus = torch.tensor([0.0, 0.0, focus_depth], dtype=_DT)
    centre = focus - focus_depth * rot[:, :, 2]  # one focus depth behind F along the viewing direction
    return rot, centre


def _look_at(position: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[3, 3]`` camera-to-world rotation looking from ``position`` at ``target``, world up = −y, no roll."""
    forward = target - position
    forward = forward / forward.norm()
    right = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=_DT), forward)  # down × forward
    if float(right.norm()) < 1e-9:  # straight up or down: roll is undefined, keep image right = world +x
        right = torch.tensor([1.0, 0.0, 0.0], dtype=_DT)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    return torch.stack([right, down, forward], dim=1)


def _vector(name: str, value, size: int) -> torch.Tensor:
    """A list/tuple/tensor of ``size`` finite numbers as a float64 tensor."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    if not isinstance(value, (list, tuple)) or len(value) != size:
        raise ValueError(f"{name}: expected a list of {size} numbers, got {value!r}")
    return torch.tensor([check_finite_number(f"{name}[{i}]", v) for i, v in enumerate(value)], dtype=_DT)


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
        position = _vector(f"{name}.position", key["position"], 3)
        orientations = [k for k in ("look_at", "angles", "quaternion") if k in key]
        if len(orientations) > 1:
            raise ValueError(f"{name}: expected at most one of look_at, angles, quaternion, got {orientations}")
        if "look_at" in key:
            target = _vector(f"{name}.look_at", key["look_at"], 3)
            if float((target - position).norm()) < 1e-9:
                raise ValueError(f"{name}.look_at: expected a point other than the position {position.tolist()}, got {target.tolist()}")
            rot = _look_at(position, target)
        elif "angles" in key:
            yaw, pitch, roll = _vector(f"{name}.angles", key["angles"], 3)
            rot = _euler_rotation(yaw[None], pitch[None], roll[None])[0]
        elif "quaternion" in key:
            q = _vector(f"{name}.quaternion", key["quaternion"], 4)
            if float(q.norm()) < 1e-9:
                raise ValueError(f"{name}.quaternion: expected a non-zero [w, x, y, z], got {q.tolist()}")
            rot = quaternion_to_rotation_matrix(q / q.norm())
        else:
            rot = torch.eye(3, dtype=_DT)
        if key.get("fov") is not None and key.get("focal") is not None:
            raise ValueError(f"{name}: expected at most one of fov, focal")
        factor = 1.0
        if key.get("fov") is not None:
            fov = check_finite_number(f"{name}.fov", key["fov"])
            if not 0.0 < fov < 180.0:
                raise ValueError(f"{name}.fov: expected a horizontal field of view in (0, 180) degrees, got {fov:g}")
            factor = 0.5 * width / math.tan(math.radians(fov) / 2) / float(k0[0, 0])
        elif key.get("focal") is not None:
            factor = _check_positive(f"{name}.focal", key["focal"]) / float(k0[0, 0])
        keys.append((frame, position, rot, factor))
    keys.sort(key=lambda k: k[0])
    for a, b in zip(keys, keys[1:]):
        if b[0] - a[0] < 1e-9:
            raise ValueError(f"keyframes: expected one key per frame, got two at frame {a[0]:g}")
    return keys


def _keyframe_motion(keyframes, num_frames: int, width: int, k0: torch.Tensor, easing: str):
    """Rotations ``[T, 3, 3]``, centres ``[T, 3]`` and focal factors ``[T]`` through the keys (see camera_path)."""
    from kornia.geometry.conversions import quaternion_to_rotation_matrix, rotation_matrix_to_quaternion

    keys = _parse_keyframes(keyframes, num_frames, width, k0)
    frames = torch.tensor([k[0] for k in keys], dtype=_DT)
    pos = torch.stack([k[1] for k in keys])
    quat = rotation_matrix_to_quaternion(torch.stack([k[2] for k in keys]), eps=1e-12)
    factor = torch.tensor([k[3] for k in keys], dtype=_DT)
    n = len(keys)

    # Catmull-Rom tangents in units per frame: neighbours' secant, one-sided at the ends.
    tangent = torch.zeros_like(pos)
    if n > 1:
        tangent[1:-1] = (pos[2:] - pos[:-2]) / (frames[2:] - frames[:-2])[:, None]
        tangent[0] = (pos[1] - pos[0]) / (frames[1] - frames[0])
        tangent[-1] = (pos[-1] - pos[-2]) / (frames[-1] - frames[-2])

    t = torch.arange(num_frames, dtype=_DT).clamp(float(frames[0]), float(frames[-1]))  # hold outside the keys
    seg = (torch.searchsorted(frames, t, right=True) - 1).clamp(0, max(n - 2, 0))
    if n == 1:
        return quaternion_to_rotation_matrix(quat).expand(num_frames, 3, 3).clone(), pos.expand(num_frames, 3).clone(), factor.expand(num_frames).clone()
    span = frames[seg + 1] - frames[seg]
    u = ease(((t - frames[seg]) / span).clamp(0.0, 1.0), easing)[:, None]

    h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
    centre = h00 * pos[seg] + h10 * span[:, None] * tangent[seg] + h01 * pos[seg + 1] + h11 * span[:, None] * tangent[seg + 1]
    rot = quaternion_to_rotation_matrix(_slerp(quat[seg], quat[seg + 1], u[:, 0]))
    scale = (1 - u[:, 0]) * factor[seg] + u[:, 0] * factor[seg + 1]
    return rot, centre, scale


def _slerp(q0: torch.Tensor, q1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``[T, 4]`` between ``q0`` and ``q1`` at ``u [T]``, the short way round."""
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)  # q and −q are the same rotation; pick the one < 180° away
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-9  # (almost) the same rotation: lerp is exact enough and avoids 0/0
    safe = torch.where(near, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(near, 1 - u[:, None], torch.sin((1 - u[:, None]) * theta) / safe)
    w1 = torch.where(near, u[:, None], torch.sin(u[:, None] * theta) / safe)
    q = w0 * q0 + w1 * q1
    return q / q.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------------------
# Multi-camera rigs
# ---------------------------------------------------------------------------------------------------


@dataclass
class CameraRig:
    """N synchronized cameras: one :class:`CameraPath` each, all with the same frame count and image size.

    :func:`camera_rig` returns a plain ``list[CameraPath]``; ``CameraRig(camera_rig(...))`` wraps it
    with this validation when a single object has to travel (e.g. between nodes).
    """

    paths: list[CameraPath]

    def __post_init__(self):
        if isinstance(self.paths, tuple):
            self.paths = list(self.paths)
        if not isinstance(self.paths, list) or not self.paths:
            raise ValueError(f"CameraRig.paths: expected a non-empty list of CameraPath, got {self.paths!r:.80}")
        for i, path in enumerate(self.paths):
            if not isinstance(path, CameraPath):
                raise ValueError(f"CameraRig.paths[{i}]: expected a CameraPath, got {type(path).__name__}")
        first = self.paths[0]
        for i, path in enumerate(self.paths[1:], start=1):
            if (path.num_frames, path.width, path.height) != (first.num_frames, first.width, first.height):
                raise ValueError(
                    f"CameraRig.paths[{i}]: expected {first.num_frames} frames of {first.width}x{first.height} like paths[0], "
                    f"got {path.num_frames} frames of {path.width}x{path.height}"
                )

    @property
    def num_frames(self) -> int:
        return self.paths[0].num_frames

    @property
    def width(self) -> int:
        return self.paths[0].width

    @property
    def height(self) -> int:
        return self.paths[0].height

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self):
        return iter(self.paths)

    def __getitem__(self, index: int) -> CameraPath:
        return self.paths[index]

    def to(self, device=None, dtype: torch.dtype | None = None) -> "CameraRig":
        """A copy with every path on ``device``; ``dtype`` converts floating fields only."""
        return CameraRig([p.to(device, dtype) for p in self.paths])


def camera_rig(
    num_cameras: int,
    num_frames: int,
    width: int,
    height: int,
    *,
    arc_angle: float = 30.0,
    focus_depth: float = 3.0,
    base: CameraPath | None = None,
    **camera_params,
) -> list[CameraPath]:
    """``num_cameras`` synchronized cameras on a horizontal arc around F = (0, 0, ``focus_depth``).

    Camera k (k = 0..N−1) sits at yaw offset −arc/2 + k·arc/(N−1) degrees (N = 1: the centre, 0°) on
    the circle of radius ``focus_depth`` around F, looking at F, with the orbit sign convention: +
    = to the right of the source camera (+x), so camera 0 is the leftmost. Its rig pose O_k is the
    orbit pose at that yaw (``world_to_camera`` 4x4).

    Without ``base`` every camera holds its pose for all ``num_frames`` (multi-camera shooting of one
    moment: each camera sees every frame). With ``base`` (a :class:`CameraPath` of ``num_frames``
    frames and this ``width`` x ``height``), camera k performs the base move starting from its own rig
    pose: ``world_to_camera[k, t] = base.world_to_camera[t] @ O_k`` (O_k applied first). Because base
    paths are defined relative to the view they start from, an orbit or dolly zoom base makes every
    rig camera orbit or dolly-zoom around the same F. Intrinsics then come from ``base``; otherwise
    from ``camera_params`` (``fov``, ``focal`` or ``intrinsics``, as in :func:`camera_path`).

    Returns:
        ``list[CameraPath]`` (wrap in :class:`CameraRig` for a validated single object).
    """
    num_cameras = check_positive_int("num_cameras", num_cameras, maximum=256)
    num_frames = check_positive_int("num_frames", num_frames, maximum=10000)
    width = check_positive_int("width", width, maximum=16384)
    height = check_positive_int("height", height, maximum=16384)
    arc_angle = check_finite_number("arc_angle", arc_angle, low=0.0, high=360.0)
    focus_depth = _check_positive("focus_depth", focus_depth)
    unknown = sorted(set(camera_params) - {"fov", "focal", "intrinsics"})
    if unknown:
        raise ValueError(f"{unknown[0]}: not a parameter of camera_rig; accepted: arc_angle, focus_depth, base, fov, focal, intrinsics")

    if base is not None:
        if not isinstance(base, CameraPath):
            raise ValueError(f"base: expected a CameraPath, got {type(base).__name__}")
        if (base.num_frames, base.width, base.height) != (num_frames, width, height):
            raise ValueError(
                f"base: expected a CameraPath of {num_frames} frames at {width}x{height}, "
                f"got {base.num_frames} frames at {base.width}x{base.height}"
            )
        given = sorted(k for k, v in camera_params.items() if v is not None)
        if given:
            raise ValueError(f"{given[0]}: the rig uses base's intrinsics; pass either base or {given[0]}, not both")
        k = base.intrinsics.detach().to("cpu", _DT)
        motion = base.world_to_camera.detach().to("cpu", _DT)
    else:
        k = _base_intrinsics(width, height, **camera_params).expand(num_frames, 3, 3)
        motion = torch.eye(4, dtype=_DT).expand(num_frames, 4, 4)

    if num_cameras == 1:
        yaws = torch.zeros(1, dtype=_DT)
    else:
        yaws = torch.linspace(-arc_angle / 2, arc_angle / 2, num_cameras, dtype=_DT)
    rot, centre = _orbit_pose(yaws, torch.zeros_like(yaws), focus_depth)
    offsets = _world_to_camera(rot, centre)  # [N, 4, 4]
    return [CameraPath(k.float().clone(), (motion @ offsets[i]).float(), width, height) for i in range(num_cameras)]


# ---------------------------------------------------------------------------------------------------
# Path diagram
# ---------------------------------------------------------------------------------------------------

_TIME_STOPS = ((37, 99, 235), (168, 85, 190), (245, 130, 20))  # blue → violet → orange: t = 0 → T−1
_RIG_HUES = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
             (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))  # tab10


def draw_camera_path(
    paths: "CameraPath | CameraRig | list[CameraPath]",
    size: tuple[int, int] = (640, 320),
    focus_depth: float | None = None,
    scene_points: torch.Tensor | None = None,
) -> torch.Tensor:
    """A diagram of a camera path or rig: IMAGE ``[H, W, 3]`` float32 in 0..1, ``size = (W, H)``.

    Two panels side by side, each auto-fitted (equal aspect, with margin) to the cameras, F and the
    scene points: **top** (x right, z up the panel = forward) and **side** (z right, −y up). Shown: a
    light grid (its spacing printed in the corner), the source camera (frame 0 at the origin, black),
    the focus point F = (0, 0, ``focus_depth``) if given (red cross), a line through every frame's
    camera centre, and camera frusta (pyramids from the centre along the viewing direction, as wide
    as the field of view) for at most 12 evenly spaced frames including the first and the last.
    A single path is coloured by time, blue (t=0) → orange (t=T-1); in a rig each camera has its own
    hue, pale at t=0 and strong at t=T-1. ``scene_points`` (``[..., 3]`` world points, e.g. a subsample
    of the lifted scene) are drawn as faint grey dots; the view fits their 1..99 % range.
    """
    from PIL import Image, ImageDraw

    path_list = _path_list(paths)
    out_w, out_h = _check_size(size)
    if focus_depth is not None:
        focus_depth = _check_positive("focus_depth", focus_depth)
    points = _scene_point_array(scene_points)

    rig = len(path_list) > 1
    per_path = 12 if not rig else max(2, 12 // len(path_list))
    centres = [p.centers().detach().to("cpu", _DT) for p in path_list]
    anchors = [torch.zeros(1, 3, dtype=_DT)] + centres
    if focus_depth is not None:
        anchors.append(torch.tensor([[0.0, 0.0, focus_depth]], dtype=_DT))
    if points is not None:
        anchors.append(torch.quantile(points, torch.tensor([0.01, 0.99], dtype=_DT), dim=0))
    anchors = torch.cat(anchors)
    extent = float((anchors.amax(0) - anchors.amin(0)).max())
    # Frusta big enough to read the direction, small enough not to hide the path.
    depth = 0.18 * extent if extent > 1e-6 else 0.3 * (focus_depth or 1.0)

    # Everything to draw, in world coordinates: (kind, colour, [N, 3] points).
    strokes = []
    src_k = path_list[0].intrinsics[0].detach().to("cpu", _DT)
    source = _frustum(src_k, torch.eye(4, dtype=_DT), path_list[0].width, path_list[0].height, depth)
    for i, (path, c) in enumerate(zip(path_list, centres)):
        t_count = path.num_frames
        colour = (lambda tau, i=i: _rig_colour(i, tau)) if rig else _time_colour
        for t in range(t_count - 1):
            strokes.append(("line", colour((t + 0.5) / max(t_count - 1, 1)), c[t : t + 2]))
        c2w = path.camera_to_world().detach().to("cpu", _DT)
        k_all = path.intrinsics.detach().to("cpu", _DT)
        for t in _frame_subset(t_count, per_path):
            tau = t / max(t_count - 1, 1)
            strokes.append(("frustum", colour(tau if t_count > 1 else 1.0), _frustum(k_all[t], c2w[t], path.width, path.height, depth)))
    if rig:  # the rig's formation at frame 0
        strokes.insert(0, ("line", (190, 190, 190), torch.stack([c[0] for c in centres])))
    fit = torch.cat([anchors] + [s[2] for s in strokes] + [source])

    ss = 2 if out_w * out_h <= 2048 * 2048 else 1  # supersampling for smooth lines
    left_w = out_w // 2
    panel_sizes = ((left_w * ss, out_h * ss), ((out_w - left_w) * ss, out_h * ss))
    font = _font(max(9, round(out_h / 26)) * ss)
    views = (("top (x right, z up)", lambda p: torch.stack([p[..., 0], p[..., 2]], -1)),
             ("side (z right, -y up)", lambda p: torch.stack([p[..., 2], -p[..., 1]], -1)))
    panels = []
    for index, ((title, flatten), (pw, ph)) in enumerate(zip(views, panel_sizes)):
        pad_top, pad_bottom = _font_height(font) * 1.6, _font_height(font) * 1.8
        to_px, scale = _fit_panel(flatten(fit), pw, ph, pad_top, pad_bottom, ss)
        label_w = font.getlength("source") + 8 * ss
        if float(to_px(flatten(torch.zeros(1, 3, dtype=_DT)))[0, 0]) < label_w:  # make room for the "source" label
            to_px, scale = _fit_panel(flatten(fit), pw, ph, pad_top, pad_bottom, ss, pad_left=label_w)
        canvas = torch.full((ph, pw, 3), 252, dtype=torch.uint8)
        if points is not None:
            _splat_points(canvas, to_px(flatten(points)), ss)
        image = Image.fromarray(canvas.numpy())
        draw = ImageDraw.Draw(image)
        step = _draw_grid(draw, to_px, scale, pw, ph, ss)
        for kind, colour, pts in strokes:
            xy = to_px(flatten(pts))
            if kind == "line":
                draw.line([tuple(v) for v in xy.tolist()], fill=colour, width=2 * ss)
            else:
                _draw_frustum(draw, xy, colour, ss)
        _draw_frustum(draw, to_px(flatten(source)), (0, 0, 0), ss, width=2 * ss)
        ox, oy = to_px(flatten(torch.zeros(1, 3, dtype=_DT)))[0].tolist()
        draw.ellipse([ox - 3 * ss, oy - 3 * ss, ox + 3 * ss, oy + 3 * ss], fill=(0, 0, 0))
        # Left of the origin: the frusta point away from it (right in the side view, up in the top view).
        draw.text((ox - 5 * ss - draw.textlength("source", font=font), oy + ss), "source", fill=(60, 60, 60), font=font)
        if focus_depth is not None:
            fx, fy = to_px(flatten(torch.tensor([[0.0, 0.0, focus_depth]], dtype=_DT)))[0].tolist()
            r = 5 * ss
            draw.line([fx - r, fy - r, fx + r, fy + r], fill=(220, 30, 30), width=2 * ss)
            draw.line([fx - r, fy + r, fx + r, fy - r], fill=(220, 30, 30), width=2 * ss)
            draw.text((fx + r + 2 * ss, fy - r - _font_height(font)), "F", fill=(200, 20, 20), font=font)
        if rig and index == 0 and len(path_list) <= 12:
            for i, c in enumerate(centres):
                x, y = to_px(flatten(c[:1]))[0].tolist()
                draw.text((x - 3 * ss, y + 4 * ss), str(i), fill=_rig_colour(i, 1.0), font=font)
        draw.text((6 * ss, 4 * ss), title, fill=(30, 30, 30), font=font)
        label = f"grid {step:g}"
        draw.text((pw - 6 * ss - draw.textlength(label, font=font), 4 * ss), label, fill=(120, 120, 120), font=font)
        _draw_legend(draw, font, index, path_list, rig, pw, ph, ss)
        if index == 1:
            draw.line([0, 0, 0, ph], fill=(170, 170, 170), width=ss)
        panels.append(image)

    full = Image.new("RGB", (out_w * ss, out_h * ss))
    full.paste(panels[0], (0, 0))
    full.paste(panels[1], (left_w * ss, 0))
    if ss > 1:
        full = full.resize((out_w, out_h), Image.BOX)
    return torch.frombuffer(bytearray(full.tobytes()), dtype=torch.uint8).reshape(out_h, out_w, 3).float() / 255.0


def _path_list(paths) -> list[CameraPath]:
    if isinstance(paths, CameraPath):
        return [paths]
    if isinstance(paths, CameraRig):
        return list(paths.paths)
    if isinstance(paths, (list, tuple)) and paths and all(isinstance(p, CameraPath) for p in paths):
        return list(paths)
    raise ValueError(f"paths: expected a CameraPath, a CameraRig or a non-empty list of CameraPath, got {type(paths).__name__}")


def _check_size(size) -> tuple[int, int]:
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise ValueError(f"size: expected (width, height), got {size!r}")
    return check_positive_int("size[0] (width)", size[0], minimum=64, maximum=4096), check_positive_int("size[1] (height)", size[1], minimum=32, maximum=4096)


def _scene_point_array(points) -> torch.Tensor | None:
    """``[N, 3]`` float64 points, at most 50 000 (an even stride keeps the spatial spread).

    Non-finite points (e.g. from invalid depth) are dropped rather than refused: this is only a preview.
    """
    if points is None:
        return None
    if not isinstance(points, torch.Tensor) or points.dim() < 2 or points.shape[-1] != 3 or not points.is_floating_point():
        what = f"{list(points.shape)} {points.dtype}" if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"scene_points: expected float world points [N, 3], got {what}")
    points = points.detach().reshape(-1, 3)
    points = points[::max(1, points.shape[0] // 50000)].to("cpu", _DT)
    points = points[torch.isfinite(points).all(-1)]
    return points if points.shape[0] else None


def _frame_subset(num_frames: int, count: int) -> list[int]:
    """At most ``count`` evenly spaced frame indices, always the first and the last."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


def _frustum(k: torch.Tensor, c2w: torch.Tensor, width: int, height: int, depth: float) -> torch.Tensor:
    """``[5, 3]`` world points: the centre, then the image corners (outer pixel edges) at ``depth``."""
    corners = torch.tensor([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]], dtype=_DT)
    cam = unproject_pixels(corners, torch.full((4,), depth, dtype=_DT), k)
    world = cam @ c2w[:3, :3].T + c2w[:3, 3]
    return torch.cat([c2w[None, :3, 3], world])


def _draw_frustum(draw, xy: torch.Tensor, colour, ss: int, width: int | None = None) -> None:
    width = width or ss + ss // 2
    apex, corners = tuple(xy[0].tolist()), [tuple(v) for v in xy[1:].tolist()]
    for c in corners:
        draw.line([apex, c], fill=colour, width=width)
    draw.line(corners + corners[:1], fill=colour, width=width)
    # A thicker top edge tells which way is up (it shows a roll or a look down).
    draw.line(corners[:2], fill=colour, width=2 * width)


def _time_colour(tau: float) -> tuple[int, int, int]:
    tau = min(max(tau, 0.0), 1.0) * (len(_TIME_STOPS) - 1)
    i = min(int(tau), len(_TIME_STOPS) - 2)
    w = tau - i
    return tuple(round((1 - w) * a + w * b) for a, b in zip(_TIME_STOPS[i], _TIME_STOPS[i + 1]))


def _rig_colour(index: int, tau: float) -> tuple[int, int, int]:
    hue = _RIG_HUES[index % len(_RIG_HUES)]
    strength = 0.35 + 0.65 * min(max(tau, 0.0), 1.0)  # pale at t=0, full at the end
    return tuple(round(255 * (1 - strength) + c * strength) for c in hue)


def _font(pixels: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=pixels)
    except (TypeError, ValueError, OSError, ImportError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _font_height(font) -> int:
    box = font.getbbox("Ag")
    return int(box[3] - box[1]) + 2


def _fit_panel(flat: torch.Tensor, pw: int, ph: int, pad_top: float, pad_bottom: float, ss: int, pad_left: float = 0.0):
    """A world → pixel map (equal aspect, 8 % margin) fitting ``flat [N, 2]`` into the panel, and its scale."""
    lo, hi = flat.amin(0), flat.amax(0)
    centre = (lo + hi) / 2
    span = (hi - lo).clamp(min=1e-6) * 1.16
    pad_left = max(pad_left, 6 * ss)
    avail_w, avail_h = pw - pad_left - 6 * ss, ph - pad_top - pad_bottom
    scale = min(avail_w / float(span[0]), avail_h / float(span[1]))
    mid_x, mid_y = pad_left + avail_w / 2, pad_top + avail_h / 2

    def to_px(p: torch.Tensor) -> torch.Tensor:
        p = p.reshape(-1, 2)
        return torch.stack([mid_x + (p[:, 0] - centre[0]) * scale, mid_y - (p[:, 1] - centre[1]) * scale], -1)

    return to_px, scale


def _nice_step(span: float) -> float:
    """1, 2 or 5 × 10^k, at least span / 10."""
    raw = max(span / 10, 1e-12)
    base = 10 ** math.floor(math.log10(raw))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw)


def _draw_grid(draw, to_px, scale: float, pw: int, ph: int, ss: int) -> float:
    """Light lines every ``step`` world units, the axes through the origin a little darker; returns step."""
    origin = to_px(torch.zeros(1, 2, dtype=_DT))[0]
    ox, oy = float(origin[0]), float(origin[1])
    step = _nice_step(max(pw, ph) / scale)
    px = step * scale
    for axis, (o, limit) in enumerate(((ox, pw), (oy, ph))):
        first = math.ceil(-o / px)
        for i in range(first, first + int(limit / px) + 2):
            v = o + i * px
            colour = (200, 200, 200) if i == 0 else (232, 232, 232)
            draw.line([v, 0, v, ph] if axis == 0 else [0, v, pw, v], fill=colour, width=ss)
    return step


def _splat_points(canvas: torch.Tensor, xy: torch.Tensor, ss: int) -> None:
    """Faint grey density of points ``[N, 2]`` (pixels) on ``canvas [H, W, 3]`` uint8, in place."""
    h, w = canvas.shape[:2]
    ij = xy.round().long()
    counts = torch.zeros(h * w)
    for dy in range(ss):
        for dx in range(ss):  # an ss × ss stamp survives the downsampling as one pixel
            x, y = ij[:, 0] + dx, ij[:, 1] + dy
            keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            counts.index_add_(0, (y * w + x)[keep], torch.ones(int(keep.sum())))
    alpha = (0.55 * (1 - torch.exp(-0.6 * counts))).reshape(h, w, 1)
    canvas.copy_((canvas.float() * (1 - alpha) + 120.0 * alpha).round().to(torch.uint8))


def _draw_legend(draw, font, index: int, path_list: list[CameraPath], rig: bool, pw: int, ph: int, ss: int) -> None:
    fh = _font_height(font)
    y = ph - fh - 7 * ss
    t_last = path_list[0].num_frames - 1
    if index == 0:
        # Time legend: "t=0 [gradient] t=T-1" (pale → strong in a rig).
        x = 6 * ss
        draw.text((x, y), "t=0", fill=(60, 60, 60), font=font)
        x += draw.textlength("t=0 ", font=font)
        bar = 60 * ss
        for j in range(bar):
            tau = j / (bar - 1)
            colour = _rig_colour(0, tau) if rig else _time_colour(tau)
            draw.line([x + j, y + 2 * ss, x + j, y + fh - 2 * ss], fill=colour)
        draw.text((x + bar + 4 * ss, y), f"t={t_last}" if t_last > 0 else "(1 frame)", fill=(60, 60, 60), font=font)
    elif rig:
        x = 6 * ss
        draw.text((x, y), f"{len(path_list)} cameras:", fill=(60, 60, 60), font=font)
        x += draw.textlength(f"{len(path_list)} cameras: ", font=font)
        for i in range(min(len(path_list), 10)):
            label = str(i)
            if x + draw.textlength(label, font=font) > pw - 6 * ss:
                break
            draw.text((x, y), label, fill=_rig_colour(i, 1.0), font=font)
            x += draw.textlength(label + " ", font=font)
