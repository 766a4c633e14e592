"""Frames/s and memory of render_gaussians on a 480x720 depth map lifted to 345,600 Gaussians.

    python tests/bench/bench_render.py [--frames 6 --width 720 --height 480 --kappa 1.0 --tile-size 16]

One Gaussian per pixel of the sample scene's frame 0 (mean = unprojected pixel, colour = the image,
isotropic scale kappa·depth/focal, opacity 1, identity rotation), seen by cameras moved a little to
the side (0.05 units, then a bit more per frame). Prints the first-call time (the compile cost), the
frames/s of the compiled and eager torch backend, peak memory, the number of (tile, Gaussian) pairs,
and gsplat's frames/s when it can run.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc

import torch

from vid4d.py import render as R
from vid4d.py.camera import CameraPath, pixel_grid, unproject_pixels
from vid4d.py.gaussians import GaussianField
from vid4d.py.scene import sample_scene


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
    # camera 0.05 units to the right (+ 0.01 more per frame), so the world moves left
    w2c[:, 0, 3] = -(0.05 + 0.01 * torch.arange(frames))
    return CameraPath(k[None].repeat(frames, 1, 1), w2c, width, height)


def count_pairs(field, path, tile_size):
    g = field.at(0)
    sp = R.project_gaussians(g, path.world_to_camera[0], path.intrinsics[0], path.width, path.height, 0.01)
    tiles_x, tiles_y = -(-path.width // tile_size), -(-path.height // tile_size)
    pairs, _, count = R._tile_pairs(sp.box, tile_size, tiles_x, tiles_x * tiles_y, (0, tiles_y))
    return sp.depth.numel(), pairs.numel(), count


def timed(fn, repeats=1):
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best.append(time.perf_counter() - t)
    return out, min(best), best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--kappa", type=float, default=1.0)
    ap.add_argument("--tile-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="timed renders per mode; the best is reported")
    ap.add_argument("--skip-eager", action="store_true")
    args = ap.parse_args()

    field, k = build_field(args.width, args.height, args.kappa)
    path = moved_path(k, args.frames, args.width, args.height)
    one = moved_path(k, 1, args.width, args.height)
    print(f"{field.num_gaussians} Gaussians, {args.width}x{args.height}, tile {args.tile_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    visible, pairs, count = count_pairs(field, one, args.tile_size)
    print(f"visible splats {visible}, (tile, Gaussian) pairs {pairs} "
          f"({pairs / max(visible, 1):.2f} per splat; per tile mean {count.float().mean():.0f}, max {int(count.max())})")

    run = lambda p, c: R.render_gaussians(field, p, "torch", tile_size=args.tile_size, compile=c)  # noqa: E731
    _, first, _ = timed(lambda: run(one, "auto"))
    print(f"first compiled call (1 frame, includes compilation): {first:.2f} s; compile state {R.compile_status()}")
    modes = [("compiled", "auto")] + ([] if args.skip_eager else [("eager", False)])
    for name, c in modes:
        res, best, all_t = timed(lambda: run(path, c), args.repeats)
        print(f"{name:9s}: {args.frames} frames in {best:.2f} s → {args.frames / best:.2f} frames/s "
              f"(runs: {', '.join(f'{t:.2f}' for t in all_t)}; compiled={res.compiled})")

    # peak memory of one frame (tracemalloc sees Python allocations only; torch's CPU allocator is
    # measured as the growth of peak RSS over a fresh baseline)
    gc.collect()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    run(one, "auto")
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss1:.0f} MB (process, incl. field and scene); growth during one frame {rss1 - rss0:.0f} MB; "
          f"python-heap peak {py_peak / 1e6:.1f} MB")
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            run(one, "auto")
        peak = max((e.cpu_memory_usage for e in prof.key_averages()), default=0)
        print(f"largest single-op CPU allocation total in one frame (profiler): {peak / 1e6:.0f} MB")
    except Exception as err:  # noqa: BLE001
        print(f"(profiler memory measure unavailable: {err})")

    if R.gsplat_available():
        fc = field.to("cuda")
        R.render_gaussians(fc, path, "gsplat")
        torch.cuda.synchronize()
        res, best, _ = timed(lambda: (R.render_gaussians(fc, path, "gsplat"), torch.cuda.synchronize()), args.repeats)
        print(f"gsplat   : {args.frames / best:.1f} frames/s")
    else:
        print(f"gsplat   : not available ({R._gsplat_probe()[1]})")


if __name__ == "__main__":
    main()
