"""Speed and accuracy of the camera solve at 49 frames, 480x720 (issue 15).

    python tests/bench/bench_solve.py [--frames 49 --width 720 --height 480 --repeats 1]

On the sample scene's exact tracks (the tracker's own cost and error kept out), with depth and
without (depth_known False: structure from motion), the solve's wall time next to a baseline
measured in the same run: DIS optical flow (medium) for the clip's consecutive frame pairs, the
least any tracking of the same clip costs. Also the pose/focal/mask errors against the scene's
exact camera. Timings on a shared machine are noisy; the ratio is what carries over.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import torch

from vid4d.py import flow as fl
from vid4d.py.camera import intrinsics_from_fov
from vid4d.py.scene import sample_scene
from vid4d.py.solve import solve_camera


def rotation_error_deg(a, b):
    r = a.double() @ b.double().transpose(-1, -2)
    n = (r - torch.eye(3, dtype=torch.float64)).flatten(-2).norm(dim=-1)
    return torch.rad2deg(2 * torch.asin((n / (2 * math.sqrt(2))).clamp(max=1)))


def errors(solve, scene, fit_scale):
    truth = scene.camera
    rot = float(rotation_error_deg(solve.path.world_to_camera[:, :3, :3], truth.world_to_camera[:, :3, :3]).max())
    cg, ce = truth.centers().double(), solve.path.centers().double()
    s = (ce * cg).sum() / (ce * ce).sum() if fit_scale else 1.0
    trans = float((ce * s - cg).norm(dim=-1).max() / (cg[1:] - cg[:-1]).norm(dim=-1).sum())
    focal = abs(solve.focal - float(truth.intrinsics[0, 0, 0])) / float(truth.intrinsics[0, 0, 0])
    moving = scene.object_mask[0]
    pred = ~solve.static
    iou = float((pred & moving).sum()) / max(float((pred | moving).sum()), 1.0)
    return f"rotation {rot:.4f} deg, translation {100 * trans:.3f} % of the path, focal {100 * focal:.3f} %, moving-mask IoU {iou:.3f}"


def best_of(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.frames} frames {args.width}x{args.height}")
    scene = sample_scene(args.frames, args.width, args.height)
    tracks = scene.tracks(0)
    prior = dataclasses.replace(tracks, intrinsics=intrinsics_from_fov(45.0, args.width, args.height))  # the focal is estimated
    flat = dataclasses.replace(prior, depth=torch.ones_like(tracks.depth), depth_known=False)

    greys = [fl.grey_u8(f) for f in scene.frames]
    base, _ = best_of(lambda: [fl.dis_flow_grey(greys[t], greys[t + 1], "medium") for t in range(args.frames - 1)], args.repeats)
    print(f"baseline: DIS flow (medium) over {args.frames - 1} frame pairs: {base:.2f} s")
    for name, tr, fit in (("with depth", prior, False), ("without depth (structure from motion)", flat, True)):
        took, solve = best_of(lambda: solve_camera(tr), args.repeats)
        print(f"solve {name}: {took:.2f} s = {took / base:.2f}x the flow baseline; mode {solve.mode}; {errors(solve, scene, fit)}; "
              f"reprojection {solve.reprojection_px:.3f} px, inliers {100 * solve.inlier_ratio:.1f} %")


if __name__ == "__main__":
    main()
