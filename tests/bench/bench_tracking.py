"""Speed, memory and accuracy of dense tracking (flow_chain) at 480x720.

    python tests/bench/bench_tracking.py [--frames 16 48 --width 720 --height 480 --preset medium]
                                         [--skip-accuracy] [--skip-memory]

Prints:
- DIS alone per preset: one call, and a forward+backward pair run side by side (as the tracker does);
- end-to-end frames/s of track_2d and track_dense (forward-backward checks, re-anchoring every 4
  frames and, for track_dense, depth sampling included) on the sample scene for each T, wall and
  process CPU time (CPU/wall near 1 means only one core was free);
- peak memory above the input while tracking, per T, next to the size of the output itself (the
  rest must not grow with T): live malloc heap (glibc mallinfo2) polled every millisecond;
- the accuracy numbers the tests check (synthetic drift sequence, sliding square, sample scene)
  plus the sample scene at the benchmark size against its exact tracks.

Timings on a shared machine are noisy; the script reports the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import torch

from vid4d.py import flow as fl
from vid4d.py import tracking as tr
from vid4d.py.scene import sample_scene

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test helpers (synthetic sequences)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _heap_reader():
    """Bytes currently allocated through malloc (glibc mallinfo2: in-use heap + mmapped blocks), or None.

    Unlike the resident set size this falls when memory is freed, so it shows what is live at a time
    (torch's CPU tensors come from malloc).
    """
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return None

    def read() -> int:
        info = libc.mallinfo2()
        return info.uordblks + info.hblkhd

    return read


class PeakMemory:
    """Peak live heap (and peak RSS) above the level at entry, polled every millisecond in a thread."""

    def __enter__(self):
        self._heap = _heap_reader()
        self.heap_base = self.heap_peak = self._heap() if self._heap else 0
        self.rss_base = self.rss_peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        if self._heap:
            self.heap_peak = max(self.heap_peak, self._heap())
        self.rss_peak = max(self.rss_peak, rss_bytes())

    def _poll(self):
        while not self._stop.wait(0.001):
            self._sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def heap(self) -> int:
        return self.heap_peak - self.heap_base

    @property
    def rss(self) -> int:
        return self.rss_peak - self.rss_base


def timed(fn, repeats: int):
    best = None
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return out, best


def bench_dis(frames: torch.Tensor, repeats: int):
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    grey = [fl.grey_u8(f) for f in frames[:2]]
    h, w = grey[0].shape
    print(f"\nDIS alone at {w}x{h} (OpenCV at 1 thread; cv2 default is {cv2.getNumThreads()}):")
    with fl.cv2_threads(1), ThreadPoolExecutor(2) as pool:
        for preset in fl.PRESETS:
            fl.dis_flow_grey(grey[0], grey[1], preset)
            _, (one, _) = timed(lambda: fl.dis_flow_grey(grey[0], grey[1], preset), repeats * 3)

            def pair():
                a = pool.submit(fl.dis_flow_grey, grey[0], grey[1], preset)
                b = pool.submit(fl.dis_flow_grey, grey[1], grey[0], preset)
                return a.result(), b.result()

            _, (two, cpu) = timed(pair, repeats * 3)
            scale = fl.finest_scale(preset, h, w)
            print(f"  {preset:9s} finest scale {scale}: one flow {one * 1e3:6.1f} ms ({1 / one:5.1f} flows/s); "
                  f"fwd+bwd pair side by side {two * 1e3:6.1f} ms wall, {cpu * 1e3:6.1f} ms CPU")


def bench_tracking(args):
    print(f"\nflow_chain end to end, preset {args.preset}, re-anchoring every 4 frames:")
    results = {}
    for num in args.frames:
        scene = sample_scene(num, args.width, args.height)
        frames, depth = scene.frames, scene.depth
        tr.track_2d(frames[:3], preset=args.preset)  # warm-up (imports, first DIS)
        _, (wall, cpu) = timed(lambda: tr.track_2d(frames, preset=args.preset), args.repeats)
        print(f"  T={num:3d} track_2d:    {num / wall:5.1f} frames/s ({wall / num * 1e3:6.1f} ms/frame wall, CPU/wall {cpu / wall:.2f})")
        _, (wall, cpu) = timed(lambda: tr.track_dense(frames, depth, intrinsics=scene.intrinsics, preset=args.preset), args.repeats)
        print(f"  T={num:3d} track_dense: {num / wall:5.1f} frames/s ({wall / num * 1e3:6.1f} ms/frame wall, CPU/wall {cpu / wall:.2f})")
        _, (wall, cpu) = timed(lambda: tr.track_2d(frames, preset=args.preset, reanchor_every=0), args.repeats)
        print(f"  T={num:3d} track_2d without re-anchoring: {num / wall:5.1f} frames/s")
        results[num] = scene
    return results


def bench_memory(scenes, args):
    print("\nmemory above the input while tracking (live malloc heap, glibc mallinfo2):")
    heap = _heap_reader()
    if heap is None:
        print("  (mallinfo2 unavailable)")
        return
    for num, scene in scenes.items():
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


def bench_accuracy(args, scenes):
    import test_tracking as tt

    print("\naccuracy (the test scenarios):")
    frames, gt = tt.affine_sequence(25, 256, rot=0.2, zoom=0.002, shift=(2.0, 1.0))
    ins = fl.inside(gt, 256, 256)
    for every in (4, 0):
        uv, vis = tr.track_2d(frames, reanchor_every=every)
        errs = "  ".join(f"t{t}: {epe(uv[t], gt[t], vis[t] & ins[t]):.3f}" for t in (4, 8, 16, 24))
        label = "re-anchored every 4" if every else "naive chaining     "
        print(f"  drift, 256x256 similarity motion, {label}: median EPE {errs} px; visibility acc {(vis == ins).float().mean():.4f}")

    frames, gt_uv, gt_vis, square0 = tt.square_sequence()
    uv, vis = tr.track_2d(frames)
    covered = ~gt_vis & fl.inside(gt_uv, 128, 128)
    back = covered[:-1].any(0) & gt_vis[-1]
    print(f"  sliding square 128x128x17: visibility acc {(vis == gt_vis).float().mean():.4f}, on covered points "
          f"{(~vis[covered]).float().mean():.4f}; reappeared recovered {vis[-1][back].float().mean():.3f} "
          f"(median EPE {epe(uv[-1], gt_uv[-1], back & vis[-1]):.3f} px)")

    cases = [(sample_scene(24, 128, 80), 0), (sample_scene(24, 128, 80), 12)]
    smallest = min(scenes)
    if smallest <= 24:
        cases.append((scenes[smallest], 0))
    for scene, ref in cases:
        gt = scene.tracks(ref)
        t = tr.track_dense(scene.frames, scene.depth, ref_frame=ref, intrinsics=scene.intrinsics, preset=args.preset)
        both = gt.visibility & t.visibility
        last = scene.num_frames - 1
        frames_at = [f for f in (0, 8, 16, last) if f != ref and f <= last]
        errs = "  ".join(f"t{f}: {epe(t.uv[f], gt.uv[f], both[f]):.3f}" for f in frames_at)
        occluded = ~gt.visibility & fl.inside(gt.uv, scene.width, scene.height)
        rel = ((t.xyz() - gt.xyz()).norm(dim=-1) / gt.depth)[both]
        print(f"  sample scene {scene.width}x{scene.height}x{scene.num_frames} ref {ref}: median EPE {errs} px; "
              f"visibility acc {(t.visibility == gt.visibility).float().mean():.4f}, occluded recall {(~t.visibility[occluded]).float().mean():.3f}; "
              f"3D error / depth median {float(rel.median()) * 100:.3f} %, p90 {float(rel.quantile(0.9)) * 100:.2f} %")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 48])
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--preset", default="medium", choices=fl.PRESETS)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    scenes = bench_tracking(args)
    bench_dis(next(iter(scenes.values())).frames, args.repeats)
    if not args.skip_memory:
        bench_memory(scenes, args)
    if not args.skip_accuracy:
        bench_accuracy(args, scenes)


if __name__ == "__main__":
    main()
