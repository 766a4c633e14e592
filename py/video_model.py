"""What a video model needs from a render: its frame and size rules, the mask at latent resolution, windows.

The one home for the contract between Vid4D's renders and the latent video models that finish them (Wan
2.1/2.2 through ComfyUI's core nodes, CogVideoX in GSDiTSampler, any model through latent inpainting):

- **Frame and size rules** (:data:`VIDEO_MODELS`, :func:`snap_frames`): a causal video VAE compresses
  ``temporal`` frames into one latent frame after the first, so clips have ``1 + temporal·k`` frames
  (Wan, CogVideoX, HunyuanVideo: 4k+1); sizes are multiples of the VAE stride × the DiT patch (16 for Wan 2.1).
- **The mask at latent resolution** (:func:`latent_mask`): latent frame 0 encodes frame 0 and latent frame
  j ≥ 1 frames ``temporal·(j−1)+1 … temporal·j``; one latent pixel encodes an ``spatial × spatial`` cell. A
  latent cell is regenerated when *any* pixel it encodes must be, so the kept latents hold nothing but
  rendered pixels. That is what "keep the rendered regions" means for every consumer: GSDiTSampler's
  training_free blending, ``SetLatentNoiseMask`` (ComfyUI resizes a mask of exactly the latent's size to
  itself, so :func:`latent_mask` is what the sampler uses) and WanVaceToVideo (:func:`control_mask`
  lays the same cells out in pixels so that the frame it samples for each latent frame carries that
  latent frame's cells).
- **What is unreliable in a render** (:func:`unreliable_pixels`): besides the holes, pixels a video model
  should not copy: low alpha (splats blended with the empty background), depth discontinuities (splats
  stretched between foreground and background), and a band around both and around the holes (disoccluded
  edges). VACE copies its control video verbatim outside the mask, so these matter.
- **Windows** (:func:`plan_windows`, :func:`join_windows`): a clip longer than the model's window is cut
  into overlapping windows of the model's length; window k+1 starts with the last frames already generated
  for window k as known frames (mask 0), and the windows are joined with a cross-fade over those frames.

Masks here are float ``[T, H, W]`` with **1 = generate**, 0 = keep (ComfyUI's and WanVaceToVideo's convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checks import check_finite_number, check_positive_int
from .video import FIT_MODES, fit_layout, target_size

HOLE_FILLS = ("grey", "blur", "render")
BLENDS = ("crossfade", "cut")
GREY = 0.5  # WanVaceToVideo pads missing control frames with 0.5 and shifts the control video by -0.5
MAX_WINDOWS = 4096
MAX_OUTPUT_BYTES = 16 << 30  # float32 control video + mask of one window


@dataclass(frozen=True)
class VideoModelSpec:
    """The shape rules of a latent video model.

    Attributes:
        name: registry key.
        temporal: frames per latent frame after the first (VAE time compression).
        spatial: pixels per latent pixel along each side (VAE stride).
        multiple: width and height must be multiples of this (VAE stride × DiT patch size).
        window: frames the model is trained to generate at once (the default window, ``1 + temporal·k``).
        fps: the frame rate it was trained at.
        label: what it covers, for tooltips and the README.
        frame_step: clips are ``1 + frame_step·k`` frames; 0 = ``temporal``. CogVideoX's VAE decodes an
            even latent count without its special first frame (5 frames → 2 latents → 8 frames), so it
            needs an odd latent count: 8k + 1 frames (49 = 13 latents).
    """

    name: str
    temporal: int
    spatial: int
    multiple: int
    window: int
    fps: float
    label: str
    frame_step: int = 0

    @property
    def step(self) -> int:
        """Frames come in ``1 + step·k``."""
        return self.frame_step or self.temporal

    def latent_frames(self, frames: int) -> int:
        return latent_frames(frames, self.temporal)

    def snap_frames(self, frames: int) -> int:
        """Largest frame count ``<= frames`` this model takes."""
        return snap_frames(frames, self.step)


VIDEO_MODELS: dict[str, VideoModelSpec] = {
    spec.name: spec
    for spec in (
        VideoModelSpec("wan2.1", 4, 8, 16, 81, 16.0, "Wan 2.1 T2V/I2V/VACE/Fun (1.3B, 14B) and Wan 2.2 A14B: 81 frames at 16 fps, VAE 8x8, sizes x16"),
        VideoModelSpec("wan2.2_5b", 4, 16, 32, 121, 24.0, "Wan 2.2 TI2V 5B: 121 frames at 24 fps, VAE 16x16, sizes x32"),
        VideoModelSpec("cogvideox", 4, 8, 16, 49, 8.0, "CogVideoX 2B/5B (GSDiTSampler): 8k+1 frames (49 at 8 fps), VAE 8x8, sizes x16", frame_step=8),
        VideoModelSpec("hunyuan_video", 4, 8, 16, 129, 24.0, "HunyuanVideo: 129 frames at 24 fps, VAE 8x8, sizes x16"),
        VideoModelSpec("ltxv", 8, 32, 32, 97, 24.0, "LTX-Video: 8k+1 frames (97 at 24 fps), VAE 32x32, sizes x32"),
    )
}


def video_model(name: str) -> VideoModelSpec:
    """The :class:`VideoModelSpec` registered as ``name``."""
    if name not in VIDEO_MODELS:
        raise ValueError(f"video model: expected one of {', '.join(VIDEO_MODELS)}, got {name!r}")
    return VIDEO_MODELS[name]


# ------------------------------------------------------------------------------------------ frame rules
def snap_frames(frames: int, temporal: int = 4) -> int:
    """Largest ``1 + temporal·k <= frames`` (what a causal video VAE encodes without padding)."""
    frames = check_positive_int("frames", frames)
    return (frames - 1) // temporal * temporal + 1


def latent_frames(frames: int, temporal: int = 4) -> int:
    """Latent frames of a ``1 + temporal·k`` frame clip: ``k + 1`` (ComfyUI: ``(length − 1) // 4 + 1``)."""
    return (check_positive_int("frames", frames) - 1) // temporal + 1


def latent_index(frames: int, temporal: int = 4) -> torch.Tensor:
    """``[T]`` long: the latent frame that encodes each frame (0 ← frame 0, j ← frames ``temporal(j−1)+1 … temporal·j``)."""
    f = torch.arange(frames)
    return (f + temporal - 1) // temporal


def vace_sampled_frames(frames: int, temporal: int = 4) -> torch.Tensor:
    """``[F]`` long: the frame whose mask WanVaceToVideo gives each latent frame.

    It folds the mask into 8×8 channels and resizes the frame axis from ``frames`` to ``F`` latent frames
    with ``interpolate(mode="nearest-exact")``, i.e. it reads frame ``floor((j + 0.5) · T / F)`` — one
    frame of latent j's group or of the next one.
    """
    n = latent_frames(frames, temporal)
    j = torch.arange(n, dtype=torch.float64)
    return torch.floor((j + 0.5) * (frames / n)).long().clamp(max=frames - 1)


# ------------------------------------------------------------------------------------------ masks
def latent_mask(generate: torch.Tensor, temporal: int = 4, spatial: int = 8, grow: int = 0, feather: float = 0.0) -> torch.Tensor:
    """``[T, H, W]`` generate mask (T = 1 + temporal·k, H and W multiples of ``spatial``) → ``[F, H/s, W/s]``.

    A latent cell is 1 when any pixel of any frame it encodes is > 0 (latent frame 0 ← frame 0, j ← frames
    ``temporal(j−1)+1 … temporal·j``), so only cells made of rendered pixels alone are kept. ``grow`` adds
    that many latent cells around (the VAE's receptive field reaches past a cell). ``feather`` (latent
    pixels) blurs the edge outwards so blending leaves no seam; the cells that must be generated stay 1.
    (The same construction as GSDiTSampler's training_free blending: ``grow=0`` gives its mask.)
    """
    if generate.dim() != 3:
        raise ValueError(f"generate: expected a mask [T, H, W], got shape {list(generate.shape)}")
    t, h, w = generate.shape
    if (t - 1) % temporal or h % spatial or w % spatial:
        raise ValueError(f"generate: {t} frames of {w}x{h} do not fit the latent grid (frames 1 + {temporal}k, sizes multiples of {spatial}); snap the clip first")
    grow = check_positive_int("grow", grow, minimum=0, maximum=64)
    feather = check_finite_number("feather", feather, low=0.0, high=64.0)
    hit = (generate > 0).float()
    rest = hit[1:].reshape(-1, temporal, h, w).amax(dim=1) if t > 1 else hit[:0]
    cells = F.max_pool2d(torch.cat([hit[:1], rest])[:, None], spatial)
    if grow:
        cells = F.max_pool2d(cells, 2 * grow + 1, 1, grow)
    if feather > 0:
        import kornia

        k = 2 * math.ceil(2 * feather) + 1
        cells = torch.maximum(cells, kornia.filters.gaussian_blur2d(F.max_pool2d(cells, 3, 1, 1), (k, k), (feather, feather)))
    return cells[:, 0].clamp(0, 1)


def control_mask(latent: torch.Tensor, frames: int, temporal: int = 4, spatial: int = 8, feather_px: float = 0.0) -> torch.Tensor:
    """``[F, h, w]`` latent mask → ``[T, h·s, w·s]`` pixel mask for WanVaceToVideo's ``control_masks``.

    WanVaceToVideo reads one frame per latent frame (:func:`vace_sampled_frames`), often a frame of the
    *next* latent frame. So each frame carries its own latent frame's cells, except the sampled frames,
    which carry the cells of the latent frame they are read for: the mask VACE sees at latent resolution
    is then exactly ``latent`` (every cell touching a hole regenerated, nothing else, and carried frames
    kept). A hole pixel of a sampled frame may thus read 0; with the grey fill VACE gets the same there
    either way (grey in both of its streams). ``feather_px`` blurs the edge outwards in pixels (VACE
    blends the control video into grey by the mask, so a soft edge hides the seam).
    """
    n = latent.shape[0]
    if n != latent_frames(frames, temporal):
        raise ValueError(f"latent mask: {n} latent frames do not match {frames} frames (expected {latent_frames(frames, temporal)})")
    index = latent_index(frames, temporal)
    index[vace_sampled_frames(frames, temporal)] = torch.arange(n)
    pixels = latent[index].repeat_interleave(spatial, dim=1).repeat_interleave(spatial, dim=2)
    return feather_outwards(pixels, feather_px)


def feather_outwards(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """``[T, H, W]``: ``max(mask, blur(mask))`` with a Gaussian of ``sigma`` pixels (the mask never shrinks)."""
    sigma = check_finite_number("feather", sigma, low=0.0, high=256.0)
    if sigma <= 0:
        return mask
    import kornia

    k = 2 * math.ceil(3 * sigma) + 1
    blurred = kornia.filters.gaussian_blur2d(mask[:, None], (k, k), (sigma, sigma), border_type="replicate")[:, 0]
    return torch.maximum(mask, blurred).clamp(0, 1)


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """``[T, H, W]`` float: grow the > 0 region by ``radius`` pixels (square neighbourhood)."""
    if radius <= 0:
        return mask
    return F.max_pool2d(mask[:, None].float(), 2 * radius + 1, 1, radius)[:, 0]


def unreliable_pixels(alpha: torch.Tensor, depth: torch.Tensor, holes: torch.Tensor, min_alpha: float = 0.9, depth_edge: float = 0.1, edge_px: int = 2) -> torch.Tensor:
    """``[T, H, W]`` float generate mask: the holes plus what a video model should not copy from a render.

    - ``alpha < min_alpha``: partly covered pixels, blended with the empty background (thin or spread-out splats);
    - depth discontinuities: neighbours whose depths differ by more than ``depth_edge`` × the nearer one
      (splats stretched between foreground and background); 0 turns it off;
    - then everything (holes included) grown by ``edge_px`` pixels: the rims of disocclusions and silhouettes.
    """
    min_alpha = check_finite_number("min_alpha", min_alpha, low=0.0, high=1.0)
    depth_edge = check_finite_number("depth_edge", depth_edge, low=0.0, high=1e6)
    edge_px = check_positive_int("edge_px", edge_px, minimum=0, maximum=256)
    bad = (holes > 0) | (alpha < min_alpha)
    if depth_edge > 0:
        bad = bad | depth_edges(depth, depth_edge, valid=holes <= 0)
    return dilate(bad.float(), edge_px)


def depth_edges(depth: torch.Tensor, threshold: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``[T, H, W]`` bool: both pixels of every 4-neighbour pair whose depths differ by more than
    ``threshold`` × the nearer depth (pairs with an invalid or non-positive depth are skipped)."""
    ok = depth > 0 if valid is None else valid & (depth > 0)
    out = torch.zeros_like(ok)
    for dim in (1, 2):
        a, b = depth.narrow(dim, 0, depth.shape[dim] - 1), depth.narrow(dim, 1, depth.shape[dim] - 1)
        both = ok.narrow(dim, 0, ok.shape[dim] - 1) & ok.narrow(dim, 1, ok.shape[dim] - 1)
        jump = both & ((a - b).abs() > threshold * torch.minimum(a, b))
        out.narrow(dim, 0, out.shape[dim] - 1).logical_or_(jump)
        out.narrow(dim, 1, out.shape[dim] - 1).logical_or_(jump)
    return out


def fill_holes(rgb: torch.Tensor, holes: torch.Tensor, mode: str = "grey") -> torch.Tensor:
    """``[T, H, W, 3]`` with the pixels where ``holes > 0.5`` replaced: ``grey`` 0.5 (WanVaceToVideo's
    neutral value), ``blur`` (pull-push average of the rendered pixels around: a smooth start for latent
    inpainting) or ``render`` (left as rendered)."""
    if mode not in HOLE_FILLS:
        raise ValueError(f"hole_fill: expected one of {', '.join(HOLE_FILLS)}, got {mode!r}")
    mask = holes > 0.5
    if mode == "render" or not bool(mask.any()):
        return rgb
    if mode == "grey":
        return torch.where(mask[..., None], torch.full_like(rgb, GREY), rgb)
    from .splat import fill_holes as pull_push

    out = pull_push(rgb.permute(0, 3, 1, 2), mask[:, None])
    # A frame with no rendered pixel at all comes back 0: grey is the neutral guess there.
    empty = mask.flatten(1).all(dim=1)
    out = out.permute(0, 2, 3, 1)
    return torch.where(empty[:, None, None, None], torch.full_like(out, GREY), out).clamp(0, 1)


# ------------------------------------------------------------------------------------------ sizes
def output_size(src_w: int, src_h: int, spec: VideoModelSpec, width: int = 0, height: int = 0, fit: str = "crop") -> tuple[int, int]:
    """``(width, height)`` for the model: the given size (0 = from the source, keeping its aspect) snapped
    to the model's multiple: ``crop`` floors, ``pad`` ceils, ``stretch`` rounds."""
    return target_size(src_w, src_h, width, height, fit, spec.multiple)


def fit_video(rgb: torch.Tensor, generate: torch.Tensor, out_w: int, out_h: int, fit: str, rescale: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``[T, H, W, 3]`` frames and their ``[T, H, W]`` generate mask → ``[T, out_h, out_w, …]``, aligned.

    The frames are resized bilinearly (antialiased); the mask by the maximum over each output pixel's
    footprint, so a hole however thin stays a hole. ``rescale=False`` only crops or pads (no resampling);
    padding is a hole (1 in the mask), for the model to outpaint.
    """
    t, h, w, _ = rgb.shape
    new_w, new_h, top, left = fit_layout(w, h, out_w, out_h, fit, rescale)
    if (new_w, new_h) != (w, h):
        from .video import _interpolate

        rgb = torch.cat([_interpolate(rgb[i : i + 16].permute(0, 3, 1, 2), new_h, new_w).permute(0, 2, 3, 1) for i in range(0, t, 16)])
        generate = resize_max(generate, new_h, new_w)
    if fit == "crop":
        return rgb[:, top : top + out_h, left : left + out_w], generate[:, top : top + out_h, left : left + out_w]
    if fit == "pad":
        frames = rgb.new_full((t, out_h, out_w, 3), GREY)
        mask = generate.new_ones((t, out_h, out_w))
        frames[:, top : top + new_h, left : left + new_w] = rgb
        mask[:, top : top + new_h, left : left + new_w] = generate
        return frames, mask
    return rgb, generate


def resize_max(mask: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """``[T, H, W]`` → ``[T, out_h, out_w]``: each output pixel takes the maximum of the input pixels its
    footprint overlaps (output pixel i covers input ``[i·H/out_h, (i+1)·H/out_h)``)."""
    mask = _resize_axis_max(mask, 1, out_h)
    return _resize_axis_max(mask, 2, out_w)


def _resize_axis_max(x: torch.Tensor, dim: int, n_out: int) -> torch.Tensor:
    n_in = x.shape[dim]
    if n_in == n_out:
        return x
    i = torch.arange(n_out)
    lo = i * n_in // n_out
    hi = ((i + 1) * n_in - 1) // n_out  # last input pixel whose interval [j, j+1) the footprint touches
    out = x.index_select(dim, lo)
    for d in range(1, int((hi - lo).max()) + 1):
        out = torch.maximum(out, x.index_select(dim, torch.minimum(lo + d, hi)))
    return out


# ------------------------------------------------------------------------------------------ windows
@dataclass(frozen=True)
class Window:
    """One window of a clip: frames ``start : start + length``, the first ``carried`` of which repeat the
    end of the previous window (known frames, mask 0)."""

    index: int
    start: int
    length: int
    carried: int

    @property
    def stop(self) -> int:
        return self.start + self.length


def plan_windows(frames: int, length: int, overlap: int, temporal: int = 4) -> list[Window]:
    """Cut ``frames`` into windows of ``length`` frames (snapped to ``1 + temporal·k``) overlapping by ``overlap``.

    A clip no longer than a window is one window of :func:`snap_frames` frames (the last frames beyond
    ``1 + temporal·k`` are dropped). Longer clips: windows start every ``length − overlap`` frames and the
    last one is moved back to end on the clip's last frame, so every window has the model's length and
    every frame is covered; that last window carries more than ``overlap`` frames. ``overlap = 1 + temporal·m``
    fills whole latent frames with known frames (the partial latent frame of another overlap is regenerated).
    """
    frames = check_positive_int("frames", frames)
    length = snap_frames(check_positive_int("window_length", length, maximum=1 << 20), temporal)
    overlap = check_positive_int("overlap", overlap, minimum=0, maximum=1 << 20)
    if frames <= length:
        return [Window(0, 0, snap_frames(frames, temporal), 0)]
    if overlap >= length:
        raise ValueError(f"overlap: {overlap} frames must be fewer than the window's {length}")
    stride = length - overlap
    count = -(-(frames - overlap) // stride)
    if count > MAX_WINDOWS:
        raise ValueError(f"{frames} frames in windows of {length} overlapping by {overlap} would be {count} windows (at most {MAX_WINDOWS}); use a longer window or a shorter overlap")
    starts = [k * stride for k in range(count - 1)] + [frames - length]
    return [Window(k, s, length, 0 if k == 0 else starts[k - 1] + length - s) for k, s in enumerate(starts)]


def join_windows(previous: torch.Tensor | None, window: torch.Tensor, overlap: int, blend: str = "crossfade") -> torch.Tensor:
    """``[P, H, W, 3]`` video so far + ``[L, H, W, 3]`` next window whose first ``overlap`` frames repeat the
    last ``overlap`` of ``previous`` → ``[P + L − overlap, H, W, 3]``.

    ``crossfade`` blends the repeated frames linearly from the previous window into the new one (weights
    ``(i + 1) / (overlap + 1)``), hiding the small difference a second VAE round trip makes; ``cut`` keeps
    the previous window's frames. ``previous=None`` returns ``window``.
    """
    if blend not in BLENDS:
        raise ValueError(f"blend: expected one of {', '.join(BLENDS)}, got {blend!r}")
    overlap = check_positive_int("overlap", overlap, minimum=0, maximum=1 << 20)
    if previous is None:
        return window
    if previous.shape[1:] != window.shape[1:]:
        raise ValueError(f"windows differ in size: the video so far is {list(previous.shape[1:])}, the next window {list(window.shape[1:])}")
    if overlap > min(previous.shape[0], window.shape[0]):
        raise ValueError(f"overlap {overlap} is longer than the video so far ({previous.shape[0]} frames) or the window ({window.shape[0]})")
    if overlap == 0:
        return torch.cat([previous, window.to(previous)])
    head = previous[: previous.shape[0] - overlap]
    old, new, rest = previous[-overlap:], window[:overlap].to(previous), window[overlap:].to(previous)
    if blend == "crossfade":
        w = torch.arange(1, overlap + 1, dtype=previous.dtype, device=previous.device).div_(overlap + 1)[:, None, None, None]
        mixed = old * (1 - w) + new * w
    else:
        mixed = old
    return torch.cat([head, mixed, rest])


# ------------------------------------------------------------------------------------------ the bridge
@dataclass
class VideoModelInputs:
    """One window of a render, ready for a video model.

    Attributes:
        control_video: ``[L, H, W, 3]`` the render (carried frames first), holes filled per ``hole_fill``.
        control_mask: ``[L, H, W]`` 1 = generate, laid out for WanVaceToVideo (:func:`control_mask`).
        latent_mask: ``[F, H/s, W/s]`` 1 = generate at latent resolution (for SetLatentNoiseMask).
        generate: ``[L, H, W]`` the pixel-level generate mask before the latent grid (holes, unreliable
            pixels, padding; 0 on carried frames).
        window: which window of the clip this is.
        windows: how many windows the clip needs.
        rescaled: whether the frames were resampled (else only cropped or padded) to the output size.
    """

    control_video: torch.Tensor
    control_mask: torch.Tensor
    latent_mask: torch.Tensor
    generate: torch.Tensor
    window: Window
    windows: int
    rescaled: bool = False

    @property
    def width(self) -> int:
        return int(self.control_video.shape[2])

    @property
    def height(self) -> int:
        return int(self.control_video.shape[1])

    @property
    def length(self) -> int:
        return int(self.control_video.shape[0])


def select_window(frames: int, spec: VideoModelSpec, window_length: int = 0, overlap: int = 17, window_index: int = 0) -> tuple[Window, int]:
    """Window ``window_index`` of a clip of ``frames`` (windows of ``window_length``, 0 = the model's) and the window count."""
    plan = plan_windows(frames, window_length or spec.window, overlap, spec.step)
    window_index = check_positive_int("window_index", window_index, minimum=0)
    if window_index >= len(plan):
        raise ValueError(f"window_index {window_index}: the clip of {frames} frames has {len(plan)} window(s) of {plan[0].length} frames (indices 0..{len(plan) - 1})")
    return plan[window_index], len(plan)


def prepare_window(
    rgb: torch.Tensor,
    generate: torch.Tensor,
    spec: VideoModelSpec,
    window: Window,
    *,
    windows: int = 1,
    width: int = 0,
    height: int = 0,
    fit: str = "crop",
    previous: torch.Tensor | None = None,
    feather: float = 0.0,
    hole_fill: str = "grey",
) -> VideoModelInputs:
    """One window of a clip for a video model (only the window's frames are touched: memory scales with it).

    Args:
        rgb: ``[L, H, W, 3]`` the window's frames of the clip (a render) in 0..1 (``L = window.length``).
        generate: ``[L, H, W]`` what must be generated there (holes, unreliable pixels), 1 = generate.
        spec: the model's rules.
        window: which window (:func:`select_window`); ``windows`` how many the clip has.
        width, height: output size (0 = the clip's, keeping its aspect when only one is 0); snapped to
            ``spec.multiple`` (crop floors, pad ceils, stretch rounds). With both 0, crop and pad only cut
            or add pixels (no resampling) — the centre crop GSDiTSampler makes.
        fit: ``crop`` (default: cut the overflow), ``pad`` (grey bars the model outpaints) or ``stretch``.
        previous: ``[P, H', W', 3]`` frames generated so far (the previous window, or all windows joined):
            its last ``window.carried`` frames become this window's first frames, with mask 0.
        feather: soft edge in pixels: the pixel mask is blurred outwards by it, the latent mask by
            ``feather / spatial`` latent pixels.
        hole_fill: what the control video shows where ``generate`` is set: see :func:`fill_holes`.
    """
    if fit not in FIT_MODES:
        raise ValueError(f"fit: expected one of {FIT_MODES}, got {fit!r}")
    t, h, w, _ = rgb.shape
    if t != window.length or generate.shape != (t, h, w):
        raise ValueError(f"window {window.index}: expected {window.length} frames and a matching mask, got frames {list(rgb.shape[:3])} and mask {list(generate.shape)}")
    feather = check_finite_number("feather", feather, low=0.0, high=256.0)
    out_w, out_h = output_size(w, h, spec, width, height, fit)
    if t * out_h * out_w * 16 > MAX_OUTPUT_BYTES:
        raise ValueError(f"{t} frames of {out_w}x{out_h} need more than {MAX_OUTPUT_BYTES >> 30} GiB; use a shorter window or a smaller size")
    # Without a target size crop/pad only cut or add pixels — unless the clip is smaller than one multiple.
    rescale = bool(width or height) or (fit == "crop" and (out_w > w or out_h > h))
    frames, mask = fit_video(rgb, generate.float(), out_w, out_h, fit, rescale)
    frames = fill_holes(frames, mask, hole_fill)
    if window.carried:
        if previous is None:
            raise ValueError(f"window {window.index} starts with {window.carried} frames of the previous window: connect the previous window's generated frames (or the video so far) to 'previous'")
        if previous.shape[0] < window.carried:
            raise ValueError(f"previous has {previous.shape[0]} frames but window {window.index} carries {window.carried}")
        known = previous[-window.carried :]
        if known.shape[1:3] != (out_h, out_w):
            from .video import resize_frames

            known = resize_frames(known, out_w, out_h, fit="stretch")
        frames = torch.cat([known.to(frames), frames[window.carried :]])
        mask = torch.cat([mask.new_zeros(window.carried, out_h, out_w), mask[window.carried :]])
    lat = latent_mask(mask, spec.temporal, spec.spatial, feather=feather / spec.spatial)
    hard = lat if feather == 0 else latent_mask(mask, spec.temporal, spec.spatial)
    pixel = control_mask(hard, t, spec.temporal, spec.spatial, feather_px=feather)
    return VideoModelInputs(frames.contiguous(), pixel.contiguous(), lat.contiguous(), mask, window, windows, rescale)
