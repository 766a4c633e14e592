"""A tiny random-weight feature-pyramid synthesis network in our layout: ``motion/tiny_gid_synthesis.safetensors``
(built from the real :class:`SynthesisConfig` / :class:`SynthesisNet`, written by ``save_synthesis_model``)."""

from __future__ import annotations

from pathlib import Path

import torch

NAME = "tiny_gid_synthesis.safetensors"


def tiny_config():
    from vid4d.models.synthesis import SynthesisConfig

    return SynthesisConfig(channels=(4, 6, 8))


def build(root: Path) -> None:
    from vid4d.models.synthesis import SynthesisNet, save_synthesis_model

    folder = Path(root) / "motion"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_synthesis_model(SynthesisNet(tiny_config()), folder / NAME)
