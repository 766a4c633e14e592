"""Camera solve: the source camera's pose per frame and its focal length, from dense tracks.

One public entry, :func:`solve_camera`. The world frame is the camera at frame 0 (OpenCV axes, the
pack's convention), so the solved path plugs into everything that takes a source camera.

Two regimes, chosen by whether the tracks carry depth (:attr:`Tracks3D.depth_known`):

- **with depth** (``mode="depth"``): every reference pixel is a 3D point (its depth in the reference
  frame); each frame's pose comes from PnP inside RANSAC (OpenCV ``solvePnPRansac``) on the points
  seen there, and the focal length (when no ``fov`` is given) from a search on the rigid 3D–3D fit of
  the tracked points (Kabsch inside RANSAC), which a wrong focal distorts as soon as the camera turns.
  The scale is the depth's.
- **without depth** (``mode="motion"``, DenseTrack3D's plane z = 1): structure from motion on the 2D
  tracks. The frame with the most parallax is paired with the reference (``findEssentialMat`` with
  RANSAC + ``recoverPose``), the static points are triangulated along their reference rays, every other
  frame is placed by PnP on them, and the focal length comes from the fundamental matrices (the
  essential matrix's two equal singular values, Mendonça–Cipolla). The scale is free: the median depth
  of the static scene in the reference frame is 1. When the camera only turns (no parallax at all),
  ``mode="rotation"``: poses from homographies, no depth, and the report says so.

Both then refine every pose, the points' depths (with depth: tied to the measured depth) and the
focal length jointly — a small bundle adjustment with a robust (pseudo-Huber) loss, torch autograd +
L-BFGS — and alternate it with the static/moving split (IRLS-style): a reference pixel is on the
static scene when its track agrees with the solved cameras (reprojection within a threshold, and
with depth its depth within a tolerance) in most frames it is seen. Everything else is the moving
objects (the ``static`` mask's complement). Without depth the static scene's depth from motion is
rasterised into every frame as a :class:`DepthVideo` (``kind="relative"``: scale-free; ``valid`` False
on moving objects and where nothing was triangulated with enough parallax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .camera import CameraPath, intrinsics_from_fov
from .checks import check_finite_number, check_positive_int
from .depth import DepthVideo
from .tracking import Tracks3D, _torch_threads

MODES = ("depth", "motion", "rotation")

_DT = torch.float64
# Outlier thresholds. A track observation is consistent with the solved camera when it reprojects
# within _THRESHOLD_PX (at least; grown with the image and with the measured noise) and, with depth,
# its depth is within _DEPTH_TOL (relative). A reference pixel is static when at least _STATIC_VOTE of
# the frames it is seen in (besides the reference) agree.
_THRESHOLD_PX = 1.5
_THRESHOLD_REL = 0.003  # of max(W, H): 2.2 px at 720
_DEPTH_TOL = 0.08
_STATIC_VOTE = 0.4
_BA_VOTE = 0.6  # ... and the refinement uses tracks that agree in this share
# Parallax: below _MIN_PARALLAX_DEG (median triangulation angle of the best frame pair) the camera is
# taken as only turning; a triangulated pixel needs _MIN_POINT_PARALLAX_DEG to get a depth.
_MIN_PARALLAX_DEG = 0.4
_MIN_POINT_PARALLAX_DEG = 0.25
_PLANAR_SHARE = 0.9  # a homography explaining this share of the essential matrix's inliers: no parallax
# Focal search: horizontal fields of view tried, and how much lower than the prior's the best cost
# must be to replace the prior (a flat cost means the motion does not show the focal length).
_FOV_GRID = torch.linspace(math.log(20.0), math.log(140.0), 17).exp()
_FOCAL_GAIN = 0.9
_SIGMA_LOGZ = 0.05  # depth residual weight: 5 % of depth counts like one pixel


@dataclass
class CameraSolve:
    """The solved source camera and what the solve learnt on the way.

    Attributes:
        path: the source camera per frame (frame 0 = identity pose; OpenCV axes; ``world_to_camera``).
        static: ``[H, W]`` bool, reference pixels on the static scene (the moving objects are ``~static``).
        reprojection_px: median reprojection error (pixels) over the static tracks' visible observations
            (the reference frame excluded).
        depth: without depth in the tracks, the depth from motion ``[T, H, W]`` (``kind="relative"``,
            scale-free; ``valid`` marks where it is known); None when the tracks carried depth.
        inlier_ratio: fraction of the tracks' visible observations (reference frame excluded) that agree
            with the solved cameras.
        focal: the focal length in pixels (fx = fy).
        focal_estimated: whether the focal length was estimated (False when ``fov`` was given, or the
            motion did not show it and the tracks' own intrinsics were kept).
        mode: ``"depth"``, ``"motion"`` or ``"rotation"`` (see the module docstring).
        scale: what one world unit is: ``"depth units"``, ``"free: median static depth at the reference = 1"``
            or ``"none: rotation only"``.
        parallax_deg: median triangulation angle of the best frame pair (motion/rotation modes; NaN with depth).
        threshold_px: the reprojection threshold that split static from moving.
        failed_frames: frames whose pose could not be fitted robustly (interpolated from their neighbours).
        notes: plain-language remarks for the report.
    """

    path: CameraPath
    static: torch.Tensor
    reprojection_px: float
    depth: DepthVideo | None = None
    inlier_ratio: float = 0.0
    focal: float = 0.0
    focal_estimated: bool = False
    mode: str = "depth"
    scale: str = "depth units"
    parallax_deg: float = float("nan")
    threshold_px: float = 0.0
    failed_frames: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fov(self) -> float:
        """Horizontal field of view in degrees."""
        return math.degrees(2 * math.atan(0.5 * self.path.width / self.focal))

    def report(self) -> dict:
        """The solve's figures as a JSON-ready dict."""
        return {
            "mode": self.mode,
            "frames": self.path.num_frames,
            "width": self.path.width,
            "height": self.path.height,
            "focal_px": round(self.focal, 3),
            "fov_horizontal_deg": round(self.fov, 3),
            "focal_estimated": self.focal_estimated,
            "inlier_ratio": round(self.inlier_ratio, 4),
            "reprojection_px": round(self.reprojection_px, 4),
            "threshold_px": round(self.threshold_px, 3),
            "static_fraction": round(float(self.static.float().mean()), 4),
            "parallax_deg": None if math.isnan(self.parallax_deg) else round(self.parallax_deg, 3),
            "scale": self.scale,
            "path_length": round(float(_path_length(self.path)), 6),
            "failed_frames": list(self.failed_frames),
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """One paragraph for a node's text panel."""
        r = self.report()
        lines = [
            f"camera solve ({self.mode}): {r['frames']} frames {r['width']}x{r['height']}, focal {r['focal_px']:.1f} px "
            f"(fov {r['fov_horizontal_deg']:.1f}°, {'estimated' if self.focal_estimated else 'given'})",
            f"inliers {100 * self.inlier_ratio:.1f}%, reprojection {self.reprojection_px:.2f} px (median, threshold {self.threshold_px:.2f} px); "
            f"static {100 * r['static_fraction']:.1f}% of the reference pixels",
            f"path length {r['path_length']:.3g} ({self.scale})",
        ]
        lines += list(self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------------


def solve_camera(
    tracks: Tracks3D,
    *,
    fov: float | None = None,
    max_tracks: int = 4000,
    iterations: int = 60,
    rounds: int = 2,
    seed: int = 0,
    progress=None,
) -> CameraSolve:
    """Solve the source camera of ``tracks``: pose per frame, focal length, static/moving split.

    Args:
        tracks: dense tracks of one reference frame (DenseTrack3D, the sample scene). With
            ``depth_known`` False (no depth given to the tracker) the solve uses the 2D tracks only.
        fov: horizontal field of view in degrees if known (then the focal length is fixed, the
            principal point at the image centre); None: estimated, starting from the tracks' intrinsics.
        max_tracks: how many tracks (an even grid over the reference frame) the robust fits and the
            bundle adjustment use; the static mask, the error figures and the depth use every pixel.
        iterations: L-BFGS iterations per bundle-adjustment round.
        rounds: bundle-adjustment rounds, each followed by a new static/moving split.
        seed: RANSAC seed (results are deterministic for a given seed).
        progress: ``progress(done)`` with done = 1..:data:`PROGRESS_STEPS`; may raise to cancel.

    Returns:
        :class:`CameraSolve`.

    Raises:
        ValueError: not a Tracks3D, fewer than 2 frames, a bad ``fov``, or too few tracks seen in
            two frames to solve anything.
    """
    if not isinstance(tracks, Tracks3D):
        raise ValueError(f"tracks: expected a Tracks3D, got {type(tracks).__name__}")
    # Small tensors: torch's OpenMP workers cost more than they bring (4x slower at 2 threads on a
    # busy 2-core machine), as in the tracker.
    with _torch_threads(1):
        return _solve(tracks, fov, max_tracks, iterations, rounds, seed, progress)


def _solve(tracks: Tracks3D, fov, max_tracks, iterations, rounds, seed, progress) -> CameraSolve:
    num, height, width = tracks.num_frames, tracks.height, tracks.width
    if num < 2:
        raise ValueError("tracks: a camera solve needs at least 2 frames")
    max_tracks = check_positive_int("max_tracks", max_tracks, minimum=64, maximum=1_000_000)
    iterations = check_positive_int("iterations", iterations, minimum=1, maximum=10_000)
    rounds = check_positive_int("rounds", rounds, minimum=1, maximum=20)
    step = _Steps(progress)

    k0 = tracks.intrinsics.reshape(-1, 3, 3)[min(tracks.ref_frame, tracks.intrinsics.reshape(-1, 3, 3).shape[0] - 1)].detach().to("cpu", _DT)
    if fov is not None:
        fov = check_finite_number("fov", fov, low=1.0, high=179.0)
        k0 = intrinsics_from_fov(fov, width, height).to(_DT)
    notes: list[str] = []
    if abs(float(k0[0, 0] - k0[1, 1])) > 1e-3 * float(k0[0, 0]) or abs(float(k0[0, 1])) > 1e-6:
        notes.append("the tracks' intrinsics have non-square pixels or skew: the solve uses square pixels (fx = fy)")
    cam = _Intrinsics(float(k0[0, 0]), float(k0[0, 2]), float(k0[1, 2]))
    threshold = max(_THRESHOLD_PX, _THRESHOLD_REL * max(width, height))
    seed = check_positive_int("seed", seed, minimum=0, maximum=2**31 - 1)

    sample = _sample(tracks, max_tracks)
    if int(sample.vis[:, :].sum()) - sample.count < 16:
        raise ValueError("tracks: fewer than 16 tracked observations beyond the reference frame; nothing to solve from")
    has_depth = _has_depth(tracks)
    step()  # 1: sampled

    estimate = fov is None
    if has_depth:
        mode, scale, parallax = "depth", "depth units", float("nan")
        if estimate:
            f, shown = _focal_from_rigid(sample, cam, width, seed)
            estimate = shown
            if not shown:
                notes.append("the camera barely turns: the focal length is not observable; kept the tracks' intrinsics")
            cam = cam.with_focal(f)
        step()  # 2: focal
        rot, trans, failed = _poses_pnp(sample, cam, sample.log_depth_ref(), threshold, seed)
        logd = sample.log_depth_ref()
        step()  # 3: initial poses
    else:
        if estimate:
            f, shown = _focal_from_fundamental(sample, cam, width, threshold, seed)
            estimate = shown
            if not shown:
                notes.append("the motion does not show the focal length (too little rotation): kept the tracks' intrinsics")
            cam = cam.with_focal(f)
        step()  # 2: focal
        init = _init_motion(sample, cam, threshold, seed)
        parallax = init.parallax_deg
        if init.rotation_only:
            mode, scale = "rotation", "none: rotation only"
            notes.append(f"no parallax (best median triangulation angle {parallax:.2f}°): the camera only turns; depth from motion is unknown")
            rot, trans, logd, failed = init.rot, init.trans, None, init.failed
        else:
            mode, scale = "motion", "free: median static depth at the reference = 1"
            rot, trans, logd, failed = init.rot, init.trans, init.log_depth, init.failed
        step()  # 3: initial poses
    if failed:
        notes.append(f"{len(failed)} frame(s) had too few consistent tracks for a robust fit; their poses come from their neighbours and the refinement")

    # Alternate the joint refinement with the static/moving split.
    static_s = _classify_sample(sample, cam, rot, trans, logd, has_depth, threshold)
    for _ in range(rounds):
        use = static_s & (logd.isfinite() if logd is not None else torch.ones_like(static_s))
        if int(use.sum()) < 8:
            use = torch.ones_like(static_s) if logd is None else logd.isfinite()
        rot, trans, logd_new, f_new = _bundle_adjust(sample, use, cam, rot, trans, logd, has_depth=has_depth, estimate_focal=estimate, mode=mode, iterations=iterations)
        cam = cam.with_focal(f_new)
        if logd is not None:
            logd = torch.where(use, logd_new, logd)
            if mode == "motion":
                logd = _triangulate_log_depth(sample.rays(cam), sample.uv, sample.vis, cam, rot, trans, keep=use, current=logd)
        static_s = _classify_sample(sample, cam, rot, trans, logd, has_depth, threshold)
        step()  # 4..: refinement rounds
    if mode == "motion":
        rot, trans, logd = _normalise_scale(rot, trans, logd, static_s)

    dense = _classify_dense(tracks, cam, rot, trans, mode, threshold)
    step()
    depth = None
    if mode == "motion":
        depth = _depth_from_motion(tracks, cam, rot, trans, dense)
    elif mode == "rotation":
        depth = DepthVideo(torch.zeros(num, height, width), kind="relative", valid=torch.zeros(num, height, width, dtype=torch.bool))
    path = _rebase(rot, trans, cam, tracks.ref_frame, num, width, height)
    step()
    return CameraSolve(
        path=path,
        static=dense.static,
        reprojection_px=dense.reprojection_px,
        depth=depth,
        inlier_ratio=dense.inlier_ratio,
        focal=cam.f,
        focal_estimated=estimate,
        mode=mode,
        scale=scale,
        parallax_deg=parallax,
        threshold_px=dense.threshold,
        failed_frames=tuple(failed),
        notes=tuple(notes),
    )


PROGRESS_STEPS = 7  # with the default two rounds (3 + rounds + 2)


class _Steps:
    def __init__(self, progress):
        self.progress, self.done = progress, 0

    def __call__(self):
        self.done += 1
        if self.progress is not None:
            self.progress(self.done)


# ---------------------------------------------------------------------------------------------------
# Data the solve works on
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Intrinsics:
    f: float
    cx: float
    cy: float

    def with_focal(self, f: float) -> "_Intrinsics":
        return _Intrinsics(float(f), self.cx, self.cy)

    def matrix(self) -> torch.Tensor:
        return torch.tensor([[self.f, 0.0, self.cx], [0.0, self.f, self.cy], [0.0, 0.0, 1.0]], dtype=_DT)

    def numpy(self) -> np.ndarray:
        return self.matrix().numpy()

    def rays(self, uv: torch.Tensor) -> torch.Tensor:
        """``[..., 3]`` rays (x, y, 1) through pixels ``uv [..., 2]``."""
        return torch.stack([(uv[..., 0] - self.cx) / self.f, (uv[..., 1] - self.cy) / self.f, torch.ones_like(uv[..., 0])], dim=-1)


@dataclass
class _Sample:
    """An even grid of tracks: ``uv [T, N, 2]``, ``depth [T, N]``, ``vis [T, N]`` (float64 / bool), the reference index."""

    uv: torch.Tensor
    depth: torch.Tensor
    vis: torch.Tensor
    ref: int

    @property
    def count(self) -> int:
        return int(self.uv.shape[1])

    def rays(self, cam: _Intrinsics) -> torch.Tensor:
        return cam.rays(self.uv[self.ref])

    def log_depth_ref(self) -> torch.Tensor:
        d = self.depth[self.ref]
        return torch.where(d > 0, d.clamp_min(1e-12).log(), torch.full_like(d, float("nan")))


def _sample(tracks: Tracks3D, max_tracks: int) -> _Sample:
    h, w = tracks.height, tracks.width
    stride = max(1, math.ceil(math.sqrt(h * w / max_tracks)))
    o = stride // 2
    uv = tracks.uv[:, o::stride, o::stride].detach().to("cpu", _DT).reshape(tracks.num_frames, -1, 2)
    depth = tracks.depth[:, o::stride, o::stride].detach().to("cpu", _DT).reshape(tracks.num_frames, -1)
    vis = tracks.visible()[:, o::stride, o::stride].detach().to("cpu").reshape(tracks.num_frames, -1).clone()
    vis[tracks.ref_frame] = True
    return _Sample(uv, depth, vis, tracks.ref_frame)


def _has_depth(tracks: Tracks3D) -> bool:
    """Tracks made with depth: the flag, and a depth that is not one constant (older no-depth tracks)."""
    if not tracks.depth_known:
        return False
    d = tracks.depth
    return not bool((d == d.reshape(-1)[0]).all())


# ---------------------------------------------------------------------------------------------------
# Geometry helpers (float64)
# ---------------------------------------------------------------------------------------------------


def _project(cam: _Intrinsics, rot: torch.Tensor, trans: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``[N, 3]`` (reference camera frame) into every frame: pixels ``[T, N, 2]``, depth ``[T, N]``."""
    p = torch.einsum("tij,nj->tni", rot, points) + trans[:, None]
    z = p[..., 2]
    safe = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
    uv = torch.stack([cam.f * p[..., 0] / safe + cam.cx, cam.f * p[..., 1] / safe + cam.cy], dim=-1)
    return uv, z


def _skew(v: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(v[..., 0])
    return torch.stack([z, -v[..., 2], v[..., 1], v[..., 2], z, -v[..., 0], -v[..., 1], v[..., 0], z], dim=-1).reshape(*v.shape[:-1], 3, 3)


def _so3_exp(omega: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` axis-angle → ``[..., 3, 3]`` rotations (matrix exponential: smooth through zero)."""
    return torch.linalg.matrix_exp(_skew(omega))


def _rotation_angle_deg(r: torch.Tensor) -> torch.Tensor:
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def _nearest_rotation(m: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(m)
    d = torch.sign(torch.linalg.det(u @ vh))
    fix = torch.ones(*m.shape[:-2], 3, dtype=m.dtype)
    fix[..., 2] = d
    return u @ torch.diag_embed(fix) @ vh


def _kabsch(p: torch.Tensor, q: torch.Tensor, w: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rigid (R, t) with q ≈ R p + t, batched: ``p, q [B, N, 3]``, weights ``[B, N]`` → ``[B, 3, 3]``, ``[B, 3]``."""
    if w is None:
        w = torch.ones(p.shape[:-1], dtype=p.dtype)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    mp = (w[..., None] * p).sum(-2)
    mq = (w[..., None] * q).sum(-2)
    cov = torch.einsum("bn,bni,bnj->bij", w, q - mq[:, None], p - mp[:, None])
    r = _nearest_rotation(cov)
    return r, mq - torch.einsum("bij,bj->bi", r, mp)


def _path_length(path: CameraPath) -> torch.Tensor:
    c = path.centers().double()
    return (c[1:] - c[:-1]).norm(dim=-1).sum() if c.shape[0] > 1 else torch.zeros((), dtype=_DT)


# ---------------------------------------------------------------------------------------------------
# Focal length
# ---------------------------------------------------------------------------------------------------


def _frame_choice(sample: _Sample, count: int) -> list[int]:
    """Up to ``count`` frames (not the reference) with the largest median motion of their visible tracks."""
    ref = sample.ref
    motion = []
    for t in range(sample.uv.shape[0]):
        if t == ref:
            continue
        seen = sample.vis[t]
        if int(seen.sum()) < 16:
            continue
        motion.append((float((sample.uv[t, seen] - sample.uv[ref, seen]).norm(dim=-1).median()), t))
    motion.sort(reverse=True)
    return sorted(t for _, t in motion[:count])


def _pick_focal(cost, focals: torch.Tensor, prior: float) -> tuple[float, bool]:
    """The focal length minimising ``cost(f)`` over the grid (a parabola in log f through the best three),
    or (prior, False) when the cost is flat: the motion does not show the focal length."""
    costs = torch.tensor([cost(float(f)) for f in focals], dtype=_DT)
    finite = costs[costs.isfinite()]
    if finite.numel() < 3:
        return prior, False
    i = int(costs.argmin())
    best, typical = float(costs[i]), float(finite.median())
    if not best < _FOCAL_GAIN * typical:
        return prior, False
    logf = focals.log()
    f = float(focals[i])
    if 0 < i < len(costs) - 1:
        c0, c1, c2 = (float(costs[j]) for j in (i - 1, i, i + 1))
        denom = c0 - 2 * c1 + c2
        if math.isfinite(denom) and denom > 1e-18:
            offset = max(-1.0, min(1.0, 0.5 * (c0 - c2) / denom))
            f = float((logf[i] + offset * (logf[i + 1] - logf[i])).exp())
    candidates = [(cost(f), f), (best, float(focals[i])), (cost(prior), prior)]
    return min(candidates)[1], True


def _focal_grid(width: int) -> torch.Tensor:
    return (0.5 * width / torch.tan(torch.deg2rad(_FOV_GRID.to(_DT)) / 2)).flip(0)


def _focal_from_rigid(sample: _Sample, cam: _Intrinsics, width: int, seed: int) -> tuple[float, bool]:
    """With depth: the focal length whose 3D points move most rigidly (robust Kabsch fit, ref → t)."""
    frames = _frame_choice(sample, 4)
    if not frames:
        return cam.f, False
    focals = _focal_grid(width)
    gen = torch.Generator().manual_seed(seed)
    subset = torch.randperm(sample.count, generator=gen)[:1500]

    def cost(f: float) -> float:
        c = cam.with_focal(f)
        total = []
        for t in frames:
            seen = torch.zeros(sample.count, dtype=torch.bool)
            seen[subset] = True
            seen &= sample.vis[t] & (sample.depth[sample.ref] > 0) & (sample.depth[t] > 0)
            if int(seen.sum()) < 16:
                continue
            p = c.rays(sample.uv[sample.ref, seen]) * sample.depth[sample.ref, seen, None]
            q = c.rays(sample.uv[t, seen]) * sample.depth[t, seen, None]
            total.append(_ransac_rigid_cost(p, q, torch.Generator().manual_seed(seed + t)))
        return float(torch.tensor(total).mean()) if total else float("inf")

    return _pick_focal(cost, focals, cam.f)


def _ransac_rigid_cost(p: torch.Tensor, q: torch.Tensor, gen: torch.Generator, hypotheses: int = 64) -> float:
    """Robust residual of the best rigid fit q ≈ R p + t: truncated mean of the relative 3D error (after a refit on the inliers)."""
    n = p.shape[0]
    idx = torch.randint(0, n, (hypotheses, 3), generator=gen)
    r, t = _kabsch(p[idx], q[idx])
    scale = q[:, 2].abs().clamp_min(1e-9)
    err = ((torch.einsum("bij,nj->bni", r, p) + t[:, None] - q).norm(dim=-1) / scale)  # [B, N]
    tol = 0.05
    best = int((err < tol).sum(-1).argmax())
    inl = err[best] < tol
    if int(inl.sum()) >= 3:
        r, t = _kabsch(p[inl][None], q[inl][None])
        err = ((p @ r[0].T + t[0] - q).norm(dim=-1) / scale)
    else:
        err = err[best]
    return float(err.clamp(max=tol).square().mean())


def _focal_from_fundamental(sample: _Sample, cam: _Intrinsics, width: int, threshold: float, seed: int) -> tuple[float, bool]:
    """Without depth: the focal length that makes K^T F K closest to an essential matrix over several frame pairs."""
    import cv2

    frames = _frame_choice(sample, 6)
    mats = []
    for t in frames:
        seen = sample.vis[t]
        a = sample.uv[sample.ref, seen].numpy()
        b = sample.uv[t, seen].numpy()
        if a.shape[0] < 16 or float(np.median(np.linalg.norm(b - a, axis=1))) < 1.0:
            continue
        cv2.setRNGSeed(seed)
        fmat, mask = cv2.findFundamentalMat(a, b, cv2.FM_RANSAC, threshold, 0.999)
        if fmat is None or fmat.shape != (3, 3) or mask is None or int(mask.sum()) < 16:
            continue
        mats.append(torch.from_numpy(fmat).to(_DT))
    if not mats:
        return cam.f, False
    fs = torch.stack(mats)
    focals = _focal_grid(width)

    def cost(f: float) -> float:
        k = cam.with_focal(f).matrix()
        e = k.T @ fs @ k
        s = torch.linalg.svdvals(e)
        return float(((s[:, 0] - s[:, 1]) / (s[:, 0] + s[:, 1]).clamp_min(1e-12)).mean())

    return _pick_focal(cost, focals, cam.f)


# ---------------------------------------------------------------------------------------------------
# Initial poses
# ---------------------------------------------------------------------------------------------------


def _poses_pnp(sample: _Sample, cam: _Intrinsics, log_depth: torch.Tensor, threshold: float, seed: int, keep: torch.Tensor | None = None):
    """Per-frame pose from PnP in RANSAC on the reference points ``exp(log_depth) · ray``: rot ``[T, 3, 3]``, trans ``[T, 3]``, failed frames."""
    import cv2

    num = sample.uv.shape[0]
    k = cam.numpy()
    points = (sample.rays(cam) * log_depth.exp()[:, None]).numpy()
    known = log_depth.isfinite()
    if keep is not None:
        known &= keep
    rot = torch.eye(3, dtype=_DT).repeat(num, 1, 1)
    trans = torch.zeros(num, 3, dtype=_DT)
    ok = torch.zeros(num, dtype=torch.bool)
    ok[sample.ref] = True
    for t in range(num):
        if t == sample.ref:
            continue
        seen = (sample.vis[t] & known).numpy()
        if seen.sum() < 8:
            continue
        cv2.setRNGSeed(seed + t)
        found, rvec, tvec, inliers = cv2.solvePnPRansac(
            points[seen], sample.uv[t].numpy()[seen], k, None, iterationsCount=200, reprojectionError=float(threshold), confidence=0.999, flags=cv2.SOLVEPNP_SQPNP
        )
        if not found or inliers is None or len(inliers) < max(6, 0.1 * seen.sum()):
            continue
        idx = inliers[:, 0]
        # Polish on the inliers (Levenberg-Marquardt).
        rvec, tvec = cv2.solvePnPRefineLM(points[seen][idx], sample.uv[t].numpy()[seen][idx], k, None, rvec, tvec)
        rot[t] = torch.from_numpy(cv2.Rodrigues(rvec)[0]).to(_DT)
        trans[t] = torch.from_numpy(tvec.reshape(3)).to(_DT)
        ok[t] = True
    failed = [t for t in range(num) if not ok[t]]
    if failed:
        rot, trans = _fill_poses(rot, trans, ok)
    return rot, trans, failed


def _fill_poses(rot: torch.Tensor, trans: torch.Tensor, ok: torch.Tensor):
    """Frames without a pose take the nearest solved frame's (the refinement then moves them)."""
    good = ok.nonzero().squeeze(1)
    rot, trans = rot.clone(), trans.clone()
    for t in (~ok).nonzero().squeeze(1).tolist():
        near = int(good[(good - t).abs().argmin()])
        rot[t], trans[t] = rot[near], trans[near]
    return rot, trans


@dataclass
class _MotionInit:
    rot: torch.Tensor
    trans: torch.Tensor
    log_depth: torch.Tensor | None
    parallax_deg: float
    rotation_only: bool
    failed: list


def _init_motion(sample: _Sample, cam: _Intrinsics, threshold: float, seed: int) -> _MotionInit:
    """Without depth: two-view start on the pair with the most parallax, triangulation, PnP for the rest.

    Parallax is judged by comparing a homography with the essential matrix on its inliers, both at
    the tracks' noise level (4x the median Sampson distance): a camera that only turns moves every
    static point by one homography, so the homography then explains as many tracks as the essential
    matrix; with parallax it explains only one plane (a wall). Of the frames where the homography
    explains clearly fewer (under 90 %), the one with the widest median triangulation angle starts
    the reconstruction.
    (A scene that is one plane is degenerate for the essential matrix too, and is solved as turning.)
    """
    import cv2

    num, ref = sample.uv.shape[0], sample.ref
    k = cam.numpy()
    rays = sample.rays(cam)
    best = None  # (angle, t, R, t, inlier mask)
    widest = 0.0
    for t in _frame_choice(sample, 8):
        seen = sample.vis[t]
        a, b = sample.uv[ref, seen].numpy(), sample.uv[t, seen].numpy()
        if a.shape[0] < 16:
            continue
        cv2.setRNGSeed(seed + t)
        try:
            e, mask = cv2.findEssentialMat(a, b, k, cv2.RANSAC, 0.999, float(threshold))
            if e is None or e.shape != (3, 3):
                continue
            _, r, tv, mask = cv2.recoverPose(e, a, b, k, mask=mask)
        except cv2.error:  # degenerate motion (e.g. an exact pure rotation): the five-point solver has no root
            continue
        inl_seen = mask.reshape(-1) > 0
        inl = torch.zeros(sample.count, dtype=torch.bool)
        inl[seen.nonzero().squeeze(1)] = torch.from_numpy(inl_seen)
        if int(inl.sum()) < 16:
            continue
        # Both models judged at the tracks' own noise level (the essential matrix's residual), so a
        # small image whose parallax is under the RANSAC threshold is still told apart from a turn.
        kinv = np.linalg.inv(k)
        noise = _sampson_px(kinv.T @ e @ kinv, a[inl_seen], b[inl_seen])
        tight = max(4.0 * float(np.median(noise)), 0.25)
        hom, _ = cv2.findHomography(a[inl_seen], b[inl_seen], cv2.RANSAC, tight)
        planar = 0
        if hom is not None:
            planar = int((np.linalg.norm(cv2.perspectiveTransform(a[inl_seen][:, None], hom)[:, 0] - b[inl_seen], axis=1) <= tight).sum())
        epipolar = int((noise <= tight).sum())
        r, tv = torch.from_numpy(r).to(_DT), torch.from_numpy(tv.reshape(3)).to(_DT)
        angle = _median_parallax(rays[inl], sample.uv[t, inl], cam, r)
        if planar >= _PLANAR_SHARE * epipolar:
            continue
        widest = max(widest, angle)
        if best is None or angle > best[0]:
            best = (angle, t, r, tv, inl)
    if best is None or best[0] < _MIN_PARALLAX_DEG:
        rot, failed = _rotations_from_homographies(sample, cam, threshold, seed)
        return _MotionInit(rot, torch.zeros(num, 3, dtype=_DT), None, widest, True, failed)
    parallax, key, r_key, t_key, inl = best

    rot = torch.eye(3, dtype=_DT).repeat(num, 1, 1)
    trans = torch.zeros(num, 3, dtype=_DT)
    rot[key], trans[key] = r_key, t_key
    two = torch.zeros(num, dtype=torch.bool)
    two[key] = True
    logd = _triangulate_log_depth(rays, sample.uv, sample.vis & two[:, None], cam, rot, trans, keep=inl)
    if int(logd.isfinite().sum()) < 8:
        raise ValueError("tracks: too few points could be triangulated from the two most distant views; the clip may be too short or the camera too still")
    logd = logd - logd[logd.isfinite()].median()  # median depth 1; PnP below follows this scale
    rot, trans, failed = _poses_pnp(sample, cam, logd, threshold, seed)
    logd = _triangulate_log_depth(rays, sample.uv, sample.vis, cam, rot, trans)
    return _MotionInit(rot, trans, logd, parallax, False, failed)


def _sampson_px(fmat: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N]`` Sampson distance (≈ pixels) of matches ``a → b`` (``[N, 2]``) to the fundamental matrix."""
    x1 = np.concatenate([a, np.ones((a.shape[0], 1))], 1)
    x2 = np.concatenate([b, np.ones((b.shape[0], 1))], 1)
    fx1 = x1 @ fmat.T
    ftx2 = x2 @ fmat
    num = np.einsum("ni,ni->n", x2, fx1) ** 2
    den = fx1[:, 0] ** 2 + fx1[:, 1] ** 2 + ftx2[:, 0] ** 2 + ftx2[:, 1] ** 2
    return np.sqrt(num / np.maximum(den, 1e-18))


def _median_parallax(rays: torch.Tensor, uv_t: torch.Tensor, cam: _Intrinsics, r: torch.Tensor) -> float:
    """Median angle (degrees) between each point's reference ray and its ray from frame t, both turned
    into the reference frame (so a pure rotation gives 0: it maps the rays onto each other)."""
    a = rays / rays.norm(dim=-1, keepdim=True)
    b = cam.rays(uv_t) @ r  # R^T x, row-vector form
    b = b / b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1).clamp(-1, 1)
    return float(torch.rad2deg(torch.arccos(cos)).median())


def _rotations_from_homographies(sample: _Sample, cam: _Intrinsics, threshold: float, seed: int):
    """Pure rotation: R_t = K⁻¹ H_t K (the nearest rotation) from a RANSAC homography ref → t."""
    import cv2

    num, ref = sample.uv.shape[0], sample.ref
    k = cam.matrix()
    rot = torch.eye(3, dtype=_DT).repeat(num, 1, 1)
    ok = torch.zeros(num, dtype=torch.bool)
    ok[ref] = True
    for t in range(num):
        if t == ref:
            continue
        seen = sample.vis[t]
        if int(seen.sum()) < 8:
            continue
        cv2.setRNGSeed(seed + t)
        h, mask = cv2.findHomography(sample.uv[ref, seen].numpy(), sample.uv[t, seen].numpy(), cv2.RANSAC, float(threshold))
        if h is None:
            continue
        m = torch.linalg.inv(k) @ torch.from_numpy(h).to(_DT) @ k
        m = m / torch.linalg.det(m).abs().pow(1 / 3) * torch.sign(torch.linalg.det(m))
        rot[t] = _nearest_rotation(m)
        ok[t] = True
    failed = [t for t in range(num) if not ok[t]]
    if failed:
        rot, _ = _fill_poses(rot, torch.zeros(num, 3, dtype=_DT), ok)
    return rot, failed


def _triangulate_log_depth(rays, uv, vis, cam: _Intrinsics, rot, trans, keep=None, current=None) -> torch.Tensor:
    """Log depth ``[N]`` of each point along its reference ray, least squares over the frames it is seen in.

    A point X = d·b seen at pixel ray x_t in frame t satisfies x_t × (R_t b d + t_t) = 0, linear in d:
    d = −Σ (a·c) / Σ (a·a), a = x_t × R_t b, c = x_t × t_t. Points with too little parallax, behind a
    camera or outside ``keep`` get ``current`` (NaN if None).
    """
    x = cam.rays(uv)  # [T, N, 3]
    rb = torch.einsum("tij,nj->tni", rot, rays)
    a = torch.linalg.cross(x, rb, dim=-1)
    c = torch.linalg.cross(x, trans[:, None].expand_as(x), dim=-1)
    w = vis.to(_DT)
    num_ = -(w * (a * c).sum(-1)).sum(0)
    den = (w * (a * a).sum(-1)).sum(0)
    d = num_ / den.clamp_min(1e-18)
    # Parallax: the widest angle between the reference ray and a seeing camera's ray to the point.
    centres = -torch.einsum("tji,tj->ti", rot, trans)  # [T, 3] camera centres in the reference frame
    point = rays * d[:, None]
    to_point = point[None] - centres[:, None]
    bn = rays / rays.norm(dim=-1, keepdim=True)
    cos = (to_point * bn[None]).sum(-1) / to_point.norm(dim=-1).clamp_min(1e-18)
    angle = torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
    angle = torch.where(vis, angle, torch.zeros_like(angle)).amax(0)
    # In front of every camera that sees it.
    z = torch.einsum("tij,nj->tni", rot, point)[..., 2] + trans[:, None, 2]
    front = ((z > 0) | ~vis).all(0) & (d > 0)
    good = front & (angle >= _MIN_POINT_PARALLAX_DEG) & (den > 0)
    if keep is not None:
        good &= keep
    out = torch.where(good, d.clamp_min(1e-12).log(), torch.full_like(d, float("nan")))
    if current is not None:
        out = torch.where(good, out, current)
    return out


def _normalise_scale(rot, trans, logd, static):
    """Scale-free solve: world units so that the median static depth at the reference is 1."""
    use = logd.isfinite() & static
    if int(use.sum()) == 0:
        use = logd.isfinite()
    if int(use.sum()) == 0:
        return rot, trans, logd
    shift = logd[use].median()
    return rot, trans / shift.exp(), logd - shift


# ---------------------------------------------------------------------------------------------------
# Joint refinement
# ---------------------------------------------------------------------------------------------------


_DELTA_PX = 2.0  # pseudo-Huber scale of the reprojection error (pixels)
_DELTA_Z = 2.0  # ... of the depth error, in units of _SIGMA_LOGZ


def _robust(r2: torch.Tensor, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cauchy cost δ² log(1 + r²/δ²) of squared residuals and its IRLS weight 1/(1 + r²/δ²): redescending,
    so a moving point the split missed has almost no pull on the cameras (the start comes from RANSAC)."""
    u = r2 / (delta * delta)
    return delta * delta * torch.log1p(u), 1 / (1 + u)


def _bundle_adjust(sample: _Sample, use: torch.Tensor, cam: _Intrinsics, rot, trans, logd, *, has_depth: bool, estimate_focal: bool, mode: str, iterations: int):
    """Refine every pose (the reference held at identity), the points' log depths and the focal length.

    Levenberg–Marquardt with analytic Jacobians and IRLS weights for a Cauchy loss (δ = 2 px) on
    the reprojection error of every visible observation of the ``use`` tracks; with depth, also on the
    log-depth error against the measured depth in each frame (σ = 5 %) and at the reference. Points are
    parametrised along their reference rays (X = e^ρ · K⁻¹[u, v, 1]), poses by a left rotation update
    exp(ω) R and a translation update; each step eliminates the points by the Schur complement, so it
    costs one dense solve of 6 (T − 1) + 1 unknowns. Without depth the scale is free (the damping
    holds it; the caller renormalises). Rotation mode has no points: the reference rays are turned.

    Returns rot ``[T, 3, 3]``, trans ``[T, 3]``, log depth ``[N]`` (NaN outside ``use``; None in
    rotation mode) and the focal length.
    """
    ref = sample.ref
    num = sample.uv.shape[0]
    uv = sample.uv[:, use]
    vis = sample.vis[:, use].clone()
    vis[ref] = False
    n = uv.shape[1]
    npose = 3 if mode == "rotation" else 6
    uv_ref = uv[ref]
    rho = logd[use].clone() if mode != "rotation" else torch.zeros(n, dtype=_DT)
    if has_depth:
        d_obs = sample.depth[:, use]
        dvis = vis & (d_obs > 0)
        dlog = torch.where(d_obs > 0, d_obs.clamp_min(1e-12).log(), torch.zeros_like(d_obs))
        rho_ref = rho.clone()
    state = (rot.clone(), trans.clone(), rho, float(cam.f))
    scale = float(max(uv.abs().max(), 1.0))

    def evaluate(rot_, trans_, rho_, f, jacobians: bool):
        b = torch.stack([(uv_ref[:, 0] - cam.cx) / f, (uv_ref[:, 1] - cam.cy) / f, torch.ones(n, dtype=_DT)], -1)
        x = b if mode == "rotation" else b * rho_.exp()[:, None]
        rx = torch.einsum("tij,nj->tni", rot_, x)
        p = rx if mode == "rotation" else rx + trans_[:, None]
        z = p[..., 2]
        front = z > 1e-9 * scale
        zs = torch.where(front, z, torch.ones_like(z))
        pred = torch.stack([f * p[..., 0] / zs + cam.cx, f * p[..., 1] / zs + cam.cy], -1)
        r = pred - uv
        ok = vis & front
        cost_px, w_px = _robust(r.square().sum(-1), _DELTA_PX)
        cost = (cost_px * ok).sum() + ((vis & ~front).sum() * 1e6)
        terms = {}
        if has_depth:
            rz = (zs.log() - dlog) / _SIGMA_LOGZ
            okz = dvis & front
            cz, wz = _robust(rz.square(), _DELTA_Z)
            rp = (rho_ - rho_ref) / _SIGMA_LOGZ
            cp, wp = _robust(rp.square(), _DELTA_Z)
            cost = cost + (cz * okz).sum() + cp.sum()
            terms.update(rz=rz, wz=wz * okz, rp=rp, wp=wp)
        if not jacobians:
            return float(cost)
        # d(pixel)/dP, [T, N, 2, 3]
        iz = 1 / zs
        dudp = torch.zeros(*z.shape, 2, 3, dtype=_DT)
        dudp[..., 0, 0] = f * iz
        dudp[..., 1, 1] = f * iz
        dudp[..., 0, 2] = -f * p[..., 0] * iz * iz
        dudp[..., 1, 2] = -f * p[..., 1] * iz * iz
        dpdw = -_skew(rx)  # left update: exp(ω) R X ≈ R X + ω × R X
        dpdx = [dpdw] if mode == "rotation" else [dpdw, torch.eye(3, dtype=_DT).expand(*z.shape, 3, 3)]
        dpdc = torch.cat(dpdx, dim=-1)  # [T, N, 3, npose]
        dxdphi = torch.stack([-x[:, 0], -x[:, 1], torch.zeros(n, dtype=_DT)], -1)  # f ∂X/∂f (log focal)
        dpdphi = torch.einsum("tij,nj->tni", rot_, dxdphi)
        jc = dudp @ dpdc  # [T, N, 2, npose]
        jl = (dudp @ rx[..., None])[..., 0]  # [T, N, 2]  (∂P/∂ρ = R X)
        jf = p[..., :2] * iz[..., None] * f + (dudp @ dpdphi[..., None])[..., 0]
        w = (w_px * ok).to(_DT)
        blocks = [(jc, jl, jf, r, w)]
        if has_depth:
            kz = (1 / (_SIGMA_LOGZ * zs))[..., None]
            jcz = (dpdc[..., 2, :] * kz)[..., None, :]
            jlz = (rx[..., 2:3] * kz)
            jfz = (dpdphi[..., 2:3] * kz)
            blocks.append((jcz, jlz, jfz, terms["rz"][..., None], terms["wz"].to(_DT)))
        return float(cost), blocks, terms

    def normal_equations(blocks, terms):
        a_cc = torch.zeros(num, npose, npose, dtype=_DT)
        g_c = torch.zeros(num, npose, dtype=_DT)
        b_cl = torch.zeros(num, n, npose, dtype=_DT)
        d_ll = torch.zeros(n, dtype=_DT)
        g_l = torch.zeros(n, dtype=_DT)
        a_cf = torch.zeros(num, npose, dtype=_DT)
        a_lf = torch.zeros(n, dtype=_DT)
        a_ff = torch.zeros((), dtype=_DT)
        g_f = torch.zeros((), dtype=_DT)
        for jc, jl, jf, r, w in blocks:
            wjc = jc * w[..., None, None]
            rows = wjc.reshape(num, -1, npose).transpose(1, 2)  # [T, npose, N·k]: batched matmuls
            a_cc += rows @ jc.reshape(num, -1, npose)
            g_c += (rows @ r.reshape(num, -1, 1))[..., 0]
            a_cf += (rows @ jf.reshape(num, -1, 1))[..., 0]
            b_cl += (wjc * jl[..., None]).sum(2)
            wjl = jl * w[..., None]
            d_ll += (wjl * jl).sum((0, 2))
            g_l += (wjl * r).sum((0, 2))
            a_lf += (wjl * jf).sum((0, 2))
            a_ff += (jf * jf * w[..., None]).sum()
            g_f += (jf * r * w[..., None]).sum()
        if has_depth:  # prior on ρ at the reference: r = (ρ − ρ_ref) / σ
            d_ll += terms["wp"] / _SIGMA_LOGZ**2
            g_l += terms["wp"] * terms["rp"] / _SIGMA_LOGZ
        return a_cc, g_c, b_cl, d_ll, g_l, a_cf, a_lf, a_ff, g_f

    lam = 1e-3
    cost, blocks, terms = evaluate(*state, jacobians=True)
    free = torch.ones(num, dtype=torch.bool)
    free[ref] = False
    for _ in range(iterations):
        a_cc, g_c, b_cl, d_ll, g_l, a_cf, a_lf, a_ff, g_f = normal_equations(blocks, terms)
        m = num * npose + (1 if estimate_focal else 0)
        a = torch.zeros(m, m, dtype=_DT)
        for t in range(num):
            a[t * npose : (t + 1) * npose, t * npose : (t + 1) * npose] = a_cc[t]
        b = b_cl.permute(0, 2, 1).reshape(num * npose, n)
        g_m = g_c.reshape(-1)
        if estimate_focal:
            a[-1, :-1] = a_cf.reshape(-1)
            a[:-1, -1] = a_cf.reshape(-1)
            a[-1, -1] = a_ff
            b = torch.cat([b, a_lf[None]])
            g_m = torch.cat([g_m, g_f[None]])
        fixed = torch.zeros(m, dtype=torch.bool)
        fixed[ref * npose : (ref + 1) * npose] = True
        a[fixed] = 0
        a[:, fixed] = 0
        b[fixed] = 0
        g_m[fixed] = 0
        has_points = mode != "rotation"
        improved = False
        for _attempt in range(8):
            diag = a.diagonal().clone()
            ad = a + torch.diag(lam * diag.clamp_min(1e-9) + fixed.to(_DT) + 1e-12)
            if has_points:
                dd = d_ll * (1 + lam) + 1e-12
                s_mat = ad - (b / dd) @ b.T
                rhs = -(g_m - b @ (g_l / dd))
            else:
                s_mat, rhs = ad, -g_m
            try:
                step_m = torch.linalg.solve(s_mat, rhs)
            except RuntimeError:
                lam *= 10
                continue
            step_l = (-g_l - b.T @ step_m) / dd if has_points else None
            cams = step_m[: num * npose].reshape(num, npose)
            new_rot = _so3_exp(cams[:, :3]) @ state[0]
            new_trans = state[1] + (cams[:, 3:] if npose == 6 else 0)
            new_rho = state[2] + step_l if has_points else state[2]
            new_f = state[3] * math.exp(float(step_m[-1])) if estimate_focal else state[3]
            new_cost = evaluate(new_rot, new_trans, new_rho, new_f, jacobians=False)
            if new_cost < cost:
                improved = True
                rel = (cost - new_cost) / max(cost, 1e-30)
                state = (new_rot, new_trans, new_rho, new_f)
                cost, blocks, terms = evaluate(*state, jacobians=True)
                lam = max(lam / 3, 1e-9)
                break
            lam *= 5
        if not improved or rel < 1e-9:
            break
    rot_out, trans_out, rho_out, f_out = state
    out = None
    if mode != "rotation":
        out = torch.full_like(logd, float("nan"))
        out[use] = rho_out
    return rot_out, trans_out if mode != "rotation" else torch.zeros_like(trans_out), out, f_out


# ---------------------------------------------------------------------------------------------------
# Static / moving split
# ---------------------------------------------------------------------------------------------------


def _classify_sample(sample: _Sample, cam, rot, trans, logd, has_depth: bool, threshold: float, vote: float = _BA_VOTE) -> torch.Tensor:
    """``[N]`` bool: sampled tracks that agree with the cameras in at least ``vote`` of the frames they are seen in
    (stricter than the final split: the refinement wants clean inliers)."""
    ref = sample.ref
    rays = sample.rays(cam)
    if logd is None:  # rotation only: points at infinity
        p = torch.einsum("tij,nj->tni", rot, rays)
        z = p[..., 2]
        uv = torch.stack([cam.f * p[..., 0] / z.clamp_min(1e-9) + cam.cx, cam.f * p[..., 1] / z.clamp_min(1e-9) + cam.cy], -1)
        known = torch.ones(sample.count, dtype=torch.bool)
    else:
        known = logd.isfinite()
        points = rays * torch.where(known, logd, torch.zeros_like(logd)).exp()[:, None]
        uv, z = _project(cam, rot, trans, points)
    err = (uv - sample.uv).norm(dim=-1)
    ok = (err <= threshold) & (z > 0)
    if has_depth:
        d = sample.depth
        ok &= ((z.clamp_min(1e-12) / d.clamp_min(1e-12)).log().abs() <= _DEPTH_TOL) | (d <= 0)
    seen = sample.vis.clone()
    seen[ref] = False
    votes = (ok & seen).sum(0).to(_DT)
    count = seen.sum(0).to(_DT)
    return known & ((votes >= vote * count) | (count == 0))


@dataclass
class _Dense:
    static: torch.Tensor
    reprojection_px: float
    inlier_ratio: float
    threshold: float
    log_depth: torch.Tensor | None  # [H, W] (motion mode)


def _classify_dense(tracks: Tracks3D, cam: _Intrinsics, rot, trans, mode: str, threshold: float) -> _Dense:
    """Every reference pixel against the solved cameras: static mask, error figures, and (motion) its depth."""
    num, h, w = tracks.num_frames, tracks.height, tracks.width
    ref = tracks.ref_frame
    rays = cam.rays(tracks.uv[ref].detach().to("cpu", _DT).reshape(-1, 2))
    vis_all = tracks.visible().detach().to("cpu").reshape(num, -1)
    logd = None
    if mode == "depth":
        d_ref = tracks.depth[ref].detach().to("cpu", _DT).reshape(-1)
        known = d_ref > 0
        points = rays * d_ref.clamp_min(1e-12)[:, None]
    elif mode == "motion":
        # Every pixel is judged at its least-squares depth (at infinity when that is not in front):
        # a far static pixel with too little parallax for a depth still agrees with the cameras.
        # Twice: the second triangulation leaves out the observations the first one could not explain
        # (a track dragged along by an occluder for a few frames), so they do not bias its depth.
        weights = vis_all
        for again in (True, False):
            raw, good = _dense_triangulation(tracks, cam, rot, trans, rays, weights)
            finite = raw > 0
            points = rays * torch.where(finite, raw, torch.ones_like(raw))[:, None]
            if again:
                agree = torch.zeros_like(vis_all)
                for t in range(num):
                    uv_t = tracks.uv[t].detach().to("cpu", _DT).reshape(-1, 2)
                    p = torch.where(finite[:, None], points @ rot[t].T + trans[t], points @ rot[t].T)
                    pred = torch.stack([cam.f * p[:, 0] / p[:, 2].clamp_min(1e-9) + cam.cx, cam.f * p[:, 1] / p[:, 2].clamp_min(1e-9) + cam.cy], -1)
                    agree[t] = (p[:, 2] > 0) & ((pred - uv_t).norm(dim=-1) <= 2 * threshold)
                enough = (vis_all & agree).sum(0) >= 2
                weights = torch.where(enough[None], vis_all & agree, vis_all)
        logd = torch.where(good, raw.log(), torch.full_like(raw, float("nan")))
        known = torch.ones(h * w, dtype=torch.bool)
    else:
        known = torch.ones(h * w, dtype=torch.bool)
        points = rays
    votes = torch.zeros(h * w, dtype=_DT)
    count = torch.zeros(h * w, dtype=_DT)
    errors = []
    for t in range(num):
        if t == ref:
            continue
        seen = vis_all[t]
        if not bool(seen.any()):
            continue
        uv_t = tracks.uv[t].detach().to("cpu", _DT).reshape(-1, 2)
        if mode == "depth":
            p = points @ rot[t].T + trans[t]
        elif mode == "motion":
            p = torch.where(finite[:, None], points @ rot[t].T + trans[t], points @ rot[t].T)
        else:
            p = points @ rot[t].T
        z = p[:, 2]
        pred = torch.stack([cam.f * p[:, 0] / z.clamp_min(1e-9) + cam.cx, cam.f * p[:, 1] / z.clamp_min(1e-9) + cam.cy], -1)
        err = torch.where(z > 0, (pred - uv_t).norm(dim=-1), torch.full_like(z, float("inf")))
        ok = err <= threshold
        if mode == "depth":
            d_t = tracks.depth[t].detach().to("cpu", _DT).reshape(-1)
            ok &= ((z.clamp_min(1e-12) / d_t.clamp_min(1e-12)).log().abs() <= _DEPTH_TOL) | (d_t <= 0)
        votes += (ok & seen & known).to(_DT)
        count += (seen & known).to(_DT)
        errors.append((err, ok, seen & known))
    moving = known & (votes < _STATIC_VOTE * count) & (count > 0)
    # Thin lines of disagreement (tracks sliding along a depth edge, a mis-tracked texture seam) are
    # not objects: an opening removes them, a closing fills pin-holes in the objects.
    static = known & ~_clean_mask(moving.reshape(h, w), max(1, round(max(h, w) / 256))).reshape(-1)
    # Error figures over the static pixels' visible observations.
    static_errs, inliers, total = [], 0, 0
    for err, ok, seen in errors:
        sel = seen & static
        static_errs.append(err[sel])
        inliers += int((ok & seen).sum())
        total += int(seen.sum())
    allerr = torch.cat(static_errs) if static_errs else torch.zeros(0, dtype=_DT)
    allerr = allerr[allerr.isfinite()]
    if allerr.numel() > 4_000_000:
        allerr = allerr[torch.arange(4_000_000) * (allerr.numel() // 4_000_000)]
    reproj = float(allerr.median()) if allerr.numel() else float("nan")
    return _Dense(
        static=static.reshape(h, w),
        reprojection_px=reproj,
        inlier_ratio=inliers / total if total else 0.0,
        threshold=threshold,
        log_depth=None if logd is None else logd.reshape(h, w),
    )


def _clean_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Morphological opening then closing of ``mask [H, W]`` with a (2 radius + 1)² square."""
    import torch.nn.functional as F

    k = 2 * radius + 1

    def dilate(m):
        return F.max_pool2d(m[None, None].float(), k, stride=1, padding=radius)[0, 0] > 0.5

    def erode(m):
        return ~dilate(~m)

    return erode(dilate(dilate(erode(mask))))


def _dense_triangulation(tracks: Tracks3D, cam: _Intrinsics, rot, trans, rays, vis_all: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth ``[H·W]`` of every reference pixel along its ray (least squares, see
    :func:`_triangulate_log_depth`; one frame at a time), and ``[H·W]`` bool where it is trustworthy:
    in front of every camera that sees it, with enough parallax."""
    num = tracks.num_frames
    n = rays.shape[0]
    num_ = torch.zeros(n, dtype=_DT)
    den = torch.zeros(n, dtype=_DT)
    frames = []
    for t in range(num):
        if t == tracks.ref_frame or not bool(vis_all[t].any()):
            continue
        x = cam.rays(tracks.uv[t].detach().to("cpu", _DT).reshape(-1, 2))
        a = torch.linalg.cross(x, rays @ rot[t].T, dim=-1)
        c = torch.linalg.cross(x, trans[t].expand_as(x), dim=-1)
        wv = vis_all[t].to(_DT)
        num_ -= wv * (a * c).sum(-1)
        den += wv * (a * a).sum(-1)
        frames.append(t)
    d = num_ / den.clamp_min(1e-18)
    centres = -torch.einsum("tji,tj->ti", rot, trans)
    bn = rays / rays.norm(dim=-1, keepdim=True)
    point = rays * d[:, None]
    widest = torch.zeros(n, dtype=_DT)
    front = d > 0
    for t in frames:
        to_point = point - centres[t]
        cos = (to_point * bn).sum(-1) / to_point.norm(dim=-1).clamp_min(1e-18)
        angle = torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
        seen = vis_all[t]
        widest = torch.where(seen, torch.maximum(widest, angle), widest)
        z = (point @ rot[t].T + trans[t])[:, 2]
        front &= (z > 0) | ~seen
    good = front & (widest >= _MIN_POINT_PARALLAX_DEG) & (den > 0)
    return d, good


# ---------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------


def _depth_from_motion(tracks: Tracks3D, cam: _Intrinsics, rot, trans, dense: _Dense) -> DepthVideo:
    """The static scene's triangulated depth in every frame (rasterised from the tracks; unknown elsewhere)."""
    num, h, w = tracks.num_frames, tracks.height, tracks.width
    logd = dense.log_depth.reshape(-1)
    use = logd.isfinite() & dense.static.reshape(-1)
    rays = cam.rays(tracks.uv[tracks.ref_frame].detach().to("cpu", _DT).reshape(-1, 2))
    points = rays[use] * logd[use].exp()[:, None]
    vis_all = tracks.visible().detach().to("cpu").reshape(num, -1)[:, use]
    depth = torch.zeros(num, h, w)
    valid = torch.zeros(num, h, w, dtype=torch.bool)
    for t in range(num):
        z = (points @ rot[t].T + trans[t])[:, 2]
        seen = vis_all[t] & (z > 0)
        uv = tracks.uv[t].detach().to("cpu", _DT).reshape(-1, 2)[use][seen]
        depth[t], valid[t] = rasterise_depth(uv, z[seen], h, w)
    return DepthVideo(depth, kind="relative", valid=valid)


def rasterise_depth(uv: torch.Tensor, z: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth image ``[H, W]`` and valid mask from points at pixels ``uv [N, 2]`` with depth ``z [N]``.

    Each point writes to its nearest pixel, the nearest point winning (a z-buffer); pixels no point
    lands on take the nearest of the points among whose 4 surrounding pixels they are, which closes
    the small gaps a track field opens where it stretches.
    """
    def splat(x: torch.Tensor, y: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        flat = torch.full((height * width,), float("inf"), dtype=torch.float64)
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        flat.scatter_reduce_(0, (y * width + x)[inside], values[inside], reduce="amin")
        return flat

    z = z.double()
    nearest = splat(uv[:, 0].round().long(), uv[:, 1].round().long(), z) if uv.shape[0] else torch.full((height * width,), float("inf"), dtype=torch.float64)
    if uv.shape[0]:
        x0, y0 = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        around = torch.stack([splat(x0 + dx, y0 + dy, z) for dx in (0, 1) for dy in (0, 1)]).amin(0)
        nearest = torch.where(nearest.isfinite(), nearest, around)
    valid = nearest.isfinite()
    depth = torch.where(valid, nearest, torch.zeros_like(nearest)).float()
    return depth.reshape(height, width), valid.reshape(height, width)


def depth_from_tracks(tracks: Tracks3D) -> DepthVideo:
    """The tracks' own depth rasterised into every frame (where a visible track lands), ``kind="metric"``
    when the tracks carry depth. Used as the depth output of a solve whose tracks had depth."""
    num, h, w = tracks.num_frames, tracks.height, tracks.width
    depth = torch.zeros(num, h, w)
    valid = torch.zeros(num, h, w, dtype=torch.bool)
    for t in range(num):
        seen = tracks.visible()[t].reshape(-1) & (tracks.depth[t].reshape(-1) > 0)
        depth[t], valid[t] = rasterise_depth(tracks.uv[t].reshape(-1, 2)[seen].cpu(), tracks.depth[t].reshape(-1)[seen].cpu(), h, w)
    return DepthVideo(depth, kind="metric" if _has_depth(tracks) else "relative", valid=valid)


def _rebase(rot, trans, cam: _Intrinsics, ref: int, num: int, width: int, height: int) -> CameraPath:
    """Poses relative to the reference frame → the path with frame 0 at the identity."""
    w2c = torch.eye(4, dtype=_DT).repeat(num, 1, 1)
    w2c[:, :3, :3] = rot
    w2c[:, :3, 3] = trans
    if ref != 0:
        w2c = w2c @ torch.linalg.inv(w2c[0])
        w2c[:, 3] = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=_DT)
    w2c[:, :3, :3] = _nearest_rotation(w2c[:, :3, :3])
    k = cam.matrix().float().expand(num, 3, 3).clone()
    return CameraPath(k, w2c.float(), width, height)
