"""The one place that talks to ComfyUI internals: device, progress, cancellation, memory, folders.

ComfyUI counts as present only when its modules are already loaded (the server imports
``comfy.model_management`` and ``folder_paths`` before any custom node); this module never imports
them itself, because importing ``comfy`` outside the server parses the command line. Without
ComfyUI (tests, the ``python -m vid4d`` runner) every function has a plain fallback, configured by
:func:`configure_headless`.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Callable

import torch

from ..models import loading


class Interrupted(RuntimeError):
    """The run was cancelled (headless equivalent of ComfyUI's InterruptProcessingException)."""


_headless = {
    "input_dir": None,
    "output_dir": None,
    "temp_dir": None,
    "progress_printer": None,  # callable(label, done, total) or None
}
_interrupt = threading.Event()


def _module(name: str):
    return sys.modules.get(name)


def comfy_present() -> bool:
    return _module("comfy.model_management") is not None


# ---------------------------------------------------------------- device and memory
def get_device() -> torch.device:
    """Where compute runs: ComfyUI's choice (honours ``--cpu``), else CUDA if available, else CPU."""
    mm = _module("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    forced = os.environ.get("VID4D_DEVICE")
    if forced:
        return torch.device(forced)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def offload_device() -> torch.device:
    """Where idle models wait: ComfyUI's unet offload device, else the CPU."""
    mm = _module("comfy.model_management")
    if mm is not None:
        return mm.unet_offload_device()
    return torch.device("cpu")


def free_memory(drop_models: bool = True) -> None:
    """Drop Vid4D's cached weights (optionally) and return cached allocator blocks to the driver."""
    if drop_models:
        loading.clear_cache()
    mm = _module("comfy.model_management")
    if mm is not None:
        mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- cancellation and progress
def check_interrupted() -> None:
    """Raise if the user pressed Cancel (ComfyUI) or :func:`request_interrupt` was called (headless)."""
    mm = _module("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()
    if _interrupt.is_set():
        _interrupt.clear()
        raise Interrupted("Vid4D: interrupted by the user")


def request_interrupt() -> None:
    """Headless cancel: the next :func:`check_interrupted` (or progress update) raises :class:`Interrupted`."""
    _interrupt.set()


class Progress:
    """Progress of one long loop; every update also checks for Cancel.

    With ComfyUI this drives ``comfy.utils.ProgressBar`` (the bar on the node; its hook is what makes
    Cancel stop the loop). Headless it prints through the runner's printer, or stays quiet.
    """

    def __init__(self, total: int, label: str = ""):
        self.total = max(int(total), 1)
        self.done = 0
        self.label = label
        utils = _module("comfy.utils")
        self._bar = utils.ProgressBar(self.total) if utils is not None and comfy_present() else None
        check_interrupted()

    def update(self, n: int = 1, preview=None) -> None:
        self.set(self.done + n, preview)

    def set(self, done: int, preview=None) -> None:
        self.done = min(int(done), self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.done, self.total, preview)
        printer = _headless["progress_printer"]
        if printer is not None:
            printer(self.label, self.done, self.total)
        check_interrupted()

    def callback(self) -> Callable[[int], None]:
        """A ``fn(done)`` for library functions that take a progress callable."""
        return lambda done: self.set(done)


# ---------------------------------------------------------------- folders
def configure_headless(input_dir=None, output_dir=None, temp_dir=None, progress_printer=None) -> None:
    """Folders and progress output for runs without ComfyUI (the CLI runner and tests)."""
    _headless.update(
        input_dir=Path(input_dir) if input_dir else None,
        output_dir=Path(output_dir) if output_dir else None,
        temp_dir=Path(temp_dir) if temp_dir else None,
        progress_printer=progress_printer,
    )


def input_directory() -> Path:
    fp = _module("folder_paths")
    if fp is not None:
        return Path(fp.get_input_directory())
    return _headless["input_dir"] or Path.cwd() / "input"


def output_directory() -> Path:
    fp = _module("folder_paths")
    if fp is not None:
        return Path(fp.get_output_directory())
    return _headless["output_dir"] or Path.cwd() / "vid4d_output"


def temp_directory() -> Path:
    fp = _module("folder_paths")
    if fp is not None:
        return Path(fp.get_temp_directory())
    return _headless["temp_dir"] or output_directory() / "temp"


def resolve_input_file(name: str) -> Path:
    """A user-given input: an absolute/relative path, or a name in the input folder (ComfyUI's
    ``name [input]`` annotation is accepted)."""
    if not name or not str(name).strip():
        raise ValueError("no input file given: choose a file from the input folder or type a path")
    name = str(name).strip()
    for suffix in (" [input]", " [output]", " [temp]"):
        if name.endswith(suffix):
            folder = {" [input]": input_directory, " [output]": output_directory, " [temp]": temp_directory}[suffix]()
            return folder / name[: -len(suffix)]
    path = Path(name).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return input_directory() / name


def register_model_folders() -> None:
    """Make ``models/vid4d/<kind>/`` known to ComfyUI (``folder_paths``) so users and
    ``extra_model_paths.yaml`` can point at them; a no-op without ComfyUI."""
    fp = _module("folder_paths")
    if fp is None:
        return
    for kind in loading.MODEL_KINDS:
        key = loading.folder_key(kind)
        path = os.path.join(fp.models_dir, "vid4d", kind)
        fp.add_model_folder_path(key, path, is_default=True)
        paths, exts = fp.folder_names_and_paths[key]
        fp.folder_names_and_paths[key] = (paths, set(exts) | set(loading.WEIGHT_EXTENSIONS))


def model_dirs(kind: str) -> list[Path]:
    """Every folder searched for models of ``kind`` (ComfyUI's registered paths, else the headless ones)."""
    fp = _module("folder_paths")
    if fp is not None:
        try:
            return [Path(p) for p in fp.get_folder_paths(loading.folder_key(kind))]
        except KeyError:
            pass
    return loading.default_model_dirs(kind)


def list_models(kind: str, folders: bool = False) -> list[str]:
    """Names for a model combo: weight files (and, with ``folders``, model folders) of ``kind``."""
    return loading.list_model_files(kind, model_dirs(kind), folders=folders)


def resolve_model(kind: str, name: str) -> Path:
    """Path of model ``name`` of ``kind``; raises ModelNotFoundError naming the file, folder and source."""
    return loading.resolve_model_path(kind, name, model_dirs(kind))


def checkpoint_dirs() -> list[Path]:
    """ComfyUI's shared ``models/checkpoints`` folders (headless: ``$VID4D_MODELS_DIR/checkpoints``)."""
    fp = _module("folder_paths")
    if fp is not None:
        try:
            return [Path(p) for p in fp.get_folder_paths("checkpoints")]
        except KeyError:
            pass
    env = os.environ.get("VID4D_MODELS_DIR")
    return [Path(env).expanduser() / "checkpoints"] if env else []


# ---------------------------------------------------------------- core sampler names
# KSampler's usual names, for combos when ComfyUI is not running (tests, the headless runner).
FALLBACK_SAMPLERS = ("euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc", "uni_pc_bh2", "lcm", "res_multistep")
FALLBACK_SCHEDULERS = ("simple", "normal", "karras", "exponential", "sgm_uniform", "ddim_uniform", "beta", "linear_quadratic", "kl_optimal")


def sampler_choices() -> tuple[list[str], list[str]]:
    """KSampler's sampler and scheduler names: ComfyUI's own lists when it is running, else the usual ones."""
    samplers = _module("comfy.samplers")
    if samplers is not None and hasattr(samplers, "KSampler"):
        return list(samplers.KSampler.SAMPLERS), list(samplers.KSampler.SCHEDULERS)
    return list(FALLBACK_SAMPLERS), list(FALLBACK_SCHEDULERS)
