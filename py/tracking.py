"""Dense 3D point tracks (D3D-PT in GS-DiT): every pixel of a reference frame followed through the video."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .camera import unproject_pixels
from .checks import TensorData, check_range, check_tensor


@dataclass
class Tracks3D(TensorData):
    """Where each pixel of frame ``ref_frame`` is in every frame, at what depth, and whether it is seen.

    Attributes:
        uv: ``[T, H, W, 2]`` pixel position (x, y) in frame t of reference pixel (row, col).
        depth: ``[T, H, W]`` its camera-space depth (z) in frame t.
        visibility: ``[T, H, W]`` bool, or float confidence in 0..1.
        intrinsics: ``[3, 3]`` or ``[T, 3, 3]`` of the source camera.
        ref_frame: index of the reference frame, ``0 <= ref_frame < T``.
    """

    uv: torch.Tensor
    depth: torch.Tensor
    visibility: torch.Tensor
    intrinsics: torch.Tensor
    ref_frame: int = 0

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("Tracks3D.uv", self.uv, ("T", "H", "W", 2), dims=dims)
        check_tensor("Tracks3D.depth", self.depth, ("T", "H", "W"), dims=dims)
        check_tensor("Tracks3D.visibility", self.visibility, ("T", "H", "W"), kind="bool_or_float", dims=dims)
        check_tensor("Tracks3D.intrinsics", self.intrinsics, [(3, 3), ("T", 3, 3)], dims=dims)
        if self.visibility.is_floating_point():
            check_range("Tracks3D.visibility", self.visibility, 0.0, 1.0)
        if isinstance(self.ref_frame, bool) or not isinstance(self.ref_frame, int) or not 0 <= self.ref_frame < dims["T"]:
            raise ValueError(f"Tracks3D.ref_frame: expected an index in [0, {dims['T']}), got {self.ref_frame!r}")

    @property
    def num_frames(self) -> int:
        return int(self.uv.shape[0])

    @property
    def height(self) -> int:
        return int(self.uv.shape[1])

    @property
    def width(self) -> int:
        return int(self.uv.shape[2])

    def xyz(self) -> torch.Tensor:
        """``[T, H, W, 3]`` camera-space points of frame t's camera: depth · K⁻¹ [u, v, 1]."""
        return unproject_pixels(self.uv, self.depth, self.intrinsics)

    def visible(self, threshold: float = 0.5) -> torch.Tensor:
        """``[T, H, W]`` bool visibility (float confidences thresholded)."""
        return self.visibility if self.visibility.dtype == torch.bool else self.visibility >= threshold
