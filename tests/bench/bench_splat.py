"""Frames/s of softmax_splat at 480x720 (C = 3 and C = 64) against a plain baseline, and a full animation.

    python tests/bench/bench_splat.py [--batch 4 --repeats 3 --frames 150 --skip-animation]

The plain baseline (written here, the issue's definition): the four corners, each one ``scatter_add_`` into a
channels-first ``[B, C+1, H·W]`` buffer with the index expanded over channels. Flows are smooth random
oscillations of a few pixels (like a motion texture), metric = their magnitude. Prints the best of
--repeats runs (other jobs on a shared machine only slow a run down), checks every kernel against the
baseline, then animates a 480x720 image with a --frames motion texture: seconds and peak memory.
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import torch
import torch.nn.functional as F

from vid4d.py import splat


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


def best(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--skip-animation", action="store_true")
    args = ap.parse_args()
    h, w, b = 480, 720, args.batch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {w}x{h}, batch {b}")
    flow = smooth_flow(b, h, w)
    metric = flow.norm(dim=1, keepdim=True)
    for c in (3, 64):
        inp = torch.rand(b, c, h, w)
        ref = plain(inp, flow, metric)
        base = best(lambda: plain(inp, flow, metric), args.repeats)
        print(f"C={c:2d}  plain            {b / base:7.2f} frames/s")
        kernels = ["scatter", "compiled"] + ["sparse"]
        for k in kernels:
            t0 = time.perf_counter()
            out = splat.softmax_splat(inp, flow, metric, kernel=k)
            first = time.perf_counter() - t0
            err = float((out - ref).abs().max())
            t = best(lambda: splat.softmax_splat(inp, flow, metric, kernel=k), args.repeats)
            print(f"C={c:2d}  {k:16s} {b / t:7.2f} frames/s  x{base / t:4.2f}  (max |diff| {err:.1e}; first call {first:.1f} s)")
        auto = splat._pick_kernel("auto", c, torch.float32, False, "auto", inp.device)
        print(f"C={c:2d}  auto picks {auto}")
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
