"""The fast paths of issue 16 against slow references: each would fail if its optimisation broke the result.

- PointRegularizer: the solver (k-d tree kNN, block-diagonal Laplacian, batched products, chunked polar
  rotations on a thread pool) against today's solver kept in tests/reference_regularizer.py;
- softmax splatting: the native C kernel (frames, row bands or channel groups on threads; its build, cache and
  fallbacks), the planes kernel (corners, planes and output in phases on threads) and the compiled kernel (frame by
  frame in two bands on threads, at batch 4) against the eager scatter;
- dense tracking: the re-anchoring's subset evaluations and helpers against their full-frame forms, the
  depth sampled on a thread of its own against the serial loop;
- validation: the finiteness scan by sums against the elementwise test.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import reference_regularizer as ref
from vid4d.py import native, splat
from vid4d.py import points as pts
from vid4d.py import tracking as tr
from vid4d.py.camera import pixel_grid
from vid4d.py.scene import sample_scene

# --- PointRegularizer ------------------------------------------------------------------------------------


def _noisy_scene(frames=8, width=48, height=32):
    scene = sample_scene(frames, width, height, seed=1)
    tracks = scene.tracks()
    truth = tracks.xyz().reshape(frames, -1, 3)
    vis = tracks.visibility.reshape(frames, -1)
    g = torch.Generator().manual_seed(0)
    noisy = truth * (1 + 0.02 * torch.randn(truth.shape[:2], generator=g))[..., None]
    noisy[:, ::97] += 0.3  # a few outliers
    return truth, noisy, vis


@pytest.mark.parametrize("max_anchors", [100_000, 400], ids=["all_points", "anchors"])
def test_regulariser_matches_todays_solver(max_anchors):
    truth, noisy, vis = _noisy_scene()
    info_new, info_ref = {}, {}
    new = pts.regularize_points(noisy, vis, k=8, iterations=6, max_anchors=max_anchors, info=info_new)
    old = ref.regularize_points_reference(noisy, vis, k=8, iterations=6, max_anchors=max_anchors, info=info_ref)
    assert (new - old).abs().max() < 2e-4 * truth.abs().max()
    for key in ("objective_before", "objective_after", "data_scale", "outlier_fraction"):
        assert info_new[key] == pytest.approx(info_ref[key], rel=1e-3, abs=1e-6), key
    assert float((new - truth).norm(dim=-1)[vis].median()) < float((noisy - truth).norm(dim=-1)[vis].median())


def test_regulariser_without_smoothness_and_float_visibility_matches_todays_solver():
    truth, noisy, vis = _noisy_scene(frames=5)
    conf = vis.float() * 0.8
    new = pts.regularize_points(noisy, conf, k=6, smoothness=0.0, iterations=4, max_anchors=300)
    old = ref.regularize_points_reference(noisy, conf, k=6, smoothness=0.0, iterations=4, max_anchors=300)
    assert (new - old).abs().max() < 2e-4 * truth.abs().max()


def test_knn_is_exact_and_excludes_the_point_itself():
    g = torch.Generator().manual_seed(3)
    points = torch.rand(600, 3, generator=g, dtype=torch.float64)
    points[5] = points[6]  # a duplicate: its neighbour at distance 0 is the other copy, never itself
    index, dist = pts.knn(points, 7)
    brute = torch.cdist(points, points)
    brute.fill_diagonal_(float("inf"))
    want, order = brute.topk(7, largest=False)
    assert torch.allclose(dist, want) and (index != torch.arange(600)[:, None]).all()
    assert index[5, 0] == 6 and index[6, 0] == 5
    queries = torch.rand(50, 3, generator=g, dtype=torch.float64)
    index, dist = pts.knn(points, 3, queries=queries)
    assert torch.allclose(dist, torch.cdist(queries, points).topk(3, largest=False).values)


def test_chunked_polar_rotation_is_kabsch():
    g = torch.Generator().manual_seed(4)
    rot = torch.linalg.qr(torch.randn(300, 3, 3, generator=g, dtype=torch.float64)).Q
    rot = rot * torch.linalg.det(rot)[:, None, None]  # proper rotations
    sym = torch.randn(300, 3, 3, generator=g, dtype=torch.float64)
    cov = rot @ (sym @ sym.transpose(1, 2) + 0.1 * torch.eye(3, dtype=torch.float64))  # polar factor: rot
    cov[:20] = rot[:20] @ torch.diag(torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64))  # rank 2 (planar neighbourhoods)
    with pts._workers() as pool:
        out = pts._polar_rotation(cov.float(), chunk=64, pool=pool)
    u, _, vh = torch.linalg.svd(cov)
    d = torch.linalg.det(u @ vh)
    kabsch = torch.cat([u[..., :2], u[..., 2:] * d[:, None, None]], dim=-1) @ vh
    assert torch.allclose(out.double(), kabsch, atol=1e-4)
    assert torch.allclose(out.double(), rot, atol=1e-4)


# --- softmax splatting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 9], ids=["few_channels", "many_channels"])
def test_planes_kernel_on_threads_equals_the_scatter(channels):
    g = torch.Generator().manual_seed(11)
    inp = torch.rand(2, channels, 64, 80, generator=g)
    flow = torch.randn(2, 2, 64, 80, generator=g) * 4
    metric = torch.randn(2, 1, 64, 80, generator=g) * 2
    metric[1] += 30.0  # a per-frame shift
    flow[0, 1, 5, 6] = float("nan")
    flow[0, 0, 9, 9] = 1e30
    flow[1, :, 20:30, 0] = -1e30  # off the frame on the left and top: clamped into the padding
    flow[1, 0, 40:44, 79] = 2.5  # just off the right edge
    masked = metric.clone()
    masked[1, 0, 3, 3] = float("inf")  # the masked (non-finite) path in frame 1
    dirty = inp.clone()
    dirty[1, 0, 30, 40] = float("nan")  # a non-finite feature: the holes are still 0 where nothing landed
    _equals_the_scatter_on_threads("planes", flow, (("soft", metric, inp), ("soft", masked, inp), ("soft", metric, dirty), ("linear", metric.abs(), inp), ("avg", None, dirty), ("sum", None, inp)))


def _equals_the_scatter_on_threads(kernel, flow, cases):
    """``kernel`` against the scatter for every ``(mode, metric, input)`` at 2, 3 (more workers than the
    weight plane and one channel, in uneven bands) and 1 torch threads: output, zero holes, hole mask."""
    threads = torch.get_num_threads()
    try:
        for count in (2, 3, 1):
            torch.set_num_threads(count)
            for mode, z, x in cases:
                want, want_holes = splat.softmax_splat(x, flow, z, mode, kernel="scatter", return_holes=True)
                out, holes = splat.softmax_splat(x, flow, z, mode, kernel=kernel, return_holes=True)
                torch.testing.assert_close(out, want, atol=2e-6, rtol=1e-5, equal_nan=True)
                assert not out[holes.expand_as(out)].any()
                assert torch.equal(holes, want_holes)
                assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(threads)


def _needs_native():
    if native.compiler() is None:
        pytest.skip("no C compiler on this machine (the planes kernel runs instead)")
    assert splat.native_available(), native.status("splat")  # a compiler that cannot build it is a bug


@pytest.mark.parametrize(
    "batch, channels",
    [(2, 3), (1, 3), (3, 1), (1, 9), (1, 20), (2, 37)],
    ids=["frames_side_by_side", "row_bands", "one_channel_odd_batch", "nine_channels", "channel_groups", "groups_of_a_frame_each"],
)
def test_native_kernel_on_threads_equals_the_scatter(batch, channels):
    # Every way the frames are shared out: whole frames per worker, bands of source rows with their
    # accumulators summed, groups of channels side by side (20 = 16 + 4, 37 = 16 + 16 + 5 channels).
    _needs_native()
    g = torch.Generator().manual_seed(5)
    inp = torch.rand(batch, channels, 64, 80, generator=g)
    flow = torch.randn(batch, 2, 64, 80, generator=g) * 4
    metric = torch.randn(batch, 1, 64, 80, generator=g) * 2
    metric[-1] += 30.0  # a per-frame shift
    flow[0, 1, 5, 6] = float("nan")
    flow[0, 0, 9, 9] = 1e30
    flow[-1, :, 20:30, 0] = -1e30  # off the frame on the left and top: clamped into the padding
    flow[-1, 0, 40:44, 79] = 2.5  # just off the right edge
    flow[0, :, 50, 50:60] = float("inf")
    masked = metric.clone()
    masked[-1, 0, 3, 3] = float("inf")  # the masked (non-finite metric) path
    masked[0, 0, 7, 7:9] = -float("inf")  # e^(-inf) would be 0; a non-finite metric skips the source
    dirty = inp.clone()
    dirty[-1, 0, 30, 40] = float("nan")  # a non-finite feature: the holes are still 0 where nothing landed
    _equals_the_scatter_on_threads("native", flow, (("soft", metric, inp), ("soft", masked, inp), ("soft", metric, dirty), ("linear", metric.abs(), inp), ("linear", masked.abs(), inp), ("avg", None, dirty), ("sum", None, inp)))


def test_native_kernel_keeps_non_contiguous_and_half_inputs():
    _needs_native()
    g = torch.Generator().manual_seed(2)
    inp = torch.rand(2, 4, 40, 50, generator=g)
    flow = torch.randn(2, 2, 40, 50, generator=g) * 3
    metric = torch.randn(2, 1, 40, 50, generator=g)
    want = splat.softmax_splat(inp, flow, metric, kernel="scatter")
    channels_last = inp.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(splat.softmax_splat(channels_last, flow, metric, kernel="native"), want, atol=2e-6, rtol=1e-5)
    half = splat.softmax_splat(inp.half(), flow, metric, kernel="native")
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), splat.softmax_splat(inp.half().float(), flow, metric, kernel="scatter"), atol=2e-3, rtol=1e-3)


_FALLBACK = """
import os, sys, warnings, torch
from vid4d.py import native, splat
torch.manual_seed(0)
x, flow, z = torch.rand(1, 3, 20, 24), torch.randn(1, 2, 20, 24) * 2, torch.randn(1, 1, 20, 24)
want = splat.softmax_splat(x, flow, z, kernel="scatter")
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    out = splat.softmax_splat(x, flow, z, kernel="native")
    splat.softmax_splat(x, flow, z, kernel="native")  # warned once only
    auto = splat._pick_kernel("auto", 3, torch.float32, False, "auto", x.device)
torch.testing.assert_close(out, want, atol=2e-6, rtol=1e-5)
print(auto)
print(native.status("splat"))
print(len([w for w in seen if "native softmax splatting kernel is not available" in str(w.message)]))
"""


@pytest.mark.parametrize("env", [{"CC": "/nowhere/cc"}, {"VID4D_NATIVE": "0"}, {"CC": "false"}], ids=["no_compiler", "switched_off", "compiler_fails"])
def test_native_kernel_falls_back_to_planes(tmp_path, env):
    # A fresh process (the library is loaded once per process): no compiler, the switch off, or a compiler
    # that fails — the planes kernel runs, with one warning when native was asked for by name.
    if env.get("CC") == "false" and shutil.which("false") is None:
        pytest.skip("no `false` command")
    full = {**os.environ, "VID4D_CACHE_DIR": str(tmp_path / "cache"), **env}
    proc = subprocess.run([sys.executable, "-c", _FALLBACK], capture_output=True, text=True, env=full, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    auto, why, warned = proc.stdout.split("\n")[:3]
    assert auto == "planes" and warned == "1"
    assert why.startswith({"CC": "failed" if env.get("CC") == "false" else "no C compiler", "VID4D_NATIVE": "disabled"}[next(iter(env))]), why
    assert not list((tmp_path / "cache").glob("splat-*"))  # nothing half-built left behind


def test_native_build_is_cached_per_source_and_compiler(tmp_path):
    _needs_native()
    cache = tmp_path / "cache"
    script = "from vid4d.py import native; import sys; native.load('splat'); print(native.status('splat'))"
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "VID4D_CACHE_DIR": str(cache)}, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append(proc.stdout.strip())
    built = list(cache.glob("splat-*.so"))
    assert len(built) == 1 and runs[0] == runs[1] == f"loaded {built[0]}"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.slow  # one torch.compile of the band kernel (shared with test_splat's compiled test shape)
def test_compiled_bands_on_threads_equal_eager_at_batch_4(monkeypatch):
    monkeypatch.setenv(splat.COMPILE_ENV, "1")
    g = torch.Generator().manual_seed(7)
    inp = torch.rand(4, 3, 12, 16, generator=g)
    flow = torch.randn(4, 2, 12, 16, generator=g) * 3
    metric = torch.randn(4, 1, 12, 16, generator=g) * 2
    metric[2] = metric[2] + 40.0  # frames with very different maxima: the shift is per frame
    flow[1, :, 3, 4] = float("nan")  # a skipped source
    eager, eager_holes = splat.softmax_splat(inp, flow, metric, kernel="scatter", return_holes=True)
    threads = torch.get_num_threads()
    try:
        for count in (2, 1):  # two bands per frame on two threads, then one band per frame in a row
            torch.set_num_threads(count)
            out, holes = splat.softmax_splat(inp, flow, metric, kernel="compiled", compile=True, return_holes=True)
            torch.testing.assert_close(out, eager, atol=1e-6, rtol=1e-5)
            assert torch.equal(holes, eager_holes)
            assert torch.get_num_threads() == count  # restored after the threads
    finally:
        torch.set_num_threads(threads)
    assert splat.compile_status() == "compiled"


def test_compiled_kernel_without_a_compiler_falls_back_to_eager(tmp_path):
    """A real missing C++ compiler (CXX points nowhere, fresh inductor cache): one warning, eager result."""
    script = """
import warnings, torch
from vid4d.py import splat
g = torch.Generator().manual_seed(0)
inp, flow, z = torch.rand(3, 3, 12, 16, generator=g), torch.randn(3, 2, 12, 16, generator=g), torch.randn(3, 1, 12, 16, generator=g)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = splat.softmax_splat(inp, flow, z, kernel="compiled")
assert splat.compile_status() == "failed", splat.compile_status()
assert any("running eagerly" in str(w.message) for w in caught), [str(w.message) for w in caught]
assert torch.equal(out, splat.softmax_splat(inp, flow, z, kernel="scatter"))
print("fell back")
"""
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache"), splat.COMPILE_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "fell back" in done.stdout, done.stderr[-3000:]


# --- dense tracking --------------------------------------------------------------------------------------


def test_subset_photometric_error_equals_the_full_frame():
    g = torch.Generator().manual_seed(8)
    frame_ref, frame_t = torch.rand(3, 20, 30, generator=g), torch.rand(3, 20, 30, generator=g)
    xy = pixel_grid(20, 30).permute(2, 0, 1) + torch.randn(2, 20, 30, generator=g)
    where = torch.rand(20, 30, generator=g) < 0.1
    where[0, 0] = where[19, 29] = where[10, 0] = True  # corners and an edge
    full = tr._photometric_error(frame_ref, frame_t, xy)
    assert torch.equal(tr._photometric_error(frame_ref, frame_t, xy, where)[where], full[where])
    diff = (frame_ref - tr._at(frame_t, xy)).abs().mean(0)
    assert torch.equal(full, F.avg_pool2d(diff[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0])


def test_inverse_seed_equals_its_definition():
    g = torch.Generator().manual_seed(9)
    grid = pixel_grid(24, 32).permute(2, 0, 1).contiguous()
    disp = torch.randn(2, 24, 32, generator=g) * 2 + torch.tensor([3.0, -1.0])[:, None, None]
    pos = grid + disp
    vis = torch.rand(24, 32, generator=g) > 0.3
    # Splat -disp of the visible tracks to their nearest pixel (mean), elsewhere the fixed point b = -d(q + b).
    back = -disp
    for _ in range(3):
        back = -tr._at(disp, grid + back)
    want = back.clone()
    total, count = torch.zeros(2, 24, 32), torch.zeros(24, 32)
    for y in range(24):
        for x in range(32):
            px, py = pos[:, y, x].tolist()
            if vis[y, x] and 0 <= px <= 31 and 0 <= py <= 23:
                total[:, round(py), round(px)] -= disp[:, y, x]
                count[round(py), round(px)] += 1
    want = torch.where(count > 0, total / count.clamp_min(1), want)
    torch.testing.assert_close(tr._invert(disp, pos, vis, grid), want, atol=1e-6, rtol=1e-6)


def test_schedule_keeps_the_usual_slack_where_the_presets_are_one_flow():
    small = tr._schedule("medium", 80, 128)  # every preset at full resolution: one flow
    assert (small.pair_forward, small.direct_forward) == ("medium", "medium") and small.pair_beta == tr._FB_BETA
    mid = tr._schedule("medium", 256, 256)  # medium at full resolution, fast one level coarser
    assert (mid.pair_forward, mid.pair_backward, mid.direct_forward) == ("medium", "fast", "medium") and mid.pair_beta > tr._FB_BETA
    big = tr._schedule("medium", 480, 720)  # the direct flow at medium, the consecutive ones at fast (same scale)
    assert (big.pair_forward, big.pair_backward, big.direct_forward, big.direct_backward) == ("fast", "fast", "medium", "fast")
    assert big.pair_beta == tr._FB_BETA


class _Serial:
    """_Pipeline running each job at once in the caller's thread (the reference)."""

    def __enter__(self):
        return self

    def submit(self, fn, *args):
        fn(*args)

    def __exit__(self, *exc):
        return None


def test_depth_sampled_on_its_own_thread_equals_serial(monkeypatch):
    scene = sample_scene(7, 64, 40, seed=2)
    threaded = tr.track_dense(scene.frames, scene.depth, ref_frame=3, intrinsics=scene.intrinsics)
    monkeypatch.setattr(tr, "_Pipeline", _Serial)
    serial = tr.track_dense(scene.frames, scene.depth, ref_frame=3, intrinsics=scene.intrinsics)
    for name in ("uv", "depth", "visibility"):
        assert torch.equal(getattr(threaded, name), getattr(serial, name)), name


def test_a_failing_depth_job_is_raised(monkeypatch):
    scene = sample_scene(5, 48, 32, seed=2)

    def broken(self, *args):
        raise RuntimeError("depth job failed")

    monkeypatch.setattr(tr._DepthCarrier, "step", broken)
    with pytest.raises(RuntimeError, match="depth job failed"):
        tr.track_dense(scene.frames, scene.depth, intrinsics=scene.intrinsics)


# --- validation ------------------------------------------------------------------------------------------


def test_finite_scan_by_sums_matches_the_elementwise_test():
    from vid4d.py import checks

    big = torch.full((4, 8), 3e38)  # finite values whose sum overflows: the elementwise test decides
    assert checks._nonfinite("x", big) is None
    assert checks._nonfinite("x", torch.full((70000,), 60000.0, dtype=torch.float16)) is None
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.rand(3, 5, 7)
        x[2, 1, 3] = bad
        assert checks._nonfinite("x", x) == "x: contains 1 NaN/inf value(s) of 105, the first in x[2]"
    mixed = big.clone()
    mixed[1, 2] = -float("inf")  # inf among overflowing values
    assert "1 NaN/inf" in checks._nonfinite("x", mixed)


def test_planes_kernel_keeps_holes_zero_next_to_a_non_finite_feature():
    # The source at (0, 0) moves by exactly 0: its other three corners get weight 0, and NaN * 0 lands on
    # pixels nothing else covers. Every other source leaves the frame.
    inp = torch.rand(1, 2, 3, 3)
    inp[0, :, 0, 0] = float("nan")
    flow = torch.full((1, 2, 3, 3), 50.0)
    flow[0, :, 0, 0] = 0.0
    metric = torch.zeros(1, 1, 3, 3)
    for kernel in ("scatter", "planes", "native"):
        out, holes = splat.softmax_splat(inp, flow, metric, kernel=kernel, return_holes=True)
        assert holes[0, 0].flatten().tolist() == [False] + [True] * 8, kernel
        assert torch.isnan(out[0, :, 0, 0]).all() and torch.equal(out[0, :, 1:, :].flatten(), torch.zeros(12)), kernel
        assert not out[0, :, 0, 1:].any(), kernel


# --- worker threads inside ComfyUI ---------------------------------------------------------------------


def test_threaded_paths_run_under_inference_mode():
    # ComfyUI runs every node under torch.inference_mode(); inference mode is thread-local, so a worker
    # thread outside it may not update the node's tensors in place. Each pool-using path, at 2 threads.
    from vid4d.py import workers

    scene = sample_scene(6, 64, 48, seed=0)
    g = torch.Generator().manual_seed(1)
    x, flow, z = torch.rand(2, 3, 96, 96, generator=g), torch.randn(2, 2, 96, 96, generator=g), torch.rand(2, 1, 96, 96, generator=g)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        want = splat.softmax_splat(x, flow, z, kernel="scatter")
        with torch.inference_mode():
            tracks = tr.track_dense(scene.frames, scene.depth)
            outs = [splat.softmax_splat(x, flow, z, kernel=k) for k in ("planes", "native")]
            xyz = tracks.xyz().reshape(6, -1, 3)[:, ::7]
            regular = pts.regularize_points(xyz, tracks.visible().reshape(6, -1)[:, ::7].float(), k=4, max_anchors=64, iterations=3)
            with workers.Pool(2) as pool:
                modes = list(pool.map(lambda _: (torch.is_inference_mode_enabled(), torch.is_grad_enabled()), range(4)))
        with torch.no_grad(), workers.Pool(1) as pool:
            no_grad = pool.submit(torch.is_grad_enabled).result()
    finally:
        torch.set_num_threads(threads)
    assert xyz.shape[0] == 6 and regular.shape == xyz.shape and torch.isfinite(regular).all()
    for out in outs:
        torch.testing.assert_close(out, want, atol=2e-6, rtol=1e-5)
    assert modes == [(True, False)] * 4 and no_grad is False


def test_native_kernel_leaves_frames_past_its_int32_indices_to_planes(monkeypatch):
    _needs_native()
    monkeypatch.setattr(splat, "NATIVE_MAX_PIXELS", 100)  # (a real one would need a frame of 2^31 pixels)
    monkeypatch.setattr(splat, "_NATIVE_WARNED", set())
    x, flow, z = torch.rand(1, 2, 20, 24), torch.randn(1, 2, 20, 24) * 2, torch.randn(1, 1, 20, 24)
    with pytest.warns(RuntimeWarning, match="int32 indices"):
        out = splat.softmax_splat(x, flow, z, kernel="native")
    torch.testing.assert_close(out, splat.softmax_splat(x, flow, z, kernel="scatter"), atol=2e-6, rtol=1e-5)
