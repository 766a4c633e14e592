"""Feature-pyramid softmax-splatting renderer of Generative Image Dynamics (the paper's synthesis network).

An encoder turns I₀ into features at ``len(channels)`` scales (level l at 1/2^l size); every level is
softmax-splatted with the motion field resized to that level (vectors scaled by the size ratio) and the
metric resized likewise; a decoder runs coarse to fine, upsampling and concatenating each warped level,
and predicts the frame. No official weights exist: this is our architecture and file layout.

File layout (``models/vid4d/motion/<name>.safetensors``): the ``state_dict`` of :class:`SynthesisNet`
(``encoder.<l>.* decoder.<l>.* head.*``) with safetensors metadata ``format = "vid4d_synthesis"`` and
``config`` = :class:`SynthesisConfig` as JSON. Written by :func:`save_synthesis_model`, read by
:func:`load_synthesis_model` through :mod:`models.loading`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..py.splat import resize_level, softmax_splat
from . import loading

FORMAT = "vid4d_synthesis"
DEFAULT_FILE = "gid_synthesis.safetensors"


@dataclass
class SynthesisConfig:
    """Sizes of the synthesis network (stored as JSON in the checkpoint's metadata).

    Attributes:
        channels: feature channels per pyramid level, finest first (level l at 1/2^l resolution).
        in_channels / out_channels: image channels in and out (RGB).
    """

    channels: tuple[int, ...] = (32, 64, 96, 128)
    in_channels: int = 3
    out_channels: int = 3

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        if not self.channels or any(c < 1 for c in self.channels) or len(self.channels) > 8:
            raise ValueError(f"SynthesisConfig.channels: expected 1 to 8 positive channel counts, got {self.channels}")
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(f"SynthesisConfig: in_channels and out_channels must be >= 1, got {self.in_channels}, {self.out_channels}")

    @property
    def levels(self) -> int:
        return len(self.channels)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str, where: str = "config") -> "SynthesisConfig":
        try:
            data = json.loads(text)
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise loading.CheckpointFormatError(f"{where}: bad synthesis config {text[:200]!r}: {exc}") from exc


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1), nn.Conv2d(cout, cout, 3, 1, 1), nn.LeakyReLU(0.1))


class SynthesisNet(nn.Module):
    """Encoder → per-level softmax splatting → decoder. ``render`` takes a motion chunk."""

    def __init__(self, config: SynthesisConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        self.encoder = nn.ModuleList([_block(config.in_channels, ch[0])] + [_block(ch[i - 1], ch[i], stride=2) for i in range(1, len(ch))])
        # decoder.l fuses the warped level l with the upsampled output of level l+1 (the coarsest: itself)
        self.decoder = nn.ModuleList([_block(ch[i] + (ch[i + 1] if i + 1 < len(ch) else 0), ch[i]) for i in range(len(ch))])
        self.head = nn.Conv2d(ch[0], config.out_channels, 3, 1, 1)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``[1, 3, H, W]`` (0..1) → features per level ``[1, C_l, ~H/2^l, ~W/2^l]``, finest first."""
        feats, x = [], image * 2 - 1
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        return feats

    def render(self, features: list[torch.Tensor], flow: torch.Tensor, metric: torch.Tensor | None, compile="auto") -> torch.Tensor:
        """Warp every level by ``flow [B, 2, H, W]`` (full-resolution pixels) with ``metric [B, 1, H, W]``
        (None: average splatting) and decode → ``[B, 3, H, W]``."""
        b = flow.shape[0]
        mode = "soft" if metric is not None else "avg"
        warped = []
        for feat in features:
            size = tuple(feat.shape[-2:])
            f, fl, z = resize_level(feat.expand(b, -1, -1, -1), flow, metric, size)
            warped.append(softmax_splat(f, fl, z, mode, compile=compile))
        x = None
        for level in reversed(range(len(warped))):
            w = warped[level]
            if x is not None:
                w = torch.cat([w, F.interpolate(x, size=w.shape[-2:], mode="bilinear", align_corners=False)], dim=1)
            x = self.decoder[level](w)
        return self.head(x)

    def forward(self, image: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None = None) -> torch.Tensor:
        return self.render(self.encode(image), flow, metric)


@dataclass
class SynthesisModel:
    """A loaded synthesis network (what the ``VID4D_SYNTHESIS_MODEL`` socket carries)."""

    name: str
    net: SynthesisNet
    device: torch.device
    dtype: torch.dtype

    @property
    def config(self) -> SynthesisConfig:
        return self.net.config

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return self.net.encode(image.to(self.device, self.dtype))

    def render(self, features, flow, metric=None, compile="auto") -> torch.Tensor:
        with torch.no_grad():
            z = None if metric is None else metric.to(self.device, self.dtype)
            return self.net.render(features, flow.to(self.device, self.dtype), z, compile=compile).float()


def save_synthesis_model(net: SynthesisNet, path) -> None:
    """Write our layout: the state dict with the config in the safetensors metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"format": FORMAT, "config": net.config.to_json()})


HINT = "a Vid4D feature-pyramid synthesis .safetensors (encoder.* decoder.* head.*, config in its metadata; README: Motion models)"


def check_file(path: Path) -> loading.Problems:
    """Problems with a synthesis model file, without loading it (a motion LDM in this slot is named as one)."""
    problems = loading.Problems()
    path = Path(path)
    if path.is_dir() or path.suffix.lower() != ".safetensors":
        problems.wrong(f"model_name: {path.name} is not a .safetensors file; expected {HINT}")
        return problems
    loading.check_vid4d_format(path, FORMAT, "a Vid4D synthesis model", HINT, problems)
    return problems


def load_synthesis_model(path, device="cpu", dtype: torch.dtype = torch.float32) -> SynthesisModel:
    """Load a synthesis network from our ``.safetensors`` layout, cached by path, mtime, device, dtype.

    Raises:
        ModelNotFoundError: the file does not exist.
        CheckpointFormatError: not a Vid4D synthesis file, or its keys/shapes do not match its config.
    """
    path = Path(path)
    if not path.is_file():
        raise loading.ModelNotFoundError(f"synthesis model not found: {path}; put it in ComfyUI/models/vid4d/motion/ (README: Motion models)")
    if path.suffix.lower() != ".safetensors":
        raise loading.CheckpointFormatError(f"{path}: a synthesis model is a .safetensors file in the Vid4D layout (config in its metadata)")
    key = ("synthesis", str(path.resolve()), path.stat().st_mtime_ns, str(torch.device(device)), str(dtype))
    return loading.cached(key, lambda: _load(path, torch.device(device), dtype))


def _load(path: Path, device: torch.device, dtype: torch.dtype) -> SynthesisModel:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - corrupt or not safetensors
        raise loading.CheckpointFormatError(f"could not read {path}: {type(exc).__name__}: {exc}") from exc
    if meta.get("format") != FORMAT or "config" not in meta:
        raise loading.CheckpointFormatError(f"{path}: not a Vid4D synthesis model (safetensors metadata format={meta.get('format')!r}, expected {FORMAT!r} with a config)")
    config = SynthesisConfig.from_json(meta["config"], where=str(path))
    state = loading.load_state_dict(path)
    loading.require_keys(state, ["encoder.0.", "decoder.0.", "head."], path)
    loading.check_state_matches(lambda: SynthesisNet(config), state, path)  # before anything the config asks for is allocated
    net = SynthesisNet(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise loading.CheckpointFormatError(f"{path}: weights do not match its config {config}: {exc}") from exc
    net.to(device=device, dtype=dtype).eval()
    return SynthesisModel(path.name, net, device, dtype)
