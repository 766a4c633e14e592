"""Camera moves relative to the solved source path: the pseudo field's frames, smoothing, retargeting.

The pseudo 4D Gaussian field of GS-DiT lives in the source camera's frame at each time: its time-t
Gaussians are X_t = S_t·X, with S_t the source camera's ``world_to_camera`` (world = the source camera
at frame 0, the convention of :func:`vid4d.py.solve.solve_camera`) and X the point in the world. A
camera whose pose in the world is W_t (``world_to_camera``) sees the field at W_t·X = W_t·S_t⁻¹·X_t,
so a world path W is rendered on the pseudo field as

    P_t = W_t · S_t⁻¹                                  (:func:`relative_to_source`)

The identity P renders the source video back whatever S was; the presets that are not about the source
camera (orbit, dolly, ...) are relative to the source camera at each time, so on a hand-held clip they
keep its shake and move and add theirs (W_t = P_t·S_t). Stabilising or replacing the move needs S: the
stabilised world path is smooth(S)_t, rendered as smooth(S)_t·S_t⁻¹; another video's move R (rebased
to its frame 0) replaces it as R_t·S_t⁻¹. A field that holds no camera motion (a still camera, a
``first_frame`` lift) has S = identity and P = W.

Here the pose maths on float64 camera-to-world rotations ``[T, 3, 3]`` and centres ``[T, 3]`` (the
:class:`~vid4d.py.camera.presets.Motion` representation): rigid inverses, fractional moves, a
Gaussian-weighted local linear smoothing of a path, and the retargeting of a path to another clip.
"""

from __future__ import annotations

import math

import torch

from .geometry import POSE_DTYPE, CameraPath


def rigid_inverse(m: torch.Tensor) -> torch.Tensor:
    """``[T, 4, 4]`` inverse of rigid transforms ``[T, 4, 4]``: [Rᵀ | −Rᵀ t]."""
    out = torch.zeros_like(m)
    rt = m[:, :3, :3].transpose(1, 2)
    out[:, :3, :3] = rt
    out[:, :3, 3] = -(rt @ m[:, :3, 3:])[:, :, 0]
    out[:, 3, 3] = 1.0
    return out


def rebased(path: CameraPath) -> torch.Tensor:
    """``[T, 4, 4]`` float64 ``world_to_camera`` of ``path`` relative to its frame 0 (m_t·m_0⁻¹): frame 0 = identity."""
    m = path.world_to_camera.detach().to("cpu", POSE_DTYPE)
    return m @ rigid_inverse(m[:1]).expand_as(m)


def poses_from_matrices(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``world_to_camera [T, 4, 4]`` → camera-to-world rotations ``[T, 3, 3]`` and centres ``[T, 3]`` (−Rᵀ t)."""
    rot = m[:, :3, :3].transpose(1, 2)
    return rot, -(rot @ m[:, :3, 3:])[:, :, 0]


def relative_to_source(path: CameraPath, source: CameraPath | None) -> CameraPath:
    """A world path as the path that renders it on a pseudo field holding ``source``'s camera motion.

    ``world_to_camera[t] = path[t] · source[t]⁻¹`` (composed in float64), intrinsics and size from
    ``path``; ``source`` None returns ``path`` itself (a field without camera motion). ``source`` must
    have ``path``'s frame count.
    """
    if source is None:
        return path
    if source.num_frames != path.num_frames:
        raise ValueError(f"source: expected the source camera of the {path.num_frames} frames rendered, got {source.num_frames} frames")
    w = path.world_to_camera.detach().to("cpu", POSE_DTYPE)
    s = source.world_to_camera.detach().to("cpu", POSE_DTYPE)
    out = (w @ rigid_inverse(s)).to(path.world_to_camera.device, path.world_to_camera.dtype)
    return CameraPath(path.intrinsics.clone(), out, path.width, path.height)


def in_source_view(path: CameraPath, source: CameraPath) -> CameraPath:
    """A path given relative to the source view at each frame, for a field placed in ``source``'s world.

    ``world_to_camera[t] = path[t] · source[t]`` (float64; ``source``'s last frame held past its end).
    A pseudo field's source camera is the identity at every frame, so its paths come back unchanged; a
    field placed in the world of a solved camera (LiftGaussians ``placement = world``) is rendered from
    the same views, the solved move included.
    """
    s = source.world_to_camera.detach().to("cpu", POSE_DTYPE)
    if torch.equal(s, torch.eye(4, dtype=POSE_DTYPE).expand_as(s)):
        return path
    s = s[torch.arange(path.num_frames).clamp(max=source.num_frames - 1)]
    w = path.world_to_camera.detach().to("cpu", POSE_DTYPE)
    out = (w @ s).to(path.world_to_camera.device, path.world_to_camera.dtype)
    return CameraPath(path.intrinsics.clone(), out, path.width, path.height)


def _log_rotation(r: torch.Tensor) -> torch.Tensor:
    from kornia.geometry.conversions import rotation_matrix_to_axis_angle

    return rotation_matrix_to_axis_angle(r)


def _exp_rotation(v: torch.Tensor) -> torch.Tensor:
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    return axis_angle_to_rotation_matrix(v)


def scale_poses(rotation: torch.Tensor, centre: torch.Tensor, amount: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A share ``amount`` of a move from the world origin: rotations R^amount (the axis kept, the angle
    scaled), centres × amount. 1 returns the poses, 0 the identity; negative values reverse the move."""
    if amount == 1.0:
        return rotation.clone(), centre.clone()
    return _exp_rotation(amount * _log_rotation(rotation)), amount * centre


def smooth_poses(rotation: torch.Tensor, centre: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A path smoothed over ±3σ frames: a Gaussian-weighted local linear fit (Savitzky-Golay of order 1
    with Gaussian weights) of the centres, and of the rotations in the tangent space at each frame.

    At frame t, with weights w_d = exp(−d²/2σ²) over the frames t + d in the clip, the fit a + b·d of
    y_{t+d} is evaluated at d = 0: y = C (centres), and y = log(R_tᵀ R_{t+d}) for rotations (then
    R_t·exp(a)). A linear fit keeps constant-velocity moves (a dolly, a pan at constant speed) exactly,
    also at the ends of the clip, where a plain Gaussian average would lag; what is removed is the shake
    on time scales below σ. σ = 0 returns the poses.

    Args:
        rotation: ``[T, 3, 3]`` camera-to-world, centre: ``[T, 3]``, float64; sigma: frames, ≥ 0.
    """
    n = rotation.shape[0]
    if sigma <= 0 or n < 2:
        return rotation.clone(), centre.clone()
    radius = min(math.ceil(3.0 * sigma), n - 1)
    t = torch.arange(n)
    s0, s1, s2 = (torch.zeros(n, dtype=POSE_DTYPE) for _ in range(3))
    c0, c1, r0, r1 = (torch.zeros(n, 3, dtype=POSE_DTYPE) for _ in range(4))
    for d in range(-radius, radius + 1):
        k = t + d
        inside = (k >= 0) & (k < n)
        k = k.clamp(0, n - 1)
        w = math.exp(-0.5 * (d / sigma) ** 2) * inside.to(POSE_DTYPE)
        log = _log_rotation(rotation.transpose(1, 2) @ rotation[k])
        s0, s1, s2 = s0 + w, s1 + w * d, s2 + w * d * d
        c0, c1 = c0 + w[:, None] * centre[k], c1 + (w * d)[:, None] * centre[k]
        r0, r1 = r0 + w[:, None] * log, r1 + (w * d)[:, None] * log
    det = s0 * s2 - s1 * s1
    # Weighted least squares of a + b·d; where the window holds one usable frame (σ tiny), the mean.
    line = det > 1e-9 * s0 * s0
    safe = torch.where(line, det, torch.ones_like(det))[:, None]

    def fit(y0: torch.Tensor, y1: torch.Tensor) -> torch.Tensor:
        return torch.where(line[:, None], (s2[:, None] * y0 - s1[:, None] * y1) / safe, y0 / s0[:, None])

    return rotation @ _exp_rotation(fit(r0, r1)), fit(c0, c1)


def retarget_poses(path: CameraPath, num_frames: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``path``'s move as a move of this clip: relative to its own frame 0, resampled in time, scaled.

    Camera τ relative to camera 0 (``world_to_camera[τ] · world_to_camera[0]⁻¹``), sampled at
    τ = t·(T_path − 1)/(T − 1) for t = 0..T−1 (rotations along the geodesic between the two nearest
    frames, centres and focal factors linearly; frames that fall on a sample are copied), centres times
    ``scale``, and the focal factor f_τ/f_0 of the path's own zoom.

    Returns:
        camera-to-world rotations ``[T, 3, 3]``, centres ``[T, 3]``, focal factors ``[T]``, float64;
        frame 0 is the identity pose with factor 1.
    """
    rot, centre = poses_from_matrices(rebased(path))
    focal = path.intrinsics.detach().to("cpu", POSE_DTYPE)[:, 0, 0]
    focal = focal / focal[0]
    count = path.num_frames
    if num_frames == 1 or count == 1:
        tau = torch.zeros(num_frames, dtype=POSE_DTYPE)
    else:
        tau = torch.arange(num_frames, dtype=POSE_DTYPE) * ((count - 1) / (num_frames - 1))
    i = tau.floor().long().clamp(0, count - 1)
    u = tau - i
    on = u < 1e-12
    j = (i + 1).clamp(max=count - 1)
    rot_t, centre_t, focal_t = rot[i].clone(), centre[i].clone(), focal[i].clone()
    if bool((~on).any()):
        between = (~on).nonzero().squeeze(1)
        a, b, v = i[between], j[between], u[between]
        rot_t[between] = rot[a] @ _exp_rotation(v[:, None] * _log_rotation(rot[a].transpose(1, 2) @ rot[b]))
        centre_t[between] = (1 - v)[:, None] * centre[a] + v[:, None] * centre[b]
        focal_t[between] = (1 - v) * focal[a] + v * focal[b]
    return rot_t, scale * centre_t, focal_t
