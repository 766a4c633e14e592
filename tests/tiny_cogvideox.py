"""Tiny random-weight CogVideoX parts, written in the layouts users download (for GSDiTSampler and its loader).

``build(root)`` writes

- ``root/gsdit/CogVideoX-2b/`` — THUDM's snapshot layout: ``model_index.json``, ``scheduler/scheduler_config.json``,
  ``text_encoder/`` (``config.json``, ``model-00001-of-00002.safetensors``, ``model-00002-of-00002.safetensors``,
  ``model.safetensors.index.json``), ``tokenizer/`` (``spiece.model``, ``tokenizer_config.json``,
  ``special_tokens_map.json``, ``added_tokens.json`` and **no** ``tokenizer.json``), ``transformer/`` (``config.json``,
  ``diffusion_pytorch_model.safetensors``), ``vae/`` (``config.json``, ``diffusion_pytorch_model.safetensors``).
  A 16-channel text-to-video model with sin-cos positions and the 2B's scheduler (snr shift 3) and VAE scale.
- ``root/gsdit/CogVideoX-5b-I2V/`` — the same layout with the transformer in two shards + index, rotary
  embeddings, 32 input channels, the 5B scheduler and VAE scale;
- ``root/gsdit/GS-DiT-33/`` (16 noisy + 16 render + 1 hole mask) and ``GS-DiT-bad-vae/`` (an 8-channel VAE, refused);
- ``root/gsdit/cogvideox_tiny_transformer.safetensors`` (diffusers keys) and ``cogvideox_tiny_sat.safetensors``
  (original CogVideo keys under ``model.diffusion_model.``): the 2B transformer as single files;
- ComfyUI's folders: ``root/diffusion_models/cogvideox_2b_bf16.safetensors`` and ``..._fp8_e4m3fn.safetensors`` (the 2B
  transformer), ``root/text_encoders/t5xxl_fp16.safetensors``, ``t5xxl_fp8_e4m3fn.safetensors`` and
  ``t5xxl_fp8_e4m3fn_scaled.safetensors`` (ComfyUI's T5-XXL key names: ``shared.weight``, ``encoder.*``; the scaled
  one with ``scaled_fp8`` and ``*.scale_weight``), ``root/vae/cogvideox_vae_bf16.safetensors``;
- ``root/comfyui/comfy/text_encoders/t5_tokenizer/``: the tokenizer as ComfyUI carries it (``tokenizer.json``,
  ``tokenizer_config.json``, ``special_tokens_map.json``), the same vocabulary as ``spiece.model``.

The 2B's weights are rounded through float8_e4m3fn once, so every single-file dtype (fp32/bf16/fp16/fp8) holds
exactly the folder's values and each layout must give the folder's output bit for bit. Sizes are toy (32 wide,
2 layers); what is not a size follows the published configs (text length 226, sample 49×60×90, T5's 32128-row
vocabulary and 100 sentinels). One deviation: the 5B-I2V here has no learned position table (the published one
does, which pins the size to 49×480×720), so tests can run it at 32×48.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

TEXT_DIM = 32
VOCAB = 32128  # T5's embedding rows (32100 tokens, padded)
EXTRA_IDS = 100
MAX_TEXT = 226
HEADS, HEAD_DIM = 2, 16

# Example workflows at test size (tests/test_workflows.py applies these per node type).
WORKFLOW_OVERRIDES = {
    "GSDiTSampler": {"steps": 2, "guidance": 2.0},
    "Vid4DGSDiTModelLoader": {"dtype": "fp32", "offload": "none"},
}

_WORDS = ["a", "the", "cat", "camera", "room", "ball", "video", "scene", "moves", "spins", "box", "of", "on", "blurry", "low", "quality", "orbit", "red", "blue", "dog"]
_SPIECE: bytes | None = None


def fp8_exact(module):
    """Round every floating weight through float8_e4m3fn (then each dtype down to fp8 stores the same values)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(torch.float8_e4m3fn).to(p.dtype))
    return module


def tiny_transformer(in_channels: int, *, rotary: bool = True, ofs: bool = False, seed: int = 0):
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
        sample_width=90,
        sample_height=60,
        sample_frames=49,
        max_text_seq_length=MAX_TEXT,
        use_rotary_positional_embeddings=rotary,
    )


def tiny_vae(latent_channels: int = 16, scaling_factor: float = 0.7, seed: int = 0):
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(seed)
    # 32 channels: the published config's group norm has 32 groups; layers_per_block 0 keeps it fast.
    return AutoencoderKLCogVideoX(block_out_channels=(32, 32, 32, 32), latent_channels=latent_channels, layers_per_block=0, norm_num_groups=32, scaling_factor=scaling_factor, sample_height=480, sample_width=720)


def tiny_text_encoder(seed: int = 0):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    config = T5Config(vocab_size=VOCAB, d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=1, num_heads=2, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", is_encoder_decoder=False)
    return T5EncoderModel(config)


def spiece_model() -> bytes:
    """A real SentencePiece unigram model (T5's ids: pad 0, eos 1, unk 2, no bos), trained on a few words."""
    global _SPIECE
    if _SPIECE is None:
        import sentencepiece as spm

        lines = [" ".join(_WORDS[i:] + _WORDS[:i]) for i in range(len(_WORDS))] * 8
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=buf, vocab_size=60, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", hard_vocab_limit=False, num_threads=1, minloglevel=2, character_coverage=1.0,
        )
        _SPIECE = buf.getvalue()
    return _SPIECE


def _token(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


def _extra_ids(pieces: int) -> dict[str, int]:
    # T5: <extra_id_0> is the last id, <extra_id_99> comes right after the SentencePiece pieces.
    return {f"<extra_id_{i}>": pieces + EXTRA_IDS - 1 - i for i in range(EXTRA_IDS)}


def _decoder(pieces: int) -> dict:
    out = {str(i): {**_token(c), "special": True} for i, c in ((0, "<pad>"), (1, "</s>"), (2, "<unk>"))}
    out.update({str(i): {**_token(c), "special": True} for c, i in sorted(_extra_ids(pieces).items(), key=lambda kv: kv[1])})
    return out


def write_tokenizer(folder: Path) -> None:
    """THUDM's ``tokenizer/``: spiece.model, tokenizer_config.json, special_tokens_map.json, added_tokens.json."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    proto = spiece_model()
    pieces = spm.SentencePieceProcessor(model_proto=proto).get_piece_size()
    extra = _extra_ids(pieces)
    (folder / "spiece.model").write_bytes(proto)
    (folder / "added_tokens.json").write_text(json.dumps(extra, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps({"additional_special_tokens": list(extra), "eos_token": _token("</s>"), "pad_token": _token("<pad>"), "unk_token": _token("<unk>")}, indent=2))
    config = {
        "added_tokens_decoder": _decoder(pieces), "additional_special_tokens": list(extra), "clean_up_tokenization_spaces": True, "eos_token": "</s>",
        "extra_ids": EXTRA_IDS, "legacy": True, "model_max_length": MAX_TEXT, "pad_token": "<pad>", "sp_model_kwargs": {}, "tokenizer_class": "T5Tokenizer", "unk_token": "<unk>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def write_comfy_tokenizer(folder: Path) -> None:
    """The same vocabulary in ComfyUI's ``comfy/text_encoders/t5_tokenizer/`` layout (tokenizer.json, no spiece.model),
    built with the tokenizers library from the SentencePiece pieces and scores."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    folder.mkdir(parents=True, exist_ok=True)
    sp = spm.SentencePieceProcessor(model_proto=spiece_model())
    pieces = sp.get_piece_size()
    extra = _extra_ids(pieces)
    vocab = [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(pieces)] + [(name, 0.0) for name, _ in sorted(extra.items(), key=lambda kv: kv[1])]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", 1)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<pad>", "</s>", "<unk>", *sorted(extra, key=extra.get))])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "special_tokens_map.json").write_text(json.dumps({"additional_special_tokens": list(extra), "eos_token": _token("</s>"), "pad_token": _token("<pad>"), "unk_token": _token("<unk>")}, indent=2))
    config = {
        "added_tokens_decoder": _decoder(pieces), "additional_special_tokens": list(extra), "clean_up_tokenization_spaces": True, "eos_token": "</s>",
        "extra_ids": EXTRA_IDS, "legacy": False, "model_max_length": 512, "pad_token": "<pad>", "sp_model_kwargs": {}, "tokenizer_class": "T5Tokenizer", "unk_token": "<unk>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def scheduler_config(snr_shift_scale: float = 3.0) -> dict:
    # CogVideoX's published scheduler settings (v-prediction, zero-SNR, trailing spacing); 2B shifts by 3, 5B by 1.
    from vid4d.models.gsdit.loading import SCHEDULER_2B

    return {**SCHEDULER_2B, "_diffusers_version": "0.30.0.dev0", "snr_shift_scale": snr_shift_scale}


def _shard_size(module) -> int:
    # Two shards, like the published text encoder and 5B transformer.
    sizes = list({t.data_ptr(): t.numel() * t.element_size() for t in module.state_dict().values()}.values())  # tied weights once
    return max(max(sizes), int(sum(sizes) * 0.6)) + 1


def save_folder(target: Path, transformer, vae, text_encoder, pipeline_class: str = "CogVideoXPipeline", *, snr_shift_scale: float = 3.0, shard_transformer: bool = False) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    transformer.save_pretrained(target / "transformer", **({"max_shard_size": _shard_size(transformer)} if shard_transformer else {}))
    vae.save_pretrained(target / "vae")
    text_encoder.save_pretrained(target / "text_encoder", max_shard_size=_shard_size(text_encoder))
    write_tokenizer(target / "tokenizer")
    (target / "scheduler").mkdir(exist_ok=True)
    (target / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config(snr_shift_scale), indent=2))
    index = {
        "_class_name": pipeline_class,
        "_diffusers_version": "0.30.0.dev0",
        "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLCogVideoX"],
    }
    (target / "model_index.json").write_text(json.dumps(index, indent=2))
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


def comfy_t5_state(text_encoder) -> dict[str, torch.Tensor]:
    """T5 encoder weights as ComfyUI's t5xxl_*.safetensors name them (transformers' names, the tied
    ``encoder.embed_tokens.weight`` left out: ``shared.weight`` holds the embedding)."""
    return {k: v.detach().contiguous() for k, v in text_encoder.state_dict().items() if k != "encoder.embed_tokens.weight"}


def scaled_fp8(state: dict[str, torch.Tensor], scale: float = 0.5) -> dict[str, torch.Tensor]:
    """ComfyUI's *scaled* fp8 layout: each Linear weight stored as fp8 of weight / scale with a ``scale_weight``,
    other tensors as they are, and a ``scaled_fp8`` marker."""
    out = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for key, value in state.items():
        if key.endswith(".weight") and value.dim() == 2 and not key.startswith("shared") and "relative_attention_bias" not in key:
            out[key] = (value.float() / scale).to(torch.float8_e4m3fn)
            out[key[: -len("weight")] + "scale_weight"] = torch.tensor(scale, dtype=torch.float32)
        else:
            out[key] = value
    return out


def build(root: Path) -> None:
    from safetensors.torch import save_file

    root = Path(root)
    gsdit = root / "gsdit"
    text_encoder = fp8_exact(tiny_text_encoder())
    vae_2b = fp8_exact(tiny_vae(scaling_factor=1.15258426))
    t2v = fp8_exact(tiny_transformer(16, rotary=False, seed=1))
    save_folder(gsdit / "CogVideoX-2b", t2v, vae_2b, text_encoder)
    vae_5b = tiny_vae(scaling_factor=0.7)
    save_folder(gsdit / "CogVideoX-5b-I2V", tiny_transformer(32, seed=2), vae_5b, text_encoder, "CogVideoXImageToVideoPipeline", snr_shift_scale=1.0, shard_transformer=True)
    save_folder(gsdit / "GS-DiT-33", tiny_transformer(33, seed=3), vae_5b, text_encoder, snr_shift_scale=1.0)
    save_folder(gsdit / "GS-DiT-bad-vae", tiny_transformer(32, seed=4), tiny_vae(latent_channels=8), text_encoder, snr_shift_scale=1.0)

    state = {k: v.contiguous() for k, v in t2v.state_dict().items()}
    save_file(state, str(gsdit / "cogvideox_tiny_transformer.safetensors"))
    save_file(to_original_keys(state), str(gsdit / "cogvideox_tiny_sat.safetensors"))
    (root / "diffusion_models").mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.bfloat16) for k, v in state.items()}, str(root / "diffusion_models" / "cogvideox_2b_bf16.safetensors"))
    save_file({k: v.to(torch.float8_e4m3fn) for k, v in state.items()}, str(root / "diffusion_models" / "cogvideox_2b_fp8_e4m3fn.safetensors"))

    t5 = comfy_t5_state(text_encoder)
    (root / "text_encoders").mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.float16) for k, v in t5.items()}, str(root / "text_encoders" / "t5xxl_fp16.safetensors"))
    save_file({k: v.to(torch.float8_e4m3fn) if v.is_floating_point() else v for k, v in t5.items()}, str(root / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors"))
    save_file(scaled_fp8(t5), str(root / "text_encoders" / "t5xxl_fp8_e4m3fn_scaled.safetensors"))

    (root / "vae").mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in vae_2b.state_dict().items()}, str(root / "vae" / "cogvideox_vae_bf16.safetensors"))
    write_comfy_tokenizer(root / "comfyui" / "comfy" / "text_encoders" / "t5_tokenizer")
