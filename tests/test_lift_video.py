"""Multi-reference lifting (lift_video) against the sample scene's ground truth, next to GS-DiT's single reference."""

import pytest
import torch

from reference_metrics import figures
from vid4d.py import gaussians as g
from vid4d.py.depth import DepthVideo, depth_from_image
from vid4d.py.points import PointRegularization
from vid4d.py.scene import sample_scene
from vid4d.py.tracking import track_dense

T, W, H = 12, 128, 80


@pytest.fixture(scope="module")
def scene():
    return sample_scene(T, W, H)


@pytest.fixture(scope="module")
def lifted(scene):
    """flow_chain tracks and exact depth: the single-reference field and the multi-reference one, same tracks."""
    tracks = track_dense(scene.frames, scene.depth_video(), 0, "flow_chain", intrinsics=scene.intrinsics)
    single = g.lift_tracks(tracks, scene.frames)
    info: dict = {}
    multi = g.lift_video(scene.frames, scene.depth_video(), scene.intrinsics, method="flow_chain", tracks=tracks, info=info)
    return {
        "tracks": tracks,
        "single": figures(single, scene, backend="torch", compile=False),
        "multi_field": multi,
        "multi": figures(multi, scene, backend="torch", compile=False),
        "info": info,
    }


def test_multi_reference_reproduces_the_source_video(scene, lifted):
    single, multi, info = lifted["single"], lifted["multi"], lifted["info"]
    assert len(info["references"]) > 1 and info["references"][0] == 0
    # every frame covered, at a PSNR the single reference reaches only at its own frame
    assert float(multi.coverage.min()) >= 0.99, multi.coverage
    assert float(multi.psnr.min()) >= 25.0, multi.psnr
    assert float(single.psnr[-1]) < 15.0 and float(single.coverage.min()) < 0.8
    # the spinning ball stays: single reference loses it as it turns
    assert float(multi.ball.min()) >= 0.95, multi.ball
    assert float(single.ball[-1]) < 0.2
    # no duplicated or stray surfaces: where covered, the rendered depth is the exact depth
    assert float(multi.wrong_depth.max()) <= 0.04, multi.wrong_depth
    # a 15° orbit: at most half the holes of the single-reference field
    assert multi.orbit_holes <= 0.5 * single.orbit_holes, (multi.orbit_holes, single.orbit_holes)


def test_cost_stays_bounded_and_is_reported(scene, lifted):
    field, info = lifted["multi_field"], lifted["info"]
    assert field.num_gaussians <= 3 * H * W and field.num_gaussians == sum(info["added"])
    assert info["added"][0] == H * W  # the first reference: every pixel
    assert len(info["reasons"]) == len(info["references"]) and "uncovered" in info["reasons"][1]
    assert "covered" in info["stopped"] and info["seconds_total"] >= info["seconds_tracking"] >= 0
    assert info["bytes"] > 0 and float(info["coverage"].min()) > float(info["coverage_single"].min())
    # each Gaussian knows its reference frame and pixel; the first reference's pixels are the grid
    refs = field.reference_frames
    assert refs.shape == (field.num_gaussians,) and set(refs.unique().tolist()) == set(info["references"])
    assert torch.equal(field.pixels[: H * W], lifted["tracks"].uv[0].reshape(-1, 2))
    # per-frame colours; scales isotropic, stored once per Gaussian and frame
    assert field.colors.shape == (T, field.num_gaussians, 3) and field.scales.stride(-1) == 0


def test_analytic_coverage_is_the_renderers(scene, lifted):
    # lift_video decides from splatted opacity, not a render: it must agree with the rasteriser
    estimate = g.source_coverage(lifted["multi_field"], scene.intrinsics, H, W)
    rendered = lifted["multi"].coverage
    assert (estimate - rendered).abs().max() <= 0.004
    k = scene.intrinsics
    field = lifted["multi_field"]
    at = field.at(5)
    uv = torch.stack([k[0, 0] * at["means"][:, 0] / at["means"][:, 2] + k[0, 2], k[1, 1] * at["means"][:, 1] / at["means"][:, 2] + k[1, 2]], -1)
    var = (at["scales"][:, 0] * k[0, 0] / at["means"][:, 2]).square()
    alpha = 1 - g.source_transmittance(uv, at["opacities"], var, H, W)
    assert (alpha - lifted["multi"].source_alpha[5]).abs().mean() < 0.01


def test_time_spans_and_cross_fades(lifted):
    field, info = lifted["multi_field"], lifted["info"]
    spans = field.spans()
    op = field.opacities
    t = torch.arange(T)[:, None]
    inside = (t >= spans[:, 0]) & (t <= spans[:, 1])
    assert bool((op[~inside] == 0).all()) and bool((spans[:, 0] <= spans[:, 1]).all())
    later = field.reference_frames != info["references"][0]
    # Gaussians of later references exist only where they were needed, not over their whole track
    assert float((spans[later, 1] - spans[later, 0]).float().mean()) < T - 1
    # and fade in / out over fade_frames (values 1/3 and 2/3) where the field already covers them
    fading = (op > 0) & (op < 0.99) & later[None]
    assert bool(fading.any())
    levels = op[fading]
    assert bool(((levels - 1 / 3).abs() < 1e-4).any()) and bool(((levels - 2 / 3).abs() < 1e-4).any())


def test_exact_tracks_cover_everything(scene):
    info: dict = {}
    field = g.lift_video(scene.frames, scene.depth_video(), scene.intrinsics, tracker=scene.tracks, info=info)
    f = figures(field, scene, backend="torch", compile=False)
    assert float(f.coverage.min()) >= 0.995 and float(f.ball.min()) >= 0.99
    assert float(f.wrong_depth.max()) <= 0.04


@pytest.mark.parametrize("kind", ["affine_depth", "depth_image"])
def test_every_depth_source(scene, kind):
    # VideoDepth's affine depth (placed between near and far) and any pack's grey disparity IMAGE
    if kind == "affine_depth":
        depth = DepthVideo(0.5 * scene.depth + 3.0, kind="relative", encoding="affine_depth")
    else:
        depth = depth_from_image(scene.depth_video().to_image(), "disparity", near=2.0, far=8.0)
    info: dict = {}
    field = g.lift_video(scene.frames, depth, scene.intrinsics, near=2.0, far=8.0, max_references=2, info=info)
    assert len(info["references"]) == 2 and float(info["coverage"].min()) > float(info["coverage_single"].min())
    z = field.means[..., 2][field.opacities > 0]
    assert float(z.min()) >= 2.0 * 0.95 and float(z.max()) <= 8.0 * 1.05


def test_regularizer_runs_on_each_reference_it_tracks(scene):
    calls = []
    identity = lambda xyz, vis, ref: (calls.append((ref, xyz.shape[1])), xyz)[1]  # noqa: E731
    info: dict = {}
    plain = g.lift_video(scene.frames, scene.depth_video(), scene.intrinsics, max_references=2, info=info)
    same = g.lift_video(scene.frames, scene.depth_video(), scene.intrinsics, max_references=2, regularize=identity)
    assert [c[0] for c in calls] == info["references"] and [c[1] for c in calls] == info["added"]
    assert torch.allclose(plain.means, same.means, atol=1e-5) and torch.equal(plain.opacities, same.opacities)
    # PointRegularizer's settings as the regulariser: points move, the field stays valid
    reg = g.lift_video(scene.frames, scene.depth_video(), scene.intrinsics, max_references=2, regularize=PointRegularization(iterations=2, max_anchors=300))
    assert reg.num_frames == T and bool(torch.isfinite(reg.means).all())


def test_single_reference_and_budget(scene):
    info: dict = {}
    one = g.lift_video(scene.frames, scene.depth_video(), scene.intrinsics, max_references=1, first_reference=6, info=info)
    assert info["references"] == [6] and one.num_gaussians == H * W and "max_references" in info["stopped"]
    capped = g.lift_video(scene.frames, scene.depth_video(), scene.intrinsics, max_gaussians=H * W + 500, info=info)
    assert capped.num_gaussians <= H * W + 500 and "budget" in info["stopped"]
    strided = g.lift_video(scene.frames, scene.depth_video(), scene.intrinsics, stride=2, max_references=1)
    assert strided.num_gaussians == (H // 2) * (W // 2) and float(strided.scales[0].median()) > 1.5 * float(one.scales[6].median())


def test_mask_video_selects_in_each_reference_frame(scene, lifted):
    field = lifted["multi_field"]
    ball = g.select_by_mask(field, scene.object_mask.float())
    refs = field.reference_frames
    xy = field.pixels.round().long()
    assert torch.equal(ball, scene.object_mask[refs, xy[:, 1], xy[:, 0]])
    assert bool(ball[refs != 0].any())  # ball Gaussians of later references are selected too
    with pytest.raises(ValueError, match="one mask per frame"):
        g.select_by_mask(field, scene.object_mask[0].float())
    single = g.lift_tracks(scene.tracks(0), scene.frames)
    assert torch.equal(g.select_by_mask(single, scene.object_mask[0].float()), g.select_by_mask(single, scene.object_mask.float()))


def test_bad_input_is_refused(scene):
    depth = scene.depth_video()
    with pytest.raises(ValueError, match="at least 2 frames"):
        g.lift_video(scene.frames[:1], DepthVideo(scene.depth[:1], kind="metric"), scene.intrinsics)
    with pytest.raises(ValueError, match="depth"):
        g.lift_video(scene.frames, scene.frames, scene.intrinsics)
    with pytest.raises(ValueError, match="depth"):
        g.lift_video(scene.frames, DepthVideo(scene.depth[:5], kind="metric"), scene.intrinsics)
    with pytest.raises(ValueError, match="min_coverage"):
        g.lift_video(scene.frames, depth, scene.intrinsics, min_coverage=1.5)
    with pytest.raises(ValueError, match="first_reference"):
        g.lift_video(scene.frames, depth, scene.intrinsics, first_reference=T)
    with pytest.raises(ValueError, match="tracks cover"):
        g.lift_video(scene.frames, depth, scene.intrinsics, tracks=sample_scene(T, 64, 40).tracks(0))
    with pytest.raises(ValueError, match="tracker"):
        g.lift_video(scene.frames, depth, scene.intrinsics, tracker=lambda r: scene.tracks(0), first_reference=3)
