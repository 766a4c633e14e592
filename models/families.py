"""What a weight file is, from its key names: the families users put in ComfyUI's model folders.

A loader slot (the GS-DiT transformer, the T5 text encoder, a VAE, the ChronoDepth UNet) accepts some families;
a file of another family (a Flux transformer in the transformer slot, a CLIP-L in the T5 slot) is refused with
what it looks like, before anything is loaded. Only the safetensors header is read (:func:`loading.read_header`).

A family is recognised by marker keys, matched after any wrapping prefix (``model.diffusion_model.``,
``text_encoders.t5xxl.transformer.``, ...): a marker matches a key equal to it or ending in ``.<marker>``. The
first family (in :data:`FAMILIES` order: whole checkpoints first, specific before general, VAEs before UNets) whose markers are all present wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .loading import CheckpointFormatError, FileHeader, read_header


@dataclass(frozen=True)
class Family:
    name: str
    looks_like: str  # "a Flux transformer (diffusion model)"
    markers: tuple[str, ...]
    absent: tuple[str, ...] = ()  # markers that must NOT be present
    # Refines the description from shapes (e.g. CLIP-L vs CLIP-G by width); returns None to keep it.
    detail: Callable[[dict[str, tuple[int, ...]]], str | None] | None = None


def _width(shapes, marker: str, index: int = -1) -> int | None:
    for key, shape in shapes.items():
        if key == marker or key.endswith("." + marker):
            return int(shape[index]) if shape else None
    return None


def _clip_text(shapes):
    width = _width(shapes, "text_model.final_layer_norm.weight", 0)
    return {768: "a CLIP-L text encoder", 1280: "a CLIP-G (OpenCLIP bigG) text encoder", 1024: "an OpenCLIP ViT-H text encoder"}.get(width)


def _t5(shapes):
    width = _width(shapes, "encoder.final_layer_norm.weight", 0)
    return "a T5-XXL text encoder" if width == 4096 else f"a T5 text encoder ({width} wide, T5-XXL is 4096)"


def _ldm_vae(shapes):
    channels = _width(shapes, "encoder.conv_out.weight", 0)
    return {8: "an SD 1.x / SDXL image VAE (4 latent channels)", 32: "a Flux / SD3 image VAE (16 latent channels)"}.get(channels)


FAMILIES: tuple[Family, ...] = (
    # whole checkpoints (SGM/LDM single files: a VAE and a UNet inside)
    Family("svd_checkpoint", "a Stable Video Diffusion single-file checkpoint (svd_xt.safetensors)", ("first_stage_model.decoder.conv_out.time_mix_conv.weight", "conditioner.embedders.0.open_clip.model.visual.proj")),
    Family("sd_checkpoint", "an SD 1.x / SDXL single-file checkpoint", ("model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.encoder.conv_in.weight")),
    # video transformers
    Family("cogvideox_transformer", "a CogVideoX transformer (diffusers keys)", ("patch_embed.proj.weight", "patch_embed.text_proj.weight", "transformer_blocks.0.attn1.norm_q.weight", "time_embedding.linear_1.weight")),
    Family("cogvideox_sat", "a CogVideoX transformer (original CogVideo/SAT keys)", ("mixins.patch_embed.proj.weight", "transformer.layers.0.attention.query_key_value.weight")),
    Family("flux", "a Flux transformer (diffusion model)", ("double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight")),
    Family("flux_diffusers", "a Flux transformer (diffusers keys)", ("x_embedder.weight", "single_transformer_blocks.0.attn.to_q.weight")),
    Family("hunyuan_video", "a HunyuanVideo transformer", ("double_blocks.0.img_attn_qkv.weight",)),
    Family("sd3", "an SD3 / SD3.5 MMDiT (diffusion model)", ("joint_blocks.0.context_block.attn.qkv.weight",)),
    Family("wan", "a Wan 2.x video transformer", ("patch_embedding.weight", "blocks.0.self_attn.q.weight", "blocks.0.cross_attn.k.weight")),
    Family("ltxv", "an LTX-Video transformer", ("adaln_single.linear.weight", "transformer_blocks.0.attn1.to_q.weight")),
    # VAEs
    Family("cogvideox_vae", "a CogVideoX VAE (diffusers keys)", ("encoder.conv_in.conv.weight", "decoder.conv_out.conv.weight")),
    Family("svd_vae", "the Stable Video Diffusion temporal VAE (diffusers keys)", ("decoder.time_conv_out.weight", "encoder.conv_in.weight")),
    Family("vae_diffusers", "an image VAE (diffusers keys)", ("encoder.down_blocks.0.resnets.0.conv1.weight", "decoder.up_blocks.0.resnets.0.conv1.weight")),
    Family("ldm_vae", "an image VAE (original keys)", ("encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight"), detail=_ldm_vae),
    # UNets
    Family("svd_unet", "a Stable Video Diffusion-family UNet (diffusers keys: SVD or ChronoDepth)", ("conv_in.weight", "down_blocks.0.resnets.0.spatial_res_block.conv1.weight", "down_blocks.0.resnets.0.temporal_res_block.conv1.weight"), absent=("encoder.conv_in.weight",)),
    Family("unet_diffusers", "an image UNet (SD 1.x / SDXL, diffusers keys)", ("conv_in.weight", "down_blocks.0.resnets.0.conv1.weight", "mid_block.resnets.0.conv1.weight"), absent=("encoder.conv_in.weight",)),
    Family("sd_unet", "an SD 1.x / SDXL UNet (original keys)", ("input_blocks.0.0.weight", "middle_block.1.proj_in.weight")),
    # text encoders
    Family("umt5", "a UMT5 text encoder (Wan's umt5-xxl)", ("encoder.block.0.layer.0.SelfAttention.q.weight", "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight")),
    Family("t5", "a T5 text encoder", ("encoder.block.0.layer.0.SelfAttention.q.weight", "encoder.final_layer_norm.weight"), detail=_t5),
    Family("clip_text", "a CLIP text encoder", ("text_model.encoder.layers.0.self_attn.q_proj.weight",), detail=_clip_text),
    Family("clip_vision", "a CLIP vision encoder", ("vision_model.encoder.layers.0.self_attn.q_proj.weight",)),
    Family("open_clip_text", "an OpenCLIP text encoder", ("token_embedding.weight", "transformer.resblocks.0.attn.in_proj_weight")),
    Family("llm", "an LLM text encoder (Llama / Qwen / Gemma style)", ("layers.0.self_attn.q_proj.weight", "layers.0.mlp.gate_proj.weight")),
)
BY_NAME = {f.name: f for f in FAMILIES}


def _has(keys: list[str], marker: str) -> bool:
    dotted = "." + marker
    return any(k == marker or k.endswith(dotted) for k in keys)


def identify(shapes: dict[str, tuple[int, ...]]) -> tuple[Family, str] | None:
    """The family of a state dict's keys (and its description, refined from shapes), or None if unknown."""
    keys = list(shapes)
    for family in FAMILIES:
        if all(_has(keys, m) for m in family.markers) and not any(_has(keys, m) for m in family.absent):
            text = family.detail(shapes) if family.detail is not None else None
            return family, text or family.looks_like
    return None


def describe(header: FileHeader) -> str:
    """"looks like a Flux transformer (diffusion model), stored as bf16" or "has keys of no model family ..."."""
    found = identify(header.shapes)
    if found is None:
        return f"has keys of no model family this pack knows (first keys: {', '.join(sorted(header.shapes)[:4])})"
    return f"looks like {found[1]}, stored as {header.dtype_summary()}"


def expect_family(path, accepted: tuple[str, ...], slot: str, wants: str) -> tuple[FileHeader, Family]:
    """Read ``path``'s header and refuse it unless its family is one of ``accepted``.

    ``slot``: the loader input (``"text_encoder"``); ``wants``: what it takes, for the message.
    Raises :class:`CheckpointFormatError`: "<file> in 'text_encoder' looks like a CLIP-L text encoder, stored as
    fp16; text_encoder takes a T5-XXL text encoder (t5xxl_fp16.safetensors, ...)".
    """
    header = read_header(path)
    found = identify(header.shapes)
    if found is None or found[0].name not in accepted:
        raise CheckpointFormatError(f"{header.path.name} in '{slot}' {describe(header)}; '{slot}' takes {wants}")
    return header, found[0]
