"""LiftGaussians placement = world: every time step in the world of the solved (here: exact) source camera,
so the static scene is one cloud, and CameraPath moves relative to that camera render what the pseudo field renders."""

import pytest
import torch

from vid4d.nodes.camera import CameraPath
from vid4d.nodes.gaussians import LiftGaussians
from vid4d.nodes.render import RenderGaussians
from vid4d.nodes.scene import Vid4DSampleScene
from vid4d.py.camera import in_source_view
from vid4d.py.gaussians import place_in_world

from test_gaussian_nodes import LIFT, PATH, _render, _result


@pytest.fixture(scope="module")
def scene():
    frames, depth, _, camera, tracks, mask, _ = _result(Vid4DSampleScene().make(6, 64, 40, 0, 12.0))
    return dict(frames=frames, depth=depth, camera=camera, mask=mask)


def _lift(scene, placement):
    args = {**LIFT, "source": "depth_video"}
    return _result(LiftGaussians().lift(scene["frames"], **args, depth=scene["depth"], camera=scene["camera"], placement=placement))


def test_static_scene_is_one_cloud_in_the_world(scene):
    pseudo, static = _lift(scene, "source_view")
    world, solved = _lift(scene, "world")
    assert torch.equal(solved.world_to_camera, scene["camera"].world_to_camera) and bool((static.world_to_camera == torch.eye(4)).all())
    # the back wall (plane z = 7 in the world; the top-left corner of every frame, never the ball): in the world
    # every time step's Gaussians lie on it; in the pseudo field they move with the camera (which dollies 0.4 forward)
    h, w = scene["frames"].shape[1:3]
    corner = lambda f: f.means.reshape(-1, h, w, 3)[:, : h // 4, : w // 4]
    assert float((corner(world)[..., 2] - 7.0).abs().max()) < 0.05
    assert float((corner(pseudo)[-1, ..., 2] - 7.0).abs().min()) > 0.15


@pytest.mark.parametrize("preset", ["static", "orbit", "dolly_zoom"])
def test_paths_relative_to_the_solved_camera_render_like_the_pseudo_field(scene, preset):
    pseudo, static = _lift(scene, "source_view")
    world, solved = _lift(scene, "world")
    move = {**PATH, "preset": preset, "distance": 1.0}
    on_pseudo, _ = _result(CameraPath().make(**move, source_camera=static))
    on_world, _ = _result(CameraPath().make(**move, source_camera=solved))
    a = _render(pseudo, on_pseudo)[0]
    b = _render(world, on_world)[0]
    assert float((a - b).abs().mean()) < 2e-3


def test_in_source_view_composes_and_leaves_pseudo_paths_alone(scene):
    path = scene["camera"]
    ident = type(path).static(path.intrinsics[0], path.num_frames, path.width, path.height)
    assert in_source_view(path, ident) is path
    both = in_source_view(ident, path)
    torch.testing.assert_close(both.world_to_camera, path.world_to_camera)


def test_world_placement_needs_the_camera(scene):
    with pytest.raises(ValueError, match="placement 'world' needs the camera"):
        LiftGaussians().lift(scene["frames"], **{**LIFT, "source": "depth_video"}, depth=scene["depth"], placement="world")
    short = type(scene["camera"]).static(scene["camera"].intrinsics[0], 2, 64, 40)
    with pytest.raises(ValueError, match="2 frame"):
        place_in_world(_lift(scene, "source_view")[0], short)
