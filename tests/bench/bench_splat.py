"""Frames/s of softmax_splat at 480x720 (C = 3 and C = 64, batch 1 and 4) next to a plain baseline
measured in the same run, and a full animation.

    python tests/bench/bench_splat.py [--batch 1 4 --channels 3 64 --repeats 5 --frames 150 --skip-animation]

The plain baseline (written here, the issue's definition): the four corners, each one ``scatter_add_`` into a
channels-first ``[B, C+1, H·W]`` buffer with the index expanded over channels, batched, torch's default
threads. Flows are smooth random oscillations of a few pixels (like a motion texture), metric = their
magnitude. First the native kernel's first call (its C build) and the compiled kernel's first call on its own (an empty inductor cache, unless
TORCHINDUCTOR_CACHE_DIR is set: then the on-disk cache), then for each (C, batch): each kernel's first call, then the
baseline and every kernel run alternately ``--repeats`` times: best and median frames/s, the ratio to the
baseline (best / median), the load average during the runs, and the largest difference to the baseline's
output. Then animates a 480x720 image with a --frames motion texture: seconds and peak memory.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Before torch is imported: fresh inductor and native-kernel caches, so the first calls' figures include the
# real compile and build.
for _var, _prefix in (("TORCHINDUCTOR_CACHE_DIR", "vid4d-bench-inductor-"), ("VID4D_CACHE_DIR", "vid4d-bench-native-")):
    if _var not in os.environ:
        os.environ[_var] = tempfile.mkdtemp(prefix=_prefix)
        atexit.register(shutil.rmtree, os.environ[_var], ignore_errors=True)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vid4d.py import native, splat  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import alternate, load, machine, ratio  # noqa: E402


def plain(inp, flow, metric):
    b, c, h, w = inp.shape
    n = h * w
    gy, gx = torch.meshgrid(torch.arange(h, dtype=inp.dtype), torch.arange(w, dtype=inp.dtype), indexing="ij")
    x, y = gx + flow[:, 0], gy + flow[:, 1]
    wgt = torch.exp(metric[:, 0] - metric.amax())
    vals = torch.cat([inp * wgt[:, None], wgt[:, None]], 1).reshape(b, c + 1, n)
    acc = torch.zeros(b, c + 1, n, dtype=inp.dtype)
    x0, y0 = torch.floor(x), torch.floor(y)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            bil = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
            ok = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            idx = torch.where(ok, yi * w + xi, 0).long().reshape(b, 1, n)
            acc.scatter_add_(2, idx.expand(b, c + 1, n), vals * torch.where(ok, bil, 0).reshape(b, 1, n))
    den = acc[:, c:]
    return torch.where(den > 0, acc[:, :c] / den.clamp_min(1e-30), 0).reshape(b, c, h, w)


def smooth_flow(b, h, w, amp=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(b, 2, h // 32 + 2, w // 32 + 2, generator=g) * amp
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)


def first_calls(h, w):
    """The native kernel's first call (its C build, into an empty VID4D_CACHE_DIR unless one is set) and the compiled kernel's first call at C = 3, batch 1, printed on its own: with an empty inductor cache
    (what a user's first run pays), then again after dynamo's in-memory state is dropped, which is what a
    new process pays once the on-disk cache holds the kernel; next to a steady call."""
    flow = smooth_flow(1, h, w, seed=1)
    metric = flow.norm(dim=1, keepdim=True)
    inp = torch.rand(1, 3, h, w)
    t0 = time.perf_counter()
    splat.softmax_splat(inp, flow, metric, kernel="native")
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    splat.softmax_splat(inp, flow, metric, kernel="native")
    print(f"native kernel, first call at {w}x{h} C=3 batch 1: {build:.2f} s ({native.status('splat')}), then {1000 * (time.perf_counter() - t0):.0f} ms a call")
    times = []
    for _ in range(2):
        torch._dynamo.reset()
        splat._COMPILED.clear()
        splat._COMPILE_STATE.clear()
        t0 = time.perf_counter()
        splat.softmax_splat(inp, flow, metric, kernel="compiled", compile=True)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    splat.softmax_splat(inp, flow, metric, kernel="compiled")
    steady = time.perf_counter() - t0
    print(f"compiled kernel, first call at {w}x{h} C=3 batch 1 (load average {load():.2f}): {times[0]:.1f} s with an empty "
          f"inductor cache ({os.environ['TORCHINDUCTOR_CACHE_DIR']}), {times[1]:.1f} s from the on-disk cache (a new process), "
          f"then {1000 * steady:.0f} ms a call")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--channels", type=int, nargs="+", default=[3, 64])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--skip-animation", action="store_true")
    args = ap.parse_args()
    h, w = 480, 720
    print(machine())
    first_calls(h, w)
    print(f"{w}x{h}: each kernel's first call in this process (compilation once per frame size and channel count), then the alternating runs:")
    for c in args.channels:
        for b in args.batch:
            flow = smooth_flow(b, h, w, seed=b)
            metric = flow.norm(dim=1, keepdim=True)
            inp = torch.rand(b, c, h, w)
            ref = plain(inp, flow, metric)
            auto = splat._pick_kernel("auto", c, torch.float32, False, "auto", inp.device, pixels=h * w)
            cases = {"plain (baseline)": lambda: plain(inp, flow, metric)}
            notes = {}
            for k in ("scatter", "native", "planes", "compiled", "sparse"):
                t0 = time.perf_counter()
                out = splat.softmax_splat(inp, flow, metric, kernel=k)
                notes[k] = f"max |diff| {float((out - ref).abs().max()):.1e}, first call {time.perf_counter() - t0:.1f} s"
                cases[k] = (lambda k: lambda: splat.softmax_splat(inp, flow, metric, kernel=k))(k)
            runs = alternate(cases, args.repeats)
            base = runs["plain (baseline)"]
            print(f"C={c:2d} batch {b}: auto picks {auto}")
            for name, r in runs.items():
                extra = "" if r is base else f"  {ratio(r, base)}  ({notes[name]})"
                print(f"  {name:17s} {r.describe(b)}{extra}")
    if args.skip_animation:
        return
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    image = torch.stack([0.5 + 0.5 * torch.sin(xx / 7), 0.5 + 0.5 * torch.cos(yy / 5), xx / w], -1)
    phase = torch.arange(args.frames).float()[:, None, None] * 2 * math.pi / args.frames
    amp = 4 * torch.sin(xx / 90 + yy / 70)
    disp = torch.stack([amp * torch.sin(phase + xx / 200), 0.5 * amp * torch.cos(phase)], -1)
    weights = splat.splat_weights(disp)
    metric = splat.WEIGHT_RANGE * weights / weights.max()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for levels, fill in ((1, True), (3, True)):
        t = time.perf_counter()
        frames, holes = splat.animate(image, disp, metric, levels=levels, fill=fill)
        dt = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"animate {args.frames} frames {w}x{h} (levels {levels}, fill {fill}): {dt:.1f} s ({args.frames / dt:.1f} frames/s), "
              f"holes {100 * float(holes.float().mean()):.2f}%, peak RSS {rss / 1024:.0f} MiB (+{(rss - rss0) / 1024:.0f} MiB; output alone {frames.numel() * 4 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
