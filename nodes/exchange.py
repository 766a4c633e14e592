"""Export to and import from other tools: splat viewers (PLY), nerfstudio, Blender, depth images, track tables.

Writers put everything of one export in a new numbered folder of the output folder
(``<prefix>_00001/``); readers take files from the input folder only. Conventions: py/exchange.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..py import exchange as ex
from ..py import gaussians as gs
from ..py.camera import draw_camera_path
from ..py.checks import check_finite_number
from . import preview, runtime
from .common import CAMERA_PATH, DEPTH, GAUSSIANS, TRACKS3D, camera_paths, category, expect, info, input_file, input_files, output_folder

CAMERA_FORMATS = ["all", "blender", "nerfstudio", "json"]
PLY_FORMATS = ["gaussians_3dgs", "points"]
DEPTH_FORMATS = ["png16", "exr"]
TRACK_FORMATS = ["npz", "csv", "blender"]


def _written(folder: Path, subfolder: str, files: list[Path], *lines: str) -> dict:
    """The ``ui`` of an export node: its text, and the files relative to the output folder."""
    rel = [f"{subfolder}/{p.relative_to(folder).as_posix()}" for p in files]
    shown = rel[:6] + ([f"... {len(rel) - 6} more"] if len(rel) > 6 else [])
    return {**info(*lines, f"in {folder}:", *shown), "vid4d_files": rel}


class Vid4DExportGaussians:
    DESCRIPTION = (
        "Write the Gaussian field to the output folder, one PLY per time step: gaussians_3dgs is the standard 3D Gaussian "
        "Splatting layout (x y z, normals, f_dc_0..2, opacity as a logit, log scales, rot_0..3 as w x y z) that gsplat-based, "
        "SuperSplat and web splat viewers open; points is a plain coloured point cloud (Blender, MeshLab, CloudCompare). "
        "Without a camera each time step stays in the source camera's frame at that time (the pseudo 4D field); connect "
        "the solved source camera (Estimate Camera) to place every time step in one world."
    )
    CATEGORY = category("export")
    FUNCTION = "export"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("folder",)
    OUTPUT_TOOLTIPS = ("the folder the PLY files were written to",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS,),
                "filename_prefix": ("STRING", {"default": "vid4d/splat", "tooltip": "folder name in the output folder ('/' makes sub-folders); a number is added"}),
                "format": (PLY_FORMATS, {"default": "gaussians_3dgs"}),
                "frame": ("INT", {"default": -1, "min": -1, "max": 100000, "step": 1, "tooltip": "time step to write (-1 = every time step, one file each)"}),
                "sh_degree": ([0, 3], {"default": 0, "tooltip": "0: colour only (what web viewers read); 3: also INRIA's 45 f_rest zeros (its own loader requires them)"}),
                "drop_transparent": ("BOOLEAN", {"default": True, "tooltip": "leave out Gaussians that are invisible (opacity 0) at that time step"}),
            },
            "optional": {
                "camera": (CAMERA_PATH, {"tooltip": "the source camera (Estimate Camera): places each time step in its world"}),
            },
        }

    def export(self, gaussians, filename_prefix, format, frame, sh_degree, drop_transparent, camera=None):
        field = expect(gaussians, GAUSSIANS, "gaussians")
        if format not in PLY_FORMATS:
            raise ValueError(f"format: expected one of {PLY_FORMATS}, got {format!r}")
        if frame >= field.num_frames:
            raise ValueError(f"frame {frame}: the field has {field.num_frames} time step(s) (0..{field.num_frames - 1}, or -1 for all)")
        if camera is not None:
            field = gs.place_in_world(field, camera_paths(camera, "camera")[0])
        steps = list(range(field.num_frames)) if frame < 0 else [int(frame)]
        folder, sub = output_folder(filename_prefix)
        progress = runtime.Progress(len(steps), "export PLY")
        if format == "gaussians_3dgs":
            files = ex.save_ply_sequence(field, folder, sh_degree=int(sh_degree), drop_transparent=drop_transparent, frames=steps, progress=progress.callback())
        else:
            files = []
            for done, t in enumerate(steps, start=1):
                a = field.at(t)
                keep = a["opacities"] > 0 if drop_transparent else torch.ones_like(a["opacities"], dtype=torch.bool)
                files.append(ex.save_point_cloud(a["means"][keep], folder / f"points_{t:05d}.ply", a["colors"][keep]))
                progress.set(done)
        where = "in the solved camera's world" if camera is not None else "each time step in the source camera's frame"
        ui = _written(folder, sub, files, f"{format}: {len(files)} PLY file(s), {field.num_gaussians} Gaussians, {where}")
        return {"ui": ui, "result": (str(folder),)}


class Vid4DExportCamera:
    DESCRIPTION = (
        "Write a camera path (or each camera of a rig) to the output folder: a Blender script that builds the animated "
        "camera (run it in Blender's Text Editor or with blender --python), with a second script that exports Blender's "
        "camera back for Load Camera Path; nerfstudio's camera_path.json (ns-render camera-path); and JSON with per-frame "
        "4x4 matrices and intrinsics. Blender gets Z up (Blender x, y, z = x, z, -y of the source camera's OpenCV frame), "
        "the lens in mm for the sensor width, the principal point as lens shift, the frame rate and range. Connect the "
        "Gaussian field to also write its first time step as a point cloud the Blender script imports, lined up."
    )
    CATEGORY = category("export")
    FUNCTION = "export"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("folder",)
    OUTPUT_TOOLTIPS = ("the folder the camera files were written to",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "camera": (CAMERA_PATH, {"tooltip": "a camera path or rig (Estimate Camera, CameraPath, Load Camera Path)"}),
                "filename_prefix": ("STRING", {"default": "vid4d/camera", "tooltip": "folder name in the output folder ('/' makes sub-folders); a number is added"}),
                "format": (CAMERA_FORMATS, {"default": "all"}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.01, "round": 0.001, "tooltip": "frame rate written to the files"}),
                "frame_start": ("INT", {"default": 1, "min": -100000, "max": 100000, "step": 1, "tooltip": "Blender frame of the path's first frame"}),
                "sensor_width": ("FLOAT", {"default": 36.0, "min": 0.1, "max": 1000.0, "step": 0.1, "round": 0.01, "tooltip": "Blender sensor width in mm (the lens in mm follows from it)"}),
            },
            "optional": {
                "gaussians": (GAUSSIANS, {"tooltip": "optional: its first time step is written as points.ply and imported by the Blender script"}),
            },
        }

    def export(self, camera, filename_prefix, format, fps, frame_start, sensor_width, gaussians=None):
        paths = camera_paths(camera, "camera")
        if format not in CAMERA_FORMATS:
            raise ValueError(f"format: expected one of {CAMERA_FORMATS}, got {format!r}")
        fps = check_finite_number("fps", fps, low=0.01, high=1000.0)
        folder, sub = output_folder(filename_prefix)
        files: list[Path] = []
        points = None
        if gaussians is not None and format in ("all", "blender"):
            a = expect(gaussians, GAUSSIANS, "gaussians").at(0)
            keep = a["opacities"] > 0
            points = ex.save_point_cloud(a["means"][keep], folder / "points.ply", a["colors"][keep])
            files.append(points)
        for i, path in enumerate(paths):
            stem = "camera" if len(paths) == 1 else f"camera_{i:02d}"
            if format in ("all", "blender"):
                script = ex.camera_path_to_blender_script(path, fps=fps, frame_start=frame_start, sensor_width=sensor_width, name=f"Vid4D {stem}", point_cloud=points.name if points is not None and i == 0 else None)
                files.append(_write(folder / f"{stem}_blender.py", script))
            if format in ("all", "nerfstudio"):
                files.append(_write(folder / f"{stem}_path.json" if len(paths) > 1 else folder / "camera_path.json", json.dumps(ex.camera_path_to_nerfstudio(path, fps=fps), indent=1)))
            if format in ("all", "json"):
                files.append(_write(folder / f"{stem}.json", json.dumps(ex.camera_path_to_json(path, fps=fps), indent=1)))
        if format in ("all", "blender"):
            files.append(_write(folder / "blender_export_camera.py", ex.blender_export_script()))
        first = paths[0]
        ui = _written(folder, sub, files, f"{len(paths)} camera(s) x {first.num_frames} frames at {first.width}x{first.height}, {fps:g} fps ({format})")
        return {"ui": ui, "result": (str(folder),)}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class Vid4DExportDepth:
    DESCRIPTION = (
        "Write a depth video to the output folder: 16-bit PNGs (value = depth x scale, 0 = unknown; the scale is in "
        "depth.json: 1000 = millimetres for metric depth, auto-fitted when that would overflow) or OpenEXR float32 "
        "(channel Z, for Nuke / After Effects / Blender compositing; needs the openexr package)."
    )
    CATEGORY = category("export")
    FUNCTION = "export"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("folder",)
    OUTPUT_TOOLTIPS = ("the folder the depth frames were written to",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "depth": (DEPTH,),
                "filename_prefix": ("STRING", {"default": "vid4d/depth", "tooltip": "folder name in the output folder; a number is added"}),
                "format": (DEPTH_FORMATS, {"default": "png16"}),
                "scale": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e9, "step": 1.0, "round": 0.0001, "tooltip": "png16: value per depth unit (0 = 1000 if the deepest value fits, else the largest that fits)"}),
            }
        }

    def export(self, depth, filename_prefix, format, scale):
        video = expect(depth, DEPTH, "depth")
        if format not in DEPTH_FORMATS:
            raise ValueError(f"format: expected one of {DEPTH_FORMATS}, got {format!r}")
        if format == "exr" and not ex.exr_available():
            raise ValueError("format exr needs the 'openexr' package (pip install openexr); png16 works without it")
        folder, sub = output_folder(filename_prefix)
        progress = runtime.Progress(video.num_frames, "export depth")
        if format == "png16":
            files, used = ex.save_depth_png(video, folder, scale=scale if scale > 0 else None, progress=progress.callback())
            files = files + [folder / "depth.json"]
            line = f"png16: {video.num_frames} frames, value = depth x {used:.6g}"
        else:
            files = ex.save_depth_exr(video, folder, progress=progress.callback())
            line = f"exr: {video.num_frames} frames, float32 channel Z"
        return {"ui": _written(folder, sub, files, line), "result": (str(folder),)}


class Vid4DExportTracks:
    DESCRIPTION = (
        "Write the 3D tracks to the output folder: NPZ (uv, depth, visibility, intrinsics, 3D points), CSV (one row per "
        "track and frame), or a Blender script that makes an animated empty per track for an even subset (hidden while "
        "occluded). Connect the solved source camera to put the 3D points in its world (so they line up with the exported camera)."
    )
    CATEGORY = category("export")
    FUNCTION = "export"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("the written file",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "tracks": (TRACKS3D,),
                "filename_prefix": ("STRING", {"default": "vid4d/tracks", "tooltip": "folder name in the output folder; a number is added"}),
                "format": (TRACK_FORMATS, {"default": "npz"}),
                "stride": ("INT", {"default": 4, "min": 1, "max": 256, "step": 1, "tooltip": "npz/csv: every n-th reference pixel in x and y"}),
                "max_empties": ("INT", {"default": 300, "min": 1, "max": 20000, "step": 1, "tooltip": "blender: at most this many tracks (an even grid)"}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.01, "round": 0.001}),
                "frame_start": ("INT", {"default": 1, "min": -100000, "max": 100000, "step": 1, "tooltip": "Blender frame of the first frame"}),
            },
            "optional": {
                "camera": (CAMERA_PATH, {"tooltip": "the source camera (Estimate Camera): 3D points in its world"}),
            },
        }

    def export(self, tracks, filename_prefix, format, stride, max_empties, fps, frame_start, camera=None):
        tracks = expect(tracks, TRACKS3D, "tracks")
        cam = camera_paths(camera, "camera")[0] if camera is not None else None
        if format not in TRACK_FORMATS:
            raise ValueError(f"format: expected one of {TRACK_FORMATS}, got {format!r}")
        folder, sub = output_folder(filename_prefix)
        if format == "npz":
            path = ex.save_tracks_npz(tracks, folder / "tracks.npz", stride=stride, camera=cam)
        elif format == "csv":
            path = ex.save_tracks_csv(tracks, folder / "tracks.csv", stride=stride, camera=cam)
        else:
            path = _write(folder / "tracks_blender.py", ex.tracks_to_blender_script(tracks, camera=cam, max_empties=max_empties, fps=fps, frame_start=frame_start))
        where = "world of the connected camera" if cam is not None else "each frame's camera"
        return {"ui": _written(folder, sub, [path], f"{format}: {tracks.num_frames} frames, points in the {where}"), "result": (str(path),)}


def _file_hash(name: str, extensions: tuple[str, ...]) -> str:
    try:
        p = input_file(name, extensions)
    except ValueError:
        return ""
    st = p.stat()
    return hashlib.sha256(f"{p}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()


_CAMERA_EXT = (".json",)
_PLY_EXT = (".ply",)


class Vid4DLoadCameraPath:
    DESCRIPTION = (
        "Load a camera path from the input folder: nerfstudio's camera_path.json, Vid4D's camera JSON, or the JSON that "
        "Vid4D's Blender export script writes from a Blender camera (auto tells them apart). The path comes in the source "
        "camera's OpenCV axes, ready for Render Gaussians."
    )
    CATEGORY = category("camera")
    FUNCTION = "load"
    RETURN_TYPES = (CAMERA_PATH, "IMAGE", "FLOAT", "INT")
    RETURN_NAMES = ("camera", "preview", "fps", "num_frames")
    OUTPUT_TOOLTIPS = ("the camera path", "top and side view of the path", "the file's frame rate (24 if it has none)", "frames in the path")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": (input_files(_CAMERA_EXT), {"tooltip": "a .json in the input folder (sub-folders allowed)"}),
                "format": (["auto", "nerfstudio", "json", "blender"], {"default": "auto"}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, file, format="auto"):
        try:
            input_file(file, _CAMERA_EXT)
        except ValueError as exc:
            return str(exc)
        return True

    @classmethod
    def IS_CHANGED(cls, file, format="auto"):
        return _file_hash(file, _CAMERA_EXT) + format

    def load(self, file, format):
        path, fps = ex.load_camera_file(input_file(file, _CAMERA_EXT), format)
        image = draw_camera_path(path)[None]
        text = f"{Path(file).name}: {path.num_frames} frames at {path.width}x{path.height}, {fps:g} fps"
        ui = {**info(text), "vid4d_path": [preview.path_payload(path, text=text)]}
        return {"ui": ui, "result": (path, image, float(fps), int(path.num_frames))}


class Vid4DLoadGaussiansPLY:
    DESCRIPTION = (
        "Load a PLY from the input folder as a static Gaussian field: a 3D Gaussian Splatting file (from Vid4D, gsplat, "
        "INRIA, nerfstudio's splatfacto export...; colour from the DC term) or a plain point cloud (round Gaussians of "
        "point_size). Re-shoot it with CameraPath + Render Gaussians. Its axes are read as OpenCV's (x right, y down, z forward)."
    )
    CATEGORY = category("gaussians")
    FUNCTION = "load"
    RETURN_TYPES = (GAUSSIANS,)
    RETURN_NAMES = ("gaussians",)
    OUTPUT_TOOLTIPS = ("the field (T = 1)",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": (input_files(_PLY_EXT), {"tooltip": "a .ply in the input folder (sub-folders allowed)"}),
                "point_size": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e6, "step": 0.001, "round": 0.00001, "tooltip": "plain point clouds: Gaussian std in scene units (0 = half the mean point spacing)"}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, file, point_size=0.0):
        try:
            input_file(file, _PLY_EXT)
        except ValueError as exc:
            return str(exc)
        return True

    @classmethod
    def IS_CHANGED(cls, file, point_size=0.0):
        return _file_hash(file, _PLY_EXT) + str(point_size)

    def load(self, file, point_size):
        field = ex.load_ply(input_file(file, _PLY_EXT), point_size=point_size if point_size > 0 else None)
        text = f"{Path(file).name}: {field.num_gaussians} Gaussians"
        ui = {**info(text), "vid4d_points": [preview.field_points(field)]}
        return {"ui": ui, "result": (field,)}


NODE_CLASS_MAPPINGS = {
    "Vid4DExportGaussians": Vid4DExportGaussians,
    "Vid4DExportCamera": Vid4DExportCamera,
    "Vid4DExportDepth": Vid4DExportDepth,
    "Vid4DExportTracks": Vid4DExportTracks,
    "Vid4DLoadCameraPath": Vid4DLoadCameraPath,
    "Vid4DLoadGaussiansPLY": Vid4DLoadGaussiansPLY,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "Vid4DExportGaussians": "Export Gaussians PLY (Vid4D)",
    "Vid4DExportCamera": "Export Camera (Blender / nerfstudio / JSON)",
    "Vid4DExportDepth": "Export Depth (PNG16 / EXR)",
    "Vid4DExportTracks": "Export Tracks (NPZ / CSV / Blender)",
    "Vid4DLoadCameraPath": "Load Camera Path (nerfstudio / Blender / JSON)",
    "Vid4DLoadGaussiansPLY": "Load Gaussians PLY (Vid4D)",
}
