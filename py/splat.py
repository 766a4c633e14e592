"""Softmax splatting (Niklaus & Liu, CVPR 2020) and the pixel-space animation of Generative Image Dynamics.

Written from the paper's definition (the reference CUDA implementation's licence forbids copying it).

Operator, per batch item: every source pixel p moves to q = p + F(p) and is splatted bilinearly to the
four integer neighbours of q with b = (1-|Δx|)(1-|Δy|); neighbours outside the image are dropped, and a
source whose target (or metric) is not finite is skipped. Each mode accumulates ``[I·w, w]``:

- ``sum``: w = b, the output is Σ b·I (no normalisation);
- ``avg``: w = b, output Σ b·I / Σ b;
- ``linear``: w = b·Z (Z ≥ 0), output Σ b·Z·I / Σ b·Z;
- ``soft``: w = b·exp(Z - m), output Σ b·e^Z·I / Σ b·e^Z.

Where nothing landed (Σ w = 0) the output is 0 and the hole mask is True.

Numerics. m is the per-batch-item maximum of the finite Z: with it the largest exponent is 0, so exp
never overflows however large the metric (a plain ``exp(Z)`` overflows float32 at Z > 88). Subtracting
a constant leaves the normalised softmax unchanged exactly, *because* the ratio is taken without the
classic ``+ε`` in the denominator: ``num / (den + ε)`` is not shift invariant (ε would in effect be scaled
by e^m, darkening pixels where the weight is small), and it also darkens pixels covered only by a sliver
of bilinear weight. So the division is guarded by ``den > 0`` instead, which is exact for every covered
pixel (a zero-motion splat returns its input). The price of the shift: sources whose metric is more than
~87 below the maximum underflow to weight 0 in float32 (they become holes) — keep the metric range below
~80 (the nodes map their weights to ``[0, 20 · strength]``). Computation is float32 (float64 for float64
inputs, e.g. for ``gradcheck``).

Speed (480×720 on a 2-core CPU, see tests/bench/bench_splat.py): five interchangeable kernels give the
same result (to float32 rounding):

- ``native`` (``auto`` on the CPU): a C loop (``csrc/splat.c``, built at first use by
  :mod:`vid4d.py.native` with the machine's C compiler; without one, ``planes`` runs instead). Per
  source row, a branch-free pass (vectorised) finds every source's corner pixel and four weights; then
  each source adds ``[I·w, w]`` to a channels-last accumulator (one vector per corner), and a last pass
  normalises into the channels-first output. Float32, CPU, no autograd; frames, bands of rows or groups
  of channels on torch's thread count of threads.
- ``scatter``: the four corners, each one ``scatter_add_`` into a channels-first ``[B, C+1, H·W]``
  buffer. Differentiable; used whenever gradients are needed, for float64, and as the fallback.
- ``planes`` (``auto`` on the CPU without a C compiler): frame by frame, every channel plane its own 1-D ``scatter_add_``
  per corner into the frame padded by one pixel (the four corners share one index, shifted), the
  work on torch's thread count of long-lived threads (corners by row bands, then the planes, then the
  output by row bands). No compiler, no autograd.
- ``compiled``: the corners under ``torch.compile`` (``auto`` on other devices). Optional:
  ``compile="auto"`` tries it once per process and device type and falls back to eager with one
  warning; ``VID4D_SPLAT_COMPILE=0`` turns it off; frames below :data:`COMPILE_MIN_PIXELS` pixels
  stay eager (one compile per size). On the CPU inductor's code for this scatter is no faster than
  eager's (measured), so ``auto`` does not use it there.
- ``sparse``: the splat as a sparse matrix ``[H·W, H·W]`` with four entries per source column, rows
  sorted by target (CSR), times channels-last features (the int32 sort of the 4·H·W keys is most of
  its cost).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import threading
import warnings
from typing import Callable

import torch
import torch.nn.functional as F

from . import native
from .workers import Pool

MODES = ("soft", "sum", "avg", "linear")
KERNELS = ("auto", "native", "scatter", "planes", "compiled", "sparse")
CHUNK_ELEMENTS = 1 << 25  # B·4·H·W·(C+1) splatted values per call: bounds the temporaries (~128 MB float32)
COMPILE_MIN_PIXELS = 1 << 17  # auto compiles for frames of at least this many pixels (~360x360)
WEIGHT_RANGE = 20.0  # metric span the nodes map their weights to (× strength)
COMPILE_ENV = "VID4D_SPLAT_COMPILE"


# ----------------------------------------------------------------------------------------- the operator
def softmax_splat(
    input: torch.Tensor,
    flow: torch.Tensor,
    metric: torch.Tensor | None = None,
    mode: str = "soft",
    *,
    return_holes: bool = False,
    kernel: str = "auto",
    compile="auto",
):
    """Forward-warp ``input`` by ``flow`` with softmax splatting (see the module docstring).

    Args:
        input: ``[B, C, H, W]`` float features/colours of the source frame.
        flow: ``[B, 2, H, W]`` forward displacement (x, y) in pixels; non-finite entries skip that source.
        metric: ``[B, 1, H, W]`` importance Z (larger wins); required for ``soft`` and ``linear``
            (``linear`` needs Z ≥ 0), ignored by ``sum`` and ``avg``. Non-finite Z skips that source.
        mode: ``soft``, ``sum``, ``avg`` or ``linear``.
        return_holes: also return the hole mask.
        kernel: ``auto`` (on the CPU native, or planes where no C compiler builds it; elsewhere compiled
            when allowed, else scatter), ``native``, ``scatter``, ``planes``, ``compiled`` or ``sparse``
            (same result; ``native`` where it cannot run: planes, with one warning).
        compile: for the compiled kernel: ``"auto"`` (try, else eager with a warning once), True
            (RuntimeError if it fails), False (never; so is ``VID4D_SPLAT_COMPILE=0`` for ``auto``).

    Returns:
        ``[B, C, H, W]`` in the input's dtype (float32 compute, float64 for float64 inputs); with
        ``return_holes`` a tuple ``(output, holes [B, 1, H, W] bool)``, True where nothing landed.

    Raises:
        ValueError: wrong shapes/dtypes, empty tensors, an unknown mode/kernel, a missing metric, a
            negative metric in ``linear`` mode.
    """
    _check_args(input, flow, metric, mode, kernel, compile)
    b, c, h, w = input.shape
    dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    x, fl = input.to(dtype), flow.to(dtype)
    z = metric.to(dtype) if metric is not None and mode in ("soft", "linear") else None
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, flow, metric))
    choice = _pick_kernel(kernel, c, dtype, grad, compile, x.device, pixels=h * w)
    if choice == "compiled" and not (_compile_allowed(compile) and compile_status(x.device) != "failed"):
        choice = "scatter"
    if choice == "native":
        lib = _native_splat(x.device, h, w)
        if lib is None:
            choice = "planes"
        else:
            result = _splat_native(lib, x, fl, z, mode)
    if choice == "planes":
        result = _splat_planes(x, fl, z, mode)
    elif choice != "native":
        result = None if choice == "scatter" else _per_frame(choice, x, fl, z, mode, compile)
    if result is None:  # the eager scatter (also when the compile has just failed)
        per_frame = 4 * h * w * (c + 1)
        step = max(1, CHUNK_ELEMENTS // per_frame)
        outs, holes = [], []
        for i in range(0, b, step):
            zi = None if z is None else z[i : i + step]
            out, den = _splat_scatter(x[i : i + step], fl[i : i + step], zi, mode)
            outs.append(out)
            holes.append(den <= 0)
        out = (outs[0] if len(outs) == 1 else torch.cat(outs)).to(input.dtype)
        hole = holes[0] if len(holes) == 1 else torch.cat(holes)
    else:
        out, hole = result
        out = out.to(input.dtype)
    if return_holes:
        return out, hole
    return out


def splat_holes(flow: torch.Tensor) -> torch.Tensor:
    """``[B, 2, H, W]`` flow → ``[B, 1, H, W]`` bool, True where no source lands (the ``avg``/``soft`` holes)."""
    if not isinstance(flow, torch.Tensor) or flow.dim() != 4 or flow.shape[1] != 2 or flow.numel() == 0:
        raise ValueError(f"flow: expected a non-empty [B, 2, H, W] tensor, got {getattr(flow, 'shape', type(flow).__name__)}")
    with torch.no_grad():
        ones = torch.ones_like(flow[:, :1], dtype=torch.float32)
        return softmax_splat(ones, flow, mode="avg", return_holes=True, kernel="scatter")[1]


def splat_weights(motion_texture) -> torch.Tensor:
    """The paper's W(p) = (1/T) Σ_t ‖F_t(p)‖₂: mean Euclidean motion magnitude (pixels).

    Args:
        motion_texture: ``[T, H, W, 2]`` displacement, or a :class:`~vid4d.py.spectral.MotionTexture`.

    Returns:
        ``[H, W]`` float32.
    """
    disp = getattr(motion_texture, "displacement", motion_texture)
    if not isinstance(disp, torch.Tensor) or disp.dim() != 4 or disp.shape[-1] != 2 or disp.numel() == 0:
        raise ValueError(f"motion_texture: expected a non-empty [T, H, W, 2] displacement, got {getattr(disp, 'shape', type(disp).__name__)}")
    if not bool(torch.isfinite(disp).all()):
        raise ValueError("motion_texture: the displacement contains NaN/inf values")
    total = torch.zeros(disp.shape[1:3], dtype=torch.float32, device=disp.device)
    for t in range(0, disp.shape[0], 16):  # bounded temporaries for long textures
        total += torch.linalg.vector_norm(disp[t : t + 16].float(), dim=-1).sum(0)
    return total / disp.shape[0]


def _check_args(input, flow, metric, mode, kernel, compile) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel: expected one of {KERNELS}, got {kernel!r}")
    if not (compile is True or compile is False or compile == "auto"):
        raise ValueError(f"compile: expected 'auto', True or False, got {compile!r}")
    if not isinstance(input, torch.Tensor) or input.dim() != 4 or not input.is_floating_point():
        raise ValueError(f"input: expected a float tensor [B, C, H, W], got {getattr(input, 'shape', type(input).__name__)}")
    if input.numel() == 0:
        raise ValueError(f"input: is empty (shape {list(input.shape)})")
    b, _, h, w = input.shape
    if not isinstance(flow, torch.Tensor) or not flow.is_floating_point() or tuple(flow.shape) != (b, 2, h, w):
        raise ValueError(f"flow: expected a float tensor [B, 2, H, W] = {[b, 2, h, w]} matching the input, got {getattr(flow, 'shape', type(flow).__name__)}")
    if flow.device != input.device:
        raise ValueError(f"flow: on {flow.device} but the input is on {input.device}")
    if mode in ("soft", "linear"):
        if metric is None:
            raise ValueError(f"metric: mode {mode!r} needs a metric [B, 1, H, W] (use mode 'avg' for plain average splatting)")
    if metric is not None:
        if not isinstance(metric, torch.Tensor) or not metric.is_floating_point() or tuple(metric.shape) != (b, 1, h, w):
            raise ValueError(f"metric: expected a float tensor [B, 1, H, W] = {[b, 1, h, w]}, got {getattr(metric, 'shape', type(metric).__name__)}")
        if metric.device != input.device:
            raise ValueError(f"metric: on {metric.device} but the input is on {input.device}")
        if mode == "linear":
            finite = metric[torch.isfinite(metric)]
            if finite.numel() and float(finite.min()) < 0:
                raise ValueError(f"metric: mode 'linear' weights by Z itself, so Z must be >= 0, got minimum {float(finite.min()):.6g}")


# -------------------------------------------------------------------------------------------- kernels
def _corners(flow: torch.Tensor, metric: torch.Tensor | None, mode: str, band=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and weights of the four bilinear corners: ``idx [B, 4, N]`` int64 and ``w [B, 4, N]``.

    Dropped corners (outside, non-finite source) get index 0 and weight 0. With ``band`` = (row0
    ``[1]``, height, shift ``[B, 1, 1]``) the flow is rows row0.. of a frame ``height`` rows high (indices
    into the whole frame) and ``shift`` the frame's metric maximum (see :func:`_shift`).
    """
    b, _, h, w = flow.shape
    n = h * w
    gy, gx = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device), torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    if band is not None:  # rows row0 .. row0 + h of a frame `height` rows high, metric shift given
        row0, h, shift = band
        gy = gy + row0
    x = (gx + flow[:, 0]).reshape(b, 1, n)
    y = (gy + flow[:, 1]).reshape(b, 1, n)
    ok = torch.isfinite(x) & torch.isfinite(y)
    if metric is not None:
        z = metric.reshape(b, 1, n)
        ok = ok & torch.isfinite(z)
    # Non-finite sources are parked outside. Finite but huge targets need no clamp: their corners fail the
    # `inside` test, and the index is masked before the integer conversion (a clamp here costs ~25% compiled).
    x = torch.where(ok, x, -2.0)
    y = torch.where(ok, y, -2.0)
    x0, y0 = torch.floor(x).detach(), torch.floor(y).detach()
    dx = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=flow.dtype, device=flow.device).reshape(1, 4, 1)
    dy = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=flow.dtype, device=flow.device).reshape(1, 4, 1)
    xi, yi = x0 + dx, y0 + dy
    bil = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
    inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
    if mode == "soft":
        m = _shift(z, ok) if band is None else shift
        bil = bil * torch.exp(torch.where(ok, z, m) - m)
    elif mode == "linear":
        bil = bil * torch.where(ok, z, 0.0)
    weight = torch.where(inside, bil, 0.0)
    idx = torch.where(inside, yi * w + xi, 0.0).long()
    return idx, weight


def _shift(z: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """``[B, 1, 1]`` the maximum of the metric ``z [B, 1, N]`` over the sources ``ok`` (0 if none)."""
    m = torch.where(ok, z, -math.inf).amax(dim=2, keepdim=True)
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # no finite metric: nothing lands anyway


def _normalise(acc: torch.Tensor, mode: str, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``acc [B, C+1, N]`` (Σ I·w, Σ w) → output ``[B, C, N]`` and the weight sum ``[B, 1, N]``."""
    num, den = acc[:, :c], acc[:, c:]
    if mode == "sum":
        return num, den
    safe = torch.where(den > 0, den, torch.ones_like(den))
    return torch.where(den > 0, num / safe, torch.zeros_like(num)), den


def _splat_scatter(input, flow, metric, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``scatter_add_`` per corner into a channels-first ``[B, C+1, N]`` buffer; differentiable."""
    b, c, h, w = input.shape
    n = h * w
    idx, weight = _corners(flow, metric, mode)
    feats = torch.cat([input.reshape(b, c, n), torch.ones_like(input[:, :1]).reshape(b, 1, n)], dim=1)
    acc = torch.zeros(b, c + 1, n, dtype=input.dtype, device=input.device)
    for k in range(4):
        acc.scatter_add_(2, idx[:, k : k + 1].expand(b, c + 1, n), feats * weight[:, k : k + 1])
    out, den = _normalise(acc, mode, c)
    return out.reshape(b, c, h, w), den.reshape(b, 1, h, w)


def _splat_band(input, flow, metric, row0, height: int, shift, mode: str) -> torch.Tensor:
    """What the ``compiled`` kernel compiles: the un-normalised ``[B, C+1, height·W]`` accumulator of a
    band of source rows (see :func:`_corners`; the whole frame is one band), the same maths as
    :func:`_splat_scatter` with the four corners' values as one ``[B, C+1, 4N]`` source scattered once
    into a fresh buffer, which inductor turns into a single loop (each value computed where it is
    added; no copies of the buffer between corners). On a multi-core CPU a frame is two bands
    accumulated side by side, then added (:func:`_per_frame`)."""
    b, c, h, w = input.shape
    n = h * w
    idx, weight = _corners(flow, metric, mode, band=(row0, height, shift))
    feats = torch.cat([input.reshape(b, c, n), torch.ones_like(input[:, :1]).reshape(b, 1, n)], dim=1)
    src = (feats[:, :, None, :] * weight[:, None]).reshape(b, c + 1, 4 * n)
    return torch.zeros(b, c + 1, height * w, dtype=input.dtype, device=input.device).scatter_add(2, idx.reshape(b, 1, 4 * n).expand(b, c + 1, 4 * n), src)


def _splat_planes(input, flow, metric, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame by frame, each channel plane its own 1-D ``scatter_add_`` per corner. Returns
    ``(out [B, C, H, W], holes [B, 1, H, W])``.

    Why it is fast on the CPU: a ``scatter_add_`` of a ``[C+1, N]`` source with the index expanded over
    channels runs ~10x slower than C+1 one-row scatters with the same index (measured at 480x720),
    which is most of what the plain 4-corner scatter costs. The four corners share one index: the
    accumulator is the frame padded by two pixels on every side, so corner k of a source lands at
    ``base + offset_k`` (a shifted view); a source off the frame is clamped into the padding (a clamp
    is ~4x cheaper than an inside test and a masked index), which is cropped, and a skipped
    (non-finite) source goes to a spare bin past the end.

    With torch's threads > 1 each frame runs in three phases on that many long-lived worker threads
    (torch at one thread meanwhile: a 1-D scatter_add_ is itself parallel, and OpenMP teams started from
    several Python threads at once fight for the cores): the corners of a band of source rows each;
    then the planes, each scattered by one thread from every band into the one accumulator; then the
    output, a band of rows each. Nothing is computed twice and there is one accumulator, not one per
    thread to be summed. The threads outlive the call because fresh ones start with cold malloc arenas:
    every temporary then page-faults (~3 ms a frame at 480x720, C = 3, which is what held a single
    frame to ~1.3x the plain scatter).
    """
    b, c, h, w = input.shape
    wp = w + 2 * _PAD
    spare = (h + 2 * _PAD) * wp
    workers = min(max(1, torch.get_num_threads()), h) if h * w >= 4096 else 1
    gx = torch.arange(w, dtype=flow.dtype, device=flow.device)
    gy = torch.arange(h, dtype=flow.dtype, device=flow.device)[:, None]
    out = torch.empty(b, c, h, w, dtype=input.dtype, device=input.device)
    holes = torch.empty(b, 1, h, w, dtype=torch.bool, device=input.device)
    cuts = [h * k // workers for k in range(workers + 1)]
    bands = [slice(cuts[k], cuts[k + 1]) for k in range(workers)]
    shifts = [_plane_shift(flow[i], None if metric is None else metric[i, 0], mode) for i in range(b)]
    # With finite features an uncovered pixel's sums are exactly 0 (every weight there is 0, weights are
    # >= 0), so the normalised output needs no hole mask.
    clean = [mode == "sum" or _all_finite(input[i]) for i in range(b)]
    ws = _workspace()
    acc = ws.get("acc", (c + 1, spare + wp + 2), input.dtype, input.device)

    def corners(i: int, k: int):
        """``(base, weights)`` of the sources in band k of frame i (see :func:`_plane_corners`)."""
        rows = bands[k]
        size = (cuts[k + 1] - cuts[k], w)
        z = None if metric is None else metric[i, 0, rows]
        return _plane_corners(flow[i, :, rows], z, mode, gx, gy[rows], h, spare, shifts[i], lambda name, dtype: ws.get((name, k), size, dtype, input.device))

    def scatter(i: int, k: int, sources) -> None:
        """Planes k, k + workers, ... of frame i (the weight plane is ``c``) from every band's ``(base, weights)``."""
        for ch in range(k, c + 1, workers):
            plane = acc[ch]
            plane.zero_()
            for rows, (base, weights) in zip(bands, sources):
                if ch == c:
                    for off, wk in zip((0, 1, wp, wp + 1), weights):
                        plane[off:].scatter_add_(0, base, wk)
                    continue
                feats, scratch = input[i, ch, rows].reshape(-1), ws.get(("scratch", k), weights[0].shape, weights[0].dtype, input.device)
                for off, wk in zip((0, 1, wp, wp + 1), weights):
                    plane[off:].scatter_add_(0, base, torch.mul(feats, wk, out=scratch))

    def finish(i: int, rows: slice) -> None:
        """Output rows ``rows`` of frame i from the accumulator, normalised."""
        r0, r1, _ = rows.indices(h)
        framed = acc[:, :spare].view(c + 1, h + 2 * _PAD, wp)[:, _PAD + r0 : _PAD + r1, _PAD : w + _PAD]
        num, den = framed[:c], framed[c]
        hole = torch.le(den, 0, out=holes[i, 0, rows])
        if mode == "sum":
            out[i, :, rows] = num
            return
        safe = torch.add(den, hole, out=ws.get(("den", bands.index(rows)), den.shape, den.dtype, input.device))  # 1 in the holes
        torch.div(num, safe, out=out[i, :, rows])
        if not clean[i]:
            out[i, :, rows].masked_fill_(hole, 0.0)

    if workers == 1:
        for i in range(b):
            scatter(i, 0, [corners(i, 0)])
            finish(i, bands[0])
        return out, holes
    pool = _worker_pool(workers)
    with _one_torch_thread():
        for i in range(b):
            sources = [job.result() for job in [pool.submit(corners, i, k) for k in range(workers)]]
            for job in [pool.submit(scatter, i, k, sources) for k in range(workers)]:
                job.result()
            for job in [pool.submit(finish, i, rows) for rows in bands]:
                job.result()
    return out, holes


NATIVE_GROUP = 16  # feature channels per pass of the native kernel (csrc/splat.c's MAX_K - 1): bounds its accumulator
NATIVE_MAX_PIXELS = (1 << 31) - 1  # its accumulator's pixels are int32 indices: larger frames run the planes kernel
_NATIVE_WARNED: set = set()


def _native_splat(device, height: int, width: int):
    """The native kernel's library (:mod:`vid4d.py.native`, built at first use) for ``height x width``
    frames, or None with one warning per reason when it cannot run them (not the CPU, no compiler,
    ``VID4D_NATIVE=0``, a frame too large for its int32 indices): callers fall back to the planes kernel."""
    lib = native.load("splat") if device.type == "cpu" else None
    if lib is not None:
        _declare_native(lib)
        if lib.vid4d_splat_acc_pixels(height, width) >= NATIVE_MAX_PIXELS:
            lib, why = None, f"{height}x{width} frames need more than int32 indices"
    else:
        why = f"the input is on {device}" if device.type != "cpu" else native.status("splat")
    if lib is None:
        if why not in _NATIVE_WARNED:
            _NATIVE_WARNED.add(why)
            warnings.warn(f"vid4d: the native softmax splatting kernel is not available ({why}); using the planes kernel", RuntimeWarning, stacklevel=4)
    return lib


def _declare_native(lib) -> None:
    """The C signatures of ``csrc/splat.c`` on the loaded library (once)."""
    if not getattr(lib, "_vid4d_typed", False):
        ptr, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
        lib.vid4d_splat_accumulate.argtypes = [ptr, i64, i32, ptr, ptr, i32, i32, i32, i32, ptr, i32, ptr]
        lib.vid4d_splat_accumulate.restype = i32
        lib.vid4d_splat_normalise.argtypes = [ptr, i32, i32, i32, i32, i32, i32, ptr, i64, ptr, ptr]
        lib.vid4d_splat_normalise.restype = None
        lib.vid4d_splat_acc_pixels.argtypes = [i32, i32]
        lib.vid4d_splat_acc_pixels.restype = ctypes.c_size_t
        lib._vid4d_typed = True


def native_available() -> bool:
    """Whether the native CPU kernel (``auto`` on the CPU) can run here; builds it on the first call."""
    return native.load("splat") is not None


def _splat_native(lib, input, flow, metric, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The C kernel of ``csrc/splat.c`` (float32, CPU). Returns ``(out [B, C, H, W], holes [B, 1, H, W])``.

    One pass over the sources per group of :data:`NATIVE_GROUP` channels accumulates ``[I·w, w]``
    channels-last into the frame padded by two pixels (the four corners of a source are two short runs
    of memory; off-frame targets clamped into the padding, non-finite ones skipped), then one pass
    normalises into the channels-first output. The per-source weight (e^(Z−m) or Z) is computed by torch
    beforehand, where it vectorises. On torch's thread count of long-lived workers (the C code releases
    the GIL): whole frames each while there are enough of them; the last frames as groups of channels
    side by side where there are enough groups, else as bands of source rows with an accumulator each,
    summed by the normalise pass, which splits the output rows.
    """
    b, c, h, w = input.shape
    x = input.contiguous()
    fl = flow.contiguous()
    g = None
    if mode == "linear":
        g = metric.contiguous()
    elif mode == "soft":
        g = torch.empty(b, 1, h, w, dtype=torch.float32)
        for i in range(b):
            m, masked = _plane_shift(fl[i], metric[i, 0], mode)
            torch.sub(metric[i, 0], m, out=g[i, 0]).exp_()
            if masked:  # e^(-inf - m) = 0 would let the source through; non-finite Z skips it
                g[i, 0].masked_fill_(~torch.isfinite(metric[i, 0]), math.nan)
    out = torch.empty(b, c, h, w, dtype=torch.float32)
    holes = torch.empty(b, 1, h, w, dtype=torch.bool)
    groups = [(c0, min(c, c0 + NATIVE_GROUP)) for c0 in range(0, c, NATIVE_GROUP)]
    k = groups[0][1] - groups[0][0] + 1
    workers = min(max(1, torch.get_num_threads()), h) if h * w >= 4096 else 1
    ws = _workspace()
    accs = [ws.get(("native acc", j), (lib.vid4d_splat_acc_pixels(h, w) * k,), torch.float32, x.device) for j in range(workers)]
    scratch = [ws.get(("native row", j), (max(6, k + 2) * w,), torch.float32, x.device) for j in range(workers)]
    n = h * w

    def accumulate(i: int, group, rows: tuple[int, int], j: int) -> None:
        c0, c1 = group
        if lib.vid4d_splat_accumulate(x[i, c0].data_ptr(), n, c1 - c0, fl[i].data_ptr(), None if g is None else g[i].data_ptr(), h, w, rows[0], rows[1], accs[j].data_ptr(), 1, scratch[j].data_ptr()):
            raise RuntimeError(f"native splat refused {c1 - c0} channels at {h}x{w}")  # (sizes are checked before)

    def normalise(i: int, group, rows: tuple[int, int], used: list[int], j: int) -> None:
        c0, c1 = group
        ptrs = (ctypes.c_void_p * len(used))(*[accs[u].data_ptr() for u in used])
        lib.vid4d_splat_normalise(ptrs, len(used), c1 - c0, w, rows[0], rows[1], int(mode == "sum"), out[i, c0].data_ptr(), n, holes[i].data_ptr() if c0 == 0 else None, scratch[j].data_ptr())

    def whole_frames(j: int, frames, parts=None) -> None:
        for i in frames:
            for group in groups if parts is None else parts:
                accumulate(i, group, (0, h), j)
                normalise(i, group, (0, h), [j], j)

    whole = (b // workers) * workers
    if workers == 1:
        whole_frames(0, range(b))
        return out, holes
    pool = _worker_pool(workers)
    cuts = [h * j // workers for j in range(workers + 1)]
    bands = [(cuts[j], cuts[j + 1]) for j in range(workers)]
    for job in [pool.submit(whole_frames, j, range(j, whole, workers)) for j in range(workers)]:
        job.result()
    for i in range(whole, b):  # fewer frames left than workers
        if len(groups) >= workers:  # groups of channels side by side
            for job in [pool.submit(whole_frames, j, [i], groups[j::workers]) for j in range(workers)]:
                job.result()
            continue
        for group in groups:  # bands of source rows side by side, then bands of output rows
            for job in [pool.submit(accumulate, i, group, bands[j], j) for j in range(workers)]:
                job.result()
            for job in [pool.submit(normalise, i, group, bands[j], list(range(workers)), j) for j in range(workers)]:
                job.result()
    return out, holes


_POOLS: dict[int, Pool] = {}
_POOLS_LOCK = threading.Lock()


def _worker_pool(workers: int) -> Pool:
    """The process's long-lived pool of ``workers`` splat threads (created at first use). Calls from
    several threads may share it: each waits on its own jobs only, and no job submits another."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = Pool(workers, thread_name_prefix="vid4d-splat")
        return pool


_SCRATCH = threading.local()  # the calling thread's _Workspace for _splat_planes
SCRATCH_BYTES = 64 << 20  # kept between calls up to this size in all (per calling thread)


class _Workspace:
    """Named uninitialised buffers of one calling thread, kept between its calls up to SCRATCH_BYTES in
    all. A fresh frame-sized buffer page-faults on first touch, and the worker threads' malloc arenas
    give their memory back to the system after every call: at 480x720, C = 3, ~1,500 page faults a call
    (~3 ms) before the buffers were kept. Jobs of one call use distinct names (a band's, a worker's)."""

    def __init__(self):
        self.buffers: dict = {}
        self.lock = threading.Lock()

    def get(self, name, shape, dtype, device) -> torch.Tensor:
        shape = tuple(shape)
        with self.lock:
            have = self.buffers.get(name)
            if have is not None and tuple(have.shape) == shape and have.dtype == dtype and have.device == device:
                return have
            self.buffers.pop(name, None)
            fresh = torch.empty(shape, dtype=dtype, device=device)
            if sum(t.nbytes for t in self.buffers.values()) + fresh.nbytes <= SCRATCH_BYTES:
                self.buffers[name] = fresh
            return fresh


def _workspace() -> _Workspace:
    ws = getattr(_SCRATCH, "workspace", None)
    if ws is None:
        ws = _SCRATCH.workspace = _Workspace()
    return ws


@contextlib.contextmanager
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_PAD = 2  # _splat_planes' padding: a source clamped to x0 in [-2, W] puts both its columns in it when off the frame


def _all_finite(*tensors: torch.Tensor) -> bool:
    """Whether every value is finite, read by sums (NaN/inf propagate; no mask is written). A finite sum
    that overflows reads as not finite, which only sends the caller down its masked path."""
    return bool(torch.isfinite(sum(t.sum() for t in tensors)))


def _plane_shift(flow: torch.Tensor, metric: torch.Tensor | None, mode: str):
    """For :func:`_splat_planes`: ``(m, masked)`` of one frame (``flow [2, H, W]``, ``metric [H, W]``):
    the soft mode's shift (:func:`_shift`; None in other modes) and whether any value is non-finite
    (then the sources are masked one by one)."""
    if _all_finite(flow, metric) if mode in ("soft", "linear") else _all_finite(flow):  # no masks
        return (metric.amax() if mode == "soft" else None), False
    if mode != "soft":
        return None, True
    ok = torch.isfinite(metric) & torch.isfinite(flow).all(0)
    return _shift(metric.reshape(1, 1, -1), ok.reshape(1, 1, -1)).reshape(()), True


def _plane_corners(flow: torch.Tensor, metric: torch.Tensor | None, mode: str, gx, gy, height: int, spare: int, shift, buf=None):
    """For :func:`_splat_planes`: each source's top-left corner in the padded frame ``base [N]`` (int64;
    clamped into the padding when off the frame, ``spare`` for skipped sources) and the four corners'
    weights ``[N]`` each (top-left, top-right, bottom-left, bottom-right), from ``flow [2, h, W]`` and ``metric [h, W]``: rows ``gy [h, 1]`` of a
    frame ``height`` rows high, ``shift`` from :func:`_plane_shift`. ``buf(name, dtype)`` gives the
    ``[h, W]`` buffers the results and temporaries are written to (default: fresh ones)."""
    w = flow.shape[2]
    m, masked = shift
    if buf is None:
        buf = lambda name, dtype: torch.empty(flow.shape[1:], dtype=dtype, device=flow.device)  # noqa: E731
    real = flow.dtype
    x = torch.add(flow[0], gx, out=buf("x", real))
    y = torch.add(flow[1], gy, out=buf("y", real))
    ok = None
    if masked:  # (rare) before x and y are overwritten
        ok = torch.isfinite(x) & torch.isfinite(y)
        if mode in ("soft", "linear"):
            ok &= torch.isfinite(metric)
    x0, y0 = torch.floor(x, out=buf("x0", real)), torch.floor(y, out=buf("y0", real))
    fx, fy = x.sub_(x0), y.sub_(y0)
    # Off the frame, both corners in the padding (a finite but huge flow too; NaN stays NaN, masked below).
    x0.clamp_(-_PAD, w).add_(_PAD)
    y0.clamp_(-_PAD, height).add_(_PAD)
    g = None
    if mode in ("soft", "linear"):
        g = torch.sub(metric, m, out=buf("g", real)).exp_() if mode == "soft" else metric
    a, bb = torch.neg(fx, out=buf("a", real)).add_(1), torch.neg(fy, out=buf("bb", real)).add_(1)  # 1 - fx, 1 - fy exactly
    if g is not None:
        a.mul_(g)
        fx.mul_(g)
    corners = (torch.mul(a, bb, out=buf("c0", real)), torch.mul(fx, bb, out=buf("c1", real)), a.mul_(fy), fx.mul_(fy))
    if spare >= (1 << 24):  # flat indices are exact in float32 below 2^24 only
        x0, y0 = x0.double(), y0.double()
    flat = y0.mul_(w + 2 * _PAD).add_(x0)
    if ok is not None:
        flat.masked_fill_(~ok, float(spare))
    base = buf("base", torch.int64).copy_(flat)  # (truncation: the .long() of an integer value)
    return base.reshape(-1), [v.reshape(-1) for v in corners]


def _splat_sparse(input, flow, metric, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse matrix (rows = targets, sorted; 4 entries per source) times channels-last features.

    Frame by frame, and normalised while still channels-last: the output is a ``[B, C, H, W]`` view of a
    channels-last buffer (transposing back to channels-first would cost as much as the product).
    """
    b, c, h, w = input.shape
    n = h * w
    idx, weight = _corners(flow, metric, mode)
    # int32 keys sort about twice as fast as int64 (n < 2^31 always: images are capped far below)
    keys = idx.transpose(1, 2).reshape(b, 4 * n).int()
    vals = weight.transpose(1, 2).reshape(b, 4 * n)
    rows = torch.arange(n + 1, dtype=torch.int32, device=input.device)
    out = torch.empty(b, h, w, c, dtype=input.dtype, device=input.device)
    den = torch.empty(b, 1, h, w, dtype=input.dtype, device=input.device)
    acc = torch.empty(n, c + 1, dtype=input.dtype, device=input.device)
    feats = torch.empty(n, c + 1, dtype=input.dtype, device=input.device)  # row-major: MKL's sparse path needs it
    feats[:, c] = 1
    for i in range(b):  # one sparse product per frame
        sorted_keys, order = torch.sort(keys[i])
        crow = torch.searchsorted(sorted_keys, rows, out_int32=True)
        cols = torch.div(order, 4, rounding_mode="floor").int()
        feats[:, :c] = input[i].permute(1, 2, 0).reshape(n, c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            mat = torch.sparse_csr_tensor(crow, cols, vals[i][order], (n, n))
            # addmm into a preallocated buffer (beta = 0 ignores its contents) takes MKL's sparse path
            # without the output copies of `mat @ feats`: several times faster for the product here.
            torch.addmm(acc, mat, feats, beta=0, out=acc)
        d = acc[:, c:]
        den[i, 0] = d.reshape(h, w)
        scale = torch.ones_like(d) if mode == "sum" else torch.where(d > 0, 1 / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d))
        torch.mul(acc[:, :c], scale, out=out[i].view(n, c))
    return out.permute(0, 3, 1, 2), den


# ----------------------------------------------------------------------------- choosing and compiling
_COMPILE_LOCK = threading.Lock()
_COMPILE_STATE: dict[str, str] = {}  # device type → "compiled" | "failed"
_COMPILED: dict[str, Callable] = {}


def compile_status(device="cpu") -> str:
    """``untried``, ``compiled`` or ``failed`` for the compiled splat kernel on a device type."""
    return _COMPILE_STATE.get(torch.device(device).type, "untried")


def _compile_allowed(compile) -> bool:
    if compile is False:
        return False
    if compile is True:
        return True
    return os.environ.get(COMPILE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _pick_kernel(kernel: str, channels: int, dtype, grad: bool, compile, device, pixels: int | None = None) -> str:
    if grad or dtype == torch.float64:
        return "scatter"  # the only path with autograd (and the float64 reference)
    if kernel != "auto":
        return kernel
    # Measured with tests/bench/bench_splat.py on the 2-core CPU (ratios to the plain scatter, same run):
    # see the README's speed section. On the CPU the native C kernel when a compiler can build it (else
    # planes, which needs none; the compiled kernel is no faster than eager there: inductor's CPU code for
    # this scatter), on a GPU the compiled kernel (small frames eager).
    if device.type == "cpu":
        return "native" if native_available() else "planes"
    if (pixels is None or pixels >= COMPILE_MIN_PIXELS) and _compile_allowed(compile) and compile_status(device) != "failed":
        return "compiled"
    return "scatter"


def _per_frame(choice: str, x, fl, z, mode: str, compile) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel run frame by frame (``[1, C, H, W]`` calls: one compiled graph per frame size whatever
    the batch, temporaries of one frame), the work spread over torch's thread count of Python threads
    with torch at one thread meanwhile (the compiled kernel is single-threaded and releases the GIL;
    see :data:`_COMPILE_OPTIONS`). Compiled on a multi-core CPU, each frame is two bands of source rows
    accumulated side by side and then added, so one frame uses two cores too. Returns
    ``(out [B, C, H, W], holes [B, 1, H, W])``, or None when the compile fails at the first frame."""
    b, c, h, w = x.shape
    out = torch.empty_like(x)
    holes = torch.empty(b, 1, h, w, dtype=torch.bool, device=x.device)
    workers = torch.get_num_threads() if x.device.type == "cpu" else 1
    compiled = choice == "compiled"
    half = (h + 1) // 2 if workers >= 2 and h >= 2 else h
    bands = [(0, half), (half, h)] if half < h else [(0, h)]

    def frame(i: int) -> None:  # sparse, or eager after a failed compile
        zi = None if z is None else z[i : i + 1]
        o, d = _splat_sparse(x[i : i + 1], fl[i : i + 1], zi, mode) if choice == "sparse" else _splat_scatter(x[i : i + 1], fl[i : i + 1], zi, mode)
        out[i] = o[0]
        holes[i] = d[0] <= 0

    def band(i: int, r0: int, r1: int):
        zi = None if z is None else z[i : i + 1, :, r0:r1]
        shift = _frame_shift(fl[i], z[i]) if mode == "soft" else torch.zeros(1, 1, 1, dtype=x.dtype, device=x.device)
        row0 = torch.tensor([float(r0)], dtype=x.dtype, device=x.device)
        return _compiled_call(_splat_band, (x[i : i + 1, :, r0:r1], fl[i : i + 1, :, r0:r1], zi, row0, h, shift, mode), compile)

    def finish(i: int, accs) -> None:
        if any(acc is None for acc in accs):  # the compile failed meanwhile
            return frame(i)
        acc = accs[0] if len(accs) == 1 else accs[0].add_(accs[1])
        o, d = _normalise(acc, mode, c)
        out[i] = o.view(c, h, w)
        holes[i] = d.view(1, h, w) <= 0

    # The first frame in this thread: compiles (every band shape) before any concurrent call.
    if compiled:
        first = []
        for r0, r1 in bands:
            first.append(band(0, r0, r1))
            if first[-1] is None:
                return None  # no compiler: the caller runs the eager scatter
        finish(0, first)
    else:
        frame(0)
    if b == 1:
        return out, holes
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Pool(max(1, workers), thread_name_prefix="vid4d-splat") as pool:
            if compiled:
                pending = [(i, [pool.submit(band, i, r0, r1) for r0, r1 in bands]) for i in range(1, b)]
                for i, futures in pending:
                    finish(i, [f.result() for f in futures])
            else:
                for future in [pool.submit(frame, i) for i in range(1, b)]:
                    future.result()
    finally:
        torch.set_num_threads(threads)
    return out, holes


def _frame_shift(flow: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """``[1, 1, 1]``: :func:`_shift` of one frame (``flow [2, H, W]``, ``metric [1, H, W]``)."""
    z = metric.reshape(1, 1, -1)
    ok = (torch.isfinite(flow).all(0).reshape(1, 1, -1)) & torch.isfinite(z)
    return _shift(z, ok)


# Inductor options of the compiled kernel on the CPU. Single-threaded code ("cpp.threads": 1) lets the
# scatter be a plain `+=` loop: with more threads inductor emits a compare-and-swap atomic add per value
# (measured 0.7x the eager scatter), and by default it calls ATen's scatter_reduce instead
# ("cpp.fallback_scatter_reduce_sum"), with a copy of the buffer per corner (what made batch 4 slower
# than batch 1 before: 4 copies of a 22 MB buffer, out of cache). The C++ wrapper ("cpp_wrapper")
# releases the GIL, so frames run side by side from Python threads (see _per_frame).
_COMPILE_OPTIONS = {"cpp.threads": 1, "cpp.fallback_scatter_reduce_sum": False, "cpp_wrapper": True}


def _compiled_call(kernel, args, compile):
    """``kernel(*args)`` compiled (once per process and device type), or None where that fails."""
    kind = args[0].device.type
    if _COMPILE_STATE.get(kind) == "failed":
        return None
    with _COMPILE_LOCK:
        fn = _COMPILED.get(kind)
        if fn is None:
            try:
                # dynamic=False: a graph per band size (all calls are single frames or bands), never the
                # slower shape-generic code that automatic dynamic shapes switch to at the second size.
                fn = _COMPILED[kind] = torch.compile(kernel, dynamic=False, options=_COMPILE_OPTIONS if kind == "cpu" else None)
            except Exception as err:  # noqa: BLE001 - no compiler on this platform
                return _compile_failed(kind, err, compile)
    try:
        out = fn(*args)
    except Exception as err:  # noqa: BLE001 - compile errors surface at the first call
        if _COMPILE_STATE.get(kind) == "compiled":
            raise  # it compiled before: a real error, not a compiler problem
        return _compile_failed(kind, err, compile)
    _COMPILE_STATE[kind] = "compiled"
    return out


def _compile_failed(kind: str, err: Exception, compile):
    _COMPILE_STATE[kind] = "failed"
    _COMPILED.pop(kind, None)
    if compile is True:
        raise RuntimeError(f"torch.compile of the splat kernel failed on {kind} ({type(err).__name__}: {err}); use compile='auto' or False") from err
    warnings.warn(f"vid4d: torch.compile of softmax splatting failed on {kind} ({type(err).__name__}: {err}); running eagerly from now on", RuntimeWarning, stacklevel=3)
    return None


# ------------------------------------------------------------------------------------------ hole fill
def fill_holes(image: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Pull-push fill: holes take the weighted average of the valid pixels around them, from the
    finest pyramid level that has any (smooth, no streaks; vectorised per level).

    Args:
        image: ``[B, C, H, W]``.
        holes: ``[B, 1, H, W]`` bool (True = fill).

    Returns:
        ``[B, C, H, W]`` equal to ``image`` outside the holes; 0 where a frame has no valid pixel at all.
    """
    if image.dim() != 4 or holes.shape != (image.shape[0], 1, *image.shape[2:]):
        raise ValueError(f"holes: expected [B, 1, H, W] matching the image {list(image.shape)}, got {list(holes.shape)}")
    valid = (~holes.bool()).to(image.dtype)
    if bool(valid.all()):
        return image
    levels = [(image * valid, valid)]
    while min(levels[-1][1].shape[-2:]) > 1:  # push: down to 1 pixel a side
        v, m = levels[-1]
        levels.append((F.avg_pool2d(v, 2, ceil_mode=True), F.avg_pool2d(m, 2, ceil_mode=True)))
    filled = None
    for v, m in reversed(levels):  # pull: coarse estimates flow into the holes of the finer level
        colour = torch.where(m > 0, v / m.clamp_min(1e-12), torch.zeros_like(v))
        if filled is not None:
            up = F.interpolate(filled, size=v.shape[-2:], mode="bilinear", align_corners=False)
            alpha = m.clamp(0, 1)
            colour = colour * alpha + up * (1 - alpha)
        filled = colour
    return torch.where(holes.bool(), filled, image)


# ------------------------------------------------------------------------------------------ animation
def render_pyramid(image: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None, levels: int = 1, mode: str = "soft", **kw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel-space pyramid splatting (no weights): splat the image at ``levels`` scales (flow resized,
    vectors rescaled) and fill the holes of each finer level with the next coarser level's render
    (a coarse splat leaves fewer holes: its pixels cover twice the area).

    Args:
        image: ``[B, C, H, W]``; flow ``[B, 2, H, W]``; metric ``[B, 1, H, W]`` or None.

    Returns:
        ``(frames [B, C, H, W], holes [B, 1, H, W], remaining [B, 1, H, W])``: ``holes`` of the
        full-resolution splat, ``remaining`` where no level had anything.
    """
    out, holes = softmax_splat(image, flow, metric, mode, return_holes=True, **kw)
    h, w = image.shape[-2:]
    acc = None
    for level in reversed(range(1, levels)):  # coarsest first; each level patched by the one below it
        size = (max(1, h >> level), max(1, w >> level))
        if min(size) < 2:
            continue
        coarse, coarse_holes = softmax_splat(*resize_level(image, flow, metric, size), mode, return_holes=True, **kw)
        if acc is not None:
            coarse, coarse_holes = _patch(coarse, coarse_holes, *acc)
        acc = (coarse, coarse_holes)
    if acc is None:
        return out, holes, holes
    filled, remaining = _patch(out, holes, *acc)
    return filled, holes, remaining


def _patch(fine, fine_holes, coarse, coarse_holes):
    """Fill a level's holes with the upsampled coarser level where that one has a value."""
    size = fine.shape[-2:]
    up = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
    up_holes = F.interpolate(coarse_holes.float(), size=size, mode="nearest") > 0.5
    use = fine_holes & ~up_holes
    return torch.where(use, up, fine), fine_holes & up_holes


def resize_level(features: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None, size: tuple[int, int]):
    """Features, flow and metric at another pyramid size: the flow field is resampled and its vectors
    scaled by the size ratio (x by the width ratio, y by the height ratio)."""
    h, w = flow.shape[-2:]
    if features.shape[-2:] != size:
        features = F.interpolate(features, size=size, mode="area")
    sx, sy = size[1] / w, size[0] / h
    fl = F.interpolate(flow, size=size, mode="bilinear", align_corners=False, antialias=size[0] < h)
    fl = fl * torch.tensor([sx, sy], dtype=fl.dtype, device=fl.device).reshape(1, 2, 1, 1)
    z = None if metric is None else F.interpolate(metric, size=size, mode="bilinear", align_corners=False, antialias=size[0] < h)
    return features, fl, z


def animate(
    image: torch.Tensor,
    displacement: torch.Tensor,
    metric: torch.Tensor | None = None,
    *,
    mode: str = "soft",
    levels: int = 1,
    fill: bool = True,
    synthesis=None,
    chunk_frames: int = 8,
    progress: Callable[[int], None] | None = None,
    cancel: Callable[[], None] | None = None,
    compile="auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Animate a still image with a motion texture, a chunk of frames at a time.

    Args:
        image: ``[H, W, 3]`` float (0..1) on the compute device.
        displacement: ``[T, H, W, 2]`` F_t in pixels (any device: chunks are moved to the image's).
        metric: ``[H, W]`` softmax importance Z (e.g. ``WEIGHT_RANGE · strength · W / max W``); None
            splats with ``avg``.
        mode: splatting mode when a metric is given.
        levels: pixel-space pyramid levels (holes of a level filled from the coarser ones; 1 = plain).
        fill: pull-push fill of the remaining holes (pixel-space path only).
        synthesis: a :class:`~vid4d.models.synthesis.SynthesisModel`: feature-pyramid rendering instead of
            the pixel-space path (the image is encoded once; ``levels`` and ``fill`` are then unused).
        chunk_frames: frames splatted per call (memory grows with this, not with T).
        progress: ``fn(frames_done)`` after every chunk; cancel: called before each chunk (may raise).

    Returns:
        ``(frames [T, H, W, 3] float32 in 0..1, holes [T, H, W] bool)`` on the image's device; holes are
        where nothing landed in the full-resolution splat (before any filling).
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[-1] != 3 or image.numel() == 0:
        raise ValueError(f"image: expected a non-empty [H, W, 3] tensor, got {getattr(image, 'shape', type(image).__name__)}")
    h, w = image.shape[:2]
    if not isinstance(displacement, torch.Tensor) or displacement.dim() != 4 or displacement.shape[-1] != 2 or displacement.shape[0] == 0:
        raise ValueError(f"displacement: expected [T, H, W, 2], got {getattr(displacement, 'shape', type(displacement).__name__)}")
    if tuple(displacement.shape[1:3]) != (h, w):
        raise ValueError(f"displacement: is {displacement.shape[2]}x{displacement.shape[1]} but the image is {w}x{h}; resize the motion texture or the image")
    if metric is not None and tuple(metric.shape) != (h, w):
        raise ValueError(f"metric: expected [H, W] = [{h}, {w}], got {list(metric.shape)}")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames: expected >= 1, got {chunk_frames}")
    device = image.device
    src = image.float().permute(2, 0, 1)[None]
    z = None if metric is None else metric.float().to(device)[None, None]
    splat_mode = mode if z is not None else "avg"
    features = synthesis.encode(src) if synthesis is not None else None
    t_total = displacement.shape[0]
    frames = torch.empty(t_total, h, w, 3, dtype=torch.float32, device=device)
    holes = torch.empty(t_total, h, w, dtype=torch.bool, device=device)
    with torch.no_grad():
        for t0 in range(0, t_total, chunk_frames):
            if cancel is not None:
                cancel()
            flow = displacement[t0 : t0 + chunk_frames].to(device=device, dtype=torch.float32).permute(0, 3, 1, 2)
            n = flow.shape[0]
            zi = None if z is None else z.expand(n, -1, -1, -1)
            if synthesis is not None:
                out = synthesis.render(features, flow, zi, compile=compile)
                hole = splat_holes(flow)
            else:
                out, hole, remaining = render_pyramid(src.expand(n, -1, -1, -1), flow, zi, levels, splat_mode, compile=compile)
                if fill:
                    out = fill_holes(out, remaining)
            frames[t0 : t0 + n] = out.clamp(0, 1).permute(0, 2, 3, 1)
            holes[t0 : t0 + n] = hole[:, 0]
            if progress is not None:
                progress(t0 + n)
    return frames, holes
