"""ChronoDepth-v1: video depth from a fine-tuned Stable Video Diffusion UNet (Shao et al., arXiv 2406.01493).

Loads the files as users download them: the ``jhshao/ChronoDepth-v1`` UNet folder plus SVD-XT either as
a diffusers folder or as ComfyUI's single ``svd_xt.safetensors`` (SGM key names). diffusers/transformers
are imported inside functions so that importing this module stays light.

Which end is near: the v1 code descends from Marigold (its pipeline says so) and trains on affine-
invariant *depth* normalised to [-1, 1]; its output is shown with matplotlib's Spectral map like
Marigold's depth (near = 0). So ``near_is = "low"``: small values are near. This follows the code's
lineage; it has not been checked against real weights here (no network).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .families import expect_family
from .loading import CheckpointFormatError, ModelNotFoundError, Problems, found_in, load_state_dict, read_header
from .placement import LocalPlacement

NEAR_IS = "low"
WINDOW_MODES = ("context", "replacement", "naive")
# The official code's clean timestep for context frames, in the scheduler's units (0.25·log σ).
CONTEXT_TIMESTEP = -4.0
# SVD conditioning used by ChronoDepth-v1: fps 7 - 1, motion bucket 127, no noise augmentation.
ADDED_TIME_IDS = (6.0, 127.0, 0.0)
MIN_SIZE = 64
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# SVD-XT's scheduler/scheduler_config.json, for bases that ship without it (the single file).
SVD_SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}
SVD_VAE_SCALING = 0.18215
UNET_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
CLIP_WEIGHTS = ("model.safetensors", "model.fp16.safetensors")
SGM_VAE = "first_stage_model."
SGM_CLIP = "conditioner.embedders.0.open_clip.model.visual."
UNET_FOLDER_HINT = (
    "the ChronoDepth-v1 folder in models/vid4d/depth/ (config.json + diffusion_pytorch_model.safetensors from "
    "https://huggingface.co/jhshao/ChronoDepth-v1), or that diffusion_pytorch_model.safetensors as one file in "
    "models/vid4d/depth/ or models/diffusion_models/"
)
BASE_HINT = (
    "SVD-XT: svd_xt.safetensors in models/checkpoints/ (https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt), "
    "or that repository's diffusers folder in models/vid4d/depth/stable-video-diffusion-img2vid-xt/ (vae/ image_encoder/ "
    "scheduler/ feature_extractor/)"
)
# The class name ChronoDepth's own code saves its UNet under (a UNetSpatioTemporalConditionModel subclass, same weights).
UNET_CLASSES = ("UNetSpatioTemporalConditionModel", "DiffusersUNetSpatioTemporalConditionModelChronodepth")
SVD_HEAD_WIDTH = 64  # SVD's attention heads are 64 wide (5, 10, 20, 20 heads over 320, 640, 1280, 1280 channels)
SVD_NUM_FRAMES = 25


# ---------------------------------------------------------------- windows
@dataclass(frozen=True)
class Window:
    """Frames ``[start, end)`` go through the UNet; ``[new, end)`` are denoised, ``[start, new)`` is context."""

    start: int
    new: int
    end: int


def window_plan(num_frames: int, window: int = 10, stride: int = 5) -> list[Window]:
    """The v1 sliding windows: the first ``window`` frames, then ``stride`` new frames at a time with the
    previous ``window - stride`` (or more, at the end) frames as context; no overlap averaging."""
    if num_frames < 1:
        raise ValueError(f"window_plan: expected at least 1 frame, got {num_frames}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride: expected 1 <= stride <= window ({window}), got {stride}")
    plan = [Window(0, 0, min(window, num_frames))]
    current = plan[0].end
    while current < num_frames:
        horizon = min(num_frames - current, stride)
        plan.append(Window(max(0, current + horizon - window), current, current + horizon))
        current += horizon
    return plan


def working_size(height: int, width: int, max_res: int = 1024) -> tuple[int, int]:
    """(height, width) the network runs at: multiples of 64, long side ≤ ``max_res`` (the v1 resize)."""
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"frames: ChronoDepth needs frames of at least {MIN_SIZE} px on each side, got {width}x{height}; upscale the video first")
    if max_res < MIN_SIZE:
        raise ValueError(f"max_res: expected at least {MIN_SIZE}, got {max_res}")
    h, w = round(height / 64) * 64, round(width / 64) * 64
    if max(h, w) > max_res:
        scale = max_res / max(height, width)
        h, w = round(height * scale / 64) * 64, round(width * scale / 64) * 64
    return max(h, 64), max(w, 64)


# ---------------------------------------------------------------- the UNet with per-frame timesteps
def unet_forward(unet, sample: torch.Tensor, timesteps: torch.Tensor, image_embedding: torch.Tensor, added_time_ids: torch.Tensor) -> torch.Tensor:
    """``UNetSpatioTemporalConditionModel`` with one timestep *per frame* (ChronoDepth-v1).

    diffusers' ``forward`` embeds one timestep per video and repeats it over frames; v1 embeds each
    frame's own timestep so context frames can be marked clean. Same submodules, same order.

    Args:
        sample: ``[F, 8, h, w]`` latents [rgb, depth] of one window.
        timesteps: ``[F]`` (scheduler units).
        image_embedding: ``[1, 1, D]`` CLIP embedding, shared by all frames.
        added_time_ids: ``[1, 3]``.
    Returns:
        ``[F, 4, h, w]`` model output.
    """
    num_frames = sample.shape[0]
    t_emb = unet.time_proj(timesteps.reshape(num_frames).to(sample.device)).to(sample.dtype)
    emb = unet.time_embedding(t_emb)
    time_embeds = unet.add_time_proj(added_time_ids.flatten()).reshape(1, -1).to(emb.dtype)
    emb = emb + unet.add_embedding(time_embeds).expand(num_frames, -1)
    context = image_embedding.to(sample.dtype).expand(num_frames, -1, -1)
    indicator = torch.zeros(1, num_frames, dtype=sample.dtype, device=sample.device)

    h = unet.conv_in(sample)
    residuals = (h,)
    for block in unet.down_blocks:
        kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
        h, res = block(hidden_states=h, temb=emb, image_only_indicator=indicator, **kwargs)
        residuals += res
    h = unet.mid_block(hidden_states=h, temb=emb, encoder_hidden_states=context, image_only_indicator=indicator)
    for block in unet.up_blocks:
        res, residuals = residuals[-len(block.resnets) :], residuals[: -len(block.resnets)]
        kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
        h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res, image_only_indicator=indicator, **kwargs)
    return unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))


# ---------------------------------------------------------------- pipeline
class ChronoDepthPipeline:
    """Callable video depth: ``pipe(frames [T, H, W, 3] 0..1) -> depth [T, H, W]`` in 0..1.

    Attributes:
        near_is: ``"low"`` — small output values are near (see the module docstring).
        image_embedding: ``[1, 1, D]`` CLIP embedding of the zeroed image (v1 discards image content,
            so it is computed once at load and the image encoder is not kept).
    """

    near_is = NEAR_IS

    def __init__(self, unet, vae, scheduler, image_embedding: torch.Tensor, device="cpu", dtype=torch.float32, offload_device=None, placement=None):
        self.unet, self.vae, self.scheduler = unet.eval(), vae.eval(), scheduler
        self.image_embedding = image_embedding
        self.device = torch.device(device)
        self.dtype = dtype
        self.vae_dtype = next(vae.parameters()).dtype
        self.offload_device = torch.device(offload_device) if offload_device is not None else None
        # Where the UNet and VAE wait between calls (ComfyUI's model management inside ComfyUI).
        self.placement = placement if placement is not None else LocalPlacement(self.device, offload=offload_device is not None)
        self.latent_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        for model, dtype in ((self.unet, self.dtype), (self.vae, self.vae_dtype)):
            model.to(dtype=dtype)
            self.placement.home(model)

    def memory_required(self, frames: int, height: int, width: int, window: int = 10, decode_chunk: int = 8) -> int:
        """Rough bytes one call needs beyond the weights: a window through the UNet (its widest level at 1/8 size,
        ~10 buffers) or a decode chunk through the VAE decoder (128 channels at full size, ~6 buffers)."""
        h, w = working_size(height, width)
        item = torch.finfo(self.dtype).bits // 8
        unet = min(window, frames) * (h // 8) * (w // 8) * int(self.unet.config.block_out_channels[0]) * 10 * item
        vae = min(decode_chunk, frames) * h * w * 128 * 6 * (torch.finfo(self.vae_dtype).bits // 8)
        return int(max(unet, vae))

    def num_model_calls(self, num_frames: int, num_steps: int = 5, window: int = 10, stride: int = 5) -> int:
        """UNet evaluations of one call (windows × steps): the progress total."""
        return len(window_plan(num_frames, window, stride)) * num_steps

    # ---- pieces the sampler uses (also the instrumentation points of the tests)
    def _predict(self, rgb: torch.Tensor, depth: torch.Tensor, timesteps: torch.Tensor, frames: range) -> torch.Tensor:
        """UNet output ``[F, 4, h, w]`` for window ``frames`` (latent order [rgb, depth])."""
        sample = torch.cat([rgb, depth], dim=1).to(self.dtype)
        ids = torch.tensor([ADDED_TIME_IDS], device=self.device, dtype=self.dtype)
        return unet_forward(self.unet, sample, timesteps, self.image_embedding.to(self.device), ids).float()

    def _encode(self, frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[F, H, W, 3]`` 0..1 → RGB latents ``[F, 4, h, w]`` (posterior mode; the v1 code samples it)."""
        x = frames.permute(0, 3, 1, 2).to(self.device, torch.float32)
        antialias = x.shape[-2] > size[0] or x.shape[-1] > size[1]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
        x = (x * 2 - 1).to(self.vae_dtype)
        return (self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor).float()

    def _decode(self, latents: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Depth latents ``[F, 4, h, w]`` → ``[F, H, W]`` in 0..1 (mean of the 3 channels, clipped)."""
        z = (latents / self.vae.config.scaling_factor).to(self.vae_dtype)
        image = self.vae.decode(z, num_frames=z.shape[0]).sample.float()
        depth = ((image.mean(dim=1, keepdim=True).clamp(-1, 1) + 1) / 2)
        return F.interpolate(depth, size=size, mode="bilinear", align_corners=False).clamp(0, 1)[:, 0].cpu()

    @torch.no_grad()
    def __call__(
        self,
        frames: torch.Tensor,
        num_steps: int = 5,
        window: int = 10,
        stride: int = 5,
        mode: str = "context",
        seed: int = 0,
        max_res: int = 1024,
        progress: Callable[[int], None] | None = None,
        decode_chunk: int = 8,
    ) -> torch.Tensor:
        """Relative depth of a video.

        Args:
            frames: ``[T, H, W, 3]`` float 0..1 (any device; kept where it is, read window by window).
            num_steps: Euler steps per window. window/stride: see :func:`window_plan`.
            mode: ``context`` (v1: context frames stay clean), ``replacement`` (context re-noised each
                step and restored) or ``naive`` (independent windows, only the new frames kept).
            seed: noise seed; results are deterministic per seed (noise drawn on the CPU).
            progress: ``fn(done)`` called after every UNet step (done counts windows × steps); it may
                raise to cancel.
            decode_chunk: frames per VAE decode.
        Returns:
            ``[T, H, W]`` float32 CPU, 0..1, ``near_is`` small.

        Memory: at most one window of latents (plus a decode chunk) lives on the device; finished
        frames are decoded as they leave the window, so memory does not grow with the video.
        """
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames: expected a [T, H, W, 3] tensor, got {getattr(frames, 'shape', type(frames).__name__)}")
        if frames.shape[0] == 0:
            raise ValueError("frames: the video has no frames")
        if frames.shape[0] == 1:
            # A window of one frame has no temporal context: the video prior is what ChronoDepth adds.
            raise ValueError("frames: ChronoDepth is a video depth model and needs at least 2 frames; for a single image use a per-image depth node (e.g. Depth Anything) and Vid4DDepthFromImage")
        if mode not in WINDOW_MODES:
            raise ValueError(f"mode: expected one of {WINDOW_MODES}, got {mode!r}")
        if num_steps < 1 or decode_chunk < 1:
            raise ValueError(f"num_steps and decode_chunk must be >= 1, got {num_steps} and {decode_chunk}")
        num, height, width = frames.shape[:3]
        size = working_size(height, width, max_res)
        latent_size = (size[0] // self.latent_factor, size[1] // self.latent_factor)
        plan = window_plan(num, window, stride)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        out = torch.empty(num, height, width, dtype=torch.float32)
        with self.placement.use(self.unet, self.vae, memory_required=self.memory_required(num, height, width, window, decode_chunk)):
            self._sample(frames, plan, num_steps, mode, generator, size, latent_size, (height, width), out, progress, decode_chunk)
        return out

    def _sample(self, frames, plan, num_steps, mode, generator, size, latent_size, out_size, out, progress, decode_chunk):
        sched = self.scheduler
        # Latents of frames [base, base + len) still needed: the window's and those awaiting decoding.
        base = 0
        rgb = torch.empty(0, 4, *latent_size, device=self.device)
        depth = torch.empty(0, 4, *latent_size, device=self.device)
        decoded = 0
        calls = 0

        def noise(count):
            n = torch.randn(count, 4, *latent_size, generator=generator, dtype=torch.float32)
            return n.to(self.device)

        for index, win in enumerate(plan):
            last = index == len(plan) - 1
            new_rgb = self._encode(frames[win.new : win.end], size)
            rgb = torch.cat([rgb, new_rgb])
            sched.set_timesteps(num_steps, device=self.device)
            init_sigma = float(sched.init_noise_sigma)
            lo, mid, hi = win.start - base, win.new - base, win.end - base
            frames_range = range(win.start, win.end)
            if mode == "naive" and mid > lo:
                work = noise(hi - lo) * init_sigma
            else:
                work = noise(hi - mid) * init_sigma
            context = depth[lo:mid].clone()
            for i, t in enumerate(sched.timesteps):
                if mode == "context" or mid == lo:
                    # The v1 code keeps the *scaled* latent as the step's sample; matched on purpose.
                    work = sched.scale_model_input(work, t)
                    ts = torch.cat([torch.full((mid - lo,), CONTEXT_TIMESTEP), torch.full((hi - mid,), float(t))])
                    pred = self._predict(rgb[lo:hi], torch.cat([context, work]), ts.to(self.device), frames_range)
                    work = sched.step(pred[mid - lo :], t, work).prev_sample
                elif mode == "replacement":
                    if i == 0:
                        work = torch.cat([context, work])
                    eps = noise(mid - lo)
                    work = torch.cat([context + eps * sched.sigmas[i].to(self.device), work[mid - lo :]])
                    work = sched.scale_model_input(work, t)
                    pred = self._predict(rgb[lo:hi], work, torch.full((hi - lo,), float(t), device=self.device), frames_range)
                    work = sched.step(pred, t, work).prev_sample
                else:  # naive: an independent window
                    work = sched.scale_model_input(work, t)
                    pred = self._predict(rgb[lo:hi], work, torch.full((hi - lo,), float(t), device=self.device), frames_range)
                    work = sched.step(pred, t, work).prev_sample
                calls += 1
                if progress is not None:
                    progress(calls)
            depth = torch.cat([depth[:mid], work[-(hi - mid) :]])
            # Frames before the next window's start are final: decode them (in chunks) and drop them.
            next_start = win.end if last else plan[index + 1].start
            while decoded + decode_chunk <= next_start or (last and decoded < win.end):
                stop = min(decoded + decode_chunk, next_start)
                out[decoded:stop] = self._decode(depth[decoded - base : stop - base], out_size)
                decoded = stop
            drop = min(decoded, next_start) - base
            rgb, depth, base = rgb[drop:], depth[drop:], base + drop
        return out


# ---------------------------------------------------------------- loading
def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelNotFoundError(f"{what}: {path.name} not found in {path.parent}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointFormatError(f"{path}: not a readable JSON config ({exc})") from exc


def _weights_in(folder: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise ModelNotFoundError(f"{what}: none of {list(names)} in {folder}")


def _assign(model, state: dict, path) -> None:
    """Load ``state`` into a model built on the meta device (no random init of real-size weights)."""
    state = {k: v for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:
        raise CheckpointFormatError(f"{path}: weights do not fit the config ({str(exc).splitlines()[0]} ...)") from exc
    if missing or unexpected:
        raise CheckpointFormatError(f"{path}: weights do not match the config: {len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:
            raise CheckpointFormatError(f"{path}: buffer {name} was not in the checkpoint")


def _build(cls_or_fn, config, state, path, dtype):
    from accelerate import init_empty_weights

    # Parameters on the meta device (no random init of real-size weights); buffers stay real because
    # non-persistent ones (e.g. CLIP's position ids) are not in checkpoints.
    with init_empty_weights(include_buffers=False):
        model = cls_or_fn(config)
    _assign(model, {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, path)
    return model


def check_files(unet: Path | None, base: Path | None, problems: Problems | None = None) -> Problems:
    """Every problem with a ChronoDepth UNet and SVD-XT base, without loading them: a folder that lacks its config or
    weights, a base folder without vae/ or image_encoder/, a file of another model family."""
    problems = problems if problems is not None else Problems()
    if unet is not None and unet.is_dir():
        lacking = [n for n, ok in (("config.json", (unet / "config.json").is_file()), (" or ".join(UNET_WEIGHTS), any((unet / w).is_file() for w in UNET_WEIGHTS))) if not ok]
        if lacking:
            problems.missing(f"unet: folder {unet}/ has no {' and no '.join(lacking)} (found there: {found_in([unet])}); expected {UNET_FOLDER_HINT}")
    elif unet is not None:
        try:
            expect_family(unet, ("svd_unet",), "unet", "the ChronoDepth-v1 UNet (diffusers keys)")
        except CheckpointFormatError as exc:
            problems.wrong(str(exc))
    if base is not None and base.is_dir():
        for sub, names in (("vae", UNET_WEIGHTS), ("image_encoder", CLIP_WEIGHTS)):
            if not (base / sub).is_dir():
                problems.missing(f"base: folder {base}/ has no {sub}/ (found there: {found_in([base])}); expected {BASE_HINT}")
            elif not (base / sub / "config.json").is_file() or not any((base / sub / n).is_file() for n in names):
                problems.missing(f"base: {base}/{sub}/ needs config.json and {' or '.join(names)} (found there: {found_in([base / sub])}); expected {BASE_HINT}")
    elif base is not None:
        if base.suffix.lower() != ".safetensors":
            problems.wrong(f"base: {base.name} is not a .safetensors file; expected {BASE_HINT}")
        else:
            try:
                expect_family(base, ("svd_checkpoint",), "base", "the SVD-XT single file (svd_xt.safetensors) or its diffusers folder")
            except CheckpointFormatError as exc:
                problems.wrong(str(exc))
    return problems


def unet_config_from_shapes(shapes: dict[str, tuple[int, ...]]) -> dict:
    """A ``UNetSpatioTemporalConditionModel`` config read off its weights (a single file has no config.json).
    Head counts are not in the weights: SVD's 64-wide heads (ChronoDepth-v1 is an SVD-XT fine-tune)."""
    def indices(prefix):
        return sorted({int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix)})

    downs, ups = indices("down_blocks."), indices("up_blocks.")
    widths = [int(shapes[f"down_blocks.{i}.resnets.0.spatial_res_block.conv1.weight"][0]) for i in downs]
    cross = lambda block, i: any(k.startswith(f"{block}.{i}.attentions.") for k in shapes)
    attn2 = next(v for k, v in shapes.items() if k.endswith("attn2.to_k.weight"))
    per_block = [len(indices(f"down_blocks.{i}.attentions.0.transformer_blocks.")) or 1 for i in downs]
    time_ids = int(shapes["add_embedding.linear_1.weight"][1])
    return {
        "in_channels": int(shapes["conv_in.weight"][1]),
        "out_channels": int(shapes["conv_out.weight"][0]),
        "down_block_types": ["CrossAttnDownBlockSpatioTemporal" if cross("down_blocks", i) else "DownBlockSpatioTemporal" for i in downs],
        "up_block_types": ["CrossAttnUpBlockSpatioTemporal" if cross("up_blocks", i) else "UpBlockSpatioTemporal" for i in ups],
        "block_out_channels": widths,
        "layers_per_block": len(indices("down_blocks.0.resnets.")),
        "cross_attention_dim": int(attn2[1]),
        "transformer_layers_per_block": per_block[0] if len(set(per_block)) == 1 else per_block,
        "num_attention_heads": [max(1, w // SVD_HEAD_WIDTH) for w in widths],
        "addition_time_embed_dim": time_ids // len(ADDED_TIME_IDS),
        "projection_class_embeddings_input_dim": time_ids,
        "num_frames": SVD_NUM_FRAMES,
    }


def load_unet(path, dtype=torch.float32):
    """The ChronoDepth-v1 UNet: its folder (``config.json`` + ``diffusion_pytorch_model.safetensors``), or that
    weight file on its own (config read off the weights, :func:`unet_config_from_shapes`)."""
    from diffusers import UNetSpatioTemporalConditionModel

    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"ChronoDepth UNet not found: {path}; expected {UNET_FOLDER_HINT}")
    check_files(path, None).raise_if_any("ChronoDepth UNet")
    if path.is_dir():
        config = _read_json(path / "config.json", f"ChronoDepth UNet ({UNET_FOLDER_HINT})")
        cls_name = config.get("_class_name", UNET_CLASSES[0])
        if cls_name not in UNET_CLASSES:
            raise CheckpointFormatError(f"{path}: config.json is a {cls_name}, expected a UNetSpatioTemporalConditionModel ({UNET_FOLDER_HINT})")
        weights = _weights_in(path, UNET_WEIGHTS, f"ChronoDepth UNet ({UNET_FOLDER_HINT})")
    else:
        config, weights = unet_config_from_shapes(read_header(path).shapes), path
    if config.get("in_channels") != 8 or config.get("out_channels") != 4:
        raise CheckpointFormatError(f"{path}: a ChronoDepth UNet has 8 input and 4 output channels ([rgb, depth] latents), this one has in_channels={config.get('in_channels')}, out_channels={config.get('out_channels')}")
    state = load_state_dict(weights, cache=False)
    return _build(UNetSpatioTemporalConditionModel.from_config, config, state, weights, dtype).eval()


def _vae_dtype(dtype):
    # SVD's VAE config sets force_upcast: in fp16 it overflows, so it is kept in fp32 (as the v1 code does).
    return torch.float32 if dtype == torch.float16 else dtype


def _diffusers_base(folder: Path, dtype):
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    for sub in ("vae", "image_encoder"):
        if not (folder / sub).is_dir():
            raise ModelNotFoundError(f"SVD-XT base {folder}: missing {sub}/; expected {BASE_HINT}")
    vae_config = _read_json(folder / "vae" / "config.json", "SVD-XT VAE")
    vae_weights = _weights_in(folder / "vae", UNET_WEIGHTS, "SVD-XT VAE")
    vae = _build(AutoencoderKLTemporalDecoder.from_config, vae_config, load_state_dict(vae_weights), vae_weights, _vae_dtype(dtype))
    clip_config = CLIPVisionConfig.from_dict(_read_json(folder / "image_encoder" / "config.json", "SVD-XT image encoder"))
    clip_weights = _weights_in(folder / "image_encoder", CLIP_WEIGHTS, "SVD-XT image encoder")
    clip = _build(CLIPVisionModelWithProjection, clip_config, load_state_dict(clip_weights), clip_weights, torch.float32)
    sched_path = folder / "scheduler" / "scheduler_config.json"
    sched_config = _read_json(sched_path, "SVD-XT scheduler") if sched_path.exists() else SVD_SCHEDULER_CONFIG
    scheduler = EulerDiscreteScheduler.from_config(sched_config)
    mean, std = CLIP_MEAN, CLIP_STD
    fe = folder / "feature_extractor" / "preprocessor_config.json"
    if fe.exists():
        cfg = _read_json(fe, "SVD-XT feature extractor")
        mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
    return vae, clip, scheduler, mean, std


def _read_prefixed(path: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Only the tensors under ``prefixes`` of a (large) safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = [k for k in f.keys() if k.startswith(prefixes)]
            state = {k: f.get_tensor(k) for k in keys}
    except Exception as exc:  # truncated or not a safetensors file
        raise CheckpointFormatError(f"could not read weights from {path}: {type(exc).__name__}: {exc}") from exc
    missing = [p for p in prefixes if not any(k.startswith(p) for k in state)]
    if missing:
        raise CheckpointFormatError(f"{path}: not an SVD(-XT) single-file checkpoint; no keys starting with {missing} (expected SGM names {SGM_VAE}*, {SGM_CLIP}*)")
    return state


def _count(state: dict, prefix: str) -> int:
    ids = {k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)}
    return len([i for i in ids if i.isdigit()])


def sgm_vae_config(sgm: dict) -> dict:
    """An ``AutoencoderKLTemporalDecoder`` config read off SGM VAE weights (prefix removed)."""
    levels = _count(sgm, "encoder.down.")
    return {
        "in_channels": sgm["encoder.conv_in.weight"].shape[1],
        "out_channels": sgm["decoder.conv_out.weight"].shape[0],
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "block_out_channels": [sgm[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] for i in range(levels)],
        "layers_per_block": _count(sgm, "encoder.down.0.block."),
        "latent_channels": sgm["encoder.conv_out.weight"].shape[0] // 2,
        "scaling_factor": SVD_VAE_SCALING,
        "force_upcast": True,
    }


_TEMPORAL = {"time_stack.in_layers.0": "temporal_res_block.norm1", "time_stack.in_layers.2": "temporal_res_block.conv1", "time_stack.out_layers.0": "temporal_res_block.norm2", "time_stack.out_layers.3": "temporal_res_block.conv2", "mix_factor": "time_mixer.mix_factor"}


def convert_sgm_vae(sgm: dict, config: dict) -> dict:
    """SGM ``first_stage_model.*`` (prefix removed) → diffusers ``AutoencoderKLTemporalDecoder`` keys.

    diffusers' single-file ``convert_ldm_vae_checkpoint`` maps the image-VAE part (encoder, spatial
    decoder resnets, attention); the video decoder's extras are renamed here: each decoder resnet's
    ``time_stack`` / ``mix_factor`` and spatial part, and ``conv_out.time_mix_conv``.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    converted = convert_ldm_vae_checkpoint(dict(sgm), {**config, "up_block_types": ["UpDecoderBlock2D"] * len(config["down_block_types"])})
    out = {}
    for key, value in converted.items():
        if key.startswith("decoder.") and ".resnets." in key:
            head, _, tail = key.partition(".resnets.")
            index, _, rest = tail.partition(".")
            for old, new in _TEMPORAL.items():
                if rest.startswith(old):
                    rest = new + rest[len(old) :]
                    break
            else:
                rest = "spatial_res_block." + rest
            key = f"{head}.resnets.{index}.{rest}"
        if key.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")) and value.dim() > 2:
            value = value[:, :, 0, 0]
        out[key] = value
    out["decoder.time_conv_out.weight"] = sgm["decoder.conv_out.time_mix_conv.weight"]
    out["decoder.time_conv_out.bias"] = sgm["decoder.conv_out.time_mix_conv.bias"]
    return out


def sgm_clip_config(sgm: dict) -> dict:
    """A ``CLIPVisionConfig`` dict read off open_clip visual weights (prefix removed)."""
    hidden = sgm["conv1.weight"].shape[0]
    patch = sgm["conv1.weight"].shape[-1]
    grid = int(round(math.sqrt(sgm["positional_embedding"].shape[0] - 1)))
    # Head counts are not in the weights: open_clip's ViT-H/L/B/bigG widths, else 64-wide heads.
    heads = {1280: 16, 1024: 16, 768: 12, 1664: 16}.get(hidden, max(1, hidden // 64))
    return {
        "hidden_size": hidden,
        "intermediate_size": sgm["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "num_hidden_layers": _count(sgm, "transformer.resblocks."),
        "num_attention_heads": heads,
        "patch_size": patch,
        "image_size": grid * patch,
        "projection_dim": sgm["proj"].shape[1],
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
    }


def convert_sgm_clip(sgm: dict) -> dict:
    """open_clip visual tower (prefix removed) → transformers ``CLIPVisionModelWithProjection`` keys."""
    out = {
        "vision_model.embeddings.class_embedding": sgm["class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sgm["conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": sgm["positional_embedding"],
        "vision_model.pre_layrnorm.weight": sgm["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sgm["ln_pre.bias"],
        "vision_model.post_layernorm.weight": sgm["ln_post.weight"],
        "vision_model.post_layernorm.bias": sgm["ln_post.bias"],
        "visual_projection.weight": sgm["proj"].t().contiguous(),
    }
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2", "attn.out_proj": "self_attn.out_proj"}
    for i in range(_count(sgm, "transformer.resblocks.")):
        src, dst = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for old, new in names.items():
            for p in ("weight", "bias"):
                out[f"{dst}{new}.{p}"] = sgm[f"{src}{old}.{p}"]
        for p in ("weight", "bias"):
            for name, part in zip(("q_proj", "k_proj", "v_proj"), sgm[f"{src}attn.in_proj_{p}"].chunk(3, dim=0)):
                out[f"{dst}self_attn.{name}.{p}"] = part.contiguous()
    return out


def _single_file_base(path: Path, dtype):
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    state = _read_prefixed(path, (SGM_VAE, SGM_CLIP))
    vae_sgm = {k[len(SGM_VAE) :]: v for k, v in state.items() if k.startswith(SGM_VAE)}
    clip_sgm = {k[len(SGM_CLIP) :]: v for k, v in state.items() if k.startswith(SGM_CLIP)}
    try:
        vae_config = sgm_vae_config(vae_sgm)
        vae_state = convert_sgm_vae(vae_sgm, vae_config)
        clip_config = CLIPVisionConfig.from_dict(sgm_clip_config(clip_sgm))
        clip_state = convert_sgm_clip(clip_sgm)
    except KeyError as exc:
        raise CheckpointFormatError(f"{path}: SGM checkpoint lacks {exc}; is it the SVD-XT single file?") from exc
    vae = _build(AutoencoderKLTemporalDecoder.from_config, vae_config, vae_state, path, _vae_dtype(dtype))
    clip = _build(CLIPVisionModelWithProjection, clip_config, clip_state, path, torch.float32)
    return vae, clip, EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG), CLIP_MEAN, CLIP_STD


@torch.no_grad()
def zero_image_embedding(clip, mean, std) -> torch.Tensor:
    """``[1, 1, D]``: the CLIP embedding of an all-zero image after CLIP normalisation (v1's conditioning)."""
    size = clip.config.image_size
    pixels = ((torch.zeros(1, 3, size, size) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    return clip.float()(pixel_values=pixels).image_embeds[:, None].float()


def load_pipeline(unet, base, device="cpu", dtype=torch.float32, offload_device=None, placement=None) -> ChronoDepthPipeline:
    """ChronoDepth-v1 from the files users download.

    Args:
        unet: the ``ChronoDepth-v1`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors``) or that file.
        base: an SVD-XT diffusers folder (``vae/ image_encoder/ scheduler/``, ``feature_extractor/``
            optional) or the single SGM-keyed ``svd_xt.safetensors``.
        device, dtype: where and in what precision the UNet runs (the VAE stays fp32 for fp16).
        offload_device: where the networks wait between calls (None: stay on ``device``).
        placement: overrides that (ComfyUI's model management, see ``nodes/runtime.py``).
    Raises:
        ModelNotFoundError / CheckpointFormatError naming every missing or wrong file at once and what was expected.
    """
    unet, base = Path(unet), Path(base)
    problems = Problems()
    for part, path, hint in (("unet", unet, UNET_FOLDER_HINT), ("base", base, BASE_HINT)):
        if not path.exists():
            problems.missing(f"{part}: {path} not found; expected {hint}")
    check_files(unet if unet.exists() else None, base if base.exists() else None, problems).raise_if_any("ChronoDepth")
    unet_model = load_unet(unet, dtype)
    if base.is_dir():
        vae, clip, scheduler, mean, std = _diffusers_base(base, dtype)
    else:
        vae, clip, scheduler, mean, std = _single_file_base(base, dtype)
    embedding = zero_image_embedding(clip, mean, std)
    if embedding.shape[-1] != unet_model.config.cross_attention_dim:
        raise CheckpointFormatError(f"{base}: image encoder gives {embedding.shape[-1]}-d embeddings but the UNet expects {unet_model.config.cross_attention_dim}; use the SVD-XT base ChronoDepth-v1 was trained from")
    return ChronoDepthPipeline(unet_model, vae, scheduler, embedding, device=device, dtype=dtype, offload_device=offload_device, placement=placement)
