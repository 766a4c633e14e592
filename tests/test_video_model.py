"""py/video_model.py: frame/size rules, the mask at latent resolution, what WanVaceToVideo and SetLatentNoiseMask
make of it, unreliable render pixels, hole fill, windows and joins — against independent computations."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from vid4d.models import gsdit as gs
from vid4d.py import video_model as vm

WAN = vm.video_model("wan2.1")


def _sparse_holes(t, h, w, p=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, h, w, generator=g) < p).float()


def _slow_latent_mask(gen, temporal, spatial):
    """Loop over latent cells: 1 when any pixel of any frame the cell encodes is > 0."""
    t, h, w = gen.shape
    groups = [[0]] + [list(range(temporal * (j - 1) + 1, temporal * j + 1)) for j in range(1, (t - 1) // temporal + 1)]
    out = torch.zeros(len(groups), h // spatial, w // spatial)
    for j, frames in enumerate(groups):
        for y, x in itertools.product(range(h // spatial), range(w // spatial)):
            cell = gen[frames, y * spatial : (y + 1) * spatial, x * spatial : (x + 1) * spatial]
            out[j, y, x] = float(bool((cell > 0).any()))
    return out


def _wan_vace_latent_mask(mask, length, width, height):
    """What WanVaceToVideo does to control_masks (comfy_extras/nodes_wan.py, re-derived): fold each 8x8
    cell into 64 channels, then resize the frame axis to the latent frame count with nearest-exact."""
    latent_length = (length - 1) // 4 + 1
    m = mask[:, :, :, None]  # [T, H, W, 1]
    m = m.view(length, height // 8, 8, width // 8, 8).permute(2, 4, 0, 1, 3).reshape(64, length, height // 8, width // 8)
    return F.interpolate(m[None], size=(latent_length, height // 8, width // 8), mode="nearest-exact")[0]


# ---------------------------------------------------------------- rules
def test_registry_and_frame_rules():
    assert WAN.window == 81 and WAN.temporal == 4 and WAN.spatial == 8 and WAN.multiple == 16
    assert vm.video_model("ltxv").temporal == 8 and vm.video_model("wan2.2_5b").multiple == 32
    with pytest.raises(ValueError, match="wan2.1"):
        vm.video_model("sora")
    for spec in vm.VIDEO_MODELS.values():
        assert (spec.window - 1) % spec.temporal == 0 and spec.multiple % spec.spatial == 0
    for t in range(1, 60):
        want = max(n for n in range(1, t + 1) if (n - 1) % 4 == 0)
        assert vm.snap_frames(t) == want == vm.video_model("wan2.1").snap_frames(t)
        assert vm.latent_frames(want) == (want - 1) // 4 + 1
        # CogVideoX: an odd latent count (its VAE decodes 2 latents to 8 frames, 3 to 9)
        cog = max(n for n in range(1, t + 1) if (n - 1) % 8 == 0)
        assert gs.snap_frames(t) == cog == vm.video_model("cogvideox").snap_frames(t) and vm.latent_frames(cog) % 2 == 1
    assert vm.snap_frames(20, 8) == 17
    idx = vm.latent_index(9).tolist()
    assert idx == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    # nearest-exact: 81 frames -> 21 latent frames reads floor((j + 0.5) * 81 / 21)
    assert vm.vace_sampled_frames(81).tolist() == [int((j + 0.5) * 81 / 21) for j in range(21)]


def test_output_size_snaps_to_the_model():
    assert vm.output_size(850, 490, WAN, fit="crop") == (848, 480)
    assert vm.output_size(850, 490, WAN, fit="pad") == (864, 496)
    assert vm.output_size(850, 490, WAN, fit="stretch") == (848, 496)
    assert vm.output_size(1280, 720, WAN, width=832) == (832, 464)
    assert vm.output_size(1280, 720, vm.video_model("wan2.2_5b"), 1280, 704) == (1280, 704)


# ---------------------------------------------------------------- latent mask
@pytest.mark.parametrize("temporal,spatial,t,h,w", [(4, 8, 9, 32, 48), (4, 16, 13, 64, 32), (8, 32, 17, 64, 64)])
def test_latent_mask_is_any_pixel_of_the_cell(temporal, spatial, t, h, w):
    gen = _sparse_holes(t, h, w, 0.004, seed=temporal + spatial)
    lat = vm.latent_mask(gen, temporal, spatial)
    assert lat.shape == ((t - 1) // temporal + 1, h // spatial, w // spatial)
    assert torch.equal(lat, _slow_latent_mask(gen, temporal, spatial))  # covers every touched cell, nothing else


def test_latent_mask_grow_and_feather():
    gen = torch.zeros(5, 64, 64)
    gen[3, 30, 30] = 1  # latent frame 1, cell (3, 3)
    grown = vm.latent_mask(gen, grow=1)
    assert grown[1, 2:5, 2:5].eq(1).all() and grown[1].sum() == 9 and grown[0].sum() == 0
    soft = vm.latent_mask(F.pad(gen, (0, 64, 0, 64)), feather=1.0)
    assert soft[1, 3, 3] == 1 and 0 < soft[1, 3, 5] < 1 and soft[1, 15, 15] < 1e-3
    with pytest.raises(ValueError, match="latent grid"):
        vm.latent_mask(torch.zeros(6, 64, 64))


@pytest.mark.parametrize("feather", [0.0, 1.0, 2.5])
def test_latent_mask_equals_gsdit_training_free(feather):
    """GSDiTSampler's training_free blending and the latent-inpainting workflow keep the same latents."""
    holes = _sparse_holes(17, 48, 64, 0.003, seed=3)
    holes[:, 10:20, 5:30] = 1
    assert torch.allclose(vm.latent_mask(holes, feather=feather), gs.latent_hole_mask(holes, feather=feather), atol=1e-6)


def test_comfy_noise_mask_of_latent_size_is_used_as_is():
    """SetLatentNoiseMask -> KSampler: comfy.utils.reshape_mask resizes the mask to the latent with
    trilinear interpolation; a mask of exactly the latent's size passes unchanged."""
    holes = _sparse_holes(21, 48, 64, 0.01, seed=4)
    lat = vm.latent_mask(holes, feather=1.0)
    latent_shape = (1, 16, *lat.shape)
    resized = F.interpolate(lat.reshape(1, 1, -1, *lat.shape[1:]), size=latent_shape[2:], mode="trilinear")
    assert torch.equal(resized[0, 0], lat)


# ---------------------------------------------------------------- VACE mask
@pytest.mark.parametrize("length", [5, 9, 17, 33, 49, 81])
def test_control_mask_gives_vace_exactly_the_latent_mask(length):
    h, w = 32, 48
    gen = _sparse_holes(length, h, w, 0.003, seed=length)
    lat = vm.latent_mask(gen)
    mask = vm.control_mask(lat, length)
    assert mask.shape == (length, h, w)
    seen = _wan_vace_latent_mask(mask, length, w, h)  # [64, F, h/8, w/8]: what VACE gets
    assert torch.equal(seen, lat[None].expand(64, -1, -1, -1))
    index, sampled = vm.latent_index(length), vm.vace_sampled_frames(length)
    assert all(int(index[s]) - j in (0, 1) for j, s in enumerate(sampled.tolist()))  # its own latent frame or the next
    for f in range(length):
        own = f not in sampled.tolist()
        cells = lat[index[f]] if own else lat[sampled.tolist().index(f)]
        assert torch.equal(mask[f], cells.repeat_interleave(8, 0).repeat_interleave(8, 1))
        if own:
            assert bool((mask[f][gen[f] > 0] == 1).all())  # every pixel to generate is generated


def test_control_mask_keeps_carried_latent_frames():
    gen = torch.ones(81, 16, 16)
    gen[:17] = 0  # 17 known frames = latent frames 0..4
    lat = vm.latent_mask(gen)
    seen = _wan_vace_latent_mask(vm.control_mask(lat, 81), 81, 16, 16)
    assert seen[:, :5].eq(0).all() and seen[:, 5:].eq(1).all()


def test_control_mask_feather_is_outwards():
    gen = torch.zeros(5, 64, 64)
    gen[:, 28:36, 28:36] = 1
    hard = vm.control_mask(vm.latent_mask(gen), 5)
    soft = vm.control_mask(vm.latent_mask(gen), 5, feather_px=3.0)
    assert torch.equal(soft[hard == 1], hard[hard == 1])
    assert float(soft[0, 32, 39]) == 1 and 0 < float(soft[0, 32, 42]) < 1 and float(soft[0, 32, 60]) == 0


# ---------------------------------------------------------------- unreliable pixels and fill
def test_unreliable_pixels():
    t, h, w = 2, 20, 30
    alpha = torch.ones(t, h, w)
    depth = torch.full((t, h, w), 4.0)
    holes = torch.zeros(t, h, w)
    holes[0, 5, 5] = 1
    alpha[0, 10, 20] = 0.8  # partly covered
    depth[1, :, 15:] = 2.0  # a silhouette: 4 -> 2 between columns 14 and 15
    only_holes = vm.unreliable_pixels(alpha, depth, holes, min_alpha=0.0, depth_edge=0.0, edge_px=0)
    assert torch.equal(only_holes, holes)
    out = vm.unreliable_pixels(alpha, depth, holes, min_alpha=0.9, depth_edge=0.1, edge_px=0)
    assert out[0, 10, 20] == 1 and out[0, 5, 5] == 1 and out[0].sum() == 2
    assert out[1, :, 14:16].eq(1).all() and out[1].sum() == 2 * h
    grown = vm.unreliable_pixels(alpha, depth, holes, min_alpha=0.0, depth_edge=0.0, edge_px=2)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    assert torch.equal(grown[0], (((ys - 5).abs() <= 2) & ((xs - 5).abs() <= 2)).float())
    assert not bool(vm.unreliable_pixels(alpha, depth, holes, 0.0, 1.5, 0)[1].any())  # |4 - 2| = 2 is not above 1.5 x 2


def test_fill_holes():
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, 16, 16, 3, generator=g)
    holes = torch.zeros(3, 16, 16)
    holes[:, 4:8, 4:8] = 1
    holes[2] = 1  # nothing rendered in the last frame
    grey = vm.fill_holes(rgb, holes, "grey")
    assert grey[holes > 0].eq(0.5).all() and torch.equal(grey[holes == 0], rgb[holes == 0])
    blur = vm.fill_holes(rgb, holes, "blur")
    assert torch.equal(blur[holes == 0], rgb[holes == 0]) and blur[2].eq(0.5).all()
    around = rgb[0, 2:10, 2:10][holes[0, 2:10, 2:10] == 0].mean(0)
    assert (blur[0, 5, 5] - around).abs().max() < 0.15  # a smooth guess from the neighbourhood
    assert vm.fill_holes(rgb, holes, "render") is rgb


# ---------------------------------------------------------------- geometry
def test_crop_without_size_is_gsdit_centre_crop():
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(11, 35, 50, 3, generator=g)
    holes = (torch.rand(11, 35, 50, generator=g) < 0.1).float()
    w, h = vm.output_size(50, 35, WAN)
    frames, mask = vm.fit_video(rgb, holes, w, h, "crop", rescale=False)
    assert torch.equal(frames[:9], gs.snap_video(rgb)) and torch.equal(mask[:9], gs.snap_video(holes))


def test_pad_marks_the_padding_to_generate():
    rgb = torch.rand(2, 30, 40, 3)
    holes = torch.zeros(2, 30, 40)
    frames, mask = vm.fit_video(rgb, holes, 48, 32, "pad", rescale=False)
    assert frames.shape == (2, 32, 48, 3)
    assert torch.equal(frames[:, 1:31, 4:44], rgb) and mask[:, 1:31, 4:44].eq(0).all()
    assert mask.sum() == 2 * (32 * 48 - 30 * 40) and frames[:, 0].eq(0.5).all()


@pytest.mark.parametrize("size_in,size_out", [((37, 53), (16, 32)), ((20, 20), (48, 64)), ((33, 47), (32, 48))])
def test_resize_max_keeps_every_hole(size_in, size_out):
    g = torch.Generator().manual_seed(sum(size_in))
    m = (torch.rand(2, *size_in, generator=g) < 0.02).float()
    out = vm.resize_max(m, *size_out)
    (hi, wi), (ho, wo) = size_in, size_out
    for i, j in itertools.product(range(ho), range(wo)):
        # output pixel (i, j) covers [i*hi/ho, (i+1)*hi/ho) x [j*wi/wo, (j+1)*wi/wo) of the input
        ys = [y for y in range(hi) if y + 1 > i * hi / ho and y < (i + 1) * hi / ho]
        xs = [x for x in range(wi) if x + 1 > j * wi / wo and x < (j + 1) * wi / wo]
        assert torch.equal(out[:, i, j], m[:, ys][:, :, xs].amax(dim=(1, 2))), (i, j)


# ---------------------------------------------------------------- windows
@pytest.mark.parametrize("frames,length,overlap", [(200, 81, 17), (81, 81, 17), (82, 81, 17), (300, 49, 9), (161, 81, 1), (150, 81, 0), (40, 81, 17), (7, 81, 5)])
def test_plan_windows_covers_the_clip(frames, length, overlap):
    plan = vm.plan_windows(frames, length, overlap)
    if frames <= length:
        assert plan == [vm.Window(0, 0, vm.snap_frames(frames), 0)]
        return
    assert plan[0].start == 0 and plan[-1].stop == frames
    assert all(w.length == length for w in plan)
    for a, b in zip(plan, plan[1:]):
        assert b.start > a.start and b.carried == a.stop - b.start >= 0
    assert all(w.carried == overlap for w in plan[1:-1]) and plan[-1].carried >= overlap
    covered = set().union(*(range(w.start, w.stop) for w in plan))
    assert covered == set(range(frames))


def test_plan_windows_errors():
    with pytest.raises(ValueError, match="fewer than"):
        vm.plan_windows(200, 81, 81)
    with pytest.raises(ValueError, match="at most"):
        vm.plan_windows(10**6, 5, 4)


def test_join_windows_rebuilds_the_video():
    g = torch.Generator().manual_seed(2)
    video = torch.rand(200, 4, 6, 3, generator=g)
    plan = vm.plan_windows(200, 81, 17)
    joined = None
    for w in plan:
        joined = vm.join_windows(joined, video[w.start : w.stop], w.carried)
    assert torch.allclose(joined, video, atol=1e-6)


def test_join_windows_crossfade_and_cut():
    prev = torch.zeros(10, 2, 2, 3)
    new = torch.ones(6, 2, 2, 3)
    fade = vm.join_windows(prev, new, 3, "crossfade")
    assert fade.shape[0] == 13
    assert torch.allclose(fade[7:10, 0, 0, 0], torch.tensor([0.25, 0.5, 0.75])) and fade[10:].eq(1).all() and fade[:7].eq(0).all()
    cut = vm.join_windows(prev, new, 3, "cut")
    assert cut[:10].eq(0).all() and cut[10:].eq(1).all()
    assert vm.join_windows(None, new, 3) is new
    assert vm.join_windows(prev, new, 0).shape[0] == 16
    with pytest.raises(ValueError, match="size"):
        vm.join_windows(prev, torch.ones(6, 3, 2, 3), 3)
    with pytest.raises(ValueError, match="longer"):
        vm.join_windows(prev[:2], new, 3)


# ---------------------------------------------------------------- one window
def test_prepare_window_carries_the_previous_frames():
    t, h, w = 200, 40, 56
    g = torch.Generator().manual_seed(5)
    rgb = torch.rand(t, h, w, 3, generator=g)
    gen = torch.zeros(t, h, w)
    gen[:, :, 40:] = 1  # right strip is a hole everywhere
    win, count = vm.select_window(t, WAN, 0, 17, 1)
    assert (count, win.start, win.carried) == (3, 64, 17)
    previous = torch.rand(81, 32, 48, 3, generator=g)
    out = vm.prepare_window(rgb[win.start : win.stop], gen[win.start : win.stop], WAN, win, windows=count, previous=previous)
    assert (out.length, out.height, out.width) == (81, 32, 48)
    assert torch.equal(out.control_video[:17], previous[-17:])
    assert out.control_mask[:17].eq(0).all() and out.latent_mask[:5].eq(0).all()  # 17 = 1 + 4*4 frames: 5 latent frames kept
    crop = rgb[win.start + 17 : win.stop, 4:36, 4:52]
    hole = gen[0, 4:36, 4:52] > 0
    assert torch.equal(out.control_video[17:][:, ~hole], crop[:, ~hole]) and out.control_video[17:][:, hole].eq(0.5).all()
    with pytest.raises(ValueError, match="previous"):
        vm.prepare_window(rgb[win.start : win.stop], gen[win.start : win.stop], WAN, win)
    with pytest.raises(ValueError, match="window_index 3"):
        vm.select_window(t, WAN, 0, 17, 3)


def test_prepare_window_partial_latent_group_is_regenerated():
    """The last window carries 26 frames: frame 25 shares latent frame 7 with generated frames, so that
    latent frame is regenerated while frames 0..24 (latent frames 0..6) stay known."""
    t = 200
    rgb = torch.rand(t, 16, 16, 3)
    gen = torch.zeros(t, 16, 16)
    gen[:, :8, :8] = 1
    win, count = vm.select_window(t, WAN, 0, 17, 2)
    assert win.carried == 26
    out = vm.prepare_window(rgb[win.start :], gen[win.start :], WAN, win, windows=count, previous=torch.rand(145, 16, 16, 3))
    assert out.latent_mask[:7].eq(0).all() and out.latent_mask[7, 0, 0] == 1 and out.latent_mask[7, 1, 1] == 0


def test_prepare_window_refuses_absurd_sizes():
    win = vm.Window(0, 0, 81, 0)
    with pytest.raises(ValueError, match="GiB"):
        vm.prepare_window(torch.zeros(81, 16, 16, 3), torch.zeros(81, 16, 16), WAN, win, width=8192, height=8192)
