"""Depth videos: the depth edge between nodes, and conversion from/to the grey IMAGEs other packs use."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import TensorData, check_image, check_range, check_tensor

DEPTH_KINDS = ("metric", "relative")
# What the values mean, i.e. which end is near: "depth" is camera z (larger = farther, used as is);
# "affine_depth" is depth up to an unknown scale and shift (larger = farther, 0 allowed, e.g.
# ChronoDepth); "disparity" is inverse depth up to scale and shift (larger = nearer).
VALUE_ENCODINGS = ("depth", "affine_depth", "disparity")
# The one vocabulary for reading a grey depth IMAGE from another pack (the ``depth_encoding`` widgets and
# Vid4DDepthFromImage): reading -> (what the grey values are, as a value encoding; the kind of the result).
# The first three place grey 0..1 between near and far (``disparity``: near = bright; ``depth``: near = dark,
# relative; ``metric``: the same mapping in known scene units); the scale_shift readings take
# grey * scale + shift as camera depth or as inverse depth, as it is.
IMAGE_ENCODINGS = {"disparity": ("disparity", "relative"), "depth": ("affine_depth", "relative"), "metric": ("affine_depth", "metric")}
SCALE_SHIFT_ENCODINGS = {"scale_shift_depth": ("depth", "relative"), "scale_shift_disparity": ("disparity", "relative")}


@dataclass
class DepthVideo(TensorData):
    """Per-frame depth (camera-space z, larger = farther; never disparity).

    Attributes:
        depth: ``[T, H, W]`` float, > 0 where valid.
        kind: ``"metric"`` (metric-like z) or ``"relative"`` (known only up to scale and shift).
        valid: optional ``[T, H, W]`` bool; where False the depth value carries no information.
        encoding: ``"depth"`` (default: camera z), ``"affine_depth"`` or ``"disparity"`` (see
            ``VALUE_ENCODINGS``); consumers call :meth:`as_depth` instead of guessing.
    """

    depth: torch.Tensor
    kind: str = "relative"
    valid: torch.Tensor | None = None
    encoding: str = "depth"

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("DepthVideo.depth", self.depth, ("T", "H", "W"), dims=dims)
        if self.valid is not None:
            check_tensor("DepthVideo.valid", self.valid, ("T", "H", "W"), kind="bool", dims=dims)
        if self.kind not in DEPTH_KINDS:
            raise ValueError(f"DepthVideo.kind: expected one of {DEPTH_KINDS}, got {self.kind!r}")
        if self.encoding not in VALUE_ENCODINGS:
            raise ValueError(f"DepthVideo.encoding: expected one of {VALUE_ENCODINGS}, got {self.encoding!r}")
        if self.encoding != "depth" and self.kind != "relative":
            raise ValueError(f"DepthVideo: encoding {self.encoding!r} is known only up to scale and shift, so kind must be 'relative', got {self.kind!r}")
        check_range("DepthVideo.depth", lambda: self.depth if self.valid is None else self.depth[self.valid], low=0.0, source=self.depth)

    @property
    def num_frames(self) -> int:
        return int(self.depth.shape[0])

    @property
    def near_is(self) -> str:
        """``"low"`` when small values are near (depth), ``"high"`` when large values are (disparity)."""
        return "high" if self.encoding == "disparity" else "low"

    def as_depth(self, near: float = 1.0, far: float = 10.0) -> "DepthVideo":
        """Camera-z depth: itself for ``encoding="depth"``; an affine-invariant video is placed between
        ``near`` and ``far`` with one mapping for the whole video (its valid min/max → near/far; linear
        in depth for ``affine_depth``, in inverse depth for ``disparity``)."""
        if self.encoding == "depth":
            return self
        if not 0 < near < far:
            raise ValueError(f"DepthVideo.as_depth: expected 0 < near < far, got near={near}, far={far}")
        values = self.depth if self.valid is None else self.depth[self.valid]
        if values.numel() == 0:
            raise ValueError("DepthVideo.as_depth: no valid depth values")
        lo, hi = float(values.min()), float(values.max())
        depth = place_between(((self.depth - lo) / max(hi - lo, 1e-12)).clamp(0, 1), self.encoding, near, far)
        if self.valid is not None:
            depth = torch.where(self.valid, depth, torch.zeros_like(depth))
        return DepthVideo.from_checked(depth.float(), kind="relative", valid=self.valid, encoding="depth")

    def nearness(self, frame: int = 0) -> torch.Tensor:
        """``[H, W]`` inverse depth of one frame (larger = nearer; an affine-invariant video is placed with
        :meth:`as_depth`'s defaults first); pixels without depth get the farthest value."""
        video = self.as_depth()
        d = video.depth[frame].float()
        valid = d > 0 if video.valid is None else video.valid[frame] & (d > 0)
        inv = torch.where(valid, 1.0 / d.clamp_min(1e-8), torch.zeros_like(d))
        return torch.where(valid, inv, inv[valid].min() if bool(valid.any()) else inv)

    def normalized(self) -> torch.Tensor:
        """``[T, H, W]`` in 0..1 with near = 1 (as depth packs' grey maps), one mapping for the video."""
        if self.encoding == "depth":
            return depth_to_image(self.depth, self.valid)[..., 0]
        values = self.depth if self.valid is None else self.depth[self.valid]
        lo, hi = float(values.min()), float(values.max())
        g = ((self.depth - lo) / max(hi - lo, 1e-12)).clamp(0, 1)
        g = g if self.encoding == "disparity" else 1 - g
        return g if self.valid is None else g * self.valid

    def to_image(self, near: float | None = None, far: float | None = None) -> torch.Tensor:
        """Grey preview ``[T, H, W, 3]`` in 0..1, near = bright (as depth packs show it).

        Normalised in inverse depth between ``near`` and ``far`` (default: the video's own 1st/99th
        percentiles), one mapping for the whole video so it does not flicker. Invalid pixels are black.
        """
        if self.encoding != "depth":
            return self.normalized().float().unsqueeze(-1).expand(*self.depth.shape, 3).contiguous()
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
        # Integer strides: a float32 linspace rounds its last index up to numel() past ~16M values.
        sample = sample[torch.arange(1_000_000, device=sample.device) * (sample.numel() - 1) // 999_999]
    lo = 1.0 / far if far else float(torch.quantile(sample.float(), 0.01))
    hi = 1.0 / near if near else float(torch.quantile(sample.float(), 0.99))
    grey = ((inv - lo) / max(hi - lo, 1e-12)).clamp(0, 1) * valid
    return grey.float().unsqueeze(-1).expand(*depth.shape, 3).contiguous()


def place_between(g: torch.Tensor, encoding: str, near: float, far: float) -> torch.Tensor:
    """Normalised values ``g`` in 0..1 of an affine-invariant encoding → camera z between ``near`` and
    ``far``: linear in inverse depth for ``disparity`` (g = 1 is near), linear in depth for ``affine_depth``
    (g = 0 is near)."""
    if encoding == "disparity":
        return 1.0 / (g / near + (1 - g) / far)
    return near + g * (far - near)


def depth_from_grey(grey: torch.Tensor, encoding: str = "disparity", near: float = 1.0, far: float = 10.0, *, scale: float = 1.0, shift: float = 0.0) -> DepthVideo:
    """Grey values ``[T, H, W]`` of a depth map read as ``encoding`` (one of :data:`IMAGE_ENCODINGS` or
    :data:`SCALE_SHIFT_ENCODINGS`) → :class:`DepthVideo` of camera z.

    ``disparity`` (Depth Anything, DepthCrafter, Video Depth Anything: near = bright) maps grey g linearly in
    inverse depth so that g = 1 is ``near`` and g = 0 is ``far`` (always finite and positive, whatever the map
    holds); ``depth`` (near = dark) maps g linearly in depth from ``near`` (0) to ``far`` (1), relative;
    ``metric`` is the same mapping for a map whose range is known in scene units (kind ``"metric"``).
    ``scale_shift_depth`` / ``scale_shift_disparity``: value = g · scale + shift is the depth / its inverse.
    """
    check_tensor("depth image", grey, ("T", "H", "W"))
    if encoding in SCALE_SHIFT_ENCODINGS:
        value = grey * scale + shift
        if not bool((value > 0).all()):
            raise ValueError(f"{encoding}: grey * scale + shift must be > 0 everywhere, got minimum {float(value.min()):.4g}; adjust scale/shift")
        return DepthVideo((value if SCALE_SHIFT_ENCODINGS[encoding][0] == "depth" else 1.0 / value).float(), kind="relative")
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"depth image: encoding must be one of {', '.join([*IMAGE_ENCODINGS, *SCALE_SHIFT_ENCODINGS])}, got {encoding!r}")
    if not 0 < near < far:
        raise ValueError(f"depth image: expected 0 < near < far, got near={near}, far={far}")
    values, kind = IMAGE_ENCODINGS[encoding]
    g = check_range("depth image", grey, -1e-3, 1 + 1e-3).clamp(0, 1)
    return DepthVideo.from_checked(place_between(g, values, near, far).float(), kind=kind)


def depth_from_image(image: torch.Tensor, encoding: str = "disparity", near: float = 1.0, far: float = 10.0, **scale_shift) -> DepthVideo:
    """A grey IMAGE ``[T, H, W, C]`` from a depth pack → :class:`DepthVideo` (its channel mean read as
    :func:`depth_from_grey` says)."""
    return depth_from_grey(check_image("depth image", image).mean(dim=-1), encoding, near, far, **scale_shift)


# Google's polynomial fit of the Turbo colormap (a lookup small enough to carry here).
_TURBO = torch.tensor(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)
COLORMAPS = ("grey", "turbo")


def colorize(values: torch.Tensor, colormap: str = "turbo") -> torch.Tensor:
    """``[T, H, W]`` in 0..1 → ``[T, H, W, 3]`` RGB (``grey``, or ``turbo``: 0 = dark blue, 1 = dark red)."""
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap: expected one of {COLORMAPS}, got {colormap!r}")
    x = values.float().clamp(0, 1)
    if colormap == "grey":
        return x.unsqueeze(-1).expand(*x.shape, 3).contiguous()
    powers = torch.stack([x**i for i in range(6)], dim=-1)  # [T, H, W, 6]
    return (powers @ _TURBO.to(x.device).t()).clamp(0, 1)


def align_scale_shift(values: torch.Tensor, window: int = 16, overlap: int = 4) -> torch.Tensor:
    """Temporal consistency for affine-invariant maps ``[T, H, W]`` normalised per clip or per frame.

    The video is cut into chunks of ``window`` frames; each chunk gets the scale and shift (least squares,
    pixel by pixel) that make its first ``overlap`` frames match the last ``overlap`` aligned frames of
    the previous chunk (neighbouring frames see nearly the same depth), so a jump in normalisation
    between chunks is removed while each chunk keeps its own detail.
    """
    check_tensor("depth values", values, ("T", "H", "W"))
    if not 1 <= overlap <= window:
        raise ValueError(f"align_scale_shift: expected 1 <= overlap <= window, got overlap={overlap}, window={window}")
    out = values.clone().float()
    for start in range(window, out.shape[0], window):
        n = min(overlap, out.shape[0] - start)
        x, y = values[start : start + n].reshape(-1).float(), out[start - n : start].reshape(-1)
        design = torch.stack([x, torch.ones_like(x)], dim=1)
        scale, shift = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
        out[start : start + window] = values[start : start + window] * scale + shift
    return out
