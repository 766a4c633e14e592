"""Exchange formats: PLY (read back by plyfile, an independent reader), nerfstudio / JSON / Blender camera
paths (round trips, axes checked by projecting points with each tool's convention), depth images,
tracks, and the export/import nodes (output folder in, input folder out)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from vid4d.py import exchange as ex
from vid4d.py import gaussians as gs
from vid4d.py.camera import CameraPath, camera_path
from vid4d.py.depth import DepthVideo
from vid4d.py.gaussians import GaussianField, lift_tracks
from vid4d.py.scene import sample_scene

plyfile = pytest.importorskip("plyfile")


@pytest.fixture(scope="module")
def scene():
    return sample_scene(5, 48, 32)


def random_field(t=3, n=200, seed=0) -> GaussianField:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(t, n, 4, generator=g)
    return GaussianField(
        means=torch.randn(t, n, 3, generator=g),
        colors=torch.rand(t, n, 3, generator=g),
        opacities=torch.rand(t, n, generator=g).clamp(0.01, 0.99),
        scales=torch.rand(n, 3, generator=g) * 0.1 + 0.01,
        quats=q / q.norm(dim=-1, keepdim=True),
    )


def moving_path(num=6, width=64, height=40) -> CameraPath:
    """An orbit with a zoom and an off-centre principal point (every convention has something to get wrong)."""
    base = camera_path("orbit", num, width, height, angle=40.0, elevation=10.0, focus_depth=3.0, fov=55.0)
    k = base.intrinsics.clone()
    k[:, 0, 2] += 3.25
    k[:, 1, 2] -= 1.5
    k[:, :2, :2] *= torch.linspace(1.0, 1.3, num)[:, None, None]
    return CameraPath(k, base.world_to_camera, width, height)


# --- PLY ---------------------------------------------------------------------------------------------


def test_ply_sequence_layout_read_by_plyfile(tmp_path):
    field = random_field()
    paths = ex.save_ply_sequence(field, tmp_path)
    assert [p.name for p in paths] == ["frame_00000.ply", "frame_00001.ply", "frame_00002.ply"]
    ply = plyfile.PlyData.read(str(paths[1]))
    v = ply["vertex"]
    names = [p.name for p in v.properties]
    assert names == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert all(v[n].dtype == np.float32 for n in names) and not ply.text and ply.byte_order == "<"
    a = field.at(1)
    assert np.allclose(np.stack([v["x"], v["y"], v["z"]], -1), a["means"].numpy(), atol=1e-6)
    assert np.allclose(v["f_dc_0"], (a["colors"][:, 0].numpy() - 0.5) / ex.C0, atol=1e-5)
    assert np.allclose(1 / (1 + np.exp(-v["opacity"])), a["opacities"].numpy(), atol=1e-6)
    assert np.allclose(np.exp(v["scale_2"]), a["scales"][:, 2].numpy(), rtol=1e-6)
    assert np.allclose(np.stack([v[f"rot_{i}"] for i in range(4)], -1), a["quats"].numpy(), atol=1e-6)
    assert np.all(v["nx"] == 0)
    full = plyfile.PlyData.read(str(ex.save_ply_sequence(field, tmp_path / "sh3", sh_degree=3, frames=[0])[0]))
    assert sum(p.name.startswith("f_rest_") for p in full["vertex"].properties) == 45


def test_ply_round_trip_is_the_identity(tmp_path):
    field = random_field(t=1, n=300)
    (path,) = ex.save_ply_sequence(field, tmp_path)
    back = ex.load_ply(path)
    assert back.num_frames == 1 and back.num_gaussians == 300
    for name in ("means", "colors", "opacities", "scales", "quats"):
        ours, theirs = getattr(back, name), getattr(field, name).reshape(getattr(back, name).shape)
        assert torch.allclose(ours, theirs, atol=2e-6, rtol=1e-5), name


def test_drop_transparent_and_world_placement(tmp_path, scene):
    # The exact tracks lifted per frame live in each frame's camera; the exact camera puts every
    # static Gaussian in one place for all frames.
    field = lift_tracks(scene.tracks(0), scene.frames)
    world = gs.place_in_world(field, scene.camera)
    static = ~scene.object_mask[0].reshape(-1) & (field.opacities > 0).all(0)
    spread = (world.means[:, static] - world.means[0:1, static]).norm(dim=-1).max()
    assert float(spread) < 1e-4
    moved = (field.means[:, static] - field.means[0:1, static]).norm(dim=-1).max()
    assert float(moved) > 0.1
    (p,) = ex.save_ply_sequence(field, tmp_path, frames=[4], drop_transparent=True)
    assert plyfile.PlyData.read(str(p))["vertex"].count == int((field.opacities[4] > 0).sum())


def test_point_cloud_and_foreign_plys(tmp_path):
    pts = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [float("nan"), 0.0, 0.0]])
    rgb = torch.tensor([[1.0, 0.0, 0.5], [0.2, 0.4, 0.6], [0.0, 0.0, 0.0]])
    path = ex.save_point_cloud(pts, tmp_path / "pc.ply", rgb)
    v = plyfile.PlyData.read(str(path))["vertex"]
    assert v.count == 2 and v["red"].dtype == np.uint8 and list(v["red"]) == [255, 51] and list(v["blue"]) == [128, 153]
    field = ex.load_ply(path, point_size=0.05)
    assert torch.allclose(field.means[0], pts[:2]) and torch.allclose(field.scales, torch.full((2, 3), 0.05))
    assert torch.allclose(field.colors, torch.tensor([[1.0, 0.0, 128 / 255], [51 / 255, 102 / 255, 153 / 255]]))
    # Files written by another writer: ascii and big endian, with a face element after the vertices.
    data = np.array([(0.5, -1.0, 2.0, 10, 20, 30), (1.5, 2.0, 3.0, 40, 50, 60)], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    faces = np.array([([0, 1, 1],)], dtype=[("vertex_indices", "i4", (3,))])
    for text, order in ((True, "="), (False, ">")):
        p = tmp_path / f"foreign_{text}.ply"
        plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex"), plyfile.PlyElement.describe(faces, "face")], text=text, byte_order=order).write(str(p))
        got = ex.load_ply(p)
        assert torch.allclose(got.means[0], torch.tensor([[0.5, -1.0, 2.0], [1.5, 2.0, 3.0]]))
        assert torch.allclose(got.colors[1], torch.tensor([40, 50, 60]) / 255.0)


def test_bad_plys_are_clear_errors(tmp_path):
    (tmp_path / "a.ply").write_bytes(b"not a ply")
    with pytest.raises(ValueError, match="not a PLY"):
        ex.load_ply(tmp_path / "a.ply")
    (tmp_path / "b.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nproperty float y\nproperty float z\nend_header\n" + b"\0" * 12)
    with pytest.raises(ValueError, match="ends inside"):
        ex.load_ply(tmp_path / "b.ply")
    (tmp_path / "c.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 999999999999\nproperty float x\nend_header\n")
    with pytest.raises(ValueError, match="more than"):
        ex.load_ply(tmp_path / "c.ply")


# --- cameras -------------------------------------------------------------------------------------------


def test_nerfstudio_round_trip_fov_and_axes():
    path = camera_path("orbit", 5, 64, 40, angle=30.0, fov=50.0)
    d = ex.camera_path_to_nerfstudio(path, fps=10.0)
    assert d["render_width"] == 64 and d["render_height"] == 40 and d["seconds"] == pytest.approx(0.5) and "vid4d_note" not in d
    cam = d["camera_path"][3]
    fy = float(path.intrinsics[3, 1, 1])
    assert cam["fov"] == pytest.approx(math.degrees(2 * math.atan(20 / fy)))  # vertical
    c2w = np.array(cam["camera_to_world"]).reshape(4, 4)  # row-major
    cv = path.camera_to_world()[3].double().numpy()
    # OpenGL camera: looks down -z (= OpenCV +z), +y is up (= OpenCV -y); same centre.
    assert np.allclose(-c2w[:3, 2], cv[:3, 2], atol=1e-6) and np.allclose(-c2w[:3, 1], cv[:3, 1], atol=1e-6) and np.allclose(c2w[:3, 3], cv[:3, 3], atol=1e-6)
    back = ex.camera_path_from_nerfstudio(json.loads(json.dumps(d)))
    assert torch.allclose(back.world_to_camera, path.world_to_camera, atol=1e-6)
    assert torch.allclose(back.intrinsics, path.intrinsics, atol=1e-4)
    assert "vid4d_note" in ex.camera_path_to_nerfstudio(moving_path())  # off-centre principal point is lost


def test_json_round_trip_is_exact():
    path = moving_path()
    back = ex.camera_path_from_json(json.loads(json.dumps(ex.camera_path_to_json(path, fps=25.0))))
    assert torch.equal(back.world_to_camera, path.world_to_camera) and torch.equal(back.intrinsics, path.intrinsics)


def _blender_project(cam: dict, frame: int, width: int, height: int, point_cv: torch.Tensor) -> torch.Tensor:
    """Blender's own projection (bpy_extras' world_to_camera_view, written out): world point (Blender
    axes) into the camera's normalised view, then to pixels with centres at integers."""
    m = torch.tensor(cam["matrix_world"][frame], dtype=torch.float64).reshape(4, 4)
    p = torch.tensor([point_cv[0], point_cv[2], -point_cv[1], 1.0], dtype=torch.float64)  # Blender world = (x, z, -y)
    local = torch.linalg.inv(m) @ p  # camera looks down -Z, +Y up
    depth = -local[2]
    half = 0.5 * 36.0 / cam["lens"][frame]  # sensor half-width over focal (horizontal fit)
    x = local[0] / depth / (2 * half) + 0.5 - cam["shift_x"][frame]
    y = local[1] / depth / (2 * half) * width / height + 0.5 - cam["shift_y"][frame] * width / height
    return torch.stack([x * width - 0.5, (1 - y) * height - 0.5, depth])


def test_blender_axis_change_projects_like_the_camera():
    path = moving_path()
    cam = ex.blender_camera(path)
    points = torch.tensor([[0.3, -0.2, 4.0], [-1.0, 0.6, 2.5], [1.2, 0.4, 3.1]], dtype=torch.float64)
    uv, z = path.project(points.float())
    for t in range(path.num_frames):
        for n in range(points.shape[0]):
            got = _blender_project(cam, t, path.width, path.height, points[n])
            assert torch.allclose(got[:2], uv[t, n].double(), atol=1e-3) and got[2] == pytest.approx(float(z[t, n]), abs=1e-5)
    # The source camera (identity) looks along Blender's +Y with +Z up.
    m = torch.tensor(ex.blender_camera(camera_path("static", 1, 64, 40))["matrix_world"][0]).reshape(4, 4)
    assert torch.allclose(-m[:3, 2], torch.tensor([0.0, 1.0, 0.0])) and torch.allclose(m[:3, 1], torch.tensor([0.0, 0.0, 1.0]))


def _export_json(path: CameraPath, fps: float) -> dict:
    """What the Blender export script writes for the camera the Blender script builds (without Blender)."""
    cam = ex.blender_camera(path)
    return {
        "format": ex.BLENDER_FORMAT, "width": path.width, "height": path.height, "fps": fps, "sensor_fit": "HORIZONTAL", "sensor_width": 36.0, "sensor_height": 24.0,
        "frames": [{"frame": 1 + t, "matrix_world": cam["matrix_world"][t], "lens": cam["lens"][t], "shift_x": cam["shift_x"][t], "shift_y": cam["shift_y"][t]} for t in range(path.num_frames)],
    }


def test_blender_import_inverts_the_export_and_scripts_compile():
    path = moving_path()
    back = ex.camera_path_from_blender(_export_json(path, 24.0))
    assert torch.allclose(back.world_to_camera, path.world_to_camera, atol=1e-6) and torch.allclose(back.intrinsics, path.intrinsics, atol=1e-4)
    script = ex.camera_path_to_blender_script(path, fps=23.976, frame_start=10, point_cloud="points.ply")
    compile(script, "camera.py", "exec")
    assert "scene.render.fps = 24" in script and "scene.frame_end = 15" in script and "fps = 23.976" in script
    compile(ex.blender_export_script(), "export.py", "exec")
    with pytest.raises(ValueError, match="vid4d_blender_camera"):
        ex.camera_path_from_blender({"frames": []})


@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (Debian: apt-get install blender)")
def test_real_blender_builds_projects_and_exports_the_camera(tmp_path):
    path = moving_path(num=4)
    (tmp_path / "camera.py").write_text(ex.camera_path_to_blender_script(path, fps=12.5, point_cloud="points.ply"))
    ex.save_point_cloud(torch.tensor([[0.0, 0.0, 3.0], [0.5, -0.5, 4.0]]), tmp_path / "points.ply", torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    (tmp_path / "export.py").write_text(ex.blender_export_script())
    points = [[0.3, -0.2, 4.0], [-1.0, 0.6, 2.5]]
    (tmp_path / "probe.py").write_text(
        "import bpy, json, mathutils\nfrom bpy_extras.object_utils import world_to_camera_view\nscene = bpy.context.scene\nout = []\n"
        "for frame in range(scene.frame_start, scene.frame_end + 1):\n    scene.frame_set(frame)\n"
        f"    out.append([list(world_to_camera_view(scene, scene.camera, mathutils.Vector((p[0], p[2], -p[1])))) for p in {points}])\n"
        "pc = [o for o in bpy.data.objects if o.type == 'MESH' and o.name.startswith('points')]\n"
        "verts = [list(pc[0].matrix_world @ v.co) for v in pc[0].data.vertices] if pc else []\n"
        f"json.dump({{'view': out, 'verts': verts, 'fps': scene.render.fps / scene.render.fps_base}}, open({str(tmp_path / 'probe.json')!r}, 'w'))\n"
    )
    cmd = ["blender", "--background", "--factory-startup", "--python", str(tmp_path / "camera.py"), "--python", str(tmp_path / "probe.py"), "--python", str(tmp_path / "export.py"), "--", "--out", str(tmp_path / "cam.json")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    probe = json.loads((tmp_path / "probe.json").read_text())
    view = torch.tensor(probe["view"], dtype=torch.float64)
    uv, z = path.project(torch.tensor(points))
    assert torch.allclose(torch.stack([view[..., 0] * path.width - 0.5, (1 - view[..., 1]) * path.height - 0.5], -1), uv.double(), atol=1e-3)
    assert torch.allclose(view[..., 2], z.double(), atol=1e-4)
    assert probe["fps"] == pytest.approx(12.5)
    assert np.allclose(sorted(probe["verts"]), sorted([[0.0, 3.0, 0.0], [0.5, 4.0, 0.5]]), atol=1e-5)  # points got the same world change
    back, fps = ex.load_camera_file(tmp_path / "cam.json")
    assert fps == pytest.approx(12.5)
    assert torch.allclose(back.world_to_camera, path.world_to_camera, atol=1e-5) and torch.allclose(back.intrinsics, path.intrinsics, atol=1e-3)


def test_camera_files_auto_detect_and_errors(tmp_path):
    path = moving_path()
    for name, d in (("ns.json", ex.camera_path_to_nerfstudio(path)), ("own.json", ex.camera_path_to_json(path, fps=30.0)), ("bl.json", _export_json(path, 30.0))):
        (tmp_path / name).write_text(json.dumps(d))
        back, fps = ex.load_camera_file(tmp_path / name)
        assert back.num_frames == path.num_frames and torch.allclose(back.world_to_camera, path.world_to_camera, atol=1e-5)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        ex.load_camera_file(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a camera path"):
        ex.load_camera_file(tmp_path / "other.json")
    broken = ex.camera_path_to_nerfstudio(path)
    broken["camera_path"][1]["camera_to_world"] = [1, 2, 3]
    with pytest.raises(ValueError, match="camera_to_world"):
        ex.camera_path_from_nerfstudio(broken)


# --- depth and tracks -------------------------------------------------------------------------------


def test_depth_png16_values_and_round_trip(tmp_path):
    import cv2

    d = torch.tensor([[[1.0, 2.5], [0.0, 10.0]], [[0.25, 3.0], [4.0, 5.0]]])
    valid = torch.tensor([[[True, True], [False, True]], [[True, True], [True, False]]])
    paths, scale = ex.save_depth_png(DepthVideo(d, kind="metric", valid=valid), tmp_path)
    assert scale == 1000.0
    raw = cv2.imread(str(paths[0]), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.tolist() == [[1000, 2500], [0, 10000]]
    meta = json.loads((tmp_path / "depth.json").read_text())
    assert meta["scale"] == 1000.0 and meta["frames"] == [p.name for p in paths]
    back = ex.load_depth_png(paths, scale)
    assert torch.equal(back.valid, valid) and torch.allclose(back.depth[valid], d[valid], atol=0.5 / scale)
    deep, s2 = ex.save_depth_png(torch.tensor([[[100.0, 200.0]]]), tmp_path / "deep")
    assert s2 == pytest.approx(65535 / 200.0) and int(cv2.imread(str(deep[0]), cv2.IMREAD_UNCHANGED).max()) == 65535


def test_depth_exr(tmp_path):
    d = torch.rand(2, 5, 7) + 0.5
    if not ex.exr_available():
        with pytest.raises(ValueError, match="pip install openexr"):
            ex.save_depth_exr(d, tmp_path)
        return
    paths = ex.save_depth_exr(d, tmp_path)
    back = ex.load_depth_exr(paths)
    assert torch.equal(back.depth, d)


def test_tracks_npz_csv_and_blender(tmp_path, scene):
    tracks = scene.tracks(0)
    back = ex.load_tracks_npz(ex.save_tracks_npz(tracks, tmp_path / "t.npz", camera=scene.camera))
    assert torch.equal(back.uv, tracks.uv) and torch.equal(back.visibility, tracks.visibility) and back.depth_known
    with np.load(tmp_path / "t.npz") as z:
        world = torch.from_numpy(z["xyz"])
    static = ~scene.object_mask[0]
    assert float((world[:, static] - world[0:1, static]).norm(dim=-1).max()) < 1e-4  # static tracks stand still in the world
    csv = ex.save_tracks_csv(tracks, tmp_path / "t.csv", stride=8)
    lines = csv.read_text().splitlines()
    assert lines[0] == "track,ref_x,ref_y,frame,x,y,depth,visible,X,Y,Z"
    assert len(lines) - 1 == scene.num_frames * (48 // 8) * (32 // 8)
    first = lines[1].split(",")
    assert float(first[1]) == 4.0 and float(first[2]) == 4.0 and first[3] == "0"
    script = ex.tracks_to_blender_script(tracks, camera=scene.camera, max_empties=20)
    compile(script, "tracks.py", "exec")
    data = json.loads(eval(script.split("DATA = json.loads(")[1].split(")\n")[0]))
    assert 0 < len(data["xyz"]) <= 20 and len(data["xyz"][0]) == scene.num_frames


# --- nodes ---------------------------------------------------------------------------------------------


def test_export_nodes_write_into_the_output_folder(headless, scene):
    from vid4d.nodes.exchange import Vid4DExportCamera, Vid4DExportDepth, Vid4DExportGaussians, Vid4DExportTracks

    field = lift_tracks(scene.tracks(0), scene.frames)
    out = headless / "output"
    r = Vid4DExportGaussians().export(field, "vid4d/splat", "gaussians_3dgs", -1, 0, True, camera=scene.camera)
    folder = out / "vid4d" / "splat_00001"
    assert r["result"] == (str(folder),) and len(list(folder.glob("*.ply"))) == scene.num_frames
    assert r["ui"]["vid4d_files"][0] == "vid4d/splat_00001/frame_00000.ply"
    Vid4DExportGaussians().export(field, "vid4d/splat", "points", 2, 0, True)
    assert (out / "vid4d" / "splat_00002" / "points_00002.ply").exists()
    r = Vid4DExportCamera().export(scene.camera, "cams/shot", "all", 12.0, 1, 36.0, gaussians=field)
    names = sorted(p.name for p in (out / "cams" / "shot_00001").iterdir())
    assert names == ["blender_export_camera.py", "camera.json", "camera_blender.py", "camera_path.json", "points.ply"]
    Vid4DExportDepth().export(scene.depth_video(), "d", "png16", 0.0)
    assert len(list((out / "d_00001").glob("*.png"))) == scene.num_frames
    r = Vid4DExportTracks().export(scene.tracks(0), "tr", "blender", 4, 50, 12.0, 1, camera=scene.camera)
    assert r["result"][0].endswith("tracks_blender.py")
    with pytest.raises(ValueError, match="filename_prefix"):
        Vid4DExportDepth().export(scene.depth_video(), "../escape", "png16", 0.0)


def test_loader_nodes_read_from_the_input_folder_only(headless, scene):
    from vid4d.nodes.exchange import Vid4DLoadCameraPath, Vid4DLoadGaussiansPLY

    inp = headless / "input"
    (inp / "cams").mkdir()
    (inp / "cams" / "camera_path.json").write_text(json.dumps(ex.camera_path_to_nerfstudio(scene.camera, fps=12.0)))
    ex.save_ply_sequence(random_field(t=1, n=50), inp, prefix="splat")
    assert "cams/camera_path.json" in Vid4DLoadCameraPath.INPUT_TYPES()["required"]["file"][0]
    path, image, fps, count = Vid4DLoadCameraPath().load("cams/camera_path.json", "auto")["result"]
    assert count == scene.num_frames and fps == 12.0 and image.shape[0] == 1
    assert torch.allclose(path.world_to_camera, scene.camera.world_to_camera, atol=1e-5)
    (field,) = Vid4DLoadGaussiansPLY().load("splat_00000.ply", 0.0)["result"]
    assert field.num_gaussians == 50
    outside = headless / "secret.json"
    outside.write_text("{}")
    for bad in ("../secret.json", str(outside), "missing.json"):
        assert Vid4DLoadCameraPath.VALIDATE_INPUTS(bad) is not True
        with pytest.raises(ValueError):
            Vid4DLoadCameraPath().load(bad, "auto")


def test_estimate_camera_node(scene):
    from vid4d.nodes.solve import Vid4DEstimateCamera

    out = Vid4DEstimateCamera().solve(scene.tracks(0), 60.0, 4000, 30)
    camera, static, moving, depth, image, report = out["result"]
    assert static.shape == (1, scene.height, scene.width) and torch.equal(moving, 1 - static)
    assert depth.kind == "metric" and image.shape[0] == 1 and json.loads(report)["mode"] == "depth"
    assert "vid4d_path" in out["ui"] and "camera solve" in out["ui"]["vid4d_info"][0]
    flat = Vid4DEstimateCamera().solve(ex.load_tracks_npz(_no_depth_npz(scene)), 0.0, 4000, 30)
    assert flat["result"][3].kind == "relative" and json.loads(flat["result"][5])["mode"] in ("motion", "rotation")


def _no_depth_npz(scene):
    import dataclasses
    import tempfile
    from pathlib import Path

    tracks = dataclasses.replace(scene.tracks(0), depth=torch.ones(scene.num_frames, scene.height, scene.width), depth_known=False)
    return ex.save_tracks_npz(tracks, Path(tempfile.mkdtemp()) / "flat.npz")
