"""vid4d.py.video: round trips through every write format, frame selection, resizing, errors, streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from vid4d.py import video


def pattern(t: int = 12, h: int = 64, w: int = 96) -> torch.Tensor:
    """``[T, H, W, 3]`` smooth moving sinusoids in 0.15..0.85 (codecs need structure, not noise)."""
    tt = torch.arange(t, dtype=torch.float32).view(t, 1, 1, 1)
    y = torch.linspace(0, 1, h).view(1, h, 1, 1)
    x = torch.linspace(0, 1, w).view(1, 1, w, 1)
    c = torch.arange(3, dtype=torch.float32).view(1, 1, 1, 3)
    return (0.5 + 0.35 * torch.sin(2 * math.pi * (1.5 * x + 0.7 * y + tt / t) + 2.0 * c)).expand(t, h, w, 3).contiguous()


def indexed(t: int = 12, h: int = 16, w: int = 24) -> torch.Tensor:
    """Constant frames whose brightness encodes the frame index: frame i = 20 * i / 255."""
    return (torch.arange(t, dtype=torch.float32) * 20 / 255).view(t, 1, 1, 1).expand(t, h, w, 3).contiguous()


def decode_index(frames: torch.Tensor) -> list[int]:
    return [round(float(f.mean()) * 255 / 20) for f in frames]


def write_folder(folder, frames: torch.Tensor, names: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    for frame, name in zip(frames, names):
        video.save_image(frame, folder / name)


# ----------------------------------------------------------------------------------- round trips

ROUND_TRIPS = [
    # suffix, write options, max mean abs error, fps tolerance
    ("mp4", {}, 0.03, 1e-3),
    ("webm", {}, 0.03, 1e-3),
    ("webp", {"lossless": True}, 1 / 255 + 1e-4, 1e-3),  # only the float -> uint8 rounding is lost
    ("webp", {"quality": 90}, 0.03, 1e-3),
    ("gif", {}, 0.1, 0.5),  # 256-colour palette; 10 ms timing
]


@pytest.mark.parametrize("suffix,options,tolerance,fps_tolerance", ROUND_TRIPS, ids=[f"{r[0]}-{'-'.join(r[1]) or 'default'}" for r in ROUND_TRIPS])
def test_round_trip(tmp_path, suffix, options, tolerance, fps_tolerance):
    frames = pattern()
    path = video.write_video(frames, tmp_path / "sub" / f"clip.{suffix}", 12, **options)
    assert path.is_file() and path.parent.name == "sub"

    clip = video.read_video(path)
    assert clip.frames.dtype == torch.float32 and clip.frames.shape == frames.shape
    assert abs(clip.fps - 12) < fps_tolerance
    assert (clip.source_width, clip.source_height, clip.source_frames) == (96, 64, 12)
    error = float((clip.frames - frames).abs().mean())
    assert error < tolerance, f"{suffix} mean abs error {error:.5f} >= {tolerance:.5f}"

    info = video.probe_video(path)
    assert (info["width"], info["height"], info["num_frames"]) == (96, 64, 12)
    assert abs(info["fps"] - 12) < fps_tolerance


@pytest.mark.parametrize("suffix", ["mp4", "webm"])
def test_fractional_fps(tmp_path, suffix):
    path = video.write_video(pattern(t=6), tmp_path / f"ntsc.{suffix}", 29.97)
    assert abs(video.read_video(path).fps - 29.97) < 0.01
    assert abs(video.probe_video(path)["fps"] - 29.97) < 0.01


def test_gif_mean_fps_survives_10ms_timing(tmp_path):
    # 1000/12 ms is not a multiple of 10 ms: alternating 80/90 ms frames keep the mean at 12 fps
    path = video.write_video(pattern(t=12), tmp_path / "a.gif", 12)
    assert abs(video.read_video(path).fps - 12) < 0.05


def test_odd_size_is_padded_by_replicating_the_edge(tmp_path):
    frames = pattern(t=4, h=63, w=95)
    clip = video.read_video(video.write_video(frames, tmp_path / "odd.mp4", 12))
    assert clip.frames.shape == (4, 64, 96, 3)
    inside = float((clip.frames[:, :63, :95] - frames).abs().mean())
    assert inside < 0.03, inside
    # the added column/row repeat the last real ones
    assert float((clip.frames[:, :63, 95] - frames[:, :, 94]).abs().mean()) < 0.05
    assert float((clip.frames[:, 63, :95] - frames[:, 62]).abs().mean()) < 0.05


def test_transparency_is_composited_over_black(tmp_path):
    rgba = np.zeros((2, 16, 16, 4), np.uint8)
    rgba[0, ..., :3], rgba[1, ..., :3] = 200, 100  # distinct frames: libwebp merges identical ones
    rgba[:, :, 8:, 3] = 255  # right half opaque, left half fully transparent
    images = [Image.fromarray(a, "RGBA") for a in rgba]
    for suffix in ("webp", "gif"):
        path = tmp_path / f"alpha.{suffix}"
        images[0].save(path, save_all=True, append_images=images[1:], lossless=True, duration=100)
        clip = video.read_video(path)
        assert clip.frames.shape == (2, 16, 16, 3)
        assert float(clip.frames[:, :, :8].max()) == 0.0
        assert torch.allclose(clip.frames[:, :, 8:].mean(dim=(1, 2, 3)), torch.tensor([200 / 255, 100 / 255]), atol=1e-6)
        assert abs(clip.fps - 10) < 1e-6


def test_still_png_is_a_one_frame_video(tmp_path):
    path = video.save_image(pattern(t=1)[0], tmp_path / "still.png")
    clip = video.read_video(path)
    assert clip.frames.shape == (1, 64, 96, 3) and clip.source_frames == 1
    assert float((clip.frames[0] - pattern(t=1)[0]).abs().max()) <= 0.5 / 255 + 1e-6


# -------------------------------------------------------------------------------- frame selection


@pytest.fixture(params=["webp", "mp4", "folder"])
def indexed_source(request, tmp_path):
    frames = indexed()
    if request.param == "folder":
        write_folder(tmp_path / "frames", frames, [f"frame{i}.png" for i in range(len(frames))])
        return tmp_path / "frames", 8.0
    return video.write_video(frames, tmp_path / f"idx.{request.param}", 12, lossless=True, crf=10), 12.0


@pytest.mark.parametrize(
    "start,stride,max_frames,expected",
    [(0, 1, 0, list(range(12))), (2, 3, 0, [2, 5, 8, 11]), (2, 3, 3, [2, 5, 8]), (10, 1, 0, [10, 11]), (0, 5, 2, [0, 5]), (11, 4, 0, [11])],
)
def test_start_stride_max_frames_select_frames(indexed_source, start, stride, max_frames, expected):
    source, fps = indexed_source
    clip = video.read_video(source, start=start, stride=stride, max_frames=max_frames)
    assert decode_index(clip.frames) == expected
    assert abs(clip.fps - fps / stride) < 1e-3
    assert clip.source_frames == 12


def test_folder_natural_sort_and_fps(tmp_path):
    names = ["f10.png", "f2.png", "f1.png"]  # lexical order would be f1, f10, f2
    frames = indexed(t=11)[[10, 2, 1]]
    write_folder(tmp_path / "seq", frames, names)
    (tmp_path / "seq" / "notes.txt").write_text("not an image")
    clip = video.read_video(tmp_path / "seq", folder_fps=5.0)
    assert decode_index(clip.frames) == [1, 2, 10]
    assert clip.fps == 5.0 and clip.source_frames == 3
    assert video.probe_video(tmp_path / "seq", folder_fps=5.0) == dict(width=24, height=16, fps=5.0, num_frames=3)
    assert video.read_video(tmp_path / "seq", folder_fps=5.0, stride=2).fps == 2.5


def test_folder_with_a_different_size_names_the_file(tmp_path):
    write_folder(tmp_path / "seq", indexed(t=2), ["a1.png", "a2.png"])
    video.save_image(indexed(t=1, h=20)[0], tmp_path / "seq" / "a3.png")
    with pytest.raises(ValueError, match="a3.png"):
        video.read_video(tmp_path / "seq")


def test_resize_while_reading(tmp_path):
    path = video.write_video(pattern(), tmp_path / "clip.mp4", 12)
    clip = video.read_video(path, width=50, fit="crop", multiple_of=16)
    assert clip.frames.shape == (12, 32, 48, 3)
    assert (clip.source_width, clip.source_height) == (96, 64)
    reference = video.resize_frames(pattern(), width=50, fit="crop", multiple_of=16)
    assert float((clip.frames - reference).abs().mean()) < 0.03


# ------------------------------------------------------------------------------------------ resize


@pytest.mark.parametrize(
    "args,expected",
    [
        ((100, 50), (100, 50)),  # both 0: source size
        ((100, 50, 64, 0), (64, 32)),  # width only keeps the aspect
        ((100, 50, 0, 25), (50, 25)),  # height only keeps the aspect
        ((100, 50, 30, 40, "stretch"), (30, 40)),
        ((100, 50, 70, 0, "crop", 16), (64, 32)),  # 70x35: crop floors
        ((100, 50, 70, 0, "pad", 16), (80, 48)),  # pad ceils
        ((100, 50, 72, 0, "stretch", 16), (80, 32)),  # 72x36: stretch rounds (4.5 -> 5, 2.25 -> 2)
        ((10, 10, 5, 5, "crop", 16), (16, 16)),  # never below one multiple
        ((1920, 1080, 0, 0, "crop", 14), (1918, 1078)),
    ],
)
def test_target_size(args, expected):
    assert video.target_size(*args) == expected


@pytest.mark.parametrize(
    "kwargs,match",
    [({"fit": "zoom"}, "fit"), ({"multiple_of": 0}, "multiple_of"), ({"multiple_of": 257}, "multiple_of"), ({"width": -1}, "width"), ({"height": 16385}, "height")],
)
def test_target_size_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        video.target_size(100, 50, **kwargs)


def test_resize_frames_modes():
    frames = pattern(t=3, h=40, w=80)
    assert video.resize_frames(frames) is frames  # no-op: the same tensor back
    assert video.resize_frames(frames, 30, 30, "stretch").shape == (3, 30, 30, 3)

    crop = video.resize_frames(frames, 20, 20, "crop")
    assert crop.shape == (3, 20, 20, 3)
    centre = video.resize_frames(frames[:, :, 20:60].contiguous(), 20, 20, "stretch")
    assert float((crop - centre).abs().mean()) < 0.02  # the crop is the centre, not a corner
    corner = video.resize_frames(frames[:, :, :40].contiguous(), 20, 20, "stretch")
    assert float((crop - corner).abs().mean()) > 0.1

    pad = video.resize_frames(frames, 40, 40, "pad")
    assert pad.shape == (3, 40, 40, 3)
    assert float(pad[:, :10].abs().max()) == 0.0 and float(pad[:, 30:].abs().max()) == 0.0  # black bars
    assert float(pad[:, 10:30].min()) > 0.1  # the image itself (pattern >= 0.15)

    sharp = (torch.rand(2, 33, 47, 3) > 0.5).float()  # hard edges make antialiasing overshoot
    for fit in video.FIT_MODES:
        out = video.resize_frames(sharp, 19, 23, fit)
        assert out.shape == (2, 23, 19, 3) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("fit", video.FIT_MODES)
def test_resize_keeps_a_constant_image_constant(fit):
    frames = torch.full((20, 30, 50, 3), 0.37)  # 20 frames: more than one chunk
    out = video.resize_frames(frames, 24, 24, fit)
    assert out.shape == (20, 24, 24, 3)
    body = out[:, 5:19] if fit == "pad" else out  # pad: 50x30 -> 24x14 with black bars above and below
    assert float((body - 0.37).abs().max()) < 1e-5


# ------------------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        video.read_video(missing)
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        video.probe_video(missing)


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    (tmp_path / "clip.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"\.mp4.*\.gif"):
        video.read_video(tmp_path / "clip.txt")


def test_start_beyond_the_end(tmp_path):
    path = video.write_video(indexed(), tmp_path / "idx.webp", 12, lossless=True)
    with pytest.raises(ValueError, match=r"12 frame.*start=20"):
        video.read_video(path, start=20)


@pytest.mark.parametrize("suffix", ["mp4", "gif", "webm", "png"])
def test_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"junk.{suffix}"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="could not decode"):
        video.read_video(path)
    with pytest.raises(ValueError, match="could not decode"):
        video.probe_video(path)


def test_truncated_mp4_does_not_crash(tmp_path):
    path = video.write_video(pattern(), tmp_path / "clip.mp4", 12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        clip = video.read_video(path)
    except ValueError as e:  # either a clear error or the frames that survived
        assert "could not decode" in str(e) or "no frame" in str(e)
    else:
        assert 0 < clip.frames.shape[0] <= 12


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="0 frames"):
        video.read_video(tmp_path / "empty")


def test_max_bytes(tmp_path):
    path = video.write_video(pattern(), tmp_path / "clip.mp4", 12)
    with pytest.raises(ValueError, match="max_frames"):
        video.read_video(path, max_bytes=1000)
    # 3 frames of 96x64 fit in 3 * 96 * 64 * 12 bytes
    assert video.read_video(path, max_frames=3, max_bytes=3 * 96 * 64 * 12).frames.shape[0] == 3
    with pytest.raises(ValueError, match="max_frames"):
        video.read_video(path, max_frames=4, max_bytes=3 * 96 * 64 * 12)


def test_max_bytes_is_also_enforced_while_decoding(tmp_path, monkeypatch):
    path = video.write_video(pattern(), tmp_path / "clip.mp4", 12)
    # a container that does not know its length: only the running count can catch it
    monkeypatch.setattr(video, "_stream_frame_count", lambda *a: None)
    with pytest.raises(ValueError, match="max_frames"):
        video.read_video(path, max_bytes=5 * 96 * 64 * 12)


@pytest.mark.parametrize("kwargs", [{"start": -1}, {"stride": 0}, {"max_frames": -1}, {"folder_fps": 0}, {"fit": "zoom"}])
def test_read_rejects_bad_arguments(tmp_path, kwargs):
    path = video.save_image(pattern(t=1)[0], tmp_path / "still.png")
    with pytest.raises(ValueError):
        video.read_video(path, **kwargs)


@pytest.mark.parametrize("shape", [(64, 96), (1, 2, 64, 96, 3), (4, 64, 96, 2)])
def test_write_rejects_bad_shapes(tmp_path, shape):
    with pytest.raises(ValueError, match="IMAGE"):
        video.write_video(torch.rand(shape), tmp_path / "bad.mp4", 12)
    assert not (tmp_path / "bad.mp4").exists()


@pytest.mark.parametrize("name,fps", [("clip.avi", 12), ("clip.mp4", 0), ("clip.mp4", 1001), ("clip.mp4", float("nan"))])
def test_write_rejects_bad_format_and_fps(tmp_path, name, fps):
    with pytest.raises(ValueError):
        video.write_video(pattern(t=2), tmp_path / name, fps)


# --------------------------------------------------------------------------------------- streaming


def test_progress_is_called_once_per_taken_frame(tmp_path):
    path = video.write_video(pattern(), tmp_path / "clip.mp4", 12)
    calls = []
    clip = video.read_video(path, start=1, stride=2, progress=calls.append)
    assert clip.frames.shape[0] == 6
    assert calls == [1, 2, 3, 4, 5, 6]


class Cancelled(Exception):
    pass


@pytest.mark.parametrize("suffix", ["mp4", "gif"])
def test_a_raising_progress_callback_stops_the_read(tmp_path, suffix):
    path = video.write_video(pattern(), tmp_path / f"clip.{suffix}", 12)
    calls = []

    def progress(done):
        calls.append(done)
        if done == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        video.read_video(path, progress=progress)
    assert calls == [1, 2, 3]


def test_decoding_is_streamed_in_chunks(tmp_path, monkeypatch):
    # 40 frames, 3 skipped between taken ones: only taken frames are converted, and they are
    # resized in chunks of at most 16 as they arrive
    folder = tmp_path / "seq"
    write_folder(folder, pattern(t=40, h=16, w=24), [f"{i:03d}.png" for i in range(40)])
    chunks, converted = [], []
    resize_chunk, pil_to_rgb = video._resize_chunk, video._pil_to_rgb
    monkeypatch.setattr(video, "_resize_chunk", lambda f, *a: chunks.append(f.shape[0]) or resize_chunk(f, *a))
    monkeypatch.setattr(video, "_pil_to_rgb", lambda im: converted.append(im.filename) or pil_to_rgb(im))
    clip = video.read_video(folder, stride=2, width=12)
    assert clip.frames.shape == (20, 8, 12, 3)
    assert chunks == [16, 4]
    assert [name[-7:] for name in converted] == [f"{i:03d}.png" for i in range(0, 40, 2)]

    # huge frames: fewer per chunk so a chunk's float32 copy stays under _CHUNK_BYTES
    chunks.clear()
    monkeypatch.setattr(video, "_CHUNK_BYTES", 5 * 16 * 24 * 3 * 4)
    assert video.read_video(folder, max_frames=12, width=12).frames.shape[0] == 12
    assert chunks == [5, 5, 2]

    converted.clear()
    gif = video.write_video(pattern(t=12, h=16, w=24), tmp_path / "clip.gif", 12)
    assert video.read_video(gif, start=1, stride=3).frames.shape[0] == 4
    assert len(converted) == 4


# ---------------------------------------------------------------------------------------- previews


def test_contact_sheet(tmp_path):
    frames = pattern()  # 12 frames 64x96
    sheet = video.contact_sheet(frames, max_tiles=9, gap=2)
    assert sheet.shape == (3 * 64 + 2 * 2, 3 * 96 + 2 * 2, 3)
    assert torch.equal(sheet[:64, :96], frames[0])
    assert torch.equal(sheet[-64:, -96:], frames[-1])
    assert torch.allclose(sheet[64:66], torch.tensor(0.1)) and torch.allclose(sheet[:, 96:98], torch.tensor(0.1))

    wide = video.contact_sheet(frames, max_tiles=5, columns=5, gap=0)
    assert wide.shape == (64, 5 * 96, 3)
    assert torch.equal(wide[:, -96:], frames[-1])

    path = video.save_image(sheet, tmp_path / "sheets" / "sheet.png")
    back = np.asarray(Image.open(path))
    assert back.shape == (196, 292, 3)
    assert np.abs(back / 255.0 - sheet.numpy()).max() <= 0.5 / 255 + 1e-6
