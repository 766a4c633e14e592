"""Depth videos: the depth edge between nodes, and conversion from/to the grey IMAGEs other packs use."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import TensorData, check_image, check_range, check_tensor

DEPTH_KINDS = ("metric", "relative")


@dataclass
class DepthVideo(TensorData):
    """Per-frame depth (camera-space z, larger = farther; never disparity).

    Attributes:
        depth: ``[T, H, W]`` float, > 0 where valid.
        kind: ``"metric"`` (metric-like z) or ``"relative"`` (known only up to scale and shift).
        valid: optional ``[T, H, W]`` bool; where False the depth value carries no information.
    """

    depth: torch.Tensor
    kind: str = "relative"
    valid: torch.Tensor | None = None

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("DepthVideo.depth", self.depth, ("T", "H", "W"), dims=dims)
        if self.valid is not None:
            check_tensor("DepthVideo.valid", self.valid, ("T", "H", "W"), kind="bool", dims=dims)
        if self.kind not in DEPTH_KINDS:
            raise ValueError(f"DepthVideo.kind: expected one of {DEPTH_KINDS}, got {self.kind!r}")
        values = self.depth if self.valid is None else self.depth[self.valid]
        check_range("DepthVideo.depth", values, low=0.0)

    @property
    def num_frames(self) -> int:
        return int(self.depth.shape[0])

    def to_image(self, near: float | None = None, far: float | None = None) -> torch.Tensor:
        """Grey preview ``[T, H, W, 3]`` in 0..1, near = bright (as depth packs show it).

        Normalised in inverse depth between ``near`` and ``far`` (default: the video's own 1st/99th
        percentiles), one mapping for the whole video so it does not flicker. Invalid pixels are black.
        """
        return depth_to_image(self.depth, self.valid, near, far)


def depth_to_image(depth: torch.Tensor, valid: torch.Tensor | None = None, near: float | None = None, far: float | None = None) -> torch.Tensor:
    """``[T, H, W]`` depth → ``[T, H, W, 3]`` grey disparity-like preview (see :meth:`DepthVideo.to_image`)."""
    if valid is None:
        valid = depth > 0
    inv = torch.where(valid, 1.0 / depth.clamp_min(1e-8), torch.zeros_like(depth))
    sample = inv[valid]
    if sample.numel() == 0:
        return torch.zeros(*depth.shape, 3)
    if sample.numel() > 1_000_000:
        sample = sample[torch.linspace(0, sample.numel() - 1, 1_000_000, device=sample.device).long()]
    lo = 1.0 / far if far else float(torch.quantile(sample.float(), 0.01))
    hi = 1.0 / near if near else float(torch.quantile(sample.float(), 0.99))
    grey = ((inv - lo) / max(hi - lo, 1e-12)).clamp(0, 1) * valid
    return grey.float().unsqueeze(-1).expand(*depth.shape, 3).contiguous()


def depth_from_image(image: torch.Tensor, encoding: str = "disparity", near: float = 1.0, far: float = 10.0) -> DepthVideo:
    """A grey IMAGE ``[T, H, W, C]`` from a depth pack → :class:`DepthVideo`.

    ``encoding="disparity"`` (Depth Anything, DepthCrafter, Video Depth Anything: near = bright) maps
    grey g linearly in inverse depth so that g = 1 is ``near`` and g = 0 is ``far`` (always finite and
    positive, whatever the map holds); ``encoding="depth"`` (near = dark) maps g linearly in depth
    from ``near`` (0) to ``far`` (1), relative; ``encoding="metric"`` is the same mapping for a map
    whose range is known in scene units, so the result is kind ``"metric"``.
    """
    image = check_image("depth image", image)
    if not 0 < near < far:
        raise ValueError(f"depth_from_image: expected 0 < near < far, got near={near}, far={far}")
    grey = check_range("depth image", image.mean(dim=-1), -1e-3, 1 + 1e-3).clamp(0, 1)
    if encoding == "disparity":
        depth = 1.0 / (grey / near + (1 - grey) / far)
    elif encoding in ("depth", "metric"):
        depth = near + grey * (far - near)
    else:
        raise ValueError(f"depth_from_image: encoding must be 'disparity', 'depth' or 'metric', got {encoding!r}")
    return DepthVideo(depth.float(), kind="metric" if encoding == "metric" else "relative")
