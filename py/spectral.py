"""Spectral volumes (Generative Image Dynamics): per-pixel temporal Fourier terms of a motion texture."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import TensorData, check_finite_number, check_positive_int, check_tensor


@dataclass
class SpectralVolume(TensorData):
    """The K lowest temporal frequencies of every pixel's displacement, DC included.

    Attributes:
        coeffs: complex ``[K, H, W, 2]``; S_k for the x and y displacement (pixels), unnormalised FFT
            convention of ``torch.fft.fft`` over a clip of ``period`` frames.
        period: length T (frames) of the clip the spectrum describes; the motion loops with this period.
        fps: frame rate the period refers to (so a motion texture can be resampled to another rate).
    """

    coeffs: torch.Tensor
    period: int
    fps: float = 30.0

    def __post_init__(self):
        check_tensor("SpectralVolume.coeffs", self.coeffs, ("K", "H", "W", 2), kind="complex")
        self.period = check_positive_int("SpectralVolume.period", self.period, minimum=2)
        self.fps = check_finite_number("SpectralVolume.fps", self.fps, low=1e-3, high=1000.0)
        k = int(self.coeffs.shape[0])
        if k > self.period // 2 + 1:
            raise ValueError(f"SpectralVolume.coeffs: {k} frequencies exceed the {self.period // 2 + 1} a period of {self.period} frames has")

    @property
    def num_freqs(self) -> int:
        return int(self.coeffs.shape[0])


@dataclass
class MotionTexture(TensorData):
    """A motion texture (Generative Image Dynamics): where every pixel p of the still image I₀ is at time t.

    Attributes:
        displacement: ``[T, H, W, 2]`` float32 F_t(p) in pixels (x, y); pixel p sits at p + F_t(p) in frame t.
            Any forward flow video from a reference frame has this form too.
        fps: frame rate of the frames.
    """

    displacement: torch.Tensor
    fps: float = 30.0

    def __post_init__(self):
        check_tensor("MotionTexture.displacement", self.displacement, ("T", "H", "W", 2))
        self.fps = check_finite_number("MotionTexture.fps", self.fps, low=1e-3, high=1000.0)

    @property
    def num_frames(self) -> int:
        return int(self.displacement.shape[0])

    @property
    def height(self) -> int:
        return int(self.displacement.shape[1])

    @property
    def width(self) -> int:
        return int(self.displacement.shape[2])
