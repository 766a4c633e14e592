"""T5-XXL, the text encoder of CogVideoX (and of Flux / SD3): from a diffusers folder or ComfyUI's single files.

- Encoder: a diffusers ``text_encoder/`` folder (``config.json`` + sharded ``model-0000N-of-0000M.safetensors``), or
  one file in ``models/text_encoders/`` as ComfyUI ships it: ``t5xxl_fp16.safetensors``, ``t5xxl_fp8_e4m3fn.safetensors``
  or ``t5xxl_fp8_e4m3fn_scaled.safetensors`` — transformers' own key names (``shared.weight``,
  ``encoder.block.N.layer.0.SelfAttention.q.weight`` ...), optionally under a ``text_encoders.t5xxl.transformer.``
  style prefix; the config is read off the tensor shapes. fp8 weights are upcast to the compute dtype.
- Tokenizer: a folder with ``tokenizer.json`` (ComfyUI carries one in ``comfy/text_encoders/t5_tokenizer/``), or the
  SentencePiece layout THUDM ships (``spiece.model``, ``tokenizer_config.json``, ``special_tokens_map.json``,
  ``added_tokens.json``; no ``tokenizer.json``). The latter is read by SentencePiece itself: transformers 5 would
  convert it to a ``tokenizers`` model through protobuf, and sentencepiece's generated protobuf code requires a
  protobuf as new as the one it was built with (0.2.3 needs protobuf >= 7.36) — a pin a ComfyUI install cannot
  be asked to take. Both tokenizers give the same ids for a prompt (T5: pieces, then ``</s>``, padded with 0).

transformers is imported inside functions only.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

from .loading import CheckpointFormatError, ModelNotFoundError, dequantize, load_state_dict, read_header

# Prefixes under which T5 weights appear in single files (SD3-style bundles, ComfyUI saves).
T5_PREFIXES = ("text_encoders.t5xxl.transformer.", "text_encoders.t5xxl.", "t5xxl.transformer.", "t5xxl.", "cond_stage_model.t5xxl.transformer.")
TOKENIZER_HINT = (
    "a T5 tokenizer folder: the CogVideoX folder's tokenizer/ (spiece.model + tokenizer_config.json), or ComfyUI's "
    "comfy/text_encoders/t5_tokenizer/ (tokenizer.json), which every ComfyUI install carries"
)


# ---------------------------------------------------------------- tokenizer
def tokenizer_files(folder) -> str | None:
    """``"tokenizer.json"`` or ``"spiece.model"``: the layout a tokenizer folder has (None: neither)."""
    folder = Path(folder)
    for name in ("tokenizer.json", "spiece.model"):
        if (folder / name).is_file():
            return name
    return None


def load_tokenizer(folder):
    """The T5 tokenizer of ``folder`` (``tokenizer.json`` or THUDM's SentencePiece layout), without conversion."""
    folder = Path(folder)
    layout = tokenizer_files(folder)
    if layout is None:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise ModelNotFoundError(f"T5 tokenizer: {folder} holds neither tokenizer.json nor spiece.model (found: {', '.join(found) or 'nothing'}); expected {TOKENIZER_HINT}")
    if layout == "tokenizer.json":
        from transformers import T5TokenizerFast

        return T5TokenizerFast.from_pretrained(str(folder), local_files_only=True)
    return _sentencepiece_class().from_pretrained(str(folder), local_files_only=True, legacy=True)


@functools.lru_cache(maxsize=1)
def _sentencepiece_class():
    """A T5 tokenizer backed by SentencePiece: transformers 5's ``SentencePieceBackend`` with T5's files and its
    ``</s>`` suffix; in transformers 4 ``T5Tokenizer`` is that tokenizer already. ``legacy=True`` (THUDM's setting)
    keeps SentencePiece's own handling of the text, which needs no protobuf."""
    try:
        from transformers.tokenization_utils_sentencepiece import SentencePieceBackend
    except ImportError:  # transformers 4.x
        from transformers import T5Tokenizer

        return T5Tokenizer

    class T5SentencePieceTokenizer(SentencePieceBackend):
        vocab_files_names = {"vocab_file": "spiece.model"}
        model_input_names = ["input_ids", "attention_mask"]

        def __init__(self, vocab_file, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=100, **kwargs):
            # The <extra_id_N> sentinels come from added_tokens.json / tokenizer_config.json with their real ids.
            super().__init__(vocab_file=vocab_file, eos_token=eos_token, unk_token=unk_token, pad_token=pad_token, special_tokens_pattern="eos", **kwargs)

    return T5SentencePieceTokenizer


# ---------------------------------------------------------------- encoder
def _strip(shapes_or_state: dict) -> tuple[dict, str]:
    keys = [k for k in shapes_or_state if k != "scaled_fp8"]
    for prefix in T5_PREFIXES:
        if keys and all(k.startswith(prefix) for k in keys):
            return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in shapes_or_state.items()}, prefix
    return dict(shapes_or_state), ""


def config_from_shapes(shapes: dict[str, tuple[int, ...]], where) -> dict:
    """A ``T5Config`` dict read off T5 encoder weights (prefix stripped): widths, layers, heads, buckets."""
    try:
        vocab, d_model = shapes["shared.weight"] if "shared.weight" in shapes else shapes["encoder.embed_tokens.weight"]
        buckets, heads = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        inner = shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0]
        gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in shapes
        d_ff = shapes["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"][0]
    except KeyError as exc:
        raise CheckpointFormatError(f"{where}: not a T5 encoder (missing {exc})") from None
    layers = len({k.split(".")[2] for k in shapes if k.startswith("encoder.block.")})
    return {
        "vocab_size": int(vocab), "d_model": int(d_model), "d_kv": int(inner) // int(heads), "d_ff": int(d_ff), "num_layers": layers,
        "num_heads": int(heads), "relative_attention_num_buckets": int(buckets), "feed_forward_proj": "gated-gelu" if gated else "relu",
        "layer_norm_epsilon": 1e-6, "is_encoder_decoder": False, "use_cache": False,
    }


def load_text_encoder_file(path, dtype=torch.float32):
    """``T5EncoderModel`` from one ComfyUI-style ``.safetensors`` (fp32 / fp16 / bf16 / fp8, scaled fp8 too), in ``dtype``.

    The model is built on the meta device and the file's tensors assigned (no random init of 4.7 B weights). As
    transformers does for T5, the ``wo`` projections stay fp32 when ``dtype`` is fp16 (they overflow in fp16).
    """
    from accelerate import init_empty_weights
    from transformers import T5Config, T5EncoderModel

    path = Path(path)
    shapes, _ = _strip(read_header(path).shapes)
    config = T5Config(**config_from_shapes(shapes, path))
    state, _ = _strip(load_state_dict(path, cache=False))
    state = {k: v for k, v in state.items() if not k.startswith("decoder.") and k not in ("lm_head.weight", "encoder.embed_tokens.weight")}
    if "shared.weight" not in state:
        raise CheckpointFormatError(f"{path}: T5 weights without shared.weight (the token embedding)")
    keep_fp32 = tuple(getattr(T5EncoderModel, "_keep_in_fp32_modules", None) or ()) if dtype == torch.float16 else ()
    state = dequantize(state, dtype)
    if keep_fp32:
        full = dequantize(state, torch.float32)  # from the dtype copy: fp16 -> fp32 is exact, like from_pretrained's upcast
        state = {k: (full[k] if any(f".{m}." in f".{k}" for m in keep_fp32) else v) for k, v in state.items()}
    state["encoder.embed_tokens.weight"] = state["shared.weight"]  # tied in T5: one tensor for both
    with init_empty_weights(include_buffers=False):
        model = T5EncoderModel(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:
        raise CheckpointFormatError(f"{path}: T5 weights do not fit the config read from them ({str(exc).splitlines()[0]})") from exc
    if missing or unexpected:
        raise CheckpointFormatError(f"{path}: not a T5 encoder in transformers' key names: {len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    return model.eval()


def load_text_encoder_folder(folder, dtype=torch.float32):
    """``T5EncoderModel`` from a diffusers ``text_encoder/`` folder (sharded or not)."""
    from transformers import T5EncoderModel

    return T5EncoderModel.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True).eval()
