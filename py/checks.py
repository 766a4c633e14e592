"""Validation where a bad value enters: tensor shapes, dtypes, finiteness.

Every data type that travels between nodes checks its fields with :func:`check_tensor`, so a wrong
shape is reported where it was made, naming the field, the expected shape and the shape received.
Symbolic dimensions (``"T"``, ``"H"``...) are bound by the first field that uses them, so two fields
that disagree on the frame count are caught too.

The rule: a value is checked once, where it enters
--------------------------------------------------
A value is checked where it comes in from outside: a node's input (:func:`check_image`,
:func:`check_mask`, ``nodes.common.expect``), the arguments of a public ``py/`` or ``models/`` function,
a dataclass built from outside data (``Tracks3D(...)`` runs ``__post_init__``). It is not checked again
on its way:

- **Shape and dtype checks always run.** They read metadata only: no pass over the data, no device sync.
- **Value scans** (NaN/inf, ranges, signs: a pass over the tensor, on CUDA a sync each) go through
  :func:`scan`, which runs each scan **at most once per tensor in a validation scope**
  (:func:`validation_scope`). Every node call is one scope (``nodes.common.check_once``), so the frames
  a node checked are not scanned again by the ``py/`` functions it hands them to.
- **Results built from checked values** skip the value scans: a ``py/`` function constructs what it
  computed with ``Cls.from_checked(...)`` (shape checks still run); ``Cls(...)`` is for outside data.
- **Copies and device moves never check**: ``TensorData.to()`` moves the fields without ``__post_init__``.

Within a scope a scanned tensor must not be written in place (ComfyUI runs nodes under
``torch.inference_mode()``, where tensors carry no version counter to notice it); outside any scope
(scripts, tests) every check runs as it is called.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import math
import os
import weakref
from typing import Callable, Sequence

import torch

Dim = int | str | None  # int: exact size, str: a symbol bound across fields, None: any size

_KINDS = {
    "float": lambda t: t.is_floating_point(),
    "complex": lambda t: t.is_complex(),
    "bool": lambda t: t.dtype == torch.bool,
    "int": lambda t: not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool,
    "bool_or_float": lambda t: t.dtype == torch.bool or t.is_floating_point(),
    "any": lambda t: True,
}


# id(tensor) -> (weak reference, version counter or None, keys of the scans it passed; TRUSTED = all).
_SCOPE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("vid4d_validation_scope", default=None)
TRUSTED = "*"
_CHUNK = 1 << 24  # elements scanned at once: memory of a scan stays bounded whatever the tensor's size
_SUM_DTYPE = {torch.float16: torch.float32, torch.bfloat16: torch.float32, torch.complex32: torch.complex64}  # sums that would overflow


@contextlib.contextmanager
def validation_scope():
    """A scope in which each value scan runs at most once per tensor (nested scopes share the outer one)."""
    if _SCOPE.get() is not None:
        yield
        return
    token = _SCOPE.set({})
    try:
        yield
    finally:
        _SCOPE.reset(token)


def _version(tensor: torch.Tensor):
    try:
        return tensor._version
    except RuntimeError:  # inference tensors carry no version counter
        return None


def _entry(tensor: torch.Tensor, ledger: dict):
    """The ledger's keys for ``tensor``, or None when it has none (or an in-place write voided them)."""
    entry = ledger.get(id(tensor))
    if entry is None or entry[0]() is not tensor or entry[1] != _version(tensor):
        return None
    return entry[2]


def _remember(tensor: torch.Tensor, key: str) -> None:
    ledger = _SCOPE.get()
    if ledger is None:
        return
    keys = _entry(tensor, ledger)
    if keys is None:
        keys = set()
        ledger[id(tensor)] = (weakref.ref(tensor), _version(tensor), keys)
    keys.add(key)


def trust(*values) -> None:
    """Mark tensors (and the tensor fields of TensorData) as checked in the current scope: values computed
    from checked inputs, views of them, or the fields of a dataclass that checked them when it was built."""
    for v in values:
        if isinstance(v, torch.Tensor):
            _remember(v, TRUSTED)
        elif isinstance(v, TensorData):
            trust(*(getattr(v, f.name) for f in dataclasses.fields(v)))


def scan(tensor: torch.Tensor, key: str, problem: Callable[[], str | None]) -> None:
    """Run the value check ``key`` on ``tensor`` unless it already passed it (or is trusted) in this scope.

    ``problem()`` returns the error message, or None when the values are fine; it raises ValueError.
    """
    ledger = _SCOPE.get()
    if ledger is not None:
        keys = _entry(tensor, ledger)
        if keys is not None and (TRUSTED in keys or key in keys):
            return
    message = problem()
    if message is not None:
        raise ValueError(message)
    _remember(tensor, key)


def _nonfinite(name: str, value: torch.Tensor, what: str = "") -> str | None:
    """The error for NaN/inf in ``value``, or None. Scanned in chunks of the first dimension, so memory
    stays bounded, with one device sync."""
    flat = value.reshape(1, -1) if value.dim() == 0 else value
    step = max(1, _CHUNK // max(1, flat[0].numel()))
    chunks = [flat[i : i + step] for i in range(0, flat.shape[0], step)]
    # A sum is finite only when every term is (NaN and ±inf propagate), and summing reads the values
    # without writing a mask: ~50x faster than isfinite().all() on the CPU. Only chunks whose sum is
    # not finite (NaN/inf, or finite values summing past the float range) get the elementwise test.
    sums = torch.isfinite(torch.stack([c.sum(dtype=_SUM_DTYPE.get(c.dtype)) for c in chunks]))
    if bool(sums.all()) or all(bool(torch.isfinite(c).all()) for c, ok in zip(chunks, sums.tolist()) if not ok):
        return None
    if what:
        return f"{name}: the {what} contains NaN/inf values"
    bad = sum(int((~torch.isfinite(c)).sum()) for c in chunks)
    first = next(i for i in range(flat.shape[0]) if not bool(torch.isfinite(flat[i]).all()))
    where = f", the first in {name}[{first}]" if value.dim() > 1 else ""
    return f"{name}: contains {bad} NaN/inf value(s) of {value.numel()}{where}"


def check_finite(name: str, value: torch.Tensor) -> torch.Tensor:
    """Reject NaN/inf in a float or complex tensor (once per tensor in a validation scope)."""
    if value.is_floating_point() or value.is_complex():
        scan(value, "finite", lambda: _nonfinite(name, value))
    return value


def format_shape(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("*" if d is None else str(d) for d in shape) + "]"


def check_tensor(
    name: str,
    value,
    shape: Sequence[Dim] | Sequence[Sequence[Dim]],
    *,
    kind: str = "float",
    finite: bool = True,
    dims: dict[str, int] | None = None,
) -> torch.Tensor:
    """Check one field and return it.

    Args:
        name: what the user would call it, e.g. ``"Tracks3D.uv"``.
        value: must already be a ``torch.Tensor``.
        shape: the expected shape, or a sequence of alternatives (e.g. ``[("N", 3), ("T", "N", 3)]``).
        kind: ``float``, ``complex``, ``bool``, ``int``, ``bool_or_float`` or ``any``.
        finite: reject NaN/inf (float and complex tensors only; once per tensor in a scope, see :func:`scan`).
        dims: symbol bindings shared between the fields of one object; updated in place.

    Raises:
        ValueError: naming the field, the expected and the received shape/dtype.
    """
    if dims is None:
        dims = {}
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if kind not in _KINDS:
        raise ValueError(f"check_tensor: unknown kind {kind!r}")
    if not _KINDS[kind](value):
        raise ValueError(f"{name}: expected a {kind} tensor, got dtype {value.dtype}")

    alternatives = [shape] if not shape or not isinstance(shape[0], (list, tuple)) else list(shape)
    errors = []
    for alt in alternatives:
        bound = _match(value.shape, alt, dims)
        if isinstance(bound, dict):
            dims.update(bound)
            break
        errors.append(bound)
    else:
        expected = " or ".join(_describe(alt, dims) for alt in alternatives)
        raise ValueError(f"{name}: expected shape {expected}, got {list(value.shape)}" + (f" ({errors[0]})" if len(alternatives) == 1 and errors[0] else ""))

    if value.numel() == 0:
        raise ValueError(f"{name}: is empty (shape {list(value.shape)})")
    if finite and (value.is_floating_point() or value.is_complex()):
        check_finite(name, value)
    return value


def _match(actual: torch.Size, expected: Sequence[Dim], dims: dict[str, int]):
    if len(actual) != len(expected):
        return ""
    bound: dict[str, int] = {}
    for size, want in zip(actual, expected):
        if want is None:
            continue
        if isinstance(want, int):
            if size != want:
                return ""
            continue
        known = dims.get(want, bound.get(want))
        if known is None:
            bound[want] = size
        elif known != size:
            return f"{want}={known} from another field"
    return bound


def _describe(shape: Sequence[Dim], dims: dict[str, int]) -> str:
    parts = []
    for d in shape:
        if isinstance(d, str) and d in dims:
            parts.append(f"{d}={dims[d]}")
        else:
            parts.append("*" if d is None else str(d))
    return "[" + ", ".join(parts) + "]"


def check_range(name: str, value, low: float | None = None, high: float | None = None, *, source: torch.Tensor | None = None):
    """Reject values outside [low, high] (inclusive); returns ``value``.

    ``value`` may be a callable giving the tensor (e.g. ``lambda: depth[valid]``), so nothing is computed
    when ``source`` (the tensor it is read from; default ``value`` itself) already passed in this scope.
    """

    def problem():
        v = value() if callable(value) else value
        if low is not None and v.numel() and float(v.min()) < low:
            return f"{name}: values must be >= {low}, got minimum {float(v.min()):.6g}"
        if high is not None and v.numel() and float(v.max()) > high:
            return f"{name}: values must be <= {high}, got maximum {float(v.max()):.6g}"
        return None

    if source is None and callable(value):
        raise TypeError("check_range: a callable value needs the source tensor it reads")
    scan(value if source is None else source, f"range({low}, {high})", problem)
    return value


def memory_limit() -> int:
    """Bytes one node may plan to allocate: ``VID4D_MEMORY_LIMIT_GB`` when set, else this machine's physical memory
    (psutil, else ``os.sysconf``; 64 GiB when neither can tell)."""
    env = os.environ.get("VID4D_MEMORY_LIMIT_GB", "").strip()
    if env:
        try:
            return max(1, int(float(env) * (1 << 30)))
        except ValueError:
            raise ValueError(f"VID4D_MEMORY_LIMIT_GB: expected a number of GiB, got {env!r}") from None
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - not installed, or no answer on this platform
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 64 << 30


def gib(nbytes: float) -> str:
    return f"{nbytes / (1 << 30):.1f} GiB" if nbytes >= 1 << 30 else f"{nbytes / (1 << 20):.0f} MiB"


def check_memory(what: str, nbytes: float, hint: str = "") -> None:
    """Refuse a plan before allocating: ``what`` (e.g. ``"render: 10000 frames of 2048x2048"``) needs about ``nbytes``;
    more than :func:`memory_limit` is a ValueError with the estimate, the limit and ``hint`` (what to lower)."""
    limit = memory_limit()
    if nbytes > limit:
        raise ValueError(f"{what} need about {gib(nbytes)}, more than the {gib(limit)} of memory here (set VID4D_MEMORY_LIMIT_GB to change the limit)" + (f"; {hint}" if hint else ""))


def check_positive_int(name: str, value, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (isinstance(value, float) and value.is_integer()):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name}: expected an integer >= {minimum}{upper}, got {value}")
    return value


def check_finite_number(name: str, value, *, low: float | None = None, high: float | None = None) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}: expected a value in [{low}, {high}], got {value}")
    return value


def check_vector(name: str, value, size: int = 3) -> tuple[float, ...]:
    """``size`` finite numbers from a list/tuple, a tensor, or text like ``"0, -1, 0"`` (a STRING widget;
    commas or semicolons). An element that is not a finite number is named by its index (``name[1]``)."""
    items = value
    if isinstance(value, torch.Tensor):
        items = value.detach().cpu().reshape(-1).tolist()
    elif isinstance(value, str):
        items = [v for v in value.replace(";", ",").split(",") if v.strip()]
    if not isinstance(items, (list, tuple)) or len(items) != size:
        example = ", ".join(["0"] * size)
        raise ValueError(f"{name}: expected {size} numbers, e.g. [{example}] or '{example}', got {value!r}")
    return tuple(check_finite_number(f"{name}[{i}]", v) for i, v in enumerate(items))


def check_image(name: str, image, *, max_pixels: int = 8192 * 8192, max_bytes: int = 64 << 30) -> torch.Tensor:
    """A ComfyUI IMAGE batch: ``[B, H, W, 3]`` float in 0..1 (``[H, W, 3]`` is promoted to B=1).

    A 4-channel (RGBA) batch is accepted and its alpha dropped; anything else is an error.
    """
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name}: expected an IMAGE tensor [B, H, W, 3], got {type(image).__name__}")
    if image.dim() == 3 and image.shape[-1] in (3, 4):
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[-1] not in (3, 4):
        raise ValueError(f"{name}: expected an IMAGE tensor [B, H, W, 3] (frames, height, width, RGB), got shape {list(image.shape)}")
    if image.shape[0] == 0:
        raise ValueError(f"{name}: the IMAGE batch has no frames")
    if image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"{name}: the IMAGE has zero size {list(image.shape)}")
    if image.shape[1] * image.shape[2] > max_pixels:
        raise ValueError(f"{name}: {image.shape[2]}x{image.shape[1]} is larger than the {max_pixels} pixels per frame this node accepts")
    if image.numel() * 4 > max_bytes:
        raise ValueError(f"{name}: {image.shape[0]} frames of {image.shape[2]}x{image.shape[1]} need more than {max_bytes >> 30} GiB as float32; lower the frame count or the size")
    if not image.is_floating_point():
        raise ValueError(f"{name}: expected a float IMAGE in 0..1, got dtype {image.dtype}")
    if image.shape[-1] != 3:
        image = image[..., :3]
    scan(image, "finite", lambda: _nonfinite(name, image, "IMAGE"))
    return image


def check_mask(name: str, mask, frames: int | None = None, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """A ComfyUI MASK, ``[B, H, W]`` or ``[H, W]``, returned as float ``[B, H, W]``.

    With ``frames`` given, a single mask is repeated to that many frames and any other count is an error.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name}: expected a MASK tensor [B, H, W], got {type(mask).__name__}")
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() != 3:
        raise ValueError(f"{name}: expected a MASK [B, H, W] or [H, W], got shape {list(mask.shape)}")
    if mask.shape[0] == 0:
        raise ValueError(f"{name}: the MASK batch is empty")
    if (height is not None and mask.shape[1] != height) or (width is not None and mask.shape[2] != width):
        raise ValueError(f"{name}: expected a MASK of size {width}x{height} (width x height), got {mask.shape[2]}x{mask.shape[1]}")
    if frames is not None and mask.shape[0] != frames:
        if mask.shape[0] != 1:
            raise ValueError(f"{name}: expected 1 or {frames} masks (one per frame), got {mask.shape[0]}")
        mask = mask.expand(frames, -1, -1)
    mask = mask.float()
    scan(mask, "finite", lambda: _nonfinite(name, mask, "MASK"))
    return mask


class TensorData:
    """Mixin for the dataclasses that travel between nodes.

    ``Cls(...)`` checks every field (outside data); ``Cls.from_checked(...)`` is for values computed from
    checked inputs (shape checks only); ``.to(device)`` moves every tensor field without checking again.
    """

    @classmethod
    def from_checked(cls, *args, **kwargs):
        """Build from values computed from checked inputs: ``__post_init__`` runs its shape and dtype
        checks (and any normalisation) but no value scan."""
        with validation_scope():
            trust(*args, *kwargs.values())
            return cls(*args, **kwargs)

    def to(self, device=None, dtype: torch.dtype | None = None):
        """A copy with tensor fields (and nested TensorData) on ``device``; ``dtype`` converts floating
        fields only. Not re-checked: a move does not change a value (a cast to a narrower dtype can
        overflow to inf; the caller that narrows owns that)."""
        out = copy.copy(self)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                floating = v.is_floating_point() and dtype is not None
                object.__setattr__(out, f.name, v.to(device=device, dtype=dtype if floating else None))
            elif isinstance(v, TensorData):
                object.__setattr__(out, f.name, v.to(device, dtype))
        return out

    @property
    def device(self) -> torch.device:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                return v.device
        return torch.device("cpu")
