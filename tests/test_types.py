"""The typed edges validate what they carry and say exactly what is wrong."""

import math

import pytest
import torch

from vid4d.py.camera import CameraPath, intrinsics_from_fov, pixel_grid, unproject_pixels
from vid4d.py.depth import DepthVideo, depth_from_image, depth_to_image
from vid4d.py.gaussians import GaussianField
from vid4d.py.spectral import SpectralVolume
from vid4d.py.tracking import Tracks3D

K = intrinsics_from_fov(60.0, 32, 24)


def _tracks(t=3, h=4, w=5, **over):
    kw = dict(uv=torch.zeros(t, h, w, 2), depth=torch.ones(t, h, w), visibility=torch.ones(t, h, w, dtype=torch.bool), intrinsics=K)
    kw.update(over)
    return Tracks3D(**kw)


def test_error_names_field_expected_and_received_shape():
    with pytest.raises(ValueError) as e:
        _tracks(depth=torch.ones(3, 4, 6))
    msg = str(e.value)
    assert "Tracks3D.depth" in msg and "[T=3, H=4, W=5]" in msg and "[3, 4, 6]" in msg


@pytest.mark.parametrize(
    "over,needle",
    [
        ({"uv": torch.zeros(3, 4, 5, 3)}, "Tracks3D.uv"),
        ({"visibility": torch.ones(2, 4, 5, dtype=torch.bool)}, "Tracks3D.visibility"),
        ({"visibility": torch.full((3, 4, 5), 2.0)}, "<= 1"),
        ({"depth": torch.full((3, 4, 5), float("nan"))}, "NaN"),
        ({"intrinsics": torch.eye(4)}, "Tracks3D.intrinsics"),
        ({"ref_frame": 3}, "ref_frame"),
        ({"uv": torch.zeros(3, 4, 5, 2, dtype=torch.int64)}, "float"),
        ({"uv": torch.zeros(0, 4, 5, 2), "depth": torch.ones(0, 4, 5), "visibility": torch.ones(0, 4, 5)}, "empty"),
    ],
)
def test_tracks_rejects(over, needle):
    with pytest.raises(ValueError, match=needle):
        _tracks(**over)


def test_tracks_xyz_unprojects_with_per_frame_intrinsics():
    uv = pixel_grid(4, 5).expand(3, 4, 5, 2).clone()
    depth = torch.full((3, 4, 5), 2.0)
    tr = _tracks(uv=uv, depth=depth, intrinsics=K.expand(3, 3, 3).clone())
    xyz = tr.xyz()
    assert xyz.shape == (3, 4, 5, 3)
    back = xyz[..., :2] / xyz[..., 2:] * K[0, 0] + K[:2, 2]
    assert torch.allclose(back, uv, atol=1e-4) and torch.allclose(xyz[..., 2], depth)


def _pose(yaw, t):
    c, s = math.cos(yaw), math.sin(yaw)
    m = torch.eye(4)
    m[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    m[:3, 3] = torch.tensor(t)
    return m


def test_camera_path_project_unproject_round_trip():
    poses = torch.stack([_pose(0.0, [0, 0, 0]), _pose(0.3, [0.5, -0.1, 0.2])])
    path = CameraPath(K.expand(2, 3, 3).clone(), poses, 32, 24)
    pts = torch.tensor([[0.1, 0.2, 3.0], [-0.5, 0.3, 5.0]])
    uv, z = path.project(pts)
    assert uv.shape == (2, 2, 2) and z.shape == (2, 2)
    assert torch.allclose(path.unproject(uv, z), pts.expand(2, 2, 3), atol=1e-4)
    assert torch.allclose(path.camera_to_world() @ path.world_to_camera, torch.eye(4).expand(2, 4, 4), atol=1e-6)
    assert torch.allclose(path.centers()[0], torch.zeros(3))
    static = CameraPath.static(K, 4, 32, 24)
    assert static.num_frames == 4 and torch.equal(static.world_to_camera[2], torch.eye(4))


@pytest.mark.parametrize(
    "intr,pose,needle",
    [
        (K.expand(2, 3, 3).clone(), torch.eye(4).expand(3, 4, 4).clone(), "world_to_camera"),
        (torch.zeros(2, 3, 3), torch.eye(4).expand(2, 4, 4).clone(), "focal"),
        (K.expand(2, 3, 3).clone(), (2 * torch.eye(4)).expand(2, 4, 4).clone(), "last row|orthonormal"),
        (K.expand(2, 3, 3).clone(), torch.diag(torch.tensor([1.0, 1.0, 2.0, 1.0])).expand(2, 4, 4).clone(), "orthonormal"),
    ],
)
def test_camera_path_rejects(intr, pose, needle):
    with pytest.raises(ValueError, match=needle):
        CameraPath(intr, pose, 32, 24)


def test_camera_path_rejects_bad_size_and_fov():
    with pytest.raises(ValueError, match="width"):
        CameraPath(K[None], torch.eye(4)[None], 0, 24)
    with pytest.raises(ValueError, match="fov"):
        intrinsics_from_fov(180.0, 32, 24)


def test_unproject_pixels_centre_ray_and_skew_free_inverse():
    p = unproject_pixels(torch.tensor([[15.5, 11.5]]), torch.tensor([4.0]), K)
    assert torch.allclose(p, torch.tensor([[0.0, 0.0, 4.0]]), atol=1e-6)


def test_gaussian_field_static_and_time_varying_fields():
    n = 7
    f = GaussianField(torch.zeros(3, n, 3), torch.rand(n, 3), torch.rand(3, n), torch.full((n, 3), 0.1), torch.tensor([1.0, 0, 0, 0]).expand(n, 4))
    assert f.num_frames == 3 and f.num_gaussians == n
    at = f.at(5)
    assert at["opacities"].shape == (n,) and at["colors"].shape == (n, 3)
    moved = f.to("cpu", dtype=torch.float64)
    assert moved.means.dtype == torch.float64
    with pytest.raises(ValueError, match="GaussianField.colors"):
        GaussianField(torch.zeros(3, n, 3), torch.rand(n + 1, 3), torch.rand(n), torch.full((n, 3), 0.1), torch.ones(n, 4))
    with pytest.raises(ValueError, match="scales"):
        GaussianField(torch.zeros(1, n, 3), torch.rand(n, 3), torch.rand(n), torch.zeros(n, 3), torch.ones(n, 4))
    with pytest.raises(ValueError, match="quaternion"):
        GaussianField(torch.zeros(1, n, 3), torch.rand(n, 3), torch.rand(n), torch.ones(n, 3), torch.zeros(n, 4))


def test_spectral_volume_validation():
    sv = SpectralVolume(torch.zeros(16, 4, 5, 2, dtype=torch.complex64), period=150, fps=30)
    assert sv.num_freqs == 16
    with pytest.raises(ValueError, match="complex"):
        SpectralVolume(torch.zeros(16, 4, 5, 2), period=150)
    with pytest.raises(ValueError, match="exceed"):
        SpectralVolume(torch.zeros(16, 4, 5, 2, dtype=torch.complex64), period=10)


def test_depth_video_and_image_conversions():
    depth = torch.linspace(1.0, 9.0, 2 * 4 * 5).reshape(2, 4, 5)
    dv = DepthVideo(depth, kind="metric")
    img = dv.to_image(near=1.0, far=9.0)
    assert img.shape == (2, 4, 5, 3) and float(img[0, 0, 0, 0]) == pytest.approx(1.0) and float(img[-1, -1, -1, 0]) == pytest.approx(0.0, abs=1e-6)
    back = depth_from_image(img, "disparity", near=1.0, far=9.0)
    assert back.kind == "relative" and torch.allclose(back.depth, depth, rtol=1e-4)
    with pytest.raises(ValueError, match="kind"):
        DepthVideo(depth, kind="disparity")
    with pytest.raises(ValueError, match=">= 0"):
        DepthVideo(-depth)
    with pytest.raises(ValueError, match="IMAGE"):
        depth_from_image(torch.rand(4, 5))
    assert depth_to_image(torch.zeros(1, 2, 2)).abs().sum() == 0


def test_depth_preview_of_a_long_full_size_video():
    # 49 x 480 x 720 values: a float32 linspace of sample indices used to round its last one past the end.
    from vid4d.py.depth import depth_to_image

    depth = torch.linspace(1.0, 9.0, 49 * 480 * 720).reshape(49, 480, 720)
    image = depth_to_image(depth)
    assert image.shape == (49, 480, 720, 3)
    assert float(image[0, 0, 0, 0]) == 1.0 and float(image[-1, -1, -1, 0]) == 0.0
