"""Vid4D — ComfyUI node pack for 4D video control (GS-DiT, Generative Image Dynamics, PointVid, ChronoDepth).

ComfyUI imports this file from ``custom_nodes/<pack>/``; ``pip install -e .`` makes the same folder
importable as ``vid4d``. Importing it is cheap: heavy libraries load inside the nodes that need them.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./js"

__version__ = "0.1.0"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
