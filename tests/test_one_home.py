"""One home per idea (issue 18): the depth-image vocabulary, the lift options, the point regulariser on tracks."""

import pytest
import torch

from vid4d.py import depth as dp
from vid4d.py import gaussians as g
from vid4d.py.camera import intrinsics_from_fov


def test_one_depth_vocabulary_keeps_saved_widget_values():
    import vid4d

    # Saved workflows hold these strings (positional widgets_values): the lists keep their values and order.
    expect = ["disparity", "depth", "metric"]
    for node, name in (("DenseTrack3D", "depth_encoding"), ("LiftGaussians", "depth_encoding"), ("Vid4DDepthFromImage", "interpretation")):
        values = vid4d.NODE_CLASS_MAPPINGS[node].INPUT_TYPES()["required"][name][0]
        assert values[:3] == expect, node
    assert vid4d.NODE_CLASS_MAPPINGS["Vid4DDepthFromImage"].INPUT_TYPES()["required"]["interpretation"][0] == [*expect, "scale_shift_depth", "scale_shift_disparity"]
    # Every reading is a value encoding of DepthVideo placed between near and far (or taken as is).
    assert {v for v, _ in (*dp.IMAGE_ENCODINGS.values(), *dp.SCALE_SHIFT_ENCODINGS.values())} <= set(dp.VALUE_ENCODINGS)


def test_image_readings_and_as_depth_share_one_mapping():
    grey = torch.linspace(0, 1, 12).reshape(1, 3, 4)
    for reading, (values, kind) in dp.IMAGE_ENCODINGS.items():
        read = dp.depth_from_grey(grey, reading, near=2.0, far=8.0)
        # A grey image read as X is the same as a DepthVideo holding X-encoded values 0..1, placed between near and far.
        placed = dp.DepthVideo(grey.clone(), encoding=values).as_depth(2.0, 8.0)
        assert read.kind == kind and torch.allclose(read.depth, placed.depth)
    assert torch.allclose(dp.depth_from_grey(grey + 1, "scale_shift_disparity", scale=2.0, shift=0.5).depth, 1 / (2 * (grey + 1) + 0.5))
    with pytest.raises(ValueError, match="encoding must be one of disparity, depth, metric, scale_shift_depth"):
        dp.depth_from_grey(grey, "inverse")
    image = grey.unsqueeze(-1).expand(-1, -1, -1, 3)
    assert torch.allclose(dp.depth_from_image(image, "depth", 1.0, 5.0).depth, dp.depth_from_grey(grey, "depth", 1.0, 5.0).depth)


def test_lift_options_are_defined_once():
    image, depth, k = torch.rand(8, 8, 3), torch.full((8, 8), 2.0), intrinsics_from_fov(60, 8, 8)
    opts = g.LiftOptions(stride=2, edge_mode="keep")
    a = g.lift_depth(image, depth, k, opts)
    b = g.lift_depth(image, depth, k, stride=2, edge_mode="keep")
    c = g.lift_depth_video(image[None], depth[None], k, opts)
    assert a.num_gaussians == b.num_gaussians == c.num_gaussians == 16 and torch.equal(a.means, c.means) and torch.equal(a.scales, b.scales)
    assert g.lift_options(opts, kappa=0.5) == g.LiftOptions(kappa=0.5, stride=2, edge_mode="keep")
    with pytest.raises(ValueError, match="edge_mode"):
        g.LiftOptions(edge_mode="blur")
    with pytest.raises(ValueError, match="stride"):
        g.lift_depth(image, depth, k, stride=0)
    with pytest.raises(ValueError, match="focal lengths"):
        g.lift_depth(image, depth, torch.zeros(3, 3))


def test_regularize_tracks_is_library_code():
    from vid4d.py.points import regularization_report, regularize_tracks
    from vid4d.py.scene import sample_scene

    tracks = sample_scene(3, 24, 16, seed=0).tracks()
    out = regularize_tracks(tracks, k=4, iterations=2, max_anchors=64)
    assert out.uv.shape == tracks.uv.shape and torch.equal(out.visibility, tracks.visibility)
    assert float((out.uv - tracks.uv).norm(dim=-1).median()) < 0.5  # exact tracks barely move
    report = regularization_report(tracks, out, {})
    assert "displacement applied" in report and "rigidity error" in report
