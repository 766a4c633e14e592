"""Peak device memory of one GS-DiT clip, estimated before anything is allocated (refused with a clear error)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .pipeline import GSDiTPipeline


def estimate_memory(pipe: "GSDiTPipeline", frames: int, height: int, width: int, guidance: float) -> int:
    """Rough peak bytes on the device for one clip: resident weights + transformer activations + VAE decode.

    Tokens N = latent frames × (H/16) × (W/16) + text length; activations ≈ batch × N × inner × 16 values (q, k, v,
    4× MLP, residuals) with a memory-efficient attention (no N×N matrix); the VAE decodes a couple of latent frames
    at a time at full resolution (× 128 channels × ~6 buffers).
    """
    cfg = pipe.transformer.config
    item = torch.finfo(pipe.dtype).bits // 8
    params = {"transformer": sum(p.numel() for p in pipe.transformer.parameters()), "vae": sum(p.numel() for p in pipe.vae.parameters()), "text": sum(p.numel() for p in pipe.text_encoder.parameters())}
    if pipe.offload == "none":
        weights = sum(params.values()) * item
    elif pipe.offload == "model":
        weights = max(params.values()) * item
    else:
        weights = params["transformer"] * item // max(int(cfg.num_layers), 1) + params["vae"] * item
    lat_f = (frames - 1) // 4 + 1
    tokens = lat_f * (height // 16) * (width // 16) + int(cfg.max_text_seq_length)
    batch = 2 if guidance > 1.0 else 1
    inner = int(cfg.num_attention_heads) * int(cfg.attention_head_dim)
    activations = batch * tokens * inner * 16 * item
    vae = 12 * height * width * 128 * 6 * item if not pipe.vae.use_tiling else 12 * min(height, 480) * min(width, 720) * 128 * 6 * item // 2
    return int(weights + max(activations, vae))


def check_memory(pipe: "GSDiTPipeline", frames: int, height: int, width: int, guidance: float) -> int:
    """Raise ``MemoryError`` naming the estimate when it will not fit on the device (on the CPU only if absurd)."""
    need = estimate_memory(pipe, frames, height, width, guidance)
    if pipe.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(pipe.device)
        have, where = free + torch.cuda.memory_reserved(pipe.device) - torch.cuda.memory_allocated(pipe.device), f"free on {pipe.device}"
    else:
        try:
            have, where = 4 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "(4× the machine's RAM)"
        except (ValueError, OSError, AttributeError):
            return need
    if need > have:
        raise MemoryError(
            f"GSDiTSampler needs about {need / 2**30:.1f} GiB for {frames} frames at {width}x{height} but only {have / 2**30:.1f} GiB are {where}; "
            "use fewer frames or a smaller size, offload model/sequential, fp16/bf16, or guidance 1 (no unconditional pass)"
        )
    return need
