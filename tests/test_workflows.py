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
from conftest import ROOT, tiny_workflow_overrides

WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
SMALL_INPUT = {"width": 64, "height": 64, "max_frames": 5}  # Load Video nodes that read --input
SMALL = {"Vid4DSampleScene": {"num_frames": 6, "width": 64, "height": 48}, "SpectralMotion": {"num_frames": 8, "num_freqs": 4, "fps": 4.0}, **tiny_workflow_overrides()}


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
    """A Load Video node whose path is not linked from another node: it needs --input."""
    return node["class_type"] == "Vid4DLoadVideo" and not isinstance(node["inputs"].get("path"), list)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_runs_headless(path, headless, tiny_models):
    workflow, skipped = wf.without_comfyui_nodes(wf.load_workflow(path))
    prompt = wf.ui_to_api(workflow, {**wf.CORE_NODES, **vid4d.NODE_CLASS_MAPPINGS})
    small = SMALL
    if any(n["class_type"] == "GSDiTSampler" for n in prompt.values()):
        # CogVideoX takes 8k + 1 frames: 9 is the smallest clip that still has motion
        small = {**SMALL, "Vid4DSampleScene": {**SMALL["Vid4DSampleScene"], "num_frames": 9}}
    overrides = [f"{nid}.{k}={v}" for nid, n in prompt.items() for k, v in small.get(n["class_type"], {}).items()]
    input_file = None
    if any(_reads_a_file(n) for n in prompt.values()):
        input_file = headless / "input" / "clip.mp4"
        vio.write_video(sample_scene(12, 64, 64, seed=1).frames, input_file, 16.0)
        overrides += [f"{nid}.{k}={v}" for nid, n in prompt.items() if _reads_a_file(n) for k, v in SMALL_INPUT.items()]
    result = wf.run_file(path, vid4d.NODE_CLASS_MAPPINGS, input_file=input_file, overrides=overrides, log=lambda _: None)
    assert result.skipped == sorted(skipped, key=wf._id_key)
    files = result.files()
    assert files and all(f.exists() and f.stat().st_size > 0 for f in files)
    for f in files:
        if f.suffix in (".mp4", ".webm", ".webp", ".gif"):
            clip = vio.read_video(f)
            assert clip.frames.shape[0] >= 2 and clip.frames.std() > 0.02, f"{f.name} looks empty"


def test_demo_workflow_outputs_match_the_scene(headless):

    result = wf.run_file(ROOT / "workflows" / "vid4d_demo.json", vid4d.NODE_CLASS_MAPPINGS, overrides=["1.num_frames=6", "1.width=64", "1.height=48"], log=lambda _: None)
    rgb = next(f for f in result.files() if "rgb" in f.name)
    clip = vio.read_video(rgb)
    scene = sample_scene(6, 64, 48, seed=0, fps=12.0)
    assert clip.frames.shape == scene.frames.shape and clip.fps == pytest.approx(12.0, abs=1e-3)
    assert (clip.frames - scene.frames).abs().mean() < 0.04
    assert rgb.with_name(rgb.stem + "_sheet.png").exists()


def test_cli_demo_writes_video_and_contact_sheet(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vid4d", "demo", "--out", str(out), "--set", "1.num_frames=4", "--set", "1.width=48", "--set", "1.height=32"]
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
