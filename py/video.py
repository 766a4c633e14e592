"""Video file I/O: read a video, an animation or an image folder into frames, write frames back.

Frames are ComfyUI IMAGE batches: float32 ``[T, H, W, 3]`` in 0..1. Reading streams one frame at a
time and resizes in small chunks, so a long 4K file never sits in memory at full resolution; the
output size is checked against ``max_bytes`` before decoding starts. ``av`` (PyAV) and ``PIL`` are
imported inside the functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from .checks import check_finite_number, check_image, check_positive_int

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
ANIMATED_EXTENSIONS = (".gif", ".webp", ".png", ".apng")  # read with PIL; a still image is a 1-frame video
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # frames of an image folder
WRITE_FORMATS = ("mp4", "webm", "webp", "gif")
FIT_MODES = ("crop", "pad", "stretch")

_CHUNK = 16  # frames resized together: big enough to amortise interpolate, small enough to bound memory
_CHUNK_BYTES = 512 << 20  # ...and at most this much float32 source data (4K: 5 frames, not 16)
_DEFAULT_VIDEO_FPS = 24.0  # a stream that declares no rate at all
_DEFAULT_ANIMATION_FPS = 10.0  # browsers' behaviour for GIFs without a frame delay
_MAX_SIDE = 16384

Progress = Callable[[int], None]


@dataclass
class VideoClip:
    """Frames read from a file or folder.

    Attributes:
        frames: ``[T, H, W, 3]`` float32 in 0..1.
        fps: frame rate of ``frames`` (the file's rate divided by the stride).
        source_width, source_height: size of the frames in the file, before resizing.
        source_frames: frames in the file (the decoded count, or the container's best estimate
            when decoding stopped early at ``max_frames``).
    """

    frames: torch.Tensor
    fps: float
    source_width: int
    source_height: int
    source_frames: int

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


# --------------------------------------------------------------------------------------------- sizes


def target_size(src_width: int, src_height: int, width: int = 0, height: int = 0, fit: str = "crop", multiple_of: int = 1) -> tuple[int, int]:
    """Output ``(width, height)`` for a source of ``src_width x src_height``.

    ``width``/``height`` 0 derive that side from the other, keeping the source aspect; both 0 keep
    the source size. The result is then snapped to ``multiple_of`` (models often need multiples of
    8/14/16): ``crop`` floors (the crop loses a few pixels), ``pad`` ceils (the padding adds a few),
    ``stretch`` rounds to the nearest. Never below one multiple.
    """
    src_width = check_positive_int("src_width", src_width)
    src_height = check_positive_int("src_height", src_height)
    width = check_positive_int("width", width, minimum=0, maximum=_MAX_SIDE)
    height = check_positive_int("height", height, minimum=0, maximum=_MAX_SIDE)
    multiple_of = check_positive_int("multiple_of", multiple_of, minimum=1, maximum=256)
    if fit not in FIT_MODES:
        raise ValueError(f"fit: expected one of {FIT_MODES}, got {fit!r}")

    if width == 0 and height == 0:
        width, height = src_width, src_height
    elif width == 0:
        width = max(1, round(src_width * height / src_height))
    elif height == 0:
        height = max(1, round(src_height * width / src_width))

    def snap(size: int) -> int:
        if fit == "crop":
            steps = size // multiple_of
        elif fit == "pad":
            steps = -(-size // multiple_of)
        else:
            steps = math.floor(size / multiple_of + 0.5)  # half up, not Python's banker's rounding
        return max(1, steps) * multiple_of

    return snap(width), snap(height)


def resize_frames(frames: torch.Tensor, width: int = 0, height: int = 0, fit: str = "crop", multiple_of: int = 1) -> torch.Tensor:
    """Resize ``[T, H, W, 3]`` float frames to ``[T, h, w, 3]`` (size from :func:`target_size`).

    ``stretch`` ignores the aspect; ``crop`` scales to cover the target and centre-crops; ``pad``
    scales to fit inside and centre-pads with black. Bilinear with antialiasing (downscaling
    without it aliases fine texture). Same size: the input is returned unchanged.
    """
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"resize_frames: expected frames [T, H, W, 3], got shape {list(frames.shape)}")
    if not frames.is_floating_point():
        raise ValueError(f"resize_frames: expected float frames in 0..1, got dtype {frames.dtype}")
    src_h, src_w = int(frames.shape[1]), int(frames.shape[2])
    out_w, out_h = target_size(src_w, src_h, width, height, fit, multiple_of)
    if (out_w, out_h) == (src_w, src_h):
        return frames
    out = torch.empty(frames.shape[0], out_h, out_w, 3, dtype=frames.dtype, device=frames.device)
    for i in range(0, frames.shape[0], _CHUNK):
        out[i : i + _CHUNK] = _resize_chunk(frames[i : i + _CHUNK], out_w, out_h, fit)
    return out


def fit_layout(src_w: int, src_h: int, out_w: int, out_h: int, fit: str, rescale: bool = True) -> tuple[int, int, int, int]:
    """Where a ``src_w x src_h`` frame goes in an ``out_w x out_h`` one: ``(new_w, new_h, top, left)``.

    The source is first scaled to ``new_w x new_h``: ``stretch`` to the output size, ``crop`` to cover it
    and ``pad`` to fit inside it, keeping the aspect (``rescale=False``: kept at its own size, so crop and
    pad only cut or add pixels). ``crop``: ``(top, left)`` is the window cut from the scaled frame;
    ``pad``: where the scaled frame sits in the output (the rest is padding). Both centred.
    """
    if fit not in FIT_MODES:
        raise ValueError(f"fit: expected one of {FIT_MODES}, got {fit!r}")
    if fit == "stretch":
        return out_w, out_h, 0, 0
    if not rescale:
        new_w, new_h = src_w, src_h
    elif fit == "crop":
        scale = max(out_w / src_w, out_h / src_h)
        # max(): rounding must never leave the scaled image smaller than the crop window
        new_w, new_h = max(out_w, round(src_w * scale)), max(out_h, round(src_h * scale))
    else:
        scale = min(out_w / src_w, out_h / src_h)
        new_w, new_h = min(out_w, max(1, round(src_w * scale))), min(out_h, max(1, round(src_h * scale)))
    if fit == "crop":
        return new_w, new_h, (new_h - out_h) // 2, (new_w - out_w) // 2
    return new_w, new_h, (out_h - new_h) // 2, (out_w - new_w) // 2


def _resize_chunk(frames: torch.Tensor, out_w: int, out_h: int, fit: str) -> torch.Tensor:
    """``[n, H, W, 3]`` float → ``[n, out_h, out_w, 3]`` float in 0..1."""
    new_w, new_h, top, left = fit_layout(frames.shape[2], frames.shape[1], out_w, out_h, fit)
    x = _interpolate(frames.permute(0, 3, 1, 2), new_h, new_w)  # interpolate wants channels first
    if fit == "stretch":
        return x.permute(0, 2, 3, 1)
    if fit == "crop":
        return x[:, :, top : top + out_h, left : left + out_w].permute(0, 2, 3, 1)
    out = x.new_zeros(x.shape[0], 3, out_h, out_w)
    out[:, :, top : top + new_h, left : left + new_w] = x
    return out.permute(0, 2, 3, 1)


def _interpolate(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[n, 3, H, W]`` → ``[n, 3, h, w]``, clamped (bilinear antialiasing overshoots slightly)."""
    if (x.shape[2], x.shape[3]) == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp_(0.0, 1.0)


# ------------------------------------------------------------------------------------------- reading


def read_video(
    source,
    *,
    start: int = 0,
    stride: int = 1,
    max_frames: int = 0,
    width: int = 0,
    height: int = 0,
    fit: str = "crop",
    multiple_of: int = 1,
    folder_fps: float = 8.0,
    max_bytes: int = 16 << 30,
    progress: Progress | None = None,
) -> VideoClip:
    """Read a video file, an animated GIF/WebP/PNG or a folder of images into ``[T, h, w, 3]`` frames.

    Args:
        source: a file path, or a folder of images (taken in natural order: ``f2.png`` before ``f10.png``).
        start: index of the first frame taken.
        stride: take every ``stride``-th frame from ``start`` on (the fps is divided by it).
        max_frames: take at most this many frames (0 = all).
        width, height, fit, multiple_of: output size, see :func:`target_size` / :func:`resize_frames`.
        folder_fps: frame rate given to an image folder (a folder has none of its own).
        max_bytes: refuse to produce more float32 frame data than this.
        progress: called as ``progress(done)`` after each taken frame; an exception it raises
            (e.g. a cancellation) stops the read and propagates.

    Returns:
        a :class:`VideoClip`. Transparent frames are composited over black.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: unsupported extension, undecodable file, no frame taken, output above
            ``max_bytes``, mismatched image sizes in a folder, or a bad argument.
    """
    start = check_positive_int("start", start, minimum=0)
    stride = check_positive_int("stride", stride, minimum=1)
    max_frames = check_positive_int("max_frames", max_frames, minimum=0)
    folder_fps = check_finite_number("folder_fps", folder_fps, low=0.0, high=1000.0)
    if folder_fps <= 0:
        raise ValueError(f"folder_fps: expected a frame rate > 0, got {folder_fps}")
    max_bytes = check_positive_int("max_bytes", max_bytes, minimum=1)
    target_size(1, 1, width, height, fit, multiple_of)  # bad sizes fail before the file is opened

    path = _existing_path(source)
    select = _Selection(start, stride, max_frames)
    resize = (width, height, fit, multiple_of)
    if path.is_dir():
        return _read_folder(path, select, resize, folder_fps, max_bytes, progress)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return _read_av(path, select, resize, max_bytes, progress)
    if suffix in ANIMATED_EXTENSIONS:
        return _read_pil(path, select, resize, max_bytes, progress)
    raise ValueError(_unsupported(path))


def probe_video(source, *, folder_fps: float = 8.0) -> dict:
    """Cheap metadata ``dict(width, height, fps, num_frames)``, without decoding video frames.

    ``num_frames`` comes from the container when it records it; otherwise it is estimated from the
    duration, and only as a last resort counted from the packets (still no decoding). Animations
    are walked frame by frame for their durations (WebP has to decode them for that). An image
    folder reports ``folder_fps``.
    """
    path = _existing_path(source)
    if path.is_dir():
        files = _folder_images(path)
        size = _image_size(files[0])
        return dict(width=size[0], height=size[1], fps=float(folder_fps), num_frames=len(files))
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        av = _import_av()
        try:
            with av.open(str(path)) as container:
                stream = _video_stream(container, path)
                fps = _stream_fps(stream)
                count = _stream_frame_count(container, stream, fps)
                if count is None:
                    count = sum(1 for p in container.demux(stream) if p.size)  # flush packets are empty
                return dict(width=int(stream.codec_context.width), height=int(stream.codec_context.height), fps=fps, num_frames=int(count))
        except _av_errors() as e:
            raise ValueError(f"could not decode {path}: {e}") from e
    if suffix in ANIMATED_EXTENSIONS:
        Image, ImageSequence = _import_pil()
        try:
            with Image.open(path) as im:
                # durations are in the frame headers; PIL has to seek through the frames to read them
                durations = [_pil_duration(frame) for frame in ImageSequence.Iterator(im)]
                return dict(width=im.size[0], height=im.size[1], fps=_animation_fps(durations), num_frames=len(durations))
        except _pil_errors() as e:
            raise ValueError(f"could not decode {path}: {e}") from e
    raise ValueError(_unsupported(path))


@dataclass
class _Selection:
    """Which frame indices are taken: ``start, start + stride, ...``, at most ``max_frames`` of them."""

    start: int
    stride: int
    max_frames: int

    def wants(self, index: int) -> bool:
        return index >= self.start and (index - self.start) % self.stride == 0

    def count(self, total: int) -> int:
        """Frames taken from a file of ``total`` frames."""
        n = max(0, -(-(total - self.start) // self.stride))
        return min(n, self.max_frames) if self.max_frames else n

    def describe(self) -> str:
        return f"start={self.start}, stride={self.stride}, max_frames={self.max_frames}"


class _Collector:
    """Gathers taken frames as resized uint8 chunks and checks the memory budget as it goes.

    uint8 is a quarter of the float32 output, and a chunk is resized as soon as it is complete, so
    at most one chunk (<= 16 frames, fewer for huge frames) exists at full resolution at any time.
    """

    def __init__(self, path: Path, src_w: int, src_h: int, known_frames: int | None, select: _Selection, resize: tuple, max_bytes: int, progress: Progress | None):
        self.path, self.src_w, self.src_h = path, src_w, src_h
        self.select, self.max_bytes, self.progress = select, max_bytes, progress
        self.fit = resize[2]
        self.out_w, self.out_h = target_size(src_w, src_h, *resize)
        self.chunk = max(1, min(_CHUNK, _CHUNK_BYTES // (src_w * src_h * 3 * 4)))
        self.frame_bytes = self.out_w * self.out_h * 3 * 4
        self.pending: list[torch.Tensor] = []
        self.chunks: list[torch.Tensor] = []
        self.taken = 0
        expected = select.count(known_frames) if known_frames is not None else select.max_frames or None
        if expected is not None and expected * self.frame_bytes > max_bytes:
            raise ValueError(self._too_big(expected, known_frames))

    @property
    def full(self) -> bool:
        return bool(self.select.max_frames) and self.taken >= self.select.max_frames

    def add(self, rgb) -> None:
        """Take one ``[H, W, 3]`` uint8 numpy frame."""
        if (self.taken + 1) * self.frame_bytes > self.max_bytes:
            raise ValueError(self._too_big(self.taken + 1, None))
        if rgb.shape[:2] != (self.src_h, self.src_w):
            raise ValueError(f"could not decode {self.path}: frame {self.taken} is {rgb.shape[1]}x{rgb.shape[0]}, the first was {self.src_w}x{self.src_h}")
        self.pending.append(torch.from_numpy(rgb.copy()))  # copy: PIL/PyAV may reuse the buffer
        self.taken += 1
        if len(self.pending) >= self.chunk:
            self._flush()
        if self.progress is not None:
            self.progress(self.taken)

    def _flush(self) -> None:
        if not self.pending:
            return
        chunk = torch.stack(self.pending)
        self.pending = []
        if (self.out_w, self.out_h) != (self.src_w, self.src_h):
            small = _resize_chunk(chunk.float().div_(255.0), self.out_w, self.out_h, self.fit)
            chunk = small.mul_(255.0).round_().to(torch.uint8)
        self.chunks.append(chunk)

    def finish(self, seen: int, exhausted: bool) -> torch.Tensor:
        """The ``[T, h, w, 3]`` float32 frames; ``seen``/``exhausted`` only word the error."""
        self._flush()
        if self.taken == 0:
            total = f"has {seen} frame(s)" if exhausted else f"has at least {seen} frame(s)"
            raise ValueError(f"no frame taken from {self.path}: it {total}, and {self.select.describe()} selects none of them")
        out = torch.empty(self.taken, self.out_h, self.out_w, 3, dtype=torch.float32)
        i = 0
        while self.chunks:  # pop as we go so the uint8 copy shrinks while the float output fills
            chunk = self.chunks.pop(0)
            out[i : i + chunk.shape[0]] = chunk.float().div_(255.0)
            i += chunk.shape[0]
        return out

    def _too_big(self, frames: int, known_frames: int | None) -> str:
        of = f" (of {known_frames} in the file)" if known_frames is not None else ""
        return (
            f"{self.path.name}: {frames} frame(s){of} at {self.out_w}x{self.out_h} need {_human_bytes(frames * self.frame_bytes)} as float32, "
            f"more than max_bytes ({_human_bytes(self.max_bytes)}); lower max_frames, raise stride or choose a smaller width/height"
        )


def _human_bytes(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.2f} {unit}"
    return f"{n} bytes"


def _read_av(path: Path, select: _Selection, resize: tuple, max_bytes: int, progress: Progress | None) -> VideoClip:
    av = _import_av()
    errors = _av_errors()
    try:
        container = av.open(str(path))
    except errors as e:
        raise ValueError(f"could not decode {path}: {e}") from e
    with container:
        try:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"  # frame threading: several times faster on long files
            src_w, src_h = int(stream.codec_context.width), int(stream.codec_context.height)
            fps = _stream_fps(stream)
            known = _stream_frame_count(container, stream, fps)
        except errors as e:
            raise ValueError(f"could not decode {path}: {e}") from e
        if src_w < 1 or src_h < 1:
            raise ValueError(f"could not decode {path}: the video stream has no frame size")
        collect = _Collector(path, src_w, src_h, known, select, resize, max_bytes, progress)
        seen, exhausted = 0, True
        for frame in _guarded(container.decode(stream), path, errors):
            if select.wants(seen):
                try:
                    # width/height: a mid-stream resolution change is scaled back to the first size
                    rgb = frame.to_ndarray(format="rgb24", width=src_w, height=src_h)
                except errors as e:
                    raise ValueError(f"could not decode {path}: {e}") from e
                collect.add(rgb)
            seen += 1
            if collect.full:
                exhausted = False
                break
    frames = collect.finish(seen, exhausted)
    total = seen if exhausted else max(seen, known or 0)
    return VideoClip(frames, fps / select.stride, src_w, src_h, total)


def _read_pil(path: Path, select: _Selection, resize: tuple, max_bytes: int, progress: Progress | None) -> VideoClip:
    Image, ImageSequence = _import_pil()
    errors = _pil_errors()
    try:
        im = Image.open(path)
        src_w, src_h = im.size
        known = int(getattr(im, "n_frames", 1))  # GIF: PIL seeks through the file to count
    except errors as e:
        raise ValueError(f"could not decode {path}: {e}") from e
    with im:
        collect = _Collector(path, src_w, src_h, known, select, resize, max_bytes, progress)
        durations = []
        seen, exhausted = 0, True
        for frame in _guarded(ImageSequence.Iterator(im), path, errors):
            rgb = None
            try:
                if select.wants(seen):
                    rgb = _pil_to_rgb(frame)
                durations.append(_pil_duration(frame))
            except errors as e:
                raise ValueError(f"could not decode {path}: {e}") from e
            if rgb is not None:
                collect.add(rgb)
            seen += 1
            if collect.full:
                exhausted = False
                break
    frames = collect.finish(seen, exhausted)
    return VideoClip(frames, _animation_fps(durations) / select.stride, src_w, src_h, seen if exhausted else known)


def _read_folder(path: Path, select: _Selection, resize: tuple, folder_fps: float, max_bytes: int, progress: Progress | None) -> VideoClip:
    files = _folder_images(path)
    # headers only (cheap): a size mismatch is reported before any decoding, naming the file
    sizes = [_image_size(f) for f in files]
    for f, size in zip(files, sizes):
        if size != sizes[0]:
            raise ValueError(f"{path}: every image must have the same size; {files[0].name} is {sizes[0][0]}x{sizes[0][1]} but {f.name} is {size[0]}x{size[1]}")
    Image, _ = _import_pil()
    errors = _pil_errors()
    src_w, src_h = sizes[0]
    collect = _Collector(path, src_w, src_h, len(files), select, resize, max_bytes, progress)
    for index, f in enumerate(files):
        if not select.wants(index):
            continue
        try:
            with Image.open(f) as im:
                rgb = _pil_to_rgb(im)
        except errors as e:
            raise ValueError(f"could not decode {f}: {e}") from e
        collect.add(rgb)
        if collect.full:
            break
    frames = collect.finish(len(files), True)
    return VideoClip(frames, folder_fps / select.stride, src_w, src_h, len(files))


def _guarded(frames: Iterable, path: Path, errors: tuple) -> Iterator:
    """Yield from ``frames``, turning decoder errors into ``ValueError("could not decode ...")``.

    Only the decoder's ``next()`` is guarded: exceptions raised by the consumer's loop body (e.g. a
    cancelling progress callback) pass through untouched.
    """
    it = iter(frames)
    while True:
        try:
            frame = next(it)
        except StopIteration:
            return
        except errors as e:
            raise ValueError(f"could not decode {path}: {e}") from e
        yield frame


def _pil_to_rgb(im):
    """A PIL frame → ``[H, W, 3]`` uint8 numpy; transparency composited over black."""
    import numpy as np

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey (depth maps, scans): PIL's convert("RGB") would clip it, so scale instead
        grey = np.asarray(im).astype(np.float64)
        if im.mode != "I" or grey.max(initial=0) > 255:  # mode "I" may also hold plain 8-bit values
            grey = grey / 257.0
        grey = np.clip(grey, 0, 255)
        return np.repeat(np.rint(grey).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint16)
        rgb = (rgba[..., :3] * rgba[..., 3:] + 127) // 255
        return rgb.astype(np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _pil_duration(frame) -> float | None:
    """A PIL frame's duration in ms (None if it has none)."""
    if "duration" not in frame.info:
        # WebP (Pillow >= 11) fills the duration in only when the frame is decoded; GIF/APNG on seek
        frame.load()
    return frame.info.get("duration")


def _animation_fps(durations: list) -> float:
    """1000 / mean frame duration (ms); frames without a positive duration are ignored."""
    valid = [float(d) for d in durations if isinstance(d, (int, float)) and d > 0]
    return 1000.0 * len(valid) / sum(valid) if valid else _DEFAULT_ANIMATION_FPS


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return _DEFAULT_VIDEO_FPS


def _stream_frame_count(container, stream, fps: float) -> int | None:
    """Frames in the stream from its header, else estimated from the duration; None if unknown."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    else:
        return None
    return max(1, round(seconds * fps)) if seconds > 0 else None


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise ValueError(f"could not decode {path}: the file has no video stream")
    return container.streams.video[0]


def _existing_path(source) -> Path:
    if not isinstance(source, (str, Path)):
        raise ValueError(f"source: expected a file or folder path, got {type(source).__name__}")
    if isinstance(source, str) and not source.strip():
        raise ValueError("source: the path is empty")
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    return path


def _unsupported(path: Path) -> str:
    supported = ", ".join(VIDEO_EXTENSIONS + tuple(e for e in ANIMATED_EXTENSIONS if e not in VIDEO_EXTENSIONS))
    return f"{path.name}: unsupported file type {path.suffix or '(no extension)'!r}; supported: {supported}, or a folder of images ({', '.join(IMAGE_EXTENSIONS)})"


def _natural_key(name: str) -> list:
    """``frame2`` before ``frame10``: digit runs compare as numbers."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name.lower())]


def _folder_images(path: Path) -> list[Path]:
    # dot-files are skipped: macOS writes "._frame1.png" metadata files next to the real ones
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise ValueError(f"{path}: the folder has 0 frames (no {', '.join(IMAGE_EXTENSIONS)} images)")
    return sorted(files, key=lambda p: _natural_key(p.name))


def _image_size(path: Path) -> tuple[int, int]:
    Image, _ = _import_pil()
    try:
        with Image.open(path) as im:  # lazy: reads the header only
            return im.size
    except _pil_errors() as e:
        raise ValueError(f"could not decode {path}: {e}") from e


def _import_av():
    import av

    return av


def _import_pil():
    from PIL import Image, ImageSequence

    return Image, ImageSequence


def _av_errors() -> tuple:
    import av

    # FFmpegError covers every decoder/demuxer failure; OSError: PyAV maps some errno codes to it
    return (av.error.FFmpegError, OSError, EOFError)


def _pil_errors() -> tuple:
    from PIL import Image, UnidentifiedImageError

    # UnidentifiedImageError is an OSError; truncated files raise OSError/EOFError/SyntaxError
    return (UnidentifiedImageError, OSError, EOFError, SyntaxError, Image.DecompressionBombError)


# ------------------------------------------------------------------------------------------- writing


def write_video(frames: torch.Tensor, path, fps: float, *, crf: int = 19, quality: int = 90, lossless: bool = False) -> Path:
    """Write ``[T, H, W, 3]`` float frames in 0..1 to ``path``; the format comes from its suffix.

    * ``.mp4``: H.264 (libx264), yuv420p, constant quality ``crf`` (0..51, lower = better).
    * ``.webm``: VP9 (libvpx-vp9), yuv420p, constant quality ``crf`` (0..63).
    * ``.webp``: animated WebP (Pillow), ``quality`` 0..100 or ``lossless``; loops forever.
    * ``.gif``: GIF (Pillow), a 256-colour palette per frame; loops forever.

    yuv420p stores colour at half resolution, so H.264/VP9 need an even width and height: an odd
    size is padded by repeating the last column/row (a 95x63 input is written as 96x64).

    Frame timing in WebP (1 ms) and GIF (10 ms) is quantised; the per-frame durations alternate so
    the clip's total length, and so its mean fps, stays right. Pillow merges identical consecutive
    frames of a GIF/WebP into one longer frame, and it needs every frame at once, so those two
    formats hold the clip as uint8 images; mp4/webm stream one frame at a time.

    Returns:
        ``path`` as a :class:`~pathlib.Path`. Parent folders are created.
    """
    frames = check_image("write_video frames", frames)
    fps = check_finite_number("fps", fps, low=0.0, high=1000.0)
    if fps <= 0:
        raise ValueError(f"fps: expected a frame rate > 0, got {fps}")
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ValueError(f"path: expected a file path, got {path!r}")
    path = Path(path).expanduser()
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in WRITE_FORMATS:
        raise ValueError(f"{path.name}: cannot write {path.suffix or '(no extension)'!r}; supported: {', '.join('.' + f for f in WRITE_FORMATS)}")
    crf = check_positive_int("crf", crf, minimum=0, maximum=63)
    quality = check_positive_int("quality", quality, minimum=0, maximum=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("mp4", "webm"):
        _write_av(frames, path, fps, crf, fmt)
    else:
        _write_pil(frames, path, fps, quality, bool(lossless), fmt)
    return path


def _to_uint8(frame: torch.Tensor):
    """One ``[H, W, 3]`` float frame → uint8 numpy (only one frame is ever converted at a time)."""
    return frame.detach().to("cpu", torch.float32).clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8).numpy()


def _write_av(frames: torch.Tensor, path: Path, fps: float, crf: int, fmt: str) -> None:
    import numpy as np
    from fractions import Fraction

    av = _import_av()
    h, w = int(frames.shape[1]), int(frames.shape[2])
    pad_h, pad_w = h % 2, w % 2
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps: {fps} is too small to write")
    codec = "libx264" if fmt == "mp4" else "libvpx-vp9"
    options = {"crf": str(crf)}
    if fmt == "webm":
        # b=0: constant quality (libvpx otherwise caps the bitrate); cpu-used/row-mt: libvpx's
        # defaults are many times slower for little gain
        options.update({"b": "0", "cpu-used": "4", "row-mt": "1", "deadline": "good"})
    try:
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream(codec, rate=rate, options=options)
            stream.width, stream.height = w + pad_w, h + pad_h
            stream.pix_fmt = "yuv420p"
            stream.time_base = 1 / rate
            stream.codec_context.time_base = 1 / rate
            for i in range(frames.shape[0]):
                rgb = _to_uint8(frames[i])
                if pad_h or pad_w:
                    rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = i
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))  # flush: the encoder holds back its last frames
    except av.error.FFmpegError as e:
        raise ValueError(f"could not write {path}: {e}") from e


def _frame_durations(count: int, fps: float, unit_ms: int) -> list[int]:
    """Per-frame durations in multiples of ``unit_ms`` whose running sum tracks ``i * 1000 / fps``."""
    def at(i: int) -> int:
        return unit_ms * round(i * 1000.0 / fps / unit_ms)

    return [max(unit_ms, at(i + 1) - at(i)) for i in range(count)]


def _write_pil(frames: torch.Tensor, path: Path, fps: float, quality: int, lossless: bool, fmt: str) -> None:
    Image, _ = _import_pil()
    images = (Image.fromarray(_to_uint8(frame), "RGB") for frame in frames)
    first = next(images)
    if fmt == "webp":
        options = dict(duration=_frame_durations(frames.shape[0], fps, 1), quality=quality, lossless=lossless, method=4)
    else:
        options = dict(duration=_frame_durations(frames.shape[0], fps, 10), optimize=False)
    try:
        first.save(path, format=fmt.upper(), save_all=True, append_images=images, loop=0, **options)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not write {path}: {e}") from e


# ------------------------------------------------------------------------------------------ previews


def contact_sheet(frames: torch.Tensor, *, max_tiles: int = 16, columns: int = 0, gap: int = 2) -> torch.Tensor:
    """Tile evenly spaced frames (first and last always included) into one ``[H', W', 3]`` image.

    ``columns`` 0 makes the grid about square (``ceil(sqrt(n))`` columns). Tiles are separated by
    ``gap`` pixels of dark grey (0.1), which also fills the unused cells of the last row.
    """
    frames = check_image("contact_sheet frames", frames)
    max_tiles = check_positive_int("max_tiles", max_tiles, minimum=1, maximum=1024)
    columns = check_positive_int("columns", columns, minimum=0, maximum=1024)
    gap = check_positive_int("gap", gap, minimum=0, maximum=256)
    t, h, w = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
    n = min(t, max_tiles)
    # linspace + round: n distinct indices when n <= t, hitting 0 and t-1 exactly
    picks = torch.linspace(0, t - 1, n).round().long().tolist() if n > 1 else [0]
    cols = min(columns, n) if columns else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    sheet = torch.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 0.1, dtype=torch.float32, device=frames.device)
    for k, index in enumerate(picks):
        r, c = divmod(k, cols)
        y, x = r * (h + gap), c * (w + gap)
        sheet[y : y + h, x : x + w] = frames[index].float().clamp(0.0, 1.0)
    return sheet


def save_image(image: torch.Tensor, path) -> Path:
    """Save one ``[H, W, 3]`` (or ``[1, H, W, 3]``) float image in 0..1 as a PNG; returns the path."""
    image = check_image("save_image image", image)
    if image.shape[0] != 1:
        raise ValueError(f"save_image: expected one image [H, W, 3], got a batch of {image.shape[0]}")
    path = Path(path).expanduser()
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_image: writes PNG files, got {path.name!r} (use a .png name)")
    Image, _ = _import_pil()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_to_uint8(image[0]), "RGB").save(path, format="PNG")
    return path
