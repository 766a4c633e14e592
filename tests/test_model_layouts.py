"""Community model loading: every published layout and ComfyUI single file loads through the real loader nodes and
gives the diffusers-folder output bit for bit (max abs diff printed); wrong-family files are refused from their keys."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from vid4d.models import families, loading
from vid4d.models import t5 as t5_models
from vid4d.nodes import runtime
from vid4d.nodes.depth import Vid4DDepthModelLoader, VideoDepth
from vid4d.nodes.gsdit import FROM_COMPONENTS, SAME_FOLDER, GSDiTSampler, Vid4DGSDiTModelLoader

from conftest import ROOT

SAMPLER = dict(prompt="a cat moves on the ball", negative_prompt="blurry", mode="training_free", strength=0.8, steps=2, guidance=2.0, seed=1, scheduler="ddim", cameras=1, feather=1.0, resize_to_input=False)


def _render():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(9, 32, 48, 3, generator=g)
    holes = torch.zeros(9, 32, 48)
    holes[:, :, 32:] = 1
    return frames, holes


def _generate(model, components=SAME_FOLDER, text_encoder=FROM_COMPONENTS, vae=FROM_COMPONENTS, dtype="fp32"):
    assert Vid4DGSDiTModelLoader.VALIDATE_INPUTS(model, components, text_encoder, vae) is True
    pipe = Vid4DGSDiTModelLoader().load(model, components, dtype, "none", True, text_encoder, vae)["result"][0]
    frames, holes = _render()
    return pipe, GSDiTSampler().generate(pipe, images=frames, holes=holes, **SAMPLER)["result"][0]


@pytest.fixture
def comfy_tokenizer(tiny_models, monkeypatch):
    """ComfyUI's own tokenizer copy (comfy/text_encoders/t5_tokenizer/), as a running ComfyUI would offer it."""
    folder = tiny_models / "comfyui" / "comfy" / "text_encoders" / "t5_tokenizer"
    monkeypatch.setattr(runtime, "t5_tokenizer_dir", lambda: folder)
    return folder


def test_fixtures_are_written_in_the_published_layouts(tiny_models):
    files = lambda folder: sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    two_b = tiny_models / "gsdit" / "CogVideoX-2b"
    assert files(two_b) == [
        "model_index.json", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.json",
        "tokenizer/added_tokens.json", "tokenizer/special_tokens_map.json", "tokenizer/spiece.model", "tokenizer/tokenizer_config.json",
        "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    ]
    assert files(tiny_models / "gsdit" / "CogVideoX-5b-I2V" / "transformer") == [
        "config.json", "diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors", "diffusion_pytorch_model.safetensors.index.json",
    ]
    tok = json.loads((two_b / "tokenizer" / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "T5Tokenizer" and tok["extra_ids"] == 100 and tok["model_max_length"] == 226
    assert json.loads((two_b / "transformer" / "config.json").read_text())["_class_name"] == "CogVideoXTransformer3DModel"
    assert files(tiny_models / "depth" / "ChronoDepth-v1") == ["config.json", "diffusion_pytorch_model.safetensors"]
    svd = tiny_models / "depth" / "stable-video-diffusion-img2vid-xt"
    assert files(svd) == [
        "feature_extractor/preprocessor_config.json", "image_encoder/config.json", "image_encoder/model.fp16.safetensors", "image_encoder/model.safetensors",
        "model_index.json", "scheduler/scheduler_config.json", "svd_xt.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
    ]
    # ComfyUI's T5-XXL single files use transformers' names, without the tied encoder.embed_tokens.
    header = loading.read_header(tiny_models / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors")
    assert "shared.weight" in header.keys and "encoder.embed_tokens.weight" not in header.keys and header.dtype_summary() == "fp8 (float8_e4m3fn)"


def test_the_sentencepiece_tokenizer_needs_no_protobuf(tiny_models):
    """THUDM's tokenizer/ (spiece.model, no tokenizer.json) loads with protobuf unavailable — transformers' own
    T5Tokenizer then fails (it converts the SentencePiece model through protobuf) — and gives the ids of the
    tokenizer.json layout ComfyUI carries."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["google.protobuf"] = None  # as on an install without protobuf
        from vid4d.models import t5
        spiece, fast = t5.load_tokenizer({str(tiny_models / "gsdit" / "CogVideoX-2b" / "tokenizer")!r}), t5.load_tokenizer({str(tiny_models / "comfyui" / "comfy" / "text_encoders" / "t5_tokenizer")!r})
        for prompt in ["a cat moves on the ball", "The  CAMERA spins!  ", "red dog, blue box; orbit", "", "zebra <extra_id_0> quality"]:
            a = spiece(prompt, padding="max_length", max_length=226, truncation=True).input_ids
            b = fast(prompt, padding="max_length", max_length=226, truncation=True).input_ids
            assert a == b, (prompt, a[:12], b[:12])
            assert a[sum(1 for i in a if i) - 1] == 1 and len(a) == 226  # ends with </s>, padded with 0
        try:
            from transformers import T5Tokenizer
            T5Tokenizer.from_pretrained({str(tiny_models / "gsdit" / "CogVideoX-2b" / "tokenizer")!r})
            print("transformers T5Tokenizer: loaded")
        except Exception as exc:
            print("transformers T5Tokenizer:", type(exc).__name__)
        print("ok", type(spiece).__name__)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    print(run.stdout.strip())
    assert run.stdout.strip().endswith("ok T5SentencePieceTokenizer") or "ok T5Tokenizer" in run.stdout


def test_every_layout_gives_the_folder_output(tiny_models, comfy_tokenizer, capsys):
    """The 2B in THUDM's folder, its transformer as SAT / bf16 / fp8 files, T5-XXL as ComfyUI's fp16 / fp8 / scaled fp8
    files, the VAE as a bf16 file, and all single files with no folder at all (ComfyUI's tokenizer, the published
    scheduler): the same video as the folder (the tiny weights are fp8-exact, so every dtype holds the same values)."""
    _, reference = _generate("CogVideoX-2b")
    cases = {
        "SAT transformer + folder": ("cogvideox_tiny_sat.safetensors", "CogVideoX-2b", FROM_COMPONENTS, FROM_COMPONENTS),
        "bf16 transformer (diffusion_models) + t5xxl_fp16 + VAE file + folder tokenizer": ("cogvideox_2b_bf16.safetensors", "CogVideoX-2b", "t5xxl_fp16.safetensors", "cogvideox_vae_bf16.safetensors"),
        "folder + t5xxl_fp8_e4m3fn_scaled": ("CogVideoX-2b", SAME_FOLDER, "t5xxl_fp8_e4m3fn_scaled.safetensors", FROM_COMPONENTS),
        "fp8 transformer + t5xxl_fp8 + VAE file, no folder (ComfyUI's tokenizer)": ("cogvideox_2b_fp8_e4m3fn.safetensors", SAME_FOLDER, "t5xxl_fp8_e4m3fn.safetensors", "cogvideox_vae_bf16.safetensors"),
    }
    for name, (model, components, text_encoder, vae) in cases.items():
        pipe, video = _generate(model, components, text_encoder, vae)
        diff = float((video - reference).abs().max())
        with capsys.disabled():
            print(f"\n  {name}: max abs diff {diff:.3g} vs the diffusers folder ({pipe.sources.describe()})")
        assert diff == 0.0, name
    assert pipe.sources.scheduler is None and pipe.sources.tokenizer == comfy_tokenizer
    assert pipe.scheduler_config["snr_shift_scale"] == 3.0  # the 2B's published scheduler, read off the model


def test_fp8_weights_compute_in_the_chosen_dtype(tiny_models):
    pipe = Vid4DGSDiTModelLoader().load("cogvideox_2b_fp8_e4m3fn.safetensors", "CogVideoX-2b", "bf16", "none", True, "t5xxl_fp8_e4m3fn.safetensors", FROM_COMPONENTS)["result"][0]
    assert {p.dtype for p in pipe.transformer.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in pipe.text_encoder.parameters()} == {torch.bfloat16}


def test_chronodepth_unet_as_one_file_matches_the_folder(tiny_models, capsys):
    frames = torch.rand(4, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    args = dict(steps=2, window=4, stride=2, mode="context", max_res=64, seed=0, colormap="grey", decode_chunk=4)
    out = {}
    for unet, base in (("ChronoDepth-v1", "stable-video-diffusion-img2vid-xt"), ("chronodepth_v1_fp16.safetensors", "stable-video-diffusion-img2vid-xt")):
        assert Vid4DDepthModelLoader.VALIDATE_INPUTS(unet, base) is True
        pipe = Vid4DDepthModelLoader().load(unet, base, "fp32", False)["result"][0]
        out[unet] = VideoDepth().estimate(pipe, frames, **args)["result"][0].depth
    diff = float((out["ChronoDepth-v1"] - out["chronodepth_v1_fp16.safetensors"]).abs().max())
    with capsys.disabled():
        print(f"\n  ChronoDepth UNet as one file (models/diffusion_models/) vs the ChronoDepth-v1 folder: max abs diff {diff:.3g}")
    assert diff == 0.0


def test_dropdowns_list_the_users_files_from_comfyuis_folders(tiny_models, fake_comfy, tmp_path):
    """Inside ComfyUI the lists come from folder_paths (extra_model_paths.yaml included): here an extra text_encoders
    folder registered the way ComfyUI reads that file."""
    fp = fake_comfy.folder_paths
    extra = tmp_path / "elsewhere" / "clip"
    extra.mkdir(parents=True)
    (extra / "t5xxl_fp16.safetensors").write_bytes((tiny_models / "text_encoders" / "t5xxl_fp16.safetensors").read_bytes())
    for name in ("diffusion_models", "text_encoders", "vae", "checkpoints"):
        fp.add_model_folder_path(name, str(tiny_models / name))
    fp.add_model_folder_path("text_encoders", str(extra))
    fp.add_model_folder_path("vid4d_gsdit", str(tiny_models / "gsdit"))
    fp.add_model_folder_path("vid4d_depth", str(tiny_models / "depth"))
    fp.get_filename_list = lambda name: sorted({p.name for d in fp.get_folder_paths(name) for p in __import__("pathlib").Path(d).glob("*.safetensors")})
    spec = Vid4DGSDiTModelLoader.INPUT_TYPES()
    assert {"CogVideoX-2b", "cogvideox_2b_fp8_e4m3fn.safetensors", "cogvideox_tiny_sat.safetensors"} <= set(spec["required"]["model"][0])
    assert spec["optional"]["text_encoder"][0][0] == FROM_COMPONENTS
    assert {"t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors"} <= set(spec["optional"]["text_encoder"][0])
    assert "cogvideox_vae_bf16.safetensors" in spec["optional"]["vae"][0]
    depth = Vid4DDepthModelLoader.INPUT_TYPES()["required"]
    assert {"ChronoDepth-v1", "chronodepth_v1_fp16.safetensors"} <= set(depth["unet"][0])
    assert {"stable-video-diffusion-img2vid-xt", "svd_xt.safetensors"} <= set(depth["base"][0])
    # the file in the extra folder resolves too
    assert runtime.shared_dirs("text_encoders")[-1] == extra
    assert Vid4DGSDiTModelLoader.VALIDATE_INPUTS("CogVideoX-2b", SAME_FOLDER, "t5xxl_fp16.safetensors", FROM_COMPONENTS) is True


@pytest.fixture
def own_root(tiny_models, tmp_path, monkeypatch):
    """A models root of this test's own: the tiny models linked in, so files added here do not leak into others."""
    root = tmp_path / "models"
    for kind in tiny_models.iterdir():
        if kind.is_dir():
            (root / kind.name).mkdir(parents=True)
            for entry in kind.iterdir():
                (root / kind.name / entry.name).symlink_to(entry)
    monkeypatch.setenv("VID4D_MODELS_DIR", str(root))
    return root


def _fake_family(path, keys: dict[str, tuple[int, ...]], dtype=torch.float16):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(shape, dtype=dtype) for k, shape in keys.items()}, str(path))


def test_wrong_family_files_are_refused_with_what_they_look_like(own_root, comfy_tokenizer):
    """A Flux transformer in the model slot, a CLIP-L in the T5 slot, an SD VAE in the vae slot: named from their keys
    when the prompt is queued (header only), all at once."""
    tiny_models = own_root
    _fake_family(tiny_models / "diffusion_models" / "flux1-dev.safetensors", {"double_blocks.0.img_attn.qkv.weight": (6, 2), "single_blocks.0.linear1.weight": (4, 2), "img_in.weight": (2, 4)}, torch.bfloat16)
    _fake_family(tiny_models / "text_encoders" / "clip_l.safetensors", {"text_model.encoder.layers.0.self_attn.q_proj.weight": (2, 2), "text_model.final_layer_norm.weight": (768,), "text_model.embeddings.token_embedding.weight": (4, 768)})
    _fake_family(tiny_models / "vae" / "ae.safetensors", {"encoder.down.0.block.0.conv1.weight": (2, 2, 3, 3), "decoder.up.0.block.0.conv1.weight": (2, 2, 3, 3), "encoder.conv_out.weight": (32, 2, 3, 3)})
    msg = Vid4DGSDiTModelLoader.VALIDATE_INPUTS("flux1-dev.safetensors", SAME_FOLDER, "clip_l.safetensors", "ae.safetensors")
    print(msg)
    assert "3 problems" in msg
    assert "flux1-dev.safetensors in 'model' looks like a Flux transformer (diffusion model), stored as bf16; 'model' takes a CogVideoX transformer" in msg
    assert "clip_l.safetensors in 'text_encoder' looks like a CLIP-L text encoder, stored as fp16; 'text_encoder' takes a T5-XXL file" in msg
    assert "ae.safetensors in 'vae' looks like a Flux / SD3 image VAE (16 latent channels)" in msg
    with pytest.raises(loading.CheckpointFormatError, match="looks like a Flux transformer"):
        Vid4DGSDiTModelLoader().load("flux1-dev.safetensors", SAME_FOLDER, "fp32", "none", True, "clip_l.safetensors", "ae.safetensors")
    # the other direction: a CogVideoX VAE or a UMT5 where a T5-XXL goes
    _fake_family(tiny_models / "text_encoders" / "umt5_xxl_fp8.safetensors", {"encoder.block.0.layer.0.SelfAttention.q.weight": (2, 2), "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight": (2, 2), "encoder.final_layer_norm.weight": (4096,)})
    msg = Vid4DGSDiTModelLoader.VALIDATE_INPUTS("CogVideoX-2b", SAME_FOLDER, "umt5_xxl_fp8.safetensors", FROM_COMPONENTS)
    assert "looks like a UMT5 text encoder (Wan's umt5-xxl)" in msg, msg


def test_identify_knows_the_families_of_the_fixtures(tiny_models):
    expect = {
        "gsdit/cogvideox_tiny_transformer.safetensors": "cogvideox_transformer", "gsdit/cogvideox_tiny_sat.safetensors": "cogvideox_sat",
        "text_encoders/t5xxl_fp16.safetensors": "t5", "text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors": "t5", "vae/cogvideox_vae_bf16.safetensors": "cogvideox_vae",
        "checkpoints/svd_xt.safetensors": "svd_checkpoint", "diffusion_models/chronodepth_v1_fp16.safetensors": "svd_unet",
        "depth/stable-video-diffusion-img2vid-xt/vae/diffusion_pytorch_model.safetensors": "svd_vae",
    }
    for rel, family in expect.items():
        found = families.identify(loading.read_header(tiny_models / rel).shapes)
        assert found is not None and found[0].name == family, (rel, found)
    assert families.identify(loading.read_header(tiny_models / "text_encoders" / "t5xxl_fp16.safetensors").shapes)[1] == "a T5 text encoder (32 wide, T5-XXL is 4096)"


def test_single_file_t5_config_is_read_off_the_weights(tiny_models):
    shapes = t5_models._strip(loading.read_header(tiny_models / "text_encoders" / "t5xxl_fp16.safetensors").shapes)[0]
    config = t5_models.config_from_shapes(shapes, "t5")
    assert (config["vocab_size"], config["d_model"], config["num_heads"], config["d_kv"], config["d_ff"], config["num_layers"]) == (32128, 32, 2, 8, 64, 1)
    assert config["feed_forward_proj"] == "gated-gelu"
