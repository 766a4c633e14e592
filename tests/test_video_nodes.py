"""Vid4DLoadVideo / Vid4DSaveVideo / Vid4DSampleScene as ComfyUI would call them."""

import pytest
import torch

from vid4d.nodes.common import CAMERA_PATH, DEPTH, TRACKS3D, expect
from vid4d.nodes.scene import Vid4DSampleScene
from vid4d.nodes.video import Vid4DLoadVideo, Vid4DSaveVideo
from vid4d.py import video as vio
from vid4d.py.scene import sample_scene

LOAD_DEFAULTS = dict(start_frame=0, frame_stride=1, max_frames=0, width=0, height=0, fit="crop", multiple_of=1)


def _frames(t=8, h=48, w=64):
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([torch.stack([(x + i / t) % 1, y, 0.5 + 0.4 * torch.sin(6 * x + i)], -1) for i in range(t)]).clamp(0, 1)


def test_save_then_load_round_trip_through_the_nodes(headless):
    frames = _frames()
    out = Vid4DSaveVideo().save(frames, "rt/clip", 12.0, "mp4", 12, True)
    path = out["result"][0]
    assert out["ui"]["images"][0]["filename"].endswith(".mp4") and out["ui"]["animated"] == (True,)
    loaded = Vid4DLoadVideo().load("", **LOAD_DEFAULTS, path=path)["result"]
    assert loaded[0].shape == frames.shape and loaded[1] == pytest.approx(12.0) and loaded[2] == 8
    assert (loaded[0] - frames).abs().mean() < 0.03


def test_load_from_input_folder_with_resize_and_stride(headless):
    vio.write_video(_frames(10), headless / "input" / "clip.webp", 10.0, lossless=True)
    assert "clip.webp" in Vid4DLoadVideo.INPUT_TYPES()["required"]["video"][0]
    assert Vid4DLoadVideo.VALIDATE_INPUTS({}, "clip.webp") is True
    frames, fps, count = Vid4DLoadVideo().load("clip.webp", 1, 3, 0, 40, 0, "crop", 16)["result"]
    assert count == 3 and frames.shape == (3, 16, 32, 3) and fps == pytest.approx(10 / 3)


@pytest.mark.parametrize(
    "name,content,exc,needle",
    [
        ("absent.mp4", None, ValueError, "absent.mp4 does not exist; choose a video in the input folder"),
        ("notes.txt", b"hello", ValueError, "supported"),
        ("broken.mp4", b"\x00\x01garbage" * 100, ValueError, "could not decode"),
        ("broken.gif", b"GIF89a" + b"\x00" * 20, ValueError, "could not decode"),
    ],
)
def test_load_bad_files_give_actionable_errors(headless, name, content, exc, needle):
    if content is not None:
        (headless / "input" / name).write_bytes(content)
    with pytest.raises(exc, match=needle):
        Vid4DLoadVideo().load(name, **LOAD_DEFAULTS)


def test_load_zero_frames_and_validate_missing(headless):
    vio.write_video(_frames(4), headless / "input" / "short.mp4", 8.0)
    with pytest.raises(ValueError, match="start"):
        Vid4DLoadVideo().load("short.mp4", **{**LOAD_DEFAULTS, "start_frame": 50})
    assert "not found" in Vid4DLoadVideo.VALIDATE_INPUTS({}, "nothing.mp4")
    assert Vid4DLoadVideo.VALIDATE_INPUTS({"path": "STRING"}, "") is True
    assert Vid4DLoadVideo.IS_CHANGED("short.mp4") != ""


@pytest.mark.parametrize("bad", [torch.rand(48, 64), torch.rand(2, 48, 64, 5), torch.rand(0, 48, 64, 3), torch.full((2, 8, 8, 3), float("nan"))])
def test_save_rejects_wrong_image_shapes(headless, bad):
    with pytest.raises(ValueError, match="images"):
        Vid4DSaveVideo().save(bad, "x", 8.0, "mp4", 19, False)


def test_save_rejects_bad_prefix_and_format(headless):
    with pytest.raises(ValueError, match="filename_prefix"):
        Vid4DSaveVideo().save(_frames(2), "../x", 8.0, "mp4", 19, False)
    with pytest.raises(ValueError, match="format"):
        Vid4DSaveVideo().save(_frames(2), "x", 8.0, "avi", 19, False)


def test_sample_scene_node_outputs_typed_edges():
    out = Vid4DSampleScene().make(5, 48, 32, 1, 10.0)
    frames, depth, preview, camera, tracks, mask, fps = out["result"]
    assert frames.shape == (5, 32, 48, 3) and preview.shape == frames.shape and mask.shape == (5, 32, 48)
    expect(depth, DEPTH, "depth")
    expect(camera, CAMERA_PATH, "camera")
    expect(tracks, TRACKS3D, "tracks")
    scene = sample_scene(5, 48, 32, seed=1, fps=10.0)
    assert torch.equal(frames, scene.frames) and torch.equal(depth.depth, scene.depth) and fps == 10.0
    assert tracks.ref_frame == 0 and camera.num_frames == 5 and depth.kind == "metric"
    with pytest.raises(ValueError, match="VID4D_TRACKS3D"):
        expect(frames, TRACKS3D, "tracks")
