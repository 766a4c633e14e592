"""Speed, memory and accuracy of dense tracking (flow_chain) at 480x720, each speed next to its baseline
measured in the same run.

    python tests/bench/bench_tracking.py [--frames 33 --width 720 --height 480 --preset medium --repeats 3]
                                         [--skip-accuracy] [--skip-memory]

Prints:
- speed (runs alternated, ``--repeats`` each, best and median, load average during the runs):
  * the baseline "DIS alone": one flow per frame at the preset, consecutive pairs, two at a time side by
    side (OpenCV at one thread each): the throughput of the one flow a tracker needs per frame;
  * ``track_2d`` and ``track_dense`` (depth sampling included) on the sample scene, ``track_2d`` with
    every flow at the preset (the schedule before issue 16, same pipeline) and, for medium, with the
    consecutive forward flows at medium (the schedule before they went to fast), as ratios to DIS alone;
- peak memory above the input while tracking, for two clip lengths: the working memory must not grow
  with T (live malloc heap, glibc mallinfo2, polled every millisecond);
- accuracy at the benchmark size against exact ground truth, with the preset's schedule and with every
  flow at the preset: a smooth 24-frame homography sequence (median error at frames 8 and 23) and the
  sample scene (median error, visibility accuracy, occluded recall, 3D error), plus the scenarios of
  tests/test_tracking.py at their sizes.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from vid4d.py import flow as fl
from vid4d.py import tracking as tr
from vid4d.py.scene import sample_scene

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test helpers (synthetic sequences)
from benchlib import PeakMemory, heap_reader, alternate, machine, ratio  # noqa: E402


def all_at_preset(preset: str):
    """The preset's schedule with every flow at the preset itself (as before issue 16)."""
    return tr._Schedule(preset, preset, preset, preset)


class schedule:
    """Context: track with ``passes`` for ``preset`` (None: the shipped schedule)."""

    def __init__(self, preset, passes):
        self.preset, self.passes = preset, passes

    def __enter__(self):
        self.saved = dict(tr._PASSES)
        if self.passes is not None:
            tr._PASSES[self.preset] = self.passes

    def __exit__(self, *exc):
        tr._PASSES.clear()
        tr._PASSES.update(self.saved)


def dis_alone(greys, preset: str) -> None:
    """One flow per consecutive pair, two side by side (OpenCV at one thread each)."""
    with fl.cv2_threads(1), ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda i: fl.dis_flow_grey(greys[i], greys[i + 1], preset), range(len(greys) - 1)))


def bench_speed(args):
    scene = sample_scene(args.frames, args.width, args.height)
    frames, depth = scene.frames, scene.depth
    greys = [fl.grey_u8(f) for f in frames]
    tr.track_2d(frames[:3], preset=args.preset)  # warm-up (imports, first DIS)
    before = all_at_preset(args.preset)

    def old_schedule():
        with schedule(args.preset, before):
            tr.track_2d(frames, preset=args.preset)

    previous = tr._Schedule("medium", "fast", "medium", "fast", pair_beta=1.5) if args.preset == "medium" else None

    def previous_schedule():
        with schedule(args.preset, previous):
            tr.track_2d(frames, preset=args.preset)

    cases = {
        "DIS alone (baseline)": lambda: dis_alone(greys, args.preset),
        "track_2d": lambda: tr.track_2d(frames, preset=args.preset),
        "track_dense": lambda: tr.track_dense(frames, depth, intrinsics=scene.intrinsics, preset=args.preset),
        "track_2d, all flows at the preset": old_schedule,
    }
    if previous is not None:
        cases["track_2d, consecutive at medium"] = previous_schedule
    runs = alternate(cases, args.repeats)
    base = runs["DIS alone (baseline)"]
    print(f"\nspeed, {args.frames} frames {args.width}x{args.height}, preset {args.preset}, re-anchoring every 4 frames "
          f"(DIS alone: {args.frames - 1} flows, frames/s = flows/s):")
    for name, r in runs.items():
        rel = "" if r is base else f"; {base.best / r.best:.2f} / {base.median / r.median:.2f} of DIS alone's speed (best / median)"
        print(f"  {name:34s} {r.describe(args.frames)}; CPU/wall {min(r.cpu) / r.best:.2f}{rel}")
    print(f"  schedule speed-up over all flows at the preset: {ratio(runs['track_2d'], runs['track_2d, all flows at the preset'])}")
    if previous is not None:
        print(f"  speed-up over the consecutive flows at medium (the schedule before the fast ones): {ratio(runs['track_2d'], runs['track_2d, consecutive at medium'])}")


def bench_memory(args):
    print("\nmemory above the input while tracking (live malloc heap, glibc mallinfo2):")
    heap = heap_reader()
    if heap is None:
        print("  (mallinfo2 unavailable)")
        return
    for num in (args.frames // 2, args.frames * 3 // 2):
        scene = sample_scene(num, args.width, args.height)
        output = num * args.height * args.width * (2 * 4 + 4 + 1)  # uv float32, depth float32, visibility bool
        during = []
        with PeakMemory() as mem:
            out = tr.track_dense(scene.frames, scene.depth, intrinsics=scene.intrinsics, preset=args.preset,
                                 progress=lambda done: during.append(max(mem.heap_peak, heap()) - mem.heap_base))
        del out
        working = max(during) - output
        print(f"  T={num:3d}: output {output / 2**20:6.1f} MiB; working memory while tracking {working / 2**20:5.1f} MiB "
              f"(polled peak up to the last frame); overall peak +{mem.heap / 2**20:6.1f} MiB (RSS +{mem.rss / 2**20:6.1f}), the "
              f"excess at the end being Tracks3D's own finiteness check of the output")


def epe(uv, gt_uv, mask) -> float:
    return float((uv - gt_uv).norm(dim=-1)[mask].median())


def bench_accuracy(args):
    import test_tracking as tt

    print(f"\naccuracy at {args.width}x{args.height} (preset {args.preset}): shipped schedule | every flow at the preset")
    frames, gt = tt.homography_sequence(24, args.width, args.height)
    ins = fl.inside(gt, args.width, args.height)
    scene = sample_scene(24, args.width, args.height)
    gt3 = scene.tracks(0)
    occluded = ~gt3.visibility & fl.inside(gt3.uv, scene.width, scene.height)
    rows = {}
    for label, passes in (("shipped", None), ("all at preset", all_at_preset(args.preset))):
        with schedule(args.preset, passes):
            uv, vis = tr.track_2d(frames, preset=args.preset)
            t = tr.track_dense(scene.frames, scene.depth, intrinsics=scene.intrinsics, preset=args.preset)
        both = gt3.visibility & t.visibility
        rel = ((t.xyz() - gt3.xyz()).norm(dim=-1) / gt3.depth)[both]
        rows[label] = (
            f"homography 24 frames: median error t8 {epe(uv[8], gt[8], vis[8] & ins[8]):.3f} t23 {epe(uv[23], gt[23], vis[23] & ins[23]):.3f} px, "
            f"visibility acc {(vis == ins).float().mean():.4f}",
            f"sample scene 24 frames: median error t8 {epe(t.uv[8], gt3.uv[8], both[8]):.3f} t16 {epe(t.uv[16], gt3.uv[16], both[16]):.3f} "
            f"t23 {epe(t.uv[23], gt3.uv[23], both[23]):.3f} px, visibility acc {(t.visibility == gt3.visibility).float().mean():.4f}, "
            f"occluded recall {(~t.visibility[occluded]).float().mean():.3f}, 3D error / depth median {float(rel.median()) * 100:.3f} %",
        )
    for i in range(2):
        print(f"  {rows['shipped'][i]}\n    | {rows['all at preset'][i]}")

    print("accuracy (the test scenarios, at their sizes):")
    frames, gt = tt.affine_sequence(25, 256, rot=0.2, zoom=0.002, shift=(2.0, 1.0))
    ins = fl.inside(gt, 256, 256)
    uv, vis = tr.track_2d(frames)
    errs = "  ".join(f"t{t}: {epe(uv[t], gt[t], vis[t] & ins[t]):.3f}" for t in (4, 8, 16, 24))
    print(f"  drift, 256x256 similarity motion: median EPE {errs} px; visibility acc {(vis == ins).float().mean():.4f}")
    frames, gt_uv, gt_vis, square0 = tt.square_sequence()
    uv, vis = tr.track_2d(frames)
    covered = ~gt_vis & fl.inside(gt_uv, 128, 128)
    back = covered[:-1].any(0) & gt_vis[-1]
    print(f"  sliding square 128x128x17: visibility acc {(vis == gt_vis).float().mean():.4f}, on covered points "
          f"{(~vis[covered]).float().mean():.4f}; reappeared recovered {vis[-1][back].float().mean():.3f}")
    scene = sample_scene(24, 128, 80)
    gt = scene.tracks(0)
    t = tr.track_dense(scene.frames, scene.depth, intrinsics=scene.intrinsics)
    both = gt.visibility & t.visibility
    occluded = ~gt.visibility & fl.inside(gt.uv, 128, 80)
    print(f"  sample scene 128x80x24: median EPE t23 {epe(t.uv[23], gt.uv[23], both[23]):.3f} px; visibility acc "
          f"{(t.visibility == gt.visibility).float().mean():.4f}, occluded recall {(~t.visibility[occluded]).float().mean():.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--preset", default="medium", choices=fl.PRESETS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    print(machine())
    bench_speed(args)
    if not args.skip_memory:
        bench_memory(args)
    if not args.skip_accuracy:
        bench_accuracy(args)


if __name__ == "__main__":
    main()
