"""Render a (pseudo 4D) Gaussian field through scheduled cameras: 3DGS EWA splatting as gsplat does it.

Two backends compute the same image:

- ``"gsplat"``: ``gsplat.rasterization`` on CUDA (imported lazily, only when asked for or probed);
- ``"torch"``: a tile-based rasteriser written in vectorised torch that runs on any device, here the
  CPU. It follows gsplat's design: project and cull every Gaussian, list the (tile, Gaussian)
  intersections sorted by (tile, depth), then blend each tile's depth-ordered list front to back, in
  chunks of ``K`` Gaussians for a batch of tiles at once. The chunk blend runs under ``torch.compile``
  when it can (``compile="auto"``) and eagerly otherwise; both run the same function.

Semantics (per Gaussian ``i`` and frame, gsplat's "classic" 3DGS mode, colours used as given):

- camera-space mean ``μ = R m + t``; culled when ``μ_z < near`` or ``μ_z > 1e10``;
- ``Σ = R_q S Sᵀ R_qᵀ`` (normalised quaternion ``wxyz``, ``S = diag(scales)``), ``Σ_c = R Σ Rᵀ``;
- ``Σ₂ = J Σ_c Jᵀ + 0.3 I`` (0.3 px² low-pass filter) with the perspective Jacobian ``J`` evaluated at
  the ray slopes ``x/z, y/z`` clamped to the field of view widened by 30 % of its half extent on each
  side, exactly gsplat's limits, so a Gaussian far outside the frame does not get an absurd footprint;
- 2D mean ``(fx x/z + s y/z + cx, fy y/z + cy)`` in our pixel convention (the centre of the top-left
  pixel is (0, 0); gsplat's is (0.5, 0.5), hence the +0.5 shift of the principal point we give it);
- ``conic = Σ₂⁻¹`` (culled when ``det Σ₂ ≤ 0``); at pixel ``p``, ``σ = ½ dᵀ conic d`` with
  ``d = p − mean₂``, ``α = min(0.99, opacity · e^{−σ})``, skipped when ``α < 1/255``;
- front to back by camera depth ``z`` (ties: lower index first): ``w_i = α_i T_i``,
  ``T_i = Π_{j<i}(1 − α_j)``; when ``T_i (1 − α_i) ≤ 1e-4`` that Gaussian is not added and the pixel is
  done (gsplat's test, ``<=``);
- ``rgb = Σ w_i c_i`` (+ ``T_final · background``), ``alpha = 1 − T_final``,
  ``depth = Σ w_i z_i / alpha`` (0 where ``alpha < 1e-6``).

Footprint: gsplat decides per *tile* which Gaussians a pixel sees (every pixel of every tile that the
Gaussian's bounding box touches is evaluated). The torch backend decides per *pixel*: a Gaussian
counts wherever ``α ≥ 1/255``, and its tiles are those its exact ``α ≥ 1/255`` ellipse bounding box
touches, so the image does not depend on the tile size. The two differ only in a thin fringe of
``α < 0.011`` (beyond 3σ) that gsplat sometimes includes and sometimes cuts at a tile edge. gsplat's
``radius = ceil(3 sqrt(λ_max))`` is therefore not used; the ``α ≥ 1/255`` box plays its role,
including culling Gaussians whose box holds no pixel centre.

A camera that sees nothing (everything behind it or off-screen) gives ``alpha = 0`` everywhere; that
is a valid render, not an error.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

import torch

from .camera import CameraPath
from .gaussians import GaussianField

BACKENDS = ("auto", "torch", "gsplat")
COMPILE_MODES = ("auto", True, False)

# gsplat's constants (gsplat/cuda/_constants.py) and defaults of gsplat.rasterization.
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.99
TRANSMITTANCE_THRESHOLD = 1e-4
EPS2D = 0.3  # low-pass filter added to the 2D covariance, px²
FAR_PLANE = 1e10
FOV_MARGIN = 0.3  # J's ray slopes are clamped to the image extent plus this fraction of the FOV half extent

MAX_SIDE = 16384
MAX_PIXELS = 64 * 1024 * 1024
DEPTH_ALPHA_MIN = 1e-6  # below this accumulated opacity the expected depth is reported as 0

# torch backend layout: K Gaussians per chunk, and about CHUNK_ELEMENTS (tile, Gaussian, pixel) triples
# per call, which keeps each [B, K, P] temporary around 1 MB (in cache) and the call overhead small.
CHUNK_GAUSSIANS = 32
CHUNK_ELEMENTS = 1 << 18
MAX_PAIRS_PER_BAND = 1 << 23  # (tile, Gaussian) pairs listed at once; more are split into tile-row bands
_BOX_SLACK = 1e-3  # px added to the α ≥ 1/255 box so float32 evaluation at its edge is still covered


@dataclass
class RenderResult:
    """One render per camera frame.

    Attributes:
        rgb: ``[T, H, W, 3]`` float32 composited colour (background black unless one was given).
        alpha: ``[T, H, W]`` accumulated opacity ``1 - T_final``; holes are where it is low.
        depth: ``[T, H, W]`` expected camera z ``Σ w_i z_i / alpha``; 0 where alpha < 1e-6.
        backend: ``"torch"`` or ``"gsplat"``, the one that ran.
        compiled: True when the torch backend's chunk blend ran under ``torch.compile``.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    backend: str
    compiled: bool = False


# ------------------------------------------------------------------------------------------ entry point
def render_gaussians(
    field: GaussianField,
    path: CameraPath,
    backend: str = "auto",
    *,
    near: float = 0.01,
    tile_size: int = 16,
    background=None,
    progress: Callable[[int], None] | None = None,
    compile="auto",
) -> RenderResult:
    """Render ``field`` through every camera of ``path``, one frame at a time.

    Args:
        field: ``T_f`` time steps; ``T_f == 1`` renders the static field through every camera, ``T_f ==
            path.num_frames`` renders time step t through camera t.
        path: cameras (intrinsics in pixels, world_to_camera, width, height).
        backend: ``"auto"`` (gsplat when :func:`gsplat_available`, else torch), ``"torch"`` or ``"gsplat"``.
        near: near plane (camera z), > 0.
        tile_size: tile side in pixels (both backends); the torch result does not depend on it.
        background: optional RGB (3 numbers or a ``[3]`` tensor) composited behind: ``rgb += (1 - alpha) bg``.
        progress: called with the number of frames done after each frame; an exception it raises
            (e.g. a cancel) propagates and stops the render.
        compile: torch backend only: ``"auto"`` tries ``torch.compile`` once per process and falls back
            to eager on any failure, ``True`` requires it, ``False`` never compiles.

    Returns:
        :class:`RenderResult` with tensors on the field's device.

    Raises:
        ValueError: frame counts that do not match, an image over 16384 px a side or 64 M pixels,
            ``near <= 0``, an unknown backend or compile mode, a bad tile size or background.
        RuntimeError: ``backend="gsplat"`` when gsplat cannot run here (the message says why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if not any(compile is m for m in COMPILE_MODES) and compile != "auto":
        raise ValueError(f"compile: expected 'auto', True or False, got {compile!r}")
    if not isinstance(field, GaussianField):
        raise ValueError(f"field: expected a GaussianField, got {type(field).__name__}")
    if not isinstance(path, CameraPath):
        raise ValueError(f"path: expected a CameraPath, got {type(path).__name__}")
    width, height = int(path.width), int(path.height)
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ValueError(f"render size {width}x{height}: at most {MAX_SIDE} px a side and {MAX_PIXELS // (1024 * 1024)} M pixels")
    near = float(near)
    if not math.isfinite(near) or near <= 0:
        raise ValueError(f"near: expected a finite near plane > 0, got {near}")
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or not 1 <= tile_size <= 64:
        raise ValueError(f"tile_size: expected an integer in 1..64, got {tile_size!r}")
    frames = path.num_frames
    if field.num_frames not in (1, frames):
        raise ValueError(
            f"the field has {field.num_frames} time steps and the camera path {frames} frames: "
            "expected a static field (1 time step) or one time step per camera frame"
        )
    device = field.device
    bg = _background(background)

    chosen = backend
    if backend == "auto":
        chosen = "gsplat" if _auto_wants_gsplat(path) else "torch"
    elif backend == "gsplat":
        ok, why = _gsplat_probe()
        if not ok:
            raise RuntimeError(f"backend='gsplat' is not available here: {why}. backend='torch' works everywhere (slower).")
        if bool((path.intrinsics[:, 0, 1].abs() > 1e-6).any()):
            raise RuntimeError("backend='gsplat' ignores the skew term K[0, 1] of these intrinsics; use backend='torch'")

    rgbs, alphas, depths = [], [], []
    compiled = True
    for t in range(frames):
        gauss = field.at(t if field.num_frames > 1 else 0)
        w2c, k = path.world_to_camera[t], path.intrinsics[t]
        if chosen == "gsplat":
            rgb, alpha, depth = _render_frame_gsplat(gauss, w2c, k, width, height, near, tile_size)
            compiled = False
        else:
            rgb, alpha, depth, used = _render_frame_torch(gauss, w2c, k, width, height, near, tile_size, compile)
            compiled = compiled and used
        if bg is not None:
            rgb = rgb + (1 - alpha)[..., None] * bg.to(rgb.device)
        rgbs.append(rgb.to(device))
        alphas.append(alpha.to(device))
        depths.append(depth.to(device))
        if progress is not None:
            progress(t + 1)
    return RenderResult(torch.stack(rgbs), torch.stack(alphas), torch.stack(depths), chosen, compiled and chosen == "torch")


def _background(background) -> torch.Tensor | None:
    if background is None:
        return None
    bg = torch.as_tensor(background, dtype=torch.float32).flatten().cpu()
    if bg.numel() != 3 or not bool(torch.isfinite(bg).all()):
        raise ValueError(f"background: expected 3 finite numbers (RGB), got {background!r}")
    return bg


# ------------------------------------------------------------------------------------------- projection
def _work_dtype(device: torch.device) -> torch.dtype:
    # The per-Gaussian projection is O(N), so float64 is cheap and keeps the conic of elongated
    # Gaussians accurate; MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[N, 3, 3]`` from quaternions ``[N, 4]`` (w, x, y, z), normalised first."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)


@dataclass
class Splats:
    """Gaussians projected into one camera, culled, in depth order (front first).

    Attributes:
        mean2d: ``[M, 2]`` pixel position (x, y), our convention, work dtype (float64 on CPU/CUDA).
        conic: ``[M, 3]`` (a, b, c) of ``Σ₂⁻¹ = [[a, b], [b, c]]``.
        depth: ``[M]`` camera z.
        opacity: ``[M]``.
        color: ``[M, 3]``.
        box: ``[M, 4]`` int64 (x0, x1, y0, y1): inclusive pixel range where ``α ≥ 1/255`` can hold.
        index: ``[M]`` int64 index of each splat in the field.
    """

    mean2d: torch.Tensor
    conic: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    color: torch.Tensor
    box: torch.Tensor
    index: torch.Tensor


def project_gaussians(gauss: dict, world_to_camera: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int, near: float) -> Splats:
    """Project one time step of a field (``GaussianField.at(t)``) into one camera and cull it.

    Culled: camera z outside [near, 1e10], opacity < 1/255, a non-positive-definite 2D covariance, and
    every Gaussian whose ``α ≥ 1/255`` box holds no pixel centre. The rest come sorted by depth.
    """
    means = gauss["means"]
    dt = _work_dtype(means.device)
    rot = world_to_camera[:3, :3].to(dt)
    cam = torch.addmm(world_to_camera[:3, 3].to(dt), means.to(dt), rot.T)
    x, y, z = cam.unbind(-1)
    opacity = gauss["opacities"]

    k = intrinsics.to(dt)
    fx, skew, cx, fy, cy = (float(v) for v in (k[0, 0], k[0, 1], k[0, 2], k[1, 1], k[1, 2]))
    # gsplat's limits, written with its principal point (ours + 0.5): the slope may leave the image by
    # 30 % of the FOV half extent before J stops following it.
    half_x, half_y = 0.5 * width / fx, 0.5 * height / fy
    inv_z = 1.0 / z
    xz = (x * inv_z).clamp(-((cx + 0.5) / fx + FOV_MARGIN * half_x), (width - cx - 0.5) / fx + FOV_MARGIN * half_x)
    yz = (y * inv_z).clamp(-((cy + 0.5) / fy + FOV_MARGIN * half_y), (height - cy - 0.5) / fy + FOV_MARGIN * half_y)
    # Rows of V = J R R_q S, so that Σ₂ = V Vᵀ + 0.3 I, with J = K₂ₓ₂ ∂(x/z, y/z)/∂(x, y, z) at the
    # clamped slopes. R R_q is one matrix product over all Gaussians ([3, 3] @ [3, 3N]).
    rq = quat_to_rotmat(gauss["quats"].to(dt))  # [N, 3, 3]
    n = rq.shape[0]
    m = (rot @ rq.permute(1, 0, 2).reshape(3, 3 * n)).reshape(3, n, 3) * gauss["scales"].to(dt)  # [3, N, 3]: row i of R R_q S
    v0 = (fx * m[0] + skew * m[1] - (fx * xz + skew * yz)[:, None] * m[2]) * inv_z[:, None]  # [N, 3]
    v1 = (fy * m[1] - (fy * yz)[:, None] * m[2]) * inv_z[:, None]
    cxx = (v0 * v0).sum(-1) + EPS2D
    cxy = (v0 * v1).sum(-1)
    cyy = (v1 * v1).sum(-1) + EPS2D
    det = cxx * cyy - cxy * cxy
    mean_x = (fx * x + skew * y) * inv_z + cx
    mean_y = fy * y * inv_z + cy

    # α = op·e^{-σ} ≥ 1/255 ⇔ σ ≤ ln(255·op): an ellipse whose bounding box has half sides sqrt(2 L Σxx), sqrt(2 L Σyy).
    op = opacity.to(dt)
    level = torch.log(op.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)
    ext_x = torch.sqrt(2 * level * cxx.clamp_min(0)) + _BOX_SLACK
    ext_y = torch.sqrt(2 * level * cyy.clamp_min(0)) + _BOX_SLACK
    big = float(4 * MAX_SIDE)  # keeps the float → int conversion in range for splats far off-screen
    x0 = torch.ceil((mean_x - ext_x).clamp(-1, big)).long().clamp_min(0)
    x1 = torch.floor((mean_x + ext_x).clamp(-big, width)).long().clamp_max(width - 1)
    y0 = torch.ceil((mean_y - ext_y).clamp(-1, big)).long().clamp_min(0)
    y1 = torch.floor((mean_y + ext_y).clamp(-big, height)).long().clamp_max(height - 1)
    keep = (z >= near) & (z <= FAR_PLANE) & (opacity >= ALPHA_THRESHOLD) & (det > 0) & (x0 <= x1) & (y0 <= y1)
    keep &= torch.isfinite(mean_x) & torch.isfinite(mean_y)

    # Depth order (ties by index): positive float32 bit patterns sort like the floats, and an int32
    # sort is several times faster than a float sort on CPU.
    sel = keep.nonzero().squeeze(1)
    order = torch.sort(z[sel].float().view(torch.int32), stable=True).indices
    sel = sel[order]
    det_s = det[sel]
    return Splats(
        mean2d=torch.stack([mean_x[sel], mean_y[sel]], dim=-1),
        conic=torch.stack([cyy[sel] / det_s, -cxy[sel] / det_s, cxx[sel] / det_s], dim=-1),
        depth=z[sel],
        opacity=op[sel],
        color=gauss["colors"][sel],
        box=torch.stack([x0[sel], x1[sel], y0[sel], y1[sel]], dim=-1),
        index=sel,
    )


# --------------------------------------------------------------------------------------- torch backend
_COMPILE_LOCK = threading.Lock()
_COMPILE_STATE = {"state": "untried", "error": None}  # untried | compiled | failed
_COMPILED = {}


def compile_status() -> dict:
    """``{"state": "untried" | "compiled" | "failed", "error": str | None}`` of the torch backend's chunk blend."""
    return dict(_COMPILE_STATE)


def blend_chunk(
    pix: torch.Tensor, g: torch.Tensor, trans: torch.Tensor, done: torch.Tensor, acc: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blend the next ``K`` depth-ordered Gaussians of ``B`` tiles into their pixels.

    Args:
        pix: ``[2, P]`` tile-local pixel-centre coordinates (x, y) of the ``P = s·s`` pixels, row-major.
        g: ``[B, K, 10]`` per Gaussian: tile-local mean x, y; conic a/2, b, c/2; ln(opacity); r, g, b; z.
            Padding entries carry ln(opacity) = -inf (α = 0).
        trans: ``[B, P]`` transmittance so far.
        done: ``[B, P]`` bool, pixels already saturated.
        acc: ``[B, 4, P]`` accumulated Σ w·(r, g, b, z).

    Returns:
        ``(trans, done, acc)`` after the chunk.
    """
    b, k, _ = g.shape
    p = pix.shape[1]
    mx, my, ha, hb, hc, log_op = (g[:, :, i : i + 1] for i in range(6))
    if torch.compiler.is_compiling():
        # Compiled: one fused, vectorised pass over [B, K, P] (per-pixel coordinates keep the
        # generated loop contiguous, so it vectorises).
        dx, dy = pix[0] - mx, pix[1] - my
        log_a = log_op - (ha * dx * dx + hb * dx * dy + hc * dy * dy)
    else:
        # Eager: the square terms are separable over a tile's columns and rows, so only the cross
        # term needs a full [B, K, s, s] product; fewer passes over memory than the direct form.
        s = math.isqrt(p)
        dx, dy = pix[0, :s] - mx, pix[1, ::s] - my  # [B, K, s]
        log_x = log_op - ha * dx * dx
        log_y = hc * dy * dy
        log_a = (hb * dx)[:, :, None, :] * dy[:, :, :, None]
        log_a = torch.sub(log_x[:, :, None, :], log_y[:, :, :, None]).sub_(log_a).reshape(b, k, p)
    alpha = torch.exp(log_a).clamp_max(MAX_ALPHA)
    alpha = alpha * (alpha >= ALPHA_THRESHOLD)
    # Transmittance after each Gaussian; a done pixel starts at 0 so nothing more is added there.
    t_start = trans * ~done
    t_after = torch.cumprod(1 - alpha, dim=1) * t_start[:, None, :]
    # gsplat: the Gaussian that would take T to <= 1e-4 is not added and the pixel is done; T only
    # falls, so the added Gaussians are a prefix of the chunk.
    added = t_after > TRANSMITTANCE_THRESHOLD
    weight = alpha * (t_after / (1 - alpha)) * added
    acc = acc + torch.bmm(g[:, :, 6:10].transpose(1, 2), weight)
    last = torch.where(added, t_after, t_start[:, None, :]).amin(dim=1)
    trans = torch.where(done, trans, last)
    done = t_after[:, -1] <= TRANSMITTANCE_THRESHOLD
    return trans, done, acc


class _ChunkRunner:
    """Calls :func:`blend_chunk`, compiled when allowed and working.

    ``torch.compile`` is tried once per process (it compiles lazily, so a failure shows up at the first
    call); with ``compile="auto"`` any failure is remembered and everything runs eagerly from then on.
    ``compiled`` ends True only if every call of this render ran the compiled function.
    """

    def __init__(self, compile_mode):
        self.mode = compile_mode
        self.fn = blend_chunk
        if compile_mode is True or (compile_mode == "auto" and _COMPILE_STATE["state"] != "failed"):
            self.fn = self._compiled()
        self.compiled = self.fn is not blend_chunk

    def _compiled(self) -> Callable:
        with _COMPILE_LOCK:
            if "fn" not in _COMPILED:
                try:
                    _COMPILED["fn"] = torch.compile(blend_chunk, dynamic=False)
                except Exception as err:  # noqa: BLE001 - no compiler, unsupported platform...
                    self._failed(err)
                    return blend_chunk
            return _COMPILED["fn"]

    def _failed(self, err: Exception) -> None:
        _COMPILE_STATE.update(state="failed", error=f"{type(err).__name__}: {err}")
        _COMPILED.pop("fn", None)
        if self.mode is True:
            raise RuntimeError(f"torch.compile of the chunk blend failed ({_COMPILE_STATE['error']}); use compile='auto' or False") from err

    def __call__(self, *args):
        if self.fn is blend_chunk:
            return blend_chunk(*args)
        try:
            out = self.fn(*args)
        except Exception as err:  # noqa: BLE001 - compile errors surface here, at the first call
            if _COMPILE_STATE["state"] == "compiled":
                raise  # it compiled before, so this is a real error, not a compiler problem
            self._failed(err)
            self.fn, self.compiled = blend_chunk, False
            return blend_chunk(*args)
        _COMPILE_STATE.update(state="compiled", error=None)
        return out


def _render_frame_torch(gauss: dict, w2c, k, width: int, height: int, near: float, tile_size: int, compile_mode):
    """One frame with the torch rasteriser → ``rgb [H, W, 3], alpha [H, W], depth [H, W], compiled``."""
    device = gauss["means"].device
    splats = project_gaussians(gauss, w2c.to(device), k.to(device), width, height, near)
    s = tile_size
    tiles_x, tiles_y = -(-width // s), -(-height // s)
    n_tiles = tiles_x * tiles_y
    # Per tile: Σ w (r, g, b, z) and the final transmittance.
    acc = torch.zeros(n_tiles, 4, s * s, device=device)
    trans = torch.ones(n_tiles, s * s, device=device)
    runner = _ChunkRunner(compile_mode)
    if splats.depth.numel():
        params = _splat_params(splats)
        for band_rows in _row_bands(splats.box, s, tiles_y):
            pair_splat, tile_start, tile_count = _tile_pairs(splats.box, s, tiles_x, n_tiles, band_rows)
            _blend_tiles(params, splats.mean2d, pair_splat, tile_start, tile_count, s, tiles_x, acc, trans, runner)

    def image(x):  # [n_tiles, s*s] → [H, W]
        return x.reshape(tiles_y, tiles_x, s, s).permute(0, 2, 1, 3).reshape(tiles_y * s, tiles_x * s)[:height, :width]

    alpha = 1 - image(trans)
    rgb = torch.stack([image(acc[:, c]) for c in range(3)], dim=-1)
    depth_sum = image(acc[:, 3])
    depth = torch.where(alpha >= DEPTH_ALPHA_MIN, depth_sum / alpha.clamp_min(DEPTH_ALPHA_MIN), torch.zeros_like(alpha))
    return rgb, alpha, depth, runner.compiled


def _splat_params(splats: Splats) -> torch.Tensor:
    """``[M + 1, 8]`` float32 blend parameters per splat (a/2, b, c/2, ln op, r, g, b, z); the last row is padding."""
    m = splats.depth.numel()
    p = torch.empty(m + 1, 8, device=splats.depth.device)
    p[:m, 0] = 0.5 * splats.conic[:, 0]
    p[:m, 1] = splats.conic[:, 1]
    p[:m, 2] = 0.5 * splats.conic[:, 2]
    p[:m, 3] = torch.log(splats.opacity)
    p[:m, 4:7] = splats.color.float()
    p[:m, 7] = splats.depth
    p[m] = 0
    p[m, 3] = -math.inf  # α = 0
    return p


def _row_bands(box: torch.Tensor, s: int, tiles_y: int) -> list[tuple[int, int]]:
    """Tile-row ranges ``[r0, r1)`` whose (tile, splat) pair lists each stay near MAX_PAIRS_PER_BAND."""
    nx = box[:, 1] // s - box[:, 0] // s + 1
    ty0, ty1 = box[:, 2] // s, box[:, 3] // s
    total = int((nx * (ty1 - ty0 + 1)).sum())
    if total <= MAX_PAIRS_PER_BAND:
        return [(0, tiles_y)]
    # pairs per tile row: a difference array over each splat's row range
    diff = torch.zeros(tiles_y + 1, dtype=torch.int64, device=box.device)
    diff.index_add_(0, ty0, nx)
    diff.index_add_(0, ty1 + 1, -nx)
    per_row = diff.cumsum(0)[:tiles_y].tolist()
    bands, start, count = [], 0, 0
    for r, n in enumerate(per_row):
        if count and count + n > MAX_PAIRS_PER_BAND:
            bands.append((start, r))
            start, count = r, 0
        count += n
    bands.append((start, tiles_y))
    return bands


def _tile_pairs(box: torch.Tensor, s: int, tiles_x: int, n_tiles: int, rows: tuple[int, int]):
    """(tile, splat) intersections within tile rows ``[r0, r1)``, sorted by (tile, depth).

    Returns:
        ``pair_splat [Q]`` splat index per pair (splats are already in depth order), ``tile_start
        [n_tiles]`` and ``tile_count [n_tiles]``: tile ``t``'s list is ``pair_splat[start:start+count]``.
    """
    device = box.device
    r0, r1 = rows
    tx0, tx1 = box[:, 0] // s, box[:, 1] // s
    ty0, ty1 = (box[:, 2] // s).clamp_min(r0), (box[:, 3] // s).clamp_max(r1 - 1)
    sel = None
    if r0 > 0 or r1 * tiles_x < n_tiles:  # a band: only the splats reaching into it, rows clipped
        sel = (ty0 <= ty1).nonzero().squeeze(1)
        tx0, tx1, ty0, ty1 = tx0[sel], tx1[sel], ty0[sel], ty1[sel]
    nx = tx1 - tx0 + 1
    count = nx * (ty1 - ty0 + 1)
    n_pairs = int(count.sum())
    splat = torch.repeat_interleave(torch.arange(count.numel(), device=device), count, output_size=n_pairs)
    first = count.cumsum(0) - count
    local = torch.arange(n_pairs, device=device) - first[splat]
    nx_p = nx[splat]
    row = ty0[splat] + torch.div(local, nx_p, rounding_mode="floor")
    tile = row * tiles_x + tx0[splat] + local % nx_p
    # Pairs were made in depth order, so a stable sort by tile keeps each tile's list depth-ordered
    # (int32 keys sort faster; n_tiles < 2^31 always holds within the size limits).
    tile_sorted, order = torch.sort(tile.to(torch.int32), stable=True)
    splat = splat[order]
    if sel is not None:
        splat = sel[splat]
    tile_count = torch.bincount(tile_sorted, minlength=n_tiles)
    tile_start = tile_count.cumsum(0) - tile_count
    return splat, tile_start, tile_count


def _blend_tiles(params, mean2d, pair_splat, tile_start, tile_count, s, tiles_x, acc_out, trans_out, runner) -> None:
    """Blend every listed tile, writing ``acc_out [n_tiles, 4, P]`` and ``trans_out [n_tiles, P]``.

    A fixed number of slots (B tiles) advance through their depth-ordered lists K Gaussians per call;
    a slot whose tile is finished (list exhausted or every pixel saturated) is refilled with the next
    tile, longest lists first, so no tile waits for another and the call shape never changes (one
    compilation).
    """
    device = params.device
    k = CHUNK_GAUSSIANS
    p = s * s
    n_slots = max(1, CHUNK_ELEMENTS // (k * p))
    queue = (tile_count > 0).nonzero().squeeze(1)
    if queue.numel() == 0:
        return
    queue = queue[torch.sort(tile_count[queue], descending=True, stable=True).indices]
    n_queue = queue.numel()
    pad_splat = params.shape[0] - 1
    pair_splat = torch.cat([pair_splat, pair_splat.new_full((1,), pad_splat)])
    pad_pair = pair_splat.numel() - 1
    mean2d = torch.cat([mean2d, mean2d.new_zeros(1, 2)])
    ar = torch.arange(s, device=device, dtype=torch.float32)
    pix = torch.stack([ar.repeat(s), ar.repeat_interleave(s)])  # [2, P] (x, y), row-major
    ar_k = torch.arange(k, device=device)

    slot_tile = torch.full((n_slots,), -1, dtype=torch.int64, device=device)
    slot_pos = torch.zeros(n_slots, dtype=torch.int64, device=device)
    slot_end = torch.zeros(n_slots, dtype=torch.int64, device=device)
    trans = torch.ones(n_slots, p, device=device)
    done = torch.zeros(n_slots, p, dtype=torch.bool, device=device)
    acc = torch.zeros(n_slots, 4, p, device=device)
    origin = torch.zeros(n_slots, 2, dtype=mean2d.dtype, device=device)
    next_tile = 0
    free = torch.arange(n_slots, device=device)
    while True:
        if free.numel():
            # refill free slots from the queue; slots left without a tile idle (empty list)
            take = min(free.numel(), n_queue - next_tile)
            if take:
                slots, tiles = free[:take], queue[next_tile : next_tile + take]
                next_tile += take
                slot_tile[slots] = tiles
                slot_pos[slots] = tile_start[tiles]
                slot_end[slots] = tile_start[tiles] + tile_count[tiles]
                trans[slots] = 1
                done[slots] = False
                acc[slots] = 0
                origin[slots, 0] = ((tiles % tiles_x) * s).to(origin.dtype)
                origin[slots, 1] = ((tiles // tiles_x) * s).to(origin.dtype)
            idle = free[take:]
            slot_tile[idle] = -1
            slot_pos[idle] = 0
            slot_end[idle] = 0
        if next_tile >= n_queue and bool((slot_tile < 0).all()):
            break
        idx = slot_pos[:, None] + ar_k
        idx = torch.where(idx < slot_end[:, None], idx, pad_pair)
        sid = pair_splat[idx]  # [B, K]
        local = (mean2d[sid] - origin[:, None, :]).float()  # tile-local means: small numbers, exact enough in float32
        g = torch.cat([local, params[sid]], dim=-1)
        trans, done, acc = runner(pix, g, trans, done, acc)
        slot_pos += k
        finished = (slot_tile >= 0) & ((slot_pos >= slot_end) | done.all(dim=1))
        free = finished.nonzero().squeeze(1)
        if free.numel():
            tiles = slot_tile[free]
            acc_out[tiles] = acc[free]
            trans_out[tiles] = trans[free]
            slot_tile[free] = -1
        # idle slots are refilled too
        free = (slot_tile < 0).nonzero().squeeze(1)


# -------------------------------------------------------------------------------------- gsplat backend
_GSPLAT_PROBE: dict = {}


def gsplat_available() -> bool:
    """True when CUDA is available, ``import gsplat`` works and a tiny test render succeeds (cached). Never raises."""
    return _gsplat_probe()[0]


def _gsplat_probe() -> tuple[bool, str]:
    if "result" in _GSPLAT_PROBE:
        return _GSPLAT_PROBE["result"]
    try:
        result = _probe_gsplat_uncached()
    except Exception as err:  # noqa: BLE001 - never raise from a probe
        result = (False, f"the gsplat probe failed unexpectedly ({type(err).__name__}: {err})")
    _GSPLAT_PROBE["result"] = result
    return result


def _probe_gsplat_uncached() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return False, "CUDA is not available (gsplat needs an NVIDIA GPU)"
    try:
        import gsplat  # noqa: F401
    except Exception as err:  # noqa: BLE001 - ImportError, or a broken install raising anything
        return False, f"import gsplat failed ({type(err).__name__}: {err}); install it with `pip install gsplat`"
    try:
        dev = torch.device("cuda")
        gauss = {
            "means": torch.tensor([[0.0, 0.0, 2.0]], device=dev),
            "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=dev),
            "scales": torch.full((1, 3), 0.05, device=dev),
            "opacities": torch.ones(1, device=dev),
            "colors": torch.ones(1, 3, device=dev),
        }
        k = torch.tensor([[16.0, 0, 7.5], [0, 16.0, 7.5], [0, 0, 1]], device=dev)
        _, alpha, _ = _render_frame_gsplat(gauss, torch.eye(4, device=dev), k, 16, 16, 0.01, 16)
        torch.cuda.synchronize()
        if not bool(alpha.max() > 0.5):
            return False, "the gsplat test render came back empty"
    except Exception as err:  # noqa: BLE001 - first use compiles CUDA code, which can fail in many ways
        return False, f"the gsplat test render failed ({type(err).__name__}: {err}), e.g. its CUDA code did not compile"
    return True, "ok"


def _auto_wants_gsplat(path: CameraPath) -> bool:
    # The field can always be moved to CUDA when CUDA exists; gsplat ignores intrinsic skew.
    return gsplat_available() and not bool((path.intrinsics[:, 0, 1].abs() > 1e-6).any())


def _render_frame_gsplat(gauss: dict, w2c, k, width: int, height: int, near: float, tile_size: int):
    """One frame with ``gsplat.rasterization`` on CUDA → ``rgb [H, W, 3], alpha [H, W], depth [H, W]`` (on CUDA)."""
    import gsplat

    dev = torch.device("cuda")

    def f32(x):
        return x.to(device=dev, dtype=torch.float32).contiguous()

    ks = f32(k).clone()
    ks[0, 2] += 0.5  # gsplat's pixel centres are at +0.5, ours at integers
    ks[1, 2] += 0.5
    colors, alphas, _ = gsplat.rasterization(
        f32(gauss["means"]),
        f32(gauss["quats"]),
        f32(gauss["scales"]),
        f32(gauss["opacities"]),
        f32(gauss["colors"]),
        f32(w2c)[None],
        ks[None],
        int(width),
        int(height),
        near_plane=float(near),
        far_plane=FAR_PLANE,
        eps2d=EPS2D,
        sh_degree=None,
        packed=False,
        tile_size=int(tile_size),
        render_mode="RGB+ED",
        rasterize_mode="classic",
    )
    alpha = alphas[0, ..., 0]
    rgb = colors[0, ..., :3]
    # "ED" is already Σ w z / alpha (gsplat divides by alpha clamped at 1e-10); report 0 in holes.
    depth = torch.where(alpha >= DEPTH_ALPHA_MIN, colors[0, ..., 3], torch.zeros_like(alpha))
    return rgb, alpha, depth
