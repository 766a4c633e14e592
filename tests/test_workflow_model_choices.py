"""The shipped GS-DiT / ChronoDepth workflows, opened by a user who already has model files: every loader's dropdowns
list those files (ComfyUI's own folders, the legacy ``clip/``, and ``extra_model_paths.yaml`` entries), the values the
workflow was saved with are among the choices, and the server's ``VALIDATE_INPUTS`` accepts them.

Two checks: with the ``fake_comfy`` stand-in for ``folder_paths`` (CI), and with ComfyUI's *real* ``folder_paths`` and
``utils/extra_config.py`` from the harness checkout (skipped when it is absent), in a fresh ComfyUI base directory.
"""

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

import vid4d

from conftest import ROOT
from workflow_loaders import check_workflow

LOADER_WORKFLOWS = ("gsdit_full.json", "gsdit_multicam_generate.json", "chronodepth_video_depth.json")
HARNESS_COMFY = Path(os.environ.get("COMFY_HARNESS_COMFYUI", Path.home() / ".cache" / "comfy-harness" / "comfyui"))
HARNESS_PYTHON = Path(os.environ.get("COMFY_HARNESS_VENV", Path.home() / ".cache" / "comfy-harness" / "venv")) / "bin" / "python"


USER_GSDIT = {"CogVideoX-5b-I2V", "CogVideoX-2b", "cogvideox_2b_bf16.safetensors", "cogvideox_2b_fp8_e4m3fn.safetensors"}
USER_T5 = {"t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors"}


def assert_user_files_listed(reports: dict) -> None:
    for workflow, report in reports.items():
        assert report, f"{workflow}: no model loader found"
        for node_type, r in report.items():
            assert r["not_choices"] == {}, (workflow, node_type, r["not_choices"])
            assert r["validate"] is True, (workflow, node_type, r["validate"])
            if node_type == "Vid4DGSDiTModelLoader":
                assert USER_GSDIT <= set(r["choices"]["model"]), r["choices"]["model"]
                assert USER_T5 <= set(r["choices"]["text_encoder"]), r["choices"]["text_encoder"]
                assert "cogvideox_vae_bf16.safetensors" in r["choices"]["vae"]
            if node_type == "Vid4DDepthModelLoader":
                assert {"ChronoDepth-v1", "chronodepth_v1_fp16.safetensors"} <= set(r["choices"]["unet"]), r["choices"]["unet"]
                assert "svd_xt.safetensors" in r["choices"]["base"]


def test_shipped_workflows_list_the_users_files(tiny_models, fake_comfy, tmp_path):
    """ComfyUI's folders registered as the server has them (an extra text_encoders folder from extra_model_paths.yaml)."""
    fp = fake_comfy.folder_paths
    extra = tmp_path / "elsewhere" / "t5"
    extra.mkdir(parents=True)
    (extra / "t5xxl_fp8_e4m3fn.safetensors").symlink_to(tiny_models / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors")
    clip = tmp_path / "clip"  # ComfyUI's legacy models/clip/, part of text_encoders
    clip.mkdir()
    (clip / "t5xxl_fp16.safetensors").symlink_to(tiny_models / "text_encoders" / "t5xxl_fp16.safetensors")
    for name in ("diffusion_models", "vae", "checkpoints"):
        fp.add_model_folder_path(name, str(tiny_models / name))
    fp.add_model_folder_path("text_encoders", str(clip))
    fp.add_model_folder_path("text_encoders", str(extra))
    fp.add_model_folder_path("vid4d_gsdit", str(tiny_models / "gsdit"))
    fp.add_model_folder_path("vid4d_depth", str(tiny_models / "depth"))
    fp.get_filename_list = lambda name: sorted({p.relative_to(d).as_posix() for d in map(Path, fp.get_folder_paths(name)) for p in d.rglob("*.safetensors")})
    reports = {w: check_workflow(w, vid4d.NODE_CLASS_MAPPINGS) for w in LOADER_WORKFLOWS}
    assert_user_files_listed(reports)
    print({w: {t: r["saved"] for t, r in rep.items()} for w, rep in reports.items()})


REAL_FOLDERS = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, os.environ["COMFY_DIR"])
    import comfy.cli_args
    comfy.cli_args.args.base_directory = os.environ["BASE"]  # a fresh ComfyUI base: its models/ is the user's
    import folder_paths
    from utils.extra_config import load_extra_path_config
    load_extra_path_config(os.environ["EXTRA_YAML"])  # what main.py does before it imports custom nodes
    sys.path.insert(0, os.environ["PKG_DIR"])
    sys.path.insert(0, os.environ["TESTS_DIR"])
    import vid4d  # the server's import of the pack: registers models/vid4d/<kind>
    from workflow_loaders import check_workflow
    reports = {w: check_workflow(w, vid4d.NODE_CLASS_MAPPINGS) for w in json.loads(os.environ["WORKFLOWS"])}
    # the user's own single files, from the extra folders, with ComfyUI's tokenizer copy
    from vid4d.nodes.gsdit import SAME_FOLDER, Vid4DGSDiTModelLoader
    single = Vid4DGSDiTModelLoader.VALIDATE_INPUTS("cogvideox_2b_fp8_e4m3fn.safetensors", SAME_FOLDER, "t5xxl_fp8_e4m3fn.safetensors", "cogvideox_vae_bf16.safetensors")
    paths = {k: folder_paths.get_folder_paths(k) for k in ("text_encoders", "diffusion_models", "vid4d_gsdit")}
    print(json.dumps({"reports": reports, "single_files": single, "paths": paths}, default=str))
    """
)


@pytest.mark.skipif(not (HARNESS_COMFY / "folder_paths.py").is_file() or not HARNESS_PYTHON.is_file(), reason="no ComfyUI harness checkout (~/.cache/comfy-harness)")
def test_real_folder_paths_and_extra_model_paths_fill_the_workflow_dropdowns(tiny_models_root, tmp_path, capsys):
    tiny = tiny_models_root
    base, elsewhere = tmp_path / "ComfyUI", tmp_path / "elsewhere"
    links = {
        base / "models" / "vid4d" / "gsdit" / "CogVideoX-5b-I2V": tiny / "gsdit" / "CogVideoX-5b-I2V",
        base / "models" / "vid4d" / "depth" / "ChronoDepth-v1": tiny / "depth" / "ChronoDepth-v1",
        base / "models" / "checkpoints" / "svd_xt.safetensors": tiny / "checkpoints" / "svd_xt.safetensors",
        base / "models" / "unet" / "chronodepth_v1_fp16.safetensors": tiny / "diffusion_models" / "chronodepth_v1_fp16.safetensors",
        base / "models" / "diffusion_models" / "cogvideox_2b_bf16.safetensors": tiny / "diffusion_models" / "cogvideox_2b_bf16.safetensors",
        base / "models" / "vae" / "cogvideox_vae_bf16.safetensors": tiny / "vae" / "cogvideox_vae_bf16.safetensors",
        base / "models" / "clip" / "t5xxl_fp16.safetensors": tiny / "text_encoders" / "t5xxl_fp16.safetensors",
        elsewhere / "t5" / "t5xxl_fp8_e4m3fn.safetensors": tiny / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors",
        elsewhere / "video" / "cogvideox_2b_fp8_e4m3fn.safetensors": tiny / "diffusion_models" / "cogvideox_2b_fp8_e4m3fn.safetensors",
        elsewhere / "cogvideo" / "CogVideoX-2b": tiny / "gsdit" / "CogVideoX-2b",
    }
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    yaml = tmp_path / "extra_model_paths.yaml"
    yaml.write_text(f"other_disk:\n  base_path: {elsewhere}\n  text_encoders: t5/\n  diffusion_models: video/\n  vid4d_gsdit: cogvideo/\n")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "vid4d").symlink_to(Path(vid4d.__file__).resolve().parent)
    env = {k: v for k, v in os.environ.items() if k != "VID4D_MODELS_DIR"}
    env.update(COMFY_DIR=str(HARNESS_COMFY), BASE=str(base), EXTRA_YAML=str(yaml), PKG_DIR=str(pkg), TESTS_DIR=str(ROOT / "tests"), WORKFLOWS=json.dumps(LOADER_WORKFLOWS))
    run = subprocess.run([str(HARNESS_PYTHON), "-c", REAL_FOLDERS], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert_user_files_listed(out["reports"])
    assert out["single_files"] is True, out["single_files"]
    assert str(elsewhere / "t5") in out["paths"]["text_encoders"] and str(base / "models" / "clip") in out["paths"]["text_encoders"]
    with capsys.disabled():
        gs = out["reports"]["gsdit_full.json"]["Vid4DGSDiTModelLoader"]["choices"]
        print(f"\n  real folder_paths + extra_model_paths.yaml: GS-DiT model choices {gs['model']}, text_encoder {gs['text_encoder']}, vae {gs['vae']}")


def test_comfyuis_tokenizer_copy_is_found_in_its_namespace_package(fake_comfy, tmp_path, monkeypatch):
    """ComfyUI's ``comfy`` has no __init__.py: the copy of the T5 tokenizer is found through ``comfy.__path__``."""
    from vid4d.nodes import runtime

    folder = tmp_path / "ComfyUI" / "comfy" / "text_encoders" / "t5_tokenizer"
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text("{}")
    comfy = fake_comfy.mm.__class__("comfy")  # a namespace package: __path__, no __file__
    comfy.__path__ = [str(tmp_path / "ComfyUI" / "comfy")]
    monkeypatch.setitem(__import__("sys").modules, "comfy", comfy)
    assert runtime.t5_tokenizer_dir() == folder
