"""Local check of the Wan workflows in a real ComfyUI (not CI: it imports ComfyUI from a checkout at run time).

Run with the harness venv (../shared/tools/comfy_harness), from the pack's checkout::

    ~/.cache/comfy-harness/venv/bin/python tests/tools/wan_harness.py OUT [--comfyui ~/.cache/comfy-harness/comfyui]

It writes into OUT:

- ``models/``: ComfyUI's folders with tiny random-weight models built from ComfyUI's own classes and saved
  as the Comfy-Org repackaged files are (no key prefix): ``diffusion_models/wan2.1_vace_1.3B_fp16.safetensors``
  (``comfy.ldm.wan.model.VaceWanModel``: dim 128, 2 blocks, 1 VACE block), ``wan2.1_t2v_1.3B_fp16.safetensors``
  (``WanModel``), ``vae/wan_2.1_vae.safetensors`` (``comfy.ldm.wan.vae.WanVAE`` at its real size: ComfyUI builds
  the Wan 2.1 VAE from a fixed config, 127 M parameters, random weights), Vid4D's tiny ChronoDepth + svd_xt
  (tests/tiny_chronodepth.py) under ``vid4d/depth`` and ``checkpoints``, and ``text_encoders/
  umt5_xxl_fp8_e4m3fn_scaled.safetensors`` as a *placeholder* (see below);
- ``input/vid4d_input.mp4``: the sample scene as a clip;
- ``small/*.json``: the shipped Wan workflows shrunk (64x64, a few frames and steps) with the text encoder
  replaced by ``HarnessWanText`` (``tests/tools/comfy_test_nodes``): the rest of each graph is the shipped one.

and checks, against ComfyUI's own code, that WanVaceToVideo turns the bridge's ``control_masks`` into exactly
its ``latent_mask`` and that ``comfy.utils.reshape_mask`` (what KSampler does to a SetLatentNoiseMask mask)
passes ``latent_mask`` unchanged.

The umt5 text encoder cannot be tiny: ``CLIPLoader`` type ``wan`` always builds UMT5-XXL from ComfyUI's
``comfy/text_encoders/umt5_config_xxl.json`` (24 layers, d_model 4096, 5.7 B parameters) whatever the file
holds, and the Wan model's ``text_embedding`` takes 4096 features, so no smaller encoder fits either. The
placeholder file makes the shipped workflows validate; the runs use the stand-in conditioning node.
Then run (printed at the end)::

    python3 ../shared/tools/comfy_harness/run_workflow.py . workflows/gsdit_wan_vace.json --models-dir OUT/models --input OUT/input/vid4d_input.mp4 --timeout 120
    python3 ../shared/tools/comfy_harness/run_workflow.py . OUT/small --models-dir OUT/models --input OUT/input/vid4d_input.mp4 --extra-pack tests/tools/comfy_test_nodes --timeout 1800
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
from pathlib import Path

import torch

PACK = Path(__file__).resolve().parents[2]
WORKFLOWS = ("gsdit_wan_vace", "gsdit_wan_inpaint", "gsdit_wan_vace_long")
TINY_WAN = dict(dim=128, ffn_dim=256, num_heads=1, num_layers=2, text_dim=4096, freq_dim=256, in_dim=16, out_dim=16)


def _import_pack():
    spec = importlib.util.spec_from_file_location("vid4d", PACK / "__init__.py", submodule_search_locations=[str(PACK)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["vid4d"] = module
    spec.loader.exec_module(module)
    return module


def _init_weights(model: torch.nn.Module, seed: int) -> None:
    """ComfyUI's layers skip initialisation (weights are loaded later) and some parameters are bare
    ``torch.empty`` (Wan's ``modulation``): give layers torch's default init, the rest N(0, 0.02²) (norm
    scales 1), seeded."""
    torch.manual_seed(seed)
    done = set()
    for module in model.modules():
        for base in type(module).__mro__:
            if base.__module__.startswith("torch.nn.modules") and "reset_parameters" in base.__dict__:
                base.reset_parameters(module)
                done.update(id(p) for p in module.parameters(recurse=False))
                break
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) not in done:
                p.copy_(torch.ones_like(p) if "norm" in name or "gamma" in name else torch.randn_like(p) * 0.02)
    assert all(bool(p.isfinite().all()) for p in model.parameters())


def _save(model: torch.nn.Module, path: Path, dtype) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}, str(path))
    print(f"wrote {path} ({sum(v.numel() for v in model.state_dict().values()) / 1e6:.1f} M parameters)")


def build_models(models: Path) -> None:
    import comfy.ops
    from comfy.ldm.wan.model import VaceWanModel, WanModel
    from comfy.ldm.wan.vae import WanVAE

    ops = comfy.ops.disable_weight_init
    vace = VaceWanModel(**TINY_WAN, vace_layers=1, vace_in_dim=96, operations=ops)
    _init_weights(vace, 0)
    _save(vace, models / "diffusion_models" / "wan2.1_vace_1.3B_fp16.safetensors", torch.float16)
    t2v = WanModel(**TINY_WAN, operations=ops)
    _init_weights(t2v, 1)
    _save(t2v, models / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors", torch.float16)
    # ComfyUI's Wan 2.1 VAE config (comfy/sd.py): dim 96, z 16, mult 1 2 4 4, 2 res blocks, time down F T T.
    vae = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
    _init_weights(vae, 2)
    _save(vae, models / "vae" / "wan_2.1_vae.safetensors", torch.float32)
    from safetensors.torch import save_file

    te = models / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
    te.parent.mkdir(parents=True, exist_ok=True)
    save_file({"placeholder": torch.zeros(1)}, str(te), metadata={"vid4d": "placeholder: the umt5-xxl encoder cannot be built tiny"})
    print(f"wrote {te} (placeholder, for validation only)")
    sys.path.insert(0, str(PACK / "tests"))
    import tiny_chronodepth

    staging = models / "_vid4d"
    tiny_chronodepth.build(staging)
    for src, dst in ((staging / "depth", models / "vid4d" / "depth"), (staging / "checkpoints", models / "checkpoints")):
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            src.rename(dst)
    print(f"wrote {models / 'vid4d' / 'depth'} and {models / 'checkpoints'} (tiny ChronoDepth + svd_xt)")


def write_input(folder: Path) -> Path:
    from vid4d.py.scene import sample_scene
    from vid4d.py.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vid4d_input.mp4"
    write_video(sample_scene(24, 64, 64, seed=1).frames, path, 16.0)
    return path


def small_variant(ui: dict, name: str) -> dict:
    """The shipped workflow at test size, with CLIPTextEncode swapped for the stand-in conditioning."""
    ui = copy.deepcopy(ui)
    by_type = {}
    for node in ui["nodes"]:
        by_type.setdefault(node["type"], []).append(node)
    w = lambda t: by_type[t][0]["widgets_values"]  # noqa: E731
    w("Vid4DLoadVideo")[3:6] = [21 if name.endswith("long") else 9, 64, 64]
    w("VideoDepth")[:5] = [2, 4, 2, "context", 64]
    w("Vid4DDepthModelLoader")[2] = "fp32"
    for n in by_type.get("KSampler", []):
        n["widgets_values"][2:4] = [2, 2.0]
    for n in by_type.get("Vid4DWindowedSampler", []):
        n["widgets_values"][3:5] = [2, 2.0]  # steps, cfg (after method, seed and its control value)
        n["widgets_values"][13:15] = [9, 5]  # window_length, overlap: 21 frames -> 4 windows
    drop = {n["id"] for n in by_type["CLIPLoader"]}
    for n in by_type["CLIPTextEncode"]:
        n["type"] = "HarnessWanText"
        n["inputs"] = [i for i in n.get("inputs", []) if i["name"] != "clip"]
        n["properties"]["Node name for S&R"] = "HarnessWanText"
    ui["nodes"] = [n for n in ui["nodes"] if n["id"] not in drop]
    ui["links"] = [l for l in ui["links"] if l[1] not in drop]
    return ui


def check_contracts() -> None:
    """Our masks through ComfyUI's own WanVaceToVideo and reshape_mask."""
    import comfy.utils
    from comfy_extras.nodes_wan import WanVaceToVideo

    from vid4d.py import video_model as vm

    class FakeVAE:  # WanVaceToVideo only needs the encoded shapes here
        def encode(self, x):
            t, h, w = x.shape[:3]
            return torch.zeros(1, 16, (t - 1) // 4 + 1, h // 8, w // 8)

    g = torch.Generator().manual_seed(0)
    for length in (9, 33, 81):
        gen = (torch.rand(length, 32, 48, generator=g) < 0.004).float()
        win = vm.Window(0, 0, length, 0)
        out = vm.prepare_window(torch.rand(length, 32, 48, 3, generator=g), gen, vm.video_model("wan2.1"), win)
        cond = [[torch.zeros(1, 4, 4096), {}]]
        res = WanVaceToVideo.execute(cond, cond, FakeVAE(), 48, 32, length, 1, 1.0, control_video=out.control_video, control_masks=out.control_mask)
        vace_mask = res.args[0][0][1]["vace_mask"][0][0]  # [64, F, h, w]
        assert torch.equal(vace_mask, out.latent_mask[None].expand(64, -1, -1, -1)), f"WanVaceToVideo's mask differs from latent_mask at {length} frames"
        assert torch.equal(comfy.utils.reshape_mask(out.latent_mask, (1, 16, *out.latent_mask.shape)), out.latent_mask[None, None].expand(1, 16, -1, -1, -1))
    print("contracts: WanVaceToVideo's vace_mask == latent_mask (9, 33, 81 frames); reshape_mask(latent_mask) is the identity")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--comfyui", type=Path, default=Path("~/.cache/comfy-harness/comfyui").expanduser())
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.comfyui))
    sys.argv = [sys.argv[0], "--cpu"]  # ComfyUI reads its flags when comfy.model_management is imported
    import comfy.options

    comfy.options.enable_args_parsing()
    _import_pack()
    out = args.out.resolve()
    check_contracts()
    build_models(out / "models")
    clip = write_input(out / "input")
    (out / "small").mkdir(parents=True, exist_ok=True)
    for name in WORKFLOWS:
        ui = json.loads((PACK / "workflows" / f"{name}.json").read_text())
        (out / "small" / f"{name}_small.json").write_text(json.dumps(small_variant(ui, name), indent=1))
    h = "python3 ../shared/tools/comfy_harness/run_workflow.py"
    print(f"\nvalidate the shipped workflows:\n  {h} {PACK} " + " ".join(f"{PACK}/workflows/{n}.json" for n in WORKFLOWS) + f" --models-dir {out}/models --input {clip} --timeout 120")
    print(f"run them at test size:\n  {h} {PACK} {out}/small --models-dir {out}/models --input {clip} --extra-pack {PACK}/tests/tools/comfy_test_nodes --timeout 1800")
    return 0


if __name__ == "__main__":
    sys.exit(main())
