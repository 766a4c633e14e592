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

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from .checks import TensorData, check_finite_number, check_positive_int, check_tensor
from .tracking import Tracks3D
from .workers import Pool

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


def knn(points: torch.Tensor, k: int, queries: torch.Tensor | None = None, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest ``points [N, 3]`` of each query ``[M, 3]`` (default: of each point, itself excluded).

    Exact, with SciPy's k-d tree (``cKDTree``, on the CPU in float64; ``workers`` threads, default torch's count):
    O((N + M) log N) where brute force is O(N M) (345,600 tracks against 12,000 anchors took ~20 s with
    ``cdist`` + ``topk`` on 2 cores, the tree well under a second).

    Returns:
        index ``[M, k]`` long and distance ``[M, k]`` (the points' dtype and device), nearest first.
    """
    from scipy.spatial import cKDTree

    self_query = queries is None
    if k > points.shape[0] - (1 if self_query else 0):
        raise ValueError(f"knn: k={k} neighbours asked of {points.shape[0]} points")
    pts = points.detach().to("cpu", torch.float64).numpy()
    query = pts if self_query else queries.detach().to("cpu", torch.float64).numpy()
    tree = cKDTree(pts)
    want = k + 1 if self_query else k
    dist, index = tree.query(query, k=list(range(1, want + 1)), workers=max(1, workers or torch.get_num_threads()))
    index, dist = torch.from_numpy(index), torch.from_numpy(dist)
    if self_query:
        # Drop the point itself (not always first: duplicates tie at distance 0), else the farthest.
        keep = index != torch.arange(index.shape[0])[:, None]
        keep[keep.all(1), -1] = False
        index, dist = index[keep].reshape(-1, k), dist[keep].reshape(-1, k)
    return index.to(points.device), dist.to(device=points.device, dtype=points.dtype)


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


@contextlib.contextmanager
def _workers():
    """A thread pool (one worker per torch thread) with torch itself at one thread while it lives.

    The solve is thousands of mid-sized tensor operations; torch's own OpenMP threads spin-wait at
    each one's end, and on a busy 2-core CPU that made it several times slower than one thread (a
    3-iteration solve: 122 s at 2 threads, 33 s at 1, under a load of ~10). The splittable parts
    (polar rotations in chunks, the Laplacian per group of frames, the followers in chunks) run on
    the pool's threads instead, which release the GIL inside every torch call.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Pool(max(1, threads), thread_name_prefix="vid4d-points") as pool:
            yield pool
    finally:
        torch.set_num_threads(threads)


def _pool_size(pool) -> int:
    return pool._max_workers if pool is not None else 1


def _map(pool, fn, items) -> None:
    """``fn(item)`` for every item, on the pool's threads when there is one (errors re-raised)."""
    if pool is None:
        for item in items:
            fn(item)
    else:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


class _Graph:
    """The kNN graph: k edges i → ``nbr[i, j]`` out of every point, with the difference operator D and
    its adjoint. Point arrays are point-major ``[A, ...]``, edge arrays ``[A, k, ...]`` (the k edges of a
    point side by side, so D needs one gather and Dᵀ one ``index_add_``)."""

    def __init__(self, nbr: torch.Tensor):
        self.nbr = nbr  # [A, k]
        self.num, self.k = nbr.shape
        self.flat = nbr.reshape(-1)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``[A, ...]`` → ``[A, k, ...]``: X at each edge's far end."""
        return x.index_select(0, self.flat).view(self.num, self.k, *x.shape[1:])

    def diff(self, x: torch.Tensor) -> torch.Tensor:
        """``[A, ...]`` → ``[A, k, ...]``: X_i − X_nbr(i, j)."""
        return x[:, None] - self.gather(x)

    def adjoint(self, f: torch.Tensor) -> torch.Tensor:
        """``[A, k, ...]`` → ``[A, ...]``: Dᵀ f."""
        return f.sum(1).index_add_(0, self.flat, f.reshape(self.num * self.k, *f.shape[2:]), alpha=-1)


class _Laplacian:
    """Dᵀ diag(w) D of the kNN graph with a weight per edge and frame, applied to all frames at once.

    As a weighted graph Laplacian: (L q)_i = (Σ_j w̃_ij) q_i − Σ_j w̃_ij q_j over both directions of
    every edge (w̃_ij = w_ij + w_ji where both exist), one sparse CSR matrix per frame stacked block-
    diagonally, so one product applies it to ``[F, A, 3]`` frame-major positions. A gather-reduce per
    row: about a third of the memory traffic of gathering, weighting and scattering the edge arrays
    ``[A, k, F, 3]`` (which dominated the solve).
    """

    def __init__(self, graph: _Graph, frames: int, pool=None):
        a, k = graph.num, graph.k
        device = graph.nbr.device
        e = a * k
        src_node = torch.arange(a, device=device).repeat_interleave(k)
        rows = torch.cat([src_node, graph.flat])
        cols = torch.cat([graph.flat, src_node])
        edge = torch.arange(e, device=device).repeat(2)
        key, order = torch.sort(rows * a + cols)
        unique, counts = torch.unique_consecutive(key, return_counts=True)
        first = torch.cumsum(counts, 0) - counts
        # Each matrix entry (i, j) comes from the edge i → j, the edge j → i, or both.
        self.src1 = edge[order[first]]
        second = order[(first + 1).clamp_max(key.numel() - 1)]
        self.src2 = torch.where(counts > 1, edge[second], torch.full_like(first, e))  # e: a zero weight
        row, col = unique // a, unique % a
        nnz = unique.numel()
        crow = torch.zeros(a + 1, dtype=torch.long, device=device)
        crow[1:] = torch.cumsum(torch.bincount(row, minlength=a), 0)
        # The frames split into one block-diagonal matrix per pool thread (the products run side by side).
        parts = min(_pool_size(pool), frames)
        self.parts = []
        for f0, f1 in ((frames * i // parts, frames * (i + 1) // parts) for i in range(parts)):
            block = torch.arange(f1 - f0, device=device)[:, None]
            part_crow = torch.cat([(crow[:-1][None] + block * nnz).reshape(-1), torch.tensor([(f1 - f0) * nnz], device=device)]).int()
            self.parts.append((f0, f1, part_crow, (col[None] + block * a).reshape(-1).int()))
        self.graph, self.frames, self.pool, self.nnz = graph, frames, pool, nnz

    def set_weights(self, w: torch.Tensor) -> None:
        """``w [A, k, F]``: the weight of every edge in every frame."""
        a, k, f = w.shape
        self.matrices = self.diag = None  # free the previous weights' matrices first
        frame_major = torch.cat([w.reshape(a * k, f).T, torch.zeros(f, 1, dtype=w.dtype, device=w.device)], dim=1)  # [F, E + 1]
        values = frame_major.index_select(1, self.src1).add_(frame_major.index_select(1, self.src2))  # [F, nnz]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            self.matrices = [torch.sparse_csr_tensor(crow, col, values[f0:f1].reshape(-1), ((f1 - f0) * a, (f1 - f0) * a)) for f0, f1, crow, col in self.parts]
        # Σ_j w̃_ij, the matrix's row sums.
        self.diag = self._products(torch.ones(f, a, 1, dtype=w.dtype, device=w.device))

    def _products(self, q: torch.Tensor) -> torch.Tensor:
        """The off-diagonal part times ``q [F, A, C]`` (positive weights): ``[F, A, C]``."""
        out = torch.empty_like(q)

        def product(i: int) -> None:
            f0, f1 = self.parts[i][:2]
            flat = q[f0:f1].reshape((f1 - f0) * q.shape[1], -1)
            buffer = out[f0:f1].view_as(flat)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # addmm into a buffer (beta 0) takes MKL's sparse path without extra copies of the product.
                torch.addmm(buffer, self.matrices[i], flat, beta=0, out=buffer)

        _map(self.pool, product, range(len(self.parts)))
        return out

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """``q [F, A, C]`` → ``[F, A, C]``."""
        return (self.diag * q).sub_(self._products(q))

def _accel(f: torch.Tensor) -> torch.Tensor:
    """Second difference over time (axis 1): ``[N, T, ...]`` → ``[N, T − 2, ...]``."""
    return f[:, 2:] - 2 * f[:, 1:-1] + f[:, :-2]


def _accel_adjoint(g: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(g.shape[0], g.shape[1] + 2, *g.shape[2:], dtype=g.dtype, device=g.device)
    out[:, 2:] += g
    out[:, 1:-1] -= 2 * g
    out[:, :-2] += g
    return out


def _edge_accel(f: torch.Tensor) -> torch.Tensor:
    """:func:`_accel` of an edge array ``[A, k, T, ...]`` over its time axis."""
    return _accel(f.flatten(0, 1)).view(*f.shape[:2], f.shape[2] - 2, *f.shape[3:])


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
        alpha = float(rr / (p * ap).sum().clamp_min(1e-30))
        x = x + alpha * p
        r.sub_(ap, alpha=alpha)
        rr_new = (r * r).sum()
        p = p.mul_(float(rr_new / rr)).add_(r)
        rr = rr_new
    return x


# 3x3 matrices as 9 planes [9, B] (row-major entries m00, m01, ..., m22): every operation of the polar
# iteration is then a contiguous elementwise pass over B, which runs many times faster on the CPU than
# the same maths on [B, 3, 3] (cross products and determinants on trailing dims of 3, or gathers of
# rows): at B = 16384, one thread, 0.3 ms for a cofactor matrix against 1.7 ms with linalg.cross.
def _cofactor9(m: torch.Tensor) -> torch.Tensor:
    """Cofactor matrix (det(M) M⁻ᵀ) of 3x3 matrices as planes ``[9, B]``: c_ij = m_(i+1)(j+1) m_(i+2)(j+2) − m_(i+1)(j+2) m_(i+2)(j+1)."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(0)
    out = torch.empty_like(m)
    for row, (a, b, c, d) in enumerate(
        ((m11, m22, m12, m21), (m12, m20, m10, m22), (m10, m21, m11, m20),
         (m21, m02, m22, m01), (m22, m00, m20, m02), (m20, m01, m21, m00),
         (m01, m12, m02, m11), (m02, m10, m00, m12), (m00, m11, m01, m10))
    ):  # fmt: skip
        torch.sub(a * b, c * d, out=out[row])
    return out


def _polar_rotation(cov: torch.Tensor, steps: int = 14, tol: float = 1e-6, chunk: int = 16384, pool=None) -> torch.Tensor:
    """``[..., 3, 3]`` rotation R maximising tr(Rᵀ C) (Kabsch), without one LAPACK call per matrix.

    Batched 3×3 SVDs cost ~10 µs each on CPU, too slow for T · N of them, so: the cofactor of C
    carries exactly the direction a rank-2 (planar neighbourhood) C lacks, with the sign that makes
    the result a proper rotation; C + cof(C)/‖C‖ is then full rank with the same polar factor as
    Kabsch's, found by scaled Newton iterations X ← (γX + (γX)⁻ᵀ/γ)/2 (quadratic convergence; at most
    ``steps``, stopping once no entry of a chunk moves by more than ``tol``). Where the polar factor is
    a reflection (rare, very noisy neighbourhoods) it falls back to SVD.

    Runs on chunks of ``chunk`` matrices as 9 planes each (``[9, chunk]``, see :func:`_cofactor9`),
    small enough to stay in the CPU cache through the iterations; with a ``pool`` (see
    :func:`_workers`) the chunks run on its threads.
    """
    shape = cov.shape
    flat = cov.reshape(-1, 9)
    out = torch.empty_like(flat)
    bad = torch.zeros(flat.shape[0], dtype=torch.bool, device=cov.device)
    if cov.device.type != "cpu":
        chunk = flat.shape[0]  # one pass on a GPU

    def solve(start: int) -> None:
        m = flat[start : start + chunk].T.contiguous()  # [9, B]
        c = m / m.square().sum(0).sqrt().clamp_min(1e-30)  # (norm(dim=0) is ~30x slower here)
        x = c + _cofactor9(c)
        x[0::4] += 1e-7
        for _ in range(steps):
            cof = _cofactor9(x)
            det = (x[:3] * cof[:3]).sum(0)
            safe = torch.where(det.abs() < 1e-30, torch.full_like(det, 1e-30), det)
            gamma = safe.abs().pow(-1.0 / 3.0)
            new = 0.5 * (gamma * x + cof / (safe * gamma))
            moved = float((new - x).abs().max())
            x = new
            if moved <= tol:
                break
        det = (x[:3] * _cofactor9(x)[:3]).sum(0)
        out[start : start + chunk] = x.T
        bad[start : start + chunk] = (det < 0) | ~torch.isfinite(det)

    _map(pool, solve, range(0, flat.shape[0], chunk))
    out = out.reshape(shape)
    bad = bad.reshape(shape[:-2])
    if bool(bad.any()):
        u, _, vh = torch.linalg.svd(cov[bad])
        d = torch.linalg.det(u @ vh)
        u = torch.cat([u[..., :2], u[..., 2:] * d[:, None, None]], dim=-1)
        out[bad] = u @ vh
    return out


def _rotations(dx: torch.Tensor, rest: torch.Tensor, graph: _Graph, weight: torch.Tensor, pool=None) -> torch.Tensor:
    """``[A, T, 3, 3]`` per-point, per-frame rotations best mapping rest edges onto the current edges
    ``dx [A, k, T, 3]`` (weighted Kabsch)."""
    a, k, t = dx.shape[:3]
    s = graph.diff(rest)  # [A, k, 3]
    e = dx * weight[..., None]
    # cov[i, t] = Σ_j e_ijt s_ijᵀ: one batched product over the k edges of each point.
    cov = torch.bmm(e.view(a, k, t * 3).transpose(1, 2), s)  # [A, T·3, 3]
    return _polar_rotation(cov.view(a, t, 3, 3), pool=pool)


def _rotate_edges(rot: torch.Tensor, rest: torch.Tensor, graph: _Graph) -> torch.Tensor:
    """``[A, k, T, 3]``: R_i (S_i − S_nbr), the edges a locally rigid motion predicts (``rot [A, T, 3, 3]``)."""
    a, t = rot.shape[:2]
    s = graph.diff(rest)  # [A, k, 3]
    return torch.bmm(s, rot.reshape(a, t * 3, 3).transpose(1, 2)).view(a, graph.k, t, 3)


def _norm3(v: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over a last axis of 3 (``norm(dim=-1)`` is several times slower on the CPU)."""
    return v.square().sum(-1).sqrt()


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
    if not bool((visibility > 0).any()):
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

    data = xyz if xyz.dtype == torch.float64 else xyz.float()  # [T, N, 3]
    gen = torch.Generator().manual_seed(int(seed))
    anchors = torch.randperm(n, generator=gen)[:max_anchors].sort().values.to(xyz.device) if n > max_anchors else None
    # The anchor problem is point-major [A, T, ...] (gathers and scatters over edges run along the first
    # axis); the other points are read and written in chunks straight from and into [T, N, 3].
    pick = slice(None) if anchors is None else anchors
    y = data[:, pick].transpose(0, 1).contiguous()
    v = visibility[:, pick].to(data.dtype).transpose(0, 1).contiguous()
    with _workers() as pool:
        x, rot, scale, stats = _solve(y, v, k, rigidity, smoothness, iterations, cg_iterations, ref_frame, tick, pool)
        if anchors is None:
            out = x.transpose(0, 1)
        else:
            out = _follow_anchors(data, visibility, anchors, y, x, rot, rigidity * 2 * k, scale, interpolation_neighbours, ref_frame, pool)
    tick(iterations + 1)
    if info is not None:
        info.update(stats, anchors=int(y.shape[0]), k=k)
    return out.to(xyz.dtype).contiguous()


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


def _solve(y, v, k, rigidity, smoothness, iterations, cg_iterations, ref_frame, tick, pool=None):
    """The anchor problem on ``y [A, T, 3]``, ``v [A, T]``: returns X ``[A, T, 3]``, rotations
    ``[A, T, 3, 3]``, the data term's robust scale and the objective before/after."""
    a, t, _ = y.shape
    ref = y[:, ref_frame]
    index, _ = knn(ref, k, workers=_pool_size(pool))
    graph = _Graph(index)
    laplacian = _Laplacian(graph, 2 * t - 2 if smoothness and t >= 3 else t, pool)
    extent = float((ref - ref.median(0).values).norm(dim=-1).median()) + 1e-12
    floor = 1e-6 * extent
    seen = v > 0
    pair_seen = v[:, None] * graph.gather(v)  # [A, k, T]
    wd = v.clamp_min(_INVISIBLE_WEIGHT)  # [A, T]
    we = torch.ones(a, k, t, dtype=y.dtype, device=y.device)  # [A, k, T]
    x, rest = y.clone(), ref.clone()
    smooth = smoothness if t >= 3 else 0.0

    def smooth_weight(we):
        return torch.minimum(torch.minimum(we[..., 2:], we[..., 1:-1]), we[..., :-2])

    def objective(x, dx, rot, rest, we, data_scale):
        res = dx - _rotate_edges(rot, rest, graph)
        r = _norm3(x - y)
        total = (v * torch.log1p((r / data_scale) ** 2)).sum() * data_scale**2
        total = total + rigidity * (we * res.square().sum(-1)).sum()
        if smooth:
            total = total + smooth * (smooth_weight(we) * _edge_accel(res).square().sum(-1)).sum()
        return float(total) / max(float(v.sum()), 1e-12)

    data_scale = max(1e-2 * extent, floor)
    dx = graph.diff(x)  # [A, k, T, 3], kept in step with x
    before = objective(x, dx, _rotations(dx, rest, graph, we, pool), rest, we, data_scale)
    for it in range(iterations):
        tick(it)
        rot = _rotations(dx, rest, graph, we, pool)
        # The normal operator wd + Dᵀ (ρ W_e D + σ Aᵀ W_s A D), A the second difference over time. A acts
        # on time and D on points, so A D = D A: with q = [p, A p] stacked along time, both edge terms are
        # one weighted graph Laplacian of q (one sparse product), then Aᵀ on the second half. Likewise the
        # right-hand side Dᵀ (ρ W_e R S + σ Aᵀ W_s A R S) takes A R (on rotations, not on edge arrays).
        weights = rigidity * we
        stacked = rot
        if smooth:
            weights = torch.cat([weights, smooth * smooth_weight(we)], dim=-1)  # [A, k, 2T − 2]
            stacked = torch.cat([rot, _accel(rot)], dim=1)  # [A, 2T − 2, 3, 3]
        laplacian.set_weights(weights)
        targets = _rotate_edges(stacked, rest, graph)  # [A, k, T (+ T − 2), 3]
        target = targets[:, :, :t]
        rhs = wd[..., None] * y + graph.adjoint(weights[..., :t, None] * target)
        if smooth:
            rhs += _accel_adjoint(graph.adjoint(weights[..., t:, None] * targets[:, :, t:]))
        wd_t = wd.T.contiguous()[..., None]  # [T, A, 1]

        def apply(p):  # frame-major [T, A, 3]
            if not smooth:
                return wd_t * p + laplacian(p)
            g = laplacian(torch.cat([p, p[2:] - 2 * p[1:-1] + p[:-2]]))
            out = wd_t * p + g[:t]
            acc = g[t:]
            out[2:] += acc
            out[1:-1] -= 2 * acc
            out[:-2] += acc
            return out

        x = _cg(apply, rhs.transpose(0, 1).contiguous(), x.transpose(0, 1).contiguous(), cg_iterations).transpose(0, 1).contiguous()
        dx = graph.diff(x)
        del targets

        # Robust reweighting (IRLS): Cauchy weights at a scale taken from the residuals themselves.
        r = _norm3(x - y)
        data_scale = _robust_scale(r[seen], floor)
        wd = torch.maximum(v * _cauchy(r, data_scale), torch.full_like(v, _INVISIBLE_WEIGHT))
        res = _norm3(dx - target)
        we = _cauchy(res, _robust_scale(res, floor))
        del target, res

        rest = _rest_shape(dx, rot, rest, graph, we * pair_seen, cg_iterations)
    rot = _rotations(dx, rest, graph, we, pool)
    after = objective(x, dx, rot, rest, we, data_scale)
    outliers = float(((wd < 0.5 * v) & seen).sum()) / max(int(seen.sum()), 1)
    return x, rot, data_scale, dict(objective_before=before, objective_after=after, data_scale=data_scale, outlier_fraction=outliers)


def _rest_shape(dx, rot, rest, graph: _Graph, weight, cg_iterations):
    """The shape S shared by all frames: Σ_e ω_e ‖S_i − S_nbr − v_e‖², v_e the frames' edges ``dx`` rotated
    back to rest and averaged (weight ``[A, k, T]``); a tiny tie to the previous S fixes the translation."""
    a, k, t = dx.shape[:3]
    # Σ_t w_t R_tᵀ (X_i − X_nbr)_t for every edge: one batched product per point over (frame, axis).
    wdx = (weight[..., None] * dx).view(a, k, t * 3)
    total = weight.sum(-1)  # [A, k]
    edge = torch.bmm(wdx, rot.view(a, t * 3, 3)) / total.clamp_min(1e-12)[..., None]
    omega = total / t
    tie = 1e-3 * float(omega.mean()) + 1e-12

    def apply(p):
        return tie * p + graph.adjoint(omega[..., None] * graph.diff(p))

    return _cg(apply, tie * rest + graph.adjoint(omega[..., None] * edge), rest, cg_iterations)


def _follow_anchors(data, visibility, anchors, ya, xa, rot, stiffness, data_scale, neighbours, ref_frame, pool=None, chunk: int = 2048):
    """``[T, N, 3]``: the anchors' regularised positions ``xa [A, T, 3]`` (observed ``ya``), and every other
    point of ``data [T, N, 3]`` (visibility ``[T, N]``) from its nearest anchors' regularised motion
    (``rot [A, T, 3, 3]``), blended robustly with its own observation. Reads and writes the points in
    chunks of ``chunk`` (no point-major copy of the whole set)."""
    n = data.shape[1]
    kk = min(max(int(neighbours), 1), anchors.numel())
    is_anchor = torch.zeros(n, dtype=torch.bool, device=data.device)
    is_anchor[anchors] = True
    others = (~is_anchor).nonzero().squeeze(1)
    out = torch.empty_like(data)
    out[:, anchors] = xa.transpose(0, 1)
    ref_anchor = ya[:, ref_frame].contiguous()
    near_all, dist_all = knn(ref_anchor, kk, queries=data[ref_frame, others], workers=_pool_size(pool))

    def follow(start: int) -> None:
        idx = others[start : start + chunk]
        near, dist = near_all[start : start + chunk], dist_all[start : start + chunk]
        c, kn = near.shape
        flat = near.reshape(-1)
        w = 1.0 / (dist + 1e-6 * (float(dist.mean()) + 1e-12))  # [C, K]
        yp = data.index_select(1, idx).transpose(0, 1)  # [C, T, 3]
        seen = visibility.index_select(1, idx).T.to(data.dtype)  # [C, T]
        # (index_select: row gathers ~10x faster than advanced indexing with a 2-D index here)
        t = data.shape[0]
        rk = rot.index_select(0, flat).view(c * kn, t * 3, 3)  # [C·K, T·3, 3]: each anchor's R_t stacked
        d = yp[:, None] - ya.index_select(0, flat).view(c, kn, t, 3)  # [C, K, T, 3]
        # The point's offset to each anchor in the anchor's local frame, averaged over the frames it is
        # seen in: Σ_t w_t R_tᵀ d_t / Σ_t w_t, one (1 x 3T)(3T x 3) product per (point, anchor).
        frame_w = seen + 1e-6  # [C, T]
        total = frame_w.sum(1)[:, None, None, None]
        offset = torch.bmm((frame_w[:, None, :, None] * d).view(c * kn, 1, t * 3), rk).view(c, kn, 1, 3) / total  # [C, K, 1, 3]
        o = offset.view(c * kn, 3, 1)
        # R_t offset, written out per column: 3x faster than a batched product with one column.
        moved = (rk[..., 0] * o[:, 0] + rk[..., 1] * o[:, 1] + rk[..., 2] * o[:, 2]).view(c, kn, t, 3)
        # An anchor the point is not rigidly attached to (another body across an edge) loses its say
        # (‖R_tᵀ d_t − offset‖ = ‖d_t − R_t offset‖: the rotation keeps lengths).
        wobble = (frame_w[:, None] * _norm3(d - moved)).sum(2) / total[..., 0, 0]  # [C, K]
        w = w * _cauchy(wobble, data_scale) + 1e-12
        w = w / w.sum(1, keepdim=True)
        predicted = xa.index_select(0, flat).view(c, kn, t, 3) + moved  # [C, K, T, 3]
        predicted = (w[..., None, None] * predicted).sum(1)  # [C, T, 3]
        wd = torch.maximum(seen * _cauchy(_norm3(yp - predicted), data_scale), torch.full_like(seen, _INVISIBLE_WEIGHT))
        out.index_copy_(1, idx, ((wd[..., None] * yp + stiffness * predicted) / (wd[..., None] + stiffness)).transpose(0, 1))

    _map(pool, follow, range(0, others.numel(), chunk))
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
