"""What CogVideoX accepts: 8k + 1 frames, sizes in multiples of 16, holes at latent resolution.

The rules themselves live in :mod:`vid4d.py.video_model` (the one home for "what a video model needs",
shared with the bridge to core video models), so GSDiTSampler's training_free blending and a latent-
inpainting graph keep exactly the same cells.
"""

from __future__ import annotations

import torch

from ...py import video_model as vm

COGVIDEOX = vm.video_model("cogvideox")
LATENT_CHANNELS = 16
SPATIAL_MULTIPLE = COGVIDEOX.multiple


def snap_frames(t: int) -> int:
    """Largest ``8k + 1 <= t``: the VAE compresses 4× in time and decodes only odd latent counts whole."""
    return COGVIDEOX.snap_frames(t)


def snap_size(h: int, w: int) -> tuple[int, int]:
    """Height and width floored to multiples of 16 (8× VAE × patch 2)."""
    if h < SPATIAL_MULTIPLE or w < SPATIAL_MULTIPLE:
        raise ValueError(f"render: {w}x{h} is smaller than the 16x16 minimum of the CogVideoX VAE + patch size")
    return h // SPATIAL_MULTIPLE * SPATIAL_MULTIPLE, w // SPATIAL_MULTIPLE * SPATIAL_MULTIPLE


def snap_video(video: torch.Tensor) -> torch.Tensor:
    """``[T, H, W, ...]`` → ``[T', H', W', ...]``: trailing frames dropped to ``8k + 1``, centre crop to multiples of 16."""
    t, h, w = video.shape[:3]
    th, tw = snap_size(h, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return video[: snap_frames(t), top : top + th, left : left + tw]


def latent_hole_mask(holes: torch.Tensor, feather: float = 1.0) -> torch.Tensor:
    """``[T, H, W]`` hole mask → ``[F, H/8, W/8]`` hole weight at latent resolution (:func:`vid4d.py.video_model.latent_mask`:
    a cell is a hole if any pixel of any frame it encodes is; ``feather`` latent pixels blur the edge outwards)."""
    return vm.latent_mask(holes, COGVIDEOX.temporal, COGVIDEOX.spatial, feather=feather)
