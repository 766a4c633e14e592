"""Tiny random-weight CogVideoX components in the diffusers folder layout users download (for GSDiTSampler tests).

``build(root)`` writes, under ``root/gsdit/``:

- ``CogVideoX-2b/``: a 16-input-channel text-to-video model (training-free mode), the real folder name;
- ``CogVideoX-5b-I2V/``: a 32-channel image-to-video model (training-free mode with the first frame as image);
- ``GS-DiT-33/``: a 33-channel GS-DiT-style model (16 noisy + 16 render + 1 hole mask);
- ``GS-DiT-bad-vae/``: a GS-DiT layout whose VAE has 8 latent channels (must be refused);
- ``cogvideox_tiny_transformer.safetensors`` (diffusers keys) and ``cogvideox_tiny_sat.safetensors`` (original
  CogVideo keys under ``model.diffusion_model.``) — single-file transformers; the text encoder, tokenizer, VAE and
  scheduler then come from ``CogVideoX-2b/``.

Every folder has ``transformer/ vae/ text_encoder/ tokenizer/ scheduler/`` and ``model_index.json``.
All weights are random; the models are real diffusers/transformers classes at toy size.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TEXT_DIM = 32
MAX_TEXT = 16
HEADS, HEAD_DIM = 2, 16

# Example workflows at test size (tests/test_workflows.py applies these per node type).
WORKFLOW_OVERRIDES = {
    "GSDiTSampler": {"steps": 2, "guidance": 2.0},
    "Vid4DGSDiTModelLoader": {"dtype": "fp32", "offload": "none"},
}

_WORDS = ["a", "the", "cat", "camera", "room", "ball", "video", "scene", "moves", "spins", "box", "of", "on", "blurry", "low", "quality"]


def tiny_transformer(in_channels: int, *, ofs: bool = False, seed: int = 0):
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(seed)
    return CogVideoXTransformer3DModel(
        num_attention_heads=HEADS,
        attention_head_dim=HEAD_DIM,
        in_channels=in_channels,
        out_channels=16,
        time_embed_dim=16,
        ofs_embed_dim=16 if ofs else None,
        text_embed_dim=TEXT_DIM,
        num_layers=2,
        sample_width=6,
        sample_height=4,
        sample_frames=9,
        max_text_seq_length=MAX_TEXT,
        use_rotary_positional_embeddings=True,
    )


def tiny_vae(latent_channels: int = 16, seed: int = 0):
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(seed)
    return AutoencoderKLCogVideoX(
        block_out_channels=(4, 4, 4, 4),
        latent_channels=latent_channels,
        layers_per_block=0,
        norm_num_groups=2,
        scaling_factor=0.7,
    )


def tiny_text_encoder(seed: int = 0):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    config = T5Config(vocab_size=64, d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=1, num_heads=2, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", is_encoder_decoder=False)
    return T5EncoderModel(config)


def tiny_tokenizer():
    """A T5 (Unigram) tokenizer over a handful of words, built locally: pad 0, eos 1, unk 2 as in T5."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + w, -3.0) for w in _WORDS]
    vocab += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=MAX_TEXT)


def scheduler_config() -> dict:
    # CogVideoX's published scheduler settings (v-prediction, zero-SNR, trailing spacing).
    return {
        "_class_name": "CogVideoXDDIMScheduler",
        "snr_shift_scale": 3.0,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "rescale_betas_zero_snr": True,
        "set_alpha_to_one": True,
        "timestep_spacing": "trailing",
    }


def save_folder(target: Path, transformer, vae, text_encoder, tokenizer, pipeline_class: str = "CogVideoXPipeline") -> Path:
    target.mkdir(parents=True, exist_ok=True)
    transformer.save_pretrained(target / "transformer")
    vae.save_pretrained(target / "vae")
    text_encoder.save_pretrained(target / "text_encoder")
    tokenizer.save_pretrained(target / "tokenizer")
    (target / "scheduler").mkdir(exist_ok=True)
    (target / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config(), indent=1))
    index = {
        "_class_name": pipeline_class,
        "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLCogVideoX"],
    }
    (target / "model_index.json").write_text(json.dumps(index, indent=1))
    return target


def to_original_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Diffusers transformer keys → original CogVideo (SAT) keys under ``model.diffusion_model.``: the inverse of
    the loader's documented mapping, so the test exercises the real conversion path."""
    from vid4d.models.gsdit import SAT_BLOCK_RENAMES, SAT_RENAMES

    out: dict[str, torch.Tensor] = {}
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("transformer_blocks."):
            i, rest = key.split(".", 2)[1:]
            blocks.setdefault(int(i), {})[rest] = value
            continue
        sat = next((s + key[len(d):] for s, d in SAT_RENAMES if key.startswith(d)), key)
        out[sat] = value
    for i, b in blocks.items():
        pre, mix = f"transformer.layers.{i}.", "mixins.adaln_layer."
        for wb in ("weight", "bias"):
            out[pre + f"attention.query_key_value.{wb}"] = torch.cat([b.pop(f"attn1.to_{n}.{wb}") for n in "qkv"])
            n1, n2 = b.pop(f"norm1.linear.{wb}").chunk(6), b.pop(f"norm2.linear.{wb}").chunk(6)
            out[mix + f"adaLN_modulations.{i}.1.{wb}"] = torch.cat(n1[:3] + n2[:3] + n1[3:] + n2[3:])
            out[mix + f"query_layernorm_list.{i}.{wb}"] = b.pop(f"attn1.norm_q.{wb}")
            out[mix + f"key_layernorm_list.{i}.{wb}"] = b.pop(f"attn1.norm_k.{wb}")
        for rest, value in b.items():
            out[pre + next(s + rest[len(d):] for s, d in SAT_BLOCK_RENAMES if rest.startswith(d))] = value
    return {"model.diffusion_model." + k: v.contiguous() for k, v in out.items()}


def build(root: Path) -> None:
    from safetensors.torch import save_file

    gsdit = Path(root) / "gsdit"
    text_encoder, tokenizer = tiny_text_encoder(), tiny_tokenizer()
    vae = tiny_vae()
    t2v = tiny_transformer(16, seed=1)
    save_folder(gsdit / "CogVideoX-2b", t2v, vae, text_encoder, tokenizer)
    save_folder(gsdit / "CogVideoX-5b-I2V", tiny_transformer(32, ofs=False, seed=2), vae, text_encoder, tokenizer, "CogVideoXImageToVideoPipeline")
    save_folder(gsdit / "GS-DiT-33", tiny_transformer(33, seed=3), vae, text_encoder, tokenizer)
    save_folder(gsdit / "GS-DiT-bad-vae", tiny_transformer(32, seed=4), tiny_vae(latent_channels=8), text_encoder, tokenizer)
    state = {k: v.contiguous() for k, v in t2v.state_dict().items()}
    save_file(state, str(gsdit / "cogvideox_tiny_transformer.safetensors"))
    save_file(to_original_keys(state), str(gsdit / "cogvideox_tiny_sat.safetensors"))
