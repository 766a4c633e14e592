"""Classical dense optical flow (OpenCV DIS) and the algebra on flow fields: sampling, warping,
composition, forward-backward consistency.

No tracking policy lives here (see :mod:`.tracking`); these pieces are shared by every feature that
needs motion from a video.

Conventions: pixel positions are (x, y) with (0, 0) the centre of the top-left pixel and (W-1, H-1)
the centre of the bottom-right one; a flow ``[H, W, 2]`` float32 holds the displacement (dx, dy) in
pixels of each pixel of the source image, so pixel p of ``src`` lands at p + flow(p) in ``dst``.
Frames are float RGB ``[H, W, 3]`` in 0..1.

OpenCV is imported inside the functions that use it, so importing this module does not import cv2.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import torch
import torch.nn.functional as F

from .camera import pixel_grid

PRESETS = ("ultrafast", "fast", "medium")

# DIS parameters per preset, chosen on the sample scene at 720x480 against its exact flow (median
# end-point error on visible pixels, consecutive frames of a 49-frame clip / 4 frames apart; one
# thread, this project's 2-core CPU; the timings are noisy to ~20%):
#
#   OpenCV ULTRAFAST (finest scale 2, stride 4, 12 it., no variational)    7 ms  0.11 / 0.13 px
#   OpenCV FAST      (finest scale 2, stride 4, 16 it., 5 variational)    12 ms  0.07 / 0.09 px
#   OpenCV MEDIUM    (finest scale 1, stride 3, 25 it., 5 variational)    65 ms  0.042 / 0.054 px
#   ours "medium"    (finest scale 1, stride 4, 16 it., 5 variational)    37 ms  0.042 / 0.056 px
#   MEDIUM without variational refinement                                 40 ms  0.077 / 0.092 px
#   MEDIUM at finest scale 0 (full resolution patches)                   186 ms  0.058 / 0.068 px
#
# The finest scale is what buys accuracy (a patch search at quarter resolution stops near 0.07 px);
# patch stride 3 → 4 and 25 → 16 descent iterations cost nothing measurable in accuracy and save ~40%
# of the time; the variational refinement is worth keeping (it halves the error for a few ms).
# "ultrafast" and "fast" are OpenCV's own presets otherwise.
#
# The finest scale is not fixed but chosen per image size (``min_side``): the coarsest pyramid level
# whose short side keeps at least that many pixels. An 8-pixel patch at a fixed scale 1 or 2 spans
# 16-32 image pixels, which at small sizes smears a moving object's motion over its surroundings
# (the sample scene at 128x80: median error at frame 23 of a chained track 1.07 px at scale 1 vs
# 0.17 px at scale 0, occlusion recall 0.53 vs 0.69). At 720x480 this gives OpenCV's scales (2, 2, 1).
_DIS_PARAMS: dict[str, dict] = {
    "ultrafast": {"preset": "ULTRAFAST", "min_side": 120},
    "fast": {"preset": "FAST", "min_side": 120},
    "medium": {
        "preset": "MEDIUM",
        "min_side": 240,
        "PatchSize": 8,
        "PatchStride": 4,
        "GradientDescentIterations": 16,
        "VariationalRefinementIterations": 5,
    },
}


def check_preset(preset) -> str:
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {PRESETS}, got {preset!r}")
    return preset


def finest_scale(preset: str, height: int, width: int) -> int:
    """DIS finest pyramid scale for an image: the largest s with min(H, W) / 2**s ≥ the preset's ``min_side``."""
    min_side = _DIS_PARAMS[check_preset(preset)]["min_side"]
    scale = 0
    while min(height, width) >> (scale + 1) >= min_side:
        scale += 1
    return scale


_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, what cv2.cvtColor(RGB2GRAY) uses


def grey_u8(frame: torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` float RGB in 0..1 → ``[H, W]`` uint8 luma (values outside 0..1 are clipped), what DIS takes."""
    if not isinstance(frame, torch.Tensor) or frame.dim() != 3 or frame.shape[-1] != 3:
        shape = list(frame.shape) if isinstance(frame, torch.Tensor) else type(frame).__name__
        raise ValueError(f"grey_u8: expected a frame [H, W, 3], got {shape}")
    luma = frame.detach().to("cpu", torch.float32) @ torch.tensor(_LUMA)
    return (luma * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).numpy()


def check_dis_size(height: int, width: int) -> None:
    """DIS needs one 8-pixel patch on the short side and a pyramid level on the long one."""
    if min(height, width) < 8 or max(height, width) < 12:
        raise ValueError(f"optical flow needs frames of at least 8 pixels on the short side and 12 on the long one, got {width}x{height}")


def _cv2():
    """OpenCV, or an error that says how to get it (it is optional at import time)."""
    try:
        import cv2
    except ImportError as exc:
        raise ImportError("optical flow needs OpenCV: pip install opencv-python-headless (or install the pack's requirements.txt)") from exc
    return cv2


def _make_dis(preset: str, height: int, width: int):
    cv2 = _cv2()

    params = dict(_DIS_PARAMS[check_preset(preset)])
    dis = cv2.DISOpticalFlow.create(getattr(cv2, "DISOPTICAL_FLOW_PRESET_" + params.pop("preset")))
    params.pop("min_side")
    params["FinestScale"] = finest_scale(preset, height, width)
    for name, value in params.items():
        getattr(dis, "set" + name)(value)
    return dis


def dis_flow_grey(src: np.ndarray, dst: np.ndarray, preset: str = "medium", init: np.ndarray | None = None) -> np.ndarray:
    """DIS flow between two ``[H, W]`` uint8 grey images → ``[H, W, 2]`` float32 numpy (see :func:`dis_flow`).

    ``init`` (``[H, W, 2]`` float32, optional) is an initial guess of the flow: DIS resizes it to every
    pyramid level and tries it as a candidate for every patch there, so a long-range flow seeded by a
    good guess converges where it would not from zero (measured on the sample scene at 720x480, frame
    0 → 24: median error 60 px unseeded, 0.12 px seeded with the truth + 0.5 px noise).
    Thread-safe (each call has its own DIS instance; creating one costs microseconds) and releases the
    GIL, so two calls can run at once from Python threads.
    """
    if src.shape != dst.shape or src.ndim != 2 or src.dtype != np.uint8 or dst.dtype != np.uint8:
        raise ValueError(f"dis_flow_grey: expected two uint8 [H, W] images of one size, got {src.dtype} {list(src.shape)} and {dst.dtype} {list(dst.shape)}")
    check_dis_size(*src.shape)
    dis = _make_dis(preset, *src.shape)
    if init is None:
        flow = dis.calc(src, dst, None)
    else:
        if init.shape != (*src.shape, 2):
            raise ValueError(f"dis_flow_grey: init: expected a flow [{src.shape[0]}, {src.shape[1]}, 2], got {list(init.shape)}")
        # DIS takes a float32 [H, W, 2] flow argument of the right size as its initial guess.
        flow = dis.calc(src, dst, np.array(init, dtype=np.float32, order="C", copy=True))
    # A frame without texture gives DIS nothing to match; it then returns zeros (or, on some builds,
    # non-finite values from its normalisation), which we map to "no motion".
    if not np.isfinite(flow).all():
        flow = np.nan_to_num(flow, nan=0.0, posinf=0.0, neginf=0.0)
    return flow


def dis_flow(src: torch.Tensor, dst: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Dense optical flow from ``src`` to ``dst`` with OpenCV's DIS (Kroeger et al. 2016).

    Args:
        src, dst: ``[H, W, 3]`` float RGB in 0..1 (converted to 8-bit luma, which DIS works on).
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (see ``_DIS_PARAMS`` for the parameters and
            their measured accuracy and cost).

    Returns:
        ``[H, W, 2]`` float32 (CPU) displacement (dx, dy) of each ``src`` pixel into ``dst``. Images
        without texture give zero flow.

    Uses OpenCV's current thread setting (``cv2.setNumThreads``). On this project's 2-core CPU one DIS
    call took the same time with OpenCV at 1 or 2 threads (70 ms at 720x480, OpenCV's MEDIUM) while
    two calls side by side from Python threads took 43 ms each, so the tracker runs its forward and
    backward flows concurrently with OpenCV at one thread (see :func:`cv2_threads`).
    """
    check_preset(preset)
    if not isinstance(src, torch.Tensor) or not isinstance(dst, torch.Tensor) or src.shape != dst.shape:
        a = list(src.shape) if isinstance(src, torch.Tensor) else type(src).__name__
        b = list(dst.shape) if isinstance(dst, torch.Tensor) else type(dst).__name__
        raise ValueError(f"dis_flow: expected two frames [H, W, 3] of one size, got {a} and {b}")
    return torch.from_numpy(dis_flow_grey(grey_u8(src), grey_u8(dst), preset))


_THREADS_LOCK = threading.RLock()


@contextlib.contextmanager
def cv2_threads(count: int):
    """Set ``cv2.setNumThreads(count)`` for the duration of a block and restore the previous value.

    OpenCV's thread count is process-wide, so concurrent users serialise on a (re-entrant) lock.
    """
    cv2 = _cv2()

    with _THREADS_LOCK:
        previous = cv2.getNumThreads()
        cv2.setNumThreads(int(count))
        try:
            yield
        finally:
            cv2.setNumThreads(previous)


# ---------------------------------------------------------------------------------------------------
# Flow algebra
# ---------------------------------------------------------------------------------------------------


def sample(field: torch.Tensor, points: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Bilinear samples of ``field`` at sub-pixel ``points``.

    Args:
        field: ``[H, W, C]`` (or ``[H, W]``) float values at the pixel centres.
        points: ``[..., 2]`` positions (x, y) in pixels; integer positions return the pixel values exactly.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``[..., C]`` (or ``[...]`` for a 2D field), the dtype of ``field``.

    Borders: positions outside the image read the nearest edge value (coordinates clamped,
    ``padding_mode="border"``), so a flow sampled just outside continues its edge motion; callers
    that care test :func:`inside` themselves.
    """
    if field.dim() not in (2, 3):
        raise ValueError(f"sample: expected a field [H, W, C] or [H, W], got {list(field.shape)}")
    if points.shape[-1] != 2:
        raise ValueError(f"sample: expected points [..., 2], got {list(points.shape)}")
    values = field.unsqueeze(-1) if field.dim() == 2 else field
    if not values.is_floating_point():
        values = values.float()
    out = sample_chw(values.permute(2, 0, 1), points[..., 0], points[..., 1], mode)  # [C, ...]
    out = out.movedim(0, -1)
    return out.squeeze(-1) if field.dim() == 2 else out


def sample_chw(field: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """:func:`sample` for channel-first data: ``field [C, H, W]`` at positions given as two planes
    ``x [...]``, ``y [...]`` → ``[C, ...]``. Same convention and borders.

    The layout the tracker works in: arithmetic on separate x and y planes is several times faster
    on the CPU than on a trailing dimension of size 2, and grid_sample reads and writes it natively.
    """
    if field.dim() != 3 or x.shape != y.shape:
        raise ValueError(f"sample_chw: expected a field [C, H, W] and two position planes of one shape, got {list(field.shape)}, {list(x.shape)}, {list(y.shape)}")
    channels, height, width = field.shape
    # align_corners=True: -1 and +1 are the centres of the first and last pixel; a 1-pixel axis maps
    # every position to 0, the centre of that pixel.
    sx, ox = (2.0 / (width - 1), -1.0) if width > 1 else (0.0, 0.0)
    sy, oy = (2.0 / (height - 1), -1.0) if height > 1 else (0.0, 0.0)
    # The grid stays planar: grid_sample reads its (x, y) pairs through strides, so the transposed view of
    # a [2, N] buffer costs nothing, where interleaving the planes into [N, 2] (a strided write, or a
    # stack) cost more than the sampling itself (2.75 vs 1.6 ms for 345,600 positions, same values).
    planes = torch.empty(2, x.numel(), dtype=field.dtype, device=field.device)
    torch.mul(x.reshape(-1).to(field.dtype), sx, out=planes[0]).add_(ox)
    torch.mul(y.reshape(-1).to(field.dtype), sy, out=planes[1]).add_(oy)
    out = F.grid_sample(field[None], planes.t()[None, None], mode=mode, padding_mode="border", align_corners=True)
    return out.reshape(channels, *x.shape)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warp: ``out(p) = image(p + flow(p))``.

    ``image`` is ``[H, W, C]`` or ``[H, W]`` (channels last, like the frames), ``flow`` ``[H, W, 2]``.
    With ``flow`` the flow from frame a to frame b, warping frame b gives frame b seen from a (what a's
    pixels land on). Border handling as :func:`sample`.
    """
    if flow.dim() != 3 or flow.shape[-1] != 2 or tuple(flow.shape[:2]) != tuple(image.shape[:2]):
        raise ValueError(f"warp: expected a flow [{image.shape[0]}, {image.shape[1]}, 2] for an image {list(image.shape)}, got {list(flow.shape)}")
    grid = pixel_grid(flow.shape[0], flow.shape[1], device=flow.device, dtype=flow.dtype)
    return sample(image, grid + flow, mode=mode)


def compose(flow_ab: torch.Tensor, flow_bc: torch.Tensor) -> torch.Tensor:
    """``[H, W, 2]`` flow a → c: flow_ac(p) = flow_ab(p) + flow_bc(p + flow_ab(p)) (bilinear, borders as :func:`sample`)."""
    if flow_ab.shape != flow_bc.shape or flow_ab.dim() != 3 or flow_ab.shape[-1] != 2:
        raise ValueError(f"compose: expected two flows [H, W, 2] of one size, got {list(flow_ab.shape)} and {list(flow_bc.shape)}")
    return flow_ab + warp(flow_bc, flow_ab)


def fb_check(forward: torch.Tensor, backward: torch.Tensor, alpha: float = 0.01, beta: float = 0.5, dim: int = -1) -> torch.Tensor:
    """Sundaram et al.'s forward-backward test on motion vectors (components along ``dim``, default last) → bool.

    ``forward`` is f(p), ``backward`` is b(p + f(p)); consistent when
    |f + b|² < α (|f|² + |b|²) + β (α relative to the motion, β in px²).
    """
    # Component by component, in place: the same sums in the same order as ``(f + b).square().sum(dim)``
    # and ``f.square().sum(dim) + b.square().sum(dim)`` (bit-identical), in a third of the time on
    # planar [2, H, W] fields, whose reduction over the outer dimension is slow.
    gap = f_sq = b_sq = None
    for f, b in zip(forward.unbind(dim), backward.unbind(dim)):
        s = f + b
        s.mul_(s)
        gap = s if gap is None else gap.add_(s)
        f_sq = f * f if f_sq is None else f_sq.add_(f * f)
        b_sq = b * b if b_sq is None else b_sq.add_(b * b)
    return gap < f_sq.add_(b_sq).mul_(alpha).add_(beta)


def forward_backward_consistent(flow_ab: torch.Tensor, flow_ba: torch.Tensor, alpha: float = 0.01, beta: float = 0.5) -> torch.Tensor:
    """``[H, W]`` bool: pixels of a whose forward flow is undone by the backward flow (Sundaram et al. 2010).

    Inconsistent pixels are occluded in b (or mis-matched). ``flow_ba`` is sampled bilinearly at
    p + flow_ab(p); see :func:`fb_check` for the test.
    """
    if flow_ab.shape != flow_ba.shape or flow_ab.dim() != 3 or flow_ab.shape[-1] != 2:
        raise ValueError(f"forward_backward_consistent: expected two flows [H, W, 2] of one size, got {list(flow_ab.shape)} and {list(flow_ba.shape)}")
    return fb_check(flow_ab, warp(flow_ba, flow_ab), alpha, beta)


def inside(points: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``[...]`` bool: ``points [..., 2]`` lie within the image, 0 ≤ x ≤ W−1 and 0 ≤ y ≤ H−1 (pixel centres)."""
    x, y = points[..., 0], points[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
