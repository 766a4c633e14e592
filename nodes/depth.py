"""Vid4DDepthModelLoader / VideoDepth (ChronoDepth) and Vid4DDepthFromImage (depth maps from other packs)."""

from __future__ import annotations

import torch

from ..models import loading
from ..py import depth as dp
from ..py.checks import check_image
from . import runtime
from .common import DEPTH, DEPTH_MODEL, category, expect, info

UNET_DEFAULT = "ChronoDepth-v1"
BASE_DEFAULT = "stable-video-diffusion-img2vid-xt"
SINGLE_FILE_DEFAULT = "svd_xt.safetensors"
MODELS_PROPERTY = [
    {"name": "ChronoDepth-v1", "url": "https://huggingface.co/jhshao/ChronoDepth-v1", "directory": "vid4d/depth"},
    {"name": "svd_xt.safetensors", "url": "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt/resolve/main/svd_xt.safetensors", "directory": "checkpoints"},
]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _folders() -> list[str]:
    return [n for n in runtime.list_models("depth", folders=True) if "/" not in n and not n.lower().endswith(loading.WEIGHT_EXTENSIONS)]


def _unet_choices() -> list[str]:
    names = [n for n in _folders() if not any((d / n / "vae").is_dir() for d in runtime.model_dirs("depth"))]
    return names if UNET_DEFAULT in names else [UNET_DEFAULT, *names]


def _checkpoint_files() -> list[str]:
    names = set()
    for d in runtime.checkpoint_dirs():
        if d.is_dir():
            names.update(p.name for p in d.iterdir() if p.suffix.lower() == ".safetensors")
    return sorted(names)


def _base_choices() -> list[str]:
    folders = [n for n in _folders() if any((d / n / "vae").is_dir() for d in runtime.model_dirs("depth"))]
    names = folders + _checkpoint_files()
    return names or [BASE_DEFAULT, SINGLE_FILE_DEFAULT]


def _resolve_base(name: str):
    """A diffusers folder in models/vid4d/depth/ or a single file in models/checkpoints/."""
    clean = loading.check_model_name(name)
    if clean.lower().endswith(".safetensors"):
        dirs = runtime.checkpoint_dirs()
        for d in dirs:
            if (d / clean).is_file():
                return d / clean
        shown = ", ".join(str(d) for d in dirs) or "(none configured)"
        raise loading.ModelNotFoundError(f"'{clean}' not found in ComfyUI/models/checkpoints/ (searched: {shown}); get svd_xt.safetensors from https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt")
    return runtime.resolve_model("depth", clean)


class Vid4DDepthModelLoader:
    DESCRIPTION = (
        "Loads ChronoDepth-v1 for VideoDepth: the UNet folder (models/vid4d/depth/ChronoDepth-v1: config.json + "
        "diffusion_pytorch_model.safetensors) plus the Stable Video Diffusion XT parts it runs with (VAE, CLIP image encoder, "
        "Euler scheduler), either the diffusers folder models/vid4d/depth/stable-video-diffusion-img2vid-xt or ComfyUI's "
        "single file models/checkpoints/svd_xt.safetensors. Nothing is downloaded."
    )
    CATEGORY = category("depth")
    FUNCTION = "load"
    RETURN_TYPES = (DEPTH_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("the loaded ChronoDepth pipeline (UNet, VAE, CLIP conditioning, scheduler)",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "unet": (_unet_choices(), {"default": UNET_DEFAULT, "tooltip": "the ChronoDepth-v1 UNet folder in models/vid4d/depth/"}),
                "base": (_base_choices(), {"tooltip": "SVD-XT: a diffusers folder in models/vid4d/depth/ or svd_xt.safetensors in models/checkpoints/"}),
                "dtype": (list(DTYPES), {"default": "fp16", "tooltip": "UNet precision (the released weights are fp16); on the CPU fp32 is used"}),
                "offload": ("BOOLEAN", {"default": True, "tooltip": "move the networks off the GPU between runs (frees memory for other nodes)"}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, unet, base):
        # Names are checked when loading, with an error naming the missing file and the folder.
        return True

    def load(self, unet, base, dtype, offload):
        from ..models import chronodepth as cd

        unet_path = runtime.resolve_model("depth", unet)
        base_path = _resolve_base(base)
        device = runtime.get_device()
        notes = []
        torch_dtype = DTYPES[dtype]
        if device.type == "cpu" and torch_dtype != torch.float32:
            notes.append(f"{dtype} is slow or unsupported on the CPU: using fp32")
            torch_dtype = torch.float32
        offload_device = runtime.offload_device() if offload else None
        stamp = lambda p: (str(p.resolve()), p.stat().st_mtime_ns)
        key = ("chronodepth", stamp(unet_path), stamp(base_path), str(torch_dtype), str(device), str(offload_device))
        pipe = loading.cached(key, lambda: cd.load_pipeline(unet_path, base_path, device=device, dtype=torch_dtype, offload_device=offload_device))
        text = [f"ChronoDepth {unet} + {base} on {device} ({str(torch_dtype).replace('torch.', '')})", *notes]
        return {"ui": info(*text), "result": (pipe,)}


class VideoDepth:
    DESCRIPTION = (
        "ChronoDepth video depth: temporally consistent relative depth for a whole video from a fine-tuned Stable Video "
        "Diffusion. Sliding windows of `window` frames advance by `stride`; in the default 'context' mode the previous frames "
        "stay as clean context and only new frames are denoised. Outputs the raw relative depth (VID4D_DEPTH, flagged as "
        "affine-invariant depth, near = low) for DenseTrack3D / LiftGaussians, a visualisation, and a normalised grey IMAGE "
        "(near = bright) for other packs."
    )
    CATEGORY = category("depth")
    FUNCTION = "estimate"
    RETURN_TYPES = (DEPTH, "IMAGE", "IMAGE")
    RETURN_NAMES = ("depth", "preview", "depth_image")
    OUTPUT_TOOLTIPS = (
        "relative depth [T, H, W] in 0..1 (affine-invariant; near = low); downstream nodes place it between their near/far",
        "visualisation (grey or turbo colormap, near = bright / red)",
        "normalised grey depth IMAGE, near = bright (the disparity-like convention of depth packs)",
    )

    @classmethod
    def INPUT_TYPES(cls):
        from ..models.chronodepth import WINDOW_MODES

        return {
            "required": {
                "model": (DEPTH_MODEL, {"tooltip": "from Vid4DDepthModelLoader"}),
                "frames": ("IMAGE", {"tooltip": "the video [T, H, W, 3], at least 64 px on each side"}),
                "steps": ("INT", {"default": 5, "min": 1, "max": 50, "step": 1, "tooltip": "denoising steps per window (the paper uses 5)"}),
                "window": ("INT", {"default": 10, "min": 1, "max": 64, "step": 1, "tooltip": "frames the UNet sees at once (10 as trained)"}),
                "stride": ("INT", {"default": 5, "min": 1, "max": 64, "step": 1, "tooltip": "new frames per window; window - stride frames are context"}),
                "mode": (list(WINDOW_MODES), {"default": "context", "tooltip": "context: previous frames clean (v1); replacement: context re-noised each step; naive: independent windows"}),
                "max_res": ("INT", {"default": 1024, "min": 64, "max": 4096, "step": 64, "tooltip": "long side the network runs at (multiples of 64); the output is resized back"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**63 - 1, "step": 1, "tooltip": "noise seed (results are deterministic per seed)"}),
                "colormap": (list(dp.COLORMAPS), {"default": "turbo", "tooltip": "preview colours"}),
                "decode_chunk": ("INT", {"default": 8, "min": 1, "max": 64, "step": 1, "tooltip": "frames per VAE decode (less = less memory)"}),
            }
        }

    def estimate(self, model, frames, steps, window, stride, mode, max_res, seed, colormap, decode_chunk):
        pipe = expect(model, DEPTH_MODEL, "model")
        frames = check_image("frames", frames)
        if stride > window:
            raise ValueError(f"stride ({stride}) must not exceed window ({window})")
        progress = runtime.Progress(pipe.num_model_calls(frames.shape[0], steps, window, stride), "video depth")
        raw = pipe(frames, num_steps=steps, window=window, stride=stride, mode=mode, seed=seed, max_res=max_res, progress=progress.callback(), decode_chunk=decode_chunk)
        encoding = "disparity" if pipe.near_is == "high" else "affine_depth"
        video = dp.DepthVideo(raw, kind="relative", encoding=encoding)
        grey = video.normalized()
        preview = dp.colorize(grey, colormap)
        image = dp.colorize(grey, "grey")
        t, h, w = raw.shape
        text = f"ChronoDepth: {t} frames {w}x{h}, {steps} steps, window {window}/{stride} ({mode}); near = {pipe.near_is} values"
        return {"ui": info(text), "result": (video, preview, image)}


INTERPRETATIONS = [*dp.IMAGE_ENCODINGS, *dp.SCALE_SHIFT_ENCODINGS]


class Vid4DDepthFromImage:
    DESCRIPTION = (
        "Any depth IMAGE (Depth Anything, DepthCrafter, Video Depth Anything...) → VID4D_DEPTH, read as you say: disparity "
        "(near = bright) or depth (near = dark) placed between near and far, metric (grey 0..1 = near..far in scene units), "
        "or value = grey * scale + shift as depth or as disparity. Optional per-chunk scale/shift alignment (least squares of "
        "each chunk's first frames against the previous chunk's last frames) evens out the flicker of models that normalise "
        "each clip or frame."
    )
    CATEGORY = category("depth")
    FUNCTION = "convert"
    RETURN_TYPES = (DEPTH, "IMAGE")
    RETURN_NAMES = ("depth", "preview")
    OUTPUT_TOOLTIPS = ("camera-z depth video (relative unless 'metric')", "grey preview, near = bright")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "depth_image": ("IMAGE", {"tooltip": "a depth map video from any pack"}),
                "interpretation": (INTERPRETATIONS, {"default": "disparity", "tooltip": "what the grey values mean"}),
                "near": ("FLOAT", {"default": 1.0, "min": 0.001, "max": 1e5, "step": 0.01, "round": 0.001, "tooltip": "depth of the nearest value (disparity/depth/metric)"}),
                "far": ("FLOAT", {"default": 10.0, "min": 0.002, "max": 1e6, "step": 0.01, "round": 0.001, "tooltip": "depth of the farthest value (disparity/depth/metric)"}),
                "scale": ("FLOAT", {"default": 1.0, "min": -1e6, "max": 1e6, "step": 0.01, "round": 0.0001, "tooltip": "scale_shift_*: value = grey * scale + shift"}),
                "shift": ("FLOAT", {"default": 0.0, "min": -1e6, "max": 1e6, "step": 0.01, "round": 0.0001, "tooltip": "scale_shift_*: value = grey * scale + shift"}),
                "align_window": ("INT", {"default": 0, "min": 0, "max": 1024, "step": 1, "tooltip": "frames per alignment chunk (0 = no temporal alignment)"}),
                "align_overlap": ("INT", {"default": 4, "min": 1, "max": 1024, "step": 1, "tooltip": "frames compared at each chunk boundary (first of the chunk vs last of the previous) to fit its scale/shift"}),
            }
        }

    def convert(self, depth_image, interpretation, near, far, scale, shift, align_window, align_overlap):
        image = check_image("depth_image", depth_image)
        grey = image.mean(dim=-1)
        notes = []
        if align_window:
            grey = dp.align_scale_shift(grey, align_window, align_overlap)
            notes.append(f"aligned in windows of {align_window} (overlap {align_overlap})")
        if interpretation in dp.IMAGE_ENCODINGS:
            grey = grey.clamp(0, 1)  # alignment may leave 0..1; these readings place 0..1 between near and far
        video = dp.depth_from_grey(grey, interpretation, near, far, scale=scale, shift=shift)
        t, h, w = video.depth.shape
        text = f"{t} depth maps {w}x{h} read as {interpretation}" + (f"; {', '.join(notes)}" if notes else "")
        return {"ui": info(text), "result": (video, video.to_image())}


NODE_CLASS_MAPPINGS = {"Vid4DDepthModelLoader": Vid4DDepthModelLoader, "VideoDepth": VideoDepth, "Vid4DDepthFromImage": Vid4DDepthFromImage}
NODE_DISPLAY_NAME_MAPPINGS = {"Vid4DDepthModelLoader": "Depth Model Loader (ChronoDepth)", "VideoDepth": "Video Depth (ChronoDepth)", "Vid4DDepthFromImage": "Depth From Image (Vid4D)"}
