"""Motion prediction for Generative Image Dynamics: a latent diffusion model that predicts a still
image's spectral volume (Li et al., CVPR 2024), and a loader for the unofficial community checkpoints.

Two checkpoint layouts are read from ``models/vid4d/motion/``:

* **Ours** (``<name>.safetensors``, one file): the frequency-coordinated denoiser of the paper. A
  diffusers ``UNet2DModel`` denoises one 4-channel frequency slice (Re x, Re y, Im x, Im y) with the
  frequency index embedded like the timestep (``class_embed_type="timestep"``, the index as class
  label); :class:`FrequencyAttention` layers after the mid block and every up block attend *across the
  K slices* of one image (``[B·K, C, h, w] → [B, K, C, h, w]``, per pixel over K), so all frequencies
  are generated jointly. The image conditions the U-Net by concatenation, resized to the latent grid.
  Our "latent" is the spectral volume itself at the low ``sample_size`` resolution (vectors in that
  grid's pixels), frequency-adaptively normalised (:func:`py.spectral.normalize_spectral`) with the
  per-frequency scales stored in the file: no VAE. Keys: ``unet.*`` (the UNet2DModel state dict),
  ``freq_attn.<i>.*``, ``spectral_scales`` ``[K]``; safetensors metadata ``format = "vid4d_motion"``
  and ``config`` = :class:`MotionModelConfig` as JSON. :func:`save_motion_model` writes it.

* **Community** (a folder; fltwr/generative-image-dynamics, MIT-style unofficial implementation):
  ``unet_v1.pth`` (their trainer checkpoint ``{"model": state_dict, ...}``, or any single weight file
  of a ``UNet2DModel(in_channels=15, out_channels=12, class_embed_type="timestep")``; its other sizes
  are read from an optional ``config.json`` or inferred from the weights), ``vqvae/`` (a diffusers
  ``VQModel`` folder, CompVis/ldm-celebahq-256's ``vqvae``) and ``fft_std.npy`` (their per-frequency
  standard deviations, 149 bins: 150-frame clips give 149 flows from the first frame, so period 149).
  The frame is VQ-encoded (3 latent channels at 1/4 size, RGB in -1..1); each of the 4 spectral
  channels is a separate VQ "image" (3 latent channels each → 12) decoded and averaged over RGB;
  normalisation is linear, S = S' · std_k · 2.82 (no sqrt). No frequency attention. Working size
  256×160 (latent 64×40) unless ``config.json`` has a ``sample_size``.

Both are sampled with DDIM (diffusers ``DDIMScheduler``, eta 0) from seeded noise, denormalised with
the model's own statistics, and returned as a :class:`py.spectral.SpectralVolume` at the image size.
"""

from __future__ import annotations

import abc

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..py.checks import check_positive_int, check_tensor
from ..py.spectral import SpectralVolume, denormalize_spectral, transfer_volume
from . import loading

FORMAT = "vid4d_motion"
COMMUNITY_SCALE = 2.82  # fltwr's `scale`: ~3 % of normalised coefficients fall outside [-1, 1]
COMMUNITY_UNET_NAMES = ("unet_v1.pth", "unet.pth", "unet.safetensors", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
COMMUNITY_LATENT_SIZE = (40, 64)  # their training size 256x160 through the 4x VQ-VAE
COMMUNITY_VAE_FACTOR = 4
# fltwr's noise schedule (get_noise_scheduler): DDPM, 1000 steps, scaled-linear betas.
COMMUNITY_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.0015, "beta_end": 0.0195, "beta_schedule": "scaled_linear"}
SLICE_CHANNELS = 4  # Re x, Re y, Im x, Im y
IMAGE_CHANNELS = 3


@dataclass
class MotionModelConfig:
    """Sizes of our motion LDM (stored as JSON in the checkpoint's metadata).

    ``sample_size`` (h, w) is the latent grid the volume is predicted on (each divisible by
    2^(levels-1)); ``period``/``fps`` describe the clips the model was trained on (150 frames at 30 fps
    in the paper: bins 0.2 Hz apart).
    """

    num_freqs: int = 16
    period: int = 150
    fps: float = 30.0
    sample_size: tuple[int, int] = (40, 64)
    block_out_channels: tuple[int, ...] = (128, 256, 384)
    layers_per_block: int = 2
    attention_levels: tuple[bool, ...] = (False, True, True)
    norm_num_groups: int = 32
    attention_head_dim: int = 8
    frequency_attention: bool = True
    frequency_heads: int = 4
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "epsilon"

    def __post_init__(self):
        self.sample_size = tuple(int(s) for s in self.sample_size)
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        self.attention_levels = tuple(bool(a) for a in self.attention_levels)
        check_positive_int("MotionModelConfig.num_freqs", self.num_freqs)
        check_positive_int("MotionModelConfig.period", self.period, minimum=2)
        if self.num_freqs > self.period // 2 + 1:
            raise ValueError(f"MotionModelConfig: {self.num_freqs} frequencies exceed the {self.period // 2 + 1} a period of {self.period} frames has")
        if len(self.sample_size) != 2 or len(self.attention_levels) != len(self.block_out_channels) or not self.block_out_channels:
            raise ValueError(f"MotionModelConfig: sample_size needs 2 values and attention_levels one per block_out_channels, got {self.sample_size}, {self.attention_levels}, {self.block_out_channels}")
        factor = 2 ** (len(self.block_out_channels) - 1)
        if any(s % factor for s in self.sample_size):
            raise ValueError(f"MotionModelConfig.sample_size: {self.sample_size} must be divisible by {factor} (2^(levels-1))")

    @classmethod
    def from_json(cls, text: str, where="config") -> "MotionModelConfig":
        try:
            data = json.loads(text)
            known = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise loading.CheckpointFormatError(f"{where}: invalid motion model config: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class FrequencyAttention(nn.Module):
    """Self-attention across the K frequency slices of each image, per pixel:
    ``[B·K, C, h, w] → [B·K, C, h, w]`` (residual). The output projection starts at zero so inserting
    the layer into a trained per-slice U-Net leaves it unchanged before fine-tuning."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(groups, channels), channels)
        self.attn = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor, num_freqs: int) -> torch.Tensor:
        bk, c, h, w = x.shape
        y = self.norm(x).reshape(bk // num_freqs, num_freqs, c, h, w).permute(0, 3, 4, 1, 2).reshape(-1, num_freqs, c)
        y, _ = self.attn(y, y, y, need_weights=False)
        y = y.reshape(bk // num_freqs, h, w, num_freqs, c).permute(0, 3, 4, 1, 2).reshape(bk, c, h, w)
        return x + y


class MotionUNet(nn.Module):
    """The frequency-coordinated denoiser: ``UNet2DModel`` over one slice + :class:`FrequencyAttention`
    after its mid block and each up block (attached as forward hooks, so the U-Net is diffusers' own)."""

    def __init__(self, config: MotionModelConfig):
        super().__init__()
        from diffusers import UNet2DModel

        self.config = config
        levels = config.attention_levels
        self.unet = UNet2DModel(
            sample_size=config.sample_size,
            in_channels=SLICE_CHANNELS + IMAGE_CHANNELS,
            out_channels=SLICE_CHANNELS,
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in levels),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels)),
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
            attention_head_dim=config.attention_head_dim,
            class_embed_type="timestep",
        )
        self.freq_attn = nn.ModuleList()
        self._num_freqs = 1
        if config.frequency_attention:
            blocks = [(self.unet.mid_block, config.block_out_channels[-1])]
            blocks += [(b, c) for b, c in zip(self.unet.up_blocks, reversed(config.block_out_channels))]
            for block, channels in blocks:
                layer = FrequencyAttention(channels, config.frequency_heads, config.norm_num_groups)
                self.freq_attn.append(layer)
                block.register_forward_hook(self._hook(layer))

    def _hook(self, layer: FrequencyAttention):
        def apply(module, args, output):
            return layer(output, self._num_freqs)

        return apply

    def forward(self, slices: torch.Tensor, image: torch.Tensor, timestep, num_freqs: int) -> torch.Tensor:
        """``slices [B·K, 4, h, w]`` noisy, ``image [B·K, 3, h, w]`` → predicted noise ``[B·K, 4, h, w]``;
        slice i of each image has frequency index i % K."""
        self._num_freqs = num_freqs
        freq = torch.arange(num_freqs, device=slices.device).repeat(slices.shape[0] // num_freqs)
        return self.unet(torch.cat([slices, image], dim=1), timestep, class_labels=freq).sample


def _resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[H, W, 3]`` 0..1 → ``[1, 3, height, width]`` in -1..1 (antialiased when shrinking)."""
    x = image.permute(2, 0, 1)[None].float()
    shrink = height < x.shape[2] or width < x.shape[3]
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return x * 2 - 1


class MotionPipeline(abc.ABC):
    """A loaded motion model (the ``VID4D_MOTION_MODEL`` handle): ``pipe(image) -> SpectralVolume``.

    Attributes: ``name``, ``layout`` (``"vid4d"`` or ``"community"``), ``num_freqs``, ``period``,
    ``fps``, ``latent_size`` (h, w), ``scales`` (the model's per-frequency statistics).
    """

    layout = ""

    def __init__(self, name: str, num_freqs: int, period: int, fps: float, latent_size: tuple[int, int], scales: torch.Tensor, schedule: dict, device, dtype):
        self.name = name
        self.num_freqs = num_freqs
        self.period = period
        self.fps = fps
        self.latent_size = latent_size
        self.scales = scales
        self.schedule = schedule
        self.device = torch.device(device)
        self.dtype = dtype

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, {self.layout}, K={self.num_freqs}, period={self.period}, latent={self.latent_size})"

    # Layout-specific parts (Vid4DMotionPipeline, CommunityMotionPipeline).
    @abc.abstractmethod
    def _condition(self, image: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def _predict(self, latents: torch.Tensor, cond: torch.Tensor, t) -> torch.Tensor: ...

    @abc.abstractmethod
    def _decode(self, latents: torch.Tensor) -> SpectralVolume: ...

    latent_channels = SLICE_CHANNELS

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, num_steps: int = 25, seed: int = 0, progress=None) -> SpectralVolume:
        """Predict the spectral volume of ``image [H, W, 3]`` (0..1): DDIM with ``num_steps`` steps from
        noise seeded by ``seed`` (CPU generator: the same on every device); the volume is returned at
        the image size (vectors rescaled). ``progress(done)`` after each step; it may raise to cancel."""
        from diffusers import DDIMScheduler

        image = check_tensor("image", image, (None, None, 3))
        num_steps = check_positive_int("num_steps", num_steps, maximum=1000)
        seed = check_positive_int("seed", seed, minimum=0, maximum=2**63 - 1)
        height, width = image.shape[:2]
        scheduler = DDIMScheduler(clip_sample=False, **self.schedule)
        scheduler.set_timesteps(num_steps)
        h, w = self.latent_size
        cond = self._condition(image.to(self.device)).to(self.dtype)
        generator = torch.Generator().manual_seed(seed)
        latents = torch.randn(self.num_freqs, self.latent_channels, h, w, generator=generator).to(self.device, self.dtype)
        for done, t in enumerate(scheduler.timesteps, start=1):
            noise = self._predict(latents, cond, t)
            latents = scheduler.step(noise.float(), t, latents.float()).prev_sample.to(self.dtype)
            if progress is not None:
                progress(done)
        volume = self._decode(latents.float())
        return transfer_volume(volume, height, width)


class Vid4DMotionPipeline(MotionPipeline):
    layout = "vid4d"

    def __init__(self, name, net: MotionUNet, scales, device, dtype):
        c = net.config
        schedule = {"num_train_timesteps": c.num_train_timesteps, "beta_start": c.beta_start, "beta_end": c.beta_end, "beta_schedule": c.beta_schedule, "prediction_type": c.prediction_type}
        super().__init__(name, c.num_freqs, c.period, c.fps, c.sample_size, scales, schedule, device, dtype)
        self.net = net

    def _condition(self, image):
        return _resize_image(image, *self.latent_size)

    def _predict(self, latents, cond, t):
        return self.net(latents, cond.expand(latents.shape[0], -1, -1, -1), t, self.num_freqs)

    def _decode(self, latents):
        coeffs = denormalize_spectral(latents.permute(0, 2, 3, 1), self.scales.to(latents.device))
        return SpectralVolume(coeffs=coeffs.cpu(), period=self.period, fps=self.fps)


class CommunityMotionPipeline(MotionPipeline):
    layout = "community"
    latent_channels = SLICE_CHANNELS * 3
    vae_batch = 12  # VQ images decoded at once (K·4 in all)

    def __init__(self, name, unet, vae, std: torch.Tensor, num_freqs: int, latent_size, device, dtype):
        scales = std[:num_freqs] * COMMUNITY_SCALE
        super().__init__(name, num_freqs, int(std.shape[0]), 30.0, latent_size, scales, dict(COMMUNITY_SCHEDULE), device, dtype)
        self.unet, self.vae = unet, vae

    def _condition(self, image):
        h, w = self.latent_size
        frame = _resize_image(image, h * COMMUNITY_VAE_FACTOR, w * COMMUNITY_VAE_FACTOR).to(self.dtype)
        return self.vae.encode(frame).latents

    def _predict(self, latents, cond, t):
        freq = torch.arange(self.num_freqs, device=latents.device)
        return self.unet(torch.cat([latents, cond.expand(latents.shape[0], -1, -1, -1)], dim=1), t, class_labels=freq).sample

    def _decode(self, latents):
        k = latents.shape[0]
        codes = latents.reshape(k * SLICE_CHANNELS, 3, *latents.shape[2:]).to(self.dtype)
        planes = torch.cat([self.vae.decode(codes[i : i + self.vae_batch]).sample.mean(dim=1) for i in range(0, codes.shape[0], self.vae_batch)])
        planes = planes.float().reshape(k, SLICE_CHANNELS, *planes.shape[1:]).permute(0, 2, 3, 1)
        planes = planes * self.scales.to(planes.device)[:, None, None, None]
        coeffs = torch.complex(planes[..., :2], planes[..., 2:])
        return SpectralVolume(coeffs=coeffs.cpu(), period=self.period, fps=self.fps)


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------


def save_motion_model(net: MotionUNet, scales: torch.Tensor, path) -> None:
    """Write our layout: one ``.safetensors`` with ``unet.* freq_attn.*`` + ``spectral_scales [K]`` and
    the config in its metadata."""
    from safetensors.torch import save_file

    scales = check_tensor("scales", scales, (net.config.num_freqs,))
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    state["spectral_scales"] = scales.detach().float().cpu().contiguous()
    save_file(state, str(path), metadata={"format": FORMAT, "config": net.config.to_json()})


def load_motion_model(path, device="cpu", dtype: torch.dtype = torch.float32) -> MotionPipeline:
    """Load a motion model from a ``.safetensors`` file (our layout) or a community folder (see the module
    docstring). Cached by path, modification time, device and dtype.

    Raises:
        ModelNotFoundError: the path does not exist.
        CheckpointFormatError: it is neither layout, or its keys/shapes do not match.
    """
    path = Path(path)
    if not path.exists():
        raise loading.ModelNotFoundError(f"motion model not found: {path}; put it in ComfyUI/models/vid4d/motion/")
    key = ("motion", str(path.resolve()), path.stat().st_mtime_ns, str(torch.device(device)), str(dtype))
    if path.is_dir():
        return loading.cached(key, lambda: _load_community(path, device, dtype))
    if path.suffix.lower() != ".safetensors":
        raise loading.CheckpointFormatError(f"{path}: a motion model is a .safetensors file (Vid4D layout) or a folder with vqvae/, fft_std.npy and the U-Net weights (community layout)")
    return loading.cached(key, lambda: _load_vid4d(path, device, dtype))


def _load_vid4d(path: Path, device, dtype) -> Vid4DMotionPipeline:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise loading.CheckpointFormatError(f"could not read {path}: {type(exc).__name__}: {exc}") from exc
    if meta.get("format") != FORMAT or "config" not in meta:
        raise loading.CheckpointFormatError(f"{path}: not a Vid4D motion model (safetensors metadata format={meta.get('format')!r}, expected {FORMAT!r} with a config)")
    config = MotionModelConfig.from_json(meta["config"], where=str(path))
    state = dict(loading.load_state_dict(path))
    loading.require_keys(state, ["unet.conv_in.", "unet.class_embedding.", "spectral_scales"] + (["freq_attn.0."] if config.frequency_attention else []), path)
    scales = state.pop("spectral_scales").float()
    loading.check_state_matches(lambda: MotionUNet(config), state, path)  # before anything the config asks for is allocated
    net = MotionUNet(config)
    _load_strict(net, state, path)
    if scales.shape != (config.num_freqs,) or float(scales.min()) <= 0:
        raise loading.CheckpointFormatError(f"{path}: spectral_scales must be {config.num_freqs} positive values, got shape {list(scales.shape)}")
    _place(net, device, dtype)
    return Vid4DMotionPipeline(path.name, net, scales, device, dtype)


def _place(module: nn.Module, device, dtype) -> nn.Module:
    """Move to the device, converting only for a non-float32 dtype (diffusers warns on a no-op cast)."""
    module.to(device=torch.device(device))
    if dtype != torch.float32:
        module.to(dtype=dtype)
    return module.eval()


def _load_strict(module: nn.Module, state: dict, path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise loading.CheckpointFormatError(f"{path}: weights do not match the model: {str(exc)[:600]}") from exc


def _find_unet_file(folder: Path) -> Path:
    for name in COMMUNITY_UNET_NAMES:
        if (folder / name).is_file():
            return folder / name
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in loading.WEIGHT_EXTENSIONS)
    if len(files) != 1:
        raise loading.ModelNotFoundError(f"{folder}: expected the community U-Net weights ({COMMUNITY_UNET_NAMES[0]}, fltwr/generative-image-dynamics) in this folder, found {[p.name for p in files] or 'none'}")
    return files[0]


def infer_unet_config(state: dict) -> dict:
    """A ``UNet2DModel`` config read off a state dict (fltwr saved none): channels, layers per block,
    which blocks have attention; other values are diffusers' defaults (which fltwr used)."""
    levels = sorted({int(k.split(".")[1]) for k in state if k.startswith("down_blocks.")})
    if "conv_in.weight" not in state or not levels:
        raise ValueError("no conv_in/down_blocks keys: not a diffusers UNet2DModel state dict")
    channels = tuple(int(state[f"down_blocks.{i}.resnets.0.conv1.weight"].shape[0]) for i in levels)
    layers = len({k.split(".")[3] for k in state if k.startswith("down_blocks.0.resnets.")})
    down = tuple("AttnDownBlock2D" if any(k.startswith(f"down_blocks.{i}.attentions.") for k in state) else "DownBlock2D" for i in levels)
    up = tuple("AttnUpBlock2D" if any(k.startswith(f"up_blocks.{i}.attentions.") for k in state) else "UpBlock2D" for i in levels)
    return {
        "in_channels": int(state["conv_in.weight"].shape[1]),
        "out_channels": int(state["conv_out.weight"].shape[0]),
        "block_out_channels": channels,
        "layers_per_block": layers,
        "down_block_types": down,
        "up_block_types": up,
        "add_attention": any(k.startswith("mid_block.attentions.") for k in state),
        "class_embed_type": "timestep" if "class_embedding.linear_1.weight" in state else None,
    }


COMMUNITY_HINT = "the community folder (fltwr/generative-image-dynamics: unet_v1.pth, vqvae/ with config.json and weights, fft_std.npy)"
VID4D_HINT = "a Vid4D motion LDM .safetensors (unet.* freq_attn.* spectral_scales, config in its metadata; README: Motion models)"


def check_files(path: Path) -> loading.Problems:
    """Every problem with a motion model's files, without loading it: the community folder's missing pieces all at
    once, or a .safetensors that is not a Vid4D motion model (e.g. a synthesis network)."""
    problems = loading.Problems()
    path = Path(path)
    if path.is_dir():
        missing = []
        if not any((path / n).is_file() for n in COMMUNITY_UNET_NAMES) and len([p for p in path.iterdir() if p.is_file() and p.suffix.lower() in loading.WEIGHT_EXTENSIONS]) != 1:
            missing.append(f"the U-Net weights ({COMMUNITY_UNET_NAMES[0]})")
        if not (path / "fft_std.npy").is_file():
            missing.append("fft_std.npy (fltwr's data/labels/fft_std.npy)")
        vae = path / "vqvae"
        if not (vae / "config.json").is_file():
            missing.append("vqvae/config.json (CompVis/ldm-celebahq-256's vqvae folder)")
        elif not any(p.suffix.lower() in loading.WEIGHT_EXTENSIONS for p in vae.iterdir()):
            missing.append("vqvae/ weights (diffusion_pytorch_model.safetensors or .bin)")
        if missing:
            problems.missing(f"model_name: folder {path}/ lacks {', '.join(missing)} (found there: {loading.found_in([path])}); expected {COMMUNITY_HINT}, or {VID4D_HINT}")
    elif path.suffix.lower() != ".safetensors":
        problems.wrong(f"model_name: {path.name} is neither {VID4D_HINT} nor {COMMUNITY_HINT}")
    else:
        loading.check_vid4d_format(path, FORMAT, "a Vid4D motion model", f"{VID4D_HINT}, or {COMMUNITY_HINT}", problems)
    return problems


def _load_community(folder: Path, device, dtype) -> CommunityMotionPipeline:
    import numpy as np
    from diffusers import UNet2DModel, VQModel

    unet_file = _find_unet_file(folder)
    std_file, vae_dir = folder / "fft_std.npy", folder / "vqvae"
    for needed, what in ((std_file, "fft_std.npy (fltwr's data/labels/fft_std.npy)"), (vae_dir / "config.json", "vqvae/config.json (CompVis/ldm-celebahq-256 vqvae folder)")):
        if not needed.exists():
            raise loading.ModelNotFoundError(f"{folder}: missing {what}; the community layout needs U-Net weights, vqvae/ and fft_std.npy")
    state = loading.load_state_dict(unet_file)
    if (folder / "config.json").is_file():
        config = {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if not k.startswith("_")}
    else:
        try:
            config = infer_unet_config(state)
        except (ValueError, KeyError) as exc:
            raise loading.CheckpointFormatError(f"{unet_file}: {exc}") from exc
    if config.get("in_channels") != 15 or config.get("out_channels") != 12 or config.get("class_embed_type") != "timestep":
        raise loading.CheckpointFormatError(f"{unet_file}: expected a UNet2DModel with 15 input / 12 output channels and class_embed_type 'timestep' (fltwr layout), got {config.get('in_channels')}/{config.get('out_channels')}/{config.get('class_embed_type')}")
    unet = UNet2DModel.from_config(config)
    _load_strict(unet, state, unet_file)
    vae = VQModel.from_config(VQModel.load_config(str(vae_dir)))
    vae_files = [p for p in sorted(vae_dir.iterdir()) if p.suffix.lower() in loading.WEIGHT_EXTENSIONS]
    if not vae_files:
        raise loading.ModelNotFoundError(f"{vae_dir}: no weight file (diffusion_pytorch_model.safetensors or .bin)")
    _load_strict(vae, loading.load_state_dict(vae_files[0]), vae_files[0])
    try:
        std = torch.from_numpy(np.load(std_file, allow_pickle=False).astype(np.float32)).reshape(-1)
    except Exception as exc:
        raise loading.CheckpointFormatError(f"{std_file}: could not read the frequency statistics: {exc}") from exc
    if std.shape[0] < 2 or not bool(torch.isfinite(std).all()) or float(std.min()) <= 0:
        raise loading.CheckpointFormatError(f"{std_file}: expected positive per-frequency standard deviations, got shape {list(std.shape)}")
    size = config.get("sample_size") or COMMUNITY_LATENT_SIZE
    size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    num_freqs = min(16, std.shape[0] // 2 + 1)  # fltwr's NUM_FREQ
    _place(unet, device, dtype)
    _place(vae, device, dtype)
    return CommunityMotionPipeline(folder.name, unet, vae, std, num_freqs, size, device, dtype)
