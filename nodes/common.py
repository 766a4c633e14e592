"""What every Vid4D node shares: socket type names, categories, typed-input checks, saving outputs."""

from __future__ import annotations

import re
from pathlib import Path

from ..py.camera import CameraPath
from ..py.depth import DepthVideo
from ..py.gaussians import GaussianField
from ..py.spectral import SpectralVolume
from ..py.tracking import Tracks3D
from . import runtime

# Socket types that travel between Vid4D nodes, and the dataclass each one carries.
CAMERA_PATH = "VID4D_CAMERA_PATH"
TRACKS3D = "VID4D_TRACKS3D"
GAUSSIANS = "VID4D_GAUSSIANS"
SPECTRAL_VOLUME = "VID4D_SPECTRAL_VOLUME"
DEPTH = "VID4D_DEPTH"

SOCKET_TYPES: dict[str, type] = {
    CAMERA_PATH: CameraPath,
    TRACKS3D: Tracks3D,
    GAUSSIANS: GaussianField,
    SPECTRAL_VOLUME: SpectralVolume,
    DEPTH: DepthVideo,
}

# ComfyUI's own socket types a Vid4D node may use.
CORE_TYPES = ("IMAGE", "MASK", "LATENT", "INT", "FLOAT", "STRING", "BOOLEAN", "VIDEO")

CATEGORY = "Vid4D"


def category(area: str) -> str:
    """``Vid4D/<area>``, e.g. ``Vid4D/video``."""
    return f"{CATEGORY}/{area}"


def expect(value, socket: str, input_name: str):
    """Check that a custom-socket input carries the dataclass its type promises."""
    cls = SOCKET_TYPES[socket]
    if not isinstance(value, cls):
        raise ValueError(f"input '{input_name}': expected a {socket} ({cls.__name__}), got {type(value).__name__}; connect it to a Vid4D node that outputs {socket}")
    return value


def info(*lines: str) -> dict:
    """The node's text panel (shown by js/vid4d.js under the node)."""
    return {"vid4d_info": ["\n".join(lines)]}


_PREFIX_OK = re.compile(r"^[\w\-. /]+$")


def output_path(prefix: str, extension: str, folder: Path | None = None) -> tuple[Path, str, str]:
    """Next free ``<output>/<prefix>_<00001>.<ext>``: returns (path, subfolder, filename).

    The prefix may contain sub-folders (``vid4d/demo``) but may not leave the output folder.
    """
    root = Path(folder) if folder is not None else runtime.output_directory()
    prefix = (prefix or "vid4d").strip().replace("\\", "/")
    if not _PREFIX_OK.match(prefix) or ".." in prefix.split("/") or prefix.startswith("/"):
        raise ValueError(f"filename_prefix {prefix!r}: use letters, digits, '-', '_', '.', spaces and '/' for sub-folders, without '..' or a leading '/'")
    sub, _, stem = prefix.rpartition("/")
    stem = stem or "vid4d"
    target = root / sub
    target.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"_(\d{5})")
    taken = [int(m.group(1)) for p in target.iterdir() if (m := pattern.match(p.name))]
    counter = max(taken, default=0) + 1
    filename = f"{stem}_{counter:05d}.{extension.lstrip('.')}"
    return target / filename, sub, filename


def preview_entry(path: Path, subfolder: str) -> dict:
    """A ``ui.images`` entry the frontend can show (type ``output``)."""
    return {"filename": path.name, "subfolder": subfolder, "type": "output"}
