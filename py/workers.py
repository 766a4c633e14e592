"""Worker threads that keep the caller's autograd state.

torch's inference mode and grad mode are thread-local: a job on a fresh thread runs with grad on and
inference mode off whatever the caller had. ComfyUI runs every node under ``torch.inference_mode()``,
so its tensors are inference tensors, and a worker thread outside inference mode may not update them in
place ("Inplace update to inference tensor outside InferenceMode") — every library loop that spreads
work over threads would fail inside ComfyUI and nowhere else. :class:`Pool` runs each job under the
submitting thread's modes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch


class Pool(ThreadPoolExecutor):
    """A :class:`~concurrent.futures.ThreadPoolExecutor` whose jobs (``submit`` and ``map``) run under the
    inference mode and grad mode of the thread that submitted them."""

    def submit(self, fn, /, *args, **kwargs):
        inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

        def job():
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                return fn(*args, **kwargs)

        return super().submit(job)
