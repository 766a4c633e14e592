"""Exchange with other tools: splat viewers (PLY), nerfstudio, Blender, depth images, track tables.

Conventions (the pack's, see the library contract): world = the source camera at frame 0, OpenCV
axes (x right, y down, z forward); ``world_to_camera`` rigid 4x4; intrinsics in pixels with pixel
centres at integer coordinates ((0, 0) = centre of the top-left pixel). What each format needs is
converted at the edge and stated where it happens:

- **3D Gaussian Splatting PLY** (INRIA's layout, read by gsplat-based, SuperSplat and web viewers):
  ``x y z nx ny nz f_dc_0..2 [f_rest_0..44] opacity scale_0..2 rot_0..3``, float32, binary little
  endian, one vertex per Gaussian; ``f_dc = (rgb − 0.5) / C0`` (the degree-0 spherical harmonic,
  C0 = 0.28209479177387814), ``opacity`` a logit, ``scale_*`` natural logs of the standard deviations,
  ``rot`` a unit quaternion (w, x, y, z). Normals are zeros (INRIA writes them; some readers expect
  them). ``sh_degree=3`` adds the 45 ``f_rest`` zeros INRIA's own loader insists on.
- **nerfstudio** ``camera_path.json``: ``camera_to_world`` row-major 4x4 with OpenGL camera axes
  (x right, y up, z backward: the OpenCV pose times diag(1, −1, −1, 1)), ``fov`` the *vertical* field
  of view in degrees, ``aspect``, ``render_width/height``, ``fps``, ``seconds``. The world stays the
  pack's, so a PLY exported here lines up. nerfstudio's path has a centred principal point and square
  pixels: an off-centre principal point is lost (the export says so in ``vid4d_note``).
- **Blender**: world Z up: Blender (x, y, z) = OpenCV world (x, z, −y) (the source camera looks
  along +Y with +Z up); camera axes: Blender's camera looks down its −Z with +Y up, i.e. OpenCV's
  camera times diag(1, −1, −1). Focal length in mm = f_px · sensor_width / W with the sensor fitted
  horizontally; the principal point becomes the lens shift, in units of the image width:
  shift_x = ((W − 1)/2 − cx) / W, shift_y = (cy − (H − 1)/2) / W.
- **Depth**: 16-bit PNG (value = round(depth · scale), 0 = unknown; the scale is in a sidecar JSON)
  or OpenEXR float32 (channel ``Z``; 0 = unknown) through the ``openexr`` package.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from .camera import CameraPath
from .checks import check_finite_number, check_positive_int, check_tensor
from .depth import DepthVideo
from .gaussians import GaussianField
from .tracking import Tracks3D

C0 = 0.28209479177387814  # degree-0 spherical harmonic, 1 / (2 √π)
_OPACITY_EPS = 1e-6  # opacities are clamped to [eps, 1 − eps] before the logit
_MAX_VERTICES = 50_000_000  # refused before reading (≈ 3 GB of 3DGS attributes)
_GL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))  # OpenCV ↔ OpenGL camera axes
# OpenCV world → Blender world (x, z, −y): a rotation by −90° about x.
BLENDER_FROM_OPENCV = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------
# PLY
# ---------------------------------------------------------------------------------------------------

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_PLY_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}


def write_ply(path, columns: dict[str, np.ndarray], comments: tuple[str, ...] = ()) -> Path:
    """A binary little-endian PLY with one ``vertex`` element: ``columns`` name → ``[N]`` array (its dtype kept)."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in columns.items()}
    sizes = {a.shape for a in arrays.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ValueError(f"write_ply: every column must be one [N] array, got shapes {sorted(sizes)}")
    n = next(iter(sizes))[0]
    dtype = np.dtype([(k, a.dtype.newbyteorder("<")) for k, a in arrays.items()])
    data = np.empty(n, dtype=dtype)
    for k, a in arrays.items():
        data[k] = a
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {n}")
    lines += [f"property {_PLY_NAMES[a.dtype.str[1:]]} {k}" for k, a in arrays.items()]
    lines.append("end_header")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("ascii"))
        f.write(data.tobytes())
    return path


def read_ply(path) -> dict[str, np.ndarray]:
    """The ``vertex`` element of a PLY file (ascii, binary little or big endian) as name → ``[N]`` array.

    Other elements (faces, SuperSplat's chunks...) are skipped; list properties before the vertices are
    parsed only to skip them. Raises ValueError with the reason on anything that is not a readable PLY.
    """
    path = Path(path)
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise ValueError(f"{path.name}: not a PLY file (it must start with 'ply')")
        fmt, elements = None, []
        while True:
            raw = f.readline()
            if not raw:
                raise ValueError(f"{path.name}: the PLY header has no 'end_header'")
            words = raw.decode("ascii", "replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property" and elements:
                if words[1] == "list":
                    elements[-1][2].append((words[4], "list", _ply_type(path, words[2]), _ply_type(path, words[3])))
                else:
                    elements[-1][2].append((words[2], _ply_type(path, words[1])))
        if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
            raise ValueError(f"{path.name}: unsupported PLY format {fmt!r}")
        if not any(name == "vertex" for name, _, _ in elements):
            raise ValueError(f"{path.name}: the PLY has no 'vertex' element")
        order = "<" if fmt == "binary_little_endian" else ">"
        for name, count, props in elements:
            if name == "vertex" and count > _MAX_VERTICES:
                raise ValueError(f"{path.name}: {count} vertices is more than the {_MAX_VERTICES} this reader accepts")
            has_list = any(len(p) == 4 for p in props)
            if fmt == "ascii":
                rows = [f.readline().split() for _ in range(count)]
                if name == "vertex":
                    if has_list:
                        raise ValueError(f"{path.name}: list properties in the vertex element are not supported")
                    try:
                        table = np.array(rows, dtype=np.float64).reshape(count, len(props))
                    except ValueError:
                        raise ValueError(f"{path.name}: the ascii vertex rows do not match the header") from None
                    return {p[0]: table[:, i].astype(p[1]) for i, p in enumerate(props)}
                continue
            if has_list:
                if name == "vertex":
                    raise ValueError(f"{path.name}: list properties in the vertex element are not supported")
                for _ in range(count):
                    for p in props:
                        if len(p) == 4:
                            (length,) = np.frombuffer(f.read(np.dtype(p[2]).itemsize), dtype=order + p[2])
                            f.read(int(length) * np.dtype(p[3]).itemsize)
                        else:
                            f.read(np.dtype(p[1]).itemsize)
                continue
            dtype = np.dtype([(p[0], order + p[1]) for p in props])
            data = f.read(dtype.itemsize * count)
            if len(data) < dtype.itemsize * count:
                raise ValueError(f"{path.name}: the file ends inside the '{name}' element ({len(data)} of {dtype.itemsize * count} bytes)")
            if name == "vertex":
                table = np.frombuffer(data, dtype=dtype)
                return {p[0]: table[p[0]].astype(p[1]) for p in props}
    raise ValueError(f"{path.name}: no vertex data")


def _ply_type(path: Path, name: str) -> str:
    if name not in _PLY_TYPES:
        raise ValueError(f"{path.name}: unknown PLY property type {name!r}")
    return _PLY_TYPES[name]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), _OPACITY_EPS, 1 - _OPACITY_EPS)
    return np.log(p / (1 - p))


def gaussian_ply_columns(means, colors, opacities, scales, quats, *, sh_degree: int = 0, normals: bool = True) -> dict[str, np.ndarray]:
    """The 3DGS attribute columns (float32) for one time step: ``means [N, 3]``, ``colors [N, 3]`` (0..1),
    ``opacities [N]``, ``scales [N, 3]`` (std), ``quats [N, 4]`` (wxyz, any non-zero norm)."""
    if sh_degree not in (0, 3):
        raise ValueError(f"sh_degree: expected 0 (colour only) or 3 (INRIA's full layout, higher orders zero), got {sh_degree!r}")
    m = means.detach().to("cpu", torch.float64).numpy()
    c = colors.detach().to("cpu", torch.float64).numpy()
    o = opacities.detach().to("cpu", torch.float64).numpy()
    s = scales.detach().to("cpu", torch.float64).numpy()
    q = quats.detach().to("cpu", torch.float64).numpy()
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    n = m.shape[0]
    cols: dict[str, np.ndarray] = {"x": m[:, 0], "y": m[:, 1], "z": m[:, 2]}
    if normals:
        cols.update(nx=np.zeros(n), ny=np.zeros(n), nz=np.zeros(n))
    dc = (c - 0.5) / C0
    cols.update({f"f_dc_{i}": dc[:, i] for i in range(3)})
    if sh_degree == 3:
        cols.update({f"f_rest_{i}": np.zeros(n) for i in range(45)})
    cols["opacity"] = _logit(o)
    cols.update({f"scale_{i}": np.log(s[:, i]) for i in range(3)})
    cols.update({f"rot_{i}": q[:, i] for i in range(4)})
    return {k: v.astype(np.float32) for k, v in cols.items()}


def save_ply_sequence(
    field: GaussianField,
    folder,
    *,
    prefix: str = "frame",
    sh_degree: int = 0,
    normals: bool = True,
    drop_transparent: bool = False,
    frames: list[int] | None = None,
    progress=None,
) -> list[Path]:
    """The Gaussian field as one 3DGS PLY per time step: ``<folder>/<prefix>_00000.ply`` ...

    Args:
        field: a GaussianField (T time steps; T = 1 writes one file).
        folder: created if missing.
        sh_degree: 0 (colour only, what web viewers read) or 3 (adds INRIA's 45 ``f_rest`` zeros).
        normals: write ``nx ny nz`` zeros (INRIA's layout).
        drop_transparent: leave out Gaussians whose opacity is 0 at that time step (smaller files;
            the Gaussian count then differs between frames).
        frames: only these time steps (default all).
        progress: ``progress(done)`` after each file; may raise to cancel.

    Returns:
        the written paths, in time order.
    """
    if not isinstance(field, GaussianField):
        raise ValueError(f"field: expected a GaussianField, got {type(field).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not re.fullmatch(r"[\w\-.]+", prefix):
        raise ValueError(f"prefix {prefix!r}: use letters, digits, '-', '_' and '.'")
    steps = list(range(field.num_frames)) if frames is None else [check_positive_int("frame", t, minimum=0, maximum=field.num_frames - 1) for t in frames]
    paths = []
    for done, t in enumerate(steps, start=1):
        a = field.at(t)
        keep = a["opacities"] > 0 if drop_transparent else torch.ones_like(a["opacities"], dtype=torch.bool)
        cols = gaussian_ply_columns(a["means"][keep], a["colors"][keep], a["opacities"][keep], a["scales"][keep], a["quats"][keep], sh_degree=sh_degree, normals=normals)
        comment = f"vid4d gaussian field, time step {t} of {field.num_frames}; OpenCV axes (x right, y down, z forward)"
        paths.append(write_ply(folder / f"{prefix}_{t:05d}.ply", cols, comments=(comment,)))
        if progress is not None:
            progress(done)
    return paths


def save_point_cloud(points: torch.Tensor, path, colors: torch.Tensor | None = None) -> Path:
    """A plain coloured point cloud PLY (``x y z`` float32, ``red green blue`` uchar) — what Blender, MeshLab
    and CloudCompare import. ``points [N, 3]``, ``colors [N, 3]`` in 0..1 (optional). Non-finite points are dropped."""
    check_tensor("points", points, ("N", 3), finite=False)
    p = points.detach().to("cpu", torch.float64)
    keep = torch.isfinite(p).all(-1)
    cols = {"x": p[keep, 0].numpy().astype(np.float32), "y": p[keep, 1].numpy().astype(np.float32), "z": p[keep, 2].numpy().astype(np.float32)}
    if colors is not None:
        check_tensor("colors", colors, (points.shape[0], 3))
        rgb = (colors.detach().to("cpu", torch.float64)[keep].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        cols.update(red=rgb[:, 0], green=rgb[:, 1], blue=rgb[:, 2])
    if not int(keep.sum()):
        raise ValueError("points: no finite point to write")
    return write_ply(path, cols, comments=("vid4d point cloud; OpenCV axes (x right, y down, z forward)",))


def load_ply(path, *, point_size: float | None = None) -> GaussianField:
    """A PLY file as a static Gaussian field (T = 1).

    A 3DGS file (``f_dc_*``, ``opacity``, ``scale_*``, ``rot_*``) is decoded exactly as written by
    :func:`save_ply_sequence` (higher spherical harmonics are ignored: colour is the DC term). A plain
    point cloud (``x y z`` and optionally ``red green blue`` 0..255 or floats 0..1, ``alpha``) becomes
    opaque round Gaussians of std ``point_size`` (default: half the mean spacing, bounding-box
    diagonal / ∛N / 2).
    """
    cols = read_ply(path)
    name = Path(path).name
    for k in ("x", "y", "z"):
        if k not in cols:
            raise ValueError(f"{name}: the vertices have no '{k}' coordinate")
    means = np.stack([cols["x"], cols["y"], cols["z"]], -1).astype(np.float64)
    n = means.shape[0]
    if n == 0:
        raise ValueError(f"{name}: the PLY has no vertices")
    splat = all(k in cols for k in ("f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"))
    if splat:
        colors = 0.5 + C0 * np.stack([cols[f"f_dc_{i}"] for i in range(3)], -1).astype(np.float64)
        opacities = 1 / (1 + np.exp(-cols["opacity"].astype(np.float64)))
        scales = np.exp(np.stack([cols[f"scale_{i}"] for i in range(3)], -1).astype(np.float64))
        quats = np.stack([cols[f"rot_{i}"] for i in range(4)], -1).astype(np.float64)
        norm = np.linalg.norm(quats, axis=1, keepdims=True)
        quats = np.where(norm > 1e-12, quats / np.maximum(norm, 1e-12), np.array([1.0, 0, 0, 0]))
    else:
        if all(k in cols for k in ("red", "green", "blue")):
            rgb = np.stack([cols["red"], cols["green"], cols["blue"]], -1)
            colors = rgb / 255.0 if rgb.dtype.kind in "ui" else rgb.astype(np.float64)
        else:
            colors = np.full((n, 3), 0.8)
        opacities = (cols["alpha"] / 255.0 if cols["alpha"].dtype.kind in "ui" else cols["alpha"].astype(np.float64)) if "alpha" in cols else np.ones(n)
        if point_size is None:
            finite = means[np.isfinite(means).all(1)]
            diag = float(np.linalg.norm(finite.max(0) - finite.min(0))) if finite.shape[0] else 1.0
            point_size = max(diag / max(n, 1) ** (1 / 3) / 2, 1e-6)
        point_size = check_finite_number("point_size", point_size, low=1e-9, high=1e9)
        scales = np.full((n, 3), point_size)
        quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (n, 1))
    bad = ~(np.isfinite(means).all(1) & np.isfinite(colors).all(1) & np.isfinite(opacities) & np.isfinite(scales).all(1) & (scales > 0).all(1))
    if bad.all():
        raise ValueError(f"{name}: no vertex has finite position, colour, opacity and positive scale")
    keep = ~bad
    return GaussianField(
        means=torch.from_numpy(means[keep]).float()[None],
        colors=torch.from_numpy(np.clip(colors[keep], 0, 1)).float(),
        opacities=torch.from_numpy(np.clip(opacities[keep], 0, 1)).float(),
        scales=torch.from_numpy(scales[keep]).float(),
        quats=torch.from_numpy(quats[keep]).float(),
    )


# ---------------------------------------------------------------------------------------------------
# Camera paths
# ---------------------------------------------------------------------------------------------------


def _check_path(path) -> CameraPath:
    if not isinstance(path, CameraPath):
        raise ValueError(f"path: expected a CameraPath, got {type(path).__name__}")
    return path


def _check_fps(fps) -> float:
    return check_finite_number("fps", fps, low=1e-3, high=10000.0)


def _matrix(value, name: str, shape=(4, 4)) -> torch.Tensor:
    try:
        m = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a {shape[0]}x{shape[1]} matrix of numbers") from None
    if m.numel() == shape[0] * shape[1]:
        m = m.reshape(shape)
    elif shape == (4, 4) and m.numel() == 12:
        m = torch.cat([m.reshape(3, 4), torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    else:
        raise ValueError(f"{name}: expected {shape[0] * shape[1]} numbers, got {m.numel()}")
    if not bool(torch.isfinite(m).all()):
        raise ValueError(f"{name}: contains NaN/inf")
    return m


def _rigid_inverse(m: torch.Tensor) -> torch.Tensor:
    out = torch.eye(4, dtype=m.dtype).repeat(*m.shape[:-2], 1, 1)
    r = m[..., :3, :3]
    out[..., :3, :3] = r.transpose(-1, -2)
    out[..., :3, 3] = -(r.transpose(-1, -2) @ m[..., :3, 3:])[..., 0]
    return out


def _orthonormal(c2w: torch.Tensor) -> torch.Tensor:
    """Rotation part projected onto SO(3) (file precision), translation kept."""
    u, _, vh = torch.linalg.svd(c2w[..., :3, :3])
    out = c2w.clone()
    out[..., :3, :3] = u @ vh
    return out


def _c2w_cv(path: CameraPath) -> torch.Tensor:
    return _rigid_inverse(path.world_to_camera.detach().to("cpu", torch.float64))


def _path_from_c2w(c2w_cv: torch.Tensor, k: torch.Tensor, width: int, height: int) -> CameraPath:
    c2w_cv = _orthonormal(c2w_cv)
    if bool((torch.linalg.det(c2w_cv[:, :3, :3]) < 0).any()):
        raise ValueError("camera_to_world: a rotation has determinant -1 (a mirrored camera)")
    return CameraPath(k.float(), _rigid_inverse(c2w_cv).float(), width, height)


def camera_path_to_nerfstudio(path: CameraPath, *, fps: float = 24.0) -> dict:
    """nerfstudio's ``camera_path.json`` (what ``ns-render camera-path`` reads) for ``path``."""
    path = _check_path(path)
    fps = _check_fps(fps)
    c2w = _c2w_cv(path) @ _GL
    k = path.intrinsics.detach().to("cpu", torch.float64)
    fov = torch.rad2deg(2 * torch.atan(0.5 * path.height / k[:, 1, 1]))
    frames = [{"camera_to_world": [float(v) for v in c2w[t].reshape(-1)], "fov": float(fov[t]), "aspect": path.width / path.height} for t in range(path.num_frames)]
    out = {
        "camera_type": "perspective",
        "render_width": path.width,
        "render_height": path.height,
        "camera_path": frames,
        "fps": fps,
        "seconds": path.num_frames / fps,
        "smoothness_value": 0.0,
        "is_cycle": False,
        "crop": None,
        "keyframes": [],
    }
    cx, cy = (path.width - 1) / 2, (path.height - 1) / 2
    if bool(((k[:, 0, 2] - cx).abs() > 1e-3).any() | ((k[:, 1, 2] - cy).abs() > 1e-3).any() | ((k[:, 0, 0] - k[:, 1, 1]).abs() > 1e-6 * k[:, 1, 1]).any()):
        out["vid4d_note"] = "nerfstudio paths have a centred principal point and square pixels: the principal point offset / fx were dropped"
    return out


def camera_path_from_nerfstudio(d: dict) -> CameraPath:
    """A CameraPath from nerfstudio's ``camera_path.json`` (inverse of :func:`camera_path_to_nerfstudio`)."""
    if not isinstance(d, dict) or not isinstance(d.get("camera_path"), list) or not d["camera_path"]:
        raise ValueError("nerfstudio camera path: expected a dict with a non-empty 'camera_path' list (export it from the viewer's render panel)")
    width = check_positive_int("render_width", d.get("render_width"), maximum=16384)
    height = check_positive_int("render_height", d.get("render_height"), maximum=16384)
    if d.get("camera_type", "perspective") not in ("perspective", None):
        raise ValueError(f"nerfstudio camera path: only perspective cameras are supported, got {d.get('camera_type')!r}")
    c2w, ks = [], []
    for i, cam in enumerate(d["camera_path"]):
        if not isinstance(cam, dict) or "camera_to_world" not in cam or "fov" not in cam:
            raise ValueError(f"nerfstudio camera path: frame {i} needs 'camera_to_world' and 'fov'")
        c2w.append(_matrix(cam["camera_to_world"], f"camera_path[{i}].camera_to_world") @ _GL)
        fov = check_finite_number(f"camera_path[{i}].fov", cam["fov"], low=1e-3, high=179.999)
        f = 0.5 * height / math.tan(math.radians(fov) / 2)
        ks.append(torch.tensor([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float64))
    return _path_from_c2w(torch.stack(c2w), torch.stack(ks), width, height)


JSON_FORMAT = "vid4d_camera_path"


def camera_path_to_json(path: CameraPath, *, fps: float = 24.0) -> dict:
    """The pack's own camera JSON: per frame the 4x4 ``world_to_camera`` and ``camera_to_world`` (row-major
    nested lists, OpenCV axes) and the 3x3 ``intrinsics`` (pixels, pixel centres at integers)."""
    path = _check_path(path)
    w2c = path.world_to_camera.detach().to("cpu")
    c2w = _c2w_cv(path)
    k = path.intrinsics.detach().to("cpu")
    return {
        "format": JSON_FORMAT,
        "version": 1,
        "conventions": "OpenCV camera axes (x right, y down, z forward); world = the source camera at frame 0; "
        "intrinsics in pixels with (0, 0) the centre of the top-left pixel; matrices row-major",
        "width": path.width,
        "height": path.height,
        "fps": _check_fps(fps),
        "frames": [
            {
                "frame": t,
                "world_to_camera": w2c[t].tolist(),
                "camera_to_world": c2w[t].tolist(),
                "intrinsics": k[t].tolist(),
                "fov_horizontal_deg": math.degrees(2 * math.atan(0.5 * path.width / float(k[t, 0, 0]))),
            }
            for t in range(path.num_frames)
        ],
    }


def camera_path_from_json(d: dict) -> CameraPath:
    """Inverse of :func:`camera_path_to_json` (``world_to_camera`` is read; float32 values round-trip exactly)."""
    if not isinstance(d, dict) or d.get("format") != JSON_FORMAT or not isinstance(d.get("frames"), list) or not d["frames"]:
        raise ValueError(f"camera JSON: expected format {JSON_FORMAT!r} with a non-empty 'frames' list")
    width = check_positive_int("width", d.get("width"), maximum=16384)
    height = check_positive_int("height", d.get("height"), maximum=16384)
    w2c = torch.stack([_matrix(f.get("world_to_camera"), f"frames[{i}].world_to_camera") for i, f in enumerate(d["frames"])])
    k = torch.stack([_matrix(f.get("intrinsics"), f"frames[{i}].intrinsics", (3, 3)) for i, f in enumerate(d["frames"])])
    return CameraPath(k.float(), w2c.float(), width, height)


def camera_fps(d: dict, default: float = 24.0) -> float:
    """The frame rate a camera file states (nerfstudio, the pack's JSON, the Blender export), or ``default``."""
    value = d.get("fps", default) if isinstance(d, dict) else default
    try:
        return _check_fps(value)
    except ValueError:
        return default


# --- Blender ---------------------------------------------------------------------------------------

BLENDER_FORMAT = "vid4d_blender_camera"


def blender_camera(path: CameraPath, sensor_width: float = 36.0) -> dict:
    """Per frame: Blender ``matrix_world`` (row-major 16), lens (mm), shift_x/shift_y (see the module docstring)."""
    path = _check_path(path)
    sensor_width = check_finite_number("sensor_width", sensor_width, low=1e-3, high=1e4)
    m = BLENDER_FROM_OPENCV @ _c2w_cv(path) @ _GL
    k = path.intrinsics.detach().to("cpu", torch.float64)
    w, h = path.width, path.height
    return {
        "matrix_world": [[float(v) for v in m[t].reshape(-1)] for t in range(path.num_frames)],
        "lens": [float(v) for v in k[:, 0, 0] * sensor_width / w],
        "shift_x": [float(v) for v in ((w - 1) / 2 - k[:, 0, 2]) / w],
        "shift_y": [float(v) for v in (k[:, 1, 2] - (h - 1) / 2) / w],
    }


def _blender_scene_setup(width: int, height: int, fps: float, frame_start: int, count: int) -> str:
    fps_int = max(1, round(fps))
    return (
        "scene = bpy.context.scene\n"
        f"scene.render.resolution_x = {width}\n"
        f"scene.render.resolution_y = {height}\n"
        "scene.render.resolution_percentage = 100\n"
        "scene.render.pixel_aspect_x = 1.0\n"
        "scene.render.pixel_aspect_y = 1.0\n"
        f"scene.render.fps = {fps_int}\n"
        f"scene.render.fps_base = {fps_int / fps!r}  # fps = {fps:g}\n"
        f"scene.frame_start = {frame_start}\n"
        f"scene.frame_end = {frame_start + count - 1}\n"
    )


_BLENDER_SAVE = '''
# `blender --background --python this.py -- --save scene.blend` also saves the scene.
if "--" in sys.argv:
    args = sys.argv[sys.argv.index("--") + 1:]
    if "--save" in args:
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args[args.index("--save") + 1]))
'''


def camera_path_to_blender_script(
    path: CameraPath, *, fps: float = 24.0, frame_start: int = 1, sensor_width: float = 36.0, name: str = "Vid4D Camera", point_cloud: str | None = None
) -> str:
    """A Python script for Blender (2.8+) that builds the animated camera of ``path`` and makes it the scene camera.

    Run it in Blender's Text Editor, or ``blender --python camera.py`` (``-- --save scene.blend`` saves).
    Frame t of the path is Blender frame ``frame_start + t``; the scene gets the path's resolution and frame
    rate. ``point_cloud``: a coloured point-cloud PLY (:func:`save_point_cloud`; a path relative to the
    script's folder) to import with the same world change, so the points line up with the camera.
    Axis change and lens: see the module docstring.
    """
    path = _check_path(path)
    fps = _check_fps(fps)
    frame_start = int(frame_start)
    cam = blender_camera(path, sensor_width)
    data = json.dumps({"matrix_world": cam["matrix_world"], "lens": cam["lens"], "shift_x": cam["shift_x"], "shift_y": cam["shift_y"]})
    return f'''# Vid4D camera path for Blender: {path.num_frames} frames at {path.width}x{path.height}, {fps:g} fps.
# Run in Blender's Text Editor (Run Script) or: blender --python this_file.py
# Axes: Blender world (x, y, z) = Vid4D/OpenCV world (x, z, -y); the camera looks down its -Z with +Y up
# (OpenCV camera axes times diag(1, -1, -1)). Lens (mm) = focal_px * sensor_width / width (sensor fit
# horizontal); principal point -> shift_x = ((W-1)/2 - cx) / W, shift_y = (cy - (H-1)/2) / W.
import json
import os
import sys

import bpy
import mathutils

NAME = {name!r}
FRAME_START = {frame_start}
SENSOR_WIDTH = {float(sensor_width)!r}
POINT_CLOUD = {point_cloud!r}
DATA = json.loads({data!r})

{_blender_scene_setup(path.width, path.height, fps, frame_start, path.num_frames)}
cam_data = bpy.data.cameras.new(NAME)
cam_data.sensor_fit = "HORIZONTAL"
cam_data.sensor_width = SENSOR_WIDTH
cam_data.lens_unit = "MILLIMETERS"
cam = bpy.data.objects.new(NAME, cam_data)
scene.collection.objects.link(cam)
scene.camera = cam
cam.rotation_mode = "QUATERNION"
previous = None
for i, values in enumerate(DATA["matrix_world"]):
    frame = FRAME_START + i
    m = mathutils.Matrix([values[0:4], values[4:8], values[8:12], values[12:16]])
    location, rotation, _ = m.decompose()
    if previous is not None:
        rotation.make_compatible(previous)  # no flips between frames
    previous = rotation
    cam.location = location
    cam.rotation_quaternion = rotation
    cam.keyframe_insert("location", frame=frame)
    cam.keyframe_insert("rotation_quaternion", frame=frame)
    cam_data.lens = DATA["lens"][i]
    cam_data.shift_x = DATA["shift_x"][i]
    cam_data.shift_y = DATA["shift_y"][i]
    for prop in ("lens", "shift_x", "shift_y"):
        cam_data.keyframe_insert(prop, frame=frame)
for owner in (cam, cam_data):
    if owner.animation_data and owner.animation_data.action:
        for curve in owner.animation_data.action.fcurves:
            for key in curve.keyframe_points:
                key.interpolation = "LINEAR"
scene.frame_set(FRAME_START)

if POINT_CLOUD:
    folder = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
    ply = POINT_CLOUD if os.path.isabs(POINT_CLOUD) else os.path.join(folder, POINT_CLOUD)
    before = set(bpy.data.objects)
    bpy.ops.import_mesh.ply(filepath=ply)
    for obj in set(bpy.data.objects) - before:
        # The same world change as the camera: Vid4D/OpenCV (x, y, z) -> Blender (x, z, -y).
        obj.matrix_world = mathutils.Matrix(((1, 0, 0, 0), (0, 0, 1, 0), (0, -1, 0, 0), (0, 0, 0, 1))) @ obj.matrix_world
{_BLENDER_SAVE}'''


def blender_export_script(output: str = "vid4d_camera.json") -> str:
    """A Python script for Blender that writes the scene camera's animation over the scene's frame range
    as JSON (``format: vid4d_blender_camera``), which :func:`camera_path_from_blender` reads back.

    Run it in Blender (or ``blender scene.blend --background --python export.py -- --out camera.json``);
    the file goes next to the .blend (or the working folder) unless ``--out`` says otherwise.
    """
    return f'''# Export Blender's scene camera for Vid4D (Load Camera Path node, format auto or blender).
import json
import os
import sys

import bpy

out = {output!r}
if "--" in sys.argv:
    args = sys.argv[sys.argv.index("--") + 1:]
    if "--out" in args:
        out = args[args.index("--out") + 1]
if not os.path.isabs(out):
    out = os.path.join(bpy.path.abspath("//") or os.getcwd(), out)
scene = bpy.context.scene
cam = scene.camera
if cam is None or cam.type != "CAMERA":
    raise SystemExit("Vid4D export: the scene has no camera")
frames = []
for frame in range(scene.frame_start, scene.frame_end + 1):
    scene.frame_set(frame)
    m = cam.matrix_world
    frames.append({{
        "frame": frame,
        "matrix_world": [m[r][c] for r in range(4) for c in range(4)],
        "lens": cam.data.lens,
        "shift_x": cam.data.shift_x,
        "shift_y": cam.data.shift_y,
    }})
render = scene.render
result = {{
    "format": "{BLENDER_FORMAT}",
    "version": 1,
    "width": int(render.resolution_x * render.resolution_percentage / 100),
    "height": int(render.resolution_y * render.resolution_percentage / 100),
    "fps": render.fps / render.fps_base,
    "sensor_fit": cam.data.sensor_fit,
    "sensor_width": cam.data.sensor_width,
    "sensor_height": cam.data.sensor_height,
    "pixel_aspect_x": render.pixel_aspect_x,
    "pixel_aspect_y": render.pixel_aspect_y,
    "camera_type": cam.data.type,
    "frames": frames,
}}
with open(out, "w") as f:
    json.dump(result, f)
print("Vid4D: wrote", out)
'''


def camera_path_from_blender(d: dict) -> CameraPath:
    """A CameraPath from the JSON :func:`blender_export_script` writes (the inverse of the Blender script)."""
    if not isinstance(d, dict) or d.get("format") != BLENDER_FORMAT or not isinstance(d.get("frames"), list) or not d["frames"]:
        raise ValueError(f"Blender camera JSON: expected format {BLENDER_FORMAT!r} with a non-empty 'frames' list (run the export script in Blender)")
    if d.get("camera_type", "PERSP") != "PERSP":
        raise ValueError(f"Blender camera JSON: only perspective cameras are supported, got {d.get('camera_type')!r}")
    width = check_positive_int("width", d.get("width"), maximum=16384)
    height = check_positive_int("height", d.get("height"), maximum=16384)
    aspect = check_finite_number("pixel_aspect_y", d.get("pixel_aspect_y", 1.0), low=1e-6) / check_finite_number("pixel_aspect_x", d.get("pixel_aspect_x", 1.0), low=1e-6)
    fit = d.get("sensor_fit", "HORIZONTAL")
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= height else "VERTICAL"
    sensor = check_finite_number("sensor_width", d.get("sensor_width", 36.0), low=1e-6) if fit == "HORIZONTAL" else check_finite_number("sensor_height", d.get("sensor_height", 24.0), low=1e-6)
    # Blender's sensor and shift refer to the fitted image side (width, or height for a vertical fit).
    side = width if fit == "HORIZONTAL" else height
    to_cv = torch.linalg.inv(BLENDER_FROM_OPENCV)
    c2w, ks = [], []
    for i, f in enumerate(d["frames"]):
        m = _matrix(f.get("matrix_world"), f"frames[{i}].matrix_world")
        c2w.append(to_cv @ _orthonormal(m) @ _GL)
        lens = check_finite_number(f"frames[{i}].lens", f.get("lens"), low=1e-6)
        fpx = lens / sensor * side
        fx, fy = (fpx, fpx / aspect) if fit == "HORIZONTAL" else (fpx * aspect, fpx)
        cx = (width - 1) / 2 - check_finite_number(f"frames[{i}].shift_x", f.get("shift_x", 0.0)) * side
        cy = (height - 1) / 2 + check_finite_number(f"frames[{i}].shift_y", f.get("shift_y", 0.0)) * side
        ks.append(torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64))
    return _path_from_c2w(torch.stack(c2w), torch.stack(ks), width, height)


def load_camera_file(path, fmt: str = "auto") -> tuple[CameraPath, float]:
    """A camera path file (nerfstudio, the pack's JSON, or the Blender export) and its frame rate."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: not valid JSON ({exc})") from None
    if fmt == "auto":
        if isinstance(d, dict) and d.get("format") == JSON_FORMAT:
            fmt = "json"
        elif isinstance(d, dict) and d.get("format") == BLENDER_FORMAT:
            fmt = "blender"
        elif isinstance(d, dict) and "camera_path" in d:
            fmt = "nerfstudio"
        else:
            raise ValueError(f"{path.name}: not a camera path this pack reads (nerfstudio camera_path.json, {JSON_FORMAT}, or {BLENDER_FORMAT})")
    readers = {"nerfstudio": camera_path_from_nerfstudio, "json": camera_path_from_json, "blender": camera_path_from_blender}
    if fmt not in readers:
        raise ValueError(f"format: expected one of auto, {', '.join(readers)}, got {fmt!r}")
    return readers[fmt](d), camera_fps(d)


# ---------------------------------------------------------------------------------------------------
# Depth
# ---------------------------------------------------------------------------------------------------


def _depth_arrays(depth) -> tuple[torch.Tensor, torch.Tensor, str]:
    if isinstance(depth, DepthVideo):
        d = depth.as_depth()
        values = d.depth.detach().to("cpu", torch.float64)
        valid = (values > 0) if d.valid is None else d.valid.detach().to("cpu") & (values > 0)
        return values, valid, d.kind
    check_tensor("depth", depth, ("T", "H", "W"), finite=False)
    values = depth.detach().to("cpu", torch.float64)
    return values, torch.isfinite(values) & (values > 0), "metric"


def save_depth_png(depth, folder, *, prefix: str = "depth", scale: float | None = None, progress=None) -> tuple[list[Path], float]:
    """Depth as 16-bit PNGs: value = round(depth · scale), 0 = unknown; returns (paths, scale).

    ``scale`` None: 1000 (millimetres when the depth is in metres) if the deepest value fits in 16 bits,
    else the largest scale that fits. A ``<prefix>.json`` beside the frames records the scale.
    """
    import cv2

    values, valid, kind = _depth_arrays(depth)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    deepest = float(values[valid].max()) if bool(valid.any()) else 1.0
    if scale is None:
        scale = 1000.0 if deepest * 1000.0 <= 65535 else 65535.0 / deepest
    scale = check_finite_number("scale", scale, low=1e-9, high=1e12)
    paths = []
    for t in range(values.shape[0]):
        q = torch.where(valid[t], (values[t] * scale).round().clamp(1, 65535), torch.zeros_like(values[t]))
        p = folder / f"{prefix}_{t:05d}.png"
        if not cv2.imwrite(str(p), q.numpy().astype(np.uint16)):
            raise OSError(f"could not write {p}")
        paths.append(p)
        if progress is not None:
            progress(t + 1)
    meta = {"format": "vid4d_depth_png16", "scale": scale, "meaning": "depth = value / scale (camera z); 0 = unknown", "kind": kind, "clipped": deepest * scale > 65535, "frames": [p.name for p in paths]}
    (folder / f"{prefix}.json").write_text(json.dumps(meta, indent=1))
    return paths, scale


def load_depth_png(paths, scale: float) -> DepthVideo:
    """16-bit depth PNGs (as :func:`save_depth_png` writes them) back to a DepthVideo (0 = unknown)."""
    import cv2

    frames = []
    for p in paths:
        a = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if a is None or a.dtype != np.uint16 or a.ndim != 2:
            raise ValueError(f"{Path(p).name}: expected a single-channel 16-bit PNG")
        frames.append(torch.from_numpy(a.astype(np.float64)))
    raw = torch.stack(frames)
    return DepthVideo((raw / scale).float(), kind="metric", valid=raw > 0)


def exr_available() -> bool:
    try:
        import OpenEXR  # noqa: F401
    except ImportError:
        return False
    return True


def save_depth_exr(depth, folder, *, prefix: str = "depth", progress=None) -> list[Path]:
    """Depth as OpenEXR float32 (one ``Z`` channel per file, ZIP compressed; 0 = unknown).

    Needs the ``openexr`` package (``pip install openexr``, or the pack's ``[exr]`` extra).
    """
    try:
        import OpenEXR
    except ImportError:
        raise ValueError("OpenEXR export needs the 'openexr' package: pip install openexr (or pip install vid4d[exr]); 16-bit PNG works without it") from None
    values, valid, _ = _depth_arrays(depth)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    for t in range(values.shape[0]):
        z = torch.where(valid[t], values[t], torch.zeros_like(values[t])).numpy().astype(np.float32)
        p = folder / f"{prefix}_{t:05d}.exr"
        with OpenEXR.File(header, {"Z": z}) as f:
            f.write(str(p))
        paths.append(p)
        if progress is not None:
            progress(t + 1)
    return paths


def load_depth_exr(paths) -> DepthVideo:
    import OpenEXR

    frames = []
    for p in paths:
        with OpenEXR.File(str(p)) as f:
            channels = f.channels()
            if "Z" not in channels:
                raise ValueError(f"{Path(p).name}: no 'Z' channel")
            frames.append(torch.from_numpy(np.array(channels["Z"].pixels, dtype=np.float32)))
    z = torch.stack(frames)
    return DepthVideo(z, kind="metric", valid=z > 0)


# ---------------------------------------------------------------------------------------------------
# Tracks
# ---------------------------------------------------------------------------------------------------


def _track_subset(tracks: Tracks3D, stride: int):
    stride = check_positive_int("stride", stride, maximum=4096)
    o = stride // 2 if stride > 1 else 0
    return (slice(None), slice(o, None, stride), slice(o, None, stride)), stride


def tracks_world(tracks: Tracks3D, camera: CameraPath | None = None) -> torch.Tensor:
    """``[T, H, W, 3]`` track points: in the world of ``camera`` (camera_to_world[t] · X_t) when given,
    else in each frame's own camera (the pseudo 4D convention)."""
    xyz = tracks.xyz().double()
    if camera is None:
        return xyz.float()
    if camera.num_frames != tracks.num_frames:
        raise ValueError(f"camera has {camera.num_frames} frames but the tracks {tracks.num_frames}")
    c2w = _c2w_cv(camera).to(xyz.device)
    return (torch.einsum("tij,thwj->thwi", c2w[:, :3, :3], xyz) + c2w[:, None, None, :3, 3]).float()


def save_tracks_npz(tracks: Tracks3D, path, *, stride: int = 1, camera: CameraPath | None = None) -> Path:
    """The tracks (every ``stride``-th reference pixel in x and y) as a compressed NPZ: ``uv [T, h, w, 2]``,
    ``depth``, ``visibility`` (bool), ``intrinsics``, ``ref_frame``, ``depth_known``, ``ref_pixels [h, w, 2]``
    and ``xyz [T, h, w, 3]`` (world points when ``camera`` is given, else per-frame camera points)."""
    sel, stride = _track_subset(tracks, stride)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        uv=tracks.uv[sel].detach().cpu().float().numpy(),
        depth=tracks.depth[sel].detach().cpu().float().numpy(),
        visibility=tracks.visible()[sel].detach().cpu().numpy(),
        intrinsics=tracks.intrinsics.detach().cpu().float().numpy(),
        ref_frame=np.int64(tracks.ref_frame),
        depth_known=np.bool_(tracks.depth_known),
        stride=np.int64(stride),
        ref_pixels=tracks.uv[tracks.ref_frame][sel[1:]].detach().cpu().float().numpy(),
        xyz=tracks_world(tracks, camera)[sel].cpu().numpy(),
        world=np.bool_(camera is not None),
    )
    return path


def load_tracks_npz(path) -> Tracks3D:
    """Tracks written by :func:`save_tracks_npz` (at its stride: H, W are the subsampled grid's)."""
    with np.load(Path(path)) as z:
        for k in ("uv", "depth", "visibility", "intrinsics", "ref_frame"):
            if k not in z:
                raise ValueError(f"{Path(path).name}: no '{k}' array (not a Vid4D tracks file)")
        return Tracks3D(
            uv=torch.from_numpy(z["uv"]),
            depth=torch.from_numpy(z["depth"]),
            visibility=torch.from_numpy(z["visibility"]).bool(),
            intrinsics=torch.from_numpy(z["intrinsics"]),
            ref_frame=int(z["ref_frame"]),
            depth_known=bool(z["depth_known"]) if "depth_known" in z else True,
        )


_MAX_CSV_ROWS = 20_000_000


def save_tracks_csv(tracks: Tracks3D, path, *, stride: int = 8, camera: CameraPath | None = None) -> Path:
    """One row per track and frame: ``track,ref_x,ref_y,frame,x,y,depth,visible,X,Y,Z`` (X, Y, Z as in
    :func:`save_tracks_npz`'s ``xyz``). Refused above 20 million rows (raise ``stride``)."""
    sel, stride = _track_subset(tracks, stride)
    uv = tracks.uv[sel].detach().cpu().double()
    t_count, h, w = uv.shape[:3]
    n = h * w
    if t_count * n > _MAX_CSV_ROWS:
        raise ValueError(f"tracks CSV: {t_count * n} rows is more than {_MAX_CSV_ROWS}; raise the stride (now {stride})")
    depth = tracks.depth[sel].detach().cpu().double().reshape(t_count, n)
    vis = tracks.visible()[sel].detach().cpu().reshape(t_count, n)
    xyz = tracks_world(tracks, camera)[sel].cpu().double().reshape(t_count, n, 3)
    ref = uv[tracks.ref_frame].reshape(n, 2)
    ids = np.tile(np.arange(n), t_count)
    frames = np.repeat(np.arange(t_count), n)
    table = np.column_stack([
        ids, np.tile(ref[:, 0].numpy(), t_count), np.tile(ref[:, 1].numpy(), t_count), frames,
        uv.reshape(-1, 2).numpy(), depth.reshape(-1).numpy(), vis.reshape(-1).numpy().astype(np.int64), xyz.reshape(-1, 3).numpy(),
    ])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, table, delimiter=",", header="track,ref_x,ref_y,frame,x,y,depth,visible,X,Y,Z", comments="", fmt=["%d", "%.3f", "%.3f", "%d", "%.4f", "%.4f", "%.6g", "%d", "%.6g", "%.6g", "%.6g"])
    return path


def tracks_to_blender_script(tracks: Tracks3D, *, camera: CameraPath | None = None, max_empties: int = 300, fps: float = 24.0, frame_start: int = 1, size: float | None = None) -> str:
    """A Blender script that makes one animated empty per track for an even subset of at most
    ``max_empties`` reference pixels (hidden while the track is occluded), in a collection "Vid4D Tracks".

    Positions: :func:`tracks_world` (pass the solved ``camera`` so the tracks live in the same world as the
    exported camera), with the Blender world change of the module docstring.
    """
    max_empties = check_positive_int("max_empties", max_empties, maximum=20000)
    fps = _check_fps(fps)
    h, w = tracks.height, tracks.width
    stride = max(1, math.ceil(math.sqrt(h * w / max_empties)))
    sel, _ = _track_subset(tracks, stride)
    pts = tracks_world(tracks, camera)[sel].double()
    t_count = pts.shape[0]
    pts = pts.reshape(t_count, -1, 3)
    vis = tracks.visible()[sel].reshape(t_count, -1)
    keep = vis[tracks.ref_frame] & (tracks.depth[sel].reshape(t_count, -1)[tracks.ref_frame] > 0)
    pts, vis = pts[:, keep][:, :max_empties], vis[:, keep][:, :max_empties]
    bl = pts @ BLENDER_FROM_OPENCV[:3, :3].T
    if size is None:
        extent = (bl.reshape(-1, 3).quantile(0.95, 0) - bl.reshape(-1, 3).quantile(0.05, 0)).norm() if bl.numel() else torch.tensor(1.0)
        size = max(float(extent) / 200, 1e-4)
    data = json.dumps({"xyz": [[[round(float(v), 6) for v in bl[t, n]] for t in range(t_count)] for n in range(bl.shape[1])], "visible": [[bool(vis[t, n]) for t in range(t_count)] for n in range(bl.shape[1])]})
    return f'''# Vid4D tracks for Blender: {bl.shape[1]} empties over {t_count} frames ({'world of the solved camera' if camera is not None else 'each frame in its own camera'}).
# Run in Blender's Text Editor or: blender --python this_file.py
# Blender world (x, y, z) = Vid4D/OpenCV (x, z, -y).
import json
import os
import sys

import bpy

FRAME_START = {int(frame_start)}
DATA = json.loads({data!r})

{_blender_scene_setup(w, h, fps, int(frame_start), t_count)}
collection = bpy.data.collections.new("Vid4D Tracks")
scene.collection.children.link(collection)
for n, (path, seen) in enumerate(zip(DATA["xyz"], DATA["visible"])):
    empty = bpy.data.objects.new(f"track_{{n:05d}}", None)
    empty.empty_display_type = "SPHERE"
    empty.empty_display_size = {size!r}
    collection.objects.link(empty)
    for i, (xyz, visible) in enumerate(zip(path, seen)):
        frame = FRAME_START + i
        empty.location = xyz
        empty.keyframe_insert("location", frame=frame)
        empty.hide_viewport = empty.hide_render = not visible
        empty.keyframe_insert("hide_viewport", frame=frame)
        empty.keyframe_insert("hide_render", frame=frame)
scene.frame_set(FRAME_START)
{_BLENDER_SAVE}'''
