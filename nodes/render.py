"""RenderGaussians: render the pseudo 4D field through a camera path or rig (CameraPath is in nodes/camera.py)."""

from __future__ import annotations

from ..py.render import BACKENDS, LAYOUTS, RenderResult, join_renders, render_gaussians
from . import runtime
from .common import CAMERA_PATH, DEPTH, GAUSSIANS, RENDER, camera_paths, category, expect, info


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


NODE_CLASS_MAPPINGS = {"RenderGaussians": RenderGaussians}
NODE_DISPLAY_NAME_MAPPINGS = {"RenderGaussians": "Render Gaussians"}
