"""Speed and memory of regularize_points on a full 49-frame 480x720 track set (345,600 points).

    python tests/bench/bench_points.py [--frames 49 --width 720 --height 480 --anchors 12000 --iterations 20]

Tracks: the sample scene's exact 3D tracks with 2% depth noise. Prints wall and CPU seconds, peak resident
memory above the input (polled every 5 ms from /proc/self/statm) next to the input's own size, and the median
3D error to the exact tracks before and after.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import torch

from vid4d.py.points import regularize_points
from vid4d.py.scene import sample_scene


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--anchors", type=int, default=12000)
    ap.add_argument("--iterations", type=int, default=20)
    args = ap.parse_args()

    scene = sample_scene(args.frames, args.width, args.height, seed=0)
    tracks = scene.tracks()
    truth = tracks.xyz().reshape(args.frames, -1, 3)
    vis = tracks.visibility.reshape(args.frames, -1)
    g = torch.Generator().manual_seed(0)
    noisy = truth * (1 + 0.02 * torch.randn(truth.shape[:2], generator=g))[..., None]
    del scene, tracks
    print(f"{args.frames} frames {args.width}x{args.height}: {truth.shape[1]} points, input {noisy.numel() * 4 / 2**20:.0f} MiB, torch threads {torch.get_num_threads()}")

    peak, stop = [rss_bytes()], threading.Event()
    base = peak[0]

    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    info: dict = {}
    wall, cpu = time.perf_counter(), time.process_time()
    out = regularize_points(noisy, vis, k=8, iterations=args.iterations, max_anchors=args.anchors, info=info)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    thread.join()
    seen = vis.bool()
    before = float((noisy - truth).norm(dim=-1)[seen].median())
    after = float((out - truth).norm(dim=-1)[seen].median())
    print(f"regularize_points: {wall:.1f} s wall, {cpu:.1f} s CPU ({args.anchors} anchors, k=8, {args.iterations} iterations)")
    print(f"peak memory above the input: {(peak[0] - base) / 2**20:.0f} MiB (output alone {out.numel() * 4 / 2**20:.0f} MiB)")
    print(f"median 3D error to the exact tracks: {before:.4g} -> {after:.4g}; objective {info['objective_before']:.4g} -> {info['objective_after']:.4g}")


if __name__ == "__main__":
    main()
