"""A value is checked once, where it enters (py/checks.py): value scans once per tensor per node call,
``from_checked`` for results built from checked values, ``.to()`` never re-checks, errors as clear as before."""

import pytest
import torch

from vid4d.py import checks
from vid4d.py.checks import TensorData, check_image, check_mask, check_tensor, validation_scope
from vid4d.py.gaussians import GaussianField
from vid4d.py.scene import sample_scene


def _field(t=2, n=5, means=None):
    return GaussianField(torch.rand(t, n, 3) if means is None else means, torch.rand(n, 3), torch.rand(n), torch.full((n, 3), 0.1), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1))


@pytest.fixture
def scans(monkeypatch):
    """The name of every NaN/inf scan that really ran (the ones the ledger skipped do not show)."""
    seen: list[str] = []
    real = checks._nonfinite

    def record(name, value, what=""):
        seen.append(name)
        return real(name, value, what)

    monkeypatch.setattr(checks, "_nonfinite", record)
    return seen


def test_to_is_an_unchecked_copy(monkeypatch):
    field = _field()
    calls = []
    monkeypatch.setattr(GaussianField, "__post_init__", lambda self: calls.append(1))
    moved = field.to("cpu", torch.float64)
    assert calls == []  # no __post_init__: a device move is not a new value
    assert moved is not field and moved.means.dtype == torch.float64 and field.means.dtype == torch.float32
    assert moved.quats.dtype == torch.float64 and moved.pixels is None
    scene = sample_scene(2, 32, 16, seed=0)
    assert scene.to(dtype=torch.float64).camera.intrinsics.dtype == torch.float64  # nested TensorData moves too


def test_from_checked_runs_shape_checks_but_no_value_scan():
    bad = torch.rand(2, 5, 3)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"GaussianField.means: contains 1 NaN/inf value\(s\) of 30, the first in GaussianField.means\[0\]"):
        _field(means=bad)
    field = GaussianField.from_checked(bad, torch.rand(5, 3), torch.rand(5), torch.full((5, 3), 0.1), torch.ones(5, 4))
    assert field.num_gaussians == 5  # computed values are trusted...
    with pytest.raises(ValueError, match=r"GaussianField.colors: expected shape"):
        GaussianField.from_checked(bad, torch.rand(4, 3), torch.rand(5), torch.full((5, 3), 0.1), torch.ones(5, 4))  # ...their shapes are not
    with pytest.raises(ValueError, match="scales: every scale must be > 0"):
        GaussianField(torch.rand(1, 5, 3), torch.rand(5, 3), torch.rand(5), torch.zeros(5, 3), torch.ones(5, 4))


def test_a_scope_scans_each_tensor_once(scans):
    x = torch.rand(4, 8, 8, 3)
    check_tensor("x", x, (4, 8, 8, 3))
    check_tensor("x", x, (4, 8, 8, 3))
    assert scans == ["x", "x"]  # outside a scope every check runs
    scans.clear()
    with validation_scope():
        assert check_image("frames", x) is x  # an RGB IMAGE is returned as is, so what follows sees the same tensor
        check_tensor("frames", x, ("T", "H", "W", 3))
        checks.check_finite("frames", x)
        with validation_scope():  # nested scopes share the outer ledger
            check_tensor("frames", x, (None, None, None, 3))
        assert scans == ["frames"]
        x.add_(0)  # an in-place write voids what was checked
        check_tensor("x", x, (4, 8, 8, 3))
        check_tensor("view", x[:2], (2, 8, 8, 3))  # another tensor object: scanned
        mask = check_mask("m", torch.rand(4, 8, 8))
        check_mask("m", mask)
        assert scans == ["frames", "x", "view", "m"]
    with torch.inference_mode():  # as ComfyUI runs nodes: no version counter, still once
        y = torch.rand(3, 4)
        with validation_scope():
            check_tensor("y", y, (3, 4))
            check_tensor("y", y, (3, 4))
    assert scans[-1:] == ["y"] and scans.count("y") == 1


def test_errors_stay_clear_inside_a_scope():
    nan = torch.rand(3, 8, 8, 3)
    nan[1, 2, 2, 0] = float("nan")
    with validation_scope():
        with pytest.raises(ValueError, match="frames: the IMAGE contains NaN/inf values"):
            check_image("frames", nan)
        with pytest.raises(ValueError, match=r"x: contains 1 NaN/inf value\(s\) of 576, the first in x\[1\]"):
            check_tensor("x", nan, (3, 8, 8, 3))
        with pytest.raises(ValueError, match="values must be <= 1.0"):
            checks.check_range("r", torch.tensor([0.5, 2.0]), 0.0, 1.0)


def test_the_node_chain_scans_each_tensor_once_per_node(scans, monkeypatch):
    """DenseTrack3D -> LiftGaussians -> RenderGaussians: the issue counted five scans of the frames, one per
    hop, and every device move re-validated the field."""
    from vid4d.nodes.gaussians import LiftGaussians
    from vid4d.nodes.render import RenderGaussians
    from vid4d.nodes.tracking import DenseTrack3D
    from vid4d.py.camera import CameraPath

    scene = sample_scene(3, 48, 32, seed=0)
    frames = scene.frames.clone()
    post = {"GaussianField": 0}
    real_post = GaussianField.__post_init__

    def count(self):
        post["GaussianField"] += 1
        real_post(self)

    monkeypatch.setattr(GaussianField, "__post_init__", count)
    import functools

    from vid4d.nodes import render as render_node

    # Eager rendering: the validation path is the same, without the one-off torch.compile of the CPU renderer.
    monkeypatch.setattr(render_node, "render_gaussians", functools.partial(render_node.render_gaussians, compile=False))
    per_node = {}
    scans.clear()
    tracks = DenseTrack3D().track(frames, "flow_chain", 0, 60.0, "ultrafast", 0, 0, "disparity", 1.0, 10.0, "none.pth", 16, depth=scene.depth_video())["result"][0]
    per_node["track"], scans[:] = list(scans), []
    field = LiftGaussians().lift(frames, "tracks", 60.0, 0.3, 1, "keep", 0.1, "reference", "disparity", 1.0, 10.0, tracks=tracks)["result"][0]
    per_node["lift"] = list(scans)
    camera = CameraPath.static(scene.intrinsics, 3, 48, 32)
    scans.clear()
    RenderGaussians().render(field, camera, "torch", 0.5, "sequence")
    per_node["render"] = list(scans)
    for names in per_node.values():
        assert len(names) == len(set(names)), names  # one scan per tensor per node
    assert per_node["track"].count("frames") == 1  # the node's check; track_dense and draw_tracks see the same tensor
    assert per_node["lift"].count("frames") == 1  # the tracks and the field it builds are not scanned
    assert not [n for names in per_node.values() for n in names if n.split(".")[0] in ("Tracks3D", "GaussianField", "RenderedVideo", "DepthVideo", "depth")]
    assert per_node["render"] == []  # the field's move and the RenderedVideo / DepthVideo built from the render: no scans
    assert post["GaussianField"] == 1  # built once (from_checked), not re-validated by field.to(device)


def test_bad_input_still_fails_at_the_node(scans):
    from vid4d.nodes.tracking import DenseTrack3D

    frames = torch.rand(3, 32, 48, 3)
    frames[2, 0, 0, 1] = float("inf")
    with pytest.raises(ValueError, match="frames: the IMAGE contains NaN/inf values"):
        DenseTrack3D().track(frames, "flow_chain", 0, 60.0, "ultrafast", 0, 0, "disparity", 1.0, 10.0, "none.pth", 16)
    with pytest.raises(ValueError, match="NaN"):
        from vid4d.py.tracking import track_dense

        track_dense(frames)  # the library entry checks too, outside any node


def test_tensor_data_is_the_mixin_of_every_edge_type():
    from vid4d.nodes.common import SOCKET_TYPES

    data = [cls for cls in SOCKET_TYPES.values() if issubclass(cls, TensorData)]
    assert {c.__name__ for c in data} >= {"CameraPath", "Tracks3D", "GaussianField", "DepthVideo", "RenderedVideo", "SpectralVolume", "MotionTexture"}
