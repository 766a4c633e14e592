"""What CogVideoX accepts: frame counts of 4k + 1, sizes in multiples of 16, holes at latent resolution.

(Kept under these names for ``models.gsdit``; the video-model bridge shares the same rules.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...py.checks import check_positive_int

LATENT_CHANNELS = 16
SPATIAL_MULTIPLE = 16


def snap_frames(t: int) -> int:
    """Largest ``4k + 1 <= t`` (what the CogVideoX VAE compresses 4× in time)."""
    t = check_positive_int("frames", t)
    return (t - 1) // 4 * 4 + 1


def snap_size(h: int, w: int) -> tuple[int, int]:
    """Height and width floored to multiples of 16 (8× VAE × patch 2)."""
    if h < SPATIAL_MULTIPLE or w < SPATIAL_MULTIPLE:
        raise ValueError(f"render: {w}x{h} is smaller than the 16x16 minimum of the CogVideoX VAE + patch size")
    return h // SPATIAL_MULTIPLE * SPATIAL_MULTIPLE, w // SPATIAL_MULTIPLE * SPATIAL_MULTIPLE


def snap_video(video: torch.Tensor) -> torch.Tensor:
    """``[T, H, W, ...]`` → ``[T', H', W', ...]``: trailing frames dropped to ``4k + 1``, centre crop to multiples of 16."""
    t, h, w = video.shape[:3]
    th, tw = snap_size(h, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return video[: snap_frames(t), top : top + th, left : left + tw]


def latent_hole_mask(holes: torch.Tensor, feather: float = 1.0) -> torch.Tensor:
    """``[T, H, W]`` hole mask (T = 4k+1) → ``[k+1, H/8, W/8]`` hole weight at latent resolution.

    A latent cell is a hole if any pixel of any frame it encodes is (latent frame 0 ← frame 0, latent frame j ←
    frames 4j-3..4j), so rendered content is only kept where the whole cell was rendered. ``feather`` (latent
    pixels) blurs the edge outwards so blending leaves no seam; inside holes the weight stays 1.
    """
    import kornia

    t, h, w = holes.shape
    first = holes[:1]
    rest = holes[1:].reshape(-1, 4, h, w).amax(dim=1) if t > 1 else holes[:0]
    grouped = torch.cat([first, rest])[:, None].float()
    cells = F.max_pool2d(grouped, 8)
    if feather > 0:
        k = 2 * math.ceil(2 * feather) + 1
        cells = torch.maximum(cells, kornia.filters.gaussian_blur2d(F.max_pool2d(cells, 3, 1, 1), (k, k), (feather, feather)))
    return cells[:, 0].clamp(0, 1)
