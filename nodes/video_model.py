"""Vid4DVideoModelInputs / Vid4DJoinWindows / Vid4DWindowedSampler: finish a render on core video models.

The render (RenderGaussians' ``render``) becomes what ComfyUI's own nodes take — WanVaceToVideo
(control_video, control_masks 1 = generate, reference_image), WanFunControlToVideo (control_video),
VAEEncode + SetLatentNoiseMask + KSampler (latent inpainting, any model) — with the model's frame and size
rules and a hole mask on its latent grid (py/video_model.py). Long clips go in overlapping windows: by hand
(window_index + previous + Vid4DJoinWindows) or laid out by Vid4DWindowedSampler (node expansion).
"""

from __future__ import annotations

import torch

from ..py import video_model as vm
from ..py.checks import check_image, check_mask
from ..py.video import FIT_MODES
from . import runtime
from .common import RENDER, category, expect, info

MODELS = list(vm.VIDEO_MODELS)
METHODS = ["wan_vace", "latent_inpaint"]
AUTO = "auto"


def _bridge_inputs() -> dict:
    """The widgets the bridge and the windowed sampler share (in this order)."""
    return {
        "video_model": (MODELS, {"default": "wan2.1", "tooltip": "the model's rules: " + "; ".join(s.label for s in vm.VIDEO_MODELS.values())}),
        "fit": (list(FIT_MODES), {"default": "crop", "tooltip": "to the model's size multiple (or width x height): crop cuts the overflow (default; with width = height = 0 a centre crop, as GSDiTSampler), pad adds grey bars the model outpaints (mask 1), stretch resizes"}),
        "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 1, "tooltip": "output width (0 = the render's, or from height keeping the aspect); snapped to the model's multiple"}),
        "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 1, "tooltip": "output height (0 = the render's, or from width keeping the aspect); snapped to the model's multiple"}),
        "window_length": ("INT", {"default": 0, "min": 0, "max": 4097, "step": 1, "tooltip": "frames per window (0 = the model's: 81 for Wan); snapped to 4k+1. A shorter clip is one window"}),
        "overlap": ("INT", {"default": 17, "min": 0, "max": 4096, "step": 1, "tooltip": "frames of the previous window carried into the next as known frames (mask 0); 4k+1 (5, 9, 13, 17) fills whole latent frames"}),
        "min_alpha": ("FLOAT", {"default": 0.9, "min": 0.0, "max": 1.0, "step": 0.01, "round": 0.001, "tooltip": "render input: pixels with less coverage are generated too (splats blended with the empty background); 0 = holes only"}),
        "depth_edge": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 100.0, "step": 0.01, "round": 0.001, "tooltip": "render input: a depth jump between neighbours above this fraction of the nearer depth is a stretched silhouette, generated too; 0 = off"}),
        "edge_px": ("INT", {"default": 2, "min": 0, "max": 256, "step": 1, "tooltip": "pixels added around holes, low-alpha pixels and depth edges (disoccluded rims); then every 8x8 latent cell and 4-frame latent group touching them is generated"}),
        "feather": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 256.0, "step": 0.5, "round": 0.01, "tooltip": "soft mask edge in pixels, outwards only (latent_mask: feather / 8 latent pixels); 0 = hard cells"}),
    }


def _clip(render, images, holes, clip: int):
    """(frames [T,H,W,3], a function slice -> generate pieces, what it is) of one clip of the render or of IMAGE + MASK."""
    if render is not None and images is not None:
        raise ValueError("connect either 'render' (RenderGaussians) or 'images' (+ 'holes'), not both")
    if render is not None:
        render = expect(render, RENDER, "render")
        slices = render.clip_slices()
        if clip >= len(slices):
            raise ValueError(f"clip {clip}: the render has {len(slices)} clip(s) (cameras one after another; indices 0..{len(slices) - 1})")
        sl = slices[clip]
        return render.rgb[sl], (render.alpha[sl], render.depth[sl], render.holes[sl]), f"clip {clip + 1}/{len(slices)} of the render"
    if images is None:
        raise ValueError("connect 'render' (RenderGaussians' render output) or 'images' (+ an optional 'holes' MASK, 1 = generate)")
    if clip:
        raise ValueError("clip: only a render holds several clips; leave it at 0 for plain images")
    rgb = check_image("images", images)
    t, h, w, _ = rgb.shape
    mask = torch.zeros(t, h, w) if holes is None else check_mask("holes", holes, frames=t, height=h, width=w)
    return rgb, (mask,), "images"


def _generate(pieces: tuple, sl: slice, min_alpha: float, depth_edge: float, edge_px: int) -> torch.Tensor:
    """The generate mask of frames ``sl``: a render's holes + unreliable pixels, or a MASK grown by edge_px."""
    if len(pieces) == 3:
        alpha, depth, holes = (p[sl] for p in pieces)
        return vm.unreliable_pixels(alpha, depth, holes, min_alpha, depth_edge, edge_px)
    return vm.dilate((pieces[0][sl] > 0).float(), edge_px)


def _reference(reference, reference_frame: int, rgb, pieces, out: vm.VideoModelInputs, fit: str, edge_px: int):
    """``[1, H, W, 3]``: a frame of ``reference`` (e.g. the source video), else of the clip (holes blurred)."""
    if reference is not None:
        frames = check_image("reference", reference)
        if reference_frame >= frames.shape[0]:
            raise ValueError(f"reference_frame {reference_frame}: the reference has {frames.shape[0]} frame(s)")
        frame, mask, fill = frames[reference_frame : reference_frame + 1], torch.zeros(1, *frames.shape[1:3]), "render"
    else:
        if reference_frame >= rgb.shape[0]:
            raise ValueError(f"reference_frame {reference_frame}: the clip has {rgb.shape[0]} frame(s)")
        sl = slice(reference_frame, reference_frame + 1)
        frame, mask, fill = rgb[sl], _generate(pieces, sl, 0.0, 0.0, edge_px), "blur"
    frame, mask = vm.fit_video(frame.float(), mask, out.width, out.height, fit, out.rescaled or frame.shape[1:3] != rgb.shape[1:3])
    return vm.fill_holes(frame, mask, fill)


class Vid4DVideoModelInputs:
    DESCRIPTION = (
        "Turns a Vid4D render into the inputs of ComfyUI's core video nodes. WanVaceToVideo: control_video, control_masks "
        "(1 = generate) and reference_image, plus width/height/length for its widgets (convert them to inputs). "
        "WanFunControlToVideo / Wan22FunControlToVideo: control_video. Any model (latent inpainting): VAEEncode(control_video) "
        "-> SetLatentNoiseMask(latent_mask) -> KSampler with denoise < 1. Frames are cut to the model's 4k+1 window, the size "
        "snapped to its multiple (crop / pad / stretch), and the mask covers every 8x8 latent cell and 4-frame latent group "
        "that touches a hole or an unreliable render pixel (low alpha, depth edges, their rims), so kept latents hold only "
        "rendered pixels. Long clips: window_index picks a window; connect the frames generated so far to 'previous' (their "
        "last frames become known frames) and join with Join Windows, or let Windowed Sampler lay it all out."
    )
    CATEGORY = category("video models")
    FUNCTION = "prepare"
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE", "INT", "INT", "INT", "MASK", "INT", "INT")
    RETURN_NAMES = ("control_video", "control_masks", "reference_image", "width", "height", "length", "latent_mask", "carried", "windows")
    OUTPUT_TOOLTIPS = (
        "[length, height, width, 3] the window of the render (carried frames first), holes filled with hole_fill",
        "[length, height, width] 1 = generate, on the latent grid, laid out for WanVaceToVideo's frame sampling",
        "[1, height, width, 3] reference_frame of 'reference' (e.g. the source video) or of the render",
        "width for the core node's widget",
        "height for the core node's widget",
        "length (frames, 4k+1) for the core node's widget",
        "[latent frames, height/8, width/8] 1 = generate: for SetLatentNoiseMask (ComfyUI uses a mask of the latent's size as is)",
        "frames at the start of this window repeated from the previous one (Join Windows' overlap)",
        "how many windows the clip needs",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **_bridge_inputs(),
                "hole_fill": (list(vm.HOLE_FILLS), {"default": "grey", "tooltip": "what the control video shows in the holes: grey 0.5 (WanVaceToVideo's neutral), blur of the render around (latent inpainting), or the render as is"}),
                "window_index": ("INT", {"default": 0, "min": 0, "max": vm.MAX_WINDOWS - 1, "step": 1, "tooltip": "which window of the clip (0 = the first); windows > 0 need 'previous'"}),
                "clip": ("INT", {"default": 0, "min": 0, "max": 63, "step": 1, "tooltip": "which camera's clip of a rig rendered one camera after another (0 = the first)"}),
                "reference_frame": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "step": 1, "tooltip": "frame of 'reference' (or of the clip when none is connected) given as reference_image"}),
            },
            "optional": {
                "render": (RENDER, {"tooltip": "RenderGaussians' render output: frames, alpha, depth, holes and the rig's clips"}),
                "images": ("IMAGE", {"tooltip": "instead of a render: any video [T, H, W, 3]"}),
                "holes": ("MASK", {"tooltip": "with 'images': 1 where the model must generate"}),
                "previous": ("IMAGE", {"tooltip": "windows > 0: the frames generated so far (the previous window, or all windows joined); their last 'carried' frames start this window as known frames"}),
                "reference": ("IMAGE", {"tooltip": "the source video or an image: reference_frame of it becomes reference_image"}),
            },
        }

    def prepare(self, video_model, fit, width, height, window_length, overlap, min_alpha, depth_edge, edge_px, feather, hole_fill, window_index, clip, reference_frame, render=None, images=None, holes=None, previous=None, reference=None):
        spec = vm.video_model(video_model)
        rgb, pieces, source = _clip(render, images, holes, clip)
        win, count = vm.select_window(rgb.shape[0], spec, window_length, overlap, window_index)
        sl = slice(win.start, win.stop)
        generate = _generate(pieces, sl, min_alpha, depth_edge, edge_px)
        if previous is not None:
            previous = check_image("previous", previous)
        out = vm.prepare_window(rgb[sl].float(), generate, spec, win, windows=count, width=width, height=height, fit=fit, previous=previous, feather=feather, hole_fill=hole_fill)
        ref = _reference(reference, reference_frame, rgb, pieces, out, fit, edge_px)
        cells = float((out.latent_mask >= 1).float().mean())
        lines = [
            f"{source}: window {win.index + 1}/{count}, frames {win.start}-{win.stop - 1} of {rgb.shape[0]}" + (f" ({win.carried} carried from the previous window)" if win.carried else ""),
            f"{spec.name}: {out.length} frames {out.width}x{out.height} ({fit}), {out.latent_mask.shape[0]} latent frames; generate {100 * float(out.generate.mean()):.1f}% of pixels -> {100 * cells:.1f}% of latent cells",
        ]
        if win.index + 1 < count:
            lines.append(f"next: window_index {win.index + 1} with this window's generated frames as 'previous' (or use Windowed Sampler)")
        return {"ui": info(*lines), "result": (out.control_video, out.control_mask, ref, out.width, out.height, out.length, out.latent_mask, win.carried, count)}


class Vid4DJoinWindows:
    DESCRIPTION = (
        "Joins the windows of a long re-shoot: the video so far + the next window, whose first 'overlap' frames repeat the "
        "end of the video so far (Video Model Inputs' 'carried'). crossfade blends those frames from the old window into the "
        "new one; cut keeps the old ones. Without 'previous' the window passes through."
    )
    CATEGORY = category("video models")
    FUNCTION = "join"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("the video so far followed by the new window, [P + L - overlap, H, W, 3]",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "window": ("IMAGE", {"tooltip": "the next window's generated frames"}),
                "overlap": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 1, "tooltip": "frames at the start of the window that repeat the end of 'previous' (wire Video Model Inputs' carried)"}),
                "blend": (list(vm.BLENDS), {"default": "crossfade"}),
            },
            "optional": {"previous": ("IMAGE", {"tooltip": "the video so far (none: the window alone)"})},
        }

    def join(self, window, overlap, blend, previous=None):
        window = check_image("window", window)
        previous = None if previous is None else check_image("previous", previous)
        out = vm.join_windows(previous, window, overlap, blend)
        text = f"{0 if previous is None else previous.shape[0]} + {window.shape[0]} frames, {overlap} overlapping ({blend}) -> {out.shape[0]}"
        return {"ui": info(text), "result": (out,)}


class _Graph:
    """A node-expansion graph in ComfyUI's API format; ids are prefixed by the expanding node's id (unique per run)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: dict[str, dict] = {}

    def node(self, role: str, class_type: str, **inputs) -> str:
        nid = f"{self.prefix}.{role}"
        self.nodes[nid] = {"class_type": class_type, "inputs": {k: v for k, v in inputs.items() if v is not None}}
        return nid


class Vid4DWindowedSampler:
    DESCRIPTION = (
        "A long re-shoot in one node: cuts every clip of the render into overlapping windows of the model's length and lays out, "
        "per window, core nodes — Video Model Inputs -> WanVaceToVideo -> KSampler -> TrimVideoLatent -> VAEDecode "
        "(wan_vace), or VAEEncode -> SetLatentNoiseMask -> KSampler -> VAEDecode (latent_inpaint, any model) — each window "
        "starting with the last frames generated for the one before as known frames, then joins them (Join Windows). The "
        "graph is built when it runs (ComfyUI node expansion); progress shows on this node. Seeds: seed + window index."
    )
    CATEGORY = category("video models")
    FUNCTION = "expand"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("the whole re-shot video: every clip, every window joined",)

    @classmethod
    def INPUT_TYPES(cls):
        samplers, schedulers = runtime.sampler_choices()
        return {
            "required": {
                # rawLink: the expansion wires these to the nodes that produce them (no copies, normal caching).
                "model": ("MODEL", {"rawLink": True, "tooltip": "the video model (e.g. UNETLoader -> ModelSamplingSD3 shift 8 for Wan)"}),
                "positive": ("CONDITIONING", {"rawLink": True}),
                "negative": ("CONDITIONING", {"rawLink": True}),
                "vae": ("VAE", {"rawLink": True}),
                "method": (METHODS, {"default": "wan_vace", "tooltip": "wan_vace: a Wan 2.1 VACE model (control video + mask); latent_inpaint: any model, SetLatentNoiseMask keeps the rendered latents"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True, "tooltip": "window k uses seed + k"}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "step": 1}),
                "cfg": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
                "sampler_name": (samplers, {"default": "uni_pc" if "uni_pc" in samplers else samplers[0]}),
                "scheduler": (schedulers, {"default": "simple" if "simple" in schedulers else schedulers[0]}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "round": 0.001, "tooltip": "KSampler's denoise (latent_inpaint: below 1 starts from the noised render)"}),
                "vace_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01, "round": 0.001, "tooltip": "WanVaceToVideo's strength"}),
                **_bridge_inputs(),
                "hole_fill": ([AUTO, *vm.HOLE_FILLS], {"default": AUTO, "tooltip": "auto: grey for wan_vace, blur for latent_inpaint"}),
                "blend": (list(vm.BLENDS), {"default": "crossfade", "tooltip": "how windows are joined over the carried frames"}),
            },
            "optional": {
                "render": (RENDER, {"tooltip": "RenderGaussians' render output (every clip of a rig is re-shot)"}),
                "images": ("IMAGE", {"tooltip": "instead of a render: any video"}),
                "holes": ("MASK", {"tooltip": "with 'images': 1 where the model must generate"}),
                "reference": ("IMAGE", {"tooltip": "wan_vace: reference_image for every window (frame 0 of it), e.g. the source video"}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def expand(self, model, positive, negative, vae, method, seed, steps, cfg, sampler_name, scheduler, denoise, vace_strength, video_model, fit, width, height, window_length, overlap, min_alpha, depth_edge, edge_px, feather, hole_fill, blend, render=None, images=None, holes=None, reference=None, unique_id="vid4d"):
        graph, output, lines = build_window_graph(
            dict(model=model, positive=positive, negative=negative, vae=vae),
            method=method, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler, denoise=denoise, vace_strength=vace_strength,
            bridge=dict(video_model=video_model, fit=fit, width=width, height=height, window_length=window_length, overlap=overlap, min_alpha=min_alpha, depth_edge=depth_edge, edge_px=edge_px, feather=feather),
            hole_fill=hole_fill, blend=blend, render=render, images=images, holes=holes, reference=reference, prefix=str(unique_id),
        )
        return {"result": (output,), "expand": graph, "ui": info(*lines)}


def build_window_graph(links: dict, *, method, seed, steps, cfg, sampler_name, scheduler, denoise, vace_strength, bridge: dict, hole_fill, blend, render=None, images=None, holes=None, reference=None, prefix="vid4d"):
    """The expansion of :class:`Vid4DWindowedSampler`: ``(graph, output link, report lines)``.

    ``links`` maps model / positive / negative / vae to what the core nodes' inputs get (the raw links
    of the expanding node). The render, images and reference travel as values into the Video Model
    Inputs node of each window.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    spec = vm.video_model(bridge["video_model"])
    fill = hole_fill if hole_fill != AUTO else ("grey" if method == "wan_vace" else "blur")
    if render is not None and images is not None:
        raise ValueError("connect either 'render' (RenderGaussians) or 'images' (+ 'holes'), not both")
    if render is not None:
        clips = list(expect(render, RENDER, "render").clip_frames)
    elif images is not None:
        clips = [check_image("images", images).shape[0]]
    else:
        raise ValueError("connect 'render' (RenderGaussians' render output) or 'images' (+ an optional 'holes' MASK)")
    g = _Graph(prefix)
    total, video, lines = 0, None, []
    for c, frames in enumerate(clips):
        plan = vm.plan_windows(frames, bridge["window_length"] or spec.window, bridge["overlap"], spec.step)
        joined = None
        for win in plan:
            tag = f"c{c}w{win.index}"
            b = g.node(f"{tag}.inputs", "Vid4DVideoModelInputs", **bridge, hole_fill=fill, window_index=win.index, clip=c, reference_frame=0,
                       render=render, images=images, holes=holes, previous=[joined, 0] if joined else None, reference=reference)
            if method == "wan_vace":
                v = g.node(f"{tag}.vace", "WanVaceToVideo", positive=links["positive"], negative=links["negative"], vae=links["vae"], width=[b, 3], height=[b, 4], length=[b, 5],
                           batch_size=1, strength=vace_strength, control_video=[b, 0], control_masks=[b, 1], reference_image=[b, 2] if reference is not None else None)
                s = g.node(f"{tag}.sampler", "KSampler", model=links["model"], seed=seed + total, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                           positive=[v, 0], negative=[v, 1], latent_image=[v, 2], denoise=denoise)
                latent = [g.node(f"{tag}.trim", "TrimVideoLatent", samples=[s, 0], trim_amount=[v, 3]), 0]
            else:
                e = g.node(f"{tag}.encode", "VAEEncode", pixels=[b, 0], vae=links["vae"])
                m = g.node(f"{tag}.mask", "SetLatentNoiseMask", samples=[e, 0], mask=[b, 6])
                s = g.node(f"{tag}.sampler", "KSampler", model=links["model"], seed=seed + total, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                           positive=links["positive"], negative=links["negative"], latent_image=[m, 0], denoise=denoise)
                latent = [s, 0]
            d = g.node(f"{tag}.decode", "VAEDecode", samples=latent, vae=links["vae"])
            joined = g.node(f"{tag}.join", "Vid4DJoinWindows", window=[d, 0], overlap=win.carried, blend=blend, previous=[joined, 0] if joined else None)
            total += 1
        video = joined if video is None else g.node(f"c{c}.clip", "Vid4DJoinWindows", window=[joined, 0], overlap=0, blend=blend, previous=[video, 0])
        lines.append(f"clip {c + 1}: {frames} frames -> {len(plan)} window(s) of {plan[0].length} " + (f"starting at {', '.join(str(w.start) for w in plan)}" if len(plan) > 1 else ""))
    lines.append(f"{method}: {total} window(s) laid out as core nodes ({sampler_name}/{scheduler}, {steps} steps, cfg {cfg:g}, seed {seed}+k)")
    return g.nodes, [video, 0], lines


NODE_CLASS_MAPPINGS = {"Vid4DVideoModelInputs": Vid4DVideoModelInputs, "Vid4DJoinWindows": Vid4DJoinWindows, "Vid4DWindowedSampler": Vid4DWindowedSampler}
NODE_DISPLAY_NAME_MAPPINGS = {
    "Vid4DVideoModelInputs": "Video Model Inputs (Vid4D -> Wan / any model)",
    "Vid4DJoinWindows": "Join Windows (Vid4D)",
    "Vid4DWindowedSampler": "Windowed Sampler (Vid4D long re-shoot)",
}
