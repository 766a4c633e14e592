"""Tiny random-weight ChronoDepth-v1 + SVD-XT, saved in the layouts users download.

``build(root)`` writes
- ``root/depth/ChronoDepth-v1/``: ``config.json`` + ``diffusion_pytorch_model.safetensors`` (fp16, 8 in / 4 out), what
  ``from_pretrained("jhshao/ChronoDepth-v1")`` reads;
- ``root/diffusion_models/chronodepth_v1_fp16.safetensors``: that weight file on its own (no config);
- ``root/depth/stable-video-diffusion-img2vid-xt/``: the stabilityai repository's layout — ``model_index.json``,
  ``feature_extractor/preprocessor_config.json``, ``image_encoder/`` (``config.json``, ``model.safetensors``,
  ``model.fp16.safetensors``), ``scheduler/scheduler_config.json``, ``unet/`` and ``vae/`` (``config.json``,
  ``diffusion_pytorch_model.safetensors``, ``diffusion_pytorch_model.fp16.safetensors``) and ``svd_xt.safetensors``;
- ``root/checkpoints/svd_xt.safetensors``: the same VAE and image encoder under SGM key names
  (``first_stage_model.*``, ``conditioner.embedders.0.open_clip.model.visual.*``) plus a stub of the SVD
  UNet (``model.diffusion_model.*``, never read), written by inverting the diffusers/transformers naming.

Sizes are toy; the UNet keeps SVD's 64-wide attention heads (a single file carries no head count).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import torch

UNET_NAME = "ChronoDepth-v1"
BASE_NAME = "stable-video-diffusion-img2vid-xt"
SINGLE_FILE = "svd_xt.safetensors"
UNET_SINGLE_FILE = "chronodepth_v1_fp16.safetensors"

# The sample scene at 64x64 (ChronoDepth needs >= 64 px); VideoDepth with two steps and short windows.
WORKFLOW_OVERRIDES = {
    "Vid4DSampleScene": {"num_frames": 6, "width": 64, "height": 64},
    "VideoDepth": {"steps": 2, "window": 4, "stride": 2, "max_res": 64},
    "Vid4DDepthModelLoader": {"dtype": "fp32"},
}

UNET_CONFIG = dict(
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    block_out_channels=(64, 128),
    layers_per_block=1,
    cross_attention_dim=32,
    num_attention_heads=(1, 2),
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,
    num_frames=25,
)
VAE_CONFIG = dict(block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4, layers_per_block=1, latent_channels=4, scaling_factor=0.18215)
CLIP_CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1, image_size=28, patch_size=14, projection_dim=32, hidden_act="gelu", layer_norm_eps=1e-5)


def tiny_unet(in_channels=8, out_channels=4, seed=0):
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(seed)
    return UNetSpatioTemporalConditionModel(**{**UNET_CONFIG, "in_channels": in_channels, "out_channels": out_channels}).eval()


def tiny_base(seed=1):
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(**VAE_CONFIG).eval()
    # Random mix factors / norms so the temporal pieces matter in the layout round trip.
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("mix_factor") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_CONFIG)).eval()
    return vae, clip


# ---------------------------------------------------------------- diffusers/transformers -> SGM names
_RESNET_TEMPORAL = {"temporal_res_block.norm1": "time_stack.in_layers.0", "temporal_res_block.conv1": "time_stack.in_layers.2", "temporal_res_block.norm2": "time_stack.out_layers.0", "temporal_res_block.conv2": "time_stack.out_layers.3", "time_mixer.mix_factor": "mix_factor", "spatial_res_block.": ""}
_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_sgm(state: dict, levels: int) -> dict:
    """diffusers ``AutoencoderKLTemporalDecoder`` keys → SGM ``first_stage_model.*`` keys and shapes."""
    out = {}
    for key, value in state.items():
        k = key.replace("conv_norm_out", "norm_out").replace("time_conv_out", "conv_out.time_mix_conv")
        k = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)", r"encoder.down.\1.block.\2", k)
        k = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", k)
        k = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}", k)
        k = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample", k)
        k = re.sub(r"mid_block\.resnets\.(\d+)", lambda m: f"mid.block_{int(m[1]) + 1}", k)
        if "mid_block.attentions.0." in k:
            k = k.replace("mid_block.attentions.0.", "mid.attn_1.")
            for new, old in _ATTN.items():
                k = k.replace(f"attn_1.{new}.", f"attn_1.{old}.")
            if value.dim() == 2:
                value = value[:, :, None, None]
        for new, old in _RESNET_TEMPORAL.items():
            k = k.replace(new, old)
        k = k.replace("conv_shortcut", "nin_shortcut")
        out["first_stage_model." + k] = value.contiguous()
    return out


def clip_to_sgm(state: dict) -> dict:
    """transformers ``CLIPVisionModelWithProjection`` keys → open_clip ``visual.*`` keys under SGM's prefix."""
    prefix = "conditioner.embedders.0.open_clip.model.visual."
    fixed = {
        "vision_model.embeddings.class_embedding": "class_embedding",
        "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
        "vision_model.embeddings.position_embedding.weight": "positional_embedding",
        "vision_model.pre_layrnorm.weight": "ln_pre.weight",
        "vision_model.pre_layrnorm.bias": "ln_pre.bias",
        "vision_model.post_layernorm.weight": "ln_post.weight",
        "vision_model.post_layernorm.bias": "ln_post.bias",
    }
    out = {prefix + v: state[k] for k, v in fixed.items()}
    out[prefix + "proj"] = state["visual_projection.weight"].t().contiguous()
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}
    layers = {int(k.split(".")[3]) for k in state if k.startswith("vision_model.encoder.layers.")}
    for i in sorted(layers):
        src, dst = f"vision_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for new, old in names.items():
            for p in ("weight", "bias"):
                out[f"{dst}{old}.{p}"] = state[f"{src}{new}.{p}"]
        for p in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{p}"] = torch.cat([state[f"{src}self_attn.{n}.{p}"] for n in ("q_proj", "k_proj", "v_proj")])
    return out


def save_unet(folder: Path, unet) -> None:
    copy.deepcopy(unet).to(torch.float16).save_pretrained(folder, safe_serialization=True)


def _save_variants(model, folder: Path) -> None:
    """``<weights>.safetensors`` and ``<weights>.fp16.safetensors``, as the stabilityai repository has them."""
    model.save_pretrained(folder, safe_serialization=True)
    copy.deepcopy(model).to(torch.float16).save_pretrained(folder, safe_serialization=True, variant="fp16")


def build(root: Path) -> None:
    from diffusers import EulerDiscreteScheduler
    from safetensors.torch import save_file
    from vid4d.models.chronodepth import CLIP_MEAN, CLIP_STD, SVD_SCHEDULER_CONFIG

    root = Path(root)
    depth = root / "depth"
    unet = tiny_unet()
    save_unet(depth / UNET_NAME, unet)
    (root / "diffusion_models").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(depth / UNET_NAME / "diffusion_pytorch_model.safetensors", root / "diffusion_models" / UNET_SINGLE_FILE)

    vae, clip = tiny_base()
    base = depth / BASE_NAME
    _save_variants(vae, base / "vae")
    _save_variants(clip, base / "image_encoder")
    _save_variants(tiny_unet(seed=2), base / "unet")
    EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG).save_pretrained(base / "scheduler")
    (base / "feature_extractor").mkdir(parents=True, exist_ok=True)
    (base / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
        "do_resize": True, "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": list(CLIP_MEAN), "image_processor_type": "CLIPImageProcessor",
        "image_std": list(CLIP_STD), "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224},
    }, indent=2))
    (base / "model_index.json").write_text(json.dumps({
        "_class_name": "StableVideoDiffusionPipeline", "_diffusers_version": "0.24.0.dev0", "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"], "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "unet": ["diffusers", "UNetSpatioTemporalConditionModel"], "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
    }, indent=2))

    sgm = {**vae_to_sgm(vae.state_dict(), len(VAE_CONFIG["block_out_channels"])), **clip_to_sgm(clip.state_dict())}
    sgm["model.diffusion_model.input_blocks.0.0.weight"] = torch.randn(32, 8, 3, 3)
    sgm["model.diffusion_model.input_blocks.0.0.bias"] = torch.zeros(32)
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sgm.items()}, str(root / "checkpoints" / SINGLE_FILE))
    shutil.copyfile(root / "checkpoints" / SINGLE_FILE, base / SINGLE_FILE)
