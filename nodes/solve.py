"""Vid4DEstimateCamera: the source camera (pose per frame, focal length) and the moving objects, from dense tracks."""

from __future__ import annotations

import json

import torch

from ..py import solve as sv
from ..py.camera import draw_camera_path
from . import preview, runtime
from .common import CAMERA_PATH, DEPTH, TRACKS3D, category, expect, info


class Vid4DEstimateCamera:
    DESCRIPTION = (
        "Solve the source video's camera from dense tracks: a pose per frame (frame 0 = identity, so it plugs in wherever a "
        "source camera goes), the focal length (estimated unless fov is set), and which reference pixels are the static "
        "scene and which move. With depth in the tracks the scale is the depth's (PnP in RANSAC + bundle adjustment); "
        "without depth (DenseTrack3D with no depth: tracks on the plane z = 1) it is structure from motion on the 2D tracks "
        "(essential matrix, triangulation, bundle adjustment) and the depth output is the triangulated depth from motion of "
        "the static scene (scale-free: median depth 1; unknown on moving objects). A camera that only turns is reported."
    )
    CATEGORY = category("camera")
    FUNCTION = "solve"
    RETURN_TYPES = (CAMERA_PATH, "MASK", "MASK", DEPTH, "IMAGE", "STRING")
    RETURN_NAMES = ("camera", "static_mask", "moving_mask", "depth", "path_preview", "report")
    OUTPUT_TOOLTIPS = (
        "the solved source camera per frame (OpenCV axes, frame 0 = identity)",
        "1 on reference pixels of the static scene",
        "1 on reference pixels that move on their own (the complement of static_mask)",
        "without depth in the tracks: the depth from motion (relative, valid where triangulated); with depth: the depth input if connected, else the tracks' own depth per frame",
        "top and side view of the solved path with the static scene's points",
        "the solve's figures as JSON (mode, focal, inlier ratio, reprojection error, notes)",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "tracks": (TRACKS3D, {"tooltip": "dense tracks (DenseTrack3D, Sample Scene), with or without depth"}),
                "fov": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 179.0, "step": 0.1, "round": 0.01, "tooltip": "horizontal field of view in degrees if known (0 = estimate the focal length)"}),
                "max_tracks": ("INT", {"default": 4000, "min": 64, "max": 100000, "step": 64, "tooltip": "tracks the robust fits and the bundle adjustment use (an even grid); the masks and errors use every pixel"}),
                "iterations": ("INT", {"default": 30, "min": 1, "max": 1000, "step": 1, "tooltip": "Levenberg-Marquardt iterations per refinement round"}),
            },
            "optional": {
                "depth": (DEPTH, {"tooltip": "optional: passed through as the depth output when the tracks carry depth"}),
            },
        }

    def solve(self, tracks, fov, max_tracks, iterations, depth=None):
        tracks = expect(tracks, TRACKS3D, "tracks")
        progress = runtime.Progress(sv.PROGRESS_STEPS, "camera solve")
        result = sv.solve_camera(tracks, fov=float(fov) if fov and fov > 0 else None, max_tracks=max_tracks, iterations=iterations, progress=progress.callback())
        if result.depth is not None:
            out_depth = result.depth
        elif depth is not None:
            out_depth = expect(depth, DEPTH, "depth")
            if tuple(out_depth.depth.shape) != (tracks.num_frames, tracks.height, tracks.width):
                raise ValueError(f"depth is {list(out_depth.depth.shape)} but the tracks are [{tracks.num_frames}, {tracks.height}, {tracks.width}]")
        else:
            out_depth = sv.depth_from_tracks(tracks)
        static = result.static.float()[None]
        points = _static_points(tracks, result)
        image = draw_camera_path(result.path, scene_points=points)[None]
        report = json.dumps(result.report(), indent=1)
        text = result.summary()
        ui = {**info(text), "vid4d_path": [preview.path_payload(result.path, text=text.splitlines()[0])]}
        if points is not None:
            ui["vid4d_points"] = [preview.points_payload(points, text="static scene")]
        return {"ui": ui, "result": (result.path, static, 1.0 - static, out_depth, image, report)}


def _static_points(tracks, result, limit: int = 20000) -> torch.Tensor | None:
    """World points of the static reference pixels (for the previews), or None without depth information."""
    ref = tracks.ref_frame
    if result.mode == "rotation":
        return None
    if result.mode == "motion":
        d = result.depth.depth[ref]
        ok = result.depth.valid[ref] & result.static
    else:
        d = tracks.depth[ref]
        ok = result.static & (d > 0)
    if not bool(ok.any()):
        return None
    idx = ok.reshape(-1).nonzero().squeeze(1)
    idx = idx[torch.linspace(0, idx.numel() - 1, min(limit, idx.numel())).long()]
    uv = tracks.uv[ref].reshape(-1, 2)[idx][None]
    return _unproject_at(result.path, ref, uv, d.reshape(-1)[idx])


def _unproject_at(path, t: int, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    from ..py.camera import unproject_pixels

    cam = unproject_pixels(uv[0], depth, path.intrinsics[t])
    c2w = path.camera_to_world()[t]
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


NODE_CLASS_MAPPINGS = {"Vid4DEstimateCamera": Vid4DEstimateCamera}
NODE_DISPLAY_NAME_MAPPINGS = {"Vid4DEstimateCamera": "Estimate Camera (Vid4D camera solve)"}
