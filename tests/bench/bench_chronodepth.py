"""ChronoDepth pipeline overhead: seconds per frame and peak memory with the tiny model on this machine, and —
with a GPU — a real-size random-weight UNet (fp16, 576x1024) against DepthCrafter's published ~466 ms/frame (A100).

    python tests/bench/bench_chronodepth.py [--frames 20] [--real]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def tiny(frames: int) -> None:
    import tiny_chronodepth as tc
    from vid4d.models import chronodepth as cd

    with tempfile.TemporaryDirectory() as root:
        tc.build(Path(root))
        pipe = cd.load_pipeline(Path(root) / "depth" / tc.UNET_NAME, Path(root) / "depth" / tc.BASE_NAME)
        video = torch.rand(frames, 64, 64, 3)
        pipe(video[:2], num_steps=1)
        start = time.perf_counter()
        pipe(video, num_steps=5)
        took = time.perf_counter() - start
    print(f"tiny model, CPU ({torch.get_num_threads()} threads), {frames} frames 64x64, 5 steps: {took / frames * 1000:.1f} ms/frame; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def real(frames: int) -> None:
    from diffusers import UNetSpatioTemporalConditionModel
    from vid4d.models import chronodepth as cd

    device = torch.device("cuda")
    unet = UNetSpatioTemporalConditionModel(in_channels=8, out_channels=4).to(device, torch.float16).eval()
    emb = torch.randn(1, 1, 1024, device=device, dtype=torch.float16)
    ids = torch.tensor([cd.ADDED_TIME_IDS], device=device, dtype=torch.float16)
    plan = cd.window_plan(frames, 10, 5)
    with torch.no_grad():
        x = torch.randn(10, 8, 72, 128, device=device, dtype=torch.float16)
        cd.unet_forward(unet, x, torch.zeros(10, device=device), emb, ids)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for w in plan:
            for _ in range(5):
                cd.unet_forward(unet, x[: w.end - w.start], torch.zeros(w.end - w.start, device=device), emb, ids)
        torch.cuda.synchronize()
        took = time.perf_counter() - start
    print(f"real-size UNet fp16 576x1024, {frames} frames, 5 steps, windows 10/5 (UNet only): {took / frames * 1000:.0f} ms/frame; peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB on {torch.cuda.get_device_name()} (DepthCrafter: ~466 ms/frame on an A100, published)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--real", action="store_true", help="real-size UNet on the GPU")
    args = parser.parse_args()
    if args.real:
        real(args.frames)
    else:
        tiny(args.frames)
