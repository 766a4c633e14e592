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


def _where(kind: str, dirs: list[Path]) -> str:
    shown = ", ".join(str(d) for d in dirs) if dirs else "(none configured: set VID4D_MODELS_DIR or run inside ComfyUI)"
    return f"ComfyUI/models/vid4d/{kind}/ (searched: {shown})"


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
    for d in dirs:
        candidate = Path(os.path.normpath(d / clean))
        if os.path.commonpath([str(candidate), os.path.normpath(str(d))]) != os.path.normpath(str(d)):
            continue
        if candidate.exists():
            return candidate
    raise ModelNotFoundError(f"model file '{clean}' not found; put it in {_where(kind, dirs)}; {_source(kind, clean)}")


def list_model_files(kind: str, dirs: Iterable[Path], folders: bool = False) -> list[str]:
    """Relative names of weight files under ``dirs`` (recursively), plus first-level folders with ``folders``."""
    _kind(kind)
    names = set()
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for root, subdirs, files in os.walk(d, followlinks=True):
            subdirs[:] = [s for s in subdirs if not s.startswith(".")]
            rel_root = Path(root).relative_to(d)
            names.update((rel_root / f).as_posix() for f in files if f.lower().endswith(WEIGHT_EXTENSIONS))
        if folders:
            names.update(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(names)


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


def load_state_dict(path, device="cpu", dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Read a weight file into a ``{key: tensor}`` dict, cached by (path, mtime, size, dtype, device).

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
