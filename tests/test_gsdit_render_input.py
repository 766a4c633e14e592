"""GSDiTSampler reads a rig's clips from RenderGaussians' render (VID4D_RENDER): no camera count to type twice.

The whole chain (SampleScene -> LiftGaussians -> CameraPath rig -> RenderGaussians -> GSDiTSampler) runs in
workflows/gsdit_multicam_generate.json (tests/test_workflows.py).
"""

import pytest
import torch

from vid4d.nodes.gsdit import GSDiTSampler, Vid4DGSDiTModelLoader, _clips
from vid4d.py.render import RenderedVideo

ARGS = dict(prompt="a scene", negative_prompt="", mode="training_free", strength=1.0, steps=1, guidance=1.0, seed=3, scheduler="ddim", cameras=1, feather=1.0, resize_to_input=False)
H, W = 32, 48


def _render(clips, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = sum(clips)
    rgb = torch.rand(t, H, W, 3, generator=g)
    alpha = torch.ones(t, H, W)
    alpha[:, :, 32:] = 0
    return RenderedVideo(rgb, alpha, torch.ones(t, H, W), (alpha < 0.5).float(), tuple(clips), "sequence", len(clips), 0.5)


def test_a_three_camera_render_gives_three_clips_of_their_own_lengths(tiny_models, fake_comfy, monkeypatch):
    from vid4d.py import checks

    scanned = []
    real = checks._nonfinite
    monkeypatch.setattr(checks, "_nonfinite", lambda name, value, what="": scanned.append(name) or real(name, value, what))
    pipe = Vid4DGSDiTModelLoader().load("CogVideoX-2b", "(model folder)", "fp32", "none", True)["result"][0]
    render = _render([9, 1, 9])
    render.rgb[10:] = render.rgb[:9]  # cameras 1 and 3 see the same: same seed and prompt give the same clip
    scanned.clear()
    out = GSDiTSampler().generate(pipe, render=render, **ARGS)
    assert scanned == []  # the render was checked when it was built; neither the node nor the pipeline scans it again
    frames = out["result"][0]
    assert frames.shape == (19, H, W, 3)  # each clip generated on its own: 9 + 1 + 9 frames
    assert torch.equal(frames[:9], frames[10:])
    assert "3 clip(s) (9x1x9 frames)" in out["ui"]["vid4d_info"][0]
    assert fake_comfy.calls["progress"][-1] == (3, 3)
    # images + holes from any node: checked once by the node, not again by the pipeline (it did before).
    scanned.clear()
    GSDiTSampler().generate(pipe, images=render.rgb[9:10].clone(), holes=render.holes[9:10].clone(), **ARGS)
    assert scanned == ["images", "holes"]


def test_what_the_render_supplies_and_what_overrides_it():
    render = _render([4, 6])
    frames, holes, clips, note = _clips(None, None, render, cameras=1)
    assert frames is render.rgb and holes is render.holes and clips == [slice(0, 4), slice(4, 10)] and note == ""
    # A stale camera count on the widget is ignored (and said so); the render decides.
    assert _clips(None, None, render, cameras=3)[2] == clips
    assert "cameras = 3 ignored: the render has 2 clip(s)" in _clips(None, None, render, cameras=3)[3]
    # images / holes connected as well replace the render's frames / holes, keeping its clips.
    images, mask = torch.rand(10, H, W, 3), torch.zeros(10, H, W)
    frames, holes, clips2, _ = _clips(images, mask, render, cameras=1)
    assert torch.equal(frames, images) and torch.equal(holes, mask) and clips2 == clips
    with pytest.raises(ValueError, match="images: 3 frames but the render has 10"):
        _clips(images[:3], None, render, cameras=1)
    with pytest.raises(ValueError, match="render's holes are 48x32"):
        _clips(torch.rand(10, 16, 16, 3), None, render, cameras=1)
    with pytest.raises(ValueError, match="expected a VID4D_RENDER"):
        _clips(None, None, images, cameras=1)
    with pytest.raises(ValueError, match="connect render"):
        _clips(None, None, None, cameras=1)
    # Without a render: images split into 'cameras' equal clips, as before.
    assert _clips(images, None, None, cameras=2)[2] == [slice(0, 5), slice(5, 10)]


@pytest.mark.parametrize("name", ["gsdit_multicam_generate", "gsdit_full"])
def test_shipped_workflows_wire_the_render(name):
    import json

    import vid4d
    from vid4d.nodes import workflow as wf
    from conftest import ROOT

    data = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    prompt = wf.ui_to_api(data, {**wf.CORE_NODES, **vid4d.NODE_CLASS_MAPPINGS})
    render_id = next(k for k, n in prompt.items() if n["class_type"] == "RenderGaussians")
    sampler = next(n for n in prompt.values() if n["class_type"] == "GSDiTSampler")
    assert sampler["inputs"]["render"] == [render_id, 4] and "images" not in sampler["inputs"] and sampler["inputs"]["cameras"] == 1
    ids = [link[0] for link in data["links"]]
    assert len(ids) == len(set(ids)) and data["last_link_id"] == max(ids)
    outputs = next(n for n in data["nodes"] if n["type"] == "RenderGaussians")["outputs"]
    assert [o["name"] for o in outputs] == list(vid4d.NODE_CLASS_MAPPINGS["RenderGaussians"].RETURN_NAMES)
