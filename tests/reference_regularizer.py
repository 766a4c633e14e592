"""Today's PointRegularizer solver kept as the slow reference (issue 16): the same objective and
iterations as :func:`vid4d.py.points.regularize_points`, written the direct way (a directed edge list
with gathers and ``index_add_`` over it, 3x3 products through ``[..., 3, 3]`` tensors, 14 Newton steps
for every polar rotation, brute-force kNN with ``cdist``).

The tests compare the fast solver against it on small cases; ``tests/bench/bench_points.py`` runs it on
the full 49x480x720 set as the baseline of the speed figure.
"""

from __future__ import annotations

from typing import Callable

import torch

from vid4d.py.checks import check_finite_number, check_positive_int, check_tensor
from vid4d.py.points import _INVISIBLE_WEIGHT, _cauchy, _cg, _robust_scale


def knn(points: torch.Tensor, k: int, queries: torch.Tensor | None = None, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute-force kNN (cdist in chunks): index ``[M, k]`` and distance ``[M, k]``, nearest first."""
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


def regularize_points_reference(
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
    """:func:`vid4d.py.points.regularize_points` as it was before issue 16 (same arguments and result)."""
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
