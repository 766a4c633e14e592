"""CameraPath / RenderGaussians: schedule cameras and render the pseudo 4D field through them."""

from __future__ import annotations

import json


from ..py import camera as cam
from ..py.render import BACKENDS, LAYOUTS, RenderResult, join_renders, render_gaussians
from . import preview, runtime
from .common import CAMERA_PATH, DEPTH, GAUSSIANS, RENDER, camera_paths, category, expect, info


class CameraPath:
    DESCRIPTION = (
        "Scheduled camera intrinsics and extrinsics relative to the source view (frame 0 = the original camera): orbit, arc, "
        "dolly, dolly zoom (the subject at focus_depth keeps its size while the background swells), pan, tilt, roll, truck, "
        "pedestal, zoom, or keyframes (JSON list of {frame, position, look_at | angles, fov}). cameras > 1 makes a rig of "
        "synchronized cameras spread over rig_angle around the subject (multi-camera shooting). The preview shows the path "
        "from the top and the side; the node itself shows it in 3D (drag to orbit, wheel to zoom, scrub to look through the camera at frame t)."
    )
    CATEGORY = category("gaussians")
    FUNCTION = "make"
    RETURN_TYPES = (CAMERA_PATH, "IMAGE")
    RETURN_NAMES = ("camera", "preview")
    OUTPUT_TOOLTIPS = ("the camera path (or rig of paths)", "top and side view of the camera frusta over time")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "preset": (list(cam.PRESETS), {"default": "dolly_zoom"}),
                "num_frames": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1, "tooltip": "0 = as many as the source camera"}),
                "width": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1, "tooltip": "0 = the source camera's"}),
                "height": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1, "tooltip": "0 = the source camera's"}),
                "fov": ("FLOAT", {"default": 60.0, "min": 1.0, "max": 179.0, "step": 0.1, "round": 0.01, "tooltip": "horizontal field of view when no source camera is connected"}),
                "focus_depth": ("FLOAT", {"default": 3.0, "min": 0.01, "max": 1e4, "step": 0.01, "round": 0.001, "tooltip": "distance of the subject: orbit/arc turn around it, dolly zoom keeps it framed"}),
                "angle": ("FLOAT", {"default": 30.0, "min": -3600.0, "max": 3600.0, "step": 0.5, "round": 0.01, "tooltip": "degrees (orbit, arc, pan, tilt, roll)"}),
                "distance": ("FLOAT", {"default": 0.5, "min": -1e4, "max": 1e4, "step": 0.01, "round": 0.001, "tooltip": "scene units (dolly, dolly_zoom, truck, pedestal)"}),
                "zoom": ("FLOAT", {"default": 1.5, "min": 0.05, "max": 20.0, "step": 0.01, "round": 0.001, "tooltip": "focal factor at the end (zoom)"}),
                "elevation": ("FLOAT", {"default": 0.0, "min": -89.0, "max": 89.0, "step": 0.5, "round": 0.01, "tooltip": "degrees the orbit/arc rises above the subject"}),
                "easing": (list(cam.EASINGS), {"default": "ease_in_out"}),
                "cameras": ("INT", {"default": 1, "min": 1, "max": 64, "step": 1, "tooltip": "more than 1: a rig of synchronized cameras"}),
                "rig_angle": ("FLOAT", {"default": 30.0, "min": 0.0, "max": 360.0, "step": 0.5, "round": 0.01, "tooltip": "arc the rig's cameras are spread over (degrees)"}),
                "keyframes": ("STRING", {"default": "[]", "multiline": True, "tooltip": 'preset keyframes: [{"frame": 0, "position": [0,0,0], "look_at": [0,0,3]}, {"frame": 24, "position": [1,0,0.5], "look_at": [0,0,3], "fov": 50}]'}),
            },
            "optional": {
                "source_camera": (CAMERA_PATH, {"tooltip": "the source view (LiftGaussians' source_camera): size, frame count and intrinsics"}),
                "gaussians": (GAUSSIANS, {"tooltip": "optional, only for the previews: the scene's points are drawn with the path"}),
            },
        }

    def make(self, preset, num_frames, width, height, fov, focus_depth, angle, distance, zoom, elevation, easing, cameras, rig_angle, keyframes, source_camera=None, gaussians=None):
        out, _ = self.build(preset, num_frames, width, height, fov, focus_depth, angle, distance, zoom, elevation, easing, cameras, rig_angle, keyframes, source_camera=source_camera)
        text = f"{preset}: {len(cam._path_list(out))} camera(s) x {out.num_frames} frames at {out.width}x{out.height}"
        ui = {**info(text), "vid4d_path": [preview.path_payload(out, focus_depth=focus_depth, text=text)]}
        points = None
        if gaussians is not None:
            points = preview.field_points(expect(gaussians, GAUSSIANS, "gaussians"), frame=0)
            ui["vid4d_points"] = [points]
        if source_camera is not None:
            ui["vid4d_source"] = [preview.source_payload(camera_paths(source_camera, "source_camera")[0])]
        image = cam.draw_camera_path(out, focus_depth=focus_depth, scene_points=preview.scene_points(points))[None]
        return {"ui": ui, "result": (out, image)}

    @staticmethod
    def build(preset, num_frames, width, height, fov, focus_depth, angle, distance, zoom, elevation, easing, cameras, rig_angle, keyframes, source_camera=None):
        """The node's widgets → (CameraPath or CameraRig, focus_depth); also serves the browser preview (nodes/preview.py)."""
        intrinsics = None
        if source_camera is not None:
            src = camera_paths(source_camera, "source_camera")[0]
            num_frames = num_frames or src.num_frames
            if (width or src.width, height or src.height) != (src.width, src.height):
                raise ValueError(f"width/height {width}x{height} differ from the source camera's {src.width}x{src.height}; set them to 0 to use the source size")
            width, height, intrinsics = src.width, src.height, src.intrinsics[0]
        if not (num_frames and width and height):
            raise ValueError("num_frames, width and height must be set (> 0) when no source_camera is connected")
        if preset not in cam.PRESET_PARAMS:
            raise ValueError(f"preset: expected one of {', '.join(cam.PRESETS)}, got {preset!r}")
        values = {"angle": angle, "distance": distance, "zoom": zoom, "elevation": elevation, "keyframes": keyframes}
        params = {k: v for k, v in values.items() if k in cam.PRESET_PARAMS[preset]}
        if "keyframes" in params:
            try:
                params["keyframes"] = json.loads(keyframes)
            except json.JSONDecodeError as exc:
                raise ValueError(f"keyframes: not valid JSON ({exc})") from None
        common = dict(fov=fov, focus_depth=focus_depth, easing=easing) if intrinsics is None else dict(intrinsics=intrinsics, focus_depth=focus_depth, easing=easing)
        if cameras > 1:
            base = cam.camera_path(preset, num_frames, width, height, **common, **params)
            out = cam.CameraRig(cam.camera_rig(cameras, num_frames, width, height, arc_angle=rig_angle, focus_depth=focus_depth, base=base))
        else:
            out = cam.camera_path(preset, num_frames, width, height, **common, **params)
        return out, focus_depth


class RenderGaussians:
    DESCRIPTION = (
        "Render a Gaussian field through a camera path or rig (EWA splatting as in gsplat). Backend auto uses gsplat on a CUDA "
        "GPU when it works and the built-in tile rasteriser otherwise (any device, no compilation). The holes MASK marks what "
        "the source never saw (alpha below hole_threshold): the region a video generator must invent."
    )
    CATEGORY = category("gaussians")
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK", DEPTH, "IMAGE", RENDER)
    RETURN_NAMES = ("images", "holes", "depth", "overlay", "render")
    OUTPUT_TOOLTIPS = (
        "the render [T, H, W, 3]",
        "1 where the render has a hole (alpha < hole_threshold)",
        "expected depth of the render",
        "the render with holes tinted magenta, to see what the generator must fill",
        "all of it for the video models (GSDiTSampler, Video Model Inputs): frames, alpha, depth, holes and where each camera's clip starts",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS,),
                "camera": (CAMERA_PATH,),
                "backend": (list(BACKENDS), {"default": "auto"}),
                "hole_threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "round": 0.001}),
                "layout": (list(LAYOUTS), {"default": "sequence", "tooltip": "rigs: one camera after another (sequence) or side by side (grid)"}),
            }
        }

    def render(self, gaussians, camera, backend, hole_threshold, layout):
        field = expect(gaussians, GAUSSIANS, "gaussians")
        paths = camera_paths(camera, "camera")
        # Every backend runs on ComfyUI's device (the torch rasteriser too), so --cpu is honoured.
        device = runtime.get_device()
        field = field.to(device)
        total = sum(p.num_frames for p in paths)
        progress = runtime.Progress(total, "render gaussians")
        results, used = [], set()
        for i, path in enumerate(paths):
            done = sum(p.num_frames for p in paths[:i])
            result = render_gaussians(field, path.to(device), backend=backend, progress=lambda n, d=done: progress.set(d + n))
            used.add(result.backend)
            results.append(RenderResult(result.rgb.cpu(), result.alpha.cpu(), result.depth.cpu(), result.backend, result.compiled))
        out = join_renders(results, hole_threshold=hole_threshold, layout=layout)
        text = f"backend {'/'.join(sorted(used))}: {len(paths)} camera(s), {out.num_frames} frames {out.rgb.shape[2]}x{out.rgb.shape[1]}; holes {100 * float(out.holes.mean()):.1f}%"
        return {"ui": info(text), "result": (out.rgb, out.holes, out.depth_video(), out.overlay().clamp(0, 1), out)}


NODE_CLASS_MAPPINGS = {"CameraPath": CameraPath, "RenderGaussians": RenderGaussians}
NODE_DISPLAY_NAME_MAPPINGS = {"CameraPath": "Camera Path (Vid4D)", "RenderGaussians": "Render Gaussians"}
