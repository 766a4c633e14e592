"""SpectralMotion (Generative Image Dynamics): a still image's oscillating motion as a spectral volume."""

from __future__ import annotations

from ..py import spectral as sp
from ..py.checks import check_image, check_mask, check_finite, check_memory
from . import runtime
from .common import CAMERA_PATH, DEPTH, MOTION_MODEL, MOTION_TEXTURE, SPECTRAL_VOLUME, category, expect, info, warn

MODES = ["procedural", "from_video", "model", "transfer"]
DTYPES = ["float32", "float16", "bfloat16"]


class SpectralMotion:
    DESCRIPTION = (
        "Natural oscillating motion (trees, flowers, water, candles) for a still image, as a spectral volume: the K lowest "
        "temporal Fourier terms of every pixel's displacement (Generative Image Dynamics). procedural: a seeded 'motion brush' "
        "inside the mask (no weights): a main direction, an amplitude in pixels, a frequency band and a coherence length. "
        "from_video: the motion of every pixel of the video's first frame (dense flow tracking), optionally without the camera's "
        "motion, applied to the image. model: predicted from the image by a motion LDM (Motion Model Loader (Vid4D)). transfer: "
        "apply a spectral volume from another SpectralMotion. Outputs the volume, a motion texture of num_frames at fps "
        "(seamlessly looping with loop on), the amplitude of every frequency and the motion as a flow colour video."
    )
    CATEGORY = category("dynamics")
    FUNCTION = "run"
    RETURN_TYPES = (SPECTRAL_VOLUME, MOTION_TEXTURE, "IMAGE", "IMAGE")
    RETURN_NAMES = ("spectral_volume", "motion_texture", "amplitude_bands", "motion_preview")
    OUTPUT_TOOLTIPS = (
        "the spectral volume [K, H, W, 2] at the image size",
        "per-frame displacement of every image pixel (num_frames at fps), for SoftmaxSplat",
        "one image per frequency that moves (DC first): the amplitude of that harmonic, each normalised to its own peak; bands with no motion are left out (the report names the ones shown)",
        "the motion texture on the flow colour wheel (hue = direction, saturation = magnitude)",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "the still image I0 to animate (first of the batch); its size is the motion's size"}),
                "mode": (MODES, {"default": "procedural", "tooltip": "where the motion comes from"}),
                "num_freqs": ("INT", {"default": 16, "min": 1, "max": 512, "step": 1, "tooltip": "K frequencies kept, DC included (at most frames // 2 + 1 of the clip); model mode uses the model's own"}),
                "amplitude_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.05, "round": 0.001, "tooltip": "multiplies the motion"}),
                "num_frames": ("INT", {"default": 150, "min": 2, "max": 10000, "step": 1, "tooltip": "frames of the motion texture (and the procedural motion's period)"}),
                "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 240.0, "step": 0.5, "round": 0.01, "tooltip": "frame rate of the motion texture (and of the from_video video)"}),
                "loop": ("BOOLEAN", {"default": True, "tooltip": "stretch one period of the motion over num_frames so the video loops without a seam"}),
                "direction": ("FLOAT", {"default": 0.0, "min": -360.0, "max": 360.0, "step": 1.0, "round": 0.1, "tooltip": "procedural: main sway direction in degrees (0 = right, 90 = down)"}),
                "amplitude": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 500.0, "step": 0.1, "round": 0.01, "tooltip": "procedural: motion size in pixels (sum of the harmonics' RMS amplitudes)"}),
                "freq_low": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 60.0, "step": 0.05, "round": 0.001, "tooltip": "procedural: lowest frequency in Hz"}),
                "freq_high": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 120.0, "step": 0.05, "round": 0.001, "tooltip": "procedural: highest frequency in Hz"}),
                "coherence": ("FLOAT", {"default": 16.0, "min": 0.0, "max": 4096.0, "step": 0.5, "round": 0.01, "tooltip": "procedural: pixels over which neighbours sway together; also the stiff band along the mask border"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "step": 1, "tooltip": "procedural and model: random seed"}),
                "remove_camera_motion": ("BOOLEAN", {"default": False, "tooltip": "from_video: subtract a per-frame homography (the camera's motion)"}),
                "steps": ("INT", {"default": 25, "min": 1, "max": 1000, "step": 1, "tooltip": "model: DDIM sampling steps"}),
            },
            "optional": {
                "video": ("IMAGE", {"tooltip": "from_video: the video whose first frame's motion is measured"}),
                "mask": ("MASK", {"tooltip": "procedural: where the brush paints; other modes: motion only inside it"}),
                "model": (MOTION_MODEL, {"tooltip": "model: a motion model from Motion Model Loader (Vid4D)"}),
                "spectral_volume": (SPECTRAL_VOLUME, {"tooltip": "transfer: a spectral volume to apply to this image (resized, vectors rescaled)"}),
                "camera": (CAMERA_PATH, {"tooltip": "from_video with remove_camera_motion: the video's solved camera (Estimate Camera) removes the camera's motion with parallax, where a homography fits only one plane; needs depth too"}),
                "depth": (DEPTH, {"tooltip": "from_video with camera: the video's depth (Estimate Camera's depth from motion, or any depth video); frame 0 is used"}),
            },
        }

    def run(self, image, mode, num_freqs, amplitude_scale, num_frames, fps, loop, direction, amplitude, freq_low, freq_high, coherence, seed, remove_camera_motion, steps, video=None, mask=None, model=None, spectral_volume=None, camera=None, depth=None):
        still = check_image("image", image)[0]
        height, width = still.shape[:2]
        # the motion texture, its flow-colour preview and magnitude (~24 bytes a pixel and frame), the volume and its bands
        check_memory(f"SpectralMotion: a {num_frames}-frame motion texture of {width}x{height}", (24.0 * num_frames + 64.0 * num_freqs) * width * height,
                     "lower num_frames, or animate a smaller image")
        region = None if mask is None else check_mask("mask", mask, height=height, width=width)[0]
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        unused = [name for name, value, used in (("video", video, "from_video"), ("model", model, "model"), ("spectral_volume", spectral_volume, "transfer"),
                                                 ("camera", camera, "from_video"), ("depth", depth, "from_video")) if value is not None and mode != used]
        lines = []
        if mode == "procedural":
            if freq_high < freq_low:
                raise ValueError(f"freq_high {freq_high:g} Hz is below freq_low {freq_low:g} Hz; expected freq_low <= freq_high")
            volume = sp.motion_brush(
                region if region is not None else still.new_ones(height, width),
                direction, amplitude, (freq_low, freq_high), coherence, seed, num_freqs=num_freqs, period=num_frames, fps=fps,
            )
            region = None  # the brush already painted inside the mask
            lines.append(f"procedural: {amplitude:g} px along {direction:g}°, {freq_low:g}-{freq_high:g} Hz, coherence {coherence:g} px, seed {seed}")
        elif mode == "from_video":
            if video is None:
                raise ValueError("mode from_video needs the 'video' input: connect the video whose motion to measure")
            frames = check_image("video", video)
            solved, depth0, valid0 = _solved_camera(camera, depth, frames, remove_camera_motion)
            progress = runtime.Progress(frames.shape[0], "spectral volume: tracking")
            volume = sp.spectral_volume_from_video(frames, num_freqs, fps, remove_camera_motion=remove_camera_motion, progress=progress.callback(), camera=solved, depth=depth0, valid=valid0)
            removal = "by the solved camera" if solved is not None else "by a homography per frame"
            lines.append(f"from_video: {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]}" + (f", camera motion removed {removal}" if remove_camera_motion else ""))
        elif mode == "model":
            if model is None:
                raise ValueError("mode model needs the 'model' input: connect a Motion Model Loader (Vid4D)")
            pipe = expect(model, MOTION_MODEL, "model")
            progress = runtime.Progress(steps, "spectral volume: sampling")
            volume = pipe(still.to(pipe.device), num_steps=steps, seed=seed, progress=progress.callback())
            check_finite(f"the motion model {pipe.name}'s spectral volume", volume.coeffs)  # NaN weights or an fp16 overflow
            lines.append(f"model {pipe.name} ({pipe.layout}): {steps} DDIM steps, seed {seed}, K = {pipe.num_freqs}")
        else:
            if spectral_volume is None:
                raise ValueError("mode transfer needs the 'spectral_volume' input: connect a SpectralMotion output")
            volume = expect(spectral_volume, SPECTRAL_VOLUME, "spectral_volume")
            lines.append(f"transfer: a {volume.coeffs.shape[2]}x{volume.coeffs.shape[1]} volume applied to {width}x{height}")
        runtime.check_interrupted()
        volume = sp.transfer_volume(volume.to("cpu"), height, width, amplitude_scale, region)
        texture = sp.MotionTexture(sp.motion_texture(volume, num_frames, fps, loop=loop, cancel=runtime.check_interrupted), fps=fps)
        runtime.check_interrupted()
        bands, peaks = sp.amplitude_bands(volume)
        preview = sp.flow_to_color(texture.displacement)
        mean, peak, implausible = sp.motion_check(texture.displacement)
        lines.append(f"K = {volume.num_freqs}, period {volume.period} frames at {volume.fps:g} fps; texture {num_frames} frames at {fps:g} fps" + (" (looping)" if loop else ""))
        lines.append(f"motion: max {peak:.2f} px, mean {mean:.2f} px; peak per band (px): " + ", ".join(f"{float(p):.2f}" for p in peaks[:8]) + (" ..." if len(peaks) > 8 else ""))
        if implausible:
            lines.append(warn("SpectralMotion", _implausible_motion(mode, mean, max(height, width), remove_camera_motion, camera is not None)))
        moving = (peaks > 0).nonzero().flatten().tolist()
        if len(moving) < len(peaks):
            # An empty band is an all-black image: left out of the preview, named here.
            lines.append(f"amplitude_bands: {len(moving)} of {len(peaks)} bands move" + (f" (shown: {_ranges(moving)})" if moving else " (none: one black image)"))
            bands = bands[moving] if moving else bands[:1]
        if unused:
            lines.append(f"ignored in mode {mode}: {', '.join(unused)}")
        return {"ui": info(*lines), "result": (volume, texture, bands, preview)}


def _motion_file(name: str):
    """(path or None, problems) of a motion model name in models/vid4d/motion/."""
    from ..models import loading
    from ..models.motion import COMMUNITY_HINT, VID4D_HINT, check_files

    problems = loading.Problems()
    path = loading.locate("model_name", name, runtime.model_dirs("motion"), "models/vid4d/motion/", f"expected {VID4D_HINT}, or {COMMUNITY_HINT}", problems)
    if path is not None:
        problems.extend(check_files(path))
    return path, problems


def _solved_camera(camera, depth, frames, remove: bool):
    """(camera path, frame 0's depth [H, W], its valid mask) for solved-camera removal, or Nones (homography)."""
    if camera is None:
        if depth is not None and remove:
            raise ValueError("depth: the solved-camera removal needs the camera input too (Estimate Camera's camera); without it a homography is used")
        return None, None, None
    path = expect(camera, CAMERA_PATH, "camera")
    if not remove:
        return None, None, None
    if depth is None:
        raise ValueError("camera: removing the solved camera's motion needs the depth input too (Estimate Camera's depth)")
    video_depth = expect(depth, DEPTH, "depth")
    t, h, w, _ = frames.shape
    if tuple(video_depth.depth.shape[1:]) != (h, w):
        raise ValueError(f"depth is {video_depth.depth.shape[2]}x{video_depth.depth.shape[1]} but the video is {w}x{h}")
    valid = None if video_depth.valid is None else video_depth.valid[0]
    return path, video_depth.depth[0], valid


def _implausible_motion(mode: str, mean: float, size: int, removed: bool, solved: bool) -> str:
    share = f"mean motion {mean:.1f} px is {100 * mean / size:.0f}% of the frame, more than the {100 * sp.PLAUSIBLE_MOTION:.0f}% an oscillation (leaves, water, cloth) moves: the animated image would tear"
    if mode != "from_video":
        return f"{share}; lower amplitude / amplitude_scale"
    if not removed:
        return f"{share}; if the camera moves, turn on remove_camera_motion"
    if not solved:
        return (f"{share} after removing a homography (one plane's motion); for a camera moving through a 3D scene connect Estimate Camera's "
                "camera and depth (solved-camera removal); a subject that travels across the frame (walking, running) has no oscillation to transfer")
    return f"{share} after removing the solved camera's motion: the subject itself travels (no oscillation to transfer); trim the clip or mask the motion"


def _ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"0-2, 5"``."""
    parts, start = [], None
    for i, v in enumerate(indices):
        if start is None:
            start = v
        if i + 1 == len(indices) or indices[i + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)


class Vid4DMotionModelLoader:
    DESCRIPTION = (
        "Load a motion model for SpectralMotion's model mode from models/vid4d/motion/: a Vid4D motion LDM (.safetensors with "
        "its config and spectral statistics) or the unofficial community checkpoint folder (fltwr/generative-image-dynamics: "
        "unet_v1.pth, vqvae/, fft_std.npy). See the README's model table."
    )
    CATEGORY = category("dynamics")
    FUNCTION = "load"
    RETURN_TYPES = (MOTION_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("the loaded motion model",)

    @classmethod
    def INPUT_TYPES(cls):
        names = runtime.list_models("motion", folders=True) or ["gid_motion.safetensors"]
        return {
            "required": {
                "model_name": (names, {"tooltip": "a .safetensors file or a community folder in models/vid4d/motion/"}),
                "dtype": (DTYPES, {"default": "float32", "tooltip": "weights' precision (float16/bfloat16 on GPUs)"}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        # Checked when the prompt is queued (files only, nothing loaded): the server refuses it at once.
        _, problems = _motion_file(model_name)
        return True if not problems else problems.message("motion model")

    def load(self, model_name, dtype):
        import torch

        from ..models.motion import load_motion_model

        path, problems = _motion_file(model_name)
        problems.raise_if_any("motion model")
        pipe = load_motion_model(path, device=runtime.get_device(), dtype=getattr(torch, dtype))
        text = f"{pipe.name}: {pipe.layout} layout, K = {pipe.num_freqs}, period {pipe.period} frames, latent {pipe.latent_size[1]}x{pipe.latent_size[0]}"
        return {"ui": info(text), "result": (pipe,)}


NODE_CLASS_MAPPINGS = {"SpectralMotion": SpectralMotion, "Vid4DMotionModelLoader": Vid4DMotionModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"SpectralMotion": "Spectral Motion (Generative Image Dynamics)", "Vid4DMotionModelLoader": "Motion Model Loader (Vid4D)"}
