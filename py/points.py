"""PointVid: 3D point maps aligned with video frames, and a 3D point regulariser for tracks.

Two jobs (see the PointVid spec):

- :func:`point_maps` writes the 3D position of foreground-biased samples of the reference frame into
  the pixel grid of every frame at their tracked position (the paper's "point video"), normalised per
  clip to [−1, 1] with the normalisation kept so it can be inverted (:class:`PointMaps`).
- :func:`regularize_points` removes noise, outliers and tearing from 3D tracks ``[T, N, 3]`` by
  minimising a robust data term + local rigidity over k nearest neighbours (found once, in the
  reference frame) + temporal smoothness. Rigid motion (translating, rotating, accelerating) is a
  zero of every term, so it passes through unchanged.

The same terms are exposed as differentiable losses (:func:`rigidity_loss`, :func:`smoothness_loss`,
:func:`misalignment_loss`) for fine-tuning loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .checks import TensorData, check_finite_number, check_positive_int, check_tensor
from .tracking import Tracks3D

# Cauchy tuning: residuals around 3x the typical one get half weight.
_ROBUST_SCALE = 3.0
# Data weight kept by invisible points: their observation is a guess, so their neighbours move them,
# but the system stays well posed where a whole region is unseen.
_INVISIBLE_WEIGHT = 1e-2


# ---------------------------------------------------------------------------------------------------
# Point maps (PointVid data)
# ---------------------------------------------------------------------------------------------------


@dataclass
class PointMaps(TensorData):
    """A PointVid point video and how it was normalised.

    Attributes:
        points: ``[T, H, W, 3]`` normalised xyz in [−1, 1] at each sampled point's tracked pixel, 0 elsewhere.
        valid: ``[T, H, W]`` bool, True where a point was written.
        center: ``[3]`` camera-space centre of the clip's written points.
        scale: ``[]`` half of the largest extent (one scale for all axes, so shapes are not distorted).
        index: ``[M]`` linear indices (row · W + col) of the sampled reference pixels.
    """

    points: torch.Tensor
    valid: torch.Tensor
    center: torch.Tensor
    scale: torch.Tensor
    index: torch.Tensor

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("PointMaps.points", self.points, ("T", "H", "W", 3), dims=dims)
        check_tensor("PointMaps.valid", self.valid, ("T", "H", "W"), kind="bool", dims=dims)
        check_tensor("PointMaps.center", self.center, (3,))
        check_tensor("PointMaps.scale", self.scale, ())
        if float(self.scale) <= 0:
            raise ValueError(f"PointMaps.scale: expected a positive scale, got {float(self.scale)}")
        if self.index.dim() != 1 or self.index.is_floating_point():
            raise ValueError(f"PointMaps.index: expected an integer tensor [M], got {self.index.dtype} {list(self.index.shape)}")

    def normalize(self, xyz: torch.Tensor) -> torch.Tensor:
        """Camera-space ``[..., 3]`` → normalised ``[..., 3]``."""
        return (xyz - self.center) / self.scale

    def denormalize(self, points: torch.Tensor) -> torch.Tensor:
        """Normalised ``[..., 3]`` → camera-space ``[..., 3]`` (the inverse of :meth:`normalize`)."""
        return points * self.scale + self.center

    def image(self) -> torch.Tensor:
        """``[T, H, W, 3]`` colours in 0..1: (x, y, z) ↦ (r, g, b) = (p + 1) / 2, black where nothing was written."""
        return torch.where(self.valid[..., None], (self.points + 1) * 0.5, torch.zeros_like(self.points)).clamp(0, 1)


def motion_foreground(tracks: Tracks3D) -> torch.Tensor:
    """``[H, W]`` bool: reference pixels that move differently from the bulk of the frame.

    A pixel's motion is its displacement from the reference minus the frame's median displacement
    (so camera pans do not count), averaged over the frames it is visible in; foreground is what
    moves more than twice the median of that, and at least one pixel.
    """
    vis = tracks.visible()
    disp = tracks.uv - tracks.uv[tracks.ref_frame]
    flat = disp.reshape(disp.shape[0], -1, 2)
    median = flat.median(dim=1).values  # [T, 2]
    own = (disp - median[:, None, None]).norm(dim=-1)  # [T, H, W]
    count = vis.sum(0).clamp_min(1)
    motion = (own * vis).sum(0) / count
    return motion > max(2.0 * float(motion.median()), 1.0)


def point_maps(
    tracks: Tracks3D,
    mask: torch.Tensor | None = None,
    num_points: int = 20000,
    seed: int = 0,
    foreground_bias: float = 4.0,
) -> PointMaps:
    """PointVid point maps of dense 3D tracks.

    Args:
        tracks: dense tracks of the reference frame's pixels.
        mask: ``[H, W]`` foreground on the reference frame (values > 0.5), or None to take the
            pixels that move on their own (:func:`motion_foreground`).
        num_points: how many reference pixels to sample (capped at H · W).
        seed: sampling seed.
        foreground_bias: sampling density inside the foreground over the density outside. The
            foreground gets ``ceil`` of its share, so the ratio is at least the bias, until the
            foreground is exhausted (then every foreground pixel is taken and the rest go outside).

    Returns:
        :class:`PointMaps`: each sampled point's xyz (normalised per clip to [−1, 1]) written at its
        rounded tracked pixel in every frame where it is visible and inside the frame; where two
        land on one pixel the nearer wins. Invisible points are never written.
    """
    h, w, t = tracks.height, tracks.width, tracks.num_frames
    count = check_positive_int("num_points", num_points)
    bias = check_finite_number("foreground_bias", foreground_bias, low=1.0, high=1e6)
    if mask is None:
        fg = motion_foreground(tracks)
    else:
        check_tensor("mask", mask, (h, w), kind="bool_or_float")
        fg = mask > 0.5 if mask.is_floating_point() else mask
    fg = fg.reshape(-1).cpu()
    gen = torch.Generator().manual_seed(int(seed))
    inside, outside = fg.nonzero().squeeze(1), (~fg).nonzero().squeeze(1)
    count = min(count, h * w)
    a_in, a_out = inside.numel(), outside.numel()
    n_in = min(a_in, math.ceil(count * bias * a_in / (bias * a_in + a_out))) if a_in else 0
    n_out = min(a_out, count - n_in)
    n_in = min(a_in, count - n_out)
    index = torch.cat([inside[torch.randperm(a_in, generator=gen)[:n_in]], outside[torch.randperm(a_out, generator=gen)[:n_out]]]).sort().values
    index = index.to(tracks.uv.device)

    uv = tracks.uv.reshape(t, -1, 2)[:, index]
    xyz = tracks.xyz().reshape(t, -1, 3)[:, index]
    vis = tracks.visible().reshape(t, -1)[:, index]
    col, row = uv[..., 0].round().long(), uv[..., 1].round().long()
    written = vis & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    if not bool(written.any()):
        raise ValueError("point_maps: no sampled point is visible inside the frame in any frame; check the tracks' visibility")
    seen = xyz[written]
    lo, hi = seen.min(0).values, seen.max(0).values
    center = (lo + hi) / 2
    scale = ((hi - lo) / 2).max().clamp_min(1e-12)

    points = torch.zeros(t, h, w, 3, dtype=xyz.dtype, device=xyz.device)
    valid = torch.zeros(t, h, w, dtype=torch.bool, device=xyz.device)
    for f in range(t):
        keep = written[f]
        pix = row[f][keep] * w + col[f][keep]
        z = xyz[f][keep][:, 2]
        nearest = torch.full((h * w,), float("inf"), dtype=z.dtype, device=z.device).scatter_reduce(0, pix, z, "amin")
        win = z <= nearest[pix]
        # Exact depth ties: the later index wins consistently (assignment order over unique pixels).
        pix, value = pix[win], (xyz[f][keep][win] - center) / scale
        points[f].view(-1, 3)[pix] = value
        valid[f].view(-1)[pix] = True
    return PointMaps.from_checked(points=points, valid=valid, center=center, scale=scale, index=index)


# ---------------------------------------------------------------------------------------------------
# Neighbours
# ---------------------------------------------------------------------------------------------------


def knn(points: torch.Tensor, k: int, queries: torch.Tensor | None = None, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest ``points [N, 3]`` of each query ``[M, 3]`` (default: of each point, itself excluded).

    Brute force in chunks of ``chunk`` queries, so memory is O(chunk · N) whatever M is.

    Returns:
        index ``[M, k]`` long and distance ``[M, k]``, nearest first.
    """
    self_query = queries is None
    queries = points if self_query else queries
    if k > points.shape[0] - (1 if self_query else 0):
        raise ValueError(f"knn: k={k} neighbours asked of {points.shape[0]} points")
    idx, dist = [], []
    for start in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[start : start + chunk], points)
        if self_query:
            rows = torch.arange(d.shape[0], device=d.device)
            d[rows, rows + start] = float("inf")
        value, index = d.topk(k, dim=1, largest=False)
        idx.append(index)
        dist.append(value)
    return torch.cat(idx), torch.cat(dist)


def knn_pairs(points: torch.Tensor, k: int) -> torch.Tensor:
    """``[N · k, 2]`` directed pairs (i, j): j is one of the k nearest neighbours of i in ``points [N, 3]``."""
    index, _ = knn(points, k)
    src = torch.arange(points.shape[0], device=points.device).repeat_interleave(k)
    return torch.stack([src, index.reshape(-1)], dim=1)


# ---------------------------------------------------------------------------------------------------
# Differentiable losses (for fine-tuning loops)
# ---------------------------------------------------------------------------------------------------


def _frame_weights(visibility: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if visibility is None:
        return torch.ones(like.shape[:-1], dtype=like.dtype, device=like.device)
    return visibility.to(like.dtype)


def rigidity_loss(xyz: torch.Tensor, pairs: torch.Tensor, visibility: torch.Tensor | None = None, rest: torch.Tensor | None = None, ref_frame: int = 0) -> torch.Tensor:
    """Local rigidity: mean over frames and pairs of (‖X_t^i − X_t^j‖ − ‖X_0^i − X_0^j‖)².

    Args:
        xyz: ``[T, N, 3]`` (or ``[B, T, N, 3]``) points.
        pairs: ``[P, 2]`` long neighbour pairs (e.g. :func:`knn_pairs` in the reference frame).
        visibility: ``[T, N]`` (or ``[B, T, N]``) weights; a pair counts by the product of its two.
        rest: ``[P]`` rest lengths; default the lengths in frame ``ref_frame``.

    Returns:
        scalar, in squared units of ``xyz``.
    """
    length = (xyz[..., pairs[:, 0], :] - xyz[..., pairs[:, 1], :]).norm(dim=-1)  # [..., T, P]
    if rest is None:
        rest = length[..., ref_frame : ref_frame + 1, :]
    wt = _frame_weights(visibility, xyz)
    weight = wt[..., pairs[:, 0]] * wt[..., pairs[:, 1]]
    return (weight * (length - rest) ** 2).sum() / weight.sum().clamp_min(1e-12)


def smoothness_loss(xyz: torch.Tensor, visibility: torch.Tensor | None = None) -> torch.Tensor:
    """Temporal smoothness: mean of ‖X_{t+1} − 2 X_t + X_{t−1}‖² over points and interior frames.

    ``xyz [T, N, 3]`` (or ``[B, T, N, 3]``), ``visibility [T, N]`` weights (a triple counts by the
    product of its three). Note this penalises any acceleration, rotation included; the regulariser
    applies it to the deviation from the local rigid fit instead (see :func:`regularize_points`).
    """
    if xyz.shape[-3] < 3:
        return xyz.sum() * 0
    acc = xyz[..., 2:, :, :] - 2 * xyz[..., 1:-1, :, :] + xyz[..., :-2, :, :]
    wt = _frame_weights(visibility, xyz)
    weight = wt[..., 2:, :] * wt[..., 1:-1, :] * wt[..., :-2, :]
    return (weight * acc.pow(2).sum(-1)).sum() / weight.sum().clamp_min(1e-12)


def project_points(xyz: torch.Tensor, intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-space ``[T, N, 3]`` → pixels ``[T, N, 2]`` and depth ``[T, N]`` (inverse of ``unproject_pixels``).

    ``intrinsics`` ``[3, 3]`` or ``[T, 3, 3]``. Depth is clamped away from 0 for the division only.
    """
    k = intrinsics if intrinsics.dim() == 3 else intrinsics[None]
    fx, fy, cx, cy, s = (k[:, None, 0, 0], k[:, None, 1, 1], k[:, None, 0, 2], k[:, None, 1, 2], k[:, None, 0, 1])
    z = xyz[..., 2]
    safe = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
    x, y = xyz[..., 0] / safe, xyz[..., 1] / safe
    return torch.stack([fx * x + s * y + cx, fy * y + cy], dim=-1), z


def misalignment_loss(xyz: torch.Tensor, uv: torch.Tensor, intrinsics: torch.Tensor, visibility: torch.Tensor | None = None) -> torch.Tensor:
    """RGB–point misalignment: mean squared pixel distance between projected 3D points and their 2D tracks.

    ``xyz [T, N, 3]`` camera-space points, ``uv [T, N, 2]`` tracked pixels, ``intrinsics [3, 3]`` or
    ``[T, 3, 3]``, ``visibility [T, N]`` weights. Returns a scalar in pixels².
    """
    pix, _ = project_points(xyz, intrinsics)
    weight = _frame_weights(visibility, uv)
    return (weight * (pix - uv).pow(2).sum(-1)).sum() / weight.sum().clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------------
# The regulariser
# ---------------------------------------------------------------------------------------------------


class _Graph:
    """Directed kNN edges src → dst with the difference operator D and its adjoint (point-major ``[N, ...]``)."""

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, num: int):
        self.src, self.dst, self.num = src, dst, num

    def diff(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, ...]`` → ``[E, ...]``: X_src − X_dst."""
        return x[self.src] - x[self.dst]

    def adjoint(self, f: torch.Tensor) -> torch.Tensor:
        """``[E, ...]`` → ``[N, ...]``: Dᵀ f."""
        out = torch.zeros(self.num, *f.shape[1:], dtype=f.dtype, device=f.device)
        out.index_add_(0, self.src, f)
        out.index_add_(0, self.dst, -f)
        return out


def _accel(f: torch.Tensor) -> torch.Tensor:
    """Second difference over time (axis 1): ``[N, T, ...]`` → ``[N, T − 2, ...]``."""
    return f[:, 2:] - 2 * f[:, 1:-1] + f[:, :-2]


def _accel_adjoint(g: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(g.shape[0], g.shape[1] + 2, *g.shape[2:], dtype=g.dtype, device=g.device)
    out[:, 2:] += g
    out[:, 1:-1] -= 2 * g
    out[:, :-2] += g
    return out


def _cg(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x: torch.Tensor, iterations: int) -> torch.Tensor:
    """Conjugate gradients for a symmetric positive definite operator, warm-started at ``x``."""
    r = b - apply(x)
    p = r.clone()
    rr = (r * r).sum()
    floor = 1e-20 * float((b * b).sum()) + 1e-30
    for _ in range(iterations):
        if float(rr) <= floor:
            break
        ap = apply(p)
        alpha = rr / (p * ap).sum().clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = (r * r).sum()
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _cofactor(m: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` cofactor matrix (det(M) M⁻ᵀ for invertible M), rows from cross products."""
    a, b, c = m[..., 0, :], m[..., 1, :], m[..., 2, :]
    return torch.stack([torch.linalg.cross(b, c), torch.linalg.cross(c, a), torch.linalg.cross(a, b)], dim=-2)


def _polar_rotation(cov: torch.Tensor, steps: int = 14) -> torch.Tensor:
    """``[..., 3, 3]`` rotation R maximising tr(Rᵀ C) (Kabsch), without one LAPACK call per matrix.

    Batched 3×3 SVDs cost ~10 µs each on CPU, too slow for T · N of them, so: the cofactor of C
    carries exactly the direction a rank-2 (planar neighbourhood) C lacks, with the sign that makes
    the result a proper rotation; C + cof(C)/‖C‖ is then full rank with the same polar factor as
    Kabsch's, found by scaled Newton iterations X ← (γX + (γX)⁻ᵀ/γ)/2 (quadratic convergence).
    Where the polar factor is a reflection (rare, very noisy neighbourhoods) it falls back to SVD.
    """
    norm = cov.norm(dim=(-2, -1)).clamp_min(1e-30)[..., None, None]
    c = cov / norm
    eye = torch.eye(3, dtype=cov.dtype, device=cov.device)
    x = c + _cofactor(c) + 1e-7 * eye
    for _ in range(steps):
        cof = _cofactor(x)
        det = (x[..., 0, :] * cof[..., 0, :]).sum(-1)[..., None, None]
        safe = torch.where(det.abs() < 1e-30, torch.full_like(det, 1e-30), det)
        gamma = safe.abs().pow(-1.0 / 3.0)
        x = 0.5 * (gamma * x + cof / (safe * gamma))
    det = torch.linalg.det(x)
    bad = (det < 0) | ~torch.isfinite(det)
    if bool(bad.any()):
        u, _, vh = torch.linalg.svd(cov[bad])
        d = torch.linalg.det(u @ vh)
        u = torch.cat([u[..., :2], u[..., 2:] * d[:, None, None]], dim=-1)
        x[bad] = u @ vh
    return x


def _frame_chunks(num_edges: int, num_frames: int, budget: int = 1 << 22):
    """Frame ranges such that ``[E, chunk, 3, 3]`` temporaries stay near ``budget`` elements."""
    step = max(1, budget // max(9 * num_edges, 1))
    return [(t, min(t + step, num_frames)) for t in range(0, num_frames, step)]


def _rotations(x: torch.Tensor, rest: torch.Tensor, graph: _Graph, weight: torch.Tensor) -> torch.Tensor:
    """``[N, T, 3, 3]`` per-point, per-frame rotations best mapping rest edges onto current edges (weighted Kabsch)."""
    s = graph.diff(rest)  # [E, 3]
    cov = torch.zeros(graph.num, x.shape[1], 3, 3, dtype=x.dtype, device=x.device)
    for a, b in _frame_chunks(s.shape[0], x.shape[1]):
        e = graph.diff(x[:, a:b]) * weight[:, a:b, None]  # [E, t, 3]
        cov[:, a:b].index_add_(0, graph.src, e[..., :, None] * s[:, None, None, :])
    return _polar_rotation(cov)


def _rotate_edges(rot: torch.Tensor, rest: torch.Tensor, graph: _Graph, inverse: bool = False, x: torch.Tensor | None = None) -> torch.Tensor:
    """``[E, T, 3]``: R_src (S_src − S_dst), the edges a locally rigid motion predicts; with
    ``inverse``, R_srcᵀ (X_src − X_dst), the current edges rotated back to rest."""
    t = rot.shape[1]
    s = graph.diff(rest)
    out = torch.empty(s.shape[0], t, 3, dtype=rot.dtype, device=rot.device)
    for a, b in _frame_chunks(s.shape[0], t):
        r = rot[graph.src, a:b]  # [E, t, 3, 3]
        if inverse:
            out[:, a:b] = (r.transpose(-1, -2) @ graph.diff(x[:, a:b])[..., None]).squeeze(-1)
        else:
            out[:, a:b] = (r @ s[:, None, :, None]).squeeze(-1)
    return out


def _cauchy(residual: torch.Tensor, scale: float) -> torch.Tensor:
    return 1.0 / (1.0 + (residual / scale) ** 2)


def _robust_scale(residual: torch.Tensor, floor: float) -> float:
    if residual.numel() == 0:
        return floor
    return max(_ROBUST_SCALE * float(residual.median()), floor)


def regularize_points(
    xyz: torch.Tensor,
    visibility: torch.Tensor,
    k: int = 8,
    *,
    rigidity: float = 1.0,
    smoothness: float = 1.0,
    iterations: int = 20,
    cg_iterations: int = 10,
    ref_frame: int = 0,
    max_anchors: int = 12000,
    interpolation_neighbours: int = 4,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    cancel: Callable[[], None] | None = None,
    info: dict | None = None,
) -> torch.Tensor:
    """Regularise 3D tracks: robust data + local rigidity + temporal smoothness (PointVid's regulariser).

    Objective over the regularised points X (observations Y, visibility v):

    - data: Σ v_t^i ρ(‖X_t^i − Y_t^i‖), ρ Cauchy (iteratively reweighted), so outliers lose their pull;
    - rigidity (as-rigid-as-possible over the k nearest neighbours of each point in the reference frame):
      Σ_t Σ_(i,j) ‖(X_t^i − X_t^j) − R_t^i (S^i − S^j)‖², with a per-point, per-frame rotation R and one
      rest shape S shared by all frames (started at the reference frame, re-estimated from all frames);
      edges that do not fit (across separately moving parts) are reweighted down;
    - temporal smoothness: Σ ‖second difference over t of the same edge residual‖², i.e. smoothness of
      the deviation from the local rigid fit; unlike Σ ‖X_{t+1} − 2X_t + X_{t−1}‖² it does not drag
      rotating or accelerating rigid motion, and it lets a deforming surface deform smoothly.

    Every term is zero for noise-free rigid motion, so such input comes back unchanged. The solver
    alternates rotations (batched Kabsch), points (conjugate gradients on all points and frames at
    once), robust weights, and the rest shape.

    Large N: at most ``max_anchors`` randomly chosen points (``seed``) are solved as above; every other
    point then follows its ``interpolation_neighbours`` nearest anchors in the reference frame
    rigidly (its offset to each anchor is averaged over the frames it is seen in, in the anchor's
    local frame), blended with its own observation by the same robust weights. Memory is
    O(T · max_anchors · k) plus the input and output, in chunks of points.

    Args:
        xyz: ``[T, N, 3]`` camera-space track positions.
        visibility: ``[T, N]`` bool or confidence in 0..1.
        k: neighbours per point; clamped to N − 1 (N = 1: returned unchanged).
        rigidity, smoothness: weights of the two terms relative to the data term.
        iterations: outer iterations (each: rotations, CG solve, weights, rest shape).
        progress: called with the number of finished iterations (total ``iterations + 1``).
        cancel: called every iteration; raise from it to stop.
        info: if given, filled with ``objective_before``, ``objective_after``, ``anchors``, ``k``,
            ``data_scale``, ``outlier_fraction`` (share of visible observations with weight < 0.5).

    Returns:
        ``[T, N, 3]`` regularised positions (invisible points move with their neighbours).

    Raises:
        ValueError: wrong shapes, N = 0, NaN/inf coordinates, no visible point at all.
    """
    dims: dict[str, int] = {}
    check_tensor("xyz", xyz, ("T", "N", 3), dims=dims)
    check_tensor("visibility", visibility, ("T", "N"), kind="bool_or_float", dims=dims)
    k = check_positive_int("k", k, maximum=256)
    iterations = check_positive_int("iterations", iterations, minimum=0, maximum=10000)
    cg_iterations = check_positive_int("cg_iterations", cg_iterations, maximum=1000)
    max_anchors = check_positive_int("max_anchors", max_anchors, minimum=2)
    rigidity = check_finite_number("rigidity", rigidity, low=0.0, high=1e6)
    smoothness = check_finite_number("smoothness", smoothness, low=0.0, high=1e6)
    t, n = dims["T"], dims["N"]
    if not 0 <= ref_frame < t:
        raise ValueError(f"ref_frame: expected an index in [0, {t}), got {ref_frame}")
    vis = visibility.to(xyz.dtype) if visibility.is_floating_point() else visibility.to(xyz.dtype)
    if not bool((vis > 0).any()):
        raise ValueError("visibility: no point is visible in any frame, there is nothing to regularise against")
    k = min(k, n - 1)
    if k == 0 or iterations == 0:
        if info is not None:
            info.update(objective_before=0.0, objective_after=0.0, anchors=n, k=k, data_scale=0.0, outlier_fraction=0.0)
        return xyz.clone()

    def tick(done: int) -> None:
        if cancel is not None:
            cancel()
        if progress is not None:
            progress(done)

    # Point-major [N, T, ...] inside: gathers and scatters over edges run along the first axis.
    work = (xyz if xyz.dtype == torch.float64 else xyz.float()).transpose(0, 1)
    vis = vis.to(work.dtype).transpose(0, 1)
    gen = torch.Generator().manual_seed(int(seed))
    anchors = torch.randperm(n, generator=gen)[:max_anchors].sort().values.to(xyz.device) if n > max_anchors else None
    y = work.contiguous() if anchors is None else work[anchors]
    v = vis.contiguous() if anchors is None else vis[anchors]
    x, rot, scale, stats = _solve(y, v, k, rigidity, smoothness, iterations, cg_iterations, ref_frame, tick)
    if anchors is None:
        out = x
    else:
        out = _follow_anchors(work, vis, anchors, x, rot, rigidity * 2 * k, scale, interpolation_neighbours, ref_frame)
    tick(iterations + 1)
    if info is not None:
        info.update(stats, anchors=int(y.shape[0]), k=k)
    return out.transpose(0, 1).to(xyz.dtype).contiguous()


@dataclass(frozen=True)
class PointRegularization:
    """:func:`regularize_points` with its settings bound: ``regularization(xyz, visibility, ref_frame) -> xyz``.

    What PointRegularizer hands on, so that every reference frame of a multi-reference field
    (:func:`~vid4d.py.gaussians.lift_video`) is regularised with the same settings. The result is kept in
    front of the camera (z ≥ a tenth of the nearest input depth), so it projects back to finite pixels.
    ``device``: where the solver runs (``None``: where ``xyz`` is); the result comes back to ``xyz``'s device.
    """

    k: int = 8
    rigidity: float = 1.0
    smoothness: float = 1.0
    iterations: int = 20
    max_anchors: int = 12000
    seed: int = 0
    device: str | None = None

    def __call__(self, xyz: torch.Tensor, visibility: torch.Tensor, ref_frame: int = 0, *, progress=None, cancel=None, info: dict | None = None) -> torch.Tensor:
        device = xyz.device if self.device is None else torch.device(self.device)
        after = regularize_points(
            xyz.to(device), visibility.to(device), k=self.k, rigidity=self.rigidity, smoothness=self.smoothness,
            iterations=self.iterations, ref_frame=ref_frame, max_anchors=self.max_anchors, seed=self.seed,
            progress=progress, cancel=cancel, info=info,
        ).to(xyz.device)
        front = xyz[..., 2] > 0
        z_min = float(xyz[..., 2][front].min()) * 0.1 if bool(front.any()) else 1e-6
        return torch.cat([after[..., :2], after[..., 2:].clamp_min(z_min)], dim=-1)


def _solve(y, v, k, rigidity, smoothness, iterations, cg_iterations, ref_frame, tick):
    """The anchor problem on ``y [A, T, 3]``, ``v [A, T]``: returns X ``[A, T, 3]``, rotations
    ``[A, T, 3, 3]``, the data term's robust scale and the objective before/after."""
    a, t, _ = y.shape
    ref = y[:, ref_frame]
    index, _ = knn(ref, k)
    graph = _Graph(torch.arange(a, device=y.device).repeat_interleave(k), index.reshape(-1), a)
    extent = float((ref - ref.median(0).values).norm(dim=-1).median()) + 1e-12
    floor = 1e-6 * extent
    seen = v > 0
    pair_seen = v[graph.src] * v[graph.dst]  # [E, T]
    wd = v.clamp_min(_INVISIBLE_WEIGHT)  # [A, T]
    we = torch.ones(graph.src.numel(), t, dtype=y.dtype, device=y.device)  # [E, T]
    x, rest = y.clone(), ref.clone()
    smooth = smoothness if t >= 3 else 0.0

    def smooth_weight(we):
        return torch.minimum(torch.minimum(we[:, 2:], we[:, 1:-1]), we[:, :-2])

    def objective(x, rot, rest, we, data_scale):
        res = graph.diff(x) - _rotate_edges(rot, rest, graph)
        r = (x - y).norm(dim=-1)
        total = (v * torch.log1p((r / data_scale) ** 2)).sum() * data_scale**2
        total = total + rigidity * (we * res.pow(2).sum(-1)).sum()
        if smooth:
            total = total + smooth * (smooth_weight(we) * _accel(res).pow(2).sum(-1)).sum()
        return float(total) / max(float(v.sum()), 1e-12)

    data_scale = max(1e-2 * extent, floor)
    before = objective(x, _rotations(x, rest, graph, we), rest, we, data_scale)
    for it in range(iterations):
        tick(it)
        rot = _rotations(x, rest, graph, we)
        target = _rotate_edges(rot, rest, graph)  # [E, T, 3]
        ws = smooth_weight(we)[..., None] if smooth else None

        def apply(p):
            dp = graph.diff(p)
            f = rigidity * we[..., None] * dp
            if smooth:
                f = f + smooth * _accel_adjoint(ws * _accel(dp))
            return wd[..., None] * p + graph.adjoint(f)

        f = rigidity * we[..., None] * target
        if smooth:
            f = f + smooth * _accel_adjoint(ws * _accel(target))
        x = _cg(apply, wd[..., None] * y + graph.adjoint(f), x, cg_iterations)

        # Robust reweighting (IRLS): Cauchy weights at a scale taken from the residuals themselves.
        r = (x - y).norm(dim=-1)
        data_scale = _robust_scale(r[seen], floor)
        wd = torch.maximum(v * _cauchy(r, data_scale), torch.full_like(v, _INVISIBLE_WEIGHT))
        res = (graph.diff(x) - target).norm(dim=-1)
        we = _cauchy(res, _robust_scale(res, floor))

        rest = _rest_shape(x, rot, rest, graph, we * pair_seen, cg_iterations)
    rot = _rotations(x, rest, graph, we)
    after = objective(x, rot, rest, we, data_scale)
    outliers = float(((wd < 0.5 * v) & seen).sum()) / max(int(seen.sum()), 1)
    return x, rot, data_scale, dict(objective_before=before, objective_after=after, data_scale=data_scale, outlier_fraction=outliers)


def _rest_shape(x, rot, rest, graph: _Graph, weight, cg_iterations):
    """The shape S shared by all frames: Σ_e ω_e ‖S_src − S_dst − v_e‖², v_e the frames' edges rotated
    back to rest and averaged (weight ``[E, T]``); a tiny tie to the previous S fixes the translation."""
    back = _rotate_edges(rot, rest, graph, inverse=True, x=x)  # [E, T, 3]
    total = weight.sum(1)  # [E]
    edge = (weight[..., None] * back).sum(1) / total.clamp_min(1e-12)[:, None]
    omega = total / x.shape[1]
    tie = 1e-3 * float(omega.mean()) + 1e-12

    def apply(p):
        return tie * p + graph.adjoint(omega[:, None] * graph.diff(p))

    return _cg(apply, tie * rest + graph.adjoint(omega[:, None] * edge), rest, cg_iterations)


def _follow_anchors(y, vis, anchors, xa, rot, stiffness, data_scale, neighbours, ref_frame, chunk: int = 2048):
    """Every non-anchor point ``y [N, T, 3]`` from its nearest anchors' regularised motion
    (``xa [A, T, 3]``, ``rot [A, T, 3, 3]``), blended robustly with its own observation."""
    n = y.shape[0]
    kk = min(max(int(neighbours), 1), anchors.numel())
    out = y.clone()
    out[anchors] = xa
    is_anchor = torch.zeros(n, dtype=torch.bool, device=y.device)
    is_anchor[anchors] = True
    others = (~is_anchor).nonzero().squeeze(1)
    ya = y[anchors]
    ref_anchor = ya[:, ref_frame].contiguous()
    for start in range(0, others.numel(), chunk):
        idx = others[start : start + chunk]
        near, dist = knn(ref_anchor, kk, queries=y[idx, ref_frame])
        w = 1.0 / (dist + 1e-6 * (float(dist.mean()) + 1e-12))  # [C, K]
        yp, seen = y[idx], vis[idx]  # [C, T, 3], [C, T]
        rk = rot[near]  # [C, K, T, 3, 3]
        # The point's offset to each anchor in the anchor's local frame, averaged over the frames it is seen in.
        local = (rk.transpose(-1, -2) @ (yp[:, None] - ya[near])[..., None]).squeeze(-1)  # [C, K, T, 3]
        frame_w = (seen + 1e-6)[:, None, :, None]
        offset = (frame_w * local).sum(2, keepdim=True) / frame_w.sum(2, keepdim=True)  # [C, K, 1, 3]
        # An anchor the point is not rigidly attached to (another body across an edge) loses its say.
        wobble = (frame_w * (local - offset).norm(dim=-1, keepdim=True)).sum(2) / frame_w.sum(2)  # [C, K, 1]
        w = w * _cauchy(wobble[..., 0], data_scale) + 1e-12
        w = w / w.sum(1, keepdim=True)
        predicted = xa[near] + (rk @ offset[..., None]).squeeze(-1)  # [C, K, T, 3]
        predicted = (w[..., None, None] * predicted).sum(1)  # [C, T, 3]
        wd = torch.maximum(seen * _cauchy((yp - predicted).norm(dim=-1), data_scale), torch.full_like(seen, _INVISIBLE_WEIGHT))
        out[idx] = (wd[..., None] * yp + stiffness * predicted) / (wd[..., None] + stiffness)
    return out


# ---------------------------------------------------------------------------------------- on Tracks3D
def regularize_tracks(tracks: Tracks3D, regularization: "PointRegularization | None" = None, *, progress=None, cancel=None, info: dict | None = None, **settings) -> Tracks3D:
    """:func:`regularize_points` on dense tracks: their camera-space points regularised with
    ``regularization`` (or a :class:`PointRegularization` of ``settings``: k, rigidity, smoothness,
    iterations, max_anchors, seed, device), kept in front of the camera, and re-projected with the tracks'
    intrinsics. Visibility, ``ref_frame`` and ``depth_known`` are unchanged.
    """
    if regularization is None:
        regularization = PointRegularization(**settings)
    elif settings:
        raise ValueError(f"regularize_tracks: pass either a PointRegularization or its settings, got both ({', '.join(sorted(settings))})")
    t, h, w = tracks.num_frames, tracks.height, tracks.width
    before = tracks.xyz().reshape(t, -1, 3)
    after = regularization(before, tracks.visibility.reshape(t, -1), tracks.ref_frame, progress=progress, cancel=cancel, info=info)
    uv, depth = project_points(after, tracks.intrinsics)
    return Tracks3D.from_checked(uv=uv.reshape(t, h, w, 2), depth=depth.reshape(t, h, w), visibility=tracks.visibility, intrinsics=tracks.intrinsics, ref_frame=tracks.ref_frame, depth_known=tracks.depth_known)


def regularization_report(before: Tracks3D, after: Tracks3D, stats: dict | None = None) -> str:
    """Before/after summary of :func:`regularize_tracks`: displacement of the visible points, the objective
    (from ``stats``, the ``info`` dict of the solve) and the rigidity error on a fixed sample of points."""
    stats = stats or {}
    t = before.num_frames
    b_xyz, a_xyz = before.xyz().reshape(t, -1, 3), after.xyz().reshape(t, -1, 3)
    seen = before.visible().reshape(t, -1)
    moved = (a_xyz - b_xyz).norm(dim=-1)[seen]
    # Rigidity error on a sample of points (all of them would need N·k pairs): rest lengths are each
    # pair's median length over the frames, so it measures how much neighbourhoods change shape.
    n = b_xyz.shape[1]
    sample = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: min(n, 4000)]
    k = min(8, sample.numel() - 1)
    lines = [f"{t} frames, {n} points ({stats.get('anchors', n)} solved, k={stats.get('k', k)})"]
    if moved.numel():
        lines.append(f"displacement applied (visible): mean {float(moved.mean()):.4g}, median {float(moved.median()):.4g}, max {float(moved.max()):.4g}")
    lines.append(f"objective: {stats.get('objective_before', 0.0):.4g} -> {stats.get('objective_after', 0.0):.4g}; outliers down-weighted {100 * stats.get('outlier_fraction', 0.0):.1f}%")
    if k >= 1:
        b, a = b_xyz[:, sample], a_xyz[:, sample]
        pairs = knn_pairs(b[before.ref_frame], k)
        vis = seen[:, sample]
        rest = (b[:, pairs[:, 0]] - b[:, pairs[:, 1]]).norm(dim=-1).median(0).values
        rb = float(rigidity_loss(b, pairs, vis, rest=rest)) ** 0.5
        ra = float(rigidity_loss(a, pairs, vis, rest=rest)) ** 0.5
        lines.append(f"rigidity error (rms neighbour-distance change): {rb:.4g} -> {ra:.4g}")
    return "\n".join(lines)


def correction_map(before: Tracks3D, after: Tracks3D, scale: float | None = None) -> tuple[torch.Tensor, float]:
    """What the regulariser changed, as a video a user can see: ``[T, H, W, 3]`` turbo heat map of every reference
    pixel's 3D correction ‖after − before‖ in frame t, laid out on the reference pixel grid (like the visibility MASK).
    Blue = untouched, red = ``scale`` or more (default: the 99th percentile of the visible corrections, so a few large
    ones do not wash the map out); pixels not visible in frame t are dark grey. Returns the map and the scale."""
    from .depth import colorize

    if (before.num_frames, before.height, before.width) != (after.num_frames, after.height, after.width):
        raise ValueError(f"after: {after.num_frames} frames of {after.width}x{after.height}, expected the {before.num_frames} frames of {before.width}x{before.height} of before")
    t, h, w = before.num_frames, before.height, before.width
    moved = (after.xyz() - before.xyz()).norm(dim=-1).reshape(t, h, w)
    seen = before.visible().reshape(t, h, w)
    if scale is None:
        values = moved[seen]
        if values.numel() > 1_000_000:  # quantile's input limit; an even subsample is as good for a colour scale
            values = values[torch.linspace(0, values.numel() - 1, 1_000_000).long()]
        scale = float(values.quantile(0.99)) if values.numel() else 0.0
    image = colorize(moved / max(scale, 1e-12))
    image[~seen] = 0.15
    return image, scale
