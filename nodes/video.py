"""Vid4DLoadVideo / Vid4DSaveVideo: video files in and out as ordinary ComfyUI IMAGE batches."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..py import video as vio
from ..py.checks import check_finite_number, check_image
from . import runtime
from .common import category, info, output_path, preview_entry

FITS = ["crop", "pad", "stretch"]
FORMATS = ["mp4", "webm", "webp", "gif"]
# The loader's built-in clip: the procedural sample scene (py/scene.py), so every shipped workflow runs with no file;
# choose your video in the list, upload one, or give --input to the headless runner instead.
SAMPLE = "(sample scene)"
SAMPLE_FRAMES, SAMPLE_WIDTH, SAMPLE_HEIGHT, SAMPLE_FPS = 24, 256, 160, 12.0


def _input_videos() -> list[str]:
    folder = runtime.input_directory()
    if not folder.is_dir():
        return [SAMPLE]
    exts = vio.VIDEO_EXTENSIONS + vio.ANIMATED_EXTENSIONS
    return [SAMPLE, *sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)]


def _source(video: str, path: str | None) -> Path | None:
    """The file or folder to read (None = the sample scene). ``video`` is a name in the input folder; ``path`` may
    also be absolute (a typed path, the runner's --input) but a relative one stays inside the input folder."""
    if isinstance(path, str) and path.strip():
        return runtime.resolve_input_file(path)
    if video == SAMPLE:
        return None
    return runtime.resolve_input_file(video, absolute=False)


def _sample_clip(start: int, stride: int, max_frames: int, width: int, height: int, fit: str, multiple_of: int) -> vio.VideoClip:
    """The sample scene as a clip of ``max_frames`` frames (SAMPLE_FRAMES when 0) at 12 fps / stride, its whole motion
    spread over them (the scene is parametrised by the clip's phase), rendered straight at the requested size (no
    resampling; 256x160 when width and height are 0)."""
    from ..py.scene import sample_scene

    count = max_frames or SAMPLE_FRAMES
    total = start + stride * (count - 1) + 1
    if total > 1000:
        raise ValueError(f"the sample scene renders at most 1000 frames; start_frame + frame_stride x max_frames asks for {total}")
    w, h = vio.target_size(SAMPLE_WIDTH, SAMPLE_HEIGHT, width, height, fit, multiple_of)
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"the sample scene renders 16..4096 pixels a side; {w}x{h} asked for")
    # (the scene is a motion, at least two frames: a one-frame clip, a still image, is its first frame)
    scene = sample_scene(max(2, total), w, h, seed=0, fps=SAMPLE_FPS)
    frames = scene.frames[start::stride][:count]
    return vio.VideoClip(frames=frames, fps=SAMPLE_FPS / stride, source_width=SAMPLE_WIDTH, source_height=SAMPLE_HEIGHT, source_frames=total)


class Vid4DLoadVideo:
    DESCRIPTION = (
        "Load a video (mp4/webm/mov/mkv/avi, gif, animated webp/png) or a folder of images as IMAGE frames. "
        "Frames are decoded one at a time and resized on the fly, so long or large videos do not fill memory."
    )
    CATEGORY = category("video")
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT")
    RETURN_NAMES = ("frames", "fps", "frame_count")
    OUTPUT_TOOLTIPS = ("the selected frames, [T, H, W, 3]", "frame rate of the output (source fps / stride)", "number of frames output")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": (_input_videos(), {"video_upload": True, "tooltip": f"a video in ComfyUI's input folder (upload one with the button); {SAMPLE} is the built-in procedural clip (24 frames or max_frames, 256x160 or the size asked, 12 fps), so a workflow runs before you pick a file"}),
                "start_frame": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "step": 1, "tooltip": "index of the first frame taken"}),
                "frame_stride": ("INT", {"default": 1, "min": 1, "max": 1000, "step": 1, "tooltip": "take every n-th frame"}),
                "max_frames": ("INT", {"default": 0, "min": 0, "max": 100_000, "step": 1, "tooltip": "cap on the number of frames (0 = all)"}),
                "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 1, "tooltip": "target width (0 = from height and aspect, or the source width)"}),
                "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 1, "tooltip": "target height (0 = from width and aspect, or the source height)"}),
                "fit": (FITS, {"default": "crop", "tooltip": "crop: fill the size and cut the overflow; pad: fit inside with black bars; stretch: ignore aspect"}),
                "multiple_of": ("INT", {"default": 8, "min": 1, "max": 256, "step": 1, "tooltip": "snap the size to a multiple (8 for VAEs, 16 for CogVideoX); crop floors, pad ceils, stretch rounds"}),
            },
            "optional": {
                "path": ("STRING", {"default": "", "tooltip": "instead of the list: a file path or a folder of images (absolute, or relative to the input folder)"}),
                "folder_fps": ("FLOAT", {"default": 8.0, "min": 0.1, "max": 240.0, "step": 0.01, "round": 0.001, "tooltip": "frame rate for a folder of images"}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, input_types, video, path=None):
        # ComfyUI calls this instead of checking `video` against the list, so a typed path or a
        # path linked from another node (its value is not known yet) is accepted.
        if "path" in (input_types or {}):
            return True
        try:
            source = _source(video, path)
        except ValueError as exc:
            return str(exc)
        if source is not None and not source.exists():
            return f"video not found: {source}"
        return True

    @classmethod
    def IS_CHANGED(cls, video, path=None, **_):
        try:
            source = _source(video, path)
        except ValueError:
            return ""
        if source is None:
            return SAMPLE
        if not source.exists():
            return ""
        h = hashlib.sha256(str(source).encode())
        for p in [source] if source.is_file() else sorted(source.iterdir()):
            st = p.stat()
            h.update(f"{p.name}:{st.st_mtime_ns}:{st.st_size}".encode())
        return h.hexdigest()

    def load(self, video, start_frame, frame_stride, max_frames, width, height, fit, multiple_of, path="", folder_fps=8.0):
        source = _source(video, path)
        if source is None:
            clip = _sample_clip(start_frame, frame_stride, max_frames, width, height, fit, multiple_of)
            t, h, w, _ = clip.frames.shape
            text = f"{t} frames {w}x{h} @ {clip.fps:.3f} fps of the built-in sample scene (choose or upload a video to use your own)"
            return {"ui": info(text), "result": (clip.frames, float(clip.fps), int(t))}
        if not source.exists():
            which = "path" if isinstance(path, str) and path.strip() else "video"
            raise ValueError(f"{which}: {source} does not exist; choose a video in the input folder ({runtime.input_directory()}), upload one, or give an existing file or folder")
        estimate = vio.probe_video(source) if source.is_file() else None
        total = estimate["num_frames"] if estimate and estimate.get("num_frames") else 0
        expected = max((total - start_frame + frame_stride - 1) // frame_stride, 1) if total else 1
        if max_frames:
            expected = min(expected, max_frames) if total else max_frames
        progress = runtime.Progress(expected, "load video")
        clip = vio.read_video(
            source,
            start=start_frame,
            stride=frame_stride,
            max_frames=max_frames,
            width=width,
            height=height,
            fit=fit,
            multiple_of=multiple_of,
            folder_fps=folder_fps,
            progress=progress.callback(),
        )
        t, h, w, _ = clip.frames.shape
        text = f"{t} frames {w}x{h} @ {clip.fps:.3f} fps (source {clip.source_width}x{clip.source_height}, {clip.source_frames} frames)"
        return {"ui": info(text), "result": (clip.frames, float(clip.fps), int(t))}


class Vid4DSaveVideo:
    DESCRIPTION = (
        "Save IMAGE frames as an mp4 (H.264), webm (VP9), animated webp or gif in the output folder, with a preview "
        "on the node and optionally a contact-sheet PNG of evenly spaced frames next to it."
    )
    CATEGORY = category("video")
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("full path of the saved video (feed it to Vid4DLoadVideo's path)",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "frames [T, H, W, 3]"}),
                "filename_prefix": ("STRING", {"default": "vid4d/video", "tooltip": "file name in the output folder; '/' makes sub-folders"}),
                "fps": ("FLOAT", {"default": 8.0, "min": 0.1, "max": 240.0, "step": 0.01, "round": 0.001}),
                "format": (FORMATS, {"default": "mp4", "tooltip": "mp4: H.264 (odd sizes padded by one pixel); webm: VP9; webp/gif: animated images"}),
                "crf": ("INT", {"default": 19, "min": 0, "max": 51, "step": 1, "tooltip": "mp4/webm quality: lower is better and larger (0 = visually lossless)"}),
                "contact_sheet": ("BOOLEAN", {"default": True, "tooltip": "also save a PNG grid of evenly spaced frames"}),
            },
        }

    def save(self, images, filename_prefix, fps, format, crf, contact_sheet):
        frames = check_image("images", images)
        fps = check_finite_number("fps", fps, low=0.01, high=1000.0)
        if format not in FORMATS:
            raise ValueError(f"format: expected one of {FORMATS}, got {format!r}")
        path, subfolder, _ = output_path(filename_prefix, format)
        progress = runtime.Progress(1, "save video")
        vio.write_video(frames, path, fps, crf=int(crf), quality=90)
        lines = [f"saved {path.name}: {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]} @ {fps:g} fps"]
        if contact_sheet:
            sheet = path.with_name(path.stem + "_sheet.png")
            vio.save_image(vio.contact_sheet(frames), sheet)
            lines.append(f"contact sheet {sheet.name}")
        progress.update()
        ui = {"images": [preview_entry(path, subfolder)], "animated": (True,), **info(*lines)}
        return {"ui": ui, "result": (str(path),)}




class Vid4DStackVideos:
    DESCRIPTION = (
        "Two IMAGE videos side by side (or one above the other), e.g. a render before and after a change. The shorter "
        "one holds its last frame; a different height (width when stacked vertically) is scaled to match."
    )
    CATEGORY = category("video")
    FUNCTION = "stack"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("a next to b, frame by frame",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "a": ("IMAGE", {"tooltip": "left (or top) video"}),
                "b": ("IMAGE", {"tooltip": "right (or bottom) video"}),
                "direction": (["horizontal", "vertical"], {"default": "horizontal"}),
            }
        }

    def stack(self, a, b, direction):
        import torch
        import torch.nn.functional as F

        a, b = check_image("a", a), check_image("b", b)
        if direction not in ("horizontal", "vertical"):
            raise ValueError(f"direction: expected 'horizontal' or 'vertical', got {direction!r}")
        axis = 2 if direction == "horizontal" else 1
        other = 1 if axis == 2 else 2
        if b.shape[other] != a.shape[other]:
            scale = a.shape[other] / b.shape[other]
            size = (a.shape[1], max(1, round(b.shape[2] * scale))) if axis == 2 else (max(1, round(b.shape[1] * scale)), a.shape[2])
            b = F.interpolate(b.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False, antialias=True).permute(0, 2, 3, 1).clamp(0, 1)
        frames = max(a.shape[0], b.shape[0])
        hold = lambda x: torch.cat([x, x[-1:].expand(frames - x.shape[0], -1, -1, -1)]) if x.shape[0] < frames else x  # noqa: E731
        out = torch.cat([hold(a), hold(b)], dim=axis)
        return {"ui": info(f"{frames} frames {out.shape[2]}x{out.shape[1]}"), "result": (out,)}


NODE_CLASS_MAPPINGS = {"Vid4DLoadVideo": Vid4DLoadVideo, "Vid4DSaveVideo": Vid4DSaveVideo, "Vid4DStackVideos": Vid4DStackVideos}
NODE_DISPLAY_NAME_MAPPINGS = {"Vid4DLoadVideo": "Load Video (Vid4D)", "Vid4DSaveVideo": "Save Video (Vid4D)", "Vid4DStackVideos": "Stack Videos (Vid4D)"}
