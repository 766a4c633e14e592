"""Every shipped workflow parses, uses known node types, and runs headless end to end (small size)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vid4d
from vid4d.nodes import runtime, workflow as wf
from vid4d.py import video as vio
from vid4d.py.scene import sample_scene
from conftest import ROOT, texture, tiny_workflow_overrides

WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
SMALL_INPUT = {"width": 64, "height": 64, "max_frames": 5}  # Load Video nodes that read --input
# Load Video without a file renders the sample scene: 9 frames (CogVideoX keeps 8k+1) of 64x64 (ChronoDepth's minimum).
SMALL = {"Vid4DSampleScene": {"num_frames": 6, "width": 64, "height": 48}, "Vid4DLoadVideo": {"max_frames": 9, "width": 64, "height": 64},
         "SpectralMotion": {"num_frames": 8, "num_freqs": 3, "fps": 4.0}, "PointRegularizer": {"max_anchors": 256}, **tiny_workflow_overrides()}
NO_WEIGHTS = [p for p in WORKFLOWS if "| none" in next((line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| `{p.name}`")), "")]


def test_there_is_a_demo_workflow():
    assert (ROOT / "workflows" / "vid4d_demo.json") in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_is_ui_format_with_known_nodes(path):
    data = json.loads(path.read_text())
    assert wf.is_ui_format(data), "ship UI-format workflows (what ComfyUI's template browser opens)"
    for key in ("last_node_id", "last_link_id", "nodes", "links", "version"):
        assert key in data
    # Core model nodes (Wan loaders, samplers, VAE) exist only in a real ComfyUI: the harness runs those
    # workflows there (tests/tools/wan_harness.py); headless they run up to the video-model inputs.
    known = set(vid4d.NODE_CLASS_MAPPINGS) | set(wf.KNOWN_CORE_TYPES) | wf.COMFYUI_ONLY_TYPES
    types = {n["type"] for n in data["nodes"]}
    assert types <= known, f"unknown node types {types - known}"
    assert types & set(vid4d.NODE_CLASS_MAPPINGS)
    link_ids = {link[0] for link in data["links"]}
    for node in data["nodes"]:
        for slot in node.get("inputs", []):
            assert slot.get("link") is None or slot["link"] in link_ids


def _reads_a_file(node) -> bool:
    """A Load Video node whose path is not linked from another node: --input points it at a file."""
    return node["class_type"] == "Vid4DLoadVideo" and not isinstance(node["inputs"].get("path"), list)


def test_every_video_workflow_starts_with_load_video():
    """--input and ComfyUI's upload button work on every shipped workflow; without a file Load Video gives the sample scene."""
    for path in WORKFLOWS:
        prompt = wf.ui_to_api(wf.without_comfyui_nodes(wf.load_workflow(path))[0], {**wf.CORE_NODES, **vid4d.NODE_CLASS_MAPPINGS})
        types = {n["class_type"] for n in prompt.values()}
        assert "Vid4DSampleScene" not in types, f"{path.name}: start from Load Video (its '(sample scene)' choice) so --input works"
        loaders = [n for n in prompt.values() if _reads_a_file(n)]
        assert loaders and all(n["inputs"]["video"] == "(sample scene)" for n in loaders), path.name


def _smaller(key, own, small):
    return min(own, small) if key == "max_frames" and isinstance(own, int) and own > 0 else small


def _run(path, headless, input_file=None, extra=()):
    workflow, skipped = wf.without_comfyui_nodes(wf.load_workflow(path))
    prompt = wf.ui_to_api(workflow, {**wf.CORE_NODES, **vid4d.NODE_CLASS_MAPPINGS})
    # Smaller, never longer: a workflow's own short clip (max_frames 1 for a still image) is kept.
    overrides = [f"{nid}.{k}={_smaller(k, n['inputs'].get(k), v)}" for nid, n in prompt.items() for k, v in SMALL.get(n["class_type"], {}).items()]
    if input_file is not None:
        overrides += [f"{nid}.{k}={v}" for nid, n in prompt.items() if _reads_a_file(n) for k, v in SMALL_INPUT.items()]
    result = wf.run_file(path, vid4d.NODE_CLASS_MAPPINGS, input_file=input_file, overrides=[*overrides, *extra], log=lambda _: None)
    return result, skipped


def _handheld_clip(path, frames=12, width=96, height=64, near_px=4, far_px=1, fps=12.0):
    """A clip that is not the sample scene, shot the way a phone walks past things: the camera trucks right, so a far
    textured wall slides ``far_px`` a frame and a near band (the lower third, 4x closer) ``near_px`` (parallax), while a
    red blob crosses on its own. ``near_px == far_px`` is a tripod pan: no parallax at all."""
    far = texture(height, width + far_px * frames, 0.31, 0.23)
    near = texture(height, width + near_px * frames, 0.13, 0.41) * 0.7 + 0.15
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    band = (y >= 2 * height // 3)[..., None]
    clip = []
    for t in range(frames):
        img = torch.where(band, near[:, near_px * t : near_px * t + width], far[:, far_px * t : far_px * t + width]).clone()
        blob = ((x - (10 + 5 * t)) ** 2 + (y - height // 3) ** 2) < 49
        img[blob] = torch.tensor([0.9, 0.2, 0.1])
        clip.append(img)
    vio.write_video(torch.stack(clip).clamp(0, 1), path, fps)
    return path


def _files_are_not_empty(files) -> None:
    assert files and all(f.exists() and f.stat().st_size > 0 for f in files)
    for f in files:
        if f.suffix in (".mp4", ".webm", ".webp", ".gif"):
            clip = vio.read_video(f)
            assert clip.frames.shape[0] >= 2 and clip.frames.std() > 0.02, f"{f.name} looks empty"


@pytest.mark.parametrize("path", NO_WEIGHTS, ids=[p.stem for p in NO_WEIGHTS])
def test_no_weights_workflow_runs_on_your_own_clip(path, headless):
    """`python -m vid4d run WF --input "my clip.mp4"` on a clip that is not the sample scene (a hand-held walk past a
    wall with a near band and a moving blob), at 64x64 and 5 frames; outputs written and not empty."""
    clip = _handheld_clip(headless / "input" / "my clip.mp4")
    result, _ = _run(path, headless, input_file=clip)
    _files_are_not_empty(result.files())


def test_the_command_a_new_user_types(tmp_path):
    """`python -m vid4d run workflows/gsdit_track_and_render.json --input my.mp4`: the issue's first try, as a command."""
    clip = _handheld_clip(tmp_path / "my clip.mp4")
    sets = [a for k, v in {**SMALL_INPUT, "max_frames": 6}.items() for a in ("--set", f"1.{k}={v}")]
    cmd = [sys.executable, "-m", "vid4d", "run", str(ROOT / "workflows" / "gsdit_track_and_render.json"), "--input", str(clip), "--out", str(tmp_path / "out"), *sets]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "took" in proc.stdout + proc.stderr  # the time each node took
    _files_are_not_empty(sorted((tmp_path / "out").rglob("*.mp4")))


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_runs_headless(path, headless, tiny_models):
    result, skipped = _run(path, headless)
    assert result.skipped == sorted(skipped, key=wf._id_key)
    files = result.files()
    assert files and all(f.exists() and f.stat().st_size > 0 for f in files)
    for f in files:
        if f.suffix in (".mp4", ".webm", ".webp", ".gif"):
            clip = vio.read_video(f)
            assert clip.frames.shape[0] >= 2 and clip.frames.std() > 0.02, f"{f.name} looks empty"


def test_demo_workflow_outputs_match_the_scene(headless):

    result = wf.run_file(ROOT / "workflows" / "vid4d_demo.json", vid4d.NODE_CLASS_MAPPINGS, overrides=["1.max_frames=6", "1.width=64", "1.height=48"], log=lambda _: None)
    rgb = next(f for f in result.files() if "rgb" in f.name)
    clip = vio.read_video(rgb)
    scene = sample_scene(6, 64, 48, seed=0, fps=12.0)
    assert clip.frames.shape == scene.frames.shape and clip.fps == pytest.approx(12.0, abs=1e-3)
    assert (clip.frames - scene.frames).abs().mean() < 0.04
    assert rgb.with_name(rgb.stem + "_sheet.png").exists()


def test_cli_demo_writes_video_and_contact_sheet(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vid4d", "demo", "--out", str(out), "--set", "1.max_frames=4", "--set", "1.width=48", "--set", "1.height=32"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list(out.rglob("*.mp4"))) == 4 and len(list(out.rglob("*_sheet.png"))) == 4
    assert "wrote" in proc.stdout


def test_cli_run_with_input_file_and_clear_errors(tmp_path):
    video = tmp_path / "in.mp4"
    vio.write_video(torch.rand(5, 32, 48, 3), video, 10.0)
    api = {
        "1": {"class_type": "Vid4DLoadVideo", "inputs": {"video": "", "start_frame": 0, "frame_stride": 1, "max_frames": 0, "width": 0, "height": 0, "fit": "crop", "multiple_of": 16}},
        "2": {"class_type": "Vid4DSaveVideo", "inputs": {"images": ["1", 0], "filename_prefix": "x", "fps": ["1", 1], "format": "gif", "crf": 19, "contact_sheet": False}},
    }
    wf_path = tmp_path / "api.json"
    wf_path.write_text(json.dumps(api))
    run = lambda *extra: subprocess.run([sys.executable, "-m", "vid4d", "run", str(wf_path), "--out", str(tmp_path / "o"), *extra], capture_output=True, text=True, cwd=tmp_path)
    ok = run("--input", str(video))
    assert ok.returncode == 0, ok.stderr
    gif = next((tmp_path / "o").glob("x_*.gif"))
    clip = vio.read_video(gif)
    assert clip.frames.shape == (5, 32, 48, 3)
    bad = run("--input", str(video), "--set", "1.nope=3")
    assert bad.returncode == 2 and "has no input 'nope'" in bad.stderr
    missing = run("--input", str(tmp_path / "absent.mp4"))
    assert missing.returncode == 2 and "absent.mp4" in missing.stderr
