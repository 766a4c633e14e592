"""What every Vid4D node shares: socket type names, categories, typed-input checks, saving outputs."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import numbers
import re
from pathlib import Path

from ..models.chronodepth import ChronoDepthPipeline
from ..models.gsdit import GSDiTPipeline
from ..models.motion import MotionPipeline
from ..models.synthesis import SynthesisModel
from ..py.camera import CameraPath, CameraRig
from ..py.checks import check_image, check_mask, trust, validation_scope
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
    Every argument is first checked against the node's own ``INPUT_TYPES`` (:func:`check_inputs`), so no
    node can forget a range, a menu or a NaN that arrives through a link or the API.
    ``nodes/__init__.py`` applies it to every registered node."""
    method = getattr(node_class, node_class.FUNCTION)
    if getattr(method, "vid4d_check_once", False):
        return node_class
    signature = inspect.signature(method)
    var_keyword = next((p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with validation_scope():
            bound = signature.bind(self, *args, **kwargs)
            named = {k: v for k, v in bound.arguments.items() if k not in ("self", var_keyword)}
            extra = dict(bound.arguments.get(var_keyword) or {}) if var_keyword else {}
            checked = check_inputs(node_class, {**named, **extra})
            for name in named:
                bound.arguments[name] = checked[name]
            if var_keyword:
                bound.arguments[var_keyword] = {k: checked[k] for k in extra}
            return method(*bound.args, **bound.kwargs)

    run.vid4d_check_once = True
    setattr(node_class, node_class.FUNCTION, run)
    return node_class


def _validated_elsewhere(node_class: type) -> set[str]:
    """Inputs the node's ``VALIDATE_INPUTS`` takes: like ComfyUI's server, their menus and ranges are its own job
    (file and model names, which the node resolves with its own error)."""
    check = getattr(node_class, "VALIDATE_INPUTS", None)
    if check is None:
        return set()
    try:
        return set(inspect.signature(check).parameters) - {"cls", "input_types"}
    except (TypeError, ValueError):
        return set()


def _number_range(opts: dict) -> str:
    lo, hi = opts.get("min"), opts.get("max")
    if lo is not None and hi is not None:
        return f" in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f" >= {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


def check_inputs(node_class: type, values: dict) -> dict:
    """The node's arguments checked against its own ``INPUT_TYPES``: a menu value must be one of its choices, an
    INT an integer and a FLOAT a finite number within the widget's min/max, a BOOLEAN true/false, a STRING text,
    an IMAGE ``[B, H, W, 3]`` and a MASK ``[B, H, W]`` float tensor without NaN/inf. ComfyUI's server checks
    widget values typed in the editor, but not values that arrive through links (a primitive, another pack's INT)
    or from a script's prompt, and a NaN passes its min/max comparisons; this is where every one of them enters.

    Returns the values (integral floats given to an INT become ints, ints given to a FLOAT floats); raises
    ValueError naming the input, what it expects and what came.
    """
    types = node_class.INPUT_TYPES()
    skip = _validated_elsewhere(node_class)
    out = dict(values)
    for section in ("required", "optional"):
        for name, spec in (types.get(section) or {}).items():
            if values.get(name) is None:
                continue
            kind = spec[0]
            if name in skip and (isinstance(kind, (list, tuple)) or kind == "COMBO"):
                continue  # a file or model name: the node resolves it with its own error (folder, accepted forms)
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out[name] = _check_input(name, kind, opts, values[name])
    return out


def _check_input(name: str, kind, opts: dict, value):
    if isinstance(kind, (list, tuple)) or kind == "COMBO":
        choices = list(kind) if isinstance(kind, (list, tuple)) else list(opts.get("options", []))
        if choices and not any(value == c and type(value) is type(c) for c in choices):
            shown = ", ".join(repr(c) for c in choices[:24]) + (", ..." if len(choices) > 24 else "")
            raise ValueError(f"{name}: expected one of {shown}, got {value!r:.80}")
        return value
    if kind == "INT":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or int(value) != value:
            raise ValueError(f"{name}: expected an integer{_number_range(opts)}, got {value!r:.80}")
        value = int(value)
    elif kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name}: expected a number{_number_range(opts)}, got {value!r:.80}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number{_number_range(opts)}, got {value}")
    elif kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r:.80}")
        return value
    elif kind == "STRING":
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected text, got {type(value).__name__}")
        return value
    elif kind == "IMAGE":
        return _check_image_input(name, value)
    elif kind == "MASK":
        return _check_mask_input(name, value)
    elif kind in SOCKET_TYPES:
        cls = SOCKET_TYPES[kind]
        if not isinstance(value, (cls, CameraRig) if kind == CAMERA_PATH else cls):
            raise ValueError(f"input '{name}': expected a {kind} ({cls.__name__}), got {type(value).__name__}; connect it to a Vid4D node that outputs {kind}")
        return value
    else:
        return value
    lo, hi = opts.get("min"), opts.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}: expected {'an integer' if kind == 'INT' else 'a number'}{_number_range(opts)}, got {value:g}")
    return value


def _check_image_input(name: str, value):
    """Shape, dtype, size and finiteness of an IMAGE (``py.checks.check_image``; the node's own call is then free)."""
    check_image(name, value)
    return value


def _check_mask_input(name: str, value):
    check_mask(name, value)
    return value


NO_DEPTH_HINT = (
    "for 3D, connect a depth: VideoDepth (ChronoDepth weights), Depth From Image (a depth IMAGE from any depth pack), "
    "or, for a moving camera, Estimate Camera's depth from motion (no weights)"
)


def warn(node: str, text: str) -> str:
    """A warning for the console (ComfyUI's log, the headless runner's output) and the node's report; returns the
    report line."""
    logging.getLogger("vid4d").warning("%s: %s", node, text)
    return f"warning: {text}"


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
        value, name = expect(depth, DEPTH, "depth").as_depth(near, far), "depth"
    elif depth_image is not None:
        value, name = depth_from_image(depth_image, encoding=encoding, near=near, far=far), "depth_image"
    else:
        return None
    t, h, w = value.depth.shape
    known = value.depth > 0 if value.valid is None else value.valid & (value.depth > 0)
    if not bool(known.any()):
        raise ValueError(f"{name}: no pixel has a depth. A depth from motion is empty when the camera only turns (a tripod pan) or the scene "
                         "is one plane: turn on Estimate Camera's fill_unknown (a plane at depth 1, right for a turning camera), or connect "
                         "VideoDepth or Depth From Image")
    if frames is not None and t != frames:
        raise ValueError(f"{name} has {t} frame(s) but the video has {frames}; give one depth map per frame")
    if (height is not None and h != height) or (width is not None and w != width):
        raise ValueError(f"{name} is {w}x{h} but the frames are {width}x{height}; resize them to the same size")
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
