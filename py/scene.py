"""The built-in procedural sample scene: a textured 3D set, a spinning ball and a moving camera.

Everything is analytic, so the ground truth (depth, camera, dense 3D tracks with occlusion, optical
flow) is exact to float precision; every feature of the pack is tested against it and it is the demo
input of the nodes. Nothing is loaded from disk.

Layout (world frame = the camera at frame 0; OpenCV axes: x right, y down, z forward; units ~metres):

- back wall: the plane z = 7 facing the camera; floor: the plane y = +1 (y is down);
- static box: x in [-2.0, -1.0], y in [-0.5, 1.0] (standing on the floor), z in [4.8, 5.8];
- moving ball: radius 0.55, centre (-2.0, 0.2, 3.9) → (1.6, 0.2, 3.6), hovering, bobbing up 0.12 mid-clip; it
  enters from the left, passes in front of the box (occluding then revealing it) and spins 225° about
  its own vertical axis;
- camera: trucks right 0.8, rises 0.12 and dollies forward 0.4 while yawing 3° left and pitching up
  to 2.5° and back, so static surfaces move too (over the clip at 256 px: the wall ~15 px, the near floor ~60 px).

Motion is parametrised by the clip phase ``s = t / (T - 1)`` in [0, 1], so any frame count shows the
whole story; ``fps`` only sets the nominal time base.

Textures are smooth (sums of sinusoids, soft checkers with ``tanh`` edges, colour gradients) so the
imagery is trackable by optical flow and free of aliasing-prone hard edges; the static surfaces are
textured in world coordinates and the ball in its own object coordinates, so its spin is visible.
Shading is a fixed-light Lambert term ``0.7 + 0.3 max(0, n·l)`` (view independent, so static surfaces
keep their colour while the camera moves). One ray per pixel, through the pixel centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .camera import CameraPath, intrinsics_from_fov, pixel_grid
from .checks import TensorData, check_finite_number, check_positive_int, check_tensor
from .depth import DepthVideo
from .tracking import Tracks3D

# --- scene layout (world units; see the module docstring) -------------------------------------------
_FOV_DEGREES = 60.0  # horizontal
_WALL_Z = 7.0
_FLOOR_Y = 1.0
_BOX_MIN = (-2.0, -0.5, 4.8)
_BOX_MAX = (-1.0, 1.0, 5.8)
_BALL_RADIUS = 0.55
_BALL_START = (-2.0, 0.2, 3.9)
_BALL_END = (1.6, 0.2, 3.6)
_BALL_BOB = 0.12  # rises by this much mid-clip (y is down)
_BALL_SPIN = 1.25 * math.pi  # total spin about its vertical axis over the clip
_CAMERA_END = (0.8, -0.12, 0.4)  # camera centre at the last frame (frame 0 at the origin)
_CAMERA_YAW = -math.radians(3.0)  # at the last frame; negative = turn left
_CAMERA_PITCH = math.radians(2.5)  # peak mid-clip; positive = look up
_LIGHT = (-0.4, -1.0, -0.5)  # towards the light: from the upper left, in front of the set

# Primitive ids returned by the ray caster.
_WALL, _FLOOR, _BOX, _BALL = 0, 1, 2, 3

_VIS_RTOL = 1e-4  # a track is visible when the nearest hit along its pixel's ray is at its depth
_EPS = 1e-9  # ray hits closer than this are ignored (behind or at the origin)

_DT = torch.float64  # all geometry in double precision; outputs are float32


@dataclass
class SampleScene(TensorData):
    """A rendered sample clip with exact ground truth.

    Attributes:
        frames: ``[T, H, W, 3]`` float32 RGB in 0..1.
        depth: ``[T, H, W]`` float32 camera-space z, > 0 everywhere (the back wall closes the view).
        camera: the source camera per frame (``T`` frames, ``width`` x ``height``); frame 0 is the identity pose.
        object_mask: ``[T, H, W]`` bool, the pixels showing the moving ball.
        fps: nominal frame rate.
        seed: the texture seed the frames were rendered with.
    """

    frames: torch.Tensor
    depth: torch.Tensor
    camera: CameraPath
    object_mask: torch.Tensor
    fps: float
    seed: int

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("SampleScene.frames", self.frames, ("T", "H", "W", 3), dims=dims)
        check_tensor("SampleScene.depth", self.depth, ("T", "H", "W"), dims=dims)
        check_tensor("SampleScene.object_mask", self.object_mask, ("T", "H", "W"), kind="bool", dims=dims)
        if (self.camera.num_frames, self.camera.height, self.camera.width) != (dims["T"], dims["H"], dims["W"]):
            raise ValueError(
                f"SampleScene.camera: expected {dims['T']} frames of {dims['W']}x{dims['H']}, "
                f"got {self.camera.num_frames} of {self.camera.width}x{self.camera.height}"
            )

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def intrinsics(self) -> torch.Tensor:
        """``[3, 3]`` pinhole matrix (the same every frame)."""
        return self.camera.intrinsics[0]

    def tracks(self, ref_frame: int = 0) -> Tracks3D:
        """Exact dense 3D tracks of every pixel of ``ref_frame``.

        Each pixel's ray is cast in frame ``ref_frame``; the surface point it hits is carried (rigidly with
        the ball when it hits the ball) to every frame t and projected by camera t. ``visibility[t]`` is
        True where that projection is inside the image, in front of the camera, and the nearest surface
        along the ray through it is the point itself (relative depth tolerance 1e-4), so occlusion by
        other surfaces and the ball's far side both count as hidden.

        Returns:
            :class:`Tracks3D` with ``uv [T, H, W, 2]``, ``depth [T, H, W]``, bool ``visibility [T, H, W]``;
            at ``t = ref_frame`` uv is the pixel grid exactly, depth the rendered depth, all visible.
        """
        ref_frame = self._frame_index("ref_frame", ref_frame)
        uv, depth, visible = self._follow(ref_frame, list(range(self.num_frames)))
        t, h, w = self.num_frames, self.height, self.width
        device = self.depth.device
        return Tracks3D.from_checked(
            uv=uv.reshape(t, h, w, 2).to(device),
            depth=depth.reshape(t, h, w).to(device),
            visibility=visible.reshape(t, h, w).to(device),
            intrinsics=self.intrinsics.clone(),
            ref_frame=ref_frame,
        )

    def flow(self, src: int, dst: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact optical flow from frame ``src`` to frame ``dst``.

        Returns:
            ``flow [H, W, 2]``: displacement (dx, dy) in pixels of each pixel of ``src`` to where its surface
            point projects in ``dst``; ``valid [H, W]`` bool: that point is visible in ``dst``
            (same rule as :meth:`tracks`).
        """
        src = self._frame_index("src", src)
        dst = self._frame_index("dst", dst)
        uv, _, visible = self._follow(src, [dst])
        h, w = self.height, self.width
        grid = pixel_grid(h, w)
        device = self.depth.device
        return (uv[0].reshape(h, w, 2) - grid).to(device), visible[0].reshape(h, w).to(device)

    def depth_video(self) -> DepthVideo:
        """The exact depth as a metric :class:`DepthVideo`."""
        return DepthVideo.from_checked(self.depth, kind="metric")

    # --- internals ---------------------------------------------------------------------------------

    def _frame_index(self, name: str, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.num_frames:
            raise ValueError(f"{name}: expected a frame index in [0, {self.num_frames}), got {value!r}")
        return value

    def _follow(self, ref: int, frames: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Track the pixels of frame ``ref`` into ``frames``: uv ``[F, N, 2]``, depth ``[F, N]``, visible ``[F, N]``.

        Computed on the CPU in float64 from the analytic scene (not from the stored float32 tensors).
        """
        t_all, h, w = self.num_frames, self.height, self.width
        k = self.camera.intrinsics[0].detach().to("cpu", _DT)
        cam_rot, cam_pos = _camera_poses(t_all)
        ball_rot, ball_pos = _ball_poses(t_all)
        grid = pixel_grid(h, w, dtype=_DT).reshape(-1, 2)

        # Which primitive each reference pixel sees, and the hit point in that primitive's own frame.
        dirs = _pixel_rays(grid, k, cam_rot[ref])
        depth_ref, prim = _cast(cam_pos[ref], dirs, ball_pos[ref])
        hit = cam_pos[ref] + depth_ref[:, None] * dirs
        on_ball = prim == _BALL
        local = torch.where(on_ball[:, None], _rotate(ball_rot[ref].T, hit - ball_pos[ref]), hit)

        n = grid.shape[0]
        uv = torch.empty(len(frames), n, 2)
        depth = torch.empty(len(frames), n)
        visible = torch.zeros(len(frames), n, dtype=torch.bool)
        # One frame at a time keeps the float64 temporaries at O(H W) for long or large clips.
        for i, f in enumerate(frames):
            if f == ref:
                # Known exactly: the pixel grid at the rendered depth (pinned so it is bit-identical to the render).
                uv[i] = grid.float()
                depth[i] = self.depth[ref].detach().to("cpu").reshape(-1)
                visible[i] = True
                continue
            # World position at frame f: static points stay, ball points ride the ball's pose.
            world = torch.where(on_ball[:, None], ball_pos[f] + _rotate(ball_rot[f], local), local)
            cam = _rotate(cam_rot[f].T, world - cam_pos[f])
            z = cam[:, 2]
            safe_z = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
            x, y = cam[:, 0] / safe_z, cam[:, 1] / safe_z
            pix = torch.stack([k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2]], dim=-1)
            inside = (z > _EPS) & (pix[:, 0] >= 0) & (pix[:, 0] <= w - 1) & (pix[:, 1] >= 0) & (pix[:, 1] <= h - 1)
            # Occlusion test: the first surface along the ray through the (fractional) projection must be the point.
            sel = inside.nonzero().squeeze(1)
            if sel.numel():
                near, _ = _cast(cam_pos[f], _pixel_rays(pix[sel], k, cam_rot[f]), ball_pos[f])
                visible[i, sel] = (near - z[sel]).abs() <= _VIS_RTOL * z[sel]
            uv[i] = pix.float()
            depth[i] = z.float()
        return uv, depth, visible


def sample_scene(num_frames: int = 24, width: int = 256, height: int = 160, seed: int = 0, fps: float = 12.0) -> SampleScene:
    """Render the procedural sample scene.

    Args:
        num_frames: T, 2..1000 (the same motion is spread over the clip whatever T is).
        width, height: image size in pixels, 16..4096 each.
        seed: changes the texture phases and colours (not the geometry); the same seed gives bit-identical frames.
        fps: nominal frame rate, > 0.

    Returns:
        :class:`SampleScene` with frames ``[T, H, W, 3]``, depth ``[T, H, W]``, camera, object mask ``[T, H, W]``.
    """
    num_frames = check_positive_int("num_frames", num_frames, minimum=2, maximum=1000)
    width = check_positive_int("width", width, minimum=16, maximum=4096)
    height = check_positive_int("height", height, minimum=16, maximum=4096)
    seed = check_positive_int("seed", seed, minimum=0, maximum=2**63 - 1)
    fps = check_finite_number("fps", fps)
    if fps <= 0:
        raise ValueError(f"fps: expected a frame rate > 0, got {fps}")

    k32 = intrinsics_from_fov(_FOV_DEGREES, width, height)
    k = k32.to(_DT)
    cam_rot, cam_pos = _camera_poses(num_frames)
    ball_rot, ball_pos = _ball_poses(num_frames)
    params = _texture_params(seed)
    grid = pixel_grid(height, width, dtype=_DT).reshape(-1, 2)

    frames = torch.empty(num_frames, height * width, 3)
    depth = torch.empty(num_frames, height * width)
    mask = torch.empty(num_frames, height * width, dtype=torch.bool)
    # One frame at a time keeps the float64 temporaries small at large sizes.
    for t in range(num_frames):
        dirs = _pixel_rays(grid, k, cam_rot[t])
        z, prim = _cast(cam_pos[t], dirs, ball_pos[t])
        hit = cam_pos[t] + z[:, None] * dirs
        frames[t] = _shade(hit, prim, ball_rot[t], ball_pos[t], params).float()
        depth[t] = z.float()
        mask[t] = prim == _BALL

    world_to_camera = torch.zeros(num_frames, 4, 4, dtype=_DT)
    world_to_camera[:, :3, :3] = cam_rot.transpose(1, 2)
    world_to_camera[:, :3, 3] = -_rotate(cam_rot.transpose(1, 2), cam_pos)
    world_to_camera[:, 3, 3] = 1.0
    camera = CameraPath(k32.expand(num_frames, 3, 3).clone(), world_to_camera.float(), width, height)
    shape = (num_frames, height, width)
    return SampleScene(
        frames=frames.reshape(*shape, 3),
        depth=depth.reshape(shape),
        camera=camera,
        object_mask=mask.reshape(shape),
        fps=fps,
        seed=seed,
    )


# --- poses -------------------------------------------------------------------------------------------


def _phase(num_frames: int) -> torch.Tensor:
    """``[T]`` clip phase s = t / (T - 1) in [0, 1]."""
    return torch.arange(num_frames, dtype=_DT) / (num_frames - 1)


def _axis_rotation(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """``[T, 3, 3]`` rotations by ``angle [T]`` (radians, right-handed) about world axis 0/1/2."""
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    aa = torch.zeros(angle.shape[0], 3, dtype=_DT)
    aa[:, axis] = angle
    return axis_angle_to_rotation_matrix(aa)


def _camera_poses(num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-to-world rotation ``[T, 3, 3]`` and centre ``[T, 3]`` (identity / origin at frame 0).

    Smooth truck right + rise + dolly, a slow yaw to the left and a pitch up and back, so static
    surfaces move with parallax and with rotation.
    """
    s = _phase(num_frames)
    centre = s[:, None] * torch.tensor(_CAMERA_END, dtype=_DT)
    # Positive rotation about +y turns the optical axis (+z) towards +x; about +x it turns it towards -y (up).
    yaw = _axis_rotation(1, _CAMERA_YAW * s)
    pitch = _axis_rotation(0, _CAMERA_PITCH * torch.sin(math.pi * s))
    return yaw @ pitch, centre


def _ball_poses(num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ball object-to-world rotation ``[T, 3, 3]`` (spin about its vertical axis) and centre ``[T, 3]``."""
    s = _phase(num_frames)
    start, end = torch.tensor(_BALL_START, dtype=_DT), torch.tensor(_BALL_END, dtype=_DT)
    centre = start + s[:, None] * (end - start)
    centre[:, 1] -= _BALL_BOB * torch.sin(math.pi * s)
    return _axis_rotation(1, _BALL_SPIN * s), centre


# --- ray casting -------------------------------------------------------------------------------------


def _rotate(rot: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``rot [..., 3, 3] @ v [..., 3]`` written elementwise, so a point gives bit-identical results in any batch."""
    return v[..., 0:1] * rot[..., :, 0] + v[..., 1:2] * rot[..., :, 1] + v[..., 2:3] * rot[..., :, 2]


def _pixel_rays(uv: torch.Tensor, k: torch.Tensor, cam_rot: torch.Tensor) -> torch.Tensor:
    """World ray directions ``[N, 3]`` through pixels ``uv [N, 2]``: ``cam_rot K⁻¹ [u, v, 1]``.

    The camera-space direction has z = 1, so the ray parameter of a hit *is* its camera-space depth.
    """
    y = (uv[:, 1] - k[1, 2]) / k[1, 1]
    x = (uv[:, 0] - k[0, 2] - k[0, 1] * y) / k[0, 0]
    return _rotate(cam_rot, torch.stack([x, y, torch.ones_like(x)], dim=-1))


def _ray_plane(origin: torch.Tensor, dirs: torch.Tensor, axis: int, value: float) -> torch.Tensor:
    """``[N]`` ray parameter of the hit with the plane ``X[axis] = value`` (inf where missed or behind)."""
    d = dirs[:, axis]
    lam = (value - origin[axis]) / torch.where(d == 0, torch.full_like(d, 1e-300), d)
    return torch.where((lam > _EPS) & (d != 0), lam, torch.full_like(lam, math.inf))


def _ray_box(origin: torch.Tensor, dirs: torch.Tensor, lo: tuple, hi: tuple) -> torch.Tensor:
    """``[N]`` entry parameter of the rays into the axis-aligned box ``[lo, hi]`` (slab method; inf if missed)."""
    lo_t = torch.tensor(lo, dtype=_DT)
    hi_t = torch.tensor(hi, dtype=_DT)
    inv = 1.0 / dirs  # ±inf for axis-parallel rays, which the slab comparisons handle
    t1 = (lo_t - origin) * inv
    t2 = (hi_t - origin) * inv
    near = torch.minimum(t1, t2).nan_to_num(nan=-math.inf).amax(dim=-1)
    far = torch.maximum(t1, t2).nan_to_num(nan=math.inf).amin(dim=-1)
    return torch.where((near <= far) & (near > _EPS), near, torch.full_like(near, math.inf))


def _ray_sphere(origin: torch.Tensor, dirs: torch.Tensor, centre: torch.Tensor, radius: float) -> torch.Tensor:
    """``[N]`` parameter of the first (front) hit with the sphere (inf if missed or behind)."""
    oc = origin - centre
    a = (dirs * dirs).sum(-1)
    b = (dirs * oc).sum(-1)  # half the usual b
    c = float((oc * oc).sum()) - radius * radius
    disc = b * b - a * c
    lam = (-b - disc.clamp_min(0).sqrt()) / a
    return torch.where((disc >= 0) & (lam > _EPS), lam, torch.full_like(lam, math.inf))


def _cast(origin: torch.Tensor, dirs: torch.Tensor, ball_centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest hit of rays from ``origin [3]`` along ``dirs [N, 3]``: depth ``[N]`` and primitive id ``[N]``."""
    hits = torch.stack(
        [
            _ray_plane(origin, dirs, 2, _WALL_Z),
            _ray_plane(origin, dirs, 1, _FLOOR_Y),
            _ray_box(origin, dirs, _BOX_MIN, _BOX_MAX),
            _ray_sphere(origin, dirs, ball_centre, _BALL_RADIUS),
        ],
        dim=-1,
    )
    depth, prim = hits.min(dim=-1)
    return depth, prim


# --- textures and shading ----------------------------------------------------------------------------


def _texture_params(seed: int) -> dict[str, torch.Tensor]:
    """Seeded texture phases, offsets and colour jitter (deterministic per seed, CPU generator)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "phase": torch.rand(24, generator=g, dtype=_DT) * (2 * math.pi),
        "jitter": (torch.rand(8, 3, generator=g, dtype=_DT) - 0.5) * 0.16,
    }


def _soft_checker(a: torch.Tensor, b: torch.Tensor, period: float, pa, pb, sharpness: float = 3.0) -> torch.Tensor:
    """Checkerboard in 0..1 with smooth (tanh) cell edges: no hard edges to alias or fool optical flow."""
    w = 2 * math.pi / period
    return 0.5 + 0.5 * torch.tanh(sharpness * torch.sin(w * a + pa) * torch.sin(w * b + pb))


def _mix(c0: torch.Tensor, c1: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-point blend ``[N, 3]`` of two colours ``[3]`` by ``weight [N]`` in 0..1."""
    return c0 + weight[:, None] * (c1 - c0)


def _palette(params: dict, i: int, rgb: tuple) -> torch.Tensor:
    return (torch.tensor(rgb, dtype=_DT) + params["jitter"][i]).clamp(0.05, 0.95)


def _wall_colour(p: torch.Tensor, params: dict) -> torch.Tensor:
    """Wall texture from world (x, y): a slow two-colour gradient, a 1-unit soft checker, fine diagonal waves."""
    ph = params["phase"]
    x, y = p[:, 0], p[:, 1]
    base = _mix(_palette(params, 0, (0.86, 0.74, 0.56)), _palette(params, 1, (0.52, 0.62, 0.80)), 0.5 + 0.5 * torch.sin(0.8 * x + 0.55 * y + ph[0]))
    checker = _soft_checker(x, y, 1.0, ph[1], ph[2])
    waves = torch.sin(2 * math.pi * (0.9 * x + 0.4 * y) / 0.55 + ph[3]) * torch.sin(2 * math.pi * (-0.3 * x + 1.0 * y) / 0.7 + ph[4])
    return base * (0.62 + 0.38 * checker[:, None]) + 0.07 * waves[:, None]


def _floor_colour(p: torch.Tensor, params: dict) -> torch.Tensor:
    """Floor texture from world (x, z): a green/sand gradient, a 0.8-unit soft checker, cross waves."""
    ph = params["phase"]
    x, z = p[:, 0], p[:, 2]
    base = _mix(_palette(params, 2, (0.42, 0.62, 0.38)), _palette(params, 3, (0.80, 0.70, 0.50)), 0.5 + 0.5 * torch.sin(0.6 * x - 0.9 * z + ph[5]))
    checker = _soft_checker(x, z, 0.8, ph[6], ph[7])
    waves = torch.sin(2 * math.pi * (x + 0.5 * z) / 0.45 + ph[8]) + torch.sin(2 * math.pi * (0.6 * x - z) / 0.6 + ph[9])
    # Seen at a grazing angle the far floor compresses in z to a few pixels per period; fade the fine
    # detail there so it does not alias (the slow gradient keeps it textured).
    detail = (0.3 + 0.7 * torch.sigmoid((5.4 - z) / 0.4))[:, None]
    return base * (1.0 - 0.4 * detail + 0.4 * detail * checker[:, None]) + 0.04 * detail * waves[:, None]


def _box_colour(p: torch.Tensor, params: dict) -> torch.Tensor:
    """Box texture from world (x, y, z): a solid 3D soft pattern (every face varies in both directions)."""
    ph = params["phase"]
    w = 2 * math.pi / 0.5
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    # Pairwise products, so a face (one coordinate constant) still carries a 2D pattern.
    field = torch.sin(w * x + ph[10]) * torch.sin(w * y + ph[11]) + torch.sin(w * y + ph[12]) * torch.sin(w * z + ph[13]) + torch.sin(w * z + ph[14]) * torch.sin(w * x + ph[15])
    pattern = 0.5 + 0.5 * torch.tanh(1.5 * field)
    base = _mix(_palette(params, 4, (0.78, 0.26, 0.20)), _palette(params, 5, (0.96, 0.72, 0.30)), pattern)
    return base + 0.05 * torch.sin(2 * math.pi * (x - y + z) / 0.35 + ph[16])[:, None]


def _ball_colour(q: torch.Tensor, params: dict) -> torch.Tensor:
    """Ball texture from object coordinates ``q`` (unit-sphere scaled): a 3D soft checker plus bands.

    Defined in the ball's own frame so the spin shows; smooth everywhere (no longitude seam or poles).
    """
    ph = params["phase"]
    u = q / _BALL_RADIUS
    w = 2 * math.pi / 0.9
    field = torch.sin(w * u[:, 0] + ph[17]) * torch.sin(w * u[:, 1] + ph[18]) * torch.sin(w * u[:, 2] + ph[19])
    checker = 0.5 + 0.5 * torch.tanh(4.0 * field)
    base = _mix(_palette(params, 6, (0.12, 0.45, 0.80)), _palette(params, 7, (0.98, 0.86, 0.28)), checker)
    bands = torch.sin(5.0 * u[:, 1] + 3.0 * u[:, 0] + ph[20])
    return base * (0.85 + 0.15 * bands[:, None])


def _shade(hit: torch.Tensor, prim: torch.Tensor, ball_rot: torch.Tensor, ball_pos: torch.Tensor, params: dict) -> torch.Tensor:
    """RGB ``[N, 3]`` in 0..1 of world hit points ``[N, 3]`` on primitives ``prim [N]``: texture × Lambert."""
    colour = torch.zeros_like(hit)
    normal = torch.zeros_like(hit)
    for pid in (_WALL, _FLOOR, _BOX, _BALL):
        sel = (prim == pid).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        p = hit[sel]
        if pid == _WALL:
            colour[sel] = _wall_colour(p, params)
            normal[sel] = torch.tensor([0.0, 0.0, -1.0], dtype=_DT)
        elif pid == _FLOOR:
            colour[sel] = _floor_colour(p, params)
            normal[sel] = torch.tensor([0.0, -1.0, 0.0], dtype=_DT)
        elif pid == _BOX:
            colour[sel] = _box_colour(p, params)
            normal[sel] = _box_normal(p)
        else:
            colour[sel] = _ball_colour(_rotate(ball_rot.T, p - ball_pos), params)
            normal[sel] = (p - ball_pos) / _BALL_RADIUS
    light = torch.tensor(_LIGHT, dtype=_DT)
    light = light / light.norm()
    lambert = 0.7 + 0.3 * (normal @ light).clamp_min(0)
    return (colour * lambert[:, None]).clamp(0, 1)


def _box_normal(p: torch.Tensor) -> torch.Tensor:
    """Outward normals ``[N, 3]`` of points on the box surface: the face the point is closest to."""
    lo = torch.tensor(_BOX_MIN, dtype=_DT)
    hi = torch.tensor(_BOX_MAX, dtype=_DT)
    dist = torch.cat([(p - lo).abs(), (p - hi).abs()], dim=-1)  # [N, 6]: -x, -y, -z, +x, +y, +z faces
    face = dist.argmin(dim=-1)
    normal = torch.zeros_like(p)
    normal[torch.arange(p.shape[0]), face % 3] = torch.where(face < 3, -1.0, 1.0).to(_DT)
    return normal
