"""Browser-preview payloads (nodes/preview.py): camera path route logic, capped point clouds and track trails."""

import asyncio
import json
import sys
import types

import pytest
import torch

from vid4d.nodes import camera as camera_node, preview
from vid4d.nodes.gaussians import LiftGaussians
from vid4d.nodes.camera import CameraPath
from vid4d.nodes.tracking import DenseTrack3D
from vid4d.py import camera as cam
from vid4d.py.gaussians import GaussianField
from vid4d.py.tracking import Tracks3D

WIDGETS = dict(preset="dolly_zoom", num_frames=9, width=64, height=48, fov=60.0, focus_depth=3.8, angle=30.0, distance=1.5, zoom=1.5,
               elevation=0.0, easing="ease_in_out", cameras=1, rig_angle=30.0, keyframes="[]")


def test_route_returns_the_path_py_camera_computes():
    status, data = camera_node.camera_path_request(WIDGETS)
    assert status == 200 and data["kind"] == "path"
    path = cam.camera_path("dolly_zoom", 9, 64, 48, fov=60.0, focus_depth=3.8, easing="ease_in_out", distance=1.5)
    assert data["frames"] == list(range(9)) and (data["width"], data["height"]) == (64, 48)
    assert data["focus"] == [0.0, 0.0, 3.8]
    camera = data["cameras"][0]
    k = torch.tensor(camera["K"], dtype=torch.float64)
    assert torch.allclose(k[:, 0], path.intrinsics[:, 0, 0].double(), atol=1e-3)  # fx shrinks along the dolly zoom
    assert torch.allclose(torch.tensor(camera["w2c"], dtype=torch.float64), path.world_to_camera[:, :3, :4].reshape(9, 12).double(), atol=1e-5)
    assert torch.allclose(torch.tensor(camera["centers"], dtype=torch.float64), path.centers().double(), atol=1e-4)
    json.dumps(data)  # plain JSON


def test_route_defaults_size_and_uses_the_remembered_source_camera():
    status, data = camera_node.camera_path_request({"preset": "orbit"})
    assert status == 200 and (data["num_frames"], data["width"], data["height"]) == (49, 720, 480)
    assert "until a run" in data["text"]
    source = {"num_frames": 5, "width": 32, "height": 24, "K": [30.0, 0.0, 15.5, 30.0, 11.5]}
    status, data = camera_node.camera_path_request({**WIDGETS, "num_frames": 0, "width": 0, "height": 0, "source": source})
    assert status == 200 and (data["num_frames"], data["width"]) == (5, 32)
    assert data["cameras"][0]["K"][0][0] == 30.0


def test_route_rig_and_keyframes():
    status, data = camera_node.camera_path_request({**WIDGETS, "preset": "orbit", "cameras": 3})
    assert status == 200 and len(data["cameras"]) == 3
    keys = json.dumps([{"frame": 0, "position": [0, 0, 0], "look_at": [0, 0, 3]}, {"frame": 8, "position": [1, 0, 0.5], "look_at": [0, 0, 3], "fov": 50}])
    status, data = camera_node.camera_path_request({**WIDGETS, "preset": "keyframes", "keyframes": keys})
    assert status == 200 and data["cameras"][0]["centers"][-1] == [1.0, 0.0, 0.5]


@pytest.mark.parametrize("body,message", [
    ({**WIDGETS, "preset": "spin"}, "preset"),
    ({**WIDGETS, "distance": 5.0}, "distance"),
    ({**WIDGETS, "num_frames": "many"}, "num_frames"),
    ({**WIDGETS, "preset": "keyframes", "keyframes": "[{frame: 0}]"}, "keyframes"),
    ({**WIDGETS, "preset": "keyframes", "keyframes": '[{"frame": 0}]'}, "position"),
    ([1, 2], "JSON object"),
])
def test_route_answers_400_with_a_message(body, message):
    status, data = camera_node.camera_path_request(body)
    assert status == 400 and message in data["error"]


def test_long_paths_are_subsampled():
    status, data = camera_node.camera_path_request({**WIDGETS, "preset": "orbit", "num_frames": 2000})
    assert status == 200 and len(data["frames"]) == preview.MAX_PATH_FRAMES
    assert data["frames"][0] == 0 and data["frames"][-1] == 1999 and data["num_frames"] == 2000


def _field(t: int, h: int, w: int) -> GaussianField:
    n = h * w
    means = torch.randn(t, n, 3)
    opacities = torch.ones(n)
    opacities[:5] = 0.0  # dropped edges: not sent
    return GaussianField(means=means, colors=torch.rand(n, 3), opacities=opacities, scales=torch.full((n, 3), 0.01), quats=torch.tensor([1.0, 0, 0, 0]).expand(n, 4))


def test_point_payload_of_a_49x480x720_field_is_capped_and_small():
    field = _field(2, 480, 720)  # 2 time steps stand in for 49: the payload holds one frame
    data = preview.field_points(field, frame=1)
    assert data["count"] <= preview.DEFAULT_POINTS and data["total"] == 480 * 720 - 5 and data["frame"] == 1
    assert len(data["xyz"]) == 3 * data["count"]
    assert all(isinstance(v, int) and 0 <= v <= 255 for v in data["rgb"][:300])
    assert preview.payload_size(data) < 400_000
    big = preview.points_payload(field.means[0], field.colors, max_points=preview.MAX_POINTS)
    assert big["count"] == preview.MAX_POINTS and preview.payload_size(big) < 1_000_000
    with pytest.raises(ValueError, match="max_points"):
        preview.points_payload(field.means[0], max_points=preview.MAX_POINTS + 1)
    assert preview.field_points(field, frame=99)["frame"] == 1  # clamped
    xyz = torch.randn(10, 3)
    xyz[:4] = float("nan")  # invalid depth: dropped, not sent as NaN (not JSON)
    assert preview.points_payload(xyz)["count"] == 6


def test_track_payload_of_a_49x480x720_video_is_capped():
    t, h, w = 49, 480, 720
    # Stand-in tensors broadcast from small ones: only the sampled pixels are read.
    uv = torch.stack(torch.meshgrid(torch.arange(w).float(), torch.arange(h).float(), indexing="xy"), -1)[None].expand(t, h, w, 2)
    tracks = Tracks3D(uv=uv, depth=torch.full((1, 1, 1), 2.0).expand(t, h, w), visibility=torch.ones(1, 1, 1, dtype=torch.bool).expand(t, h, w),
                      intrinsics=cam.intrinsics_from_fov(60, w, h))
    data = preview.tracks_payload(tracks, frame=30, max_tracks=preview.MAX_TRACKS)
    assert 0 < data["count"] <= preview.MAX_TRACKS and data["trail_length"] == preview.TRAIL
    assert len(data["xyz"]) == data["count"] * data["trail_length"] * 3 and len(data["visible"]) == data["count"]
    assert preview.payload_size(data) < 600_000
    pts = torch.tensor(data["xyz"]).reshape(-1, 3)
    assert torch.allclose(pts[:, 2], torch.tensor(2.0))
    assert preview.tracks_payload(tracks, frame=0)["trail_length"] == 1  # nothing before frame 0


def test_nodes_send_previews_as_ui_output():
    field = _field(3, 6, 8)
    out = CameraPath().make(**{**WIDGETS, "num_frames": 0, "width": 0, "height": 0}, source_camera=cam.CameraPath.static(cam.intrinsics_from_fov(60, 8, 6), 3, 8, 6), gaussians=field)
    ui = out["ui"]
    assert ui["vid4d_path"][0]["num_frames"] == 3 and ui["vid4d_points"][0]["count"] == 6 * 8 - 5
    assert ui["vid4d_source"][0]["width"] == 8 and "vid4d_info" in ui
    assert all(isinstance(v, list) for v in ui.values())  # ComfyUI concatenates ui lists
    frames = torch.rand(3, 12, 16, 3)
    depth = torch.rand(3, 12, 16, 1).expand(3, 12, 16, 3)
    lifted = LiftGaussians().lift(frames, "depth_video", 60.0, 0.7, 1, "keep", 0.1, "reference", "disparity", 1.0, 10.0, depth_image=depth, preview_frame=2)
    assert lifted["ui"]["vid4d_points"][0]["frame"] == 2
    tracked = DenseTrack3D().track(frames, "flow_chain", 0, 60.0, "ultrafast", 4, 0, "disparity", 1.0, 10.0, "none.pth", 16, preview_frame=1)
    data = tracked["ui"]["vid4d_tracks"][0]
    assert data["frame"] == 1 and data["count"] == 12 * 16 and len(data["rgb"]) == 3 * 12 * 16


def test_route_registers_only_inside_a_running_comfyui(monkeypatch):
    monkeypatch.setattr(preview, "_registered", set())
    monkeypatch.delitem(sys.modules, "server", raising=False)
    assert preview.register_routes(camera_node.ROUTES) is False

    class Routes:  # the part of aiohttp's RouteTableDef that PromptServer.instance.routes offers
        def __init__(self):
            self.added = {}

        def post(self, path):
            return lambda handler: self.added.setdefault(("POST", path), handler)

    routes = Routes()
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(routes=routes))
    monkeypatch.setitem(sys.modules, "server", server)
    assert preview.register_routes(camera_node.ROUTES) is True
    assert preview.register_routes(camera_node.ROUTES) is False  # once
    handler = routes.added[("POST", camera_node.ROUTE)]

    web = types.ModuleType("aiohttp.web")
    web.json_response = lambda data, status=200: (status, data)
    aiohttp = types.ModuleType("aiohttp")
    aiohttp.web = web
    monkeypatch.setitem(sys.modules, "aiohttp", aiohttp)
    monkeypatch.setitem(sys.modules, "aiohttp.web", web)

    class Request:
        def __init__(self, body):
            self.body = body

        async def json(self):
            if self.body is None:
                raise json.JSONDecodeError("Expecting value", "", 0)
            return self.body

    status, data = asyncio.run(handler(Request(WIDGETS)))
    assert status == 200 and data["num_frames"] == 9
    assert asyncio.run(handler(Request(None)))[0] == 400
