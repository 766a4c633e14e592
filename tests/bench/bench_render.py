"""Frames/s and memory of render_gaussians on a 480x720 depth map lifted to 345,600 Gaussians.

    python tests/bench/bench_render.py [--frames 6 --repeats 3 --kappa 1.0 --tile-size 8 --cold]

One Gaussian per pixel of the sample scene's frame 0 (mean = unprojected pixel, colour = the image,
isotropic scale kappa·depth/focal, opacity 1, identity rotation), seen by cameras moved a little to
the side (0.05 units, then 0.01 more per frame). Prints the first call's time (compilation, from a
cold compile cache with --cold), frames/s of the compiled and eager torch backend (best of
--repeats runs: other jobs on a shared machine only ever slow a run down), a per-stage breakdown,
the peak memory one frame adds, the number of (tile, Gaussian) pairs, and gsplat's frames/s when it
can run here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import tracemalloc

if "--cold" in sys.argv:  # must be set before torch is imported
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")

import torch  # noqa: E402

from vid4d.py import render as R  # noqa: E402
from vid4d.py.camera import CameraPath, pixel_grid, unproject_pixels  # noqa: E402
from vid4d.py.gaussians import GaussianField  # noqa: E402
from vid4d.py.scene import sample_scene  # noqa: E402


def build_field(width: int, height: int, kappa: float) -> tuple[GaussianField, torch.Tensor]:
    scene = sample_scene(num_frames=2, width=width, height=height)
    k = scene.intrinsics
    depth = scene.depth[0].reshape(-1)
    means = unproject_pixels(pixel_grid(height, width).reshape(-1, 2), depth, k)
    n = means.shape[0]
    scale = (kappa * depth / k[0, 0]).clamp_min(1e-6)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1
    field = GaussianField(means[None], scene.frames[0].reshape(-1, 3), torch.ones(n), scale[:, None].expand(n, 3).contiguous(), quats)
    return field, k


def moved_path(k: torch.Tensor, frames: int, width: int, height: int) -> CameraPath:
    w2c = torch.eye(4).repeat(frames, 1, 1)
    w2c[:, 0, 3] = -(0.05 + 0.01 * torch.arange(frames))  # camera 0.05 units to the right, then a bit more per frame
    return CameraPath(k[None].repeat(frames, 1, 1), w2c, width, height)


def trim_heap() -> None:
    """Give freed heap back to the OS (glibc), so the RSS baseline counts live memory only."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Samples the resident set size every 2 ms while active (the torch CPU allocator is invisible to tracemalloc)."""

    def __enter__(self):
        trim_heap()
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def best_of(fn, repeats: int) -> tuple[object, float, list[float]]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, min(times), times


def stages(field, path, tile_size: int, compile_mode, repeats: int) -> dict[str, float]:
    """Best time of each stage of one frame: projection, pair listing, tile blending."""
    g, w2c, k = field.at(0), path.world_to_camera[0], path.intrinsics[0]
    project = R._Runner(R.project_dense, compile_mode, torch.device("cpu"))
    blend = R._Runner(R.blend_chunk, compile_mode, torch.device("cpu"), dynamic=False)
    tx, ty = -(-path.width // tile_size), -(-path.height // tile_size)
    sp = R.project_gaussians(g, w2c, k, path.width, path.height, 0.01, project)
    rect = torch.div(sp.box, tile_size, rounding_mode="floor")
    pairs = R._tile_pairs(rect, tx, tx * ty, (0, ty))

    def run_blend():
        acc = torch.zeros(tx * ty, 4, tile_size * tile_size)
        trans = torch.ones(tx * ty, tile_size * tile_size)
        R._blend_tiles(sp, *pairs, tile_size, tx, acc, trans, blend)

    run_blend()
    out = {}
    for name, fn in [
        ("project", lambda: R.project_gaussians(g, w2c, k, path.width, path.height, 0.01, project)),
        ("pairs", lambda: R._tile_pairs(torch.div(sp.box, tile_size, rounding_mode="floor"), tx, tx * ty, (0, ty))),
        ("blend", run_blend),
    ]:
        out[name] = best_of(fn, repeats)[1]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--kappa", type=float, default=1.0, help="Gaussian std in source pixels (lift_depth's default is 0.7)")
    ap.add_argument("--tile-size", type=int, default=R.TORCH_TILE_SIZE)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="compile from an empty inductor cache")
    ap.add_argument("--skip-eager", action="store_true")
    args = ap.parse_args()
    ts = args.tile_size

    field, k = build_field(args.width, args.height, args.kappa)
    path = moved_path(k, args.frames, args.width, args.height)
    one = moved_path(k, 1, args.width, args.height)
    print(f"{field.num_gaussians} Gaussians (kappa {args.kappa}), {args.width}x{args.height}, tile {ts}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    sp = R.project_gaussians(field.at(0), one.world_to_camera[0], one.intrinsics[0], args.width, args.height, 0.01)
    for size in sorted({ts, 16}):
        tx, ty = -(-args.width // size), -(-args.height // size)
        pairs, _, _ = R._tile_pairs(torch.div(sp.box, size, rounding_mode="floor"), tx, tx * ty, (0, ty))
        print(f"  tile {size:2d}: {sp.count} visible splats, {pairs.numel()} (tile, Gaussian) pairs "
              f"({pairs.numel() / max(sp.count, 1):.2f} per splat, {pairs.numel() * size * size / 1e6:.1f} M pixel evaluations)")

    run = lambda p, c: R.render_gaussians(field, p, "torch", tile_size=ts, compile=c)  # noqa: E731
    _, first, _ = best_of(lambda: run(one, "auto"), 1)
    print(f"first compiled call (1 frame, compiles{' from a cold cache' if args.cold else ''}): {first:.1f} s; "
          f"compile state {R.compile_status('cpu')['state']}")
    modes = [("compiled", "auto")] + ([] if args.skip_eager else [("eager", False)])
    for name, c in modes:
        run(one, c)  # warm
        res, best, times = best_of(lambda c=c: run(path, c), args.repeats)
        print(f"{name:9s}: {args.frames} frames best {best:.2f} s → {args.frames / best:.2f} frames/s "
              f"({best / args.frames * 1e3:.0f} ms/frame; runs {', '.join(f'{t:.2f}' for t in times)} s; compiled={res.compiled})")
        st = stages(field, one, ts, c, args.repeats)
        print("           stages (best): " + ", ".join(f"{n} {v * 1e3:.0f} ms" for n, v in st.items()))

    for name, c in modes:
        run(one, c)
        tracemalloc.start()
        with PeakRss() as mem:
            run(one, c)
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"memory, one frame ({name}): peak RSS {mem.peak:.0f} MB, {mem.peak - mem.base:.0f} MB above the RSS before "
              f"the frame ({mem.base:.0f} MB: interpreter, torch, field, scene); Python heap peak {py_peak / 1e6:.1f} MB")

    if R.gsplat_available():
        fc = field.to("cuda")
        pc = path.to("cuda")
        R.render_gaussians(fc, pc, "gsplat")
        torch.cuda.synchronize()
        _, best, _ = best_of(lambda: (R.render_gaussians(fc, pc, "gsplat"), torch.cuda.synchronize()), args.repeats)
        print(f"gsplat   : {args.frames / best:.1f} frames/s")
    else:
        print(f"gsplat   : not available ({R._gsplat_probe()[1]})")


if __name__ == "__main__":
    main()
