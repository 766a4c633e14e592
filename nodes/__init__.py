"""ComfyUI adapters. Each module lists its node classes; this file merges them for registration."""

from . import camera, depth, exchange, gaussians, gsdit, points, render, runtime, scene, solve, spectral, splat, tracking, video, video_model
from .common import check_once

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

for _module in (video, scene, tracking, gaussians, camera, render, gsdit, spectral, splat, depth, points, solve, exchange, video_model):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

# One validation scope per node call: a tensor a node checked is not scanned again on its way (py/checks.py).
for _node in NODE_CLASS_MAPPINGS.values():
    check_once(_node)

runtime.register_model_folders()

# The browser preview's route (POST /vid4d/camera_path); a no-op unless ComfyUI's server is running.
from . import preview as _preview  # noqa: E402

_preview.register_routes(camera.ROUTES)
