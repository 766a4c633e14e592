"""Speed, memory and accuracy of regularize_points on a full 49-frame 480x720 track set (345,600 points),
next to today's solver (before issue 16) with the same settings, measured in the same run.

    python tests/bench/bench_points.py [--frames 49 --width 720 --height 480 --anchors 12000 --iterations 20
                                        --repeats 2 --skip-baseline]

Tracks: the sample scene's exact 3D tracks with 2% depth noise. The baseline is
``tests/reference_regularizer.py`` (the solver as it was: edge lists with gathers and index_add_,
14 Newton steps per polar rotation, brute-force kNN). The two run alternately, ``--repeats`` times
each; printed: best and median wall seconds with the load average during the runs, the ratio, CPU
seconds, peak live heap above the input during the first run (glibc mallinfo2, polled every ms) next
to the output's own size, and the median 3D error to the exact tracks before and after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from vid4d.py.points import regularize_points
from vid4d.py.scene import sample_scene

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import PeakMemory, alternate, machine, ratio  # noqa: E402
from reference_regularizer import regularize_points_reference  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--anchors", type=int, default=12000)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    print(machine())

    scene = sample_scene(args.frames, args.width, args.height, seed=0)
    tracks = scene.tracks()
    truth = tracks.xyz().reshape(args.frames, -1, 3)
    vis = tracks.visibility.reshape(args.frames, -1)
    g = torch.Generator().manual_seed(0)
    noisy = truth * (1 + 0.02 * torch.randn(truth.shape[:2], generator=g))[..., None]
    del scene, tracks
    mib = 2**20
    print(f"{args.frames} frames {args.width}x{args.height}: {truth.shape[1]} points, input {noisy.numel() * 4 / mib:.0f} MiB; "
          f"{args.anchors} anchors, k=8, {args.iterations} iterations")

    solvers = {"regularize_points": regularize_points}
    if not args.skip_baseline:
        solvers["today's solver (baseline)"] = regularize_points_reference
    results, memory = {}, {}

    def case(name, fn):
        def run():
            info: dict = {}
            if name in memory:
                results[name] = (fn(noisy, vis, k=8, iterations=args.iterations, max_anchors=args.anchors, info=info), info)
                return
            with PeakMemory() as mem:
                results[name] = (fn(noisy, vis, k=8, iterations=args.iterations, max_anchors=args.anchors, info=info), info)
            memory[name] = mem.heap

        return run

    runs = alternate({name: case(name, fn) for name, fn in solvers.items()}, args.repeats, warmup=False)
    seen = vis.bool()
    before = float((noisy - truth).norm(dim=-1)[seen].median())
    for name, r in runs.items():
        out, info = results[name]
        after = float((out - truth).norm(dim=-1)[seen].median())
        print(f"{name:26s} {r.describe()}; CPU {min(r.cpu):.1f} s; peak heap above the input +{memory[name] / mib:.0f} MiB "
              f"(output alone {out.numel() * 4 / mib:.0f} MiB); median 3D error {before:.4g} -> {after:.4g}; "
              f"objective {info['objective_before']:.4g} -> {info['objective_after']:.4g}")
    if len(runs) == 2:
        fast, base = runs.values()
        err = [float((results[n][0] - truth).norm(dim=-1)[seen].median()) for n in runs]
        print(f"speed-up {ratio(fast, base)}; error {err[0] / err[1]:.3f}x the baseline's; peak memory {memory[fast.name] / memory[base.name]:.2f}x")


if __name__ == "__main__":
    main()
