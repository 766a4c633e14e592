"""Model files: where each kind of weight lives, resolving a user's name safely, and reading weights.

Weights are read from files the user put in the models folder (``models/vid4d/<kind>/`` in ComfyUI,
or ``$VID4D_MODELS_DIR/<kind>/`` headless); nothing is ever downloaded. ``.safetensors`` is the
default; ``.pt/.pth/.ckpt/.bin`` are read only with ``torch.load(weights_only=True)``.
No ComfyUI imports here: the node layer passes the folders it got from ComfyUI.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

SAFE_EXTENSIONS = (".safetensors",)
PICKLE_EXTENSIONS = (".pt", ".pth", ".ckpt", ".bin")
WEIGHT_EXTENSIONS = SAFE_EXTENSIONS + PICKLE_EXTENSIONS


class ModelNotFoundError(FileNotFoundError, ValueError):
    """A model file or folder is missing; the message names it, its folder and where to get it. Also a ValueError:
    like every bad input, a missing model is the user's value (the node's name widget), reported the same way."""


class CheckpointFormatError(ValueError):
    """A model file exists but is not in the expected format (wrong keys, shapes, or not a checkpoint)."""


class Problems:
    """Every problem found while checking a model's parts, reported at once (a loader's VALIDATE_INPUTS and its
    load raise the same text). ``missing``: a file or folder is not there; ``wrong``: it is there but is not what
    the slot takes."""

    def __init__(self):
        self.items: list[tuple[type, str]] = []

    def missing(self, text: str) -> None:
        self.items.append((ModelNotFoundError, text))

    def wrong(self, text: str) -> None:
        self.items.append((CheckpointFormatError, text))

    def extend(self, other: "Problems") -> "Problems":
        self.items.extend(other.items)
        return self

    def __bool__(self) -> bool:
        return bool(self.items)

    def message(self, what: str) -> str:
        texts = [t for _, t in self.items]
        if len(texts) == 1:
            return f"{what}: {texts[0]}"
        return f"{what}: {len(texts)} problems\n" + "\n".join(f"- {t}" for t in texts)

    def raise_if_any(self, what: str) -> None:
        if self.items:
            kind = CheckpointFormatError if any(k is CheckpointFormatError for k, _ in self.items) else ModelNotFoundError
            raise kind(self.message(what))


# The Vid4D-format files (motion, synthesis) say what they are in their metadata; a file of the other kind is named.
VID4D_FORMATS = {"vid4d_motion": "a Vid4D motion model: load it with Motion Model Loader (Vid4D)",
                 "vid4d_synthesis": "a Vid4D synthesis network: load it with Synthesis Model Loader (Vid4D)"}


def check_vid4d_format(path: Path, expected: str, what: str, hint: str, problems: Problems) -> None:
    """Add to ``problems`` when the ``.safetensors`` at ``path`` is not of metadata format ``expected`` (``what``: the
    kind's name in the message, ``hint``: what the slot takes). Reads the header only."""
    try:
        meta = read_header(path).metadata
    except CheckpointFormatError as exc:
        problems.wrong(f"model_name: {exc}")
        return
    found = meta.get("format")
    if found != expected:
        other = f" (it is {VID4D_FORMATS[found]})" if found in VID4D_FORMATS else ""
        problems.wrong(f"model_name: {path.name} is not {what} (metadata format={found!r}){other}; expected {hint}")


@dataclass(frozen=True)
class ModelFile:
    """A file (or folder) users download for one capability."""

    name: str
    source: str
    note: str = ""


@dataclass(frozen=True)
class ModelKind:
    kind: str
    purpose: str
    files: tuple[ModelFile, ...]


MODEL_KINDS: dict[str, ModelKind] = {
    k.kind: k
    for k in (
        ModelKind(
            "tracking",
            "DenseTrack3D learned refiner (DOT RAFT, MIT licence)",
            (ModelFile("movi_f_raft_patch_4_alpha.pth", "https://huggingface.co/16lemoing/dot (file movi_f_raft_patch_4_alpha.pth)", "raw state_dict"),),
        ),
        ModelKind(
            "depth",
            "VideoDepth (ChronoDepth-v1 UNet + SVD-XT components)",
            (
                ModelFile("ChronoDepth-v1/", "https://huggingface.co/jhshao/ChronoDepth-v1", "folder: config.json + diffusion_pytorch_model.safetensors"),
                ModelFile("stable-video-diffusion-img2vid-xt/", "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt", "diffusers folder: vae/ image_encoder/ feature_extractor/ scheduler/ (or models/checkpoints/svd_xt.safetensors)"),
            ),
        ),
        ModelKind(
            "gsdit",
            "GSDiTSampler (GS-DiT checkpoints, or CogVideoX for the training-free mode)",
            (
                ModelFile("CogVideoX-5b-I2V/", "https://huggingface.co/THUDM/CogVideoX-5b-I2V", "diffusers folder: transformer/ vae/ text_encoder/ tokenizer/ scheduler/"),
                ModelFile("CogVideoX-2b/", "https://huggingface.co/THUDM/CogVideoX-2b", "diffusers folder"),
            ),
        ),
        ModelKind(
            "motion",
            "SpectralMotion / SoftmaxSplat learned models (spectral-volume motion LDM, feature-pyramid synthesis network)",
            (
                ModelFile("gid_motion.safetensors", "a Vid4D motion LDM you trained (no official weights exist)", "one .safetensors: unet.* freq_attn.* spectral_scales + config in its metadata (README: Motion models)"),
                ModelFile("generative-image-dynamics/", "https://github.com/fltwr/generative-image-dynamics (trained models link in its README)", "folder: unet_v1.pth, vqvae/ (CompVis/ldm-celebahq-256 vqvae), fft_std.npy (data/labels/)"),
                ModelFile("gid_synthesis.safetensors", "a Vid4D feature-pyramid synthesis network you trained (no official weights exist)", "one .safetensors: encoder.* decoder.* head.* + config in its metadata (README: Motion models)"),
            ),
        ),
    )
}


def folder_key(kind: str) -> str:
    """The ``folder_paths`` name of a kind, e.g. ``vid4d_depth``."""
    _kind(kind)
    return f"vid4d_{kind}"


def _kind(kind: str) -> ModelKind:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind]


def default_model_dirs(kind: str) -> list[Path]:
    """Folders searched without ComfyUI: ``$VID4D_MODELS_DIR/<kind>``, then ComfyUI's
    ``models/vid4d/<kind>`` when this pack sits in ``ComfyUI/custom_nodes/``."""
    _kind(kind)
    dirs = []
    env = os.environ.get("VID4D_MODELS_DIR")
    if env:
        dirs.append(Path(env).expanduser() / kind)
    pack = Path(__file__).resolve().parent.parent
    if pack.parent.name == "custom_nodes":
        dirs.append(pack.parent.parent / "models" / "vid4d" / kind)
    return dirs


# ComfyUI's own model folders (``folder_paths`` names) that Vid4D also reads: the community's single files.
SHARED_FOLDERS = {
    "diffusion_models": "ComfyUI/models/diffusion_models/",
    "text_encoders": "ComfyUI/models/text_encoders/",
    "vae": "ComfyUI/models/vae/",
    "checkpoints": "ComfyUI/models/checkpoints/",
}


def default_shared_dirs(name: str) -> list[Path]:
    """ComfyUI's ``models/<name>`` without ComfyUI running: ``$VID4D_MODELS_DIR/<name>``, then the ComfyUI
    install this pack sits in (``ComfyUI/custom_nodes/``)."""
    if name not in SHARED_FOLDERS:
        raise ValueError(f"unknown ComfyUI model folder {name!r}; expected one of {sorted(SHARED_FOLDERS)}")
    dirs = []
    env = os.environ.get("VID4D_MODELS_DIR")
    if env:
        dirs.append(Path(env).expanduser() / name)
    pack = Path(__file__).resolve().parent.parent
    if pack.parent.name == "custom_nodes":
        dirs.append(pack.parent.parent / "models" / name)
    return dirs


def find_in(name: str, dirs: Iterable[Path]) -> Path | None:
    """The first existing ``<dir>/<name>`` (file or folder) over ``dirs``, or None; the name may not leave its folder."""
    clean = check_model_name(name)
    for d in dirs:
        d = Path(d)
        candidate = Path(os.path.normpath(d / clean))
        if os.path.commonpath([str(candidate), os.path.normpath(str(d))]) != os.path.normpath(str(d)):
            continue
        if candidate.exists():
            return candidate
    return None


def locate(part: str, name: str, dirs: Iterable[Path], where: str, hint: str, problems: "Problems") -> Path | None:
    """``name`` in ``dirs``, or None with a problem naming the part, whether a file or a folder was expected, the
    folders searched, what they hold, and ``hint`` (every accepted alternative)."""
    dirs = [Path(d) for d in dirs]
    try:
        found = find_in(name, dirs)
    except ValueError as exc:
        problems.wrong(f"{part}: {exc}")
        return None
    if found is None:
        kind = "folder" if is_folder_name(name) else "file"
        problems.missing(f"{part}: {kind} '{name.rstrip('/')}' not found in {where} (searched: {searched(dirs)}; found there: {found_in(dirs)}); {hint}")
    return found


def list_files(dirs: Iterable[Path], extensions=WEIGHT_EXTENSIONS, folders: bool = False) -> list[str]:
    """Relative names of files with ``extensions`` under ``dirs`` (recursively), plus first-level folders with ``folders``."""
    names = set()
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for root, subdirs, files in os.walk(d, followlinks=True):
            subdirs[:] = [s for s in subdirs if not s.startswith(".")]
            rel_root = Path(root).relative_to(d)
            names.update((rel_root / f).as_posix() for f in files if f.lower().endswith(extensions))
        if folders:
            names.update(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(names)


def searched(dirs: Iterable[Path]) -> str:
    """The folders searched, for an error message (never wrapped in brackets by the caller)."""
    dirs = [str(d) for d in dirs]
    return ", ".join(dirs) if dirs else "no folder configured: set VID4D_MODELS_DIR, or run inside ComfyUI"


def found_in(dirs: Iterable[Path], limit: int = 12) -> str:
    """What the folders hold (first level; folders end in ``/``), for an error message."""
    names = set()
    for d in dirs:
        d = Path(d)
        if d.is_dir():
            names.update(p.name + ("/" if p.is_dir() else "") for p in d.iterdir() if not p.name.startswith("."))
    if not names:
        return "nothing"
    shown = sorted(names)
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def is_folder_name(name: str) -> bool:
    """A model *folder* (``ChronoDepth-v1/``, ``CogVideoX-2b``) rather than a weight file."""
    return name.endswith("/") or not name.lower().endswith(WEIGHT_EXTENSIONS)


def _where(kind: str, dirs: list[Path]) -> str:
    return f"ComfyUI/models/vid4d/{kind}/ (searched: {searched(dirs)}; found there: {found_in(dirs)})"


def _source(kind: str, name: str) -> str:
    spec = _kind(kind)
    base = name.rstrip("/").split("/")[0]
    for f in spec.files:
        if f.name.rstrip("/") == base:
            return f"get it from {f.source}" + (f" ({f.note})" if f.note else "")
    if spec.files:
        return "known files for this folder: " + "; ".join(f"{f.name} from {f.source}" for f in spec.files)
    return "see the README's model table"


def check_model_name(name: str) -> str:
    """Reject names that are absolute or climb out of the models folder (``..``)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("model name is empty: choose a model file from the list")
    clean = name.strip().replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or ".." in Path(clean).parts:
        raise ValueError(f"model name {name!r} must be a path inside the models folder (no absolute paths, no '..')")
    return clean


def resolve_model_path(kind: str, name: str, dirs: Iterable[Path]) -> Path:
    """The first existing ``<dir>/<name>`` over ``dirs`` (a file or a model folder).

    Symlinks inside the models folder are followed (users link big files), but the *name* may not
    leave the folder. Raises :class:`ModelNotFoundError` naming the file, the folder and the source.
    """
    clean = check_model_name(name)
    dirs = [Path(d) for d in dirs]
    found = find_in(clean, dirs)
    if found is not None:
        return found
    what = "model folder" if is_folder_name(clean) else "model file"
    raise ModelNotFoundError(f"{what} '{clean.rstrip('/')}{'/' if what == 'model folder' else ''}' not found; put it in {_where(kind, dirs)}; {_source(kind, clean)}")


def list_model_files(kind: str, dirs: Iterable[Path], folders: bool = False) -> list[str]:
    """Relative names of weight files under ``dirs`` (recursively), plus first-level folders with ``folders``."""
    _kind(kind)
    return list_files(dirs, WEIGHT_EXTENSIONS, folders)


# ---------------------------------------------------------------- reading weights
_CACHE_SIZE = 4
_cache: "OrderedDict[tuple, object]" = OrderedDict()
_lock = threading.Lock()


def cached(key: tuple, factory: Callable[[], object]):
    """A small LRU cache of loaded weights/models, keyed e.g. by (path, mtime, dtype, device)."""
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = factory()
    with _lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def load_state_dict(path, device="cpu", dtype: torch.dtype | None = None, cache: bool = True) -> dict[str, torch.Tensor]:
    """Read a weight file into a ``{key: tensor}`` dict, cached by (path, mtime, size, dtype, device) unless
    ``cache`` is off (multi-GB files whose tensors go straight into a model).

    ``dtype`` converts floating tensors only. Pickle formats go through
    ``torch.load(weights_only=True)`` (no arbitrary code); a wrapped ``{"state_dict": ...}`` or
    ``{"model": ...}`` is unwrapped. The returned dict is shared by the cache: do not modify it.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_EXTENSIONS:
        raise CheckpointFormatError(f"{path.name}: unsupported weight format {suffix!r}; expected one of {WEIGHT_EXTENSIONS}")
    stat = path.stat()
    device = torch.device(device)
    key = ("state_dict", str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(dtype), str(device))
    if not cache:
        return _read_state_dict(path, device, dtype)
    return cached(key, lambda: _read_state_dict(path, device, dtype))


def _read_state_dict(path: Path, device: torch.device, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    try:
        if path.suffix.lower() in SAFE_EXTENSIONS:
            from safetensors.torch import load_file

            state = load_file(str(path), device=str(device))
        else:
            state = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle with disallowed objects
        raise CheckpointFormatError(f"could not read weights from {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        for wrapper in ("state_dict", "model", "module"):
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointFormatError(f"{path}: expected a dictionary of tensors (a state_dict), got {type(state).__name__}")
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    return state


def require_keys(state: dict, prefixes: Iterable[str], path) -> None:
    """Raise :class:`CheckpointFormatError` unless every prefix has at least one key (official layouts)."""
    missing = [p for p in prefixes if not any(k.startswith(p) for k in state)]
    if missing:
        sample = ", ".join(sorted(state)[:5])
        raise CheckpointFormatError(f"{path}: not the expected checkpoint layout; no keys starting with {missing} (first keys: {sample})")


# ---------------------------------------------------------------- what a file holds, without reading its weights
@dataclass(frozen=True)
class FileHeader:
    """Tensor names, shapes and dtypes of a ``.safetensors`` file, read from its header only."""

    path: Path
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    metadata: dict[str, str]

    @property
    def keys(self) -> list[str]:
        return list(self.shapes)

    def dtype_summary(self) -> str:
        """``bf16``, ``fp8 (float8_e4m3fn)``... the storage type of most tensors."""
        counts: dict[str, int] = {}
        for d in self.dtypes.values():
            counts[d] = counts.get(d, 0) + 1
        if not counts:
            return "?"
        top = max(counts, key=counts.get)
        return _DTYPE_NAMES.get(top, top.lower())


_DTYPE_NAMES = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F64": "fp64", "F8_E4M3": "fp8 (float8_e4m3fn)", "F8_E5M2": "fp8 (float8_e5m2)"}
_headers: "OrderedDict[tuple, FileHeader]" = OrderedDict()


def read_header(path) -> FileHeader:
    """The header of a ``.safetensors`` file (cheap even for 20 GB files; cached by path and mtime).

    Raises :class:`CheckpointFormatError` for an unreadable or truncated file, ModelNotFoundError if missing.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"model file not found: {path}")
    if path.suffix.lower() not in SAFE_EXTENSIONS:
        raise CheckpointFormatError(f"{path.name}: its keys can only be read from a .safetensors file")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key in _headers:
            return _headers[key]
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes, dtypes = {}, {}
            for k in handle.keys():
                sl = handle.get_slice(k)
                shapes[k] = tuple(int(n) for n in sl.get_shape())
                dtypes[k] = str(sl.get_dtype())
            header = FileHeader(path, shapes, dtypes, dict(handle.metadata() or {}))
    except Exception as exc:  # truncated, not safetensors
        raise CheckpointFormatError(f"could not read {path}: {type(exc).__name__}: {exc}") from exc
    with _lock:
        _headers[key] = header
        while len(_headers) > 64:
            _headers.popitem(last=False)
    return header


def dequantize(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating weights in ``dtype``; fp8 weights upcast, and ComfyUI's *scaled* fp8 files (a ``scaled_fp8`` marker
    and a ``<layer>.scale_weight`` per layer: weight = stored × scale) multiplied out. Non-float tensors are kept."""
    out = {}
    for key, value in state.items():
        if key == "scaled_fp8" or key.endswith((".scale_weight", ".scale_input")):
            continue
        if value.is_floating_point():
            scale = state.get(key[: -len("weight")] + "scale_weight") if key.endswith(".weight") else None
            value = value.to(torch.float32) * scale.to(torch.float32) if scale is not None else value
            value = value.to(dtype)
        out[key] = value
    return out


def check_state_matches(factory: Callable[[], torch.nn.Module], state: dict, path) -> None:
    """Check a checkpoint against the module its own config describes *before* building it for real: ``factory()``
    runs on the meta device (nothing allocated), so a config read from the file's metadata cannot ask for more memory
    than the file holds. Every parameter must be in ``state`` with its shape, nothing else may be, and no float tensor
    may hold NaN/inf (a model with NaN weights gives NaN frames). Raises :class:`CheckpointFormatError` naming them."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in factory().state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {list(state[k].shape)} (expected {list(expected[k])})" for k in sorted(set(expected) & set(state)) if tuple(state[k].shape) != expected[k]]
    problems = ([f"missing {', '.join(missing[:5])}" + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")] if missing else []) + (
        [f"unexpected {', '.join(unexpected[:5])}" + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else "")] if unexpected else []) + (
        [f"wrong shape {'; '.join(shapes[:3])}" + (f" and {len(shapes) - 3} more" if len(shapes) > 3 else "")] if shapes else [])
    if problems:
        raise CheckpointFormatError(f"{path}: the weights do not match the model its config describes: {'; '.join(problems)}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointFormatError(f"{path}: the weights contain NaN/inf values ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); the file is damaged or the training diverged")
