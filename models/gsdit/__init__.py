"""GS-DiT's video generator: a CogVideoX DiT that turns a pseudo-4D render (with holes) into a clean video.

Two ways to condition CogVideoX on the render (``GSDiTPipeline.__call__``):

- ``mode="gsdit"`` (the paper's): the render's VAE latents are concatenated with the noisy latents along
  channels (16 + 16 = 32 transformer input channels, or 33 with the hole mask downsampled to latent size as an
  extra channel, 1 = hole); sampling starts from pure noise. Needs a GS-DiT-style fine-tuned checkpoint.
- ``mode="training_free"`` (**ours, not the paper's**): a public CogVideoX (T2V, 16 channels; or I2V, 32 channels,
  with the render's first frame as the image condition) is run SDEdit-style: start from the render's latents
  noised to ``strength`` (the first ``(1 - strength)`` of the schedule is skipped) and, after every step, the
  known regions (no hole) are replaced by the render's latents noised to the current level, with a feathered
  latent mask, so the model only invents the holes.

Snapping (documented contract): the frame count T is cut to the largest ``8k + 1 <= T`` (trailing frames dropped:
the CogVideoX VAE maps ``4k + 1`` frames to ``k + 1`` latent frames but decodes an even latent count to ``4(k + 1)``
frames, so only odd latent counts come back whole; 49 frames = 13 latents), and height/width are centre-cropped to the
largest multiples of 16 (8× VAE × patch 2). The output is ``[T', H', W', 3]`` at that size.

Weights load from diffusers folders (``transformer/ vae/ text_encoder/ tokenizer/ scheduler/``) or a single-file
transformer (diffusers key names, or original CogVideo/SAT key names, converted by :func:`convert_sat_keys`) whose
other parts come from a diffusers folder. The transformer's input channel count is always read from
``patch_embed.proj.weight``. diffusers/transformers are imported inside functions only.

The package is split like diffusers (models / pipelines / loaders): :mod:`.convert` (checkpoint inspection,
SAT → diffusers keys), :mod:`.loading` (folders and single files → :class:`GSDiTPipeline`), :mod:`.memory`
(the peak estimate checked before sampling), :mod:`.pipeline` (the sampling loop, on diffusers' CogVideoX
pieces), :mod:`.shapes` (frame/size snapping, the latent hole mask). Everything below is importable from
``models.gsdit`` as before.
"""

from .convert import KEY_PREFIXES, SAT_BLOCK_RENAMES, SAT_DROPPED, SAT_RENAMES, check_channels, convert_sat_keys, in_channels_of, is_sat_layout, strip_prefix, transformer_in_channels
from .loading import OFFLOAD_MODES, PARTS, load_pipeline, parse_dtype
from .memory import check_memory, estimate_memory
from .pipeline import MODES, SCHEDULERS, GSDiTPipeline, decode_latents, diffusers_pipeline, encode_prompt, encode_video, make_scheduler, rotary_embeddings, sample
from .shapes import LATENT_CHANNELS, SPATIAL_MULTIPLE, latent_hole_mask, snap_frames, snap_size, snap_video

__all__ = [
    "KEY_PREFIXES", "SAT_BLOCK_RENAMES", "SAT_DROPPED", "SAT_RENAMES", "check_channels", "convert_sat_keys", "in_channels_of", "is_sat_layout", "strip_prefix",
    "transformer_in_channels", "OFFLOAD_MODES", "PARTS", "load_pipeline", "parse_dtype", "check_memory", "estimate_memory", "MODES", "SCHEDULERS",
    "GSDiTPipeline", "decode_latents", "diffusers_pipeline", "encode_prompt", "encode_video", "make_scheduler", "rotary_embeddings", "sample",
    "LATENT_CHANNELS", "SPATIAL_MULTIPLE", "latent_hole_mask", "snap_frames", "snap_size", "snap_video",
]
