"""DOT's learned flow refiner: a RAFT-style network that sharpens a coarse dense flow + visibility.

DOT (Le Moing et al., "Dense Optical Tracking: Connecting the Dots", CVPR 2024, MIT licence,
github.com/16lemoing/dot) first tracks sparse points, interpolates them into a coarse flow and
visibility between a source and a target frame, then refines both with this network. The layer
names, channel sizes and the maths follow ``dot/models/shelf/raft.py`` and
``dot/models/shelf/raft_utils/{extractor,update,corr,utils}.py`` with the ``configs/raft_patch_4_alpha.json``
settings, so the public checkpoint ``movi_f_raft_patch_4_alpha.pth`` (a raw ``state_dict`` with keys
``fnet.* cnet.* update_block.*``) loads strictly. The code here is written for this project.

Conventions (all from the official code):

* Frames are RGB in ``0..1``; the network maps them to ``-1..1`` itself (``2x - 1``).
* The network works on a grid ``patch_size`` (4) times coarser than the frames. Its flow state is in
  *coarse* pixels; the convex upsampling multiplies it by ``patch_size``, so the output flow is in
  full-resolution pixels, ``(dx, dy)`` channel order, displacement from source to target.
* Visibility ("alpha") is carried in logit space: the coarse visibility probability is turned into a
  logit with ``logit(p, eps=1e-5)``, refined additively, convex-upsampled *as a logit*, and a
  ``sigmoid`` gives the probability. DOT thresholds that probability at 0.8 at test time.
* DOT samples the coarse initial flow on an ``align_corners`` grid of the coarse size (coarse cell
  ``j`` sits at full-resolution pixel ``j (W - 1) / (w - 1)``) and converts it to coarse units with
  ``flow_px (w - 1) / (W - 1)``. :class:`DotRefiner` does the same by default.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import loading

CHECKPOINT_NAME = "movi_f_raft_patch_4_alpha.pth"
MODELS_FOLDER = "models/vid4d/tracking/"
ALPHA_THRESHOLD = 0.8  # DOT's test-time threshold on the sigmoid visibility (optical_flow.py)
_ALPHA_EPS = 1e-5  # clamp of the initial visibility before its logit (raft.py initialize_alpha)
_NORMS = ("instance", "batch", "group", "none")


# ---------------------------------------------------------------------------- feature / context encoder
def _norm(kind: str, channels: int, groups: int) -> nn.Module:
    """The normalisation RAFT's encoders use; instance norm has no affine weights (no state_dict keys)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected one of {_NORMS}")


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a skip; a strided block downsamples the skip with a 1x1 conv.

    ``[B, in_ch, H, W] -> [B, out_ch, H / stride, W / stride]``.
    """

    def __init__(self, in_ch: int, out_ch: int, norm: str, stride: int = 1):
        super().__init__()
        groups = out_ch // 8
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm1 = _norm(norm, out_ch, groups)
        self.norm2 = _norm(norm, out_ch, groups)
        # Keys ``downsample.0`` (conv) and ``downsample.1`` (norm) as in the checkpoint.
        self.downsample = None
        if stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride), _norm(norm, out_ch, groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(skip + y)


class Encoder(nn.Module):
    """RAFT's ``BasicEncoder``: 7x7 stem, three pairs of residual blocks (64, 96, 128 ch), 1x1 out conv.

    ``[B, 3, H, W]`` in ``-1..1`` -> ``[B, out_dim, H / patch_size, W / patch_size]`` (sizes rounded up).
    For ``patch_size`` 4 the stem keeps the resolution and the 2nd and 3rd stages halve it; for 8 the
    stem halves it too. Feature cell ``i`` is centred on full-resolution pixel ``patch_size * i``.
    """

    def __init__(self, out_dim: int = 256, norm: str = "instance", patch_size: int = 4):
        super().__init__()
        if patch_size not in (4, 8):
            raise ValueError(f"patch_size must be 4 or 8 (the official encoders), got {patch_size}")
        stem_stride = 1 if patch_size == 4 else 2
        self.conv1 = nn.Conv2d(3, 64, 7, stride=stem_stride, padding=3)
        self.norm1 = _norm(norm, 64, 8)
        self.layer1 = self._stage(64, 64, norm, stride=1)
        self.layer2 = self._stage(64, 96, norm, stride=2)
        self.layer3 = self._stage(96, 128, norm, stride=2)
        self.conv2 = nn.Conv2d(128, out_dim, 1)
        for m in self.modules():  # the official initialisation; only matters for untrained weights
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(in_ch: int, out_ch: int, norm: str, stride: int) -> nn.Sequential:
        return nn.Sequential(ResidualBlock(in_ch, out_ch, norm, stride), ResidualBlock(out_ch, out_ch, norm, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


# ---------------------------------------------------------------------------- correlation pyramid
def sample_pixels(image: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear sample ``image [N, C, H, W]`` at pixel coordinates ``xy [N, h, w, 2]`` (x, y) -> ``[N, C, h, w]``.

    Outside the image reads as zero. Uses the ``align_corners=False`` normalisation
    ``(2x + 1) / W - 1``, which lands on exactly the same pixel positions as RAFT's
    ``align_corners=True`` one but stays defined when a pyramid level is one pixel wide.
    """
    h, w = image.shape[-2:]
    x = (2 * xy[..., 0] + 1) / w - 1
    y = (2 * xy[..., 1] + 1) / h - 1
    return F.grid_sample(image, torch.stack([x, y], dim=-1), mode="bilinear", padding_mode="zeros", align_corners=False)


class CorrPyramid:
    """All-pairs feature correlation, average-pooled into ``levels`` levels, read in a window around a point.

    Built once per (source, target) pair: level 0 is ``<f_src(p), f_dst(q)> / sqrt(C)`` for every source
    cell p and target cell q, shaped ``[B*h*w, 1, h, w]``; level k pools the target axes by ``2**k``.
    Memory is ``(h*w)**2`` floats (about 1.3 GiB with the pyramid at 512x512 input, patch 4).
    """

    def __init__(self, fmap_src: torch.Tensor, fmap_dst: torch.Tensor, levels: int = 4, radius: int = 4):
        b, c, h, w = fmap_src.shape
        self.levels, self.radius, self.shape = levels, radius, (b, h, w)
        corr = torch.einsum("bcp,bcq->bpq", fmap_src.flatten(2).float(), fmap_dst.flatten(2).float()) / math.sqrt(c)
        corr = corr.reshape(b * h * w, 1, h, w)
        self.pyramid = [corr]
        for _ in range(levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """``coords [B, 2, h, w]`` (target position of each source cell, coarse pixels)
        -> ``[B, levels * (2r+1)**2, h, w]`` correlation features.

        Channel order must match the trained ``convc1``: level-major, then the x offset, then the y
        offset (RAFT builds its window with ``meshgrid(dy, dx)`` but adds it to ``(x, y)``, so the
        slower window index moves x).
        """
        b, h, w = self.shape
        r = self.radius
        offsets = torch.arange(-r, r + 1, device=coords.device, dtype=torch.float32)
        window = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)  # [2r+1, 2r+1, (x, y)]
        centre = coords.float().permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = []
        for level, corr in enumerate(self.pyramid):
            sampled = sample_pixels(corr, centre / 2**level + window)  # [B*h*w, 1, 2r+1, 2r+1]
            out.append(sampled.reshape(b, h, w, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------- update block
class MotionEncoder(nn.Module):
    """Encodes the correlation features and the current (flow, alpha) state into 128 channels.

    ``corr [B, levels*(2r+1)**2, h, w]``, ``state [B, 5, h, w]`` = (flow dx, dy, alpha logit, 0, 0)
    -> ``[B, 128, h, w]`` = 123 learned channels followed by the 5 state channels themselves.
    The two zero channels are how the official model pads the state (its ``convf1`` has 5 inputs).
    """

    STATE_DIM = 5

    def __init__(self, corr_levels: int = 4, corr_radius: int = 4, out_dim: int = 128):
        super().__init__()
        corr_dim = corr_levels * (2 * corr_radius + 1) ** 2
        self.convc1 = nn.Conv2d(corr_dim, 256, 1)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(self.STATE_DIM, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(192 + 64, out_dim - self.STATE_DIM, 3, padding=1)

    def forward(self, corr: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        c = F.relu(self.convc2(F.relu(self.convc1(corr))))
        s = F.relu(self.convf2(F.relu(self.convf1(state))))
        return torch.cat([F.relu(self.conv(torch.cat([c, s], dim=1))), state], dim=1)


class SepConvGRU(nn.Module):
    """A ConvGRU run twice: first with 1x5 convs (horizontal), then with 5x1 convs (vertical).

    ``h [B, hidden, h, w]``, ``x [B, input, h, w]`` -> new ``h``.
    """

    def __init__(self, hidden_dim: int = 128, input_dim: int = 256):
        super().__init__()
        both = hidden_dim + input_dim
        self.convz1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(both, hidden_dim, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(both, hidden_dim, (5, 1), padding=(2, 0))

    @staticmethod
    def _step(h, x, convz, convr, convq):
        hx = torch.cat([h, x], dim=1)
        z, r = torch.sigmoid(convz(hx)), torch.sigmoid(convr(hx))
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)


class Head(nn.Module):
    """Two 3x3 convs with a ReLU between: ``[B, in, h, w] -> [B, out, h, w]`` (flow and alpha deltas)."""

    def __init__(self, in_dim: int = 128, hidden_dim: int = 256, out_dim: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, out_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


def _mask_head(in_dim: int, patch_size: int) -> nn.Sequential:
    """Convex-upsampling weights: ``[B, in, h, w] -> [B, 9 * patch_size**2, h, w]`` (keys ``.0``, ``.2``)."""
    return nn.Sequential(nn.Conv2d(in_dim, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, 9 * patch_size**2, 1))


class UpdateBlock(nn.Module):
    """One refinement step: motion encoding -> GRU -> flow/alpha deltas and upsampling masks."""

    def __init__(self, hidden_dim: int = 128, context_dim: int = 128, corr_levels: int = 4, corr_radius: int = 4, patch_size: int = 4):
        super().__init__()
        motion_dim = 128
        self.encoder = MotionEncoder(corr_levels, corr_radius, motion_dim)
        self.gru = SepConvGRU(hidden_dim, context_dim + motion_dim)
        self.flow_head = Head(hidden_dim, 256, 2)
        self.mask = _mask_head(hidden_dim, patch_size)
        self.alpha_head = Head(hidden_dim, 256, 1)
        self.alpha_mask = _mask_head(hidden_dim, patch_size)

    def forward(self, hidden, context, corr, flow, alpha_logit):
        """``hidden [B, 128, h, w]``, ``context [B, 128, h, w]``, ``corr``, ``flow [B, 2, h, w]`` (coarse px),
        ``alpha_logit [B, 1, h, w]`` -> (hidden, flow mask, delta flow, alpha mask, delta alpha logit)."""
        state = torch.cat([flow, alpha_logit, torch.zeros_like(flow)], dim=1)
        motion = self.encoder(corr, state)
        hidden = self.gru(hidden, torch.cat([context, motion], dim=1))
        # The 0.25 scale on the mask logits is in the official model (it softens the softmax).
        return hidden, 0.25 * self.mask(hidden), self.flow_head(hidden), 0.25 * self.alpha_mask(hidden), self.alpha_head(hidden)


def _nearest_up(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, h, w] -> [B, C, h * P, w * P]`` by repeating each cell."""
    return x.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def convex_upsample(x: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Upsample ``x [B, C, h, w]`` by ``patch_size`` with learned convex weights.

    ``mask [B, 9 * P * P, h, w]`` holds, for each of the ``P x P`` output pixels of a coarse cell,
    logits over its 3x3 coarse neighbourhood (channel = neighbour * P * P + row * P + col); the
    softmax makes each output a convex combination. Neighbours outside the grid read as zero.
    -> ``[B, C, h * P, w * P]``.
    """
    b, c, h, w = x.shape
    p = patch_size
    weights = torch.softmax(mask.view(b, 1, 9, p, p, h, w), dim=2)
    neighbours = F.unfold(x, 3, padding=1).view(b, c, 9, 1, 1, h, w)
    up = (weights * neighbours).sum(dim=2)  # [B, C, P, P, h, w]
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * p, w * p)


# ---------------------------------------------------------------------------- the network
class DotRaftRefiner(nn.Module):
    """DOT's RAFT refiner with alpha (``configs/raft_patch_4_alpha.json``); official hyper-parameters as defaults.

    Submodules ``fnet`` (matching features), ``cnet`` (context: GRU hidden init + input),
    ``update_block`` (motion encoder, ConvGRU, flow/alpha heads, two mask heads).
    5,785,182 parameters (102 tensors) with the defaults.
    """

    def __init__(
        self,
        patch_size: int = 4,
        feature_dim: int = 256,
        hidden_dim: int = 128,
        context_dim: int = 128,
        corr_levels: int = 4,
        corr_radius: int = 4,
        norm_fnet: str = "instance",
        norm_cnet: str = "instance",
        iters: int = 4,  # config num_iter; the default step count used by DotRefiner
    ):
        super().__init__()
        self.patch_size, self.hidden_dim, self.context_dim = patch_size, hidden_dim, context_dim
        self.corr_levels, self.corr_radius, self.iters = corr_levels, corr_radius, iters
        self.fnet = Encoder(feature_dim, norm_fnet, patch_size)
        self.cnet = Encoder(hidden_dim + context_dim, norm_cnet, patch_size)
        self.update_block = UpdateBlock(hidden_dim, context_dim, corr_levels, corr_radius, patch_size)

    def coarse_size(self, height: int, width: int) -> tuple[int, int]:
        """The grid the network refines on for ``height x width`` frames (which must divide by ``patch_size``)."""
        return height // self.patch_size, width // self.patch_size

    def forward(
        self,
        src: torch.Tensor,
        dst: torch.Tensor,
        flow_init: torch.Tensor | None = None,
        alpha_init: torch.Tensor | None = None,
        iters: int = 4,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refine a coarse flow and visibility from ``src`` to ``dst``.

        Args:
            src, dst: ``[B, 3, H, W]`` RGB in ``0..1``; ``H`` and ``W`` divisible by ``patch_size`` and
                at least ``8 * patch_size`` (so the coarsest correlation level is not empty).
            flow_init: ``[B, 2, H/P, W/P]`` initial displacement (dx, dy) in *coarse* pixels, or None (zero).
            alpha_init: ``[B, 1, H/P, W/P]`` initial visibility *probability* in ``0..1``, or None (all visible);
                clamped to ``[1e-5, 1 - 1e-5]`` and turned into a logit, as in DOT.
            iters: refinement steps (DOT uses 4 for this checkpoint).

        Returns:
            flow ``[B, 2, H, W]`` in full-resolution pixels (float32) and alpha_logit ``[B, 1, H, W]``
            (float32; ``sigmoid`` gives the visibility probability, DOT keeps ``> 0.8``).
        """
        b, _, height, width = src.shape
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"DotRaftRefiner: frame size {height}x{width} must be divisible by patch_size {p}")
        if min(height, width) < p * 2 ** (self.corr_levels - 1):
            raise ValueError(f"DotRaftRefiner: frames must be at least {p * 2 ** (self.corr_levels - 1)} pixels on each side, got {height}x{width}")
        h, w = self.coarse_size(height, width)
        dtype = self.fnet.conv1.weight.dtype

        # Both frames through the feature encoder in one batch (its norms are per sample, so this is exact).
        fmaps = self.fnet(torch.cat([src, dst], dim=0).to(dtype) * 2 - 1)
        corr_fn = CorrPyramid(fmaps[:b], fmaps[b:], self.corr_levels, self.corr_radius)
        hidden, context = self.cnet(src.to(dtype) * 2 - 1).split([self.hidden_dim, self.context_dim], dim=1)
        hidden, context = torch.tanh(hidden), torch.relu(context)

        # State in float32 whatever the weights' dtype: positions accumulate over the iterations.
        ys, xs = torch.meshgrid(torch.arange(h, device=src.device), torch.arange(w, device=src.device), indexing="ij")
        coords0 = torch.stack([xs, ys]).float().expand(b, 2, h, w)
        flow = torch.zeros(b, 2, h, w, device=src.device) if flow_init is None else flow_init.float()
        coords1 = coords0 + flow
        if alpha_init is None:
            alpha_init = torch.ones(b, 1, h, w, device=src.device)
        alpha = alpha_init.float().logit(eps=_ALPHA_EPS)
        if flow.shape != (b, 2, h, w) or alpha.shape != (b, 1, h, w):
            raise ValueError(f"DotRaftRefiner: flow_init/alpha_init must be [B,2,{h},{w}]/[B,1,{h},{w}], got {tuple(flow.shape)}/{tuple(alpha.shape)}")

        mask_flow = mask_alpha = None
        for _ in range(iters):
            corr = corr_fn(coords1).to(dtype)
            hidden, mask_flow, d_flow, mask_alpha, d_alpha = self.update_block(
                hidden, context, corr, (coords1 - coords0).to(dtype), alpha.to(dtype)
            )
            coords1 = coords1 + d_flow.float()
            alpha = alpha + d_alpha.float()

        if mask_flow is None:  # iters == 0: no learned masks, plain nearest upsampling of the init
            return _nearest_up(p * (coords1 - coords0), p), _nearest_up(alpha, p)
        # Coarse px -> full px: the flow is scaled by P before the convex combination.
        flow_up = convex_upsample(p * (coords1 - coords0), mask_flow.float(), p)
        alpha_up = convex_upsample(alpha, mask_alpha.float(), p)
        return flow_up, alpha_up


@functools.lru_cache(maxsize=None)
def expected_state_shapes(patch_size: int = 4) -> dict[str, tuple[int, ...]]:
    """The checkpoint's key -> shape map for the official hyper-parameters (built on the meta device)."""
    with torch.device("meta"):
        net = DotRaftRefiner(patch_size=patch_size)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


EXPECTED_KEYS: tuple[str, ...] = tuple(expected_state_shapes())


# ---------------------------------------------------------------------------- what the tracker calls
class DotRefiner:
    """Runs :class:`DotRaftRefiner` on one frame pair with full-resolution inputs and outputs.

    Pads the frames (replicate, bottom/right, so pixel coordinates do not move) to a multiple of 8 and
    at least 32 pixels, samples the dense initial flow/visibility onto the coarse grid the way DOT
    does, runs the network without gradients, crops back. Outputs are float32 on ``src``'s device.

    ``init_convention``:
        ``"official"`` (default) — coarse cell ``j`` takes the init at full pixel ``j (W-1)/(w-1)``
        and the flow is scaled by ``(w-1)/(W-1)`` per axis, exactly what DOT feeds the network in
        training and at test time. The round trip ``P (w-1)/(W-1)`` is slightly below 1 (0.994 at
        512 px wide, 0.968 at 96 px): the network was trained with that and corrects it.
        ``"patch"`` — cell ``j`` takes the init at full pixel ``P j`` (where its features are centred)
        and the flow is divided by ``P``; an unrefined init then round-trips exactly.
    """

    PAD_MULTIPLE = 8

    def __init__(self, net: DotRaftRefiner, device="cpu", dtype: torch.dtype = torch.float32, iters: int | None = None, init_convention: str = "official"):
        if init_convention not in ("official", "patch"):
            raise ValueError(f"init_convention must be 'official' or 'patch', got {init_convention!r}")
        self.device, self.dtype = torch.device(device), dtype
        self.net = net.to(self.device, dtype).eval().requires_grad_(False)
        self.iters = net.iters if iters is None else iters  # the official num_iter (4) by default
        self.init_convention = init_convention

    def _coarse_init(self, flow: torch.Tensor, vis: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``flow [1, 2, H, W]`` px, ``vis [1, 1, H, W]`` -> coarse flow (coarse px) and visibility."""
        height, width = flow.shape[-2:]
        if self.init_convention == "patch":
            p = self.net.patch_size
            return flow[..., ::p, ::p] / p, vis[..., ::p, ::p]
        # align_corners=True bilinear resize samples exactly DOT's coarse grid j (W-1)/(w-1).
        flow_c = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=True)
        scale = torch.tensor([(w - 1) / max(width - 1, 1), (h - 1) / max(height - 1, 1)], device=flow.device)
        vis_c = F.interpolate(vis, size=(h, w), mode="bilinear", align_corners=True)
        return flow_c * scale.view(1, 2, 1, 1), vis_c

    def __call__(self, src: torch.Tensor, dst: torch.Tensor, flow_init: torch.Tensor, vis_init: torch.Tensor, iters: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Refine one source->target pair.

        Args:
            src, dst: ``[3, H, W]`` RGB in ``0..1``.
            flow_init: ``[2, H, W]`` displacement (dx, dy) in pixels from ``src`` to ``dst``.
            vis_init: ``[H, W]`` visibility in ``dst`` of each ``src`` pixel, ``0..1`` (bool accepted).
            iters: refinement steps (default: the refiner's, 4).

        Returns:
            flow ``[2, H, W]`` in pixels and vis ``[H, W]`` probability in ``0..1``
            (threshold with :data:`ALPHA_THRESHOLD` for DOT's binary visibility).
        """
        height, width = src.shape[-2:]
        for name, t, shape in (("src", src, (3, height, width)), ("dst", dst, (3, height, width)),
                               ("flow_init", flow_init, (2, height, width)), ("vis_init", vis_init, (height, width))):
            if tuple(t.shape) != shape:
                raise ValueError(f"DotRefiner: {name} must have shape {list(shape)}, got {list(t.shape)}")
        out_device = src.device
        m = self.PAD_MULTIPLE
        pad_h = max(-(-height // m) * m, 32) - height
        pad_w = max(-(-width // m) * m, 32) - width

        def prep(t: torch.Tensor) -> torch.Tensor:
            t = t.to(self.device, torch.float32)[None]
            return F.pad(t, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else t

        frames = prep(torch.stack([src, dst]).float().clamp(0, 1).flatten(0, 1)).view(1, 2, 3, height + pad_h, width + pad_w)
        flow, vis = prep(flow_init.float()), prep(vis_init.float().clamp(0, 1)[None])
        h, w = self.net.coarse_size(height + pad_h, width + pad_w)
        flow_c, vis_c = self._coarse_init(flow, vis, h, w)
        with torch.no_grad():
            flow_up, alpha_up = self.net(frames[:, 0], frames[:, 1], flow_c, vis_c, iters=self.iters if iters is None else iters)
        flow_out = flow_up[0, :, :height, :width].float()
        vis_out = torch.sigmoid(alpha_up[0, 0, :height, :width].float())
        return flow_out.to(out_device), vis_out.to(out_device)


# ---------------------------------------------------------------------------- loading
def _missing_message(path: Path) -> str:
    source = loading.MODEL_KINDS["tracking"].files[0].source
    return (f"DOT refiner checkpoint not found: {path}; put {CHECKPOINT_NAME} in ComfyUI/{MODELS_FOLDER} "
            f"(or $VID4D_MODELS_DIR/tracking/); get it from {source}")


def _check_layout(state: dict, path: Path) -> None:
    """Raise :class:`~.loading.CheckpointFormatError` naming missing/unexpected/mis-shaped keys."""
    expected = expected_state_shapes()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} {tuple(state[k].shape)} != {expected[k]}" for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or unexpected or mis_shaped:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", mis_shaped)):
            if items:
                parts.append(f"{len(items)} {label} (first: {', '.join(items[:5])})")
        raise loading.CheckpointFormatError(
            f"{path}: not the DOT refiner checkpoint {CHECKPOINT_NAME} (RAFT patch 4 with alpha): " + "; ".join(parts)
        )


def load_dot_raft(path, device="cpu", dtype: torch.dtype = torch.float32) -> DotRefiner:
    """Load ``movi_f_raft_patch_4_alpha.pth`` (or a ``.safetensors`` copy) into a ready :class:`DotRefiner`.

    Accepts the raw official ``state_dict`` and one saved from ``DataParallel`` (``module.`` prefix).
    Raises :class:`~.loading.ModelNotFoundError` for a missing file and
    :class:`~.loading.CheckpointFormatError` for an unreadable file or a different key layout.
    The built refiner is cached by (path, mtime, dtype, device).
    """
    path = Path(path)
    if not path.is_file():
        raise loading.ModelNotFoundError(_missing_message(path))
    device = torch.device(device)
    stat = path.stat()
    key = ("dot_raft", str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(dtype), str(device))

    def build() -> DotRefiner:
        state = loading.load_state_dict(path, device="cpu")
        if state and all(k.startswith("module.") for k in state):
            state = {k[len("module."):]: v for k, v in state.items()}
        loading.require_keys(state, ["fnet.", "cnet.", "update_block."], path)
        _check_layout(state, path)
        net = DotRaftRefiner()
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # e.g. a dtype that cannot be copied; layout was checked above
            raise loading.CheckpointFormatError(f"{path}: could not load into the DOT refiner: {exc}") from exc
        return DotRefiner(net, device=device, dtype=dtype)

    return loading.cached(key, build)
