"""ComfyUI adapters. Each module lists its node classes; this file merges them for registration."""

from . import gaussians, render, runtime, scene, tracking, video

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

for _module in (video, scene, tracking, gaussians, render):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

runtime.register_model_folders()
