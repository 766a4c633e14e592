"""Lifting images, depth videos and 3D tracks into (pseudo 4D) Gaussian fields, and editing them in 4D."""

import math

import pytest
import torch

from vid4d.py import gaussians as g
from vid4d.py.camera import CameraPath, intrinsics_from_fov, pixel_grid
from vid4d.py.scene import sample_scene


@pytest.fixture(scope="module")
def scene():
    return sample_scene(8, 64, 40, seed=2)


def test_lift_depth_unprojects_every_pixel_exactly(scene):
    f = g.lift_depth(scene.frames[0], scene.depth[0], scene.intrinsics)
    assert f.num_frames == 1 and f.num_gaussians == 64 * 40
    uv, z = CameraPath.static(scene.intrinsics, 1, 64, 40).project(f.means[0])
    assert torch.allclose(uv[0], pixel_grid(40, 64).reshape(-1, 2), atol=1e-3)
    assert torch.allclose(z[0], scene.depth[0].reshape(-1), rtol=1e-5)
    focal = float(scene.intrinsics[0, 0])
    assert torch.allclose(f.scales[:, 0], g.DEFAULT_KAPPA * scene.depth[0].reshape(-1) / focal, rtol=1e-5)
    assert torch.equal(f.colors, scene.frames[0].reshape(-1, 3))
    assert torch.equal(f.pixels, pixel_grid(40, 64).reshape(-1, 2))


def test_stride_subsamples_and_grows_the_gaussians(scene):
    f = g.lift_depth(scene.frames[0], scene.depth[0], scene.intrinsics, stride=4, edge_mode="keep")
    assert f.num_gaussians == 16 * 10
    assert torch.allclose(f.scales[0, 0], 4 * g.DEFAULT_KAPPA * scene.depth[0, 0, 0] / scene.intrinsics[0, 0])


def _step_depth():
    depth = torch.full((1, 12, 12), 6.0)
    depth[:, 3:9, 3:9] = 2.0
    depth[:, 3:9, 9] = 4.0  # a "flying pixel" column between foreground and background
    return depth


def test_depth_edges_score_only_the_far_side():
    score = g.depth_edges(_step_depth())[0]
    assert float(score[5, 5]) == 0 and float(score[3, 3]) == 0  # the object, including its boundary
    assert float(score[5, 9]) == pytest.approx(1.0)  # flying pixel: 4 next to 2
    assert float(score[5, 10]) == pytest.approx(0.5)  # background next to the flying pixel
    assert float(score[2, 5]) == pytest.approx(2.0)  # background above the object
    assert float(score[0, 0]) == 0


@pytest.mark.parametrize("mode,kept_flying", [("keep", 1.0), ("drop", 0.0)])
def test_edge_modes(mode, kept_flying):
    f = g.lift_depth(torch.rand(12, 12, 3), _step_depth()[0], intrinsics_from_fov(60, 12, 12), edge_mode=mode, edge_threshold=0.6)
    op = f.opacities.reshape(12, 12)
    assert float(op[5, 9]) == kept_flying and float(op[5, 5]) == 1.0 and float(op[3, 3]) == 1.0
    assert float(op[5, 10]) == 1.0  # score 0.5 is under the threshold


def test_fade_mode_is_linear_between_one_and_two_thresholds():
    f = g.lift_depth(torch.rand(12, 12, 3), _step_depth()[0], intrinsics_from_fov(60, 12, 12), edge_mode="fade", edge_threshold=0.4)
    op = f.opacities.reshape(12, 12)
    assert float(op[5, 9]) == 0.0 and float(op[5, 10]) == pytest.approx(0.75) and float(op[5, 5]) == 1.0


def test_lift_tracks_follows_the_ground_truth_points(scene):
    tracks = scene.tracks(0)
    f = g.lift_tracks(tracks, scene.frames, edge_mode="keep")
    assert f.num_frames == 8 and f.num_gaussians == 64 * 40
    assert torch.allclose(f.means, tracks.xyz().reshape(8, -1, 3), atol=1e-5)
    vis = tracks.visibility.reshape(8, -1)
    assert torch.equal(f.opacities > 0, vis)
    assert torch.equal(f.colors, scene.frames[0].reshape(-1, 3))
    # per-frame colours: sampled at the track, so a visible static point keeps its colour
    pf = g.lift_tracks(tracks, scene.frames, color_mode="per_frame", edge_mode="keep")
    static = vis[-1] & ~scene.object_mask[0].reshape(-1)
    assert (pf.colors[-1][static] - scene.frames[0].reshape(-1, 3)[static]).abs().mean() < 0.02
    assert pf.colors.shape == (8, 64 * 40, 3)


def test_lift_tracks_from_a_middle_reference(scene):
    tracks = scene.tracks(4)
    f = g.lift_tracks(tracks, scene.frames, stride=2)
    assert f.num_gaussians == 32 * 20
    assert torch.allclose(f.pixels, pixel_grid(40, 64)[::2, ::2].reshape(-1, 2))
    assert torch.equal(f.colors, scene.frames[4][::2, ::2].reshape(-1, 3))


def test_lift_depth_video_is_per_frame(scene):
    f = g.lift_depth_video(scene.frames, scene.depth, scene.intrinsics)
    assert f.means.shape == (8, 64 * 40, 3) and f.colors.shape == (8, 64 * 40, 3) and f.opacities.shape == (8, 64 * 40)
    assert torch.allclose(f.means[5, :, 2], scene.depth[5].reshape(-1), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(depth=torch.ones(7, 40, 64)), "depth"),
        (dict(depth=torch.zeros(8, 40, 64)), "positive depth"),
        (dict(depth=torch.full((8, 40, 64), float("nan"))), "NaN"),
        (dict(kappa=-1.0), "kappa"),
        (dict(edge_mode="blur"), "edge_mode"),
        (dict(stride=0), "stride"),
        (dict(intrinsics=torch.eye(4)), "intrinsics"),
    ],
)
def test_lift_bad_input(scene, kwargs, needle):
    args = dict(frames=scene.frames, depth=scene.depth, intrinsics=scene.intrinsics)
    args.update(kwargs)
    frames, depth, k = args.pop("frames"), args.pop("depth"), args.pop("intrinsics")
    with pytest.raises(ValueError, match=needle):
        g.lift_depth_video(frames, depth, k, **args)


def test_lift_tracks_rejects_mismatched_frames(scene):
    with pytest.raises(ValueError, match="frames"):
        g.lift_tracks(scene.tracks(0), scene.frames[:5])


# ------------------------------------------------------------------ editing
@pytest.fixture(scope="module")
def ball_field(scene):
    return g.lift_tracks(scene.tracks(0), scene.frames, edge_mode="keep")


def test_select_by_mask_and_box(scene, ball_field):
    sel = g.select_by_mask(ball_field, scene.object_mask[0].float())
    assert torch.equal(sel, scene.object_mask[0].reshape(-1))
    box = g.select_by_box(ball_field, (-10, -10, 0), (10, 10, 6.5))
    assert box.sum() > 0 and not bool(box[ball_field.means[0][:, 2] > 6.5].any())
    with pytest.raises(ValueError, match="cover"):
        g.select_by_mask(ball_field, torch.ones(10, 10))
    with pytest.raises(ValueError, match="low"):
        g.select_by_box(ball_field, (1, 1, 1), (0, 2, 2))


def test_rigid_rotation_schedule_about_the_centroid(scene, ball_field):
    sel = g.select_by_mask(ball_field, scene.object_mask[0].float())
    out = g.edit_gaussians(ball_field, sel, angle=90.0)
    assert torch.equal(out.means[:, ~sel], ball_field.means[:, ~sel])  # the rest untouched
    before, after = ball_field.means[:, sel].double(), out.means[:, sel].double()
    c0, c1 = before.mean(1, keepdim=True), after.mean(1, keepdim=True)
    assert torch.allclose(c0, c1, atol=1e-5)  # rotation about the centroid keeps it
    assert torch.allclose((before - c0).norm(dim=-1), (after - c1).norm(dim=-1), atol=1e-4)  # rigid
    assert torch.allclose(after[0], before[0], atol=1e-6)  # progress 0 at frame 0
    v0, v1 = (before[-1] - c0[-1]), (after[-1] - c1[-1])
    v0[:, 1] = 0
    v1[:, 1] = 0  # project onto the horizontal plane (axis is vertical)
    cos = (v0 * v1).sum(-1) / (v0.norm(dim=-1) * v1.norm(dim=-1))
    big = v0.norm(dim=-1) > 0.1
    assert torch.allclose(cos[big], torch.zeros_like(cos[big]), atol=1e-3)  # turned by 90 degrees
    q = out.quats[-1, sel][0]
    assert float(q[0]) == pytest.approx(math.cos(math.radians(45)), abs=1e-5)  # identity turned by 90 degrees


def test_translate_scale_freeze_and_retime(scene, ball_field):
    sel = g.select_by_mask(ball_field, scene.object_mask[0].float())
    moved = g.edit_gaussians(ball_field, sel, translate=(0.0, -1.0, 0.0), scale=2.0, pivot=(0.0, 0.0, 4.0))
    p = torch.tensor([0.0, 0.0, 4.0])
    expect = p + 2.0 * (ball_field.means[-1, sel] - p) + torch.tensor([0.0, -1.0, 0.0])
    assert torch.allclose(moved.means[-1, sel], expect, atol=1e-4)
    assert torch.allclose(moved.scales[-1, sel], 2 * ball_field.scales[-1, sel])
    frozen = g.edit_gaussians(ball_field, sel, freeze_frame=3)
    assert torch.allclose(frozen.means[:, sel], ball_field.means[3, sel].expand(8, -1, -1))
    assert torch.equal(frozen.opacities[:, sel], ball_field.opacities[3, sel].expand(8, -1))
    slow = g.edit_gaussians(ball_field, sel, speed=0.5)
    assert torch.allclose(slow.means[6, sel], ball_field.means[3, sel], atol=1e-6)
    assert torch.allclose(slow.means[5, sel], 0.5 * (ball_field.means[2, sel] + ball_field.means[3, sel]), atol=1e-5)
    assert torch.equal(slow.means[:, ~sel], ball_field.means[:, ~sel])


def test_static_field_is_expanded_for_edits(scene):
    f = g.lift_depth(scene.frames[0], scene.depth[0], scene.intrinsics)
    sel = g.select_by_mask(f, scene.object_mask[0].float())
    out = g.edit_gaussians(f, sel, num_frames=5, translate=(1.0, 0, 0))
    assert out.num_frames == 5 and torch.allclose(out.means[4, sel], f.means[0, sel] + torch.tensor([1.0, 0, 0]))


def test_edit_bad_input(ball_field):
    with pytest.raises(ValueError, match="empty"):
        g.edit_gaussians(ball_field, torch.zeros(ball_field.num_gaussians, dtype=torch.bool))
    sel = torch.ones(ball_field.num_gaussians, dtype=torch.bool)
    with pytest.raises(ValueError, match="freeze_frame"):
        g.edit_gaussians(ball_field, sel, freeze_frame=99)
    with pytest.raises(ValueError, match="axis"):
        g.edit_gaussians(ball_field, sel, axis=(0, 0, 0), angle=10)
    with pytest.raises(ValueError, match="selection"):
        g.edit_gaussians(ball_field, sel[:-1])
