"""Softmax splatting: an independent per-pixel reference, exactness cases, gradients, kernels, animation."""

import math

import numpy as np
import pytest
import torch

from vid4d.py import splat
from vid4d.py.splat import animate, fill_holes, softmax_splat, splat_holes, splat_weights


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Only test_compiled_kernel_equals_eager compiles (compile=True overrides this): keeps the file fast."""
    monkeypatch.setenv(splat.COMPILE_ENV, "0")


def reference(inp, flow, metric, mode):
    """Per-pixel loops in numpy (float64), written from the definition: out = Σ w I / Σ w, w = b·g(Z),
    with the soft weights shifted by the frame's maximum metric (the library's documented convention)."""
    inp, flow = inp.double().numpy(), flow.double().numpy()
    z = None if metric is None else metric.double().numpy()
    b_, c, h, w = inp.shape
    out = np.zeros((b_, c, h, w))
    holes = np.ones((b_, h, w), bool)
    for b in range(b_):
        num = np.zeros((c, h, w))
        den = np.zeros((h, w))
        zmax = max((z[b, 0, y, x] for y in range(h) for x in range(w) if np.isfinite(z[b, 0, y, x])), default=0.0) if z is not None else 0.0
        for y in range(h):
            for x in range(w):
                tx, ty = x + flow[b, 0, y, x], y + flow[b, 1, y, x]
                zz = z[b, 0, y, x] if z is not None else 0.0
                if not (math.isfinite(tx) and math.isfinite(ty) and math.isfinite(zz)):
                    continue
                for qy in (math.floor(ty), math.floor(ty) + 1):
                    for qx in (math.floor(tx), math.floor(tx) + 1):
                        if not (0 <= qx < w and 0 <= qy < h):
                            continue
                        bil = (1 - abs(tx - qx)) * (1 - abs(ty - qy))
                        g = {"sum": 1.0, "avg": 1.0, "linear": zz, "soft": math.exp(zz - zmax)}[mode]
                        num[:, qy, qx] += bil * g * inp[b, :, y, x]
                        den[qy, qx] += bil * g
        covered = den > 0
        holes[b] = ~covered
        out[b] = num if mode == "sum" else np.where(covered, num / np.where(covered, den, 1), 0)
    return torch.from_numpy(out), torch.from_numpy(holes)[:, None]


def _random_case(seed=0, b=2, c=3, h=7, w=9):
    g = torch.Generator().manual_seed(seed)
    inp = torch.rand(b, c, h, w, generator=g)
    flow = torch.randn(b, 2, h, w, generator=g) * 3  # many targets leave the image
    metric = torch.randn(b, 1, h, w, generator=g) * 2
    metric[:, :, :3, :3] = 0.5  # ties
    return inp, flow, metric


@pytest.mark.parametrize("mode", splat.MODES)
@pytest.mark.parametrize("kernel", ["scatter", "native", "planes", "sparse"])
def test_matches_per_pixel_reference(mode, kernel):
    inp, flow, metric = _random_case()
    if mode == "linear":
        metric = metric.abs()
    flow[0, :, 2, 3] = float("nan")  # skipped source
    flow[1, 0, 4, 4] = 1e30  # finite but absurd: dropped, no integer overflow
    ref, ref_holes = reference(inp, flow, metric, mode)
    out, holes = softmax_splat(inp, flow, metric, mode, return_holes=True, kernel=kernel)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(holes, ref_holes)


def test_large_metric_is_stable_and_shift_invariant():
    inp, flow, metric = _random_case(1)
    base = softmax_splat(inp, flow, metric)
    for offset in (300.0, -300.0):  # exp(±300) is far outside float32; float32 rounding of Z+300 is ~3e-5
        shifted = softmax_splat(inp, flow, metric + offset)
        assert torch.isfinite(shifted).all()
        torch.testing.assert_close(shifted, base, atol=1e-4, rtol=1e-4)
    steep = metric * 5  # a ~60-wide metric range: still finite and equal to the float64 reference
    torch.testing.assert_close(softmax_splat(inp, flow, steep).double(), reference(inp, flow, steep, "soft")[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", splat.MODES)
def test_zero_motion_is_identity(mode):
    inp, _, metric = _random_case(2)
    out, holes = softmax_splat(inp, torch.zeros(2, 2, 7, 9), metric.abs(), mode, return_holes=True)
    assert not holes.any()
    if mode in ("sum", "avg"):
        assert torch.equal(out, inp)
    else:  # one contributor: (I·w)/w, exact up to one float32 rounding
        torch.testing.assert_close(out, inp, atol=0, rtol=2e-7)


def test_integer_shift_is_exact_with_the_strip_as_holes():
    inp = torch.rand(1, 3, 6, 8)
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0], flow[:, 1] = 2.0, -1.0
    out, holes = softmax_splat(inp, flow, None, "avg", return_holes=True)
    assert torch.equal(out[..., :5, 2:], inp[..., 1:, :6])
    soft, soft_holes = softmax_splat(inp, flow, torch.randn(1, 1, 6, 8), "soft", return_holes=True)
    torch.testing.assert_close(soft, out, atol=0, rtol=2e-7)
    assert torch.equal(soft_holes, holes)
    expect = torch.zeros(1, 1, 6, 8, dtype=torch.bool)
    expect[..., :, :2] = True
    expect[..., 5, :] = True
    assert torch.equal(holes, expect)
    assert torch.equal(out[expect.expand_as(out)], torch.zeros(int(expect.sum()) * 3))
    assert torch.equal(splat_holes(flow), expect)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(3)
    inp = torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    # keep targets off integer positions (the bilinear kernel is not differentiable there)
    flow = (torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64) * 1.6 - 0.8 + 0.05).requires_grad_()
    metric = torch.randn(1, 1, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    for mode in ("soft", "avg", "sum"):
        assert torch.autograd.gradcheck(lambda i, f, z: softmax_splat(i, f, z, mode), (inp, flow, metric), eps=1e-6, atol=1e-5)
    out = softmax_splat(inp, flow, metric)
    assert out.dtype == torch.float64


@pytest.mark.slow  # torch.compile takes 20-60 s on a loaded 2-core CPU
def test_compiled_kernel_equals_eager():
    inp, flow, metric = _random_case(4, b=3, c=3, h=12, w=16)
    eager = softmax_splat(inp, flow, metric, kernel="scatter")
    compiled, holes = softmax_splat(inp, flow, metric, kernel="compiled", compile=True, return_holes=True)
    assert splat.compile_status() == "compiled"
    torch.testing.assert_close(compiled, eager, atol=1e-6, rtol=1e-5)
    assert torch.equal(holes, softmax_splat(inp, flow, metric, kernel="scatter", return_holes=True)[1])


def test_compile_off_and_failure_fall_back(monkeypatch):
    inp, flow, metric = _random_case(5)
    eager = softmax_splat(inp, flow, metric, kernel="scatter")
    monkeypatch.setenv(splat.COMPILE_ENV, "0")
    gpu = torch.device("cuda")  # (only the device type is read)
    assert splat._pick_kernel("auto", 3, torch.float32, False, "auto", gpu) == "scatter"
    # On the CPU the native C kernel where it builds, else planes; never torch.compile
    assert splat._pick_kernel("auto", 3, torch.float32, False, "auto", inp.device) == ("native" if splat.native_available() else "planes")
    monkeypatch.delenv(splat.COMPILE_ENV)
    monkeypatch.setattr(splat, "_COMPILE_STATE", {})
    monkeypatch.setattr(splat, "_COMPILED", {"cpu": lambda *a: (_ for _ in ()).throw(RuntimeError("no compiler"))})
    with pytest.warns(RuntimeWarning, match="compile"):
        out = softmax_splat(inp, flow, metric, kernel="compiled")
    assert torch.equal(out, eager) and splat.compile_status() == "failed"


def test_chunking_gives_the_same_result(monkeypatch):
    inp, flow, metric = _random_case(6, b=5)
    whole = softmax_splat(inp, flow, metric, kernel="scatter")
    monkeypatch.setattr(splat, "CHUNK_ELEMENTS", 1)
    assert torch.equal(softmax_splat(inp, flow, metric, kernel="scatter"), whole)


def test_splat_weights_is_mean_euclidean_norm():
    disp = torch.zeros(2, 3, 4, 2)
    disp[0, ..., 0], disp[0, ..., 1] = 3.0, 4.0  # |F| = 5 (sqrt((u+v)^2) would say 7)
    disp[1, ..., 0] = -1.0
    torch.testing.assert_close(splat_weights(disp), torch.full((3, 4), 3.0))
    with pytest.raises(ValueError, match="displacement"):
        splat_weights(torch.zeros(2, 3, 4))


def test_fill_holes():
    img = torch.rand(1, 3, 9, 11)
    holes = torch.zeros(1, 1, 9, 11, dtype=torch.bool)
    holes[..., 2:5, 3:9] = True
    out = fill_holes(img * ~holes, holes)
    assert torch.equal(out[~holes.expand_as(out)], img[~holes.expand_as(img)])
    assert torch.isfinite(out).all() and (out[holes.expand_as(out)] > 0).all()
    const = fill_holes(torch.full((1, 1, 9, 11), 0.3) * ~holes, holes)
    torch.testing.assert_close(const, torch.full((1, 1, 9, 11), 0.3))


def test_animate_textured_image_small_oscillation():
    h, w, t = 48, 64, 12
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    image = torch.stack([0.5 + 0.5 * torch.sin(xx / 3), 0.5 + 0.5 * torch.cos(yy / 4), (xx + yy) / (h + w)], -1)
    phase = torch.arange(t).float()[:, None, None] * 2 * math.pi / t
    amp = 1.5 * torch.sin(xx / 20 + yy / 15)[None]
    disp = torch.stack([amp * torch.sin(phase + xx / 30), 0.7 * amp * torch.cos(phase)], -1)
    metric = splat.WEIGHT_RANGE * splat_weights(disp) / splat_weights(disp).max()
    seen = []
    frames, holes = animate(image, disp, metric, chunk_frames=5, progress=seen.append)
    assert frames.shape == (t, h, w, 3) and holes.shape == (t, h, w)
    assert torch.isfinite(frames).all() and float(holes.float().mean()) < 0.03
    assert seen == [5, 10, 12]
    frames2, _ = animate(image, disp, None, levels=3)
    assert torch.isfinite(frames2).all()


def test_animate_cancel():
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        animate(torch.rand(8, 8, 3), torch.zeros(6, 8, 8, 2), chunk_frames=2, cancel=cancel)


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.rand(1, 3, 4, 5), torch.zeros(1, 2, 4, 6), None, "avg"), "flow"),
        ((torch.rand(1, 3, 4, 5), torch.zeros(1, 2, 4, 5), None, "soft"), "metric"),
        ((torch.rand(1, 3, 4, 5), torch.zeros(1, 2, 4, 5), torch.zeros(1, 1, 4, 4), "soft"), "metric"),
        ((torch.rand(1, 3, 4, 5), torch.zeros(1, 2, 4, 5), -torch.ones(1, 1, 4, 5), "linear"), ">= 0"),
        ((torch.rand(1, 3, 4, 5), torch.zeros(1, 2, 4, 5), None, "max"), "mode"),
        ((torch.rand(0, 3, 4, 5), torch.zeros(0, 2, 4, 5), None, "avg"), "empty"),
        ((torch.rand(1, 3, 0, 5), torch.zeros(1, 2, 0, 5), None, "avg"), "empty"),
    ],
)
def test_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        softmax_splat(*args)


def test_animate_bad_inputs():
    with pytest.raises(ValueError, match="displacement"):
        animate(torch.rand(8, 8, 3), torch.zeros(3, 8, 9, 2))
    with pytest.raises(ValueError, match="image"):
        animate(torch.rand(0, 8, 3), torch.zeros(3, 0, 8, 2))
