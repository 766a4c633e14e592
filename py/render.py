"""Render a (pseudo 4D) Gaussian field through scheduled cameras: 3DGS EWA splatting as gsplat does it.

Two backends compute the same image:

- ``"gsplat"``: ``gsplat.rasterization`` on CUDA (imported lazily, only when asked for or probed);
- ``"torch"``: a tile-based rasteriser in vectorised torch that runs on any device (made for the
  CPU). It follows gsplat's design, one frame at a time: project and cull every Gaussian
  (:func:`project_dense`), list the (tile, Gaussian) intersections in (tile, depth) order with one
  stable sort (:func:`_tile_pairs`), then blend front to back (:func:`_blend_tiles`): tiles in
  batches of B with similar list lengths (longest first), each batch K = 32 splats per call of
  :func:`blend_chunk`, which evaluates α for ``[B, K, P]`` (tile, splat, pixel) triples, chains the
  transmittance through the chunk and carries it to the next; a batch stops once all its pixels are
  saturated. The projection and the chunk blend run under ``torch.compile`` when they can
  (``compile="auto"``: tried once per process and device type, eager on any failure); eager and
  compiled run the same functions and agree to float rounding. Default tile 8: on a CPU every listed
  splat is evaluated at all P pixels of its tile, so smaller tiles waste less (16 costs ~2.4x the
  pixel evaluations), while 4 doubles the pair list and per-splat overhead.

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
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .camera import CameraPath
from .checks import TensorData, check_finite_number, check_positive_int, check_tensor
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

# torch backend layout: K Gaussians per chunk and about this many (tile, Gaussian, pixel) triples per
# call: compiled calls have a fixed overhead (~0.15 ms) so they want big chunks; eager ops are fastest
# when their [B, K, P] temporaries stay in cache (measured on a 2-core AVX-512 Xeon).
TORCH_TILE_SIZE = 8
GSPLAT_TILE_SIZE = 16
CHUNK_GAUSSIANS = 32
CHUNK_ELEMENTS_COMPILED = 1 << 19
CHUNK_ELEMENTS_EAGER = 1 << 17
CHUNK_GROUP = 8  # chunks whose splat parameters are gathered at once (and between saturation checks)
MAX_PAIRS_PER_BAND = 1 << 22  # (tile, Gaussian) pairs listed at once; more are split into tile-row bands
PROJECT_BLOCK = 1 << 20  # Gaussians projected at once (float64 temporaries: ~40 vectors of this length)
_BOX_SLACK = 1e-3  # px added to the α ≥ 1/255 box so float32 evaluation at its edge is still covered


@dataclass
class RenderResult:
    """One render per camera frame.

    Attributes:
        rgb: ``[T, H, W, 3]`` float32 composited colour (background black unless one was given).
        alpha: ``[T, H, W]`` accumulated opacity ``1 - T_final``; holes are where it is low.
        depth: ``[T, H, W]`` expected camera z ``Σ w_i z_i / alpha``; 0 where alpha < 1e-6.
        backend: ``"torch"`` or ``"gsplat"``, the one that ran.
        compiled: True when the torch backend ran compiled code (projection and chunk blend) for every frame.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    backend: str
    compiled: bool = False


LAYOUTS = ("sequence", "grid")
HOLE_COLOR = (1.0, 0.0, 1.0)  # magenta: what a generator must invent, in the overlay


@dataclass
class RenderedVideo(TensorData):
    """The render of a camera path or rig as one video, with what the video models downstream need.

    A rig's clips lie one after another in time (``layout="sequence"``: clip k holds frames
    ``starts[k] : starts[k] + clip_frames[k]``) or side by side in one clip (``layout="grid"``). The
    generators (GSDiTSampler, the video-model bridge) read the clips from here, so the camera count is
    never typed twice.

    Attributes:
        rgb: ``[T, H, W, 3]`` colour in 0..1.
        alpha: ``[T, H, W]`` accumulated opacity in 0..1.
        depth: ``[T, H, W]`` expected camera z (0 where nothing was rendered).
        holes: ``[T, H, W]`` float, 1 where ``alpha < hole_threshold`` (what a generator must invent).
        clip_frames: frame count of each clip, in time order; sums to T.
        layout: ``"sequence"`` or ``"grid"`` (then one clip, cameras side by side).
        cameras: number of cameras rendered.
        hole_threshold: the alpha below which a pixel is a hole.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    holes: torch.Tensor
    clip_frames: tuple[int, ...]
    layout: str = "sequence"
    cameras: int = 1
    hole_threshold: float = 0.5

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("RenderedVideo.rgb", self.rgb, ("T", "H", "W", 3), dims=dims)
        check_tensor("RenderedVideo.alpha", self.alpha, ("T", "H", "W"), dims=dims)
        check_tensor("RenderedVideo.depth", self.depth, ("T", "H", "W"), dims=dims)
        check_tensor("RenderedVideo.holes", self.holes, ("T", "H", "W"), dims=dims)
        if self.layout not in LAYOUTS:
            raise ValueError(f"RenderedVideo.layout: expected one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        self.clip_frames = tuple(check_positive_int(f"RenderedVideo.clip_frames[{i}]", n) for i, n in enumerate(self.clip_frames))
        if sum(self.clip_frames) != dims["T"]:
            raise ValueError(f"RenderedVideo.clip_frames: {list(self.clip_frames)} sum to {sum(self.clip_frames)}, expected the {dims['T']} frames of the render")
        self.cameras = check_positive_int("RenderedVideo.cameras", self.cameras)
        if self.layout == "sequence" and len(self.clip_frames) != self.cameras:
            raise ValueError(f"RenderedVideo: layout sequence needs one clip per camera, got {len(self.clip_frames)} clips for {self.cameras} cameras")
        if self.layout == "grid" and len(self.clip_frames) != 1:
            raise ValueError(f"RenderedVideo: layout grid is one clip, got {len(self.clip_frames)}")

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def starts(self) -> tuple[int, ...]:
        """First frame of every clip."""
        out, at = [], 0
        for n in self.clip_frames:
            out.append(at)
            at += n
        return tuple(out)

    def clip_slices(self) -> list[slice]:
        """One ``slice`` over the frame axis per clip."""
        return [slice(s, s + n) for s, n in zip(self.starts, self.clip_frames)]

    def depth_video(self):
        """The render's depth as a relative :class:`~vid4d.py.depth.DepthVideo`, valid where something was
        rendered (alpha ≥ ``hole_threshold``, at least 1e-3), 0 elsewhere."""
        from .depth import DepthVideo

        valid = self.alpha >= max(self.hole_threshold, 1e-3)
        return DepthVideo.from_checked(torch.where(valid, self.depth, torch.zeros_like(self.depth)), kind="relative", valid=valid)

    def overlay(self) -> torch.Tensor:
        """``[T, H, W, 3]``: the render with its holes tinted magenta."""
        tint = torch.tensor(HOLE_COLOR, dtype=self.rgb.dtype, device=self.rgb.device)
        return torch.where(self.holes[..., None] > 0, 0.5 * self.rgb + 0.5 * tint, self.rgb)


def join_renders(results: "list[RenderResult]", *, hole_threshold: float = 0.5, layout: str = "sequence") -> RenderedVideo:
    """The renders of a rig's cameras (one :class:`RenderResult` each, same frame count and size for
    ``grid``) as one :class:`RenderedVideo`: clips one after another, or side by side."""
    if not results:
        raise ValueError("join_renders: expected at least one render")
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    hole_threshold = check_finite_number("hole_threshold", hole_threshold, low=0.0, high=1.0)
    dim = 2 if layout == "grid" else 0
    rgb = torch.cat([r.rgb for r in results], dim=dim).clamp(0, 1)
    alpha = torch.cat([r.alpha for r in results], dim=dim)
    depth = torch.cat([r.depth for r in results], dim=dim)
    clips = (int(rgb.shape[0]),) if layout == "grid" else tuple(int(r.rgb.shape[0]) for r in results)
    holes = (alpha < hole_threshold).float()
    return RenderedVideo.from_checked(rgb, alpha, depth, holes, clips, layout, len(results), hole_threshold)


# ------------------------------------------------------------------------------------------ entry point
def render_gaussians(
    field: GaussianField,
    path: CameraPath,
    backend: str = "auto",
    *,
    near: float = 0.01,
    tile_size: int | None = None,
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
        tile_size: tile side in pixels; ``None``: 16 for gsplat (its default), 8 for torch (about 2.5x
            faster than 16 on CPU: fewer pixels evaluated per Gaussian). The torch image does not
            depend on it.
        background: optional RGB (3 numbers or a ``[3]`` tensor) composited behind: ``rgb += (1 - alpha) bg``.
        progress: called with the number of frames done after each frame; an exception it raises
            (e.g. a cancel) propagates and stops the render.
        compile: torch backend only: ``"auto"`` tries ``torch.compile`` once per process and device type
            and falls back to eager on any failure (the first compiled frame on a CPU takes ~10-30 s),
            ``True`` requires it (RuntimeError if it fails), ``False`` never compiles.

    Returns:
        :class:`RenderResult` with tensors on the field's device.

    Raises:
        ValueError: frame counts that do not match, an image over 16384 px a side or 64 M pixels,
            ``near <= 0``, an unknown backend or compile mode, a bad tile size or background.
        RuntimeError: ``backend="gsplat"`` when gsplat cannot run here (the message says why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if not (compile is True or compile is False or compile == "auto"):
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
    if tile_size is not None and (isinstance(tile_size, bool) or not isinstance(tile_size, int) or not 1 <= tile_size <= 64):
        raise ValueError(f"tile_size: expected None or an integer in 1..64, got {tile_size!r}")
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

    if tile_size is None:
        tile_size = GSPLAT_TILE_SIZE if chosen == "gsplat" else TORCH_TILE_SIZE
    # Preallocated outputs: only one frame's working memory exists at a time.
    rgbs = torch.empty(frames, height, width, 3, device=device)
    alphas = torch.empty(frames, height, width, device=device)
    depths = torch.empty(frames, height, width, device=device)
    compiled = True
    source = field.to(_GSPLAT_DEVICE) if chosen == "gsplat" else field  # moved once, not per frame
    for t in range(frames):
        gauss = source.at(t if field.num_frames > 1 else 0)
        w2c, k = path.world_to_camera[t], path.intrinsics[t]
        if chosen == "gsplat":
            rgb, alpha, depth = _render_frame_gsplat(gauss, w2c, k, width, height, near, tile_size)
            compiled = False
        else:
            rgb, alpha, depth, used = _render_frame_torch(gauss, w2c, k, width, height, near, tile_size, compile)
            compiled = compiled and used
        if bg is not None:
            rgb = rgb + (1 - alpha)[..., None] * bg.to(rgb.device)
        rgbs[t], alphas[t], depths[t] = rgb, alpha, depth
        del rgb, alpha, depth
        if progress is not None:
            progress(t + 1)
    return RenderResult(rgbs, alphas, depths, chosen, compiled and chosen == "torch")


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


def _rotmat_entries(q) -> list[list[torch.Tensor]]:
    """The 3x3 rotation matrix entries (``[N]`` each) of component-major quaternions ``[4, N]`` (w, x, y, z), normalised.

    A nested list, not a stacked tensor: compiled, every entry stays in registers.
    """
    w, x, y, z = q[0], q[1], q[2], q[3]
    inv = torch.rsqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w * inv, x * inv, y * inv, z * inv
    return [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]


@dataclass
class Splats:
    """Gaussians projected into one camera, culled, in depth order (front first), as the rasteriser wants them.

    Attributes:
        table: ``[M + 1, 12]`` float32 per splat: position relative to its anchor (x, y); conic a/2, b, c/2
            (``conic = [[a, b], [b, c]]``); ln opacity; r, g, b; camera z; anchor (x, y). The anchor is the
            nearest integer pixel, so ``position - tile origin = relative + (anchor - origin)`` is exact
            enough in float32 anywhere in a 16k image. The last row is padding (ln opacity = -inf: α = 0).
        box: ``[4, M]`` int32 rows x0, x1, y0, y1: inclusive pixel range where ``α ≥ 1/255`` can hold.
        index: ``[M]`` int64 index of each splat in the field.
    """

    table: torch.Tensor
    box: torch.Tensor
    index: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.index.numel())


def project_gaussians(
    gauss: dict, world_to_camera: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int, near: float, project: Callable | None = None
) -> Splats:
    """Project one time step of a field (``GaussianField.at(t)``) into one camera and cull it.

    Culled: camera z outside [near, 1e10], opacity < 1/255, a non-positive-definite 2D covariance, and
    every Gaussian whose ``α ≥ 1/255`` box holds no pixel centre. The rest come sorted by depth.
    ``project`` runs :func:`project_dense` (e.g. compiled); default: eagerly.
    """
    means = gauss["means"]
    dt = _work_dtype(means.device)
    # One small tensor for the camera, so a new camera, size or near plane reuses the compiled code.
    cams = torch.zeros(5, 4, dtype=dt, device=means.device)
    cams[:3] = world_to_camera[:3]
    cams[3:, :3] = intrinsics[:2]
    cams[3, 3], cams[4, 0], cams[4, 3] = width, near, height

    def rows(x):  # [n, C] → contiguous [C, n] in the work dtype, one copy
        return torch.empty(x.shape[::-1], dtype=dt, device=x.device).copy_(x.T)

    # In blocks of Gaussians, keeping only the survivors of each: bounded memory for huge fields.
    n = means.shape[0]
    parts = []
    for lo in range(0, n, PROJECT_BLOCK):
        hi = min(n, lo + PROJECT_BLOCK)
        mean, per, keep = (project or project_dense)(
            rows(means[lo:hi]), rows(gauss["quats"][lo:hi]), rows(gauss["scales"][lo:hi]), gauss["opacities"][lo:hi].to(dt), cams
        )
        idx = keep.nonzero().squeeze(1)
        if n > PROJECT_BLOCK:
            parts.append((mean.index_select(1, idx), per.index_select(1, idx), idx + lo, None))
        else:
            parts.append((mean, per, idx, idx))
    if len(parts) == 1:
        mean, per, index, local = parts[0]
    else:
        mean, per, index = (torch.cat([part[i] for part in parts], dim=-1) for i in range(3))
        local = torch.arange(index.numel(), device=index.device)
    # Depth order by float32 z, as gsplat (ties: lower index first). Positive float32 bit patterns sort
    # like the floats, and an int32 sort is several times faster than a float sort on CPU.
    order = torch.sort(per[4].index_select(0, local).view(torch.int32), stable=True).indices
    local, sel = local.index_select(0, order), index.index_select(0, order)
    m = sel.numel()
    per = per.index_select(1, local)
    mean = mean.index_select(1, local)
    anchor = mean.round().clamp_(-(2.0**23), 2.0**23)
    table = torch.empty(m + 1, 12, device=means.device)
    table[:m, 0:2] = (mean - anchor).T
    table[:m, 2:6] = per[0:4].T
    table[:m, 6:9] = gauss["colors"].index_select(0, sel)
    table[:m, 9] = per[4]
    table[:m, 10:12] = anchor.T
    table[m] = 0
    table[m, 5] = -math.inf
    return Splats(table=table, box=per[5:9].to(torch.int32), index=sel)


def project_dense(
    means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacity: torch.Tensor, cams: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA projection of every Gaussian, before culling (pure tensor code, so it can be compiled).

    Args:
        means ``[3, N]``, quats ``[4, N]`` (wxyz), scales ``[3, N]``, opacity ``[N]``: the field at one time
            step, component-major (each row contiguous, so compiled code vectorises over Gaussians).
        cams: ``[5, 4]``: rows 0-2 of world_to_camera; then [fx, skew, cx, width] and [near, fy, cy, height].

    Returns:
        ``mean [2, N]`` (x, y) pixel position; ``per [9, N]`` float32: a/2, b, c/2 of the conic, ln opacity,
        camera z, then the inclusive pixel range x0, x1, y0, y1 (integers) where ``α ≥ 1/255`` can hold;
        ``keep [N]`` bool (not culled). Rows, not columns, so compiled code writes contiguous vectors.
    """
    rot = cams[:3, :3]
    width, near, height = cams[3, 3], cams[4, 0], cams[4, 3]
    x, y, z = (rot[i, 0] * means[0] + rot[i, 1] * means[1] + rot[i, 2] * means[2] + cams[i, 3] for i in range(3))
    fx, skew, cx, fy, cy = cams[3, 0], cams[3, 1], cams[3, 2], cams[4, 1], cams[4, 2]
    # gsplat's limits, written with its principal point (ours + 0.5): the slope may leave the image by
    # 30 % of the FOV half extent before J stops following it.
    half_x, half_y = 0.5 * width / fx, 0.5 * height / fy
    inv_z = 1.0 / z
    xz = torch.clamp(x * inv_z, -((cx + 0.5) / fx + FOV_MARGIN * half_x), (width - cx - 0.5) / fx + FOV_MARGIN * half_x)
    yz = torch.clamp(y * inv_z, -((cy + 0.5) / fy + FOV_MARGIN * half_y), (height - cy - 0.5) / fy + FOV_MARGIN * half_y)
    # Rows v0, v1 of V = J R R_q S, so that Σ₂ = V Vᵀ + 0.3 I, with J = K₂ₓ₂ ∂(x/z, y/z)/∂(x, y, z)
    # at the clamped slopes. Written entry by entry (no stacked intermediates) so that, compiled, it is
    # one pass over the Gaussians.
    rq = _rotmat_entries(quats)
    shift_x = fx * xz + skew * yz
    jy = fy * inv_z
    cxx = cxy = cyy = None
    for j in range(3):
        m0, m1, m2 = (rot[i, 0] * rq[0][j] + rot[i, 1] * rq[1][j] + rot[i, 2] * rq[2][j] for i in range(3))
        v0 = (fx * m0 + skew * m1 - shift_x * m2) * inv_z * scales[j]
        v1 = (m1 - yz * m2) * jy * scales[j]
        cxx = v0 * v0 if cxx is None else cxx + v0 * v0
        cxy = v0 * v1 if cxy is None else cxy + v0 * v1
        cyy = v1 * v1 if cyy is None else cyy + v1 * v1
    cxx, cyy = cxx + EPS2D, cyy + EPS2D
    det = cxx * cyy - cxy * cxy
    mean_x = (fx * x + skew * y) * inv_z + cx
    mean_y = fy * y * inv_z + cy

    # α = op·e^{-σ} ≥ 1/255 ⇔ σ ≤ ln(255·op): an ellipse whose bounding box has half sides sqrt(2 L Σxx), sqrt(2 L Σyy).
    two_level = 2 * torch.log(opacity.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)
    ext_x = torch.sqrt(two_level * cxx.clamp_min(0)) + _BOX_SLACK
    ext_y = torch.sqrt(two_level * cyy.clamp_min(0)) + _BOX_SLACK
    big = float(4 * MAX_SIDE)  # keeps the float → int conversion in range for splats far off-screen
    x0 = torch.ceil((mean_x - ext_x).clamp(-1, big)).clamp_min(0)
    x1 = torch.minimum(torch.floor((mean_x + ext_x).clamp(-big, big)), width - 1)
    y0 = torch.ceil((mean_y - ext_y).clamp(-1, big)).clamp_min(0)
    y1 = torch.minimum(torch.floor((mean_y + ext_y).clamp(-big, big)), height - 1)
    keep = (z >= near) & (z <= FAR_PLANE) & (opacity >= ALPHA_THRESHOLD) & (det > 0) & (x0 <= x1) & (y0 <= y1)
    keep = keep & torch.isfinite(mean_x) & torch.isfinite(mean_y)
    half_inv_det = 0.5 / det
    per = torch.stack([cyy * half_inv_det, -2 * cxy * half_inv_det, cxx * half_inv_det, torch.log(opacity), z, x0, x1, y0, y1]).float()
    return torch.stack([mean_x, mean_y]), per, keep


# --------------------------------------------------------------------------------------- torch backend
_COMPILE_LOCK = threading.Lock()
_COMPILE_STATE: dict[str, dict] = {}  # device type → {"state": untried | compiled | failed, "error": str | None}
_COMPILED: dict = {}  # (function, device type) → compiled function


def compile_status(device: str = "cpu") -> dict:
    """``{"state": "untried" | "compiled" | "failed", "error": str | None}`` of the torch rasteriser on a device type.

    Tracked per device type: a failed CUDA compile (e.g. no triton) does not turn it off for the CPU.
    """
    return dict(_COMPILE_STATE.get(torch.device(device).type, {"state": "untried", "error": None}))


def blend_chunk(pix: torch.Tensor, g: torch.Tensor, origin: torch.Tensor, trans: torch.Tensor, acc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend the next ``K`` depth-ordered splats of ``B`` tiles into their pixels.

    Args:
        pix: ``[2, P]`` tile-local pixel-centre coordinates (x, y) of the ``P = s·s`` pixels, row-major.
        g: ``[B, K, 12]`` the splats' :attr:`Splats.table` rows, front to back per tile (padding rows: α = 0).
        origin: ``[B, 2]`` float32 pixel coordinates (x, y) of each tile's top-left pixel.
        trans: ``[B, P]`` transmittance so far; stored negated (``-T_final``) once the pixel is done.
        acc: ``[B, 4, P]`` accumulated Σ w·(r, g, b, z).

    Returns:
        ``(trans, acc)`` after the chunk.
    """
    b, k, _ = g.shape
    p = pix.shape[1]
    # tile-local mean = (position - anchor) + (anchor - origin): a small number plus an exact integer
    mx = g[:, :, 0:1] + (g[:, :, 10:11] - origin[:, None, 0:1])
    my = g[:, :, 1:2] + (g[:, :, 11:12] - origin[:, None, 1:2])
    ha, hb, hc, log_op = (g[:, :, i : i + 1] for i in range(2, 6))
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
    # (In-place ops below only touch temporaries: cheaper eagerly, and torch.compile handles them.)
    alpha = torch.exp(log_a).clamp_max_(MAX_ALPHA)
    alpha = alpha.masked_fill_(alpha < ALPHA_THRESHOLD, 0.0)
    # Transmittance before and after each Gaussian; a done pixel starts at 0 so nothing is added.
    t_start = trans.clamp_min(0)[:, None, :]
    t_after = _cumprod_k(1 - alpha).mul_(t_start)
    t_before = torch.cat([t_start, t_after[:, :-1]], dim=1)
    # gsplat: the Gaussian that would take T to <= 1e-4 is not added and the pixel is done; T only
    # falls, so the added Gaussians are a prefix of the chunk.
    stopped = t_after <= TRANSMITTANCE_THRESHOLD
    weight = alpha.mul_(t_before).masked_fill_(stopped, 0.0)
    # Σ_k w (r, g, b, z): compiled, four reductions over K fuse with the weights (no [B, K, P] buffer
    # for a GEMM to read back); eagerly one bmm is fewer passes.
    if torch.compiler.is_compiling():
        acc = acc + torch.stack([(weight * g[:, :, c : c + 1]).sum(1) for c in range(6, 10)], dim=1)
    else:
        acc = acc + torch.bmm(g[:, :, 6:10].transpose(1, 2), weight)
    last = torch.minimum(t_after.masked_fill_(stopped, math.inf).amin(dim=1), t_start[:, 0])  # T after the last added one
    stop = stopped[:, -1]
    trans = torch.where(trans < 0, trans, torch.where(stop, -last, last))
    return trans, acc


def _cumprod_k(x: torch.Tensor) -> torch.Tensor:
    """Cumulative product over dim 1 of ``[B, K, P]``.

    Compiled, an unrolled chain of K products fuses into the surrounding kernel and runs ~2.5x faster
    than aten's cumprod; eagerly, K separate ops would be slow, so aten's is used.
    """
    if not torch.compiler.is_compiling():
        return torch.cumprod(x, dim=1)
    out = [x[:, 0]]
    for i in range(1, x.shape[1]):
        out.append(out[-1] * x[:, i])
    return torch.stack(out, dim=1)


class _Runner:
    """Calls ``fn`` (a pure tensor function), compiled when allowed and working on ``device``.

    ``torch.compile`` is tried once per process and device type (it compiles lazily, so a failure shows
    up at the first call); with ``compile="auto"`` any failure is remembered and that device type runs
    eagerly from then on. ``compiled`` ends True only if every call through this runner ran compiled.
    """

    def __init__(self, fn: Callable, compile_mode, device: torch.device, **options):
        self.mode, self.eager, self.fn = compile_mode, fn, fn
        self.kind = torch.device(device).type
        state = _COMPILE_STATE.setdefault(self.kind, {"state": "untried", "error": None})
        if compile_mode is True or (compile_mode == "auto" and state["state"] != "failed"):
            self.fn = self._compiled(options)
        self.compiled = self.fn is not fn

    def _compiled(self, options: dict) -> Callable:
        with _COMPILE_LOCK:
            key = (self.eager, self.kind)
            if key not in _COMPILED:
                try:
                    _COMPILED[key] = torch.compile(self.eager, **options)
                except Exception as err:  # noqa: BLE001 - no compiler, unsupported platform...
                    self._failed(err)
                    return self.eager
            return _COMPILED[key]

    def _failed(self, err: Exception) -> None:
        _COMPILE_STATE[self.kind] = {"state": "failed", "error": f"{type(err).__name__}: {err}"}
        for key in [key for key in _COMPILED if key[1] == self.kind]:
            del _COMPILED[key]
        if self.mode is True:
            raise RuntimeError(
                f"torch.compile of the torch rasteriser failed on {self.kind} ({_COMPILE_STATE[self.kind]['error']}); "
                "use compile='auto' (falls back to eager) or compile=False"
            ) from err

    def __call__(self, *args):
        if self.fn is self.eager:
            return self.eager(*args)
        try:
            out = self.fn(*args)
        except Exception as err:  # compile errors surface here, at the first call
            if _COMPILE_STATE[self.kind]["state"] == "compiled":
                raise  # it compiled before, so this is a real error, not a compiler problem
            self._failed(err)
            self.fn, self.compiled = self.eager, False
            return self.eager(*args)
        _COMPILE_STATE[self.kind] = {"state": "compiled", "error": None}
        return out


def _render_frame_torch(gauss: dict, w2c, k, width: int, height: int, near: float, tile_size: int, compile_mode):
    """One frame with the torch rasteriser → ``rgb [H, W, 3], alpha [H, W], depth [H, W], compiled``."""
    device = gauss["means"].device
    project = _Runner(project_dense, compile_mode, device)  # N differs between fields: dynamic after a recompile
    splats = project_gaussians(gauss, w2c.to(device), k.to(device), width, height, near, project)
    s = tile_size
    tiles_x, tiles_y = -(-width // s), -(-height // s)
    n_tiles = tiles_x * tiles_y
    # Per tile: Σ w (r, g, b, z) and the final transmittance.
    acc = torch.zeros(n_tiles, 4, s * s, device=device)
    trans = torch.ones(n_tiles, s * s, device=device)
    runner = _Runner(blend_chunk, compile_mode, device, dynamic=False)  # every call has the same shapes
    if splats.count:
        rect = torch.div(splats.box, s, rounding_mode="floor")  # [4, M] tile columns and rows each splat covers
        for band_rows in _row_bands(rect, tiles_y):
            pair_splat, tile_start, tile_count = _tile_pairs(rect, tiles_x, n_tiles, band_rows)
            _blend_tiles(splats, pair_splat, tile_start, tile_count, s, tiles_x, acc, trans, runner)

    def image(x):  # [n_tiles, s*s] → [H, W]
        return x.reshape(tiles_y, tiles_x, s, s).permute(0, 2, 1, 3).reshape(tiles_y * s, tiles_x * s)[:height, :width]

    alpha = 1 - image(trans)
    rgb = torch.stack([image(acc[:, c]) for c in range(3)], dim=-1)
    depth_sum = image(acc[:, 3])
    depth = torch.where(alpha >= DEPTH_ALPHA_MIN, depth_sum / alpha.clamp_min(DEPTH_ALPHA_MIN), torch.zeros_like(alpha))
    return rgb, alpha, depth, runner.compiled and project.compiled


def _row_bands(rect: torch.Tensor, tiles_y: int) -> list[tuple[int, int]]:
    """Tile-row ranges ``[r0, r1)`` whose (tile, splat) pair lists each stay near MAX_PAIRS_PER_BAND.

    ``rect``: ``[4, M]`` int32 first/last tile column, first/last tile row of each splat.
    """
    tx0, tx1, ty0, ty1 = rect
    nx = tx1 - tx0 + 1
    total = int((nx * (ty1 - ty0 + 1)).sum(dtype=torch.int64))
    if total <= MAX_PAIRS_PER_BAND:
        return [(0, tiles_y)]
    # pairs per tile row: a difference array over each splat's row range
    nx, ty0, ty1 = nx.long(), ty0.long(), ty1.long()
    diff = torch.zeros(tiles_y + 1, dtype=torch.int64, device=rect.device)
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


def _tile_pairs(rect: torch.Tensor, tiles_x: int, n_tiles: int, rows: tuple[int, int]):
    """(tile, splat) intersections within tile rows ``[r0, r1)``, sorted by (tile, depth).

    Args:
        rect: ``[4, M]`` int32 first/last tile column, first/last tile row of each splat (depth order).
        tiles_x, n_tiles: the tile grid's width and size; rows: the band of tile rows.

    Returns:
        ``pair_splat [Q]`` splat index per pair (splats are already in depth order), ``tile_start
        [n_tiles]`` and ``tile_count [n_tiles]``: tile ``t``'s list is ``pair_splat[start:start+count]``.
    """
    device = rect.device
    r0, r1 = rows
    tx0, tx1, ty0, ty1 = rect  # int32: half the memory traffic of int64
    ty0, ty1 = ty0.clamp_min(r0), ty1.clamp_max(r1 - 1)
    sel = None
    if r0 > 0 or r1 * tiles_x < n_tiles:  # a band: only the splats reaching into it, rows clipped
        sel = (ty0 <= ty1).nonzero().squeeze(1)
        tx0, tx1, ty0, ty1 = (v.index_select(0, sel) for v in (tx0, tx1, ty0, ty1))
    nx = tx1 - tx0 + 1
    count = nx * (ty1 - ty0 + 1)
    n_pairs = int(count.sum())
    if n_pairs >= 2**31:
        raise RuntimeError(
            f"{n_pairs} (tile, Gaussian) overlaps in one row of tiles: the Gaussians are enormous on screen "
            "(check their scales and the camera), or render smaller"
        )
    # Pairs splat by splat (so in depth order): the i-th pair of a splat covers row i // nx, column
    # i % nx of its tile rectangle. index_select is much faster than advanced indexing on CPU.
    splat = torch.repeat_interleave(torch.arange(count.numel(), device=device, dtype=torch.int32), count, output_size=n_pairs)
    first = count.cumsum(0, dtype=torch.int32) - count
    local = torch.arange(n_pairs, device=device, dtype=torch.int32) - first.index_select(0, splat)
    nx_p = nx.index_select(0, splat)
    row = torch.div(local, nx_p, rounding_mode="floor")
    col = local.sub_(row * nx_p)  # local is consumed: now the column offset
    tile = (ty0 * tiles_x + tx0).index_select(0, splat).add_(row.mul_(tiles_x)).add_(col)
    # A stable sort by tile keeps each tile's list in depth order; small integer keys sort faster.
    key_dtype = torch.int16 if n_tiles <= 2**15 else torch.int32
    tile_count = torch.bincount(tile, minlength=n_tiles)
    order = torch.sort(tile.to(key_dtype), stable=True).indices
    splat = splat.index_select(0, order).long()
    if sel is not None:
        splat = sel.index_select(0, splat)
    tile_start = tile_count.cumsum(0) - tile_count
    return splat, tile_start, tile_count


def _blend_tiles(splats: Splats, pair_splat, tile_start, tile_count, s, tiles_x, acc_out, trans_out, runner) -> None:
    """Blend every listed tile, writing ``acc_out [n_tiles, 4, P]`` and ``trans_out [n_tiles, P]``.

    Tiles go in batches of B, longest lists first, so the tiles of a batch need about the same number
    of chunks of K (little padding); a batch stops early once all its pixels are saturated. The
    splats' table rows are gathered for a group of chunks at once (plain loads keep the compiled
    kernel lean; the group bounds memory for very long lists), and every call of the chunk blend
    sees the same shapes: one compilation.
    """
    table = splats.table
    device = table.device
    k = CHUNK_GAUSSIANS
    p = s * s
    n_batch = max(1, (CHUNK_ELEMENTS_COMPILED if runner.compiled else CHUNK_ELEMENTS_EAGER) // (k * p))
    queue = (tile_count > 0).nonzero().squeeze(1)
    if queue.numel() == 0:
        return
    queue = queue[torch.sort(tile_count[queue], descending=True, stable=True).indices]
    counts = tile_count[queue].tolist()
    pair_splat = torch.cat([pair_splat, pair_splat.new_full((1,), splats.count)])  # + the padding splat
    pad_pair = pair_splat.numel() - 1
    ar = torch.arange(s, device=device, dtype=torch.float32)
    pix = torch.stack([ar.repeat(s), ar.repeat_interleave(s)])  # [2, P] (x, y), row-major
    offset = torch.arange(CHUNK_GROUP * k, device=device).reshape(CHUNK_GROUP, 1, k)
    for first in range(0, queue.numel(), n_batch):
        tiles = queue[first : first + n_batch]
        n = tiles.numel()
        if n < n_batch:  # pad the last batch with empty lists
            tiles = torch.cat([tiles, tiles.new_full((n_batch - n,), -1)])
        n_chunks = -(-counts[first] // k)
        start = torch.where(tiles >= 0, tile_start[tiles.clamp_min(0)], 0)
        end = start + torch.where(tiles >= 0, tile_count[tiles.clamp_min(0)], 0)
        origin = torch.stack([(tiles % tiles_x) * s, (tiles // tiles_x) * s], dim=-1).float()
        trans = torch.ones(n_batch, p, device=device)
        acc = torch.zeros(n_batch, 4, p, device=device)
        for c0 in range(0, n_chunks, CHUNK_GROUP):
            idx = start[:, None] + (offset[: n_chunks - c0] + c0 * k)  # [G, B, K]
            sid = pair_splat.index_select(0, torch.where(idx < end[:, None], idx, pad_pair).reshape(-1))
            rows = table.index_select(0, sid).reshape(*idx.shape, table.shape[1])  # [G, B, K, 12]
            for c in range(rows.shape[0]):
                trans, acc = runner(pix, rows[c], origin, trans, acc)
            if c0 + CHUNK_GROUP < n_chunks and bool((trans < 0).all()):
                break  # every pixel of the batch is saturated
        real = tiles[:n]
        acc_out[real] = acc[:n]
        trans_out[real] = trans[:n].abs()


# -------------------------------------------------------------------------------------- gsplat backend
_GSPLAT_PROBE: dict = {}
_GSPLAT_DEVICE = "cuda"  # where gsplat runs; tests point it at the CPU with a stand-in gsplat module


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
        dev = torch.device(_GSPLAT_DEVICE)
        gauss = {
            "means": torch.tensor([[0.0, 0.0, 2.0]], device=dev),
            "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=dev),
            "scales": torch.full((1, 3), 0.05, device=dev),
            "opacities": torch.ones(1, device=dev),
            "colors": torch.ones(1, 3, device=dev),
        }
        k = torch.tensor([[16.0, 0, 8.0], [0, 16.0, 8.0], [0, 0, 1]], device=dev)  # the splat lands on pixel (8, 8)
        _, alpha, _ = _render_frame_gsplat(gauss, torch.eye(4, device=dev), k, 16, 16, 0.01, 16)
        if dev.type == "cuda":
            torch.cuda.synchronize()  # asynchronous kernel errors surface here
        if not bool(alpha[8, 8] > 0.9):
            return False, f"the gsplat test render is wrong (alpha {float(alpha[8, 8]):.3f} at the splat, expected 0.99)"
    except Exception as err:  # noqa: BLE001 - first use compiles CUDA code, which can fail in many ways
        return False, f"the gsplat test render failed ({type(err).__name__}: {err}), e.g. its CUDA code did not compile"
    return True, "ok"


def _auto_wants_gsplat(path: CameraPath) -> bool:
    # The field can always be moved to CUDA when CUDA exists; gsplat ignores intrinsic skew.
    return gsplat_available() and not bool((path.intrinsics[:, 0, 1].abs() > 1e-6).any())


def _render_frame_gsplat(gauss: dict, w2c, k, width: int, height: int, near: float, tile_size: int):
    """One frame with ``gsplat.rasterization`` on CUDA → ``rgb [H, W, 3], alpha [H, W], depth [H, W]`` (on CUDA)."""
    import gsplat

    dev = torch.device(_GSPLAT_DEVICE)

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
