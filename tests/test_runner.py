"""The headless runner turns UI workflows into prompts like the frontend and validates like the server."""

import json

import pytest
import torch

import vid4d
from vid4d.nodes import workflow as wf

CLASSES = {**wf.CORE_NODES, **vid4d.NODE_CLASS_MAPPINGS}


def _ui(nodes, links):
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


def _node(nid, ntype, widgets=None, inputs=(), mode=0, outputs=()):
    return {"id": nid, "type": ntype, "mode": mode, "inputs": list(inputs), "outputs": list(outputs), "widgets_values": widgets}


SCENE = [8, 64, 48, 5, "randomize", 10.0]
SAVE = ["p/x", 8.0, "gif", 19, False]


def test_positional_widgets_skip_seed_control_and_upload_values():
    ui = _ui(
        [_node(1, "Vid4DSampleScene", SCENE), _node(2, "Vid4DLoadVideo", ["clip.mp4", 1, 2, 3, 64, 0, "pad", 16, "", 8.0, "image"])],
        [],
    )
    prompt = wf.ui_to_api(ui, CLASSES)
    assert prompt["1"]["inputs"] == {"num_frames": 8, "width": 64, "height": 48, "seed": 5, "fps": 10.0}
    load = prompt["2"]["inputs"]
    assert load["video"] == "clip.mp4" and load["start_frame"] == 1 and load["fit"] == "pad" and load["multiple_of"] == 16 and load["folder_fps"] == 8.0
    # Older frontends saved the upload button right after the combo ("image", or a hole when not serialised).
    for marker in ("image", None):
        ui["nodes"][1]["widgets_values"] = ["clip.mp4", marker, 1, 2, 3, 64, 0, "pad", 16, "", 8.0]
        assert wf.ui_to_api(ui, CLASSES)["2"]["inputs"] == load


def test_links_through_reroute_primitive_and_bypass_and_muted_nodes():
    nodes = [
        _node(1, "Vid4DSampleScene", SCENE),
        _node(2, "Reroute", [], inputs=[{"name": "", "type": "*", "link": 1}]),
        _node(3, "PrimitiveNode", [12.5]),
        _node(4, "Vid4DSaveVideo", SAVE, inputs=[{"name": "images", "type": "IMAGE", "link": 2}, {"name": "fps", "type": "FLOAT", "widget": {"name": "fps"}, "link": 3}]),
        _node(5, "Vid4DSaveVideo", SAVE, mode=wf.MODE_MUTED, inputs=[{"name": "images", "type": "IMAGE", "link": 4}]),
        _node(6, "Note", ["hello"]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 4, 0, "IMAGE"], [3, 3, 0, 4, 1, "FLOAT"], [4, 1, 0, 5, 0, "IMAGE"]]
    prompt = wf.ui_to_api(_ui(nodes, links), CLASSES)
    assert set(prompt) == {"1", "4"}
    assert prompt["4"]["inputs"]["images"] == ["1", 0] and prompt["4"]["inputs"]["fps"] == 12.5


def test_unknown_node_types_are_named():
    ui = _ui([_node(1, "Vid4DSampleScene", SCENE), _node(2, "VHS_LoadVideo", []), _node(3, "KSamplerX", [])], [])
    with pytest.raises(wf.WorkflowError, match="VHS_LoadVideo, KSamplerX|KSamplerX, VHS_LoadVideo") as e:
        wf.ui_to_api(ui, CLASSES)
    assert "unknown node type" in str(e.value)


def test_validation_reports_every_problem_with_node_and_input():
    prompt = {
        "1": {"class_type": "Vid4DSampleScene", "inputs": {"num_frames": 1, "width": 64, "height": 48, "seed": 0, "fps": 12.0}},
        "2": {"class_type": "Vid4DSaveVideo", "inputs": {"filename_prefix": "x", "fps": 8.0, "format": "avi", "crf": 19, "contact_sheet": True}},
        "3": {"class_type": "Vid4DSaveVideo", "inputs": {"images": ["1", 1], "filename_prefix": "x", "fps": 8.0, "format": "mp4", "crf": 19, "contact_sheet": True}},
    }
    with pytest.raises(wf.WorkflowError) as e:
        wf.validate(prompt, CLASSES)
    msg = str(e.value)
    assert "node 1 (Vid4DSampleScene): input 'num_frames': value 1 is smaller than the minimum 2" in msg
    assert "node 2 (Vid4DSaveVideo): missing required input 'images' (IMAGE)" in msg
    assert "'avi' is not one of" in msg
    assert "expects IMAGE but node 1 output 1 is VID4D_DEPTH" in msg


def test_no_output_node_and_cycles_are_errors():
    with pytest.raises(wf.WorkflowError, match="no output node"):
        wf.validate({"1": {"class_type": "Vid4DSampleScene", "inputs": {"num_frames": 4, "width": 64, "height": 48, "seed": 0, "fps": 12.0}}}, CLASSES)
    cyc = {
        "1": {"class_type": "Vid4DLoadVideo", "inputs": {"video": "", "start_frame": 0, "frame_stride": 1, "max_frames": 0, "width": 0, "height": 0, "fit": "crop", "multiple_of": 8, "path": ["2", 0]}},
        "2": {"class_type": "Vid4DSaveVideo", "inputs": {"images": ["1", 0], "filename_prefix": "x", "fps": 8.0, "format": "mp4", "crf": 19, "contact_sheet": True}},
    }
    with pytest.raises(wf.WorkflowError, match="cycle"):
        wf.validate(cyc, CLASSES)


def test_overrides_are_typed_and_checked():
    prompt = {"1": {"class_type": "Vid4DSampleScene", "inputs": {}}}
    wf.apply_overrides(prompt, ["1.num_frames=8", "1.fps=7.5"], CLASSES)
    assert prompt["1"]["inputs"] == {"num_frames": 8, "fps": 7.5}
    for bad, needle in [("1num_frames=3", "NODE_ID.INPUT"), ("9.num_frames=3", "no node 9"), ("1.fps=fast", "not a number")]:
        with pytest.raises(wf.WorkflowError, match=needle):
            wf.apply_overrides(prompt, [bad], CLASSES)


def test_api_to_ui_round_trips_through_ui_to_api():
    api = json.loads((wf.Path(__file__).parent.parent / "workflows" / "vid4d_load_save_video.json").read_text())
    prompt = wf.ui_to_api(api, CLASSES)
    for node in prompt.values():
        node.pop("_meta")
    again = wf.ui_to_api(wf.api_to_ui(prompt, vid4d.NODE_CLASS_MAPPINGS), CLASSES)
    for node in again.values():
        node.pop("_meta")
    assert again == prompt


def test_execution_error_names_the_node(headless):
    prompt = {
        "1": {"class_type": "Vid4DLoadVideo", "inputs": {"video": "missing.mp4", "start_frame": 0, "frame_stride": 1, "max_frames": 0, "width": 0, "height": 0, "fit": "crop", "multiple_of": 8}},
        "2": {"class_type": "Vid4DSaveVideo", "inputs": {"images": ["1", 0], "filename_prefix": "x", "fps": 8.0, "format": "mp4", "crf": 19, "contact_sheet": True}},
    }
    with pytest.raises(ValueError, match=r"node 1 \(Vid4DLoadVideo\): video: .*missing.mp4 does not exist"):  # a ValueError like every bad input
        wf.execute(prompt, CLASSES, log=lambda _: None)


def test_headless_core_nodes_save_and_load_images(headless):
    from vid4d.py.video import save_image

    save_image(torch.rand(20, 30, 3), headless / "input" / "pic.png")
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "pic.png"}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "img/x"}}}
    result = wf.execute(prompt, CLASSES, log=lambda _: None)
    (png,) = result.files()
    assert png.exists() and png.parent.name == "img"


def test_conversion_matches_the_real_frontend():
    """Fixture recorded from ComfyUI's frontend (see its "note"): our UI→API conversion must agree."""
    data = json.loads((wf.Path(__file__).parent / "data" / "frontend_conversions.json").read_text())
    for name, case in data["workflows"].items():
        ours = wf.ui_to_api(case["ui"], CLASSES)
        ours = {nid: {"class_type": n["class_type"], "inputs": n["inputs"]} for nid, n in ours.items()}
        assert ours == case["api"], name
