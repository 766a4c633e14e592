"""LiftGaussians' multi_reference mode as ComfyUI calls it: inputs, auto choice, report, errors."""

import pytest
import torch

from vid4d.nodes.gaussians import SOURCES, LiftGaussians
from vid4d.nodes.points import PointRegularizer
from vid4d.nodes.scene import Vid4DSampleScene

LIFT = dict(fov=60.0, kappa=0.3, stride=1, edge_mode="drop", edge_threshold=0.1, color_mode="auto", depth_encoding="disparity", near=1.0, far=10.0)


@pytest.fixture(scope="module")
def scene():
    frames, depth, preview, camera, tracks, mask, fps = Vid4DSampleScene().make(6, 64, 40, 0, 12.0)["result"]
    return dict(frames=frames, depth=depth, preview=preview, camera=camera, tracks=tracks, mask=mask)


def test_saved_workflows_keep_their_widgets():
    # saved workflows are positional: the old inputs keep their places, new ones come after them
    spec = LiftGaussians.INPUT_TYPES()
    assert list(spec["required"]) == ["frames", "source", "fov", "kappa", "stride", "edge_mode", "edge_threshold", "color_mode", "depth_encoding", "near", "far"]
    assert list(spec["optional"])[:5] == ["tracks", "depth", "depth_image", "camera", "preview_frame"]
    assert list(spec["optional"])[5:] == ["max_references", "min_coverage", "reference_every", "regularizer", "placement"]
    assert SOURCES[:4] == ["auto", "tracks", "depth_video", "first_frame"] and SOURCES[-1] == "multi_reference"
    assert spec["required"]["color_mode"][0][:2] == ["reference", "per_frame"]


def test_multi_reference_covers_the_video_and_reports_why(scene):
    out = LiftGaussians().lift(scene["frames"], "multi_reference", **LIFT, depth=scene["depth"], camera=scene["camera"])
    field, source = out["result"]
    text = out["ui"]["vid4d_info"][0]
    assert field.num_frames == 6 and source.num_frames == 6 and field.colors.dim() == 3  # auto colour: per frame
    assert field.reference_frames is not None and field.num_gaussians <= 3 * 64 * 40
    for word in ("multi_reference:", "reference frame(s)", "source-view coverage", "first reference", "stopped:", "tracking"):
        assert word in text, text
    assert "frame 0:" in text


def test_auto_picks_multi_reference_for_a_video_with_tracks_and_depth(scene):
    out = LiftGaussians().lift(scene["frames"], "auto", **LIFT, tracks=scene["tracks"], depth=scene["depth"], max_references=2)
    assert out["ui"]["vid4d_info"][0].startswith("multi_reference:") and "(the connected tracks)" in out["ui"]["vid4d_info"][0]
    field = out["result"][0]
    assert torch.equal(field.reference_frames.unique(), torch.tensor([0, int(field.reference_frames.max())])) and int(field.reference_frames.max()) > 0
    # tracks alone (nothing to lift new references with): GS-DiT's single reference, as before
    single = LiftGaussians().lift(scene["frames"], "auto", **LIFT, tracks=scene["tracks"])
    assert single["ui"]["vid4d_info"][0].startswith("tracks:") and single["result"][0].colors.dim() == 2


def test_regularizer_from_point_regularizer(scene):
    reg_out = PointRegularizer().regularize(scene["tracks"], 1.0, 1.0, 8, 2, 300, 2000, 0, 4.0)["result"]
    regularizer = reg_out[4]
    out = LiftGaussians().lift(scene["frames"], "multi_reference", **LIFT, tracks=reg_out[0], depth=scene["depth"], max_references=2, regularizer=regularizer)
    assert "regularised each reference it tracked" in out["ui"]["vid4d_info"][0]
    assert bool(torch.isfinite(out["result"][0].means).all())


def test_multi_reference_errors(scene):
    with pytest.raises(ValueError, match="needs depth"):
        LiftGaussians().lift(scene["frames"], "multi_reference", **LIFT, tracks=scene["tracks"])
    with pytest.raises(ValueError, match="at least 2 frames"):
        LiftGaussians().lift(scene["frames"][:1], "multi_reference", **LIFT, depth_image=scene["preview"][:1])
    with pytest.raises(ValueError, match="tracks cover"):
        LiftGaussians().lift(scene["frames"][:, :32], "multi_reference", **LIFT, tracks=scene["tracks"], depth_image=scene["preview"][:, :32])
    with pytest.raises(ValueError, match="regularizer"):
        LiftGaussians().lift(scene["frames"], "multi_reference", **LIFT, depth=scene["depth"], regularizer="nope")
