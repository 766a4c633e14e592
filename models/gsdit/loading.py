"""Loading a GS-DiT / CogVideoX pipeline from files the user put in ComfyUI's models folder (nothing is downloaded).

A diffusers folder (``transformer/ vae/ text_encoder/ tokenizer/ scheduler/``), or a single-file transformer
(diffusers or original CogVideo/SAT keys, :mod:`.convert`) whose other parts come from a diffusers folder.
diffusers/transformers are imported inside functions only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..loading import CheckpointFormatError, ModelNotFoundError, cached, load_state_dict
from .convert import check_channels, convert_sat_keys, in_channels_of, is_sat_layout, strip_prefix, transformer_in_channels
from .pipeline import GSDiTPipeline

OFFLOAD_MODES = ("none", "model", "sequential")
PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_dtype(name: str, device) -> torch.dtype:
    """``fp32 | fp16 | bf16 | auto`` (bf16 on a GPU that supports it, else fp32)."""
    if name == "auto":
        dev = torch.device(device)
        return torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if name not in _DTYPES:
        raise ValueError(f"dtype: expected one of {['auto', *_DTYPES]}, got {name!r}")
    return _DTYPES[name]


def _require_parts(folder: Path, parts=PARTS) -> None:
    for part in parts:
        if not (folder / part).is_dir():
            raise ModelNotFoundError(f"{part}/ missing in {folder}; a CogVideoX/GS-DiT diffusers folder needs {' '.join(p + '/' for p in PARTS)} (download the whole snapshot)")


def load_pipeline(path, device="cpu", dtype: torch.dtype = torch.float32, offload: str = "none", components=None, vae_tiling: bool = True, vae_slicing: bool = True) -> GSDiTPipeline:
    """Load a GS-DiT / CogVideoX pipeline.

    ``path``: a diffusers folder (``transformer/ vae/ text_encoder/ tokenizer/ scheduler/``), or a single-file
    transformer (``.safetensors``; diffusers or original CogVideo keys, wrapping prefix stripped) with
    ``components`` = a diffusers folder that supplies the VAE, text encoder, tokenizer, scheduler and the
    transformer's non-shape config (rotary embeddings, sample size). ``offload``: ``none`` (everything on
    ``device``), ``model`` (each component moves to ``device`` only while it runs), ``sequential`` (the transformer
    streams its layers from the CPU through accelerate hooks; slowest, least memory). Cached.
    """
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload: expected one of {OFFLOAD_MODES}, got {offload!r}")
    path = Path(path)
    device = torch.device(device)
    if not path.exists():
        raise ModelNotFoundError(f"GS-DiT model not found: {path}")
    stat = path.stat()
    key = ("gsdit", str(path.resolve()), stat.st_mtime_ns, str(components), str(device), str(dtype), offload, vae_tiling, vae_slicing)
    return cached(key, lambda: _load(path, device, dtype, offload, components, vae_tiling, vae_slicing))


def _load(path: Path, device, dtype, offload, components, vae_tiling, vae_slicing) -> GSDiTPipeline:
    from diffusers import AutoencoderKLCogVideoX
    from transformers import T5EncoderModel, T5Tokenizer

    if path.is_dir():
        folder = path
        _require_parts(folder)
        in_ch = transformer_in_channels(folder / "transformer")
        transformer = _folder_transformer(folder / "transformer", dtype, in_ch)
    else:
        if components is None:
            raise ModelNotFoundError(f"{path.name} is a single-file transformer: also choose a CogVideoX diffusers folder (components) for its vae/ text_encoder/ tokenizer/ scheduler/")
        folder = Path(components)
        _require_parts(folder, ("vae", "text_encoder", "tokenizer", "scheduler"))
        transformer = _single_file_transformer(path, folder, dtype)
    vae = AutoencoderKLCogVideoX.from_pretrained(folder / "vae", torch_dtype=dtype, local_files_only=True)
    check_channels(int(transformer.patch_embed.proj.weight.shape[1]), int(vae.config.latent_channels), int(transformer.config.out_channels), path)
    if vae_tiling:
        vae.enable_tiling()
    if vae_slicing:
        vae.enable_slicing()
    text_encoder = T5EncoderModel.from_pretrained(folder / "text_encoder", torch_dtype=dtype, local_files_only=True)
    tokenizer = T5Tokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    sched_file = folder / "scheduler" / "scheduler_config.json"
    if not sched_file.is_file():
        raise ModelNotFoundError(f"scheduler/scheduler_config.json missing in {folder}")
    scheduler_config = json.loads(sched_file.read_text())
    for module in (transformer, vae, text_encoder):
        module.requires_grad_(False).eval()
    home = torch.device("cpu") if offload != "none" else device
    vae.to(home)
    text_encoder.to(home)
    if offload == "sequential" and device.type != "cpu":
        from accelerate import cpu_offload

        transformer.to("cpu")
        cpu_offload(transformer, execution_device=device)
    else:
        transformer.to(home)
    return GSDiTPipeline(transformer, vae, text_encoder, tokenizer, scheduler_config, path, device, dtype, offload)


def _folder_transformer(folder: Path, dtype, in_channels: int):
    from diffusers import CogVideoXTransformer3DModel

    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    if config and int(config.get("in_channels", in_channels)) != in_channels:
        raise CheckpointFormatError(f"{folder}: config.json says in_channels {config.get('in_channels')} but patch_embed.proj.weight has {in_channels}")
    return CogVideoXTransformer3DModel.from_pretrained(folder, torch_dtype=dtype, local_files_only=True)


def _single_file_transformer(path: Path, components: Path, dtype):
    from diffusers import CogVideoXTransformer3DModel

    state = strip_prefix(load_state_dict(path))
    if is_sat_layout(state):
        state = convert_sat_keys(state)
    base = components / "transformer" / "config.json"
    config = {k: v for k, v in json.loads(base.read_text()).items() if not k.startswith("_")} if base.is_file() else {}
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks.")}
    try:
        inner = int(state["patch_embed.proj.weight"].shape[0])
        head_dim = int(state["transformer_blocks.0.attn1.norm_q.weight"].shape[0])
        config.update(
            in_channels=in_channels_of(state),
            out_channels=int(state["proj_out.weight"].shape[0]) // (int(config.get("patch_size", 2)) ** 2 * int(config.get("patch_size_t") or 1)),
            num_layers=len(blocks),
            attention_head_dim=head_dim,
            num_attention_heads=inner // head_dim,
            text_embed_dim=int(state["patch_embed.text_proj.weight"].shape[1]),
            time_embed_dim=int(state["time_embedding.linear_1.weight"].shape[0]),
            ofs_embed_dim=int(state["ofs_embedding.linear_1.weight"].shape[1]) if "ofs_embedding.linear_1.weight" in state else None,
        )
    except KeyError as exc:
        raise CheckpointFormatError(f"{path}: not a CogVideoX transformer (missing {exc}); keys start {sorted(state)[:5]}") from None
    if not base.is_file():
        # Without a reference config: 5B-class models (>30 layers) use rotary embeddings, the 2B does not.
        config.setdefault("use_rotary_positional_embeddings", len(blocks) > 30)
    model = CogVideoXTransformer3DModel.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "pos_embedding" not in k]
    if missing or unexpected:
        raise CheckpointFormatError(f"{path}: transformer weights do not match the CogVideoX layout: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model if dtype == torch.float32 else model.to(dtype)
