"""render_gaussians: the tile rasteriser against an independent dense float64 reference, plus conventions.

The reference below evaluates every Gaussian at every pixel ([pixels, N]) in float64 and composites
with a cumulative product, straight from the written semantics (gsplat's classic 3DGS EWA splatting):
no tiles, no chunks, its own quaternion and covariance algebra.
"""

from __future__ import annotations

import math

import pytest
import torch

from vid4d.py import render as R
from vid4d.py.camera import CameraPath
from vid4d.py.gaussians import GaussianField

MAX_ALPHA32 = float(torch.tensor(0.99, dtype=torch.float32))  # the clamp as the float32 renderer applies it


# ---------------------------------------------------------------------------------------- reference
def _rotmat(q: torch.Tensor) -> torch.Tensor:
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def reference(g: dict, w2c: torch.Tensor, k: torch.Tensor, width: int, height: int, near: float = 0.01):
    """Dense float64 render of one frame → rgb [H, W, 3], alpha [H, W], depth [H, W], ambiguous [H, W].

    ``ambiguous`` marks pixels where a float32 renderer could legitimately decide a threshold the other
    way (α within 1e-5 relative of 1/255, or T within 1e-5 relative of 1e-4 at a stop).
    """
    d = torch.float64
    m, q, s, op, c = (g[n].to(d) for n in ("means", "quats", "scales", "opacities", "colors"))
    w2c, k = w2c.to(d), k.to(d)
    cam = torch.einsum("ij,nj->ni", w2c[:3, :3], m) + w2c[:3, 3]
    x, y, z = cam.unbind(-1)
    rq = _rotmat(q)
    cov_c = w2c[:3, :3] @ (rq @ torch.diag_embed(s * s) @ rq.transpose(-1, -2)) @ w2c[:3, :3].T
    fx, fy, cx, cy, sk = k[0, 0], k[1, 1], k[0, 2], k[1, 2], k[0, 1]
    # gsplat's Jacobian clamp, with its principal point at ours + 0.5
    lim_x, lim_y = 0.3 * 0.5 * width / fx, 0.3 * 0.5 * height / fy
    u = (x / z).clamp(-(cx + 0.5) / fx - lim_x, (width - cx - 0.5) / fx + lim_x)
    v = (y / z).clamp(-(cy + 0.5) / fy - lim_y, (height - cy - 0.5) / fy + lim_y)
    jac = torch.zeros(len(z), 2, 3, dtype=d)
    jac[:, 0, 0], jac[:, 0, 1], jac[:, 0, 2] = fx / z, sk / z, -(fx * u + sk * v) / z
    jac[:, 1, 1], jac[:, 1, 2] = fy / z, -fy * v / z
    cov2 = jac @ cov_c @ jac.transpose(-1, -2) + 0.3 * torch.eye(2, dtype=d)
    mean2 = torch.stack([(fx * x + sk * y) / z + cx, fy * y / z + cy], -1)
    valid = (z >= near) & (z <= 1e10) & (torch.linalg.det(cov2) > 0)
    conic = torch.linalg.inv(cov2)

    ys, xs = torch.meshgrid(torch.arange(height, dtype=d), torch.arange(width, dtype=d), indexing="ij")
    pix = torch.stack([xs, ys], -1).reshape(-1, 1, 2)
    order = torch.sort(z.float(), stable=True).indices  # front to back, ties by index
    delta = pix - mean2[order]
    con = conic[order]
    sigma = 0.5 * (con[:, 0, 0] * delta[..., 0] ** 2 + con[:, 1, 1] * delta[..., 1] ** 2) + con[:, 0, 1] * delta[..., 0] * delta[..., 1]
    raw = op[order] * torch.exp(-sigma)
    alpha = raw.clamp(max=MAX_ALPHA32)
    used = (sigma >= 0) & (alpha >= 1 / 255) & valid[order]
    alpha = torch.where(used, alpha, torch.zeros_like(alpha))
    t_after = torch.cumprod(1 - alpha, dim=1)
    added = t_after > 1e-4  # the Gaussian taking T to <= 1e-4 is not added; T only falls, so a prefix
    t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], 1)
    w = alpha * t_before * added
    t_final = torch.where(added, t_after, torch.ones_like(t_after)).amin(1)
    acc = 1 - t_final
    depth = torch.where(acc >= 1e-6, (w @ z[order]) / acc.clamp_min(1e-12), torch.zeros_like(acc))
    near_alpha = ((raw - 1 / 255).abs() < 1e-5 / 255) & valid[order]
    near_stop = ((t_after - 1e-4).abs() < 1e-9) & used
    ambiguous = (near_alpha | near_stop).any(1)
    return (w @ c[order]).reshape(height, width, 3), acc.reshape(height, width), depth.reshape(height, width), ambiguous.reshape(height, width)


def assert_matches_reference(result: R.RenderResult, field: GaussianField, path: CameraPath, frame: int = 0, tol: float = 1e-4):
    g = field.at(frame if field.num_frames > 1 else 0)
    rgb, alpha, depth, amb = reference(g, path.world_to_camera[frame], path.intrinsics[frame], path.width, path.height)
    assert int(amb.sum()) <= 0.005 * amb.numel(), "too many threshold-ambiguous pixels for a fair comparison"
    ok = ~amb
    err_rgb = (result.rgb[frame].double() - rgb).abs().amax(-1)
    err_alpha = (result.alpha[frame].double() - alpha).abs()
    assert float(err_rgb[ok].max()) < tol, f"rgb max error {float(err_rgb[ok].max()):.3g}"
    assert float(err_alpha[ok].max()) < tol, f"alpha max error {float(err_alpha[ok].max()):.3g}"
    solid = ok & (alpha > 0.01)
    rel = (result.depth[frame].double() - depth).abs() / depth.clamp_min(1e-9)
    assert float(rel[solid].max()) < 1e-4, f"depth max relative error {float(rel[solid].max()):.3g}"
    # where a threshold is ambiguous the difference is still bounded by one weak Gaussian's weight
    assert float(err_rgb.max()) < 0.02 and float(err_alpha.max()) < 0.02
    return float(err_rgb[ok].max()), float(err_alpha[ok].max())


# ------------------------------------------------------------------------------------------ scenes
W, H = 64, 48
K = torch.tensor([[60.0, 0.0, 31.5], [0.0, 58.0, 23.5], [0.0, 0.0, 1.0]])


def path_for(w2c: torch.Tensor | None = None, k: torch.Tensor = K, width: int = W, height: int = H, frames: int = 1) -> CameraPath:
    w2c = torch.eye(4) if w2c is None else w2c
    return CameraPath(k[None].repeat(frames, 1, 1), w2c.reshape(-1, 4, 4).repeat(frames // w2c.reshape(-1, 4, 4).shape[0], 1, 1), width, height)


def moved_camera() -> torch.Tensor:
    """A camera shifted and rotated (yaw 12°, pitch -7°, roll 5°) that still sees most of the scene."""
    def rot(axis, deg):
        a = math.radians(deg)
        c, s = math.cos(a), math.sin(a)
        i, j = [(1, 2), (0, 2), (0, 1)][axis]
        r = torch.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        return r

    w2c = torch.eye(4)
    w2c[:3, :3] = rot(1, 12) @ rot(0, -7) @ rot(2, 5)
    w2c[:3, 3] = torch.tensor([0.3, -0.2, 0.4])
    return w2c


def random_field(n: int = 300, seed: int = 0, center=(0.0, 0.0, 4.0)) -> GaussianField:
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=gen) * torch.tensor([1.2, 0.9, 0.6]) + torch.tensor(center)
    quats = torch.randn(n, 4, generator=gen)
    scales = torch.rand(n, 3, generator=gen) * torch.rand(n, 1, generator=gen) * 0.25 + 0.005
    opacities = torch.rand(n, generator=gen) * 0.97 + 0.03
    colors = torch.rand(n, 3, generator=gen)
    return GaussianField(means[None], colors, opacities, scales, quats)


def point_field(points, scale=1e-4, opacity=1.0, colors=None) -> GaussianField:
    """Tiny isotropic Gaussians at camera-space ``points`` (world = camera 0)."""
    means = torch.as_tensor(points, dtype=torch.float32).reshape(-1, 3)
    n = means.shape[0]
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1
    op = torch.as_tensor(opacity, dtype=torch.float32).expand(n).clone()
    col = torch.ones(n, 3) if colors is None else torch.as_tensor(colors, dtype=torch.float32).reshape(n, 3)
    return GaussianField(means[None], col, op, torch.full((n, 3), float(scale)), quats)


def at_pixel(u: float, v: float, z: float = 2.0, k: torch.Tensor = K) -> list[float]:
    """The camera-space point at depth z that projects to pixel (u, v)."""
    return [(u - float(k[0, 2])) * z / float(k[0, 0]), (v - float(k[1, 2])) * z / float(k[1, 1]), z]


def render(field, path, **kw) -> R.RenderResult:
    kw.setdefault("compile", False)  # the compiled path has its own test; compiling costs seconds
    return R.render_gaussians(field, path, "torch", **kw)


# --------------------------------------------------------------------------------- reference matches
@pytest.mark.parametrize("camera", ["identity", "moved"])
def test_random_anisotropic_scene_matches_reference(camera):
    field = random_field(300, seed=1)
    w2c = torch.eye(4) if camera == "identity" else moved_camera()
    k = K.clone()
    if camera == "moved":
        k[0, 1] = 2.0  # a little skew: the torch backend supports the full pinhole matrix
    path = path_for(w2c, k)
    result = render(field, path)
    assert result.backend == "torch" and not result.compiled
    assert result.rgb.shape == (1, H, W, 3) and result.alpha.shape == (1, H, W) and result.depth.shape == (1, H, W)
    assert result.rgb.dtype == result.alpha.dtype == result.depth.dtype == torch.float32
    assert 0.2 < float(result.alpha.mean()) < 0.95, "the scene should be partly covered"
    assert_matches_reference(result, field, path)


def test_lifted_depth_map_matches_reference():
    # The real use: one opaque Gaussian per pixel of a depth map, seen from a moved camera.
    from vid4d.py.camera import pixel_grid, unproject_pixels
    from vid4d.py.scene import sample_scene

    w, h = 40, 32
    scene = sample_scene(num_frames=2, width=w, height=h)
    k = scene.intrinsics
    depth = scene.depth[0].reshape(-1)
    n = depth.numel()
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1
    field = GaussianField(
        unproject_pixels(pixel_grid(h, w).reshape(-1, 2), depth, k)[None],
        scene.frames[0].reshape(-1, 3),
        torch.ones(n),
        (depth / k[0, 0])[:, None].expand(n, 3).contiguous(),
        quats,
    )
    w2c = torch.eye(4)
    w2c[0, 3] = -0.1
    path = CameraPath(k[None], w2c[None], w, h)
    result = render(field, path)
    assert float(result.alpha.mean()) > 0.9
    assert_matches_reference(result, field, path)


def test_compiled_blend_matches_reference():
    field = random_field(120, seed=2)
    path = path_for(moved_camera())
    try:
        result = R.render_gaussians(field, path, "torch", tile_size=8, compile=True)
    except RuntimeError as err:
        pytest.skip(f"torch.compile does not work here: {err}")
    assert result.compiled and R.compile_status("cpu")["state"] == "compiled"
    assert_matches_reference(result, field, path)
    eager = render(field, path, tile_size=8)
    assert float((result.rgb - eager.rgb).abs().max()) < 1e-5
    assert float((result.alpha - eager.alpha).abs().max()) < 1e-5


def test_tile_sizes_and_tile_corners_give_the_same_image():
    # Gaussians centred on tile corners (8 and 16 px grids), straddling image borders and spanning
    # several tiles, plus random ones: no seams, and the tile size does not matter.
    pts = [(7.5, 7.5), (15.5, 15.5), (16.0, 8.0), (31.5, 23.5), (0.0, 0.0), (63.0, 47.0), (-1.5, 10.0), (64.5, 30.0), (40.0, -2.0), (47.5, 31.5)]
    gen = torch.Generator().manual_seed(3)
    n = len(pts)
    means = torch.tensor([at_pixel(u, v, 3.0) for u, v in pts])
    scales = torch.rand(n, 3, generator=gen) * 0.12 + 0.02
    quats = torch.randn(n, 4, generator=gen)
    corner = GaussianField(means[None], torch.rand(n, 3, generator=gen), torch.rand(n, generator=gen) * 0.5 + 0.5, scales, quats)
    rand = random_field(100, seed=4)
    field = GaussianField(
        torch.cat([corner.means, rand.means], 1),
        torch.cat([corner.colors, rand.colors]),
        torch.cat([corner.opacities, rand.opacities]),
        torch.cat([corner.scales, rand.scales]),
        torch.cat([corner.quats, rand.quats]),
    )
    path = path_for()
    images = {ts: render(field, path, tile_size=ts) for ts in (16, 8, 5)}
    assert_matches_reference(images[16], field, path)
    for ts in (8, 5):
        assert float((images[ts].rgb - images[16].rgb).abs().max()) < 1e-6
        assert float((images[ts].alpha - images[16].alpha).abs().max()) < 1e-6
        solid = images[16].alpha > 0.01
        rel = (images[ts].depth - images[16].depth).abs() / images[16].depth.clamp_min(1e-6)
        assert float(rel[solid].max()) < 1e-5


def test_row_bands_give_the_same_image(monkeypatch):
    field = random_field(200, seed=5)
    path = path_for()
    whole = render(field, path, tile_size=8)
    monkeypatch.setattr(R, "MAX_PAIRS_PER_BAND", 40)  # forces many tile-row bands
    banded = render(field, path, tile_size=8)
    assert torch.equal(whole.rgb, banded.rgb) and torch.equal(whole.alpha, banded.alpha)


def test_projection_in_blocks_gives_the_same_image(monkeypatch):
    field = random_field(200, seed=18)
    path = path_for(moved_camera())
    whole = render(field, path)
    monkeypatch.setattr(R, "PROJECT_BLOCK", 37)  # several blocks, the last one short
    blocks = render(field, path)
    assert torch.equal(whole.rgb, blocks.rgb) and torch.equal(whole.depth, blocks.depth)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    monkeypatch.setattr(R, "_COMPILE_STATE", {})
    monkeypatch.setattr(R, "_COMPILED", {})

    def broken_compile(fn, **kw):
        def run(*args):
            raise RuntimeError("no C++ compiler")  # like a lazy compile failing at the first call

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    field = random_field(60, seed=19)
    path = path_for()
    eager = render(field, path)
    auto = R.render_gaussians(field, path, "torch", compile="auto")
    assert not auto.compiled and torch.equal(auto.rgb, eager.rgb)
    status = R.compile_status("cpu")
    assert status["state"] == "failed" and "no C++ compiler" in status["error"]
    with pytest.raises(RuntimeError, match="compile=False"):
        R._Runner(R.blend_chunk, True, torch.device("cpu"))(*_tiny_blend_args())


def _tiny_blend_args():
    s, b, k = 4, 2, 3
    ar = torch.arange(s, dtype=torch.float32)
    table = torch.zeros(2, 12)
    table[1, 5] = -math.inf
    return torch.stack([ar.repeat(s), ar.repeat_interleave(s)]), table, torch.ones(b, k, dtype=torch.long), torch.zeros(b, 2), torch.ones(b, s * s), torch.zeros(b, 4, s * s)


# ------------------------------------------------------------------------------------ conventions
def test_pixel_centre_convention():
    path = path_for()
    on = render(point_field([at_pixel(5, 7)]), path)
    peak = int(on.alpha[0].argmax())
    assert divmod(peak, W) == (7, 5), "a Gaussian projecting to (5, 7) peaks at column 5, row 7"
    assert float(on.alpha[0, 7, 5]) == pytest.approx(MAX_ALPHA32, abs=1e-6)

    half = render(point_field([at_pixel(5.5, 7)]), path)
    a = half.alpha[0]
    assert float(a[7, 5]) == pytest.approx(float(a[7, 6]), rel=1e-4), "at x = 5.5 columns 5 and 6 share equally"
    assert float(a[7, 5]) > 0.5 and float(a[7, 4]) < float(a[7, 5]) and float(a[7, 7]) < float(a[7, 6])


def test_opacity_clamp_and_alpha_threshold():
    path = path_for()
    # Σ₂ ≈ 0.3 I for a tiny Gaussian: σ = d² / 0.6, so α(d=1) = op·e^{-1/0.6} and α(d=2) = e^{-6.67} < 1/255
    one = render(point_field([at_pixel(20, 20)], opacity=1.0), path)
    a = one.alpha[0]
    assert float(a[20, 20]) == pytest.approx(MAX_ALPHA32, abs=1e-7), "α is clamped to 0.99"
    assert float(a[20, 21]) == pytest.approx(math.exp(-1 / 0.6), rel=1e-4)
    assert float(a[20, 22]) == 0.0 and float(a[22, 20]) == 0.0, "α < 1/255 is skipped, not just small"
    assert float(one.rgb[0, 20, 20, 0]) == pytest.approx(MAX_ALPHA32, abs=1e-7)
    assert float(one.depth[0, 20, 20]) == pytest.approx(2.0, rel=1e-6)

    faint = render(point_field([at_pixel(20, 20)], opacity=0.9 / 255), path)
    assert float(faint.alpha.max()) == 0.0, "opacity below 1/255 never reaches the threshold"
    weak = render(point_field([at_pixel(20, 20)], opacity=1.5 / 255), path)
    assert float(weak.alpha[0, 20, 20]) == pytest.approx(1.5 / 255, rel=1e-5)
    assert int((weak.alpha[0] > 0).sum()) == 1, "only the centre pixel keeps α ≥ 1/255"


def _wall(z: float, width: int, height: int, k: torch.Tensor) -> list:
    """Tiny Gaussians one per pixel (and 2 px beyond the borders) at depth z."""
    return [at_pixel(u, v, z, k) for v in range(-2, height + 2) for u in range(-2, width + 2)]


def test_early_termination_hides_what_is_behind():
    w, h = 24, 16
    k = torch.tensor([[30.0, 0.0, 11.5], [0.0, 30.0, 7.5], [0.0, 0.0, 1.0]])
    path = path_for(k=k, width=w, height=h)
    pts = [p for z in (2.0, 2.01, 2.02) for p in _wall(z, w, h, k)]  # three opaque layers: every pixel saturates
    wall = point_field(pts, scale=0.05, colors=[(0.0, 0.0, 1.0)] * len(pts))
    red = point_field([at_pixel(12, 8, 5.0, k)], scale=0.5, colors=[(1.0, 0.0, 0.0)])
    behind = GaussianField(*(torch.cat([getattr(wall, n), getattr(red, n)], int(n == "means")) for n in ("means", "colors", "opacities", "scales", "quats")))
    front = render(wall, path)
    both = render(behind, path)
    assert torch.equal(front.rgb, both.rgb) and torch.equal(front.alpha, both.alpha)
    assert float(both.rgb[..., 0].max()) == 0.0, "the red Gaussian behind contributes nothing"
    # the Gaussian that would take T to <= 1e-4 is not added, so alpha stays below 1 - 1e-4
    assert float(front.alpha.max()) <= 1 - 1e-4 + 1e-7
    assert float(front.alpha.min()) > 0.999
    assert_matches_reference(front, wall, path)


def test_occlusion_does_not_depend_on_input_order():
    field = random_field(250, seed=6)
    perm = torch.randperm(field.num_gaussians, generator=torch.Generator().manual_seed(7))
    shuffled = GaussianField(field.means[:, perm], field.colors[perm], field.opacities[perm], field.scales[perm], field.quats[perm])
    path = path_for(moved_camera())
    a, b = render(field, path), render(shuffled, path)
    assert torch.allclose(a.rgb, b.rgb, atol=1e-7, rtol=0) and torch.allclose(a.alpha, b.alpha, atol=1e-7, rtol=0)


def test_float64_field_gives_float32_output():
    field = random_field(80, seed=22)
    as64 = field.to(dtype=torch.float64)
    a, b = render(field, path_for()), render(as64, path_for())
    assert b.rgb.dtype == b.alpha.dtype == b.depth.dtype == torch.float32
    assert float((a.rgb - b.rgb).abs().max()) < 1e-6


def test_background_fills_what_alpha_leaves():
    field = random_field(100, seed=8)
    path = path_for()
    plain = render(field, path)
    bg = render(field, path, background=(0.2, 0.5, 1.0))
    expect = plain.rgb + (1 - plain.alpha)[..., None] * torch.tensor([0.2, 0.5, 1.0])
    assert torch.allclose(bg.rgb, expect, atol=1e-6)
    assert torch.equal(bg.alpha, plain.alpha)


# --------------------------------------------------------------------------------------- culling
def test_culled_gaussians_contribute_nothing():
    base = random_field(150, seed=9)
    extra_means = torch.tensor(
        [
            [0.0, 0.0, -3.0],  # behind the camera
            [0.0, 0.0, 0.005],  # in front of the camera but closer than the near plane
            [400.0, 0.0, 4.0],  # far off-screen to the right
            [0.0, -300.0, 4.0],  # far above
            [-50.0, 30.0, 2.0],  # off-screen at an angle beyond the Jacobian clamp
        ]
    )
    n = extra_means.shape[0]
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1
    field = GaussianField(
        torch.cat([base.means, extra_means[None]], 1),
        torch.cat([base.colors, torch.ones(n, 3)]),
        torch.cat([base.opacities, torch.ones(n)]),
        torch.cat([base.scales, torch.full((n, 3), 0.3)]),
        torch.cat([base.quats, quats]),
    )
    path = path_for()
    a, b = render(base, path), render(field, path)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.alpha, b.alpha) and torch.equal(a.depth, b.depth)


def test_camera_looking_away_sees_nothing():
    field = random_field(100, seed=10)
    away = torch.eye(4)
    away[0, 0], away[2, 2] = -1.0, -1.0  # turned 180° about y: everything is behind
    result = render(field, path_for(away))
    assert result.backend == "torch"
    assert float(result.alpha.abs().max()) == 0.0 and float(result.rgb.abs().max()) == 0.0 and float(result.depth.abs().max()) == 0.0


# ------------------------------------------------------------------------------- frames, progress
def _moving_field(frames: int) -> GaussianField:
    base = random_field(80, seed=11)
    shift = torch.linspace(0, 0.6, frames)[:, None, None] * torch.tensor([1.0, 0.3, 0.0])
    gen = torch.Generator().manual_seed(12)
    return GaussianField(
        base.means + shift,
        torch.rand(frames, 80, 3, generator=gen),
        torch.rand(frames, 80, generator=gen) * 0.9 + 0.1,
        base.scales,
        base.quats,
    )


def test_time_varying_field_renders_frame_t_through_camera_t():
    frames = 3
    field = _moving_field(frames)
    w2c = torch.eye(4).repeat(frames, 1, 1)
    w2c[:, 0, 3] = torch.tensor([0.0, -0.1, -0.2])
    path = CameraPath(K[None].repeat(frames, 1, 1), w2c, W, H)
    calls = []
    result = render(field, path, progress=calls.append)
    assert calls == [1, 2, 3]
    assert result.rgb.shape == (frames, H, W, 3)
    for t in range(frames):
        g = field.at(t)
        single = GaussianField(g["means"][None], g["colors"], g["opacities"], g["scales"], g["quats"])
        one = render(single, CameraPath(K[None], w2c[t : t + 1], W, H))
        assert torch.equal(result.rgb[t], one.rgb[0]) and torch.equal(result.alpha[t], one.alpha[0])
    assert_matches_reference(result, field, path, frame=2)


def test_static_field_through_every_camera():
    field = random_field(100, seed=13)
    w2c = torch.stack([torch.eye(4), moved_camera()])
    path = CameraPath(K[None].repeat(2, 1, 1), w2c, W, H)
    result = render(field, path)
    for t in range(2):
        one = render(field, CameraPath(K[None], w2c[t : t + 1], W, H))
        assert torch.equal(result.rgb[t], one.rgb[0])


def test_frame_count_mismatch_is_an_error():
    field = _moving_field(3)
    with pytest.raises(ValueError, match="3 time steps.*2 frames"):
        render(field, path_for(frames=2))


def test_progress_that_raises_stops_the_render():
    field = random_field(50, seed=14)
    calls = []

    def cancel(done):
        calls.append(done)
        raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        render(field, path_for(frames=4), progress=cancel)
    assert calls == [1]


def test_invalid_arguments():
    field = random_field(10, seed=15)
    with pytest.raises(ValueError, match="near"):
        render(field, path_for(), near=0.0)
    with pytest.raises(ValueError, match="backend"):
        R.render_gaussians(field, path_for(), "cuda")
    with pytest.raises(ValueError, match="tile_size"):
        render(field, path_for(), tile_size=0)
    with pytest.raises(ValueError, match="background"):
        render(field, path_for(), background=(1.0, 0.0))
    with pytest.raises(ValueError, match="compile"):
        R.render_gaussians(field, path_for(), "torch", compile="yes")
    huge = CameraPath(K[None], torch.eye(4)[None], 16384, 8192)  # 128 M pixels: over the limit
    with pytest.raises(ValueError, match="M pixels"):
        render(field, huge)


# ----------------------------------------------------------------------------------------- gsplat
needs_no_gsplat = pytest.mark.skipif(R.gsplat_available(), reason="gsplat works on this machine")
needs_gsplat = pytest.mark.skipif(not R.gsplat_available(), reason="needs CUDA and a working gsplat")


@needs_no_gsplat
def test_gsplat_requested_without_it_explains_and_auto_uses_torch():
    field = random_field(20, seed=16)
    with pytest.raises(RuntimeError, match="backend='torch'") as err:
        R.render_gaussians(field, path_for(), "gsplat")
    reason = str(err.value)
    assert ("CUDA" in reason) or ("import gsplat" in reason) or ("test render" in reason)
    result = R.render_gaussians(field, path_for(), "auto", compile=False)
    assert result.backend == "torch"


def test_gsplat_is_not_imported_by_the_module():
    import subprocess
    import sys

    code = "import sys, vid4d.py.render; assert 'gsplat' not in sys.modules, 'imported at module import'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _stand_in_gsplat(calls: list):
    """A fake ``gsplat`` module whose ``rasterization`` renders with the torch backend in gsplat's conventions.

    It undoes the +0.5 principal-point shift (gsplat's pixel centres are at +0.5) and returns gsplat's
    output layout, so the gsplat path's plumbing can be checked without CUDA.
    """
    import types

    def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kw):
        calls.append(kw)
        assert kw["render_mode"] == "RGB+ED" and kw["rasterize_mode"] == "classic" and kw["sh_degree"] is None
        assert kw["eps2d"] == 0.3 and viewmats.shape == (1, 4, 4) and Ks.shape == (1, 3, 3)
        k = Ks[0].clone()
        k[0, 2] -= 0.5
        k[1, 2] -= 0.5
        field = GaussianField(means[None], colors, opacities, scales, quats)
        r = R.render_gaussians(field, CameraPath(k[None], viewmats, width, height), "torch", near=kw["near_plane"], compile=False)
        return torch.cat([r.rgb, r.depth[..., None]], -1), r.alpha[..., None], {}

    return types.SimpleNamespace(rasterization=rasterization)


def test_gsplat_path_plumbing_with_a_stand_in(monkeypatch):
    import sys

    calls = []
    monkeypatch.setitem(sys.modules, "gsplat", _stand_in_gsplat(calls))
    monkeypatch.setattr(R, "_GSPLAT_DEVICE", "cpu")
    monkeypatch.setattr(R, "_GSPLAT_PROBE", {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert R.gsplat_available()
    field = random_field(150, seed=20)
    w2c = torch.stack([torch.eye(4), moved_camera()])
    path = CameraPath(K[None].repeat(2, 1, 1), w2c, W, H)
    gs = R.render_gaussians(field, path, "gsplat", background=(0.0, 1.0, 0.0))
    th = render(field, path, background=(0.0, 1.0, 0.0))
    assert gs.backend == "gsplat" and not gs.compiled and calls[-1]["tile_size"] == 16
    assert torch.allclose(gs.rgb, th.rgb, atol=1e-6) and torch.allclose(gs.alpha, th.alpha, atol=1e-6)
    assert torch.allclose(gs.depth, th.depth, atol=1e-5)
    assert R.render_gaussians(field, path, "auto").backend == "gsplat"
    skewed = K.clone()
    skewed[0, 1] = 1.0
    assert R.render_gaussians(field, path_for(k=skewed), "auto", compile=False).backend == "torch", "gsplat has no skew"


def test_gsplat_probe_reports_why(monkeypatch):
    import sys
    import types

    monkeypatch.setattr(R, "_GSPLAT_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "gsplat", None)  # makes `import gsplat` raise ImportError
    monkeypatch.setattr(R, "_GSPLAT_PROBE", {})
    assert not R.gsplat_available() and "import gsplat failed" in R._gsplat_probe()[1]

    def broken(*args, **kw):
        raise RuntimeError("nvcc failed")

    monkeypatch.setitem(sys.modules, "gsplat", types.SimpleNamespace(rasterization=broken))
    monkeypatch.setattr(R, "_GSPLAT_PROBE", {})
    assert not R.gsplat_available()
    with pytest.raises(RuntimeError, match="nvcc failed.*backend='torch' works everywhere"):
        R.render_gaussians(random_field(10, seed=21), path_for(), "gsplat")


@needs_gsplat
@pytest.mark.parametrize("max_opacity", [0.35, 1.0])
def test_gsplat_and_torch_backends_agree(max_opacity):
    # Below opacity ~0.353 everything with α ≥ 1/255 lies inside gsplat's footprint box (3σ or the
    # opacity-aware one), so the two agree to float precision. Above it, gsplat decides per 16-px tile
    # and may cut a fringe of α < 0.011 beyond 3σ that the torch backend keeps: small differences.
    base = random_field(400, seed=17)
    field = GaussianField(base.means, base.colors, base.opacities * max_opacity, base.scales, base.quats).to("cuda")
    w2c = torch.stack([torch.eye(4), moved_camera()])
    path = CameraPath(K[None].repeat(2, 1, 1), w2c, W, H).to("cuda")
    gs = R.render_gaussians(field, path, "gsplat")
    th = R.render_gaussians(field, path, "torch", compile=False)
    assert gs.backend == "gsplat" and th.backend == "torch"
    assert gs.rgb.device.type == "cuda" and gs.rgb.dtype == torch.float32
    diff = (gs.rgb - th.rgb).abs()
    tight = max_opacity < 0.353
    assert float(diff.max()) < (1e-3 if tight else 1.5e-2) and float(diff.mean()) < (1e-5 if tight else 1e-3)
    assert float((gs.alpha - th.alpha).abs().mean()) < (1e-5 if tight else 1e-3)
    solid = (gs.alpha > 0.5) & (th.alpha > 0.5)
    assert float(((gs.depth - th.depth).abs() / th.depth.clamp_min(1e-6))[solid].max()) < 1e-2
    assert R.render_gaussians(field, path, "auto").backend == "gsplat"


def test_rendered_video_checks_its_clips():
    from vid4d.py.render import RenderResult, RenderedVideo, join_renders

    def result(t, h=4, w=5, a=1.0):
        return RenderResult(torch.rand(t, h, w, 3), torch.full((t, h, w), a), torch.ones(t, h, w), "torch")

    out = join_renders([result(3), result(3, a=0.2)], hole_threshold=0.5)
    assert out.clip_frames == (3, 3) and out.cameras == 2 and out.holes[:3].sum() == 0 and bool((out.holes[3:] == 1).all())
    over = out.overlay()
    assert torch.equal(over[:3], out.rgb[:3]) and torch.allclose(over[3:, ..., 1], 0.5 * out.rgb[3:, ..., 1])
    grid = join_renders([result(3), result(3)], layout="grid")
    assert grid.rgb.shape == (3, 4, 10, 3) and grid.clip_frames == (3,)
    with pytest.raises(ValueError, match="sum to 5"):
        RenderedVideo(out.rgb, out.alpha, out.depth, out.holes, (3, 2), cameras=2)
    with pytest.raises(ValueError, match="one clip per camera"):
        RenderedVideo(out.rgb, out.alpha, out.depth, out.holes, (6,), cameras=2)
    with pytest.raises(ValueError, match="hole_threshold"):
        join_renders([result(3)], hole_threshold=float("nan"))
