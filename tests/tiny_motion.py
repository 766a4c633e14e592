"""Tiny random-weight motion LDMs in both layouts read from ``models/vid4d/motion/``:

* ``motion/tiny_gid_motion.safetensors`` — our layout (see models/motion.py), built from the real
  :class:`MotionModelConfig` / :class:`MotionUNet` and written by ``save_motion_model``.
* ``motion/generative-image-dynamics/`` — the community layout: ``unet_v1.pth`` (a trainer checkpoint
  ``{"model": state_dict, "losses": ...}`` like fltwr's), ``vqvae/`` (a diffusers VQModel folder),
  ``fft_std.npy`` and a ``config.json`` giving the tiny latent size.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

VID4D_NAME = "tiny_gid_motion.safetensors"
COMMUNITY_NAME = "generative-image-dynamics"
TINY_SCALES = torch.tensor([4.0, 2.0, 1.0, 0.5])


def tiny_config():
    from vid4d.models.motion import MotionModelConfig

    return MotionModelConfig(num_freqs=4, period=16, fps=30.0, sample_size=(8, 12), block_out_channels=(16, 32), layers_per_block=1, attention_levels=(False, True), norm_num_groups=8, attention_head_dim=8, frequency_heads=2, num_train_timesteps=100)


def build(root: Path) -> None:
    from diffusers import UNet2DModel, VQModel

    from vid4d.models.motion import MotionUNet, save_motion_model

    folder = Path(root) / "motion"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = MotionUNet(tiny_config())
    with torch.no_grad():  # the frequency attention starts as identity; make it do something
        for layer in net.freq_attn:
            layer.attn.out_proj.weight.normal_(0, 0.1)
    save_motion_model(net, TINY_SCALES, folder / VID4D_NAME)

    import numpy as np

    community = folder / COMMUNITY_NAME
    community.mkdir(exist_ok=True)
    unet = UNet2DModel(sample_size=(4, 6), in_channels=15, out_channels=12, class_embed_type="timestep", block_out_channels=(16, 32), layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8)
    torch.save({"model": unet.state_dict(), "losses": {"train_loss": [0.5, 0.4]}}, community / "unet_v1.pth")
    (community / "config.json").write_text(json.dumps({k: v for k, v in unet.config.items() if not k.startswith("_")}))
    vae = VQModel(in_channels=3, out_channels=3, latent_channels=3, block_out_channels=(8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8, num_vq_embeddings=16, vq_embed_dim=3)
    vae.save_pretrained(community / "vqvae", safe_serialization=True)
    np.save(community / "fft_std.npy", np.linspace(3.0, 0.1, 149).astype(np.float32))
