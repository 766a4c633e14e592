"""Record the camera paths of today's presets: tests/data/camera_path_v1.{json,safetensors}.

    PYTHONPATH=<a folder holding the vid4d package> python tests/tools/record_camera_fixture.py

Recorded once, from commit e4112a4 (before the presets became a registry), so that
tests/test_camera_parity.py can check that every preset still gives the same tensors and that a
workflow saved by that version still loads to the same widget values. Re-record only to change a
preset's motion on purpose (and say so in the commit).

The JSON holds a UI-format workflow saved by that version's CameraPath node (one node per case, each
feeding a PreviewImage, so it also runs in a real ComfyUI), the widget values each node loaded to,
the cases with a source camera connected, library calls, and the CameraPath nodes of the shipped
workflows with the values they loaded to. The safetensors file holds each case's float32
``intrinsics`` and ``world_to_camera`` per camera (``<case>/K<i>``, ``<case>/w2c<i>``).
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import vid4d
from vid4d.nodes import workflow as wf
from vid4d.py import camera as cam

try:
    from vid4d.nodes.camera import CameraPath as CameraPathNode
except ImportError:  # the version the fixture was recorded from
    from vid4d.nodes.render import CameraPath as CameraPathNode

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "camera_path_v1"

BASE = dict(preset="dolly_zoom", num_frames=5, width=64, height=48, fov=60.0, focus_depth=3.0, angle=30.0, distance=0.5, zoom=1.5,
            elevation=0.0, easing="ease_in_out", cameras=1, rig_angle=30.0, keyframes="[]")
KEYS_A = [{"frame": 0, "position": [0, 0, 0]}, {"frame": 2, "position": [0.5, -0.2, 0.4], "look_at": [0, 0, 3]},
          {"frame": 4, "position": [-0.6, 0.1, 1.0], "angles": [40, -10, 15], "fov": 45}]
KEYS_B = [{"t": 0, "position": [0, 0, 0], "quaternion": [1, 0, 0, 0]}, {"t": 0.5, "position": [0.3, 0, 0.2], "quaternion": [0.98, 0.0, 0.2, 0.0], "focal": 70},
          {"t": 1, "position": [0.6, 0.1, 0.0], "look_at": [0, 0, 4]}]
SOURCE = {"num_frames": 6, "width": 64, "height": 48, "K": [[50.0, 0.5, 31.5], [0.0, 52.0, 23.5], [0.0, 0.0, 1.0]]}
PRESETS = ("static", "orbit", "arc", "dolly", "dolly_zoom", "pan", "tilt", "roll", "truck", "pedestal", "zoom", "keyframes")


def node_cases() -> list[dict]:
    cases = [{**BASE, "preset": p, **({"keyframes": json.dumps(KEYS_A)} if p == "keyframes" else {})} for p in PRESETS]
    variants = [
        dict(preset="orbit", angle=-45.0, elevation=20.0, easing="linear"),
        dict(preset="arc", angle=60.0, elevation=-10.0),
        dict(preset="dolly", distance=-1.2, easing="linear"),
        dict(preset="dolly_zoom", distance=-2.0, focus_depth=5.0),
        dict(preset="pan", angle=-20.0),
        dict(preset="tilt", angle=25.0),
        dict(preset="roll", angle=90.0, easing="linear"),
        dict(preset="truck", distance=-0.7),
        dict(preset="pedestal", distance=1.3),
        dict(preset="zoom", zoom=0.5, fov=40.0),
        dict(preset="keyframes", keyframes=json.dumps(KEYS_B), easing="linear"),
        dict(preset="static", cameras=3, rig_angle=24.0),
        dict(preset="orbit", cameras=4, rig_angle=60.0),
        dict(preset="dolly_zoom", cameras=2),
        dict(preset="keyframes", keyframes=json.dumps(KEYS_A), cameras=2),
        dict(preset="orbit", num_frames=1),
    ]
    return cases + [{**BASE, **v} for v in variants]


def source_cases() -> dict[str, dict]:
    zero = dict(num_frames=0, width=0, height=0)
    return {
        "dolly_zoom": {**BASE, **zero, "preset": "dolly_zoom"},
        "zoom": {**BASE, **zero, "preset": "zoom"},
        "orbit_rig": {**BASE, **zero, "preset": "orbit", "cameras": 3},
        "keyframes": {**BASE, **zero, "preset": "keyframes", "keyframes": json.dumps(KEYS_A)},
        "pan_4_frames": {**BASE, **zero, "preset": "pan", "num_frames": 4},
    }


def library_cases() -> dict[str, dict]:
    out = {f"{p}_defaults": {"call": "camera_path", "args": [p, 5, 64, 48], "kwargs": {"keyframes": KEYS_A} if p == "keyframes" else {}} for p in PRESETS}
    out.update({
        "dolly_zoom_focal": {"call": "camera_path", "args": ["dolly_zoom", 5, 64, 48], "kwargs": {"focal": 70.0, "focus_depth": 4.0}},
        "zoom_intrinsics": {"call": "camera_path", "args": ["zoom", 5, 64, 48], "kwargs": {"intrinsics": SOURCE["K"], "zoom": 2.0}},
        "arc_eased": {"call": "camera_path", "args": ["arc", 7, 64, 48], "kwargs": {"easing": "ease_in_out", "elevation": 10.0}},
        "orbit_one_frame": {"call": "camera_path", "args": ["orbit", 1, 64, 48], "kwargs": {}},
        "keyframes_one_key": {"call": "camera_path", "args": ["keyframes", 5, 64, 48], "kwargs": {"keyframes": [{"frame": 2, "position": [0.1, 0.2, 0.3], "angles": [5, 6, 7]}]}},
        "keyframes_json_eased": {"call": "camera_path", "args": ["keyframes", 9, 64, 48], "kwargs": {"keyframes": json.dumps(KEYS_B), "easing": "ease_in_out"}},
        "rig_still": {"call": "camera_rig", "args": [3, 5, 64, 48], "kwargs": {}},
        "rig_fov": {"call": "camera_rig", "args": [2, 5, 64, 48], "kwargs": {"fov": 50.0, "arc_angle": 90.0, "focus_depth": 2.0}},
        "rig_orbit_base": {"call": "camera_rig", "args": [3, 5, 64, 48], "kwargs": {"base": {"preset": "orbit", "angle": 20.0}}},
        "fov_horizontal": {"call": "intrinsics_from_fov", "args": [50.0, 64, 48], "kwargs": {}},
        "fov_vertical": {"call": "intrinsics_from_fov", "args": [50.0, 64, 48], "kwargs": {"axis": "vertical"}},
    })
    return out


def run_library(case: dict) -> list:
    kwargs = dict(case["kwargs"])
    if "intrinsics" in kwargs:
        kwargs["intrinsics"] = torch.tensor(kwargs["intrinsics"])
    if case["call"] == "intrinsics_from_fov":
        return [cam.intrinsics_from_fov(*case["args"], **kwargs)]
    if case["call"] == "camera_rig":
        if "base" in kwargs:
            base = dict(kwargs["base"])
            kwargs["base"] = cam.camera_path(base.pop("preset"), *case["args"][1:], **base)
        return cam.camera_rig(*case["args"], **kwargs)
    return [cam.camera_path(*case["args"], **kwargs)]


def source_camera() -> cam.CameraPath:
    return cam.CameraPath.static(torch.tensor(SOURCE["K"]), SOURCE["num_frames"], SOURCE["width"], SOURCE["height"])


def node_paths(widgets: dict, source=None) -> list:
    out = CameraPathNode().make(**widgets, source_camera=source)["result"][0]
    return list(out.paths) if isinstance(out, cam.CameraRig) else [out]


def store(tensors: dict, key: str, paths: list) -> None:
    for i, p in enumerate(paths):
        if isinstance(p, torch.Tensor):  # intrinsics_from_fov
            tensors[f"{key}/K{i}"] = p.float().contiguous()
            continue
        tensors[f"{key}/K{i}"] = p.intrinsics.float().contiguous()
        tensors[f"{key}/w2c{i}"] = p.world_to_camera.float().contiguous()


def main() -> int:
    classes = {**wf.CORE_NODES, **vid4d.NODE_CLASS_MAPPINGS}
    cases = node_cases()
    prompt = {}
    for i, widgets in enumerate(cases):
        nid, preview = 2 * i + 1, 2 * i + 2
        prompt[str(nid)] = {"class_type": "CameraPath", "inputs": dict(widgets)}
        prompt[str(preview)] = {"class_type": "PreviewImage", "inputs": {"images": [str(nid), 1]}}
    workflow = wf.api_to_ui(prompt, vid4d.NODE_CLASS_MAPPINGS)
    loaded = wf.ui_to_api(workflow, classes)
    tensors: dict[str, torch.Tensor] = {}
    nodes = {}
    for nid, node in prompt.items():
        if node["class_type"] != "CameraPath":
            continue
        assert loaded[nid]["inputs"] == node["inputs"], nid
        nodes[nid] = node["inputs"]
        store(tensors, f"node/{nid}", node_paths(node["inputs"]))
    src = {}
    for name, widgets in source_cases().items():
        src[name] = widgets
        store(tensors, f"source/{name}", node_paths(widgets, source_camera()))
    lib = library_cases()
    for name, case in lib.items():
        store(tensors, f"lib/{name}", run_library(case))
    shipped = {}
    for path in sorted((ROOT / "workflows").glob("*.json")):
        api = wf.ui_to_api(wf.load_workflow(path), classes)
        for nid, node in api.items():
            if node["class_type"] != "CameraPath":
                continue
            widgets = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}
            shipped.setdefault(path.stem, {})[nid] = widgets
            store(tensors, f"shipped/{path.stem}/{nid}", node_paths(widgets, source_camera()))
    meta = {
        "note": "recorded by tests/tools/record_camera_fixture.py from commit e4112a4 (before the preset registry)",
        "source_camera": SOURCE,
        "nodes": nodes,
        "source_cases": src,
        "library": lib,
        "shipped": shipped,
        "workflow": workflow,
    }
    OUT.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    save_file(tensors, str(OUT.with_suffix(".safetensors")))
    print(f"{len(nodes)} node cases, {len(src)} with a source camera, {len(lib)} library calls, "
          f"{sum(len(v) for v in shipped.values())} shipped nodes, {len(tensors)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
