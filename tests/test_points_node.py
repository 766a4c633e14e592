"""PointRegularizer and Vid4DStackVideos as ComfyUI calls them."""

import pytest
import torch

from vid4d.nodes import runtime
from vid4d.nodes.points import PointRegularizer
from vid4d.nodes.scene import Vid4DSampleScene
from vid4d.nodes.video import Vid4DStackVideos
from vid4d.py.tracking import Tracks3D

ARGS = dict(rigidity=1.0, smoothness=1.0, k=8, iterations=8, max_anchors=400, num_points=300, seed=0, foreground_bias=4.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scene():
    frames, depth, _, camera, tracks, mask, _ = Vid4DSampleScene().make(5, 48, 32, 0, 12.0)["result"]
    return dict(frames=frames, tracks=tracks, mask=mask)


def noisy(tracks: Tracks3D, sigma=0.03, seed=0) -> Tracks3D:
    g = torch.Generator().manual_seed(seed)
    depth = tracks.depth * (1 + sigma * torch.randn(tracks.depth.shape, generator=g))
    return Tracks3D(uv=tracks.uv, depth=depth, visibility=tracks.visibility, intrinsics=tracks.intrinsics, ref_frame=tracks.ref_frame)


def test_regularizer_outputs_and_report(scene):
    truth = scene["tracks"]
    source = noisy(truth)
    out = PointRegularizer().regularize(source, **ARGS, mask=scene["mask"][:1])
    tracks, point_map, point_mask, report, regularization = out["result"]
    assert isinstance(tracks, Tracks3D) and tracks.uv.shape == truth.uv.shape
    assert torch.equal(tracks.visibility, truth.visibility)
    seen = truth.visible()
    error = lambda t: float((t.xyz() - truth.xyz()).norm(dim=-1)[seen].median())  # noqa: E731
    assert error(tracks) < error(source)
    assert point_map.shape == (5, 32, 48, 3) and point_mask.shape == (5, 32, 48)
    assert float(point_map.min()) >= 0 and float(point_map.max()) <= 1
    assert bool((point_map[point_mask == 0] == 0).all()) and float(point_mask.sum()) > 0
    for word in ("displacement applied", "objective", "rigidity error"):
        assert word in report and word in out["ui"]["vid4d_info"][0]
    # the settings travel on (LiftGaussians' multi_reference mode): the same call gives the same tracks
    again = regularization(source.xyz().reshape(5, -1, 3), source.visibility.reshape(5, -1), source.ref_frame)
    assert torch.allclose(again, tracks.xyz().reshape(5, -1, 3), atol=1e-4)


def test_exact_tracks_barely_move(scene):
    # The sample scene is rigid pieces seen by a moving camera, but occluded points carry a guessed
    # depth (not rigid), and 400 anchors stand for 1536 points: visible points stay put nonetheless.
    truth = scene["tracks"]
    tracks = PointRegularizer().regularize(truth, **ARGS)["result"][0]
    seen = truth.visible()
    rel = ((tracks.xyz() - truth.xyz()).norm(dim=-1) / truth.depth)[seen]
    assert float(rel.median()) < 1e-4 and float(rel.quantile(0.99)) < 1e-2
    assert float((tracks.uv - truth.uv).norm(dim=-1)[seen].median()) < 0.01


def test_progress_and_cancel(scene, fake_comfy):
    PointRegularizer().regularize(scene["tracks"], **{**ARGS, "iterations": 3})
    assert fake_comfy.calls["progress"] and fake_comfy.calls["progress"][-1][:2] == (4, 4)
    runtime.request_interrupt()
    with pytest.raises(Exception):
        PointRegularizer().regularize(scene["tracks"], **ARGS)


def test_bad_inputs(scene):
    with pytest.raises(ValueError, match="VID4D_TRACKS3D"):
        PointRegularizer().regularize(scene["frames"], **ARGS)
    with pytest.raises(ValueError, match="mask"):
        PointRegularizer().regularize(scene["tracks"], **ARGS, mask=torch.ones(1, 5, 5))


def test_stack_videos():
    a = torch.rand(3, 16, 20, 3)
    b = torch.rand(2, 8, 10, 3)
    out = Vid4DStackVideos().stack(a, b, "horizontal")["result"][0]
    assert out.shape == (3, 16, 40, 3)
    assert torch.equal(out[:, :, :20], a) and torch.equal(out[2, :, 20:], out[1, :, 20:])
    assert Vid4DStackVideos().stack(a, a, "vertical")["result"][0].shape == (3, 32, 20, 3)
    with pytest.raises(ValueError, match="b: expected an IMAGE"):
        Vid4DStackVideos().stack(a, torch.rand(4, 4), "horizontal")
