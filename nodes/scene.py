"""Vid4DSampleScene: the built-in procedural scene with exact depth, camera and tracks (no files needed)."""

from __future__ import annotations

from ..py.checks import check_memory
from ..py.scene import sample_scene
from . import runtime
from .common import CAMERA_PATH, DEPTH, TRACKS3D, category, info


class Vid4DSampleScene:
    DESCRIPTION = (
        "A short textured 3D scene (walls, a static object and a spinning ball crossing the view, seen by a moving "
        "camera), rendered analytically with exact ground-truth depth, camera path and dense 3D tracks. "
        "Use it to try any Vid4D workflow without a video."
    )
    CATEGORY = category("video")
    FUNCTION = "make"
    RETURN_TYPES = ("IMAGE", DEPTH, "IMAGE", CAMERA_PATH, TRACKS3D, "MASK", "FLOAT")
    RETURN_NAMES = ("frames", "depth", "depth_preview", "camera", "tracks", "object_mask", "fps")
    OUTPUT_TOOLTIPS = (
        "rendered frames [T, H, W, 3]",
        "exact metric depth (camera z) per frame",
        "the depth as a grey image (near = bright)",
        "the source camera per frame (frame 0 = identity)",
        "exact dense 3D tracks of every pixel of frame 0, with occlusion",
        "pixels of the moving object per frame",
        "frame rate",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "num_frames": ("INT", {"default": 24, "min": 2, "max": 240, "step": 1}),
                "width": ("INT", {"default": 256, "min": 16, "max": 2048, "step": 8}),
                "height": ("INT", {"default": 160, "min": 16, "max": 2048, "step": 8}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "changes the textures' colours and phases"}),
                "fps": ("FLOAT", {"default": 12.0, "min": 1.0, "max": 120.0, "step": 0.01, "round": 0.001}),
            }
        }

    def make(self, num_frames, width, height, seed, fps):
        # frames, depth, tracks (uv, depth, visibility), the depth preview and the mask: about 56 bytes a pixel and frame
        check_memory(f"Sample Scene: {num_frames} frames of {width}x{height}", 56.0 * num_frames * width * height, "lower num_frames, width or height")
        progress = runtime.Progress(2, "sample scene")
        scene = sample_scene(num_frames=num_frames, width=width, height=height, seed=seed, fps=fps)
        progress.update()
        tracks = scene.tracks(0)
        progress.update()
        depth = scene.depth_video()
        text = f"{num_frames} frames {width}x{height} @ {fps:g} fps; depth {float(scene.depth.min()):.2f}..{float(scene.depth.max()):.2f}"
        result = (scene.frames, depth, depth.to_image(), scene.camera, tracks, scene.object_mask.float(), float(scene.fps))
        return {"ui": info(text), "result": result}


NODE_CLASS_MAPPINGS = {"Vid4DSampleScene": Vid4DSampleScene}
NODE_DISPLAY_NAME_MAPPINGS = {"Vid4DSampleScene": "Sample Scene (Vid4D)"}
