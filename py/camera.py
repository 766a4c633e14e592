"""Scheduled pinhole cameras: one intrinsic and one extrinsic matrix per frame.

Conventions (see the library contract): OpenCV camera axes (x right, y down, z forward), pixel
centres at integer coordinates with (0, 0) the centre of the top-left pixel, ``world_to_camera`` a
rigid 4x4 transform, intrinsics 3x3 in pixels. Paths made for GS-DiT are relative to the source
camera at frame 0, so the identity pose is the original view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import TensorData, check_positive_int, check_tensor

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
