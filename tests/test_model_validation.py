"""Loaders check their files in VALIDATE_INPUTS: a missing or incomplete model is refused when the prompt is queued
(the server, and the headless runner like it), naming file or folder correctly, every missing part at once, the folders
searched, what they hold, and every accepted alternative."""

import shutil
import time

import pytest

from vid4d import NODE_CLASS_MAPPINGS
from vid4d.models import loading
from vid4d.nodes import workflow as wf
from vid4d.nodes.depth import Vid4DDepthModelLoader
from vid4d.nodes.gsdit import FROM_COMPONENTS, SAME_FOLDER, Vid4DGSDiTModelLoader
from vid4d.nodes.spectral import Vid4DMotionModelLoader
from vid4d.nodes.splat import Vid4DSynthesisModelLoader
from vid4d.nodes.tracking import DenseTrack3D

from conftest import ROOT


@pytest.fixture
def empty_models(tmp_path, monkeypatch):
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setenv("VID4D_MODELS_DIR", str(root))
    loading.clear_cache()
    return root


def test_a_missing_model_stops_the_workflow_before_anything_runs(empty_models, headless):
    """gsdit_full.json used to build a 49-frame scene (53 s) before the loader said its model was missing."""
    start = time.perf_counter()
    with pytest.raises(wf.WorkflowError) as e:
        wf.run_file(ROOT / "workflows" / "gsdit_full.json", NODE_CLASS_MAPPINGS, log=lambda _: None)
    seconds = time.perf_counter() - start
    msg = str(e.value)
    print(msg, f"\n(refused after {seconds:.2f} s)")
    assert seconds < 10
    assert "(Vid4DDepthModelLoader): ChronoDepth: 2 problems" in msg and "(Vid4DGSDiTModelLoader): GS-DiT model:" in msg
    assert "unet: folder 'ChronoDepth-v1' not found in models/vid4d/depth/" in msg
    assert "base: file 'svd_xt.safetensors' not found in models/checkpoints/" in msg
    assert "model: folder 'CogVideoX-5b-I2V' not found in models/vid4d/gsdit/ or models/diffusion_models/" in msg
    assert f"searched: {empty_models / 'depth'}" in msg and "found there: nothing" in msg
    assert "(searched: (" not in msg and "model file 'ChronoDepth" not in msg
    assert not list((headless / "output").rglob("*"))  # nothing ran


def test_no_configured_folder_is_said_plainly(monkeypatch):
    monkeypatch.delenv("VID4D_MODELS_DIR", raising=False)
    msg = Vid4DMotionModelLoader.VALIDATE_INPUTS("gid_motion.safetensors")
    assert "searched: no folder configured: set VID4D_MODELS_DIR, or run inside ComfyUI;" in msg and "((" not in msg


def test_chronodepth_folder_with_only_its_config_is_flagged(tiny_models, tmp_path, monkeypatch):
    root = tmp_path / "models"
    (root / "depth" / "ChronoDepth-v1").mkdir(parents=True)
    shutil.copy(tiny_models / "depth" / "ChronoDepth-v1" / "config.json", root / "depth" / "ChronoDepth-v1")
    (root / "depth" / "stable-video-diffusion-img2vid-xt" / "vae").mkdir(parents=True)
    monkeypatch.setenv("VID4D_MODELS_DIR", str(root))
    msg = Vid4DDepthModelLoader.VALIDATE_INPUTS("ChronoDepth-v1", "stable-video-diffusion-img2vid-xt")
    print(msg)
    assert msg.startswith("ChronoDepth: 3 problems")
    assert "unet: folder " in msg and "ChronoDepth-v1/ has no diffusion_pytorch_model.safetensors or diffusion_pytorch_model.fp16.safetensors (found there: config.json)" in msg
    assert "stable-video-diffusion-img2vid-xt/ has no image_encoder/" in msg and "stable-video-diffusion-img2vid-xt/vae/ needs config.json" in msg
    # every accepted alternative: the single UNet file, svd_xt.safetensors and the SVD diffusers folder
    assert "as one file in models/vid4d/depth/ or models/diffusion_models/" in msg
    assert "svd_xt.safetensors in models/checkpoints/" in msg and "diffusers folder in models/vid4d/depth/stable-video-diffusion-img2vid-xt/" in msg


def test_gsdit_folder_missing_parts_are_all_named_with_alternatives(tiny_models, tmp_path, monkeypatch):
    root = tmp_path / "models"
    folder = root / "gsdit" / "CogVideoX-5b-I2V"
    folder.mkdir(parents=True)
    (folder / "transformer").symlink_to(tiny_models / "gsdit" / "CogVideoX-5b-I2V" / "transformer")
    monkeypatch.setenv("VID4D_MODELS_DIR", str(root))
    msg = Vid4DGSDiTModelLoader.VALIDATE_INPUTS("CogVideoX-5b-I2V", SAME_FOLDER, FROM_COMPONENTS, FROM_COMPONENTS)
    print(msg)
    assert msg.startswith("GS-DiT model: 3 problems")
    assert "- text_encoder: folder " in msg and "t5xxl_fp16.safetensors" in msg and "in 'text_encoder'" in msg
    assert "- tokenizer: no spiece.model or tokenizer.json in " in msg and "comfy/text_encoders/t5_tokenizer/" in msg
    assert "- vae: folder " in msg and "models/vae/" in msg
    # the user's single files fill the gaps (the tokenizer still has to come from somewhere)
    (root / "text_encoders").mkdir()
    (root / "text_encoders" / "t5xxl_fp16.safetensors").symlink_to(tiny_models / "text_encoders" / "t5xxl_fp16.safetensors")
    msg = Vid4DGSDiTModelLoader.VALIDATE_INPUTS("CogVideoX-5b-I2V", SAME_FOLDER, "t5xxl_fp16.safetensors", "not_there.safetensors")
    assert msg.startswith("GS-DiT model: 2 problems") and "vae: file 'not_there.safetensors' not found in models/vae/" in msg, msg


def test_motion_and_synthesis_files_checked_when_queued(tiny_models, tmp_path, monkeypatch):
    root = tmp_path / "models"
    community = root / "motion" / "generative-image-dynamics"
    community.mkdir(parents=True)
    (community / "unet_v1.pth").symlink_to(tiny_models / "motion" / "generative-image-dynamics" / "unet_v1.pth")
    (root / "motion" / "tiny_gid_synthesis.safetensors").symlink_to(tiny_models / "motion" / "tiny_gid_synthesis.safetensors")
    (root / "motion" / "tiny_gid_motion.safetensors").symlink_to(tiny_models / "motion" / "tiny_gid_motion.safetensors")
    monkeypatch.setenv("VID4D_MODELS_DIR", str(root))
    msg = Vid4DMotionModelLoader.VALIDATE_INPUTS("generative-image-dynamics")
    assert "lacks fft_std.npy (fltwr's data/labels/fft_std.npy), vqvae/config.json" in msg, msg
    msg = Vid4DMotionModelLoader.VALIDATE_INPUTS("tiny_gid_synthesis.safetensors")
    assert "is a Vid4D synthesis network: load it with Synthesis Model Loader (Vid4D)" in msg, msg
    msg = Vid4DSynthesisModelLoader.VALIDATE_INPUTS("tiny_gid_motion.safetensors")
    assert "is a Vid4D motion model: load it with Motion Model Loader (Vid4D)" in msg, msg
    assert Vid4DMotionModelLoader.VALIDATE_INPUTS("tiny_gid_motion.safetensors") is True
    assert Vid4DSynthesisModelLoader.VALIDATE_INPUTS("tiny_gid_synthesis.safetensors") is True


def test_dot_raft_without_its_weights_is_refused_auto_falls_back(empty_models):
    assert DenseTrack3D.VALIDATE_INPUTS("movi_f_raft_patch_4_alpha.pth", "auto") is True
    msg = DenseTrack3D.VALIDATE_INPUTS("movi_f_raft_patch_4_alpha.pth", "dot_raft")
    assert "model file 'movi_f_raft_patch_4_alpha.pth' not found" in msg and "16lemoing/dot" in msg and "flow_chain" in msg


def test_bad_names_are_refused_not_crashing(tiny_models):
    for loader, args in ((Vid4DGSDiTModelLoader, ("../etc", SAME_FOLDER)), (Vid4DDepthModelLoader, ("/abs/unet", "svd_xt.safetensors")), (Vid4DMotionModelLoader, ("../x.safetensors",))):
        msg = loader.VALIDATE_INPUTS(*args)
        assert isinstance(msg, str) and "must be a path inside the models folder" in msg, msg
