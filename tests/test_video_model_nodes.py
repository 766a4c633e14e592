"""Vid4DVideoModelInputs / Vid4DJoinWindows / Vid4DWindowedSampler as ComfyUI calls them (no ComfyUI needed).

The windowed sampler's expansion is executed here by a small topological runner with stand-ins for the core
nodes it lays out (WanVaceToVideo, KSampler, ...), which check what they receive and "generate" a colour
where the mask says so: enough to see the windows carried and joined into one continuous video."""

import pytest
import torch

from vid4d.nodes import video_model as nvm
from vid4d.py import video_model as vm
from vid4d.py.render import RenderedVideo

Inputs, Join, Windowed = nvm.Vid4DVideoModelInputs, nvm.Vid4DJoinWindows, nvm.Vid4DWindowedSampler
DEFAULTS = dict(video_model="wan2.1", fit="crop", width=0, height=0, window_length=0, overlap=17, min_alpha=0.9, depth_edge=0.1, edge_px=2, feather=0.0)


def _render(clips=(200,), h=36, w=36, seed=0):
    """A smooth render whose hole (a band) drifts right over time; one clip per entry."""
    g = torch.Generator().manual_seed(seed)
    t = sum(clips)
    rgb = torch.rand(t, 1, 1, 3, generator=g).expand(t, h, w, 3).clone() * 0.5 + 0.25
    alpha = torch.ones(t, h, w)
    for f in range(t):
        x = 4 + (f * 3) % (w - 12)
        alpha[f, 6:12, x : x + 6] = 0.0
    holes = (alpha < 0.5).float()
    return RenderedVideo(rgb, alpha, torch.full((t, h, w), 3.0), holes, tuple(clips), "sequence", len(clips), 0.5)


def _prepare(render=None, **kw):
    args = {**DEFAULTS, "hole_fill": "grey", "window_index": 0, "clip": 0, "reference_frame": 0, **kw}
    return Inputs().prepare(render=render, **args)


def test_bridge_outputs_match_the_core_contracts():
    render = _render()
    out = _prepare(render)
    video, masks, ref, width, height, length, latent, carried, windows = out["result"]
    assert (length, height, width) == (81, 32, 32) and (length - 1) % 4 == 0 and width % 16 == 0 == height % 16
    assert video.shape == (81, 32, 32, 3) and masks.shape == (81, 32, 32) and ref.shape == (1, 32, 32, 3)
    assert latent.shape == (21, 4, 4) and carried == 0 and windows == 3
    assert video.dtype == masks.dtype == torch.float32 and masks.min() >= 0 and masks.max() <= 1
    crop = render.holes[:81, 2:34, 2:34]
    assert video[crop > 0].eq(0.5).all()  # grey where the render has a hole, as WanVaceToVideo pads
    assert torch.equal(video[0][masks[0] == 0], render.rgb[0, 2:34, 2:34][masks[0] == 0])
    assert torch.equal(latent, vm.latent_mask(vm.unreliable_pixels(render.alpha[:81], render.depth[:81], render.holes[:81])[:, 2:34, 2:34]))
    assert "window 1/3" in out["ui"]["vid4d_info"][0] and "next: window_index 1" in out["ui"]["vid4d_info"][0]


def test_bridge_clip_of_a_rig_and_plain_images():
    render = _render(clips=(9, 13))
    video = _prepare(render, clip=1)["result"][0]
    assert video.shape[0] == 13 and torch.equal(video[0, 0, 0], render.rgb[9, 2, 2])
    with pytest.raises(ValueError, match="2 clip"):
        _prepare(render, clip=2)
    images, holes = render.rgb[:9], render.holes[:9]
    out = Inputs().prepare(**DEFAULTS, hole_fill="render", window_index=0, clip=0, reference_frame=0, images=images, holes=holes)["result"]
    assert out[5] == 9 and torch.equal(out[0], images[:, 2:34, 2:34])
    assert out[1][0][holes[0, 2:34, 2:34] > 0].eq(1).all()
    with pytest.raises(ValueError, match="either"):
        _prepare(render, images=images)
    with pytest.raises(ValueError, match="connect 'render'"):
        _prepare(None)


def test_bridge_size_fit_and_reference():
    render = _render(clips=(9,))
    source = torch.rand(9, 36, 36, 3)
    out = _prepare(render, width=64, height=96, fit="pad", reference=source, reference_frame=4)["result"]
    video, masks, ref = out[:3]
    assert video.shape == (9, 96, 64, 3) and ref.shape == (1, 96, 64, 3)
    assert masks[:, :16].eq(1).all() and video[:, :16].eq(0.5).all() and masks[:, 80:].eq(1).all()  # the pad is generated (outpainting)
    assert torch.allclose(ref[0, 16:80], torch.nn.functional.interpolate(source[4:5].permute(0, 3, 1, 2), size=(64, 64), mode="bilinear", antialias=True)[0].permute(1, 2, 0).clamp(0, 1), atol=1e-5)
    no_ref = _prepare(render, reference_frame=3)["result"][2]
    assert no_ref.shape == (1, 32, 32, 3) and torch.isfinite(no_ref).all()
    hole = render.holes[3, 2:34, 2:34] > 0
    assert (no_ref[0][hole] - 0.5).abs().max() > 0  # the render frame with its holes blurred, not grey
    with pytest.raises(ValueError, match="reference_frame 9"):
        _prepare(render, reference=source, reference_frame=9)


def test_bridge_carries_previous_frames():
    render = _render()
    with pytest.raises(ValueError, match="previous"):
        _prepare(render, window_index=1)
    previous = torch.rand(81, 32, 32, 3)
    out = _prepare(render, window_index=1, previous=previous)["result"]
    assert out[7] == 17 and torch.equal(out[0][:17], previous[-17:]) and out[1][:17].eq(0).all() and out[6][:5].eq(0).all()
    last = _prepare(render, window_index=2, previous=torch.rand(145, 32, 32, 3))["result"]
    assert last[7] == 26 and last[5] == 81
    with pytest.raises(ValueError, match="window_index 3"):
        _prepare(render, window_index=3, previous=previous)


def test_join_node():
    a, b = torch.zeros(10, 4, 4, 3), torch.ones(8, 4, 4, 3)
    out = Join().join(b, 4, "crossfade", previous=a)
    assert out["result"][0].shape[0] == 14 and "-> 14" in out["ui"]["vid4d_info"][0]
    assert torch.equal(Join().join(b, 0, "cut")["result"][0], b)


# ---------------------------------------------------------------- the windowed sampler, executed with stand-ins
def _colour(seed):
    return torch.tensor([0.1 + 0.2 * (seed % 4), 0.9, 0.2])


def _pixel_mask(latent_mask, frames):
    idx = vm.latent_index(frames)
    return latent_mask[idx].repeat_interleave(8, 1).repeat_interleave(8, 2)


class StubVace:
    calls = []

    def run(self, positive, negative, vae, width, height, length, batch_size, strength, control_video, control_masks, reference_image=None):
        assert control_video.shape == (length, height, width, 3) and control_masks.shape == (length, height, width)
        assert (length - 1) % 4 == 0 and width % 16 == 0 and height % 16 == 0
        assert vae == "VAE" and positive == "POS" and negative == "NEG"
        StubVace.calls.append(control_video)
        # VACE works per latent cell: the mask of the frame it samples for each latent frame, per 8x8 cell.
        seen = torch.nn.functional.max_pool2d(control_masks[vm.vace_sampled_frames(length)][:, None], 8)[:, 0]
        return (positive, negative, {"video": control_video, "latent_mask": seen}, 0 if reference_image is None else 1)


class StubKSampler:
    seeds = []

    def run(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise):
        assert model == "MODEL"
        StubKSampler.seeds.append(seed)
        video = latent_image["video"]
        mask = _pixel_mask(latent_image["latent_mask"], video.shape[0])  # generation happens per latent cell
        out = torch.where(mask[..., None] > 0.5, _colour(seed).expand_as(video), video)
        return ({"video": out},)


STUBS = {
    "WanVaceToVideo": StubVace,
    "KSampler": StubKSampler,
    "TrimVideoLatent": type("T", (), {"run": lambda self, samples, trim_amount: (samples,)}),
    "VAEDecode": type("D", (), {"run": lambda self, samples, vae: (samples["video"],)}),
    "VAEEncode": type("E", (), {"run": lambda self, pixels, vae: ({"video": pixels},)}),
    "SetLatentNoiseMask": type("M", (), {"run": lambda self, samples, mask: ({**samples, "latent_mask": mask},)}),
}
EXTERNAL = {"4": "MODEL", "6": "POS", "7": "NEG", "3": "VAE"}


def _execute(graph, output):
    results = {}

    def value(v):
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
            if v[0] in EXTERNAL:
                return EXTERNAL[v[0]]
            return run(v[0])[v[1]]
        return v

    def run(nid):
        if nid not in results:
            node = graph[nid]
            kwargs = {k: value(v) for k, v in node["inputs"].items()}
            if node["class_type"] in nvm.NODE_CLASS_MAPPINGS:
                cls = nvm.NODE_CLASS_MAPPINGS[node["class_type"]]
                out = getattr(cls(), cls.FUNCTION)(**kwargs)
                results[nid] = out["result"]
            else:
                results[nid] = STUBS[node["class_type"]]().run(**kwargs)
        return results[nid]

    return value(output)


def _windowed(render, method="wan_vace", reference=None, **kw):
    args = dict(method=method, seed=10, steps=4, cfg=1.0, sampler_name="uni_pc", scheduler="simple", denoise=1.0, vace_strength=1.0, **DEFAULTS, hole_fill="auto", blend="crossfade")
    args.update(kw)
    links = dict(model=["4", 0], positive=["6", 0], negative=["7", 0], vae=["3", 0])
    return Windowed().expand(**links, **args, render=render, reference=reference, unique_id="12")


def test_windowed_sampler_declares_raw_links():
    spec = Windowed.INPUT_TYPES()
    for name in ("model", "positive", "negative", "vae"):
        assert spec["required"][name][1]["rawLink"] is True
    assert spec["hidden"] == {"unique_id": "UNIQUE_ID"}


@pytest.mark.parametrize("method", ["wan_vace", "latent_inpaint"])
def test_windowed_sampler_expansion_reshoots_a_long_clip(method):
    StubVace.calls.clear()
    StubKSampler.seeds.clear()
    render = _render()
    out = _windowed(render, method)
    graph, (link,) = out["expand"], out["result"]
    types = [n["class_type"] for n in graph.values()]
    assert types.count("KSampler") == 3 and types.count("Vid4DVideoModelInputs") == 3
    assert types.count("WanVaceToVideo") == (3 if method == "wan_vace" else 0) and types.count("SetLatentNoiseMask") == (3 if method == "latent_inpaint" else 0)
    assert all(nid.startswith("12.") for nid in graph)
    video = _execute(graph, link)
    assert video.shape == (200, 32, 32, 3)
    assert StubKSampler.seeds == [10, 11, 12]
    plan = vm.plan_windows(200, 81, 17)
    # Frames only one window generates show that window's colour in the holes, the render elsewhere.
    for k, (a, b) in enumerate([(0, plan[1].start), (plan[0].stop, plan[2].start), (plan[1].stop, 200)]):
        for f in range(a, b):
            hole = render.holes[f, 2:34, 2:34] > 0
            assert torch.allclose(video[f][hole], _colour(10 + k).expand(int(hole.sum()), 3))
    gen = vm.unreliable_pixels(render.alpha, render.depth, render.holes)[:, 2:34, 2:34]
    touched = torch.nn.functional.max_pool2d(gen.amax(0)[None, None], 8)[0, 0]  # latent cells ever generated
    never = touched.repeat_interleave(8, 0).repeat_interleave(8, 1) == 0
    assert never.sum() > 50
    assert torch.allclose(video[:, never], render.rgb[:, 2:34, 2:34][:, never], atol=1e-6)
    if method == "wan_vace":  # each window after the first starts with what the previous one generated
        assert torch.allclose(StubVace.calls[1][:17], video[plan[1].start : plan[1].start + 17], atol=1e-6)


def test_windowed_sampler_rig_and_reference():
    render = _render(clips=(9, 90))
    out = _windowed(render, reference=torch.rand(3, 36, 36, 3))
    graph = out["expand"]
    vace = [n for n in graph.values() if n["class_type"] == "WanVaceToVideo"]
    assert len(vace) == 3 and all("reference_image" in n["inputs"] for n in vace)
    assert [n["inputs"]["clip"] for n in graph.values() if n["class_type"] == "Vid4DVideoModelInputs"] == [0, 1, 1]
    video = _execute(graph, out["result"][0])
    assert video.shape[0] == 9 + 90
    assert "clip 2: 90 frames -> 2 window(s)" in out["ui"]["vid4d_info"][0]


def test_windowed_sampler_errors():
    with pytest.raises(ValueError, match="connect 'render'"):
        _windowed(None)
    with pytest.raises(ValueError, match="method"):
        _windowed(_render(clips=(9,)), method="magic")
