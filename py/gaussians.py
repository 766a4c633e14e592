"""Pseudo 4D Gaussian fields (GS-DiT): one Gaussian per tracked point, its mean moving over time."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import TensorData, check_range, check_tensor


@dataclass
class GaussianField(TensorData):
    """Gaussians whose means (and optionally colours, scales, opacities, rotations) vary per time step.

    "Pseudo": camera and object motion are not separated; the field lives in the source camera's
    frame at each time step. T = 1 is a static field (one image lifted once).

    Attributes:
        means: ``[T, N, 3]`` world-space centres, one row per time step.
        colors: ``[N, 3]`` or ``[T, N, 3]`` linear RGB in 0..1.
        opacities: ``[N]`` or ``[T, N]`` in 0..1 (per time step when it follows visibility).
        scales: ``[N, 3]`` or ``[T, N, 3]`` standard deviations (linear, > 0).
        quats: ``[N, 4]`` or ``[T, N, 4]`` rotations, (w, x, y, z), non-zero norm.
    """

    means: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("GaussianField.means", self.means, ("T", "N", 3), dims=dims)
        check_tensor("GaussianField.colors", self.colors, [("N", 3), ("T", "N", 3)], dims=dims)
        check_tensor("GaussianField.opacities", self.opacities, [("N",), ("T", "N")], dims=dims)
        check_tensor("GaussianField.scales", self.scales, [("N", 3), ("T", "N", 3)], dims=dims)
        check_tensor("GaussianField.quats", self.quats, [("N", 4), ("T", "N", 4)], dims=dims)
        check_range("GaussianField.opacities", self.opacities, 0.0, 1.0)
        if bool((self.scales <= 0).any()):
            raise ValueError("GaussianField.scales: every scale must be > 0")
        if bool((self.quats.norm(dim=-1) < 1e-8).any()):
            raise ValueError("GaussianField.quats: every quaternion must have a non-zero norm")

    @property
    def num_frames(self) -> int:
        return int(self.means.shape[0])

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[1])

    def at(self, t: int) -> dict[str, torch.Tensor]:
        """The field at time step ``t`` (clamped to the last one): means/colors/opacities/scales/quats without T."""
        t = min(max(int(t), 0), self.num_frames - 1)

        def pick(x: torch.Tensor, static_dim: int) -> torch.Tensor:
            return x if x.dim() == static_dim else x[t]

        return {
            "means": self.means[t],
            "colors": pick(self.colors, 2),
            "opacities": pick(self.opacities, 1),
            "scales": pick(self.scales, 2),
            "quats": pick(self.quats, 2),
        }
