"""Vid4DGSDiTModelLoader / GSDiTSampler: CogVideoX turns the pseudo-4D render (with holes) into a clean video."""

from __future__ import annotations

import torch

from ..models import gsdit as gs
from ..models import loading
from ..py.checks import check_image, check_mask, trust
from ..py.video import resize_frames
from . import runtime
from .common import GSDIT_MODEL, RENDER, category, expect, info

DEFAULT_MODEL = "CogVideoX-5b-I2V"
SAME_FOLDER = "(model folder)"
MODELS_PROPERTY = [
    {"name": "CogVideoX-5b-I2V", "url": "https://huggingface.co/THUDM/CogVideoX-5b-I2V", "directory": "vid4d/gsdit"},
    {"name": "CogVideoX-2b", "url": "https://huggingface.co/THUDM/CogVideoX-2b", "directory": "vid4d/gsdit"},
]


def _top_level() -> list[str]:
    """Model folders and single weight files directly in models/vid4d/gsdit/ (not the files inside a folder)."""
    return [n for n in runtime.list_models("gsdit", folders=True) if "/" not in n]


def _model_choices() -> list[str]:
    names = _top_level()
    return names if DEFAULT_MODEL in names else [DEFAULT_MODEL, *names]


def _folder_choices() -> list[str]:
    return [SAME_FOLDER, *[n for n in _top_level() if not n.lower().endswith(loading.WEIGHT_EXTENSIONS)]]


class Vid4DGSDiTModelLoader:
    DESCRIPTION = (
        "Loads a CogVideoX-family video DiT for GSDiTSampler from models/vid4d/gsdit/: a diffusers folder (transformer/ vae/ "
        "text_encoder/ tokenizer/ scheduler/, e.g. CogVideoX-5b-I2V, CogVideoX-2b, or a GS-DiT checkpoint in the same layout), "
        "or a single-file transformer (.safetensors, diffusers or original CogVideo key names) whose other parts come from the "
        "'components' folder. The transformer's input channels (16 plain, 32 I2V/GS-DiT, 33 GS-DiT + hole mask) are read from "
        "its weights. Nothing is downloaded."
    )
    CATEGORY = category("gsdit")
    FUNCTION = "load"
    RETURN_TYPES = (GSDIT_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("the loaded generator (transformer, VAE, T5 text encoder, scheduler settings)",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (_model_choices(), {"default": DEFAULT_MODEL, "tooltip": "a diffusers folder or a single-file transformer in models/vid4d/gsdit/"}),
                "components": (_folder_choices(), {"default": SAME_FOLDER, "tooltip": "single-file transformers only: the CogVideoX diffusers folder that supplies vae/ text_encoder/ tokenizer/ scheduler/"}),
                "dtype": (["auto", "bf16", "fp16", "fp32"], {"default": "auto", "tooltip": "auto: bf16 on a GPU that supports it, else fp32 (CogVideoX-5B was trained in bf16, 2B in fp16)"}),
                "offload": (list(gs.OFFLOAD_MODES), {"default": "model", "tooltip": "none: all on the GPU; model: each part visits the GPU only while it runs; sequential: the transformer streams layer by layer (least memory, slowest)"}),
                "vae_tiling": ("BOOLEAN", {"default": True, "tooltip": "decode/encode the video in overlapping tiles (much less memory at 480x720)"}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model, components):
        # Names are checked when loading, with an error naming the missing part and the folder.
        return True

    def load(self, model, components, dtype, offload, vae_tiling):
        path = runtime.resolve_model("gsdit", model)
        parts = None
        if path.is_file():
            if components == SAME_FOLDER:
                raise ValueError(f"{model} is a single-file transformer: choose the CogVideoX diffusers folder in 'components' for its vae/ text_encoder/ tokenizer/ scheduler/")
            parts = runtime.resolve_model("gsdit", components)
        device = runtime.get_device()
        pipe = gs.load_pipeline(path, device=device, dtype=gs.parse_dtype(dtype, device), offload=offload, components=parts, vae_tiling=vae_tiling)
        return {"ui": info(pipe.describe()), "result": (pipe,)}


class GSDiTSampler:
    DESCRIPTION = (
        "Turns a render with holes into a clean video with a CogVideoX DiT. Connect RenderGaussians' render: it brings the "
        "frames, the holes and where each camera's clip starts, so a rig needs no camera count here (or connect images + holes "
        "from any node, with 'cameras' equal clips one after another). mode gsdit (the paper's): a GS-DiT checkpoint (32/33 "
        "input channels) gets the render's latents concatenated to the noise. mode training_free (OURS, not the paper's): a "
        "public CogVideoX (T2V, or I2V with the render's first frame as the image) starts from the render noised to 'strength' "
        "(SDEdit) and after every step keeps the rendered regions, blending them back through a feathered latent mask, so it "
        "only invents the holes. Each clip is cut to 8k+1 frames and centre-cropped to multiples of 16 (default CogVideoX: 49 "
        "frames of 720x480) and generated with the same seed and prompt."
    )
    CATEGORY = category("gsdit")
    FUNCTION = "generate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("the generated clips one after another [T', H', W', 3] (T' = 8k+1 per clip, sizes multiples of 16 unless resized back)",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (GSDIT_MODEL, {"tooltip": "from Vid4DGSDiTModelLoader"}),
                "prompt": ("STRING", {"default": "", "multiline": True, "tooltip": "what the video shows"}),
                "negative_prompt": ("STRING", {"default": "", "multiline": True, "tooltip": "used when guidance > 1"}),
                "mode": (list(gs.MODES), {"default": "training_free", "tooltip": "gsdit: GS-DiT checkpoints (32/33 channels); training_free (ours): public CogVideoX with SDEdit + latent blending"}),
                "strength": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.01, "round": 0.001, "tooltip": "training_free: how much noise the render gets first (1 = start from pure noise)"}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 1000, "step": 1, "tooltip": "denoising steps of the full schedule"}),
                "guidance": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip": "classifier-free guidance; <= 1 skips the unconditional pass (half the work)"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**63 - 1, "tooltip": "noise seed (the same for every clip of a rig)"}),
                "scheduler": (list(gs.SCHEDULERS), {"default": "ddim", "tooltip": "CogVideoXDDIMScheduler or CogVideoXDPMScheduler"}),
                "cameras": ("INT", {"default": 1, "min": 1, "max": 64, "step": 1, "tooltip": "without render: how many equal clips the images hold (a rig rendered with layout sequence). Ignored when render is connected: the render says where each camera's clip starts"}),
                "feather": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 8.0, "step": 0.1, "round": 0.01, "tooltip": "training_free: soft edge of the hole mask in latent pixels (1 latent pixel = 8 pixels)"}),
                "resize_to_input": ("BOOLEAN", {"default": False, "tooltip": "resize the output back to the input width and height"}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "the render [T, H, W, 3] (a rig's cameras one after another); with render connected: frames to use instead of the render's (same count)"}),
                "holes": ("MASK", {"tooltip": "1 where the render has a hole; default: the render's holes, or none (nothing to fill) without render"}),
                "render": (RENDER, {"tooltip": "RenderGaussians' render: frames, holes and each camera's clip (clips may differ in length)"}),
            },
        }

    def generate(self, model, prompt, negative_prompt, mode, strength, steps, guidance, seed, scheduler, cameras, feather, resize_to_input, images=None, holes=None, render=None):
        pipe = expect(model, GSDIT_MODEL, "model")
        frames, holes, clips, note = _clips(images, holes, render, cameras)
        h, w = frames.shape[1:3]
        run_steps = steps if mode == "gsdit" else min(int(steps * strength), steps)
        progress = runtime.Progress(len(clips) * max(run_steps, 1), f"GS-DiT {mode}")
        out = []
        for i, sl in enumerate(clips):
            runtime.check_interrupted()
            clip_frames, clip_holes = frames[sl], holes[sl]
            trust(clip_frames, clip_holes)  # views of what was checked above: the pipeline does not scan them again
            step = lambda done, n, base=i * max(run_steps, 1): progress.set(base + done)
            clip = pipe(clip_frames, clip_holes, prompt, negative_prompt, mode=mode, strength=strength, num_steps=steps, guidance=guidance, seed=seed, scheduler=scheduler, feather=feather, callback=step)
            if resize_to_input:
                clip = resize_frames(clip, w, h, fit="stretch")
            out.append(clip)
        video = torch.cat(out)
        method = "training-free SDEdit + latent blending (ours, not the paper's)" if mode == "training_free" else "GS-DiT channel conditioning"
        lengths = "x".join(str(c.shape[0]) for c in out) if len({c.shape[0] for c in out}) > 1 else f"{len(out)} x {out[0].shape[0]}"
        text = f"{pipe.path.name}: {method}; {len(out)} clip(s) ({lengths} frames) {video.shape[2]}x{video.shape[1]}; {pipe.stats.get('steps')} steps, guidance {guidance:g}, seed {seed}" + (f"\n{note}" if note else "")
        return {"ui": info(text), "result": (video,)}


def _clips(images, holes, render, cameras: int) -> tuple[torch.Tensor, torch.Tensor, list[slice], str]:
    """Frames ``[T, H, W, 3]``, holes ``[T, H, W]`` and one frame slice per clip, from the render (its clips)
    or from images + holes split into ``cameras`` equal clips; plus a note for the info panel."""
    if render is None:
        if images is None:
            raise ValueError("connect render (RenderGaussians' render output) or images")
        frames = check_image("images", images)
        total, h, w, _ = frames.shape
        holes = torch.zeros(total, h, w) if holes is None else check_mask("holes", holes, frames=total, height=h, width=w)
        if total % cameras:
            raise ValueError(f"images: {total} frames do not split into cameras = {cameras} clips of equal length; set cameras to the rig's camera count (render with layout sequence), or connect RenderGaussians' render instead")
        per = total // cameras
        return frames, holes, [slice(i * per, (i + 1) * per) for i in range(cameras)], ""
    render = expect(render, RENDER, "render")
    frames = render.rgb
    if images is not None:
        frames = check_image("images", images)
        if frames.shape[0] != render.num_frames:
            raise ValueError(f"images: {frames.shape[0]} frames but the render has {render.num_frames} (clips {list(render.clip_frames)}); connect frames of the same length or leave images unconnected")
    total, h, w, _ = frames.shape
    if holes is not None:
        holes = check_mask("holes", holes, frames=total, height=h, width=w)
    elif tuple(render.holes.shape[1:]) != (h, w):
        raise ValueError(f"images are {w}x{h} but the render's holes are {render.holes.shape[2]}x{render.holes.shape[1]}; connect holes of that size too")
    else:
        holes = render.holes
    note = f"cameras = {cameras} ignored: the render has {len(render.clip_frames)} clip(s)" if cameras not in (1, len(render.clip_frames)) else ""
    return frames, holes, render.clip_slices(), note


NODE_CLASS_MAPPINGS = {"Vid4DGSDiTModelLoader": Vid4DGSDiTModelLoader, "GSDiTSampler": GSDiTSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"Vid4DGSDiTModelLoader": "GS-DiT Model Loader (Vid4D)", "GSDiTSampler": "GS-DiT Sampler"}
