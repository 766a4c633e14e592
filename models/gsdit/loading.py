"""Loading a GS-DiT / CogVideoX pipeline from files the user has, part by part (nothing is downloaded).

Each part comes from where the user has it:

- transformer: a diffusers folder's ``transformer/`` (sharded or not), or one ``.safetensors`` — diffusers or
  original CogVideo/SAT keys (:mod:`.convert`), bf16 / fp16 / fp32 / fp8 ``float8_e4m3fn`` (upcast to the compute dtype);
- text encoder: ``text_encoder/`` of a folder, or ComfyUI's T5-XXL single file (:mod:`..t5`);
- tokenizer: ``tokenizer/`` of a folder (THUDM's SentencePiece layout), or the copy ComfyUI carries;
- VAE: ``vae/`` of a folder, or one ``.safetensors`` (diffusers keys);
- scheduler: ``scheduler/scheduler_config.json`` of a folder, or CogVideoX's published settings for the family.

What the weights of a single file do not say (rotary embeddings, sample size, text length, the VAE's scaling
factor and group norm) comes from a folder's ``transformer/`` / ``vae/`` ``config.json`` when one is chosen,
else from CogVideoX's published configs (2B: sin-cos positions, 5B: rotary; read off the layer count and a learned
position table). :func:`plan_parts` checks every part before anything is read and names every problem at once.
diffusers/transformers are imported inside functions only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import t5
from ..families import expect_family
from ..loading import CheckpointFormatError, ModelNotFoundError, Problems, cached, dequantize, found_in, load_state_dict, read_header
from ..placement import LocalPlacement
from .convert import check_channels, convert_sat_keys, in_channels_of, is_sat_layout, strip_prefix, transformer_in_channels
from .pipeline import GSDiTPipeline

OFFLOAD_MODES = ("none", "model", "sequential")
PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

T5_HINT = "a T5-XXL file in models/text_encoders/ (t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors from https://huggingface.co/comfyanonymous/flux_text_encoders)"
VAE_HINT = "a CogVideoX VAE file in models/vae/ (diffusers keys: cogvideox_vae_bf16.safetensors from https://huggingface.co/Kijai/CogVideoX-comfy, or a CogVideoX snapshot's vae/diffusion_pytorch_model.safetensors renamed)"
TRANSFORMER_HINT = "a CogVideoX transformer file in models/diffusion_models/ or models/vid4d/gsdit/ (diffusers or original CogVideo keys; bf16, fp16 or fp8; e.g. CogVideoX_1_0_5b_I2V_bf16.safetensors from https://huggingface.co/Kijai/CogVideoX-comfy)"
FOLDER_HINT = "a CogVideoX diffusers folder in models/vid4d/gsdit/ (transformer/ vae/ text_encoder/ tokenizer/ scheduler/, e.g. https://huggingface.co/THUDM/CogVideoX-5b-I2V)"

# CogVideoX's published settings, for parts that come without a folder (values of the THUDM snapshots).
SCHEDULER_2B = {
    "_class_name": "CogVideoXDDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "clip_sample_range": 1.0, "num_train_timesteps": 1000, "prediction_type": "v_prediction", "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0, "set_alpha_to_one": True, "snr_shift_scale": 3.0, "steps_offset": 0, "timestep_spacing": "trailing", "trained_betas": None,
}
SCHEDULER_5B = {**SCHEDULER_2B, "snr_shift_scale": 1.0}
TRANSFORMER_DEFAULTS = {
    "activation_fn": "gelu-approximate", "attention_bias": True, "dropout": 0.0, "flip_sin_to_cos": True, "freq_shift": 0, "max_text_seq_length": 226,
    "norm_elementwise_affine": True, "norm_eps": 1e-5, "patch_size": 2, "sample_frames": 49, "sample_height": 60, "sample_width": 90,
    "spatial_interpolation_scale": 1.875, "temporal_compression_ratio": 4, "temporal_interpolation_scale": 1.0, "timestep_activation_fn": "silu",
}
VAE_DEFAULTS = {
    "act_fn": "silu", "down_block_types": ["CogVideoXDownBlock3D"] * 4, "up_block_types": ["CogVideoXUpBlock3D"] * 4, "force_upcast": True,
    "in_channels": 3, "out_channels": 3, "norm_eps": 1e-6, "norm_num_groups": 32, "sample_height": 480, "sample_width": 720,
    "temporal_compression_ratio": 4, "use_post_quant_conv": False, "use_quant_conv": False,
}
VAE_SCALING_2B, VAE_SCALING_5B = 1.15258426, 0.7


def parse_dtype(name: str, device) -> torch.dtype:
    """``fp32 | fp16 | bf16 | auto`` (bf16 on a GPU that supports it, else fp32)."""
    if name == "auto":
        dev = torch.device(device)
        return torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if name not in _DTYPES:
        raise ValueError(f"dtype: expected one of {['auto', *_DTYPES]}, got {name!r}")
    return _DTYPES[name]


# ---------------------------------------------------------------- which file is each part
@dataclass(frozen=True)
class PartSources:
    """Where each part comes from: a folder (diffusers layout) or a single file; ``scheduler`` None = the
    published settings; ``reference`` a diffusers folder whose configs fill in what single files do not say."""

    transformer: Path
    text_encoder: Path
    tokenizer: Path
    vae: Path
    scheduler: Path | None = None
    reference: Path | None = None
    name: str = ""

    def stamp(self) -> tuple:
        return tuple((str(p), p.stat().st_mtime_ns) if p is not None and p.exists() else None for p in (self.transformer, self.text_encoder, self.tokenizer, self.vae, self.scheduler, self.reference))

    def describe(self) -> str:
        def show(p):
            if p is None:
                return "published settings"
            return (p.parent.name + "/" + p.name + "/") if p.is_dir() else p.name

        return f"transformer {show(self.transformer)}, text encoder {show(self.text_encoder)}, tokenizer {show(self.tokenizer)}, VAE {show(self.vae)}, scheduler {show(self.scheduler)}"


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def plan_parts(model: Path | None, components: Path | None = None, text_encoder: Path | None = None, vae: Path | None = None, tokenizer_fallback: Path | None = None, problems: Problems | None = None, reported=()) -> tuple[PartSources | None, Problems]:
    """Check every part of a GS-DiT pipeline without loading it.

    Args:
        model: the chosen model, a diffusers folder or a single-file transformer (None: not found, already reported).
        components: a diffusers folder for the parts not chosen separately (None: the model's folder, if it is one).
        text_encoder, vae: single files chosen instead of the folder's ``text_encoder/`` / ``vae/``.
        tokenizer_fallback: a tokenizer folder to use when the folder has none (ComfyUI's ``t5_tokenizer``).
        problems: problems found earlier (e.g. names not in any folder); the new ones are added.
        reported: the parts those are about (``"components"``, ``"text_encoder"``, ``"vae"``): not looked for again.
    Returns:
        The sources (None if anything is missing) and every problem, each naming the part, the folder, what is
        there and each accepted alternative.
    """
    problems = problems if problems is not None else Problems()
    if "components" in reported:
        return None, problems  # every other part would be looked for in a folder that is not there
    folder = components if components is not None else (model if model is not None and model.is_dir() else None)
    if folder is not None and not folder.is_dir():
        problems.missing(f"components: {folder} is a file, not a diffusers folder; choose {FOLDER_HINT}")
        folder = None

    def part_dir(part: str, alternative: str) -> Path | None:
        if folder is None:
            problems.missing(f"{part}: no folder to take it from ('model' is a single file and 'components' names no folder); choose {alternative}, or {FOLDER_HINT} in 'components'")
            return None
        sub = folder / part
        if not sub.is_dir():
            problems.missing(f"{part}: folder {sub}/ not found (found in {folder}: {found_in([folder])}); download the whole snapshot, or choose {alternative}")
            return None
        return sub

    transformer = None
    if model is not None and model.is_file():
        if _accept(model, ("cogvideox_transformer", "cogvideox_sat"), "model", "a CogVideoX transformer (diffusers or original CogVideo keys) or a CogVideoX diffusers folder", problems):
            transformer = model
    elif model is not None:
        sub = part_dir("transformer", TRANSFORMER_HINT + " in 'model'")
        if sub is not None and not _has_weights(sub):
            problems.missing(f"transformer: {sub}/ has no weights (found there: {found_in([sub])}); expected diffusion_pytorch_model.safetensors or its shards")
        elif sub is not None:
            transformer = sub

    encoder = None
    if "text_encoder" in reported:
        pass
    elif text_encoder is not None:
        if _accept(text_encoder, ("t5",), "text_encoder", T5_HINT, problems):
            encoder = text_encoder
    else:
        sub = part_dir("text_encoder", T5_HINT + " in 'text_encoder'")
        if sub is not None and not _has_weights(sub):
            problems.missing(f"text_encoder: {sub}/ has no weights (found there: {found_in([sub])}); expected model.safetensors or model-0000N-of-0000M.safetensors, or choose {T5_HINT} in 'text_encoder'")
        elif sub is not None:
            encoder = sub

    tokenizer = None
    candidates = [p for p in ((folder / "tokenizer") if folder is not None else None, tokenizer_fallback) if p is not None]
    for candidate in candidates:
        if t5.tokenizer_files(candidate):
            tokenizer = candidate
            break
    if tokenizer is None:
        looked = "; ".join(f"{c}/ ({'found: ' + found_in([c]) if c.is_dir() else 'not found'})" for c in candidates) or "no folder chosen and ComfyUI's copy is not available (headless)"
        problems.missing(f"tokenizer: no spiece.model or tokenizer.json in {looked}; expected {t5.TOKENIZER_HINT}")

    vae_source = None
    if "vae" in reported:
        pass
    elif vae is not None:
        if _accept(vae, ("cogvideox_vae",), "vae", "a CogVideoX VAE (diffusers keys)", problems):
            vae_source = vae
    else:
        sub = part_dir("vae", VAE_HINT + " in 'vae'")
        if sub is not None and not _has_weights(sub):
            problems.missing(f"vae: {sub}/ has no weights (found there: {found_in([sub])}); expected diffusion_pytorch_model.safetensors, or choose {VAE_HINT} in 'vae'")
        elif sub is not None:
            vae_source = sub

    scheduler = folder / "scheduler" / "scheduler_config.json" if folder is not None and (folder / "scheduler" / "scheduler_config.json").is_file() else None
    if problems or transformer is None or encoder is None or tokenizer is None or vae_source is None:
        return None, problems
    name = (model.name if model is not None else "") + (f" + {folder.name}" if folder is not None and folder != model else "")
    return PartSources(transformer, encoder, tokenizer, vae_source, scheduler, folder, name), problems


def _accept(path: Path, families: tuple[str, ...], slot: str, wants: str, problems: Problems) -> bool:
    try:
        expect_family(path, families, slot, wants)
    except CheckpointFormatError as exc:
        problems.wrong(str(exc))
        return False
    return True


# ---------------------------------------------------------------- loading
def load_pipeline(path, device="cpu", dtype: torch.dtype = torch.float32, offload: str = "none", components=None, vae_tiling: bool = True, vae_slicing: bool = True, text_encoder=None, vae=None, tokenizer_fallback=None, placement=None) -> GSDiTPipeline:
    """Load a GS-DiT / CogVideoX pipeline.

    ``path``: a diffusers folder (``transformer/ vae/ text_encoder/ tokenizer/ scheduler/``) or a single-file
    transformer (``.safetensors``; diffusers or original CogVideo keys, wrapping prefix stripped, any float dtype
    incl. fp8). ``components``: a diffusers folder for the other parts (and the transformer's non-shape config);
    ``text_encoder`` / ``vae``: single files used instead of the folder's (see :func:`plan_parts`).
    ``offload``: ``none`` (everything on ``device``), ``model`` (each component moves to ``device`` only while it
    runs), ``sequential`` (the transformer streams its layers from the CPU through accelerate hooks; slowest, least
    memory). ``placement``: where the networks live between uses (default :class:`LocalPlacement` from ``offload``;
    ComfyUI's model management inside ComfyUI). Cached.
    """
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload: expected one of {OFFLOAD_MODES}, got {offload!r}")
    device = torch.device(device)
    opt = lambda p: Path(p) if p is not None else None
    path = Path(path)
    problems = Problems()
    if not path.exists():
        problems.missing(f"model: {path} not found")
    sources, problems = plan_parts(path if path.exists() else None, opt(components), opt(text_encoder), opt(vae), opt(tokenizer_fallback), problems)
    problems.raise_if_any("GS-DiT model")
    return load_parts(sources, device, dtype, offload, vae_tiling, vae_slicing, placement)


def load_parts(sources: PartSources, device="cpu", dtype: torch.dtype = torch.float32, offload: str = "none", vae_tiling: bool = True, vae_slicing: bool = True, placement=None) -> GSDiTPipeline:
    """Load the parts :func:`plan_parts` found (see :func:`load_pipeline` for the arguments). Cached by the
    parts' paths and modification times, device, dtype and placement kind."""
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload: expected one of {OFFLOAD_MODES}, got {offload!r}")
    device = torch.device(device)
    placement = placement if placement is not None else LocalPlacement(device, offload != "none")
    key = ("gsdit", sources.stamp(), str(device), str(dtype), offload, vae_tiling, vae_slicing, type(placement).__name__)
    return cached(key, lambda: _load(sources, device, dtype, offload, vae_tiling, vae_slicing, placement))


def _load(sources: PartSources, device, dtype, offload, vae_tiling, vae_slicing, placement) -> GSDiTPipeline:
    ref = sources.reference
    if sources.transformer.is_dir():
        transformer = _folder_transformer(sources.transformer, dtype, transformer_in_channels(sources.transformer))
    else:
        transformer = _single_file_transformer(sources.transformer, ref, dtype)
    vae = _folder_vae(sources.vae, dtype) if sources.vae.is_dir() else _single_file_vae(sources.vae, ref, transformer.config, dtype)
    check_channels(int(transformer.patch_embed.proj.weight.shape[1]), int(vae.config.latent_channels), int(transformer.config.out_channels), sources.transformer)
    if vae_tiling:
        vae.enable_tiling()
    if vae_slicing:
        vae.enable_slicing()
    text_encoder = t5.load_text_encoder_folder(sources.text_encoder, dtype) if sources.text_encoder.is_dir() else t5.load_text_encoder_file(sources.text_encoder, dtype)
    if int(text_encoder.config.d_model) != int(transformer.config.text_embed_dim):
        raise CheckpointFormatError(f"{sources.text_encoder}: the text encoder gives {text_encoder.config.d_model}-wide embeddings but the transformer {sources.transformer.name} reads {transformer.config.text_embed_dim}; CogVideoX uses T5-XXL (4096)")
    tokenizer = t5.load_tokenizer(sources.tokenizer)
    scheduler_config = json.loads(sources.scheduler.read_text()) if sources.scheduler is not None else dict(SCHEDULER_5B if transformer.config.use_rotary_positional_embeddings else SCHEDULER_2B)
    for module in (transformer, vae, text_encoder):
        module.requires_grad_(False).eval()
    placement.home(vae)
    placement.home(text_encoder)
    if offload == "sequential" and device.type != "cpu":
        from accelerate import cpu_offload

        transformer.to("cpu")
        cpu_offload(transformer, execution_device=device)
    else:
        placement.home(transformer)
    name = Path(sources.name) if sources.name else sources.transformer
    return GSDiTPipeline(transformer, vae, text_encoder, tokenizer, scheduler_config, name, device, dtype, offload, placement=placement, sources=sources)


def _folder_transformer(folder: Path, dtype, in_channels: int):
    from diffusers import CogVideoXTransformer3DModel

    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    if config and int(config.get("in_channels", in_channels)) != in_channels:
        raise CheckpointFormatError(f"{folder}: config.json says in_channels {config.get('in_channels')} but patch_embed.proj.weight has {in_channels}")
    return CogVideoXTransformer3DModel.from_pretrained(folder, torch_dtype=dtype, local_files_only=True)


def _reference_config(reference: Path | None, part: str) -> dict:
    path = reference / part / "config.json" if reference is not None else None
    if path is None or not path.is_file():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def _single_file_transformer(path: Path, reference: Path | None, dtype):
    """A ``CogVideoXTransformer3DModel`` from one file: shapes from the weights, the rest from ``reference``'s
    ``transformer/config.json`` or CogVideoX's published values (5B-class models — more than 30 layers, or a
    learned position table as in 5B-I2V — use rotary embeddings; the 2B does not)."""
    from accelerate import init_empty_weights
    from diffusers import CogVideoXTransformer3DModel

    state = strip_prefix(load_state_dict(path, cache=False))
    if is_sat_layout(state):
        state = convert_sat_keys(state)
    state = dequantize(state, dtype)
    base = _reference_config(reference, "transformer")
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks.")}
    learned = "patch_embed.pos_embedding" in state
    try:
        proj = state["patch_embed.proj.weight"]
        if proj.dim() == 2 and not base:
            raise CheckpointFormatError(f"{path}: a CogVideoX 1.5 transformer (frames patched in pairs); choose its diffusers folder in 'components' so its config is known")
        config = {**TRANSFORMER_DEFAULTS, **base}
        head_dim = int(state["transformer_blocks.0.attn1.norm_q.weight"].shape[0])
        patch_t = int(config.get("patch_size_t") or 1)
        config.update(
            in_channels=in_channels_of(state) if proj.dim() == 4 else in_channels_of(state) // (int(config["patch_size"]) ** 2 * patch_t),
            out_channels=int(state["proj_out.weight"].shape[0]) // (int(config["patch_size"]) ** 2 * patch_t),
            num_layers=len(blocks),
            attention_head_dim=head_dim,
            num_attention_heads=int(proj.shape[0]) // head_dim,
            text_embed_dim=int(state["patch_embed.text_proj.weight"].shape[1]),
            time_embed_dim=int(state["time_embedding.linear_1.weight"].shape[0]),
            ofs_embed_dim=int(state["ofs_embedding.linear_1.weight"].shape[1]) if "ofs_embedding.linear_1.weight" in state else None,
        )
    except KeyError as exc:
        raise CheckpointFormatError(f"{path}: not a CogVideoX transformer (missing {exc}); keys start {sorted(state)[:5]}") from None
    if not base:
        config.setdefault("use_learned_positional_embeddings", learned)
        config.setdefault("use_rotary_positional_embeddings", learned or len(blocks) > 30)
    with init_empty_weights(include_buffers=False):
        model = CogVideoXTransformer3DModel.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if "pos_embedding" not in k]
    if missing or unexpected:
        raise CheckpointFormatError(f"{path}: transformer weights do not match the CogVideoX layout: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, param in model.named_parameters():
        if param.is_meta:
            raise CheckpointFormatError(f"{path}: transformer weight {name} is not in the file")
    return model


def _folder_vae(folder: Path, dtype):
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX.from_pretrained(folder, torch_dtype=dtype, local_files_only=True)


def vae_config_from_shapes(shapes: dict[str, tuple[int, ...]], transformer_config, reference: dict) -> dict:
    """An ``AutoencoderKLCogVideoX`` config: widths, depth and latent channels from the weights; the scaling
    factor from the transformer's family (2B 1.15258426, 5B 0.7; CogVideoX 1.5 also inverts the latent scale)."""
    levels = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith(("encoder.down_blocks.", "decoder.up_blocks.")))
    widths = [int(shapes[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"][0]) if f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight" in shapes else None for i in range(levels)]
    config = {**VAE_DEFAULTS, **reference}
    if reference:
        return config
    if None in widths:  # no resnets in a down block: the widths are the decoder's, in reverse
        widths = [int(shapes[f"decoder.up_blocks.{levels - 1 - i}.resnets.0.conv2.conv.weight"][0]) for i in range(levels)]
    rotary = bool(getattr(transformer_config, "use_rotary_positional_embeddings", True))
    config.update(
        block_out_channels=widths,
        down_block_types=["CogVideoXDownBlock3D"] * levels,
        up_block_types=["CogVideoXUpBlock3D"] * levels,
        layers_per_block=len({k.split(".")[4] for k in shapes if k.startswith("encoder.down_blocks.0.resnets.")}),
        latent_channels=int(shapes["encoder.conv_out.conv.weight"][0]) // 2,
        scaling_factor=VAE_SCALING_5B if rotary else VAE_SCALING_2B,
    )
    if getattr(transformer_config, "patch_size_t", None):
        config["invert_scale_latents"] = True
    return config


def _single_file_vae(path: Path, reference: Path | None, transformer_config, dtype):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLCogVideoX

    shapes = read_header(path).shapes
    try:
        config = vae_config_from_shapes(shapes, transformer_config, _reference_config(reference, "vae"))
    except KeyError as exc:
        raise CheckpointFormatError(f"{path}: not a CogVideoX VAE (missing {exc})") from None
    state = dequantize(load_state_dict(path, cache=False), dtype)
    with init_empty_weights(include_buffers=False):
        model = AutoencoderKLCogVideoX.from_config(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:
        raise CheckpointFormatError(f"{path}: VAE weights do not fit the CogVideoX VAE config ({str(exc).splitlines()[0]})") from exc
    if missing or unexpected:
        raise CheckpointFormatError(f"{path}: not a CogVideoX VAE in diffusers keys: {len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    return model
