"""First use with your own clip (issue 17): Load Video's built-in sample scene and its input-folder rules, scale that
follows the data (focus_depth / distance auto, the depth from motion filled), the warnings when depth is missing or
from_video motion is implausible, the headless progress printer and node timings, the `nodes` table, the package
metadata."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys

import pytest
import torch

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

import vid4d
from vid4d.nodes import camera as camera_node
from vid4d.nodes import workflow as wf
from vid4d.py import gaussians as gs
from vid4d.py import spectral as sp
from vid4d.py.depth import DepthVideo, fill_unknown
from vid4d.py.scene import sample_scene
from vid4d.py.tracking import track_dense
from conftest import ROOT, texture

NODES = vid4d.NODE_CLASS_MAPPINGS
CAMERA = dict(fov=60.0, angle=30.0, zoom=1.5, elevation=0.0, easing="linear", cameras=1, rig_angle=30.0, keyframes="[]")


def _field(depth: float, n: int = 200) -> gs.GaussianField:
    means = torch.stack([torch.rand(n) - 0.5, torch.rand(n) - 0.5, torch.full((n,), depth)], -1)[None]
    return gs.GaussianField(means, torch.rand(n, 3), torch.ones(n), torch.full((n, 3), 0.01), torch.tensor([1.0, 0, 0, 0]).expand(n, 4).contiguous())


# ------------------------------------------------------------------------------------------- Load Video


def test_load_video_without_a_file_is_the_sample_scene(headless):
    load = NODES["Vid4DLoadVideo"]()
    assert NODES["Vid4DLoadVideo"].INPUT_TYPES()["required"]["video"][0][0] == "(sample scene)"
    frames, fps, count = load.load("(sample scene)", 0, 1, 0, 0, 0, "crop", 8)["result"]
    assert frames.shape == (24, 160, 256, 3) and fps == 12.0 and count == 24
    assert torch.equal(frames, sample_scene(24, 256, 160, seed=0).frames)
    small, fps2, _ = load.load("(sample scene)", 2, 2, 5, 64, 0, "crop", 8)["result"]
    assert small.shape == (5, 40, 64, 3) and fps2 == 6.0  # 5 frames every 2nd from frame 2, at the asked size
    assert NODES["Vid4DLoadVideo"].VALIDATE_INPUTS({}, "(sample scene)") is True


def test_load_video_sample_scene_as_one_still_frame(headless):
    # gid_animate_image takes the sample scene's first frame as its still image (max_frames 1)
    load = NODES["Vid4DLoadVideo"]()
    one = load.load("(sample scene)", 0, 1, 1, 64, 0, "crop", 8)["result"][0]
    two = load.load("(sample scene)", 0, 1, 2, 64, 0, "crop", 8)["result"][0]
    assert one.shape[0] == 1 and torch.equal(one[0], two[0])


def test_load_video_names_stay_in_the_input_folder(headless):
    (headless / "output" / "x.mp4").write_bytes(b"")
    load = NODES["Vid4DLoadVideo"]()
    args = (0, 1, 0, 0, 0, "crop", 8)
    with pytest.raises(ValueError, match="leaves the input folder"):
        load.load("../output/x.mp4", *args)
    with pytest.raises(ValueError, match="leaves the input folder"):
        load.load("(sample scene)", *args, path="../output/x.mp4")
    with pytest.raises(ValueError, match="not an absolute path"):
        load.load(str(headless / "output" / "x.mp4"), *args)
    assert isinstance(NODES["Vid4DLoadVideo"].VALIDATE_INPUTS({}, "../output/x.mp4"), str)
    # An absolute path in 'path' is a deliberate choice (the runner's --input, footage elsewhere): it is read.
    from vid4d.py.video import write_video

    clip = headless / "elsewhere.mp4"
    write_video(torch.rand(3, 16, 16, 3), clip, 8.0)
    assert load.load("(sample scene)", *args, path=str(clip))["result"][2] == 3
    with pytest.raises(ValueError, match="stride: expected an integer in \\[1, 1000\\], got 0"):
        load.load("(sample scene)", 0, 0, 0, 0, 0, "crop", 8)


# ------------------------------------------------------------------------------------------- scale follows the data


@pytest.mark.parametrize("depth", [1.0, 7.5])
def test_focus_depth_auto_is_the_fields_median_depth(depth):
    field = _field(depth)
    out = NODES["CameraPath"]().make("orbit", 8, 64, 48, gaussians=field, focus_depth=0.0, distance=0.5, **CAMERA)
    path = out["result"][0]
    centres = path.centers()
    # The orbit circles F = (0, 0, d) at radius d: every camera centre is d from F.
    radius = (centres - torch.tensor([0.0, 0.0, depth])).norm(dim=-1)
    torch.testing.assert_close(radius, torch.full_like(radius, depth), atol=1e-4, rtol=1e-4)
    assert f"focus_depth auto = {depth:.3g} (median depth of the gaussians)" in out["ui"]["vid4d_info"][0]


def test_focus_depth_auto_without_a_scene_takes_the_default_and_says_so():
    out = NODES["CameraPath"]().make("orbit", 8, 64, 48, focus_depth=0.0, distance=0.5, **CAMERA)
    ref = NODES["CameraPath"]().make("orbit", 8, 64, 48, focus_depth=3.0, distance=0.5, **CAMERA)
    torch.testing.assert_close(out["result"][0].world_to_camera, ref["result"][0].world_to_camera)
    assert "focus_depth auto = 3 (default: connect the gaussians input" in out["ui"]["vid4d_info"][0]


@pytest.mark.parametrize("preset, factor", [("dolly", 1.0 / 3.0), ("truck", 0.5 / 3.0), ("pedestal", 0.5 / 3.0), ("dolly_zoom", 0.5)])
def test_distance_auto_is_the_presets_default_at_the_scenes_scale(preset, factor):
    d = 1.2
    auto = NODES["CameraPath"]().make(preset, 8, 64, 48, gaussians=_field(d), focus_depth=0.0, distance=0.0, **CAMERA)["result"][0]
    given = NODES["CameraPath"]().make(preset, 8, 64, 48, focus_depth=d, distance=factor * d, **CAMERA)["result"][0]
    torch.testing.assert_close(auto.world_to_camera, given.world_to_camera, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(auto.intrinsics, given.intrinsics, atol=1e-4, rtol=1e-5)


def test_the_preview_route_uses_the_focus_depth_the_last_run_resolved():
    source = {"num_frames": 8, "width": 64, "height": 48, "K": [50.0, 0.0, 31.5, 50.0, 23.5]}
    status, data = camera_node.camera_path_request({"preset": "orbit", "focus_depth": 0.0, "source": {**source, "focus_depth": 2.0}})
    assert status == 200 and data["focus"] == [0.0, 0.0, 2.0]
    status, data = camera_node.camera_path_request({"preset": "orbit", "focus_depth": 0.0, "source": source})
    assert status == 200 and data["focus"] == [0.0, 0.0, 3.0] and "shown at 3 until a run" in data["text"]


def test_tracks_without_depth_warn_in_the_report_and_the_log(caplog):
    scene = sample_scene(4, 48, 32, seed=0)
    with caplog.at_level(logging.WARNING, logger="vid4d"):
        out = NODES["DenseTrack3D"]().track(scene.frames, "flow_chain", 0, 60.0, "medium", 4, 0, "disparity", 1.0, 10.0, "x", 16)
        text = out["ui"]["vid4d_info"][0]
        assert "warning: no depth connected" in text and "VideoDepth" in text and "Depth From Image" in text and "depth from motion" in text
        lifted = NODES["LiftGaussians"]().lift(scene.frames, "tracks", 60.0, 0.3, 1, "drop", 0.1, "reference", "disparity", 1.0, 10.0, tracks=out["result"][0])
        assert "warning: the tracks carry no depth" in lifted["ui"]["vid4d_info"][0]
    assert sum("no depth" in r.getMessage() or "carry no depth" in r.getMessage() for r in caplog.records) == 2


def test_depth_from_motion_filled_where_unknown():
    depth = torch.full((2, 8, 8), 2.0)
    valid = torch.ones(2, 8, 8, dtype=torch.bool)
    valid[0, 2:5, 2:5] = False
    valid[1] = False  # a frame with no depth at all
    filled, share = fill_unknown(DepthVideo(torch.where(valid, depth, torch.zeros_like(depth)), valid=valid))
    assert share == pytest.approx((9 + 64) / 128)
    torch.testing.assert_close(filled.depth, depth)  # the surroundings (and the video's median for the empty frame)
    plane, share = fill_unknown(DepthVideo(torch.zeros(1, 4, 4), valid=torch.zeros(1, 4, 4, dtype=torch.bool)))
    assert share == 1.0 and bool((plane.depth == 1.0).all())


def test_estimate_camera_fill_unknown_keeps_the_moving_ball():
    scene = sample_scene(8, 64, 40, seed=0)
    tracks = track_dense(scene.frames, method="flow_chain")
    node = NODES["Vid4DEstimateCamera"]()
    raw = node.solve(tracks, 0.0, 1000, 5)["result"][3]
    filled = node.solve(tracks, 0.0, 1000, 5, fill_unknown=True)
    depth, preview = filled["result"][3], filled["result"][6]
    assert bool((raw.depth[raw.valid] > 0).all()) and not bool(raw.valid.all())
    assert bool((depth.depth > 0).all()) and preview.shape == (8, 40, 64, 3)
    assert "filled from the surroundings" in filled["ui"]["vid4d_info"][0]


def _tripod_pan(frames=6, width=64, height=48, px=3):
    """A camera on a tripod panning: the picture slides ``px`` a frame and nothing shows parallax."""
    wide = texture(height, width + px * frames)
    return torch.stack([wide[:, px * t : px * t + width] for t in range(frames)])


def test_a_tripod_pan_has_no_depth_from_motion_and_says_what_to_do(caplog):
    """A camera that only turns gives no parallax: Estimate Camera warns that its depth is empty, and a node given
    that depth refuses it naming the fixes (fill_unknown's plane at depth 1, or a depth model)."""
    clip = _tripod_pan()
    tracks = track_dense(clip, method="flow_chain")
    node = NODES["Vid4DEstimateCamera"]()
    with caplog.at_level(logging.WARNING, logger="vid4d"):
        out = node.solve(tracks, 0.0, 1000, 5)
    assert "no depth from motion" in out["ui"]["vid4d_info"][0] and "turn on fill_unknown" in out["ui"]["vid4d_info"][0]
    assert any("no depth from motion" in r.getMessage() for r in caplog.records)
    args = ("first_frame", 60.0, 0.3, 1, "drop", 0.1, "reference", "disparity", 1.0, 10.0)
    with pytest.raises(ValueError, match=r"depth: no pixel has a depth.*fill_unknown.*VideoDepth or Depth From Image"):
        NODES["LiftGaussians"]().lift(clip, *args, depth=out["result"][3])
    filled = node.solve(tracks, 0.0, 1000, 5, fill_unknown=True)["result"][3]
    field = NODES["LiftGaussians"]().lift(clip, *args, depth=filled)["result"][0]
    assert field.median_depth(0) == pytest.approx(1.0)  # the plane a turning camera sees the same from every angle


# ------------------------------------------------------------------------------------------- from_video motion


def _panning_clip(frames=16, size=64, pan=3.0, sway=1.5):
    """A textured plane panned `pan` px a frame (the camera) with a small blob swaying `sway` px (the oscillation)."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    out = []
    for t in range(frames):
        u = x + pan * t
        img = torch.stack([0.5 + 0.3 * torch.sin(0.37 * u) * torch.cos(0.29 * y), 0.5 + 0.3 * torch.sin(0.21 * u + 0.33 * y), 0.5 + 0.2 * torch.cos(0.41 * y - 0.17 * u)], -1)
        cx = size / 2 + sway * torch.sin(torch.tensor(2 * torch.pi * t / frames))
        blob = ((x - cx) ** 2 + (y - size / 2) ** 2) < 36
        img[blob] = torch.tensor([0.95, 0.15, 0.1]) * (0.8 + 0.2 * torch.sin(0.9 * (x[blob] - cx)))[:, None]
        out.append(img)
    return torch.stack(out).clamp(0, 1)


def _spectral(clip, remove, num_freqs=8, **kw):
    args = dict(num_freqs=num_freqs, amplitude_scale=1.0, num_frames=16, fps=16.0, loop=True, direction=0.0, amplitude=4.0, freq_low=0.2, freq_high=3.0, coherence=16.0,
                seed=0, remove_camera_motion=remove, steps=1)
    return NODES["SpectralMotion"]().run(clip[:1], "from_video", **args, video=clip, **kw)


def test_from_video_motion_of_a_panning_clip_is_flagged_and_removed():
    clip = _panning_clip()
    raw = _spectral(clip, False)
    text = raw["ui"]["vid4d_info"][0]
    assert "warning: mean motion" in text and "turn on remove_camera_motion" in text
    removed = _spectral(clip, True)
    mean, _, implausible = sp.motion_check(removed["result"][1].displacement)
    assert not implausible and "warning" not in removed["ui"]["vid4d_info"][0] and mean < 0.03 * 64


def test_a_solved_camera_removes_parallax_a_homography_leaves():
    """The sample scene's camera trucks through a 3D room: one homography cannot remove the motion of the near floor
    and the far wall together; the solved camera with the depth does (what is left is the ball, which really moves)."""
    from vid4d.py.camera import pixel_grid

    scene = sample_scene(12, 96, 64, seed=0)
    tracks = scene.tracks(0)
    disp = tracks.uv - pixel_grid(64, 96)  # the exact displacement of frame 0's pixels
    static = ~scene.object_mask[0][None] & tracks.visible()
    hom = sp.remove_global_motion(disp)
    solved = sp.remove_camera_flow(disp, scene.camera, scene.depth[0])
    residual = lambda d: float(d.norm(dim=-1)[static].mean())  # noqa: E731
    assert residual(hom) > 0.5 and residual(solved) < 1e-3  # the homography leaves ~0.9 px of parallax; the solved camera none
    out = _spectral(scene.frames, True, camera=scene.camera, depth=scene.depth_video(), num_freqs=4)
    assert "camera motion removed by the solved camera" in out["ui"]["vid4d_info"][0]


# ------------------------------------------------------------------------------------------- progress, timings, tables


def test_progress_in_a_log_is_one_line_per_update_with_rate_and_eta(monkeypatch):
    stream = io.StringIO()
    printer = wf.ConsoleProgress(stream=stream, live=False, min_interval=0.0)
    for i in range(1, 5):
        printer("render gaussians", i, 4)
    printer("save video", 1, 1)  # a one-step loop prints nothing
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in stream.getvalue()
    assert re.match(r"\s+render gaussians: 4/4 \(100%\) \[\d\d:\d\d<\d\d:\d\d, .*it/s\]", lines[-1]), lines[-1]


def test_progress_in_a_terminal_is_a_tqdm_bar():
    stream = io.StringIO()
    printer = wf.ConsoleProgress(stream=stream, live=True)
    for i in range(1, 4):
        printer("track (flow_chain)", i, 3)
    printer.log("next node")
    text = stream.getvalue()
    assert "track (flow_chain): 100%" in text and "3/3" in text and "it/s" in text


def test_the_runner_reports_each_nodes_time(headless):
    lines = []
    prompt = {"1": {"class_type": "Vid4DLoadVideo", "inputs": {"video": "(sample scene)", "start_frame": 0, "frame_stride": 1, "max_frames": 2, "width": 32, "height": 0, "fit": "crop", "multiple_of": 8}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    result = wf.execute(prompt, {**wf.CORE_NODES, **NODES}, log=lines.append)
    assert any(re.match(r"\s+Vid4DLoadVideo took \d+\.\d\d s", line) for line in lines)
    table = wf.timing_table(prompt, result)
    assert len(table) == 2 and table[0].startswith("[1]  Vid4DLoadVideo") and table[0].endswith("%")


def test_the_nodes_table_is_aligned(tmp_path):
    out = subprocess.run([sys.executable, "-m", "vid4d", "nodes"], capture_output=True, text=True, cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith("node id") and set(out[1]) <= {"-", " "}
    columns = [m.start() for m in re.finditer(r"(?<=  )\S", out[1])]
    for line in out[2:]:
        name = line.split()[0]
        assert name in NODES and all(line[c - 2 : c] == "  " and line[c] != " " for c in columns), line
    assert len(out) == len(NODES) + 2


# ------------------------------------------------------------------------------------------- package metadata


def test_requirements_match_pyproject_and_the_registry_metadata_is_complete():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0].lower(): d.replace(" ", "") for d in project["project"]["dependencies"]}
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]
    reqs = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0].lower(): d.replace(" ", "") for d in lines}
    assert {k: v for k, v in deps.items() if k != "torch"} == reqs, "keep requirements.txt in step with pyproject.toml (torch aside)"
    # No floor stricter than ComfyUI's own requirements.txt (0.3.64): it would upgrade what ComfyUI runs with.
    comfy = {"transformers": (4, 37, 2), "pillow": (9, 1), "numpy": (1, 25), "safetensors": (0, 4, 2), "av": (14, 2), "kornia": (0, 7, 1), "tqdm": (), "sentencepiece": ()}
    for name, floor in comfy.items():
        match = re.search(r">=([\d.]+)", deps[name])
        ours = tuple(int(p) for p in match.group(1).split(".")) if match else ()
        assert ours <= floor or not ours, f"{deps[name]} is stricter than ComfyUI's {name}"
    comfy_tool = project["tool"]["comfy"]
    icon = comfy_tool["Icon"]
    assert icon.endswith("/docs/icon.png") and (ROOT / "docs" / "icon.png").stat().st_size > 1000
    urls = project["project"]["urls"]
    assert {"Repository", "Documentation", "Issues"} <= set(urls)
    classifiers = project["project"]["classifiers"]
    assert any(c.startswith("Operating System ::") for c in classifiers) and any(c.startswith("Environment :: GPU") for c in classifiers)
    assert json.loads(json.dumps(comfy_tool))["requires-comfyui"]
