"""Network definitions and checkpoint loading (safetensors first). No ComfyUI imports.

One loader per learned model, each reading the official checkpoint layout and raising
:class:`~.loading.ModelNotFoundError` / :class:`~.loading.CheckpointFormatError` with the expected file
and folder in the message. Shared file handling lives in :mod:`.loading`.
"""

from .loading import CheckpointFormatError, ModelNotFoundError

__all__ = ["CheckpointFormatError", "ModelNotFoundError"]
