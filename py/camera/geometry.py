"""Pinhole cameras: :class:`CameraPath` (one intrinsic and one extrinsic matrix per frame) and the maths
every camera move shares (focal length from a field of view, poses from rotations and centres, Euler
angles, orbits, look-at, slerp).

Conventions (see the library contract): OpenCV camera axes (x right, y down, z forward), pixel
centres at integer coordinates with (0, 0) the centre of the top-left pixel, ``world_to_camera`` a
rigid 4x4 transform, intrinsics 3x3 in pixels. Poses are composed in float64
(:data:`POSE_DTYPE`) and rounded to float32 once, when a :class:`CameraPath` is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..checks import TensorData, check_finite_number, check_positive_int, check_tensor

POSE_DTYPE = torch.float64
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


def focal_from_fov(fov_degrees, extent: int, *, name: str = "fov", axis: str = "horizontal") -> float:
    """Focal length in pixels of a pinhole whose full field of view across ``extent`` pixels is ``fov_degrees``.

    f = extent / (2 tan(fov / 2)); the one place a field of view becomes a focal length.
    """
    fov = check_finite_number(name, fov_degrees)
    if not 0.0 < fov < 180.0:
        raise ValueError(f"{name}: expected a {axis} field of view in (0, 180) degrees, got {fov:g}")
    return 0.5 * extent / math.tan(math.radians(fov) / 2)


def centred_intrinsics(focal: float, width: int, height: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[3, 3]`` pinhole matrix with square pixels of focal ``focal`` and the principal point at the image centre."""
    return torch.tensor([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]], dtype=dtype)


def intrinsics_from_fov(fov_degrees: float, width: int, height: int, axis: str = "horizontal") -> torch.Tensor:
    """``[3, 3]`` pinhole matrix with square pixels and the principal point at the image centre.

    ``fov_degrees`` is the full field of view across the ``axis`` (``horizontal`` or ``vertical``).
    """
    if axis not in ("horizontal", "vertical"):
        raise ValueError(f"axis: expected 'horizontal' or 'vertical', got {axis!r}")
    extent = width if axis == "horizontal" else height
    return centred_intrinsics(focal_from_fov(fov_degrees, extent, name="fov_degrees", axis=axis), width, height)


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


def check_positive(name: str, value) -> float:
    """A finite number > 0."""
    value = check_finite_number(name, value)
    if value <= 0:
        raise ValueError(f"{name}: expected a number > 0, got {value:g}")
    return value


def base_intrinsics(width: int, height: int, *, fov=None, focal=None, intrinsics=None) -> torch.Tensor:
    """``[3, 3]`` float64 source camera: ``intrinsics`` if given, else from ``focal`` or ``fov`` (centred)."""
    if intrinsics is not None:
        k = check_tensor("intrinsics", intrinsics, (3, 3)).detach().to("cpu", POSE_DTYPE)
        if float(k[0, 0]) <= 0 or float(k[1, 1]) <= 0:
            raise ValueError(f"intrinsics: expected focal lengths K[0,0], K[1,1] > 0, got {float(k[0, 0]):g}, {float(k[1, 1]):g}")
        if float(k[1, 0].abs()) > 1e-6 or not torch.allclose(k[2], torch.tensor([0.0, 0.0, 1.0], dtype=POSE_DTYPE), atol=1e-6):
            raise ValueError(f"intrinsics: expected rows [fx, s, cx], [0, fy, cy], [0, 0, 1], got {k.tolist()}")
        return k
    f = check_positive("focal", focal) if focal is not None else focal_from_fov(60.0 if fov is None else fov, width)
    return centred_intrinsics(f, width, height, POSE_DTYPE)


def scale_focal(k0: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``[T, 3, 3]``: fx, fy and the skew times ``scale [T]`` (a zoom about the fixed principal point)."""
    k = k0.to(POSE_DTYPE).expand(scale.shape[0], 3, 3).clone()
    k[:, 0, 0] *= scale
    k[:, 0, 1] *= scale
    k[:, 1, 1] *= scale
    return k


def pose_matrices(rot: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """``[T, 4, 4]`` from camera-to-world rotations ``[T, 3, 3]`` and centres ``[T, 3]``: [Rᵀ | −Rᵀ C]."""
    out = torch.zeros(rot.shape[0], 4, 4, dtype=POSE_DTYPE)
    rt = rot.to(POSE_DTYPE).transpose(1, 2)
    out[:, :3, :3] = rt
    out[:, :3, 3] = -(rt @ centre.to(POSE_DTYPE)[:, :, None])[:, :, 0]
    out[:, 3, 3] = 1.0
    return out


def euler_rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``[T, 3, 3]`` camera-to-world R_y(yaw) R_x(pitch) R_z(roll) from degrees ``[T]`` (signs: see camera_path).

    Written out rather than via axis-angle so that a zero angle gives an exact identity.
    """
    def axis_rotation(deg: torch.Tensor, i: int, j: int, sign: float) -> torch.Tensor:
        a = torch.deg2rad(deg.to(POSE_DTYPE))
        c, s = torch.cos(a), torch.sin(a)
        r = torch.eye(3, dtype=POSE_DTYPE).expand(a.shape[0], 3, 3).clone()
        r[:, i, i], r[:, j, j] = c, c
        r[:, i, j], r[:, j, i] = -sign * s, sign * s
        return r

    # R_y: z → (sin, 0, cos), so + turns right; R_x: z → (0, −sin, cos), so + looks up (y is down);
    # R_z: x → (cos, sin, 0), so the camera's right side dips: clockwise seen from behind.
    r_y = axis_rotation(yaw, 2, 0, 1.0)
    r_x = axis_rotation(pitch, 1, 2, 1.0)
    r_z = axis_rotation(roll, 0, 1, 1.0)
    return r_y @ r_x @ r_z


def orbit_pose(yaw: torch.Tensor, elevation: torch.Tensor, focus_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotations ``[T, 3, 3]`` and centres ``[T, 3]`` on the sphere of radius d around F, looking at F.

    ``yaw`` + = the camera moves to its right (so it turns left to keep F in view), ``elevation`` + =
    above F (so it looks down); both in degrees ``[T]``. Zero gives the identity pose exactly.
    """
    rot = euler_rotation(-yaw, -elevation, torch.zeros_like(yaw))
    focus = torch.tensor([0.0, 0.0, focus_depth], dtype=POSE_DTYPE)
    centre = focus - focus_depth * rot[:, :, 2]  # one focus depth behind F along the viewing direction
    return rot, centre


def look_at(position: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[3, 3]`` camera-to-world rotation looking from ``position`` at ``target``, world up = −y, no roll."""
    forward = target - position
    forward = forward / forward.norm()
    right = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=POSE_DTYPE), forward)  # down × forward
    if float(right.norm()) < 1e-9:  # straight up or down: roll is undefined, keep image right = world +x
        right = torch.tensor([1.0, 0.0, 0.0], dtype=POSE_DTYPE)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    return torch.stack([right, down, forward], dim=1)


def slerp(q0: torch.Tensor, q1: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
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


