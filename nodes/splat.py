"""SoftmaxSplat: animate a still image with a motion texture (Generative Image Dynamics' renderer)."""

from __future__ import annotations

import torch

from ..py import splat
from ..py.checks import check_image
from . import runtime
from ..py.depth import IMAGE_ENCODINGS
from .common import DEPTH, MOTION_TEXTURE, SYNTHESIS_MODEL, category, depth_input, expect, info

WEIGHT_MODES = ["motion_magnitude", "depth", "custom", "none"]


def _normalised(values: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` → 0..1 (a constant map → zeros)."""
    lo, hi = values.min(), values.max()
    return (values - lo) / (hi - lo) if float(hi - lo) > 0 else torch.zeros_like(values)


class SoftmaxSplat:
    DESCRIPTION = (
        "Animate a still image with a motion texture (Generative Image Dynamics): every pixel is forward-warped to where the "
        "motion texture says it is in each frame, by softmax splatting — where several pixels land on one spot the one "
        "with the larger weight wins (moving things in front with motion_magnitude, the paper's choice; nearer ones with "
        "depth; your own grey map with custom). Without a synthesis model it renders in pixel space, filling the holes of "
        "each pyramid level from the coarser ones and the rest by pull-push, so the video is always usable; with a "
        "synthesis model (Synthesis Model Loader (Vid4D)) it splats the model's feature pyramid and decodes the frames."
    )
    CATEGORY = category("dynamics")
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK", "FLOAT")
    RETURN_NAMES = ("frames", "holes", "fps")
    OUTPUT_TOOLTIPS = (
        "the animated frames, one per motion-texture frame",
        "1 where nothing landed in the full-resolution splat (what the fill or the synthesis network had to invent)",
        "the motion texture's frame rate",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "the still image to animate (the first frame of a batch is used)"}),
                "motion_texture": (MOTION_TEXTURE, {"tooltip": "per-frame displacement of every pixel, e.g. from SpectralMotion"}),
                "weight_mode": (WEIGHT_MODES, {"default": "motion_magnitude", "tooltip": "who wins where pixels collide: larger mean motion (the paper), nearer depth, a custom grey map (bright wins), or none (plain average)"}),
                "weight_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.05, "round": 0.01, "tooltip": f"softmax sharpness: the weight map is scaled to 0..{splat.WEIGHT_RANGE:g}·strength (0 = average)"}),
                "pyramid_levels": ("INT", {"default": 3, "min": 1, "max": 6, "step": 1, "tooltip": "pixel-space render: holes of each level are filled from the next coarser splat (1 = a single splat)"}),
                "fill_holes": ("BOOLEAN", {"default": True, "tooltip": "pull-push fill of the holes left after the pyramid (pixel-space render)"}),
                "chunk_frames": ("INT", {"default": 8, "min": 1, "max": 256, "step": 1, "tooltip": "frames splatted at once: memory grows with this, not with the video length"}),
                "depth_encoding": (list(IMAGE_ENCODINGS), {"default": "disparity", "tooltip": "how to read depth_image"}),
            },
            "optional": {
                "synthesis_model": (SYNTHESIS_MODEL, {"tooltip": "feature-pyramid synthesis network; without it the pixel-space render runs"}),
                "depth": (DEPTH, {"tooltip": "weight_mode depth: a Vid4D depth (its first frame)"}),
                "depth_image": ("IMAGE", {"tooltip": "weight_mode depth: a depth map from any pack"}),
                "weight_image": ("IMAGE", {"tooltip": "weight_mode custom: brighter pixels win"}),
            },
        }

    def render(self, image, motion_texture, weight_mode, weight_strength, pyramid_levels, fill_holes, chunk_frames, depth_encoding, synthesis_model=None, depth=None, depth_image=None, weight_image=None):
        image = check_image("image", image)[0]
        texture = expect(motion_texture, MOTION_TEXTURE, "motion_texture")
        h, w = image.shape[:2]
        if (texture.height, texture.width) != (h, w):
            raise ValueError(f"motion_texture is {texture.width}x{texture.height} but the image is {w}x{h}; make the motion for this image's size (or resize the image)")
        if weight_mode not in WEIGHT_MODES:
            raise ValueError(f"weight_mode: expected one of {WEIGHT_MODES}, got {weight_mode!r}")
        device = runtime.get_device()
        weights = self._weights(weight_mode, texture, h, w, depth, depth_image, depth_encoding, weight_image)
        metric = None if weights is None or weight_strength <= 0 else (splat.WEIGHT_RANGE * float(weight_strength)) * _normalised(weights).to(device)
        model = None
        if synthesis_model is not None:
            from ..models.synthesis import SynthesisModel

            if not isinstance(synthesis_model, SynthesisModel):
                raise ValueError(f"input 'synthesis_model': expected a {SYNTHESIS_MODEL}, got {type(synthesis_model).__name__}; connect a Synthesis Model Loader (Vid4D)")
            model = synthesis_model
        progress = runtime.Progress(texture.num_frames, "softmax splat")
        frames, holes = splat.animate(
            image.to(device),
            texture.displacement,
            metric,
            levels=int(pyramid_levels),
            fill=bool(fill_holes),
            synthesis=model,
            chunk_frames=int(chunk_frames),
            progress=progress.callback(),
            cancel=runtime.check_interrupted,
        )
        renderer = f"synthesis model {model.name}" if model is not None else f"pixel space, {pyramid_levels} level(s){', pull-push fill' if fill_holes else ''}"
        text = (
            f"{texture.num_frames} frames {w}x{h} at {texture.fps:g} fps; weights: {weight_mode if metric is not None else 'none (average)'}; "
            f"{renderer}; holes {100 * float(holes.float().mean()):.2f}% before filling"
        )
        return {"ui": info(text), "result": (frames.cpu(), holes.float().cpu(), float(texture.fps))}

    @staticmethod
    def _weights(mode, texture, h, w, depth, depth_image, encoding, weight_image) -> torch.Tensor | None:
        """``[H, W]`` raw importance (larger wins) or None."""
        if mode == "none":
            return None
        if mode == "motion_magnitude":
            return splat.splat_weights(texture.displacement)
        if mode == "depth":
            value = depth_input(depth, depth_image, encoding, height=h, width=w)
            if value is None:
                raise ValueError("weight_mode 'depth' needs a depth or depth_image input")
            return value.nearness(0)  # nearer wins
        if weight_image is None:
            raise ValueError("weight_mode 'custom' needs a weight_image input")
        img = check_image("weight_image", weight_image)[0]
        if tuple(img.shape[:2]) != (h, w):
            raise ValueError(f"weight_image is {img.shape[1]}x{img.shape[0]} but the image is {w}x{h}")
        return img.float().mean(-1)


class Vid4DSynthesisModelLoader:
    DESCRIPTION = (
        "Load a feature-pyramid synthesis network for SoftmaxSplat from models/vid4d/motion/ (a Vid4D .safetensors file with "
        "its config in the metadata; no official weights exist — see the README's Motion models section)."
    )
    CATEGORY = category("dynamics")
    FUNCTION = "load"
    RETURN_TYPES = (SYNTHESIS_MODEL,)
    RETURN_NAMES = ("synthesis_model",)
    OUTPUT_TOOLTIPS = ("the loaded synthesis network",)

    @classmethod
    def INPUT_TYPES(cls):
        from ..models.synthesis import DEFAULT_FILE

        names = runtime.list_models("motion") or [DEFAULT_FILE]
        return {"required": {"model_name": (names, {"tooltip": "a synthesis .safetensors in models/vid4d/motion/"})}}

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        # Any name passes here: load() reports a missing file with the folder to put it in.
        return True

    def load(self, model_name):
        from ..models.synthesis import load_synthesis_model

        path = runtime.resolve_model("motion", model_name)
        model = load_synthesis_model(path, device=runtime.get_device())
        text = f"{model.name}: {model.config.levels} pyramid levels, channels {list(model.config.channels)}"
        return {"ui": info(text), "result": (model,)}


NODE_CLASS_MAPPINGS = {"SoftmaxSplat": SoftmaxSplat, "Vid4DSynthesisModelLoader": Vid4DSynthesisModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"SoftmaxSplat": "Softmax Splat (animate image)", "Vid4DSynthesisModelLoader": "Synthesis Model Loader (Vid4D)"}
