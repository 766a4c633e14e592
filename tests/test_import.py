"""The pack imports fast and light, as ComfyUI and as `vid4d`."""

import importlib.util
import json
import subprocess
import sys

from conftest import ROOT

HEAVY = ["diffusers", "transformers", "gsplat", "cv2", "av", "PIL", "scipy", "matplotlib", "comfy", "folder_paths"]


def _modules_after(code: str) -> list[str]:
    script = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd="/")
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_vid4d_loads_no_heavy_dependency():
    assert _modules_after("import vid4d; assert len(vid4d.NODE_CLASS_MAPPINGS) >= 3") == []


def test_import_as_comfyui_custom_node_without_comfyui():
    # ComfyUI (nodes.load_custom_node) imports the folder's __init__.py under its path as module name.
    code = f"""
import importlib.util, sys
name = {str(ROOT)!r}.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(name, {str(ROOT / '__init__.py')!r})
mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod; spec.loader.exec_module(mod)
assert mod.WEB_DIRECTORY == "./js" and "Vid4DLoadVideo" in mod.NODE_CLASS_MAPPINGS
"""
    assert _modules_after(code) == []


def test_loading_as_comfyui_registers_model_folders(fake_comfy):
    name = "/comfy/custom_nodes/vid4d_test_pack"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        assert "Vid4DSaveVideo" in module.NODE_CLASS_MAPPINGS
    finally:
        for mod in [n for n in sys.modules if n.startswith(name)]:
            del sys.modules[mod]
    folders = fake_comfy.folder_paths.folder_names_and_paths
    for kind in ("tracking", "depth", "gsdit", "motion"):
        paths, exts = folders[f"vid4d_{kind}"]
        assert paths[0].endswith(f"models/vid4d/{kind}")
        assert ".safetensors" in exts


def test_web_directory_holds_only_extensions():
    js = sorted(p.name for p in (ROOT / "js").rglob("*") if p.is_file())
    assert js and all(name.endswith(".js") for name in js)
    text = (ROOT / "js" / "vid4d.js").read_text()
    assert "registerExtension" in text and "serialize = false" in text
