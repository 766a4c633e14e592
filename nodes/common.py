"""What every Vid4D node shares: socket type names, categories, typed-input checks, saving outputs."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from ..models.chronodepth import ChronoDepthPipeline
from ..models.gsdit import GSDiTPipeline
from ..models.motion import MotionPipeline
from ..models.synthesis import SynthesisModel
from ..py.camera import CameraPath, CameraRig
from ..py.checks import trust, validation_scope
from ..py.depth import DepthVideo
from ..py.gaussians import GaussianField
from ..py.points import PointRegularization
from ..py.render import RenderedVideo
from ..py.spectral import MotionTexture, SpectralVolume
from ..py.tracking import Tracks3D
from . import runtime

# Socket types that travel between Vid4D nodes, and the dataclass each one carries.
CAMERA_PATH = "VID4D_CAMERA_PATH"
TRACKS3D = "VID4D_TRACKS3D"
GAUSSIANS = "VID4D_GAUSSIANS"
SPECTRAL_VOLUME = "VID4D_SPECTRAL_VOLUME"
DEPTH = "VID4D_DEPTH"
MOTION_TEXTURE = "VID4D_MOTION_TEXTURE"
RENDER = "VID4D_RENDER"
REGULARIZER = "VID4D_POINT_REGULARIZER"
# Model handles made by the *ModelLoader nodes (issue owners add their class to SOCKET_TYPES below).
DEPTH_MODEL = "VID4D_DEPTH_MODEL"
GSDIT_MODEL = "VID4D_GSDIT_MODEL"
MOTION_MODEL = "VID4D_MOTION_MODEL"
SYNTHESIS_MODEL = "VID4D_SYNTHESIS_MODEL"

SOCKET_TYPES: dict[str, type] = {
    CAMERA_PATH: CameraPath,
    TRACKS3D: Tracks3D,
    GAUSSIANS: GaussianField,
    SPECTRAL_VOLUME: SpectralVolume,
    DEPTH: DepthVideo,
    MOTION_TEXTURE: MotionTexture,
    RENDER: RenderedVideo,
    REGULARIZER: PointRegularization,
    MOTION_MODEL: MotionPipeline,
    GSDIT_MODEL: GSDiTPipeline,
    DEPTH_MODEL: ChronoDepthPipeline,
    SYNTHESIS_MODEL: SynthesisModel,
}

# ComfyUI's own socket types a Vid4D node may use.
CORE_TYPES = ("IMAGE", "MASK", "LATENT", "INT", "FLOAT", "STRING", "BOOLEAN", "VIDEO", "MODEL", "CONDITIONING", "VAE")

CATEGORY = "Vid4D"


def category(area: str) -> str:
    """``Vid4D/<area>``, e.g. ``Vid4D/video``."""
    return f"{CATEGORY}/{area}"


def expect(value, socket: str, input_name: str):
    """Check that a custom-socket input carries the dataclass its type promises."""
    cls = SOCKET_TYPES[socket]
    if socket == CAMERA_PATH and isinstance(value, CameraRig):
        raise ValueError(f"input '{input_name}': expected a single camera path, got a rig of {len(value)} cameras; use a CameraPath node with cameras = 1")
    if not isinstance(value, cls):
        raise ValueError(f"input '{input_name}': expected a {socket} ({cls.__name__}), got {type(value).__name__}; connect it to a Vid4D node that outputs {socket}")
    trust(value)  # its fields were checked when it was built: not scanned again in this node
    return value


def check_once(node_class: type) -> type:
    """Run the node's ``FUNCTION`` in a validation scope (``py.checks``): within one call each tensor is
    scanned for NaN/inf (and ranges) at most once, however many ``py/`` functions it passes through.
    ``nodes/__init__.py`` applies it to every registered node."""
    method = getattr(node_class, node_class.FUNCTION)
    if getattr(method, "vid4d_check_once", False):
        return node_class

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with validation_scope():
            return method(self, *args, **kwargs)

    run.vid4d_check_once = True
    setattr(node_class, node_class.FUNCTION, run)
    return node_class


def info(*lines: str) -> dict:
    """The node's text panel (shown by js/vid4d.js under the node)."""
    return {"vid4d_info": ["\n".join(lines)]}


_PREFIX_OK = re.compile(r"^[\w\-. /]+$")


def _output_target(prefix: str, folder: Path | None) -> tuple[Path, str, str, int]:
    """(folder, subfolder, stem, next counter) for ``<output>/<prefix>``; the prefix may not leave the output folder."""
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
    return target, sub, stem, max(taken, default=0) + 1


def output_path(prefix: str, extension: str, folder: Path | None = None) -> tuple[Path, str, str]:
    """Next free ``<output>/<prefix>_<00001>.<ext>``: returns (path, subfolder, filename).

    The prefix may contain sub-folders (``vid4d/demo``) but may not leave the output folder.
    """
    target, sub, stem, counter = _output_target(prefix, folder)
    filename = f"{stem}_{counter:05d}.{extension.lstrip('.')}"
    return target / filename, sub, filename


def output_folder(prefix: str, folder: Path | None = None) -> tuple[Path, str]:
    """A new folder ``<output>/<prefix>_<00001>/`` for a file sequence (PLY per frame, depth PNGs...):
    returns (folder, its subfolder relative to the output folder). Same prefix rules as :func:`output_path`."""
    target, sub, stem, counter = _output_target(prefix, folder)
    path = target / f"{stem}_{counter:05d}"
    path.mkdir()
    return path, f"{sub}/{path.name}" if sub else path.name


def input_files(extensions: tuple[str, ...], limit: int = 5000) -> list[str]:
    """Files in ComfyUI's input folder (and its sub-folders) with one of ``extensions``, as relative paths."""
    root = runtime.input_directory()
    if not root.is_dir():
        return []
    found = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name.lower().endswith(extensions):
            found.append(p.relative_to(root).as_posix())
            if len(found) >= limit:
                break
    return found


def input_file(name: str, extensions: tuple[str, ...] = ()) -> Path:
    """A file inside ComfyUI's input folder, named relative to it (``name [input]`` accepted); a path that
    leaves the input folder (absolute, ``..``, a link out) is refused, and so is a missing file."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("no file given: choose a file from the input folder (upload it there first)")
    name = name.strip()
    if name.endswith(" [input]"):
        name = name[: -len(" [input]")]
    root = runtime.input_directory().resolve()
    path = (root / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(root):
        raise ValueError(f"{name!r}: files are read from the input folder only ({root}); give a path relative to it")
    if not path.is_file():
        raise ValueError(f"{name!r}: no such file in the input folder ({root})")
    if extensions and not path.name.lower().endswith(extensions):
        raise ValueError(f"{name!r}: expected a {' / '.join(extensions)} file")
    return path


def preview_entry(path: Path, subfolder: str) -> dict:
    """A ``ui.images`` entry the frontend can show (type ``output``)."""
    return {"filename": path.name, "subfolder": subfolder, "type": "output"}


# ---------------------------------------------------------------- inputs several nodes share
# The depth_encoding widgets list py.depth.IMAGE_ENCODINGS (the one vocabulary for reading depth images).
NEAR_TOOLTIP = "scene depth of the nearest value: a depth_image is mapped between near and far, and so is a VID4D_DEPTH flagged affine depth or disparity (VideoDepth); a VID4D_DEPTH that already holds camera depth ignores it"
FAR_TOOLTIP = "scene depth of the farthest value of a relative depth (as for near)"


def depth_input(depth=None, depth_image=None, encoding="disparity", near=1.0, far=10.0, frames: int | None = None, height: int | None = None, width: int | None = None) -> DepthVideo | None:
    """The depth a node was given — a ``VID4D_DEPTH``, or an IMAGE depth map from any pack read with
    an explicit interpretation — checked against the video's frame count and size. ``None`` if neither."""
    from ..py.depth import depth_from_image

    if depth is not None:
        # Affine-invariant depth/disparity (e.g. VideoDepth's) is placed between near and far as its flag says.
        value = expect(depth, DEPTH, "depth").as_depth(near, far)
    elif depth_image is not None:
        value = depth_from_image(depth_image, encoding=encoding, near=near, far=far)
    else:
        return None
    t, h, w = value.depth.shape
    if frames is not None and t != frames:
        raise ValueError(f"depth has {t} frame(s) but the video has {frames}; give one depth map per frame")
    if (height is not None and h != height) or (width is not None and w != width):
        raise ValueError(f"depth is {w}x{h} but the frames are {width}x{height}; resize them to the same size")
    return value


def source_intrinsics(width: int, height: int, fov: float, camera=None, tracks=None):
    """``[3, 3]`` intrinsics of the source video: from a camera path or tracks when given, else from ``fov``."""
    from ..py.camera import intrinsics_from_fov

    if camera is not None:
        cam = camera_paths(camera, "camera")[0]
        if (cam.width, cam.height) != (width, height):
            raise ValueError(f"camera is for {cam.width}x{cam.height} images but the frames are {width}x{height}")
        return cam.intrinsics[0]
    if tracks is not None:
        return expect(tracks, TRACKS3D, "tracks").intrinsics.reshape(-1, 3, 3)[0]
    return intrinsics_from_fov(float(fov), width, height)


def camera_paths(value, input_name: str) -> list:
    """The camera path(s) on a ``VID4D_CAMERA_PATH`` socket: a single path or a rig → list of CameraPath."""
    if isinstance(value, CameraRig):
        return list(value.paths)
    return [expect(value, CAMERA_PATH, input_name)]
