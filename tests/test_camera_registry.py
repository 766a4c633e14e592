"""The camera preset registry: what lists presets is derived from it, and nothing a user saved changed.

Parity fixture: tests/data/camera_path_v1.{json,safetensors}, recorded from the version before the
registry (commit e4112a4, tests/tools/record_camera_fixture.py): a UI workflow saved by that CameraPath
node (a node per case), the widget values each node and each shipped workflow loaded to, and the
float32 intrinsics / world_to_camera every case gave.
"""

import json
import re
import shutil
import subprocess

import pytest
import torch
from safetensors.torch import load_file

import vid4d
from vid4d.nodes import workflow as wf
from vid4d.nodes.camera import CameraPath as CameraPathNode
from vid4d.nodes.camera import camera_path_request, route_fields
from vid4d.py import camera as cam
from conftest import ROOT

DATA = ROOT / "tests" / "data" / "camera_path_v1"
FIXTURE = json.loads(DATA.with_suffix(".json").read_text())
TENSORS = load_file(str(DATA.with_suffix(".safetensors")))
CLASSES = {**wf.CORE_NODES, **vid4d.NODE_CLASS_MAPPINGS}
# Saved workflows store CameraPath's widget values by position: this order is a promise to every user.
WIDGET_ORDER = ["preset", "num_frames", "width", "height", "fov", "focus_depth", "angle", "distance", "zoom", "elevation", "easing",
                "cameras", "rig_angle", "keyframes",
                "follow", "smoothing", "reference_depth"]  # issue 15: moves relative to the solved source path (appended)
SOCKET_ORDER = ["source_camera", "gaussians", "source_path", "reference_path"]
RECORDED_PRESETS = {case["preset"] for case in FIXTURE["nodes"].values()}  # the menu when the fixture was recorded


def _assert_recorded(key: str, paths) -> None:
    paths = cam.as_path_list(paths)
    assert len(paths) == sum(1 for k in TENSORS if k.startswith(f"{key}/K")), f"{key}: number of cameras"
    for i, path in enumerate(paths):
        torch.testing.assert_close(path.intrinsics, TENSORS[f"{key}/K{i}"], rtol=1e-6, atol=1e-6, msg=f"{key} camera {i}: intrinsics")
        torch.testing.assert_close(path.world_to_camera, TENSORS[f"{key}/w2c{i}"], rtol=1e-6, atol=1e-6, msg=f"{key} camera {i}: world_to_camera")


def _source_camera() -> cam.CameraPath:
    src = FIXTURE["source_camera"]
    return cam.CameraPath.static(torch.tensor(src["K"]), src["num_frames"], src["width"], src["height"])


def _make(widgets: dict, source=None):
    return CameraPathNode().make(**widgets, source_camera=source)["result"][0]


# ------------------------------------------------------------------------------------ saved workflows


def test_widget_order_is_the_order_saved_workflows_use():
    spec = CameraPathNode.INPUT_TYPES()
    assert list(spec["required"]) == WIDGET_ORDER
    assert list(spec["optional"]) == SOCKET_ORDER


def test_a_workflow_saved_before_the_registry_loads_to_the_same_values_and_paths():
    prompt = wf.ui_to_api(FIXTURE["workflow"], CLASSES)
    wf.validate(prompt, CLASSES)  # the runner's (and the server's) checks: combos, min/max, links
    assert set(FIXTURE["nodes"]) == {nid for nid, n in prompt.items() if n["class_type"] == "CameraPath"}
    assert RECORDED_PRESETS == set(cam.PRESETS[: len(RECORDED_PRESETS)])  # every preset of the time is covered, new ones come after
    added = {name: spec[1]["default"] for name, spec in CameraPathNode.INPUT_TYPES()["required"].items() if name in WIDGET_ORDER[14:]}
    for nid, recorded in FIXTURE["nodes"].items():
        assert prompt[nid]["inputs"] == {**recorded, **added}, f"node {nid} loads to other widget values"  # widgets added since: defaults
        _assert_recorded(f"node/{nid}", _make(prompt[nid]["inputs"]))


@pytest.mark.parametrize("stem", sorted(FIXTURE["shipped"]))
def test_shipped_workflows_load_to_the_same_values_and_paths(stem):
    prompt = wf.ui_to_api(wf.load_workflow(ROOT / "workflows" / f"{stem}.json"), CLASSES)
    for nid, recorded in FIXTURE["shipped"][stem].items():
        widgets = {k: v for k, v in prompt[nid]["inputs"].items() if not isinstance(v, list)}
        assert {k: v for k, v in widgets.items() if k in recorded} == recorded
        _assert_recorded(f"shipped/{stem}/{nid}", _make(widgets, _source_camera()))


def test_every_shipped_camera_path_is_in_the_fixture():
    # A preset newer than the fixture has no recorded path (its workflow runs in tests/test_workflows.py).
    shipped = {}
    for path in sorted((ROOT / "workflows").glob("*.json")):
        nodes = [str(n["id"]) for n in json.loads(path.read_text())["nodes"] if n["type"] == "CameraPath" and n["widgets_values"][0] in RECORDED_PRESETS]
        if nodes:
            shipped[path.stem] = nodes
    # Every workflow recorded from the old node is still shipped with the same CameraPath nodes (their values and
    # paths are compared below); workflows added since run in tests/test_workflows.py.
    recorded = {stem: list(nodes) for stem, nodes in FIXTURE["shipped"].items()}
    assert {stem: shipped.get(stem) for stem in recorded} == recorded


@pytest.mark.parametrize("name", sorted(FIXTURE["source_cases"]))
def test_paths_from_a_source_camera_are_unchanged(name):
    _assert_recorded(f"source/{name}", _make(FIXTURE["source_cases"][name], _source_camera()))


@pytest.mark.parametrize("name", sorted(FIXTURE["library"]))
def test_library_calls_are_unchanged(name):
    case = FIXTURE["library"][name]
    kwargs = dict(case["kwargs"])
    if "intrinsics" in kwargs:
        kwargs["intrinsics"] = torch.tensor(kwargs["intrinsics"])
    if case["call"] == "intrinsics_from_fov":
        torch.testing.assert_close(cam.intrinsics_from_fov(*case["args"], **kwargs), TENSORS[f"lib/{name}/K0"], rtol=1e-6, atol=1e-6)
        return
    if case["call"] == "camera_rig":
        if "base" in kwargs:
            base = dict(kwargs["base"])
            kwargs["base"] = cam.camera_path(base.pop("preset"), *case["args"][1:], **base)
        _assert_recorded(f"lib/{name}", cam.camera_rig(*case["args"], **kwargs))
    else:
        _assert_recorded(f"lib/{name}", cam.camera_path(*case["args"], **kwargs))


# ------------------------------------------------------------------------------------ derived from the registry


def test_node_inputs_come_from_the_registry():
    spec = CameraPathNode.INPUT_TYPES()
    required = spec["required"]
    assert required["preset"][0] == list(cam.CAMERA_PRESETS)
    for name, param in cam.PARAMS.items():
        if param.kind == "CAMERA_PATH":  # a socket
            assert spec["optional"][name][0] == "VID4D_CAMERA_PATH" and name not in required
            assert spec["optional"][name][1]["tooltip"].endswith(f"({', '.join(cam.param_users(name))})")
            continue
        kind, opts = required[name]
        assert opts["default"] == param.default
        if param.kind == "COMBO":
            assert kind == list(param.options["choices"])
        else:
            assert kind == {"FLOAT": "FLOAT", "INT": "INT", "JSON": "STRING"}[param.kind]
            assert {k: opts[k] for k in param.options} == dict(param.options)
        if param.scope == "preset":  # a shared widget says which presets read it
            assert opts["tooltip"].endswith(f"({', '.join(cam.param_users(name))})")
    assert required["angle"][1]["tooltip"] == "degrees (orbit, arc, pan, tilt, roll)"
    assert required["distance"][1]["tooltip"] == "scene units (dolly, dolly_zoom, truck, pedestal)"


def test_registry_tables_are_consistent():
    for preset in cam.CAMERA_PRESETS.values():
        assert set(preset.params) <= set(cam.PARAMS), preset.name
        assert all(cam.PARAMS[n].scope == "preset" for n in preset.params), preset.name
        assert preset.doc and callable(preset.motion)
    for name, param in cam.PARAMS.items():
        assert param.scope in ("preset", "path", "rig")
        if param.scope == "preset":
            assert cam.param_users(name), f"widget {name} is read by no preset"
        if param.scope == "path":
            assert name in cam.presets.COMMON_KEYWORDS
    assert cam.PRESETS == tuple(cam.CAMERA_PRESETS)


def test_preview_route_accepts_exactly_the_node_widgets():
    assert list(route_fields()) == WIDGET_ORDER
    assert route_fields()["cameras"] is int and route_fields()["easing"] is str and route_fields()["angle"] is float


def test_readme_table_is_the_registry_table():
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- generated from the preset registry[^\n]*-->\n(.*?)\n<!-- end of the generated table -->", readme, re.S)
    assert found, "README lost its camera presets table"
    assert found.group(1) == cam.preset_table(), "README's camera presets table is stale: paste vid4d.py.camera.preset_table()"


def test_camera_path_docstring_lists_every_preset():
    doc = " ".join(cam.camera_path.__doc__.split())
    for preset in cam.CAMERA_PRESETS.values():
        assert f"{preset.name}: {preset.signature() or 'no parameters'}" in doc
        assert " ".join(preset.doc.split()) in doc
    assert "Catmull-Rom" in doc  # the keyframes entry's details


# ------------------------------------------------------------------------------------ growing the registry


def _crane(move: cam.Move) -> cam.Motion:
    """Rise by distance·p while tilting down by angle·p (a test preset)."""
    p = move.progress()
    still = cam.Motion.still(move.num_frames)
    still.centre[:, 1] = -move.params["distance"] * p
    rotation = cam.presets.euler_rotation(torch.zeros_like(p), -move.params["angle"] * p, torch.zeros_like(p))
    return cam.Motion(rotation, still.centre, still.focal_scale)


def test_a_new_preset_is_one_registry_entry(monkeypatch):
    entry = cam.Preset("crane", {"distance": 1.0, "angle": 10.0}, _crane, "rises by distance·p while tilting down by angle·p")
    monkeypatch.setitem(cam.CAMERA_PRESETS, "crane", entry)
    path = cam.camera_path("crane", 5, 64, 48, distance=2.0)
    assert torch.allclose(path.centers()[-1], torch.tensor([0.0, -2.0, 0.0]), atol=1e-5)
    with pytest.raises(ValueError, match="accepted: fov, focal, intrinsics, focus_depth, easing, distance, angle"):
        cam.camera_path("crane", 5, 64, 48, zoom=2.0)
    required = CameraPathNode.INPUT_TYPES()["required"]
    assert "crane" in required["preset"][0] and list(required) == WIDGET_ORDER
    assert required["distance"][1]["tooltip"].endswith("truck, pedestal, crane)")
    widgets = {**FIXTURE["nodes"]["1"], "preset": "crane", "distance": 2.0}
    torch.testing.assert_close(_make(widgets).world_to_camera, cam.camera_path("crane", 5, 64, 48, distance=2.0, angle=30.0, easing="ease_in_out").world_to_camera)
    status, data = camera_path_request(widgets)
    assert status == 200 and data["cameras"][0]["centers"][-1] == [0.0, -2.0, 0.0]
    assert "| `crane` | distance=1, angle=10° | rises by" in cam.preset_table()


def test_a_preset_can_take_a_camera_path_on_a_socket(monkeypatch):
    """Room for presets that start from another path (the solved source camera, a move from another video)."""
    def check_path(name, value):
        if not isinstance(value, cam.CameraPath):
            raise ValueError(f"{name}: expected a CameraPath, got {type(value).__name__}")
        return value

    def follow(move: cam.Move) -> cam.Motion:
        ref = move.params["guide_path"].camera_to_world().double()
        return cam.Motion(ref[:, :3, :3], ref[:, :3, 3], torch.ones(move.num_frames, dtype=torch.float64))

    monkeypatch.setitem(cam.PARAMS, "guide_path", cam.Param("guide_path", "CAMERA_PATH", None, "the camera path to follow", check=check_path))
    monkeypatch.setitem(cam.CAMERA_PRESETS, "follow", cam.Preset("follow", {"guide_path": cam.presets.REQUIRED}, follow, "follows guide_path"))
    spec = CameraPathNode.INPUT_TYPES()
    assert list(spec["required"]) == WIDGET_ORDER  # saved widget values keep their positions
    assert list(spec["optional"]) == [*SOCKET_ORDER, "guide_path"]
    assert spec["optional"]["guide_path"][0] == "VID4D_CAMERA_PATH"
    assert list(route_fields()) == WIDGET_ORDER  # the browser never posts a socket
    reference = cam.camera_path("orbit", 5, 64, 48, angle=40.0)
    out = CameraPathNode().make(**{**FIXTURE["nodes"]["1"], "preset": "follow"}, guide_path=reference)["result"][0]
    torch.testing.assert_close(out.world_to_camera, reference.world_to_camera, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="guide_path"):
        CameraPathNode().make(**{**FIXTURE["nodes"]["1"], "preset": "follow"}, guide_path="orbit")


# ------------------------------------------------------------------------------------ the frontend's list


def test_the_frontend_keeps_no_list_of_camera_path_widgets():
    source = (ROOT / "js" / "vid4d_preview.js").read_text()
    for literal in re.findall(r"\[[^\[\]]*\]", source):
        named = [n for n in WIDGET_ORDER if f'"{n}"' in literal or f"'{n}'" in literal]
        assert len(named) < 2, f"js/vid4d_preview.js lists CameraPath widgets itself: {literal[:80]}"
    assert "V.widgetNames(nodeData)" in source


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_the_frontend_reads_the_route_fields_from_the_node_definition(tmp_path):
    # /object_info as ComfyUI's server builds it (server.py node_info): INPUT_TYPES plus input_order.
    types = CameraPathNode.INPUT_TYPES()
    node_data = json.loads(json.dumps({"name": "CameraPath", "input": types, "input_order": {k: list(v) for k, v in types.items()}}))
    script = tmp_path / "names.mjs"
    script.write_text(
        'import { readFileSync } from "node:fs";\n'
        f'const source = readFileSync({json.dumps(str(ROOT / "js" / "vid4d_view.js"))}, "utf8");\n'
        'const V = await import("data:text/javascript;base64," + Buffer.from(source).toString("base64"));\n'
        f"console.log(JSON.stringify(V.widgetNames({json.dumps(node_data)})));\n"
    )
    out = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == list(route_fields())
