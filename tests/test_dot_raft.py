"""DOT's RAFT refiner: official checkpoint layout, loader errors, end-to-end run on random weights."""

import math

import pytest
import torch
from safetensors.torch import save_file

from vid4d.models import loading, tracking
from vid4d.models.loading import CheckpointFormatError, ModelNotFoundError


def _encoder_shapes() -> dict:
    """``BasicEncoder(output_dim=256, patch_size=4)`` — dot/models/shelf/raft_utils/extractor.py,
    ``BasicEncoder.__init__`` (conv1 7x7 3->64, layer1 64, layer2 96 stride 2, layer3 128 stride 2,
    conv2 1x1 128->256) and ``ResidualBlock.__init__`` (conv1/conv2 3x3; ``downsample`` =
    Sequential(1x1 conv, norm) on strided blocks). Instance norm is not affine: no keys."""
    s = {"conv1.weight": (64, 3, 7, 7), "conv1.bias": (64,)}
    for layer, (cin, cout, strided) in {1: (64, 64, False), 2: (64, 96, True), 3: (96, 128, True)}.items():
        for block in (0, 1):
            first_in = cin if block == 0 else cout
            s[f"layer{layer}.{block}.conv1.weight"] = (cout, first_in, 3, 3)
            s[f"layer{layer}.{block}.conv1.bias"] = (cout,)
            s[f"layer{layer}.{block}.conv2.weight"] = (cout, cout, 3, 3)
            s[f"layer{layer}.{block}.conv2.bias"] = (cout,)
            if block == 0 and strided:
                s[f"layer{layer}.0.downsample.0.weight"] = (cout, cin, 1, 1)
                s[f"layer{layer}.0.downsample.0.bias"] = (cout,)
    s["conv2.weight"] = (256, 128, 1, 1)
    s["conv2.bias"] = (256,)
    return s


# dot/models/shelf/raft_utils/update.py: BasicMotionEncoder (cor_planes = 4 * 9**2 = 324; in_dim = 2 + 3
# with refine_alpha; conv out 128 - 5 = 123), SepConvGRU(hidden 128, input 128 + 128 -> 384 in),
# FlowHead / AlphaHead (128 -> 256 -> 2 / 1), mask / alpha_mask Sequential(conv 128->256, ReLU,
# conv 256 -> 4*4*9 = 144); dot/models/shelf/raft.py RAFT.__init__: fnet, cnet, update_block(hidden 128).
_UPDATE_SHAPES = {
    "encoder.convc1.weight": (256, 324, 1, 1), "encoder.convc1.bias": (256,),
    "encoder.convc2.weight": (192, 256, 3, 3), "encoder.convc2.bias": (192,),
    "encoder.convf1.weight": (128, 5, 7, 7), "encoder.convf1.bias": (128,),
    "encoder.convf2.weight": (64, 128, 3, 3), "encoder.convf2.bias": (64,),
    "encoder.conv.weight": (123, 256, 3, 3), "encoder.conv.bias": (123,),
    "gru.convz1.weight": (128, 384, 1, 5), "gru.convz1.bias": (128,),
    "gru.convr1.weight": (128, 384, 1, 5), "gru.convr1.bias": (128,),
    "gru.convq1.weight": (128, 384, 1, 5), "gru.convq1.bias": (128,),
    "gru.convz2.weight": (128, 384, 5, 1), "gru.convz2.bias": (128,),
    "gru.convr2.weight": (128, 384, 5, 1), "gru.convr2.bias": (128,),
    "gru.convq2.weight": (128, 384, 5, 1), "gru.convq2.bias": (128,),
    "flow_head.conv1.weight": (256, 128, 3, 3), "flow_head.conv1.bias": (256,),
    "flow_head.conv2.weight": (2, 256, 3, 3), "flow_head.conv2.bias": (2,),
    "mask.0.weight": (256, 128, 3, 3), "mask.0.bias": (256,),
    "mask.2.weight": (144, 256, 1, 1), "mask.2.bias": (144,),
    "alpha_head.conv1.weight": (256, 128, 3, 3), "alpha_head.conv1.bias": (256,),
    "alpha_head.conv2.weight": (1, 256, 3, 3), "alpha_head.conv2.bias": (1,),
    "alpha_mask.0.weight": (256, 128, 3, 3), "alpha_mask.0.bias": (256,),
    "alpha_mask.2.weight": (144, 256, 1, 1), "alpha_mask.2.bias": (144,),
}

OFFICIAL_SHAPES = {
    **{f"fnet.{k}": v for k, v in _encoder_shapes().items()},
    **{f"cnet.{k}": v for k, v in _encoder_shapes().items()},
    **{f"update_block.{k}": v for k, v in _UPDATE_SHAPES.items()},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convs run fastest on one thread, and far more steadily on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _clear():
    loading.clear_cache()
    yield
    loading.clear_cache()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A seeded random-weight refiner saved in the official layout (.pth raw state_dict and .safetensors)."""
    torch.manual_seed(0)
    net = tracking.DotRaftRefiner().eval()
    with torch.no_grad():  # larger-than-init weights so every path visibly moves the output
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.03)
    folder = tmp_path_factory.mktemp("tracking")
    state = net.state_dict()
    torch.save(state, folder / tracking.CHECKPOINT_NAME)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "dot.safetensors"))
    return net, folder


def _frames(h=64, w=96, seed=1):
    g = torch.Generator().manual_seed(seed)
    src = torch.rand(3, h, w, generator=g)
    dst = torch.roll(src, shifts=(1, 2), dims=(1, 2))  # the true flow is (+2, +1) px
    flow = torch.zeros(2, h, w)
    flow[0], flow[1] = 1.5, 0.5
    vis = (torch.rand(h, w, generator=g) > 0.2).float()
    return src, dst, flow, vis


# ---------------------------------------------------------------------------- layout
def test_key_set_and_shapes_match_the_official_checkpoint():
    ours = {k: tuple(v.shape) for k, v in tracking.DotRaftRefiner().state_dict().items()}
    assert ours == OFFICIAL_SHAPES
    assert set(tracking.EXPECTED_KEYS) == set(OFFICIAL_SHAPES)
    assert tracking.expected_state_shapes() == OFFICIAL_SHAPES
    assert sum(math.prod(s) for s in OFFICIAL_SHAPES.values()) == 5_785_182


def test_correlation_window_order_matches_raft():
    """Channel a*(2r+1)+b of level 0 reads the target at (x + a - r, y + b - r): x is the slow index."""
    torch.manual_seed(0)
    f1, f2 = torch.randn(1, 8, 10, 12), torch.randn(1, 8, 10, 12)
    r = 2
    pyr = tracking.CorrPyramid(f1, f2, levels=2, radius=r)
    ys, xs = torch.meshgrid(torch.arange(10.0), torch.arange(12.0), indexing="ij")
    out = pyr(torch.stack([xs, ys])[None])
    assert out.shape == (1, 2 * (2 * r + 1) ** 2, 10, 12)
    py, px = 5, 6
    for a in range(2 * r + 1):
        for b in range(2 * r + 1):
            expected = (f1[0, :, py, px] * f2[0, :, py + b - r, px + a - r]).sum() / math.sqrt(8)
            assert torch.allclose(out[0, a * (2 * r + 1) + b, py, px], expected, atol=1e-5)


# ---------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("name", [tracking.CHECKPOINT_NAME, "dot.safetensors"])
def test_load_and_refine_end_to_end(weights, name):
    net, folder = weights
    refiner = tracking.load_dot_raft(folder / name)
    assert isinstance(refiner, tracking.DotRefiner)
    for k, v in net.state_dict().items():
        assert torch.equal(refiner.net.state_dict()[k], v), k
    src, dst, flow_init, vis_init = _frames()
    flow, vis = refiner(src, dst, flow_init, vis_init)
    assert flow.shape == (2, 64, 96) and vis.shape == (64, 96)
    assert flow.dtype == torch.float32 and torch.isfinite(flow).all() and torch.isfinite(vis).all()
    assert vis.min() >= 0 and vis.max() <= 1
    flow1, vis1 = refiner(src, dst, flow_init, vis_init, iters=1)
    assert not torch.allclose(flow, flow1) and not torch.allclose(vis, vis1)
    again, _ = refiner(src, dst, flow_init, vis_init)
    assert torch.equal(flow, again)  # deterministic, no state carried between calls


def test_sizes_not_multiple_of_eight_are_padded_and_cropped(weights):
    net, _ = weights
    refiner = tracking.DotRefiner(net)
    src, dst, flow_init, vis_init = _frames(h=30, w=45)
    flow, vis = refiner(src, dst, flow_init, vis_init.bool())
    assert flow.shape == (2, 30, 45) and vis.shape == (30, 45)
    assert torch.isfinite(flow).all() and ((vis >= 0) & (vis <= 1)).all()
    with pytest.raises(ValueError, match="flow_init"):
        refiner(src, dst, flow_init[:, :-1], vis_init)


def test_module_input_checks():
    net = tracking.DotRaftRefiner().eval()
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 3, 66, 96), torch.rand(1, 3, 66, 96))
    with pytest.raises(ValueError, match="at least 32"):
        net(torch.rand(1, 3, 16, 96), torch.rand(1, 3, 16, 96))


# ---------------------------------------------------------------------------- zero update
def _frozen(net):
    """A copy whose flow and alpha heads output zero deltas: refinement must return the init."""
    frozen = tracking.DotRaftRefiner().eval()
    frozen.load_state_dict(net.state_dict())
    with torch.no_grad():
        for head in (frozen.update_block.flow_head, frozen.update_block.alpha_head):
            head.conv2.weight.zero_()
            head.conv2.bias.zero_()
    return frozen


def test_zero_update_returns_the_upsampled_init(weights):
    net, _ = weights
    frozen = _frozen(net)
    b, h, w, p = 2, 16, 24, 4
    flow_c = torch.zeros(b, 2, h, w)
    flow_c[0, 0], flow_c[0, 1], flow_c[1, 0], flow_c[1, 1] = 3.0, -1.5, -0.25, 2.0
    alpha_c = torch.full((b, 1, h, w), 0.3)
    with torch.no_grad():
        flow, alpha = frozen(torch.rand(b, 3, 64, 96), torch.rand(b, 3, 64, 96), flow_c, alpha_c, iters=3)
    # Convex weights sum to one, so away from the zero-padded border a constant field stays constant:
    # flow (coarse px) * patch size, alpha as the logit of the init.
    inner = (slice(None), slice(None), slice(p, -p), slice(p, -p))
    expected = (p * flow_c).repeat_interleave(p, 2).repeat_interleave(p, 3)
    assert torch.allclose(flow[inner], expected[inner], atol=1e-5)
    assert torch.allclose(alpha[inner], torch.full_like(alpha[inner], math.log(0.3 / 0.7)), atol=1e-5)
    with torch.no_grad():  # and the real heads do move it
        moved, _ = net(torch.rand(b, 3, 64, 96), torch.rand(b, 3, 64, 96), flow_c, alpha_c, iters=3)
    assert not torch.allclose(moved[inner], expected[inner], atol=1e-2)


@pytest.mark.parametrize("convention", ["patch", "official"])
def test_zero_update_through_the_wrapper(weights, convention):
    net, _ = weights
    refiner = tracking.DotRefiner(_frozen(net), init_convention=convention)
    src, dst, flow_init, _ = _frames()
    flow, vis = refiner(src, dst, flow_init, torch.full((64, 96), 0.3))
    # "patch": pixel units round-trip exactly; "official": DOT's coarse scale (w-1)/(W-1) times P.
    sx, sy = (1.0, 1.0) if convention == "patch" else (4 * 23 / 95, 4 * 15 / 63)
    inner = (slice(4, -4), slice(4, -4))
    assert torch.allclose(flow[0][inner], torch.full_like(flow[0][inner], 1.5 * sx), atol=1e-4)
    assert torch.allclose(flow[1][inner], torch.full_like(flow[1][inner], 0.5 * sy), atol=1e-4)
    assert torch.allclose(vis[inner], torch.full_like(vis[inner], 0.3), atol=1e-5)


# ---------------------------------------------------------------------------- loader errors
def test_missing_file_names_the_checkpoint_and_folder(tmp_path):
    with pytest.raises(ModelNotFoundError) as e:
        tracking.load_dot_raft(tmp_path / tracking.CHECKPOINT_NAME)
    msg = str(e.value)
    assert "movi_f_raft_patch_4_alpha.pth" in msg and "models/vid4d/tracking/" in msg


def test_wrong_keys_are_listed(weights, tmp_path):
    net, _ = weights
    state = dict(net.state_dict())
    state.pop("update_block.alpha_head.conv1.weight")
    state["update_block.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointFormatError) as e:
        tracking.load_dot_raft(tmp_path / "bad.pth")
    msg = str(e.value)
    assert "missing keys" in msg and "update_block.alpha_head.conv1.weight" in msg
    assert "unexpected keys" in msg and "update_block.extra.weight" in msg and tracking.CHECKPOINT_NAME in msg


def test_other_layouts_and_shapes_are_refused(tmp_path):
    save_file({"encoder.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointFormatError, match="fnet"):
        tracking.load_dot_raft(tmp_path / "other.safetensors")
    patch8 = tracking.DotRaftRefiner(patch_size=8).state_dict()  # the mask heads have 576 outputs
    torch.save(patch8, tmp_path / "patch8.pth")
    with pytest.raises(CheckpointFormatError, match="wrong shapes.*update_block.mask.2.weight"):
        tracking.load_dot_raft(tmp_path / "patch8.pth")


def test_dataparallel_prefix_loads(weights, tmp_path):
    net, _ = weights
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "dp.pth")
    refiner = tracking.load_dot_raft(tmp_path / "dp.pth")
    assert torch.equal(refiner.net.fnet.conv1.weight, net.fnet.conv1.weight)


@pytest.mark.parametrize("name", ["corrupt.pth", "corrupt.safetensors"])
def test_corrupt_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointFormatError, match="could not read"):
        tracking.load_dot_raft(tmp_path / name)


def test_loaded_refiner_is_cached_by_dtype(weights):
    _, folder = weights
    path = folder / tracking.CHECKPOINT_NAME
    a = tracking.load_dot_raft(path)
    assert tracking.load_dot_raft(path) is a
    b = tracking.load_dot_raft(path, dtype=torch.float64)
    assert b is not a and b.net.fnet.conv1.weight.dtype == torch.float64
    src, dst, flow_init, vis_init = _frames()
    fa, va = a(src, dst, flow_init, vis_init)
    fb, vb = b(src, dst, flow_init, vis_init)
    assert fb.dtype == torch.float32 and torch.allclose(fa, fb, atol=1e-3) and torch.allclose(va, vb, atol=1e-4)
