"""Sampling: how GS-DiT conditions CogVideoX on the render (the two modes of ``GSDiTPipeline.__call__``).

The CogVideoX pieces that are not ours come from diffusers' ``CogVideoXVideoToVideoPipeline`` (built around the
loaded components for each call, see :func:`diffusers_pipeline`): T5 prompt encoding, the 3D rotary embeddings,
the SDEdit timestep cut (``get_timesteps``), latent decoding, the noise (``randn_tensor``). What is ours is the
conditioning: the render's latents as extra channels (``gsdit``) or as the kept region after every step
(``training_free``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ...py.checks import check_finite_number, check_image, check_mask, check_positive_int
from .memory import check_memory
from .shapes import latent_hole_mask, snap_video

MODES = ("gsdit", "training_free")
SCHEDULERS = ("ddim", "dpm")


@dataclass
class GSDiTPipeline:
    """Loaded CogVideoX components. Call it on a render (see :meth:`__call__`)."""

    transformer: object
    vae: object
    text_encoder: object
    tokenizer: object
    scheduler_config: dict
    path: Path
    device: torch.device
    dtype: torch.dtype
    offload: str = "none"
    stats: dict = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return int(self.transformer.patch_embed.proj.weight.shape[1])

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def kind(self) -> str:
        """``t2v`` (16 ch), ``i2v_or_gsdit`` (32), ``gsdit_mask`` (33)."""
        c = self.latent_channels
        return {c: "t2v", 2 * c: "i2v_or_gsdit", 2 * c + 1: "gsdit_mask"}[self.in_channels]

    def describe(self) -> str:
        cfg = self.transformer.config
        return f"{self.path.name}: transformer {cfg.num_layers} layers, {self.in_channels} input channels ({self.kind}), {self.dtype}, offload {self.offload}"

    def __call__(self, render, holes=None, prompt: str = "", negative_prompt: str = "", mode: str = "gsdit", strength: float = 0.8, num_steps: int = 50, guidance: float = 6.0, seed: int = 0, scheduler: str = "ddim", feather: float = 1.0, callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Generate ``[T', H', W', 3]`` (0..1) from ``render`` ``[T, H, W, 3]`` and ``holes`` ``[T, H, W]`` (1 = hole).

        T' = the largest ``8k + 1 <= T``; H', W' = H, W centre-cropped to multiples of 16. ``callback(done, total)``
        runs after each denoising step (raise in it to cancel). ``strength`` only applies to ``training_free``.
        """
        return sample(self, render, holes, prompt, negative_prompt, mode, strength, num_steps, guidance, seed, scheduler, feather, callback)


class _OnDevice:
    """With model offload, a component lives on the CPU and visits the device only while it runs."""

    def __init__(self, pipe: GSDiTPipeline, module):
        self.pipe, self.module = pipe, module

    def __enter__(self):
        if self.pipe.offload == "model":
            self.module.to(self.pipe.device)
        return self.module

    def __exit__(self, *exc):
        if self.pipe.offload == "model":
            self.module.to("cpu")
            if self.pipe.device.type == "cuda":
                torch.cuda.empty_cache()


def make_scheduler(pipe: GSDiTPipeline, name: str):
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

    if name not in SCHEDULERS:
        raise ValueError(f"scheduler: expected one of {SCHEDULERS}, got {name!r}")
    cls = CogVideoXDDIMScheduler if name == "ddim" else CogVideoXDPMScheduler
    return cls.from_config(pipe.scheduler_config)


def diffusers_pipeline(pipe: GSDiTPipeline, scheduler=None):
    """diffusers' ``CogVideoXVideoToVideoPipeline`` around the loaded components (no copy, nothing loaded),
    for the pieces of CogVideoX sampling we do not write ourselves."""
    from diffusers import CogVideoXVideoToVideoPipeline

    sched = scheduler if scheduler is not None else make_scheduler(pipe, "ddim")
    return CogVideoXVideoToVideoPipeline(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae, transformer=pipe.transformer, scheduler=sched)


def rotary_embeddings(host, lat_frames: int, lat_h: int, lat_w: int, device):
    """diffusers' 3D rotary embeddings (cos, sin) for a latent video, or None for models without them (2B)."""
    if not host.transformer.config.use_rotary_positional_embeddings:
        return None
    scale = host.vae_scale_factor_spatial
    return host._prepare_rotary_positional_embeddings(lat_h * scale, lat_w * scale, lat_frames, device)


def encode_prompt(pipe: GSDiTPipeline, prompt: str, negative_prompt: str = "", guidance: float = 1.0, host=None) -> torch.Tensor:
    """T5 embeddings ``[B, L, D]`` padded to the transformer's text length: ``[negative, prompt]`` when
    ``guidance > 1`` (classifier-free guidance), else ``[prompt]``."""
    host = host if host is not None else diffusers_pipeline(pipe)
    with _OnDevice(pipe, pipe.text_encoder), torch.no_grad():
        cond, uncond = host.encode_prompt(
            prompt, negative_prompt, do_classifier_free_guidance=guidance > 1.0, max_sequence_length=int(pipe.transformer.config.max_text_seq_length), device=pipe.device, dtype=pipe.dtype
        )
    return cond if uncond is None else torch.cat([uncond, cond])


def encode_video(pipe: GSDiTPipeline, video: torch.Tensor) -> torch.Tensor:
    """``[T, H, W, 3]`` 0..1 → scaled latents ``[1, T', C, H/8, W/8]`` (distribution mean: deterministic)."""
    x = (video.permute(3, 0, 1, 2)[None] * 2 - 1).to(pipe.device, pipe.dtype)
    with _OnDevice(pipe, pipe.vae) as vae, torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
    return (z * pipe.vae.config.scaling_factor).permute(0, 2, 1, 3, 4)


def decode_latents(pipe: GSDiTPipeline, latents: torch.Tensor, host=None) -> torch.Tensor:
    """``[1, F, C, h, w]`` → ``[T, H, W, 3]`` 0..1 on the CPU."""
    host = host if host is not None else diffusers_pipeline(pipe)
    with _OnDevice(pipe, pipe.vae), torch.no_grad():
        x = host.decode_latents(latents.to(pipe.dtype))
    return ((x[0].permute(1, 2, 3, 0).float() + 1) / 2).clamp(0, 1).cpu()


def sample(pipe: GSDiTPipeline, render, holes, prompt, negative_prompt="", mode="gsdit", strength=0.8, num_steps=50, guidance=6.0, seed=0, scheduler="ddim", feather=1.0, callback=None) -> torch.Tensor:
    """See :meth:`GSDiTPipeline.__call__`."""
    render = check_image("render", render)
    t, h, w, _ = render.shape
    holes = torch.zeros(t, h, w) if holes is None else check_mask("holes", holes, frames=t, height=h, width=w).clamp(0, 1)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    num_steps = check_positive_int("steps", num_steps, maximum=1000)
    guidance = check_finite_number("guidance", guidance, low=0.0, high=100.0)
    strength = check_finite_number("strength", strength, low=0.0, high=1.0)
    c, in_ch = pipe.latent_channels, pipe.in_channels
    if mode == "gsdit" and in_ch == c:
        raise ValueError(f"mode gsdit needs a GS-DiT checkpoint (transformer with {2 * c} or {2 * c + 1} input channels: noisy + render latents); {pipe.path.name} takes {in_ch} (plain CogVideoX): use mode training_free")
    if mode == "training_free" and in_ch == 2 * c + 1:
        raise ValueError(f"mode training_free needs a public CogVideoX ({c} channels T2V or {2 * c} channels I2V); {pipe.path.name} takes {in_ch} (a GS-DiT checkpoint with a mask channel): use mode gsdit")
    render, holes = snap_video(render), snap_video(holes)
    t, h, w = holes.shape
    check_memory(pipe, t, h, w, guidance)
    dev, dtype = pipe.device, pipe.dtype
    cfg = pipe.transformer.config

    z_render = encode_video(pipe, render)  # [1, F, C, h/8, w/8]
    lat_f, lat_h, lat_w = z_render.shape[1], z_render.shape[3], z_render.shape[4]
    hole_lat = latent_hole_mask(holes, feather).to(dev, torch.float32)[None, :, None]  # [1, F, 1, h, w]

    from diffusers.utils.torch_utils import randn_tensor

    sched = make_scheduler(pipe, scheduler)
    host = diffusers_pipeline(pipe, sched)
    sched.set_timesteps(num_steps, device=dev)
    timesteps = sched.timesteps
    # CPU generator: the same noise for a seed on every device.
    noise = randn_tensor(z_render.shape, generator=torch.Generator("cpu").manual_seed(int(seed)), device=dev, dtype=torch.float32)
    z_render = z_render.float()

    if mode == "gsdit":
        latents = noise * sched.init_noise_sigma
        # 33 channels: the hole mask at latent size (1 = hole, no feathering) as the last channel.
        cond = z_render if in_ch == 2 * c else torch.cat([z_render, latent_hole_mask(holes, 0.0).to(dev)[None, :, None]], dim=2)
    else:
        timesteps, kept = host.get_timesteps(num_steps, timesteps, strength, dev)  # SDEdit: skip the first (1 - strength)
        if kept == 0:
            raise ValueError(f"strength {strength} × steps {num_steps} leaves no denoising step; raise strength or steps")
        latents = noise * sched.init_noise_sigma if kept == num_steps else sched.add_noise(z_render, noise, timesteps[:1])
        cond = None
        if in_ch == 2 * c:  # I2V: the render's first frame as the image condition
            image = encode_video(pipe, render[:1]).float()
            if getattr(pipe.vae.config, "invert_scale_latents", False):
                image = image / pipe.vae.config.scaling_factor ** 2
            cond = torch.cat([image, torch.zeros_like(z_render[:, 1:])], dim=1)

    # CogVideoX 1.5 patches 2 latent frames together: pad at the front (dropped after decoding).
    pad = (-lat_f) % cfg.patch_size_t if cfg.patch_size_t else 0
    rotary = rotary_embeddings(host, lat_f + pad, lat_h, lat_w, dev)
    embeds = encode_prompt(pipe, prompt, negative_prompt, guidance, host=host)  # [uncond, cond] with guidance
    ofs = latents.new_full((1,), 2.0).to(dtype) if cfg.ofs_embed_dim else None
    batch = embeds.shape[0]
    old_pred = None
    is_dpm = scheduler == "dpm"
    calls = 0
    with _OnDevice(pipe, pipe.transformer) as transformer, torch.no_grad():
        for i, step_t in enumerate(timesteps):
            x = sched.scale_model_input(latents, step_t)
            if cond is not None:
                x = torch.cat([x, cond], dim=2)
            if pad:
                x = torch.cat([x[:, :pad], x], dim=1)
            x = x.to(dtype).expand(batch, -1, -1, -1, -1)
            out = transformer(hidden_states=x, encoder_hidden_states=embeds, timestep=step_t.expand(batch), ofs=ofs, image_rotary_emb=rotary, return_dict=False)[0].float()
            calls += batch
            out = out[:, pad:]
            if guidance > 1.0:
                uncond, text = out.chunk(2)
                out = uncond + guidance * (text - uncond)
            if is_dpm:
                prev_t = timesteps[i - 1] if i > 0 else None
                latents, old_pred = sched.step(out, old_pred, step_t, prev_t, latents, return_dict=False)
            else:
                latents = sched.step(out, step_t, latents, return_dict=False)[0]
            latents = latents.float()
            if mode == "training_free":
                known = sched.add_noise(z_render, noise, timesteps[i + 1 : i + 2]) if i + 1 < len(timesteps) else z_render
                latents = hole_lat * latents + (1 - hole_lat) * known
            if callback is not None:
                callback(i + 1, len(timesteps))
    pipe.stats = {"transformer_evaluations": calls, "steps": len(timesteps), "frames": t, "height": h, "width": w}
    return decode_latents(pipe, latents, host=host)
