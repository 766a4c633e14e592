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

Snapping (documented contract): the frame count T is cut to the largest ``4k + 1 <= T`` (trailing frames dropped:
the CogVideoX VAE maps ``4k + 1`` frames to ``k + 1`` latent frames), and height/width are centre-cropped to the
largest multiples of 16 (8× VAE × patch 2). The output is ``[T', H', W', 3]`` at that size.

Weights load from diffusers folders (``transformer/ vae/ text_encoder/ tokenizer/ scheduler/``) or a single-file
transformer (diffusers key names, or original CogVideo/SAT key names, converted by :func:`convert_sat_keys`) whose
other parts come from a diffusers folder. The transformer's input channel count is always read from
``patch_embed.proj.weight``. diffusers/transformers are imported inside functions only.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..py.checks import check_finite_number, check_image, check_mask, check_positive_int
from .loading import CheckpointFormatError, ModelNotFoundError, cached, load_state_dict

MODES = ("gsdit", "training_free")
SCHEDULERS = ("ddim", "dpm")
OFFLOAD_MODES = ("none", "model", "sequential")
PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
LATENT_CHANNELS = 16
SPATIAL_MULTIPLE = 16
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

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_dtype(name: str, device) -> torch.dtype:
    """``fp32 | fp16 | bf16 | auto`` (bf16 on a GPU that supports it, else fp32)."""
    if name == "auto":
        dev = torch.device(device)
        return torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if name not in _DTYPES:
        raise ValueError(f"dtype: expected one of {['auto', *_DTYPES]}, got {name!r}")
    return _DTYPES[name]


# ---------------------------------------------------------------- checkpoint inspection and conversion
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


# ---------------------------------------------------------------- the pipeline
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

        T' = the largest ``4k + 1 <= T``; H', W' = H, W centre-cropped to multiples of 16. ``callback(done, total)``
        runs after each denoising step (raise in it to cancel). ``strength`` only applies to ``training_free``.
        """
        return sample(self, render, holes, prompt, negative_prompt, mode, strength, num_steps, guidance, seed, scheduler, feather, callback)


# ---------------------------------------------------------------- loading
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


# ---------------------------------------------------------------- shapes and masks
def snap_frames(t: int) -> int:
    """Largest ``4k + 1 <= t`` (what the CogVideoX VAE compresses 4× in time)."""
    t = check_positive_int("frames", t)
    return (t - 1) // 4 * 4 + 1


def snap_size(h: int, w: int) -> tuple[int, int]:
    """Height and width floored to multiples of 16 (8× VAE × patch 2)."""
    if h < SPATIAL_MULTIPLE or w < SPATIAL_MULTIPLE:
        raise ValueError(f"render: {w}x{h} is smaller than the 16x16 minimum of the CogVideoX VAE + patch size")
    return h // SPATIAL_MULTIPLE * SPATIAL_MULTIPLE, w // SPATIAL_MULTIPLE * SPATIAL_MULTIPLE


def snap_video(video: torch.Tensor) -> torch.Tensor:
    """``[T, H, W, ...]`` → ``[T', H', W', ...]``: trailing frames dropped to ``4k + 1``, centre crop to multiples of 16."""
    t, h, w = video.shape[:3]
    th, tw = snap_size(h, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return video[: snap_frames(t), top : top + th, left : left + tw]


def latent_hole_mask(holes: torch.Tensor, feather: float = 1.0) -> torch.Tensor:
    """``[T, H, W]`` hole mask (T = 4k+1) → ``[k+1, H/8, W/8]`` hole weight at latent resolution.

    A latent cell is a hole if any pixel of any frame it encodes is (latent frame 0 ← frame 0, latent frame j ←
    frames 4j-3..4j), so rendered content is only kept where the whole cell was rendered. ``feather`` (latent
    pixels) blurs the edge outwards so blending leaves no seam; inside holes the weight stays 1.
    """
    import kornia

    t, h, w = holes.shape
    first = holes[:1]
    rest = holes[1:].reshape(-1, 4, h, w).amax(dim=1) if t > 1 else holes[:0]
    grouped = torch.cat([first, rest])[:, None].float()
    cells = F.max_pool2d(grouped, 8)
    if feather > 0:
        k = 2 * math.ceil(2 * feather) + 1
        cells = torch.maximum(cells, kornia.filters.gaussian_blur2d(F.max_pool2d(cells, 3, 1, 1), (k, k), (feather, feather)))
    return cells[:, 0].clamp(0, 1)


# ---------------------------------------------------------------- memory
def estimate_memory(pipe: GSDiTPipeline, frames: int, height: int, width: int, guidance: float) -> int:
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


def check_memory(pipe: GSDiTPipeline, frames: int, height: int, width: int, guidance: float) -> int:
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


# ---------------------------------------------------------------- sampling
def _rotary(pipe: GSDiTPipeline, lat_frames: int, lat_h: int, lat_w: int, device):
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    cfg = pipe.transformer.config
    if not cfg.use_rotary_positional_embeddings:
        return None
    p, p_t = cfg.patch_size, cfg.patch_size_t
    gh, gw = lat_h // p, lat_w // p
    base_w, base_h = cfg.sample_width // p, cfg.sample_height // p
    if p_t is None:
        crops = get_resize_crop_region_for_grid((gh, gw), base_w, base_h)
        return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=crops, grid_size=(gh, gw), temporal_size=lat_frames, device=device)
    return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=None, grid_size=(gh, gw), temporal_size=(lat_frames + p_t - 1) // p_t, grid_type="slice", max_size=(base_h, base_w), device=device)


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


def encode_prompt(pipe: GSDiTPipeline, prompts: list[str]) -> torch.Tensor:
    """T5 embeddings ``[B, L, D]`` padded to the transformer's text length."""
    length = int(pipe.transformer.config.max_text_seq_length)
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=length, truncation=True, add_special_tokens=True, return_tensors="pt").input_ids
    with _OnDevice(pipe, pipe.text_encoder) as enc, torch.no_grad():
        return enc(ids.to(pipe.device))[0].to(pipe.device, pipe.dtype)


def encode_video(pipe: GSDiTPipeline, video: torch.Tensor) -> torch.Tensor:
    """``[T, H, W, 3]`` 0..1 → scaled latents ``[1, T', C, H/8, W/8]`` (distribution mean: deterministic)."""
    x = (video.permute(3, 0, 1, 2)[None] * 2 - 1).to(pipe.device, pipe.dtype)
    with _OnDevice(pipe, pipe.vae) as vae, torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
    return (z * pipe.vae.config.scaling_factor).permute(0, 2, 1, 3, 4)


def decode_latents(pipe: GSDiTPipeline, latents: torch.Tensor) -> torch.Tensor:
    """``[1, F, C, h, w]`` → ``[T, H, W, 3]`` 0..1 on the CPU."""
    z = (latents / pipe.vae.config.scaling_factor).permute(0, 2, 1, 3, 4).to(pipe.dtype)
    with _OnDevice(pipe, pipe.vae) as vae, torch.no_grad():
        x = vae.decode(z).sample
    return ((x[0].permute(1, 2, 3, 0).float() + 1) / 2).clamp(0, 1).cpu()


def make_scheduler(pipe: GSDiTPipeline, name: str):
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

    if name not in SCHEDULERS:
        raise ValueError(f"scheduler: expected one of {SCHEDULERS}, got {name!r}")
    cls = CogVideoXDDIMScheduler if name == "ddim" else CogVideoXDPMScheduler
    return cls.from_config(pipe.scheduler_config)


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

    sched = make_scheduler(pipe, scheduler)
    sched.set_timesteps(num_steps, device=dev)
    timesteps = sched.timesteps
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn(z_render.shape, generator=generator).to(dev, torch.float32)
    z_render = z_render.float()

    if mode == "gsdit":
        latents = noise * sched.init_noise_sigma
        # 33 channels: the hole mask at latent size (1 = hole, no feathering) as the last channel.
        cond = z_render if in_ch == 2 * c else torch.cat([z_render, latent_hole_mask(holes, 0.0).to(dev)[None, :, None]], dim=2)
    else:
        keep = min(int(num_steps * strength), num_steps)
        timesteps = timesteps[num_steps - keep:]
        if len(timesteps) == 0:
            raise ValueError(f"strength {strength} × steps {num_steps} leaves no denoising step; raise strength or steps")
        latents = noise * sched.init_noise_sigma if keep == num_steps else sched.add_noise(z_render, noise, timesteps[:1])
        cond = None
        if in_ch == 2 * c:  # I2V: the render's first frame as the image condition
            image = encode_video(pipe, render[:1]).float()
            if getattr(pipe.vae.config, "invert_scale_latents", False):
                image = image / pipe.vae.config.scaling_factor ** 2
            cond = torch.cat([image, torch.zeros_like(z_render[:, 1:])], dim=1)

    # CogVideoX 1.5 patches 2 latent frames together: pad at the front (dropped after decoding).
    pad = (-lat_f) % cfg.patch_size_t if cfg.patch_size_t else 0
    rotary = _rotary(pipe, lat_f + pad, lat_h, lat_w, dev)
    texts = [prompt] + ([negative_prompt] if guidance > 1.0 else [])
    embeds = encode_prompt(pipe, texts)
    if guidance > 1.0:
        embeds = embeds.flip(0)  # [uncond, cond]
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
    return decode_latents(pipe, latents)
