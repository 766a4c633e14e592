"""DenseTrack3D as ComfyUI calls it: flow_chain on the sample scene, DOT weights picked up by auto, clear errors."""

import pytest
import torch

from vid4d.models import loading
from vid4d.models.loading import ModelNotFoundError
from vid4d.nodes.scene import Vid4DSampleScene
from vid4d.nodes.tracking import DOT_CHECKPOINT, DenseTrack3D

ARGS = dict(method="auto", ref_frame=0, fov=60.0, flow_preset="medium", reanchor_every=4, depth_smoothing=0, depth_encoding="disparity", near=1.0, far=10.0, weights=DOT_CHECKPOINT, preview_grid=8)


@pytest.fixture(scope="module")
def scene():
    frames, depth, _, camera, tracks, _, _ = Vid4DSampleScene().make(8, 128, 80, 0, 12.0)["result"]
    return dict(frames=frames, depth=depth, camera=camera, truth=tracks)


@pytest.fixture
def no_models(monkeypatch, tmp_path):
    monkeypatch.setenv("VID4D_MODELS_DIR", str(tmp_path))
    loading.clear_cache()
    return tmp_path


def test_flow_chain_without_weights_tracks_the_scene(scene, no_models):
    out = DenseTrack3D().track(scene["frames"], **ARGS, depth=scene["depth"], camera=scene["camera"])
    tracks, preview, visibility = out["result"]
    assert "method flow_chain" in out["ui"]["vid4d_info"][0]
    truth = scene["truth"]
    both = tracks.visible() & truth.visible()
    epe = (tracks.uv - truth.uv).norm(dim=-1)[both]
    assert float(epe.median()) < 0.5
    assert float((tracks.visible() == truth.visible()).float().mean()) > 0.9
    rel = ((tracks.xyz() - truth.xyz()).norm(dim=-1) / truth.depth)[both]
    assert float(rel.median()) < 0.02
    assert preview.shape == scene["frames"].shape and visibility.shape == scene["frames"].shape[:3]
    assert not torch.equal(preview, scene["frames"])  # tracks are drawn


def test_auto_uses_dot_weights_when_present(scene, no_models):
    from vid4d.models.tracking import DotRaftRefiner

    torch.manual_seed(0)
    folder = no_models / "tracking"
    folder.mkdir()
    torch.save(DotRaftRefiner().state_dict(), folder / DOT_CHECKPOINT)
    out = DenseTrack3D().track(scene["frames"][:3], **ARGS)
    tracks = out["result"][0]
    assert "method dot_raft" in out["ui"]["vid4d_info"][0]
    assert bool(torch.isfinite(tracks.uv).all()) and tracks.num_frames == 3


def test_dot_raft_without_weights_names_the_file(scene, no_models):
    with pytest.raises(ModelNotFoundError, match=r"movi_f_raft_patch_4_alpha\.pth.*models/vid4d/tracking"):
        DenseTrack3D().track(scene["frames"], **{**ARGS, "method": "dot_raft"})


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(ref_frame=20), "ref"),
        (dict(depth_image=torch.rand(3, 80, 128, 3)), "frame"),
    ],
)
def test_bad_input(scene, no_models, kwargs, needle):
    args = {**ARGS, **{k: v for k, v in kwargs.items() if k in ARGS}}
    extra = {k: v for k, v in kwargs.items() if k not in ARGS}
    with pytest.raises(ValueError, match=needle):
        DenseTrack3D().track(scene["frames"], **args, **extra)


def test_one_frame_is_an_error(scene, no_models):
    with pytest.raises(ValueError):
        DenseTrack3D().track(scene["frames"][:1], **ARGS)
