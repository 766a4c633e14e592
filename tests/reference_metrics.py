"""Ground-truth figures of a pseudo 4D field on the sample scene (shared by test_lift_video.py and
tests/bench/bench_lift_video.py): the source-view re-render against the input video, the ball's
coverage, duplicated surfaces, and the holes of a novel orbit."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vid4d.py.camera import CameraPath, camera_path
from vid4d.py.render import render_gaussians

HOLE_ALPHA = 0.5  # RenderGaussians' default hole threshold
DEPTH_RTOL = 0.05  # rendered depth within 5 % of the exact depth counts as the right surface


@dataclass
class FieldFigures:
    coverage: torch.Tensor  # [T] share of each frame's source view with alpha >= 0.5
    psnr: torch.Tensor  # [T] dB of the source-view render against the input frame (whole frame)
    ball: torch.Tensor  # [T] share of the ball's pixels covered
    wrong_depth: torch.Tensor  # [T] share of covered pixels whose rendered depth is off the exact depth
    orbit_holes: float  # mean hole share of the orbit render
    source_alpha: torch.Tensor  # [T, H, W] the source-view render's alpha

    def line(self, name: str) -> str:
        return (
            f"{name:>16}: coverage min {float(self.coverage.min()):.4f} | PSNR min {float(self.psnr.min()):.2f} dB "
            f"mean {float(self.psnr.mean()):.2f} | ball min {float(self.ball.min()):.3f} | "
            f"wrong depth max {float(self.wrong_depth.max()):.4f} | orbit holes {self.orbit_holes:.4f}"
        )


def figures(field, scene, orbit_degrees: float = 15.0, focus_depth: float = 4.0, backend: str = "auto", **render) -> FieldFigures:
    """Render ``field`` through the source camera and a ``orbit_degrees`` orbit about ``focus_depth``
    (``render``: further arguments of ``render_gaussians``, e.g. ``compile=False``)."""
    t, h, w = scene.num_frames, scene.height, scene.width
    source = render_gaussians(field, CameraPath.static(scene.intrinsics, t, w, h), backend, **render)
    covered = source.alpha >= HOLE_ALPHA
    mse = (source.rgb.cpu() - scene.frames).square().flatten(1).mean(1)
    ball = scene.object_mask
    ball_cov = (covered.cpu() & ball).flatten(1).sum(1) / ball.flatten(1).sum(1).clamp_min(1)
    wrong = ((source.depth.cpu() - scene.depth).abs() > DEPTH_RTOL * scene.depth) & covered.cpu()
    orbit = camera_path("orbit", t, w, h, angle=orbit_degrees, intrinsics=scene.intrinsics, focus_depth=focus_depth)
    novel = render_gaussians(field, orbit, backend, **render)
    return FieldFigures(
        coverage=covered.flatten(1).float().mean(1).cpu(),
        psnr=-10 * torch.log10(mse.clamp_min(1e-12)),
        ball=ball_cov.float(),
        wrong_depth=wrong.flatten(1).sum(1) / covered.cpu().flatten(1).sum(1).clamp_min(1),
        orbit_holes=float((novel.alpha < HOLE_ALPHA).float().mean()),
        source_alpha=source.alpha.cpu(),
    )
