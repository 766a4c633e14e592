"""Validation overhead of the GS-DiT chain, before and after "check once where a value enters" (issue 18).

    python tests/bench/bench_validation.py [--frames 49 --width 720 --height 480 --repeats 2]

Runs the real node chain DenseTrack3D (flow_chain, DIS ultrafast) -> LiftGaussians (tracks) ->
RenderGaussians (identity camera) on the sample scene, twice per repeat in the same process:

- **old-style**: the checks as they ran before (every check scans, ``from_checked`` is the plain
  constructor, ``TensorData.to`` re-runs ``__post_init__``): the frames are scanned five times, the
  field twice (built, then again by its device move), the render and its depth once each;
- **new-style**: the code as it is (one scan per tensor per node call, computed results unscanned,
  moves unchecked).

Prints for each the time spent in value scans (NaN/inf, ranges, signs: every call of ``py.checks.scan``,
timed), how many scans ran and how many elements they read, and the chain's wall time, best of
``--repeats``; the ratio old/new of the scan time is the figure (both measured in the same run, so it
survives a noisy machine). On CUDA each scan is also a device sync; this machine measures the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from contextlib import contextmanager

import torch

from vid4d.nodes.gaussians import LiftGaussians
from vid4d.nodes.render import RenderGaussians
from vid4d.nodes.tracking import DenseTrack3D
from vid4d.py import checks, gaussians
from vid4d.py.camera import CameraPath
from vid4d.py.scene import sample_scene


class Meter:
    """Wraps ``py.checks.scan`` (where every value scan goes) to time and count the scans that run."""

    def __init__(self):
        self.seconds, self.count, self.elements = 0.0, 0, 0
        self.real = checks.scan

    def scan(self, tensor, key, problem):
        def timed():
            t0 = time.perf_counter()
            try:
                return problem()
            finally:
                self.seconds += time.perf_counter() - t0
                self.count += 1
                self.elements += tensor.numel()

        return self.real(tensor, key, timed)


@contextmanager
def patched(meter: Meter, old_style: bool):
    saved = (checks.scan, gaussians.scan, checks._entry, checks.TensorData.__dict__["from_checked"], checks.TensorData.to)
    checks.scan = gaussians.scan = meter.scan
    if old_style:
        checks._entry = lambda tensor, ledger: None  # no ledger: every check scans, as before
        checks.TensorData.from_checked = classmethod(lambda cls, *a, **k: cls(*a, **k))

        def old_to(self, device=None, dtype=None):
            changes = {}
            for f in dataclasses.fields(self):
                v = getattr(self, f.name)
                if isinstance(v, torch.Tensor):
                    changes[f.name] = v.to(device=device, dtype=dtype if v.is_floating_point() and dtype is not None else None)
            return dataclasses.replace(self, **changes)  # re-runs __post_init__

        checks.TensorData.to = old_to
    try:
        yield
    finally:
        checks.scan, gaussians.scan, checks._entry, checks.TensorData.from_checked, checks.TensorData.to = saved


def chain(scene, camera) -> float:
    frames = scene.frames.clone()
    t0 = time.perf_counter()
    tracks = DenseTrack3D().track(frames, "flow_chain", 0, 60.0, "ultrafast", 0, 0, "disparity", 1.0, 10.0, "none.pth", 64, depth=scene.depth_video())["result"][0]
    field = LiftGaussians().lift(frames, "tracks", 60.0, 0.3, 1, "keep", 0.1, "reference", "disparity", 1.0, 10.0, tracks=tracks)["result"][0]
    RenderGaussians().render(field, camera, "auto", 0.5, "sequence")
    # The old GSDiTSampler scanned the render's frames and holes in the node and again in the pipeline: not run
    # here (it needs a video model); tests/test_gsdit_render_input.py counts those scans.
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    scene = sample_scene(args.frames, args.width, args.height, seed=0)
    camera = CameraPath.static(scene.intrinsics, args.frames, args.width, args.height)
    print(f"{args.frames}x{args.height}x{args.width}: DenseTrack3D -> LiftGaussians -> RenderGaussians, torch {torch.__version__}, {torch.get_num_threads()} threads")
    chain(scene, camera)  # warm-up: the renderer's one-off compile, caches
    best = {}
    for _ in range(args.repeats):
        for style in ("old-style", "new-style"):
            meter = Meter()
            with patched(meter, old_style=style == "old-style"):
                wall = chain(scene, camera)
            prev = best.get(style)
            if prev is None or meter.seconds < prev[0].seconds:
                best[style] = (meter, min(wall, prev[1]) if prev else wall)
            elif wall < prev[1]:
                best[style] = (prev[0], wall)
    for style, (meter, wall) in best.items():
        print(f"  {style}: value scans {meter.seconds:6.3f} s ({meter.count} scans, {meter.elements / 1e6:7.1f} M elements read); best chain wall {wall:6.2f} s")
    old, new = best["old-style"][0], best["new-style"][0]
    print(f"  scan time old/new: {old.seconds / max(new.seconds, 1e-9):.1f}x less ({old.seconds - new.seconds:.3f} s removed per run; elements read {old.elements / max(new.elements, 1):.1f}x fewer)")


if __name__ == "__main__":
    main()
