"""Where a pipeline's big networks live while they run and between runs.

A pipeline asks ``with placement.use(module, ...)`` around every use of its large modules (the CogVideoX
transformer, T5, the VAEs, the SVD UNet). :class:`LocalPlacement` is the behaviour without ComfyUI: with
offloading, each module visits the compute device only while it runs. Inside ComfyUI the node layer passes a
placement that loads the modules through ComfyUI's model management instead (``nodes/runtime.py``), so ComfyUI
frees room for them, sees them in its loaded-model list and can offload them for other nodes' models.
No ComfyUI import here.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def is_streamed(module) -> bool:
    """True for a module whose layers accelerate streams from the CPU (``cpu_offload`` hooks): never moved."""
    return hasattr(module, "_hf_hook") or any(hasattr(m, "_hf_hook") for m in module.children())


class LocalPlacement:
    """``offload=False``: modules stay on ``device``. ``offload=True``: each module goes to ``device`` for the
    ``with`` block and back to the CPU after it (the CUDA cache is emptied)."""

    def __init__(self, device, offload: bool = False):
        self.device = torch.device(device)
        self.offload = bool(offload)

    def home(self, module) -> None:
        """Put a freshly loaded module where it waits between uses."""
        if not is_streamed(module):
            module.to("cpu" if self.offload else self.device)

    @contextmanager
    def use(self, *modules, memory_required: int = 0):
        """The modules on the compute device for the block. ``memory_required``: bytes the computation needs
        beyond the weights (used by placements that make room; ignored here)."""
        moved = [m for m in modules if not is_streamed(m)]
        for m in moved:
            m.to(self.device)
        try:
            yield modules[0] if len(modules) == 1 else modules
        finally:
            if self.offload:
                for m in moved:
                    m.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def make_room(self, memory_required: int) -> None:
        """Free ``memory_required`` bytes on the device for a computation (other placements offload other models)."""

    def describe(self) -> str:
        return "each model visits the device while it runs" if self.offload else f"kept on {self.device}"
