"""Scheduled pinhole cameras: one intrinsic and one extrinsic matrix per frame.

Conventions (see the library contract): OpenCV camera axes (x right, y down, z forward), pixel
centres at integer coordinates with (0, 0) the centre of the top-left pixel, ``world_to_camera`` a
rigid 4x4 transform, intrinsics 3x3 in pixels. Paths made for GS-DiT are relative to the source
camera at frame 0, so the identity pose is the original view.

Cinematic controls (GS-DiT spec, "Cinematic controls"), one module per concern:

- :mod:`.geometry` — :class:`CameraPath` and the pinhole maths (fov → focal, unprojection, poses);
- :mod:`.presets` — the preset registry (:data:`CAMERA_PRESETS`, :data:`PARAMS`) and :func:`camera_path`;
- :mod:`.source` — moves relative to the solved source path (:func:`relative_to_source`: a world path
  on the pseudo field; smoothing and retargeting for the stabilize / transfer presets);
- :mod:`.rig` — :class:`CameraRig` and :func:`camera_rig`, synchronized multi-camera rigs;
- :mod:`.draw` — :func:`draw_camera_path`, a top/side diagram of a path or rig.

The names below are the public contract; import them from ``vid4d.py.camera``.
"""

from .draw import draw_camera_path
from .geometry import CameraPath, centred_intrinsics, focal_from_fov, intrinsics_from_fov, pixel_grid, unproject_pixels
from .presets import (
    CAMERA_PRESETS, EASINGS, PARAMS, PRESETS, Computed, Motion, Move, Param, Preset, camera_move, camera_path, ease, get_preset, param_users, preset_table,
)
from .rig import CameraRig, as_path_list, camera_rig
from .source import in_source_view, relative_to_source

__all__ = [
    "CAMERA_PRESETS", "EASINGS", "PARAMS", "PRESETS", "CameraPath", "CameraRig", "Computed", "Motion", "Move", "Param", "Preset",
    "as_path_list", "camera_move", "camera_path", "camera_rig", "centred_intrinsics", "draw_camera_path", "ease", "focal_from_fov", "get_preset",
    "intrinsics_from_fov", "param_users", "pixel_grid", "preset_table", "relative_to_source",
    "in_source_view", "unproject_pixels",
]
