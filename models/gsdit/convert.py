"""Checkpoint inspection and key conversion: original CogVideo (SAT) transformer keys -> diffusers names.

Pure functions over state dicts (no model built, nothing loaded): what a file holds and how its keys map onto
``CogVideoXTransformer3DModel``. Loading lives in :mod:`.loading`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..loading import CheckpointFormatError

# Prefixes that wrap transformer keys in single files (SAT checkpoints, ComfyUI-style saves).
KEY_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "transformer.")

# Original CogVideo (SAT) → diffusers names. Global keys (prefix → prefix):
SAT_RENAMES = (
    ("transformer.final_layernorm.", "norm_final."),
    ("time_embed.0.", "time_embedding.linear_1."),
    ("time_embed.2.", "time_embedding.linear_2."),
    ("ofs_embed.0.", "ofs_embedding.linear_1."),
    ("ofs_embed.2.", "ofs_embedding.linear_2."),
    ("mixins.patch_embed.", "patch_embed."),
    ("mixins.final_layer.norm_final.", "norm_out.norm."),
    ("mixins.final_layer.linear.", "proj_out."),
    ("mixins.final_layer.adaLN_modulation.1.", "norm_out.linear."),
)
# Per block ``transformer.layers.{i}.<sat>`` → ``transformer_blocks.{i}.<diffusers>``:
SAT_BLOCK_RENAMES = (
    ("input_layernorm.", "norm1.norm."),
    ("attention.dense.", "attn1.to_out.0."),
    ("post_attention_layernorm.", "norm2.norm."),
    ("mlp.dense_h_to_4h.", "ff.net.0.proj."),
    ("mlp.dense_4h_to_h.", "ff.net.2."),
)
# Buffers SAT stores that diffusers recomputes.
SAT_DROPPED = ("embed_tokens", "freqs_sin", "freqs_cos", "position_embedding")


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove one wrapping prefix shared by every key (``model.diffusion_model.`` etc.)."""
    for prefix in KEY_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            # "transformer." is also the start of SAT block keys: strip it only when nothing else would be left.
            if prefix == "transformer." and any(k.startswith("transformer.layers.") for k in state):
                continue
            return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def is_sat_layout(state: dict) -> bool:
    return any(k.startswith(("transformer.layers.", "mixins.")) for k in state)


def convert_sat_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original CogVideo (SAT) transformer keys (prefix stripped) → diffusers ``CogVideoXTransformer3DModel`` keys.

    Fused ``query_key_value`` is split into ``to_q/to_k/to_v``; each block's 12-way ``adaLN_modulations`` output
    is regrouped as chunks 0–2 + 6–8 → ``norm1.linear`` and 3–5 + 9–11 → ``norm2.linear``; per-block q/k
    layer norms come from ``query_layernorm_list`` / ``key_layernorm_list``; rotary tables and the sinusoidal
    position buffer are dropped (diffusers recomputes them). CogVideoX 1.0 layout.
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if any(d in key for d in SAT_DROPPED):
            continue
        parts = key.split(".")
        if key.startswith("transformer.layers."):
            i, rest = parts[2], ".".join(parts[3:])
            pre = f"transformer_blocks.{i}."
            if rest.startswith("attention.query_key_value."):
                wb = parts[-1]
                for name, chunk in zip("qkv", value.chunk(3, dim=0)):
                    out[pre + f"attn1.to_{name}.{wb}"] = chunk
                continue
            renamed = next((diff + rest[len(sat):] for sat, diff in SAT_BLOCK_RENAMES if rest.startswith(sat)), None)
            if renamed is None:
                unknown.append(key)
            else:
                out[pre + renamed] = value
        elif key.startswith("mixins.adaln_layer.adaLN_modulations."):
            i, wb = parts[3], parts[-1]
            c = value.chunk(12, dim=0)
            out[f"transformer_blocks.{i}.norm1.linear.{wb}"] = torch.cat(c[0:3] + c[6:9])
            out[f"transformer_blocks.{i}.norm2.linear.{wb}"] = torch.cat(c[3:6] + c[9:12])
        elif key.startswith(("mixins.adaln_layer.query_layernorm_list.", "mixins.adaln_layer.key_layernorm_list.")):
            i, wb = parts[3], parts[-1]
            which = "norm_q" if "query" in parts[2] else "norm_k"
            out[f"transformer_blocks.{i}.attn1.{which}.{wb}"] = value
        else:
            renamed = next((diff + key[len(sat):] for sat, diff in SAT_RENAMES if key.startswith(sat)), None)
            if renamed is None:
                unknown.append(key)
            else:
                out[renamed] = value
    if unknown:
        raise CheckpointFormatError(f"original CogVideo checkpoint has keys this converter does not know (CogVideoX 1.0 layout expected): {unknown[:6]}")
    return out


def in_channels_of(state: dict[str, torch.Tensor]) -> int:
    """Transformer input channels from ``patch_embed.proj.weight`` (conv ``[inner, C, p, p]`` or linear ``[inner, C·p·p·pt]``)."""
    w = state.get("patch_embed.proj.weight")
    if w is None:
        raise CheckpointFormatError("transformer weights have no 'patch_embed.proj.weight'; not a CogVideoX transformer")
    return int(w.shape[1])


def transformer_in_channels(folder) -> int:
    """Input channels of a diffusers ``transformer/`` folder, read from the ``patch_embed.proj.weight`` header
    of its safetensors (sharded or not) without loading the weights."""
    from safetensors import safe_open

    folder = Path(folder)
    index = sorted(folder.glob("*.safetensors.index.json"))
    if index:
        shard = json.loads(index[0].read_text())["weight_map"].get("patch_embed.proj.weight")
        files = [folder / shard] if shard else []
    else:
        files = sorted(folder.glob("*.safetensors"))
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            if "patch_embed.proj.weight" in handle.keys():
                return int(handle.get_slice("patch_embed.proj.weight").get_shape()[1])
    raise CheckpointFormatError(f"{folder}: no safetensors file with 'patch_embed.proj.weight' (is this a CogVideoX transformer folder?)")


def check_channels(in_channels: int, vae_latent_channels: int, out_channels: int, where) -> None:
    """A transformer takes C (T2V), 2C (I2V / GS-DiT) or 2C + 1 (GS-DiT + hole mask) channels of a C-channel VAE."""
    c = vae_latent_channels
    if out_channels != c or in_channels not in (c, 2 * c, 2 * c + 1):
        raise CheckpointFormatError(
            f"{where}: the VAE has {c} latent channels but the transformer takes {in_channels} and predicts {out_channels} "
            f"(expected in {c}, {2 * c} or {2 * c + 1}, out {c}); the VAE and transformer come from different models"
        )
