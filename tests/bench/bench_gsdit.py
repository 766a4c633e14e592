"""GSDiTSampler benchmark: sampler overhead over the raw transformer calls (tiny model), peak memory vs frame count,
and on a CUDA GPU seconds per step of a real-size random-weight CogVideoX-5B transformer in bf16 at 49×480×720.

    python tests/bench/bench_gsdit.py [--gpu-5b]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed_transformer(pipe):
    spent = [0.0]
    fwd = pipe.transformer.forward

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = fwd(*a, **k)
        spent[0] += time.perf_counter() - t0
        return out

    pipe.transformer.forward = timed
    return spent


def tiny_overhead(root: Path) -> None:
    from vid4d.models import gsdit as gs

    pipe = gs.load_pipeline(root / "gsdit" / "CogVideoX-2b")
    render = torch.rand(9, 32, 48, 3)
    holes = torch.zeros(9, 32, 48)
    holes[:, :, 32:] = 1
    steps = 10
    z = gs.encode_video(pipe, render)
    # Time the denoising loop only (VAE encode/decode are not sampler overhead): decode is stubbed out.
    from vid4d.models.gsdit import pipeline as sampling

    decode = sampling.decode_latents
    sampling.decode_latents = lambda p, lat, host=None: lat
    try:
        spent = _timed_transformer(pipe)
        pipe(render, holes, "a room", mode="training_free", strength=1.0, num_steps=steps, guidance=6.0)
        spent[0] = 0.0
        t0 = time.perf_counter()
        pipe(render, holes, "a room", mode="training_free", strength=1.0, num_steps=steps, guidance=6.0)
        total = time.perf_counter() - t0
    finally:
        sampling.decode_latents = decode
    enc = time.perf_counter()
    gs.encode_video(pipe, render)
    enc = time.perf_counter() - enc
    loop = total - enc
    print(f"tiny model, {steps} steps CFG 6: loop {loop * 1000:.1f} ms (VAE encode {enc * 1000:.1f} ms excluded), transformer {spent[0] * 1000:.1f} ms, overhead {100 * (loop - spent[0]) / spent[0]:.1f}% (latents {tuple(z.shape)})")
    for frames in (9, 17, 33, 49):
        est = gs.estimate_memory(pipe, frames, 480, 720, 6.0)
        print(f"  estimated peak for {frames} frames 720x480 CFG (tiny weights): {est / 2**20:.0f} MiB")


def gpu_5b(offloads=("none", "model")) -> None:
    """Seconds per step of a random-weight CogVideoX-5B-I2V-size transformer (42 layers, 48 heads × 64) in bf16."""
    from diffusers import CogVideoXTransformer3DModel

    from vid4d.models.gsdit import GSDiTPipeline, diffusers_pipeline, rotary_embeddings

    dev = torch.device("cuda")
    model = CogVideoXTransformer3DModel(num_attention_heads=48, attention_head_dim=64, in_channels=32, num_layers=42, use_rotary_positional_embeddings=True, ofs_embed_dim=None).to(torch.bfloat16).eval()
    x = torch.randn(2, 13, 32, 60, 90, dtype=torch.bfloat16, device=dev)
    text = torch.randn(2, 226, 4096, dtype=torch.bfloat16, device=dev)
    fake = GSDiTPipeline(model, None, None, None, {}, Path("5b"), dev, torch.bfloat16)
    rot = rotary_embeddings(diffusers_pipeline(fake), 13, 60, 90, dev)
    for offload in offloads:
        if offload == "none":
            model.to(dev)
            run = lambda: model(hidden_states=x, encoder_hidden_states=text, timestep=torch.tensor([500, 500], device=dev), image_rotary_emb=rot, return_dict=False)
        else:
            model.to("cpu")

            def run():
                model.to(dev)
                out = model(hidden_states=x, encoder_hidden_states=text, timestep=torch.tensor([500, 500], device=dev), image_rotary_emb=rot, return_dict=False)
                model.to("cpu")
                return out
        with torch.no_grad():
            run()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(3):
                run()
            torch.cuda.synchronize()
        print(f"5B bf16 49x480x720 CFG batch 2, offload {offload}: {(time.perf_counter() - t0) / 3:.2f} s/step, peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpu-5b", action="store_true")
    args = parser.parse_args()
    import tiny_cogvideox

    with tempfile.TemporaryDirectory() as tmp:
        tiny_cogvideox.build(Path(tmp))
        tiny_overhead(Path(tmp))
    if args.gpu_5b and torch.cuda.is_available():
        gpu_5b()
