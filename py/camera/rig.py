"""Multi-camera rigs: N synchronized cameras on an arc around the subject (GS-DiT's multi-camera shooting)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import check_finite_number, check_positive_int
from .geometry import POSE_DTYPE, CameraPath, base_intrinsics, check_positive, orbit_pose, pose_matrices


@dataclass
class CameraRig:
    """N synchronized cameras: one :class:`CameraPath` each, all with the same frame count and image size.

    :func:`camera_rig` returns a plain ``list[CameraPath]``; ``CameraRig(camera_rig(...))`` wraps it
    with this validation when a single object has to travel (e.g. between nodes).
    """

    paths: list[CameraPath]

    def __post_init__(self):
        if isinstance(self.paths, tuple):
            self.paths = list(self.paths)
        if not isinstance(self.paths, list) or not self.paths:
            raise ValueError(f"CameraRig.paths: expected a non-empty list of CameraPath, got {self.paths!r:.80}")
        for i, path in enumerate(self.paths):
            if not isinstance(path, CameraPath):
                raise ValueError(f"CameraRig.paths[{i}]: expected a CameraPath, got {type(path).__name__}")
        first = self.paths[0]
        for i, path in enumerate(self.paths[1:], start=1):
            if (path.num_frames, path.width, path.height) != (first.num_frames, first.width, first.height):
                raise ValueError(
                    f"CameraRig.paths[{i}]: expected {first.num_frames} frames of {first.width}x{first.height} like paths[0], "
                    f"got {path.num_frames} frames of {path.width}x{path.height}"
                )

    @property
    def num_frames(self) -> int:
        return self.paths[0].num_frames

    @property
    def width(self) -> int:
        return self.paths[0].width

    @property
    def height(self) -> int:
        return self.paths[0].height

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self):
        return iter(self.paths)

    def __getitem__(self, index: int) -> CameraPath:
        return self.paths[index]

    def to(self, device=None, dtype: torch.dtype | None = None) -> "CameraRig":
        """A copy with every path on ``device``; ``dtype`` converts floating fields only."""
        return CameraRig([p.to(device, dtype) for p in self.paths])


def camera_rig(
    num_cameras: int,
    num_frames: int,
    width: int,
    height: int,
    *,
    arc_angle: float = 30.0,
    focus_depth: float = 3.0,
    base: CameraPath | None = None,
    **camera_params,
) -> list[CameraPath]:
    """``num_cameras`` synchronized cameras on a horizontal arc around F = (0, 0, ``focus_depth``).

    Camera k (k = 0..N−1) sits at yaw offset −arc/2 + k·arc/(N−1) degrees (N = 1: the centre, 0°) on
    the circle of radius ``focus_depth`` around F, looking at F, with the orbit sign convention: +
    = to the right of the source camera (+x), so camera 0 is the leftmost. Its rig pose O_k is the
    orbit pose at that yaw (``world_to_camera`` 4x4).

    Without ``base`` every camera holds its pose for all ``num_frames`` (multi-camera shooting of one
    moment: each camera sees every frame). With ``base`` (a :class:`CameraPath` of ``num_frames``
    frames and this ``width`` x ``height``), camera k performs the base move starting from its own rig
    pose: ``world_to_camera[k, t] = base.world_to_camera[t] @ O_k`` (O_k applied first). Because base
    paths are defined relative to the view they start from, an orbit or dolly zoom base makes every
    rig camera orbit or dolly-zoom around the same F. Intrinsics then come from ``base``; otherwise
    from ``camera_params`` (``fov``, ``focal`` or ``intrinsics``, as in :func:`camera_path`).

    Returns:
        ``list[CameraPath]`` (wrap in :class:`CameraRig` for a validated single object).
    """
    num_cameras = check_positive_int("num_cameras", num_cameras, maximum=256)
    num_frames = check_positive_int("num_frames", num_frames, maximum=10000)
    width = check_positive_int("width", width, maximum=16384)
    height = check_positive_int("height", height, maximum=16384)
    arc_angle = check_finite_number("arc_angle", arc_angle, low=0.0, high=360.0)
    focus_depth = check_positive("focus_depth", focus_depth)
    unknown = sorted(set(camera_params) - {"fov", "focal", "intrinsics"})
    if unknown:
        raise ValueError(f"{unknown[0]}: not a parameter of camera_rig; accepted: arc_angle, focus_depth, base, fov, focal, intrinsics")

    if base is not None:
        if not isinstance(base, CameraPath):
            raise ValueError(f"base: expected a CameraPath, got {type(base).__name__}")
        if (base.num_frames, base.width, base.height) != (num_frames, width, height):
            raise ValueError(
                f"base: expected a CameraPath of {num_frames} frames at {width}x{height}, "
                f"got {base.num_frames} frames at {base.width}x{base.height}"
            )
        given = sorted(k for k, v in camera_params.items() if v is not None)
        if given:
            raise ValueError(f"{given[0]}: the rig uses base's intrinsics; pass either base or {given[0]}, not both")
        k = base.intrinsics.detach().to("cpu", POSE_DTYPE)
        motion = base.world_to_camera.detach().to("cpu", POSE_DTYPE)
    else:
        k = base_intrinsics(width, height, **camera_params).expand(num_frames, 3, 3)
        motion = torch.eye(4, dtype=POSE_DTYPE).expand(num_frames, 4, 4)

    if num_cameras == 1:
        yaws = torch.zeros(1, dtype=POSE_DTYPE)
    else:
        yaws = torch.linspace(-arc_angle / 2, arc_angle / 2, num_cameras, dtype=POSE_DTYPE)
    rot, centre = orbit_pose(yaws, torch.zeros_like(yaws), focus_depth)
    offsets = pose_matrices(rot, centre)  # [N, 4, 4]
    return [CameraPath(k.float().clone(), (motion @ offsets[i]).float(), width, height) for i in range(num_cameras)]


def as_path_list(paths) -> list[CameraPath]:
    """The cameras of a CameraPath, a CameraRig or a non-empty list of CameraPath, as a list."""
    if isinstance(paths, CameraPath):
        return [paths]
    if isinstance(paths, CameraRig):
        return list(paths.paths)
    if isinstance(paths, (list, tuple)) and paths and all(isinstance(p, CameraPath) for p in paths):
        return list(paths)
    raise ValueError(f"paths: expected a CameraPath, a CameraRig or a non-empty list of CameraPath, got {type(paths).__name__}")

