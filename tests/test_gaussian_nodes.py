"""CameraPath / LiftGaussians / RenderGaussians / EditGaussians as ComfyUI calls them, on the sample scene."""

import pytest
import torch

from vid4d.nodes.gaussians import EditGaussians, LiftGaussians
from vid4d.nodes.camera import CameraPath
from vid4d.nodes.render import RenderGaussians
from vid4d.nodes.scene import Vid4DSampleScene
from vid4d.py.camera import CameraRig

LIFT = dict(source="auto", fov=60.0, kappa=0.3, stride=1, edge_mode="drop", edge_threshold=0.1, color_mode="reference", depth_encoding="disparity", near=1.0, far=10.0)
PATH = dict(preset="static", num_frames=0, width=0, height=0, fov=60.0, focus_depth=3.8, angle=20.0, distance=0.5, zoom=1.5, elevation=0.0, easing="linear", cameras=1, rig_angle=20.0, keyframes="[]")
EDIT = dict(select="mask", angle=0.0, axis="0, -1, 0", translate="0, 0, 0", scale=1.0, easing="linear", freeze_frame=-1, speed=1.0, num_frames=0, box_min="-1, -1, 0", box_max="1, 1, 5", box_frame=0)


def _result(out):
    return out["result"] if isinstance(out, dict) else out


@pytest.fixture(scope="module")
def scene():
    frames, depth, preview, camera, tracks, mask, fps = _result(Vid4DSampleScene().make(6, 64, 40, 0, 12.0))
    return dict(frames=frames, depth=depth, preview=preview, camera=camera, tracks=tracks, mask=mask)


def _render(field, camera, **kw):
    args = dict(backend="torch", hole_threshold=0.5, layout="sequence")
    args.update(kw)
    return _result(RenderGaussians().render(field, camera, **args))


def test_tracks_field_through_the_identity_path_reproduces_the_video(scene):
    field, source = _result(LiftGaussians().lift(scene["frames"], **LIFT, tracks=scene["tracks"], camera=scene["camera"]))
    assert field.num_frames == 6 and source.num_frames == 6
    camera, preview = _result(CameraPath().make(**PATH, source_camera=source))
    assert preview.shape[0] == 1 and preview.shape[-1] == 3 and float(preview.std()) > 0.05
    images, holes, depth, overlay, render = _render(field, camera)
    assert render.clip_frames == (6,) and render.rgb is images and render.holes is holes
    assert images.shape == scene["frames"].shape and holes.shape == scene["frames"].shape[:3]
    err = (images - scene["frames"]).abs()
    # aligned to the pixel: the source view matches the video better than any one-pixel shift of it
    inner = (slice(2, -2), slice(2, -2))
    aligned = float((images[0][inner] - scene["frames"][0][inner]).abs().mean())
    for shift in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        shifted = torch.roll(scene["frames"][0], shift, (0, 1))[inner]
        assert aligned < 0.8 * float((images[0][inner] - shifted).abs().mean())
    # frame 0: only the dropped far side of depth edges; later: what enters the view or is disoccluded
    assert float(holes[0].mean()) < 0.05 and float(holes.mean()) < 0.2
    assert float(err[holes == 0].mean()) < 0.05
    ok = (holes == 0) & depth.valid
    rel = (depth.depth[ok] - scene["depth"].depth[ok]).abs() / scene["depth"].depth[ok]
    assert float(rel.median()) < 0.01 and float(rel.quantile(0.9)) < 0.05  # mixed only at depth edges


def test_dolly_zoom_opens_holes_and_keeps_the_subject(scene):
    field, source = _result(LiftGaussians().lift(scene["frames"], **{**LIFT, "source": "depth_video"}, depth=scene["depth"], camera=scene["camera"]))
    camera, _ = _result(CameraPath().make(**{**PATH, "preset": "dolly_zoom", "distance": 1.5}, source_camera=source))
    images, holes, depth, overlay, _ = _render(field, camera)
    assert float(holes[-1].mean()) > float(holes[0].mean())
    assert torch.equal(overlay[holes > 0][:, 1], (0.5 * images[holes > 0][:, 1]))  # magenta tint has no green


def test_rig_layouts(scene):
    field, source = _result(LiftGaussians().lift(scene["frames"], **{**LIFT, "source": "first_frame"}, depth=scene["depth"], camera=scene["camera"]))
    assert field.num_frames == 1
    rig, _ = _result(CameraPath().make(**{**PATH, "cameras": 3}, source_camera=source))
    assert isinstance(rig, CameraRig) and len(rig) == 3
    seq, *_, seq_render = _render(field, rig)
    grid, *_, grid_render = _render(field, rig, layout="grid")
    assert seq.shape == (18, 40, 64, 3) and grid.shape == (6, 40, 192, 3)
    # the rig travels with the frames: where each camera's clip lies
    assert seq_render.clip_frames == (6, 6, 6) and seq_render.starts == (0, 6, 12) and seq_render.cameras == 3
    assert grid_render.clip_frames == (6,) and grid_render.cameras == 3 and grid_render.layout == "grid"
    assert torch.equal(seq_render.rgb[seq_render.clip_slices()[1]], seq[6:12])
    assert torch.equal(grid[:, :, 64:128], seq[6:12])


def test_image_depth_from_another_pack(scene):
    field, source = _result(LiftGaussians().lift(scene["frames"][:1], **{**LIFT, "source": "first_frame", "near": 2.6, "far": 7.0}, depth_image=scene["preview"][:1]))
    z = field.means[0][:, 2]
    assert bool((z >= 2.6 - 1e-4).all()) and bool((z <= 7.0 + 1e-4).all()) and bool(torch.isfinite(z).all())


def test_edit_node_moves_the_masked_object(scene):
    field, _ = _result(LiftGaussians().lift(scene["frames"], **LIFT, tracks=scene["tracks"], camera=scene["camera"]))
    (edited,) = _result(EditGaussians().edit(field, **{**EDIT, "translate": "0, -0.5, 0"}, mask=scene["mask"][:1]))
    sel = scene["mask"][0].reshape(-1) > 0.5
    assert torch.allclose(edited.means[-1, sel], field.means[-1, sel] + torch.tensor([0, -0.5, 0]), atol=1e-5)
    assert torch.equal(edited.means[:, ~sel], field.means[:, ~sel])
    (boxed,) = _result(EditGaussians().edit(field, **{**EDIT, "select": "box", "box_min": "-9, -9, 0", "box_max": "9, 9, 6", "freeze_frame": 2}))
    assert boxed.num_frames == 6


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda s: LiftGaussians().lift(s["frames"], **{**LIFT, "source": "tracks"}), "needs the tracks"),
        (lambda s: LiftGaussians().lift(s["frames"], **{**LIFT, "source": "depth_video"}), "needs depth"),
        (lambda s: LiftGaussians().lift(s["frames"][:3], **{**LIFT, "source": "depth_video"}, depth=s["depth"]), "frame"),
        (lambda s: LiftGaussians().lift(s["frames"], **LIFT, tracks=s["frames"]), "VID4D_TRACKS3D"),
        (lambda s: CameraPath().make(**PATH), "num_frames, width and height"),
        (lambda s: CameraPath().make(**{**PATH, "preset": "keyframes", "keyframes": "[{", "num_frames": 4, "width": 64, "height": 40}), "keyframes"),
        (lambda s: EditGaussians().edit(LiftGaussians().lift(s["frames"], **LIFT, tracks=s["tracks"])["result"][0], **EDIT), "needs the mask"),
        (lambda s: EditGaussians().edit(LiftGaussians().lift(s["frames"], **LIFT, tracks=s["tracks"])["result"][0], **{**EDIT, "select": "box", "box_min": "a, b"}), "box_min"),
    ],
)
def test_bad_input_is_a_clear_error(scene, call, needle):
    with pytest.raises(ValueError, match=needle):
        call(scene)
