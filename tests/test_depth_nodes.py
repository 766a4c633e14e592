"""VideoDepth / Vid4DDepthModelLoader / Vid4DDepthFromImage nodes and the depth flag downstream."""

from __future__ import annotations

import pytest
import torch

from vid4d.nodes import depth as nd
from vid4d.nodes import runtime
from vid4d.nodes.common import depth_input
from vid4d.py import depth as dp


def test_loader_lists_and_loads_both_layouts(tiny_models):
    spec = nd.Vid4DDepthModelLoader.INPUT_TYPES()["required"]
    assert "ChronoDepth-v1" in spec["unet"][0]
    assert {"stable-video-diffusion-img2vid-xt", "svd_xt.safetensors"} <= set(spec["base"][0])
    for base in ("stable-video-diffusion-img2vid-xt", "svd_xt.safetensors"):
        out = nd.Vid4DDepthModelLoader().load("ChronoDepth-v1", base, "fp16", True)
        assert "fp32" in out["ui"]["vid4d_info"][0]  # CPU falls back to fp32 with a note
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        nd.Vid4DDepthModelLoader().load("ChronoDepth-v1", "absent.safetensors", "fp32", False)


def test_video_depth_outputs_progress_and_cancel(tiny_models, headless):
    pipe = nd.Vid4DDepthModelLoader().load("ChronoDepth-v1", "stable-video-diffusion-img2vid-xt", "fp32", False)["result"][0]
    frames = torch.rand(3, 64, 64, 3)
    seen = []
    runtime.configure_headless(progress_printer=lambda label, done, total: seen.append((done, total)))
    video, preview, image = nd.VideoDepth().estimate(pipe, frames, 2, 2, 1, "context", 64, 0, "turbo", 8)["result"]
    assert video.depth.shape == (3, 64, 64) and video.encoding == "affine_depth" and video.near_is == "low"
    assert preview.shape == image.shape == (3, 64, 64, 3) and 0 <= float(image.min()) and float(image.max()) <= 1
    assert seen[-1] == (4, 4)  # 2 windows x 2 steps

    calls = []
    original = pipe._predict

    def counting(*a):
        calls.append(1)
        return original(*a)

    pipe._predict = counting

    def cancel(label, done, total):
        runtime.request_interrupt()

    runtime.configure_headless(progress_printer=cancel)
    try:
        with pytest.raises(runtime.Interrupted):
            nd.VideoDepth().estimate(pipe, frames, 2, 2, 1, "context", 64, 0, "grey", 8)
    finally:
        del pipe._predict
    assert len(calls) == 1, "Cancel stops within one step"


def test_depth_flag_is_honoured_downstream():
    raw = torch.linspace(0, 1, 2 * 4 * 4).reshape(2, 4, 4)
    affine = dp.DepthVideo(raw, encoding="affine_depth")
    z = depth_input(affine, near=2.0, far=8.0).depth
    assert float(z.min()) == pytest.approx(2.0) and float(z.max()) == pytest.approx(8.0)
    assert torch.all(z.flatten().diff() > 0), "near = low: larger raw values stay farther"
    disp = depth_input(dp.DepthVideo(raw, encoding="disparity"), near=2.0, far=8.0).depth
    assert torch.all(disp.flatten().diff() < 0), "near = high: larger raw values are nearer"
    assert affine.normalized()[0, 0, 0] == pytest.approx(1.0)  # nearest is bright
    metric = dp.DepthVideo(raw + 1, kind="metric")
    assert depth_input(metric) is metric
    with pytest.raises(ValueError, match="relative"):
        dp.DepthVideo(raw, kind="metric", encoding="disparity")


def test_depth_from_image_interpretations_and_alignment():
    base = torch.rand(1, 16, 16).expand(12, -1, -1)
    scales = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.6, 0.6, 0.6, 0.6, 0.8, 0.8, 0.8, 0.8])
    flicker = (base * scales[:, None, None] + 0.1 * (scales[:, None, None] < 1)).clamp(0, 1)
    node = nd.Vid4DDepthFromImage()
    image = flicker.unsqueeze(-1).expand(-1, -1, -1, 3)
    plain = node.convert(image, "disparity", 1.0, 10.0, 1.0, 0.0, 0, 4)["result"][0]
    aligned = node.convert(image, "disparity", 1.0, 10.0, 1.0, 0.0, 4, 2)["result"][0]
    spread = lambda v: float(v.depth.std(dim=0).mean())
    assert spread(aligned) < 0.5 * spread(plain)
    ss = node.convert(image, "scale_shift_disparity", 1.0, 10.0, 2.0, 0.5, 0, 4)["result"][0]
    assert torch.allclose(ss.depth, 1.0 / (flicker * 2.0 + 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="> 0"):
        node.convert(image, "scale_shift_depth", 1.0, 10.0, 1.0, -2.0, 0, 4)


def test_colorize():
    x = torch.linspace(0, 1, 10).reshape(1, 2, 5)
    rgb = dp.colorize(x, "turbo")
    assert rgb.shape == (1, 2, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert rgb[0, 0, 1, 2] > rgb[0, 0, 1, 0] and rgb[0, 1, 3, 0] > rgb[0, 1, 3, 2]  # blue low, red high
    with pytest.raises(ValueError, match="colormap"):
        dp.colorize(x, "jet")
