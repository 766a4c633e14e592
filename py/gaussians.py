"""Pseudo 4D Gaussian fields (GS-DiT): one Gaussian per tracked point, its mean moving over time."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .camera import CameraPath, ease, pixel_grid, unproject_pixels
from .checks import TensorData, check_finite_number, check_positive_int, check_range, check_tensor, scan
from .tracking import Tracks3D


@dataclass
class GaussianField(TensorData):
    """Gaussians whose means (and optionally colours, scales, opacities, rotations) vary per time step.

    "Pseudo": camera and object motion are not separated; the field lives in the source camera's
    frame at each time step. T = 1 is a static field (one image lifted once).

    Attributes:
        means: ``[T, N, 3]`` world-space centres, one row per time step.
        colors: ``[N, 3]`` or ``[T, N, 3]`` linear RGB in 0..1.
        opacities: ``[N]`` or ``[T, N]`` in 0..1 (per time step when it follows visibility).
        scales: ``[N, 3]`` or ``[T, N, 3]`` standard deviations (linear, > 0).
        quats: ``[N, 4]`` or ``[T, N, 4]`` rotations, (w, x, y, z), non-zero norm.
        pixels: optional ``[N, 2]`` (x, y) pixel of the reference frame each Gaussian was lifted from,
            so a MASK drawn on that frame can select Gaussians (EditGaussians).
        reference_frames: optional ``[N]`` int64, the frame whose pixel ``pixels`` names, for fields lifted
            from several reference frames (:func:`lift_video`); ``None``: one reference frame.
    """

    means: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    pixels: torch.Tensor | None = None
    reference_frames: torch.Tensor | None = None

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("GaussianField.means", self.means, ("T", "N", 3), dims=dims)
        check_tensor("GaussianField.colors", self.colors, [("N", 3), ("T", "N", 3)], dims=dims)
        check_tensor("GaussianField.opacities", self.opacities, [("N",), ("T", "N")], dims=dims)
        check_tensor("GaussianField.scales", self.scales, [("N", 3), ("T", "N", 3)], dims=dims)
        check_tensor("GaussianField.quats", self.quats, [("N", 4), ("T", "N", 4)], dims=dims)
        if self.pixels is not None:
            check_tensor("GaussianField.pixels", self.pixels, ("N", 2), dims=dims)
        if self.reference_frames is not None:
            if self.pixels is None:
                raise ValueError("GaussianField.reference_frames: needs pixels (the reference pixel of each Gaussian)")
            check_tensor("GaussianField.reference_frames", self.reference_frames, ("N",), kind="int", dims=dims)
        check_range("GaussianField.opacities", self.opacities, 0.0, 1.0)
        scan(self.scales, "positive", lambda: "GaussianField.scales: every scale must be > 0" if bool((self.scales <= 0).any()) else None)
        scan(self.quats, "nonzero_norm", lambda: "GaussianField.quats: every quaternion must have a non-zero norm" if bool((self.quats.norm(dim=-1) < 1e-8).any()) else None)

    @property
    def num_frames(self) -> int:
        return int(self.means.shape[0])

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[1])

    def spans(self) -> torch.Tensor:
        """``[N, 2]`` int64 first and last time step at which each Gaussian has opacity > 0 (−1, −1 if never).

        A Gaussian exists only there; a static opacity ``[N]`` spans every time step."""
        op = self.opacities if self.opacities.dim() == 2 else self.opacities[None].expand(self.num_frames, -1)
        alive = op > 0
        t = torch.arange(op.shape[0], device=op.device)[:, None]
        first = torch.where(alive, t, op.shape[0]).amin(0)
        last = torch.where(alive, t, -1).amax(0)
        return torch.stack([torch.where(last >= 0, first, -1), last], dim=-1)

    def at(self, t: int) -> dict[str, torch.Tensor]:
        """The field at time step ``t`` (clamped to the last one): means/colors/opacities/scales/quats without T."""
        t = min(max(int(t), 0), self.num_frames - 1)

        def pick(x: torch.Tensor, static_dim: int) -> torch.Tensor:
            return x if x.dim() == static_dim else x[t]

        return {
            "means": self.means[t],
            "colors": pick(self.colors, 2),
            "opacities": pick(self.opacities, 1),
            "scales": pick(self.scales, 2),
            "quats": pick(self.quats, 2),
        }


# ---------------------------------------------------------------------------------------- lifting
EDGE_MODES = ("keep", "fade", "drop")
COLOR_MODES = ("reference", "per_frame")
# Std of a Gaussian in source-view pixels. With the renderer's 0.3 px² low-pass a splat then covers
# about one pixel. Larger values blur and, because neighbours at equal depth are composited in sort
# order, shift the re-rendered source view by a fraction of a pixel (measured: at 0.7 the identity
# render matches the image shifted by one pixel as well as the image itself); zooming in stays
# covered because the splats grow with the magnification.
DEFAULT_KAPPA = 0.3


@dataclass(frozen=True)
class LiftOptions:
    """How pixels become Gaussians, for every ``lift_*`` function (each also takes these as keywords).

    Attributes:
        kappa: Gaussian std in source-view pixels (s = κ·stride·d/f).
        stride: keep every ``stride``-th pixel in x and y (the Gaussians grow to cover the gaps).
        edge_threshold, edge_mode: what happens at depth discontinuities, see :func:`depth_edges` and
            :data:`EDGE_MODES` (``drop``: opacity 0 above the threshold; ``fade``: linear to 0 at twice it).
    """

    kappa: float = DEFAULT_KAPPA
    stride: int = 1
    edge_threshold: float = 0.1
    edge_mode: str = "drop"

    def __post_init__(self):
        _check_lift_args(self.kappa, self.stride, self.edge_threshold, self.edge_mode)


def lift_options(options: LiftOptions | None = None, **overrides) -> LiftOptions:
    """``options`` (default :class:`LiftOptions`) with keyword overrides, e.g. ``lift_options(stride=2)``."""
    return dataclasses.replace(options or LiftOptions(), **overrides)


def lift_depth(image: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor, options: LiftOptions | None = None, **overrides) -> GaussianField:
    """One image lifted once: a static field (T = 1) with one Gaussian per pixel (per ``stride`` pixels).

    Args:
        image: ``[H, W, 3]`` colours in 0..1.
        depth: ``[H, W]`` camera z, > 0 (0 or negative = no depth: no Gaussian there).
        intrinsics: ``[3, 3]`` of the camera that saw the image; the field lives in its frame.
        options, overrides: :class:`LiftOptions` (kappa, stride, edge_threshold, edge_mode).
    """
    check_tensor("image", image, ("H", "W", 3))
    field = lift_depth_video(image[None], depth[None], intrinsics, lift_options(options, **overrides))
    return GaussianField.from_checked(field.means, field.colors[0], field.opacities[0], field.scales[0], field.quats, pixels=field.pixels)


def lift_depth_video(frames: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor, options: LiftOptions | None = None, **overrides) -> GaussianField:
    """Every frame's own depth lifted at its own time: ``means [T, N, 3]`` with N = pixels (at ``stride``).

    Gaussian n at time t is pixel n of frame t, so N is shared while the surface point it shows
    changes; this is the per-frame alternative to tracks, and what fills disocclusions.

    Args:
        frames: ``[T, H, W, 3]``; depth: ``[T, H, W]``; intrinsics: ``[3, 3]`` or ``[T, 3, 3]``.
        options, overrides: :class:`LiftOptions` (kappa, stride, edge_threshold, edge_mode).
    """
    dims: dict[str, int] = {}
    check_tensor("frames", frames, ("T", "H", "W", 3), dims=dims)
    check_tensor("depth", depth, ("T", "H", "W"), dims=dims)
    check_tensor("intrinsics", intrinsics, [(3, 3), ("T", 3, 3)], dims=dims)
    opts = lift_options(options, **overrides)
    kappa, stride, edge_threshold, edge_mode = opts.kappa, opts.stride, opts.edge_threshold, opts.edge_mode
    _check_focal(intrinsics)
    if not bool((depth > 0).any()):
        raise ValueError("depth: no pixel has a positive depth; nothing to lift")
    k = intrinsics.reshape(-1, 3, 3).to(depth.dtype)
    grid = pixel_grid(dims["H"], dims["W"], device=depth.device)[::stride, ::stride]  # [h, w, 2]
    d = depth[:, ::stride, ::stride]
    colours = frames[:, ::stride, ::stride].reshape(dims["T"], -1, 3)
    means = unproject_pixels(grid.expand(dims["T"], *grid.shape), d, k).reshape(dims["T"], -1, 3)
    weight = _edge_weight(depth, edge_threshold, edge_mode)[:, ::stride, ::stride]
    opacities = (weight * (d > 0)).reshape(dims["T"], -1)
    focal = 0.5 * (k[:, 0, 0] + k[:, 1, 1])
    scales = (kappa * stride * d.clamp_min(1e-6) / focal[:, None, None]).reshape(dims["T"], -1, 1).expand(-1, -1, 3)
    n = means.shape[1]
    return GaussianField.from_checked(
        means=means.float(),
        colors=colours.float().clamp(0, 1),
        opacities=opacities.float(),
        scales=scales.float().contiguous(),
        quats=_identity_quats(n, depth.device),
        pixels=grid.reshape(-1, 2),
    )


def lift_tracks(tracks: Tracks3D, frames: torch.Tensor, options: LiftOptions | None = None, *, color_mode: str = "reference", **overrides) -> GaussianField:
    """The pseudo 4D Gaussian field of GS-DiT: one Gaussian per reference pixel following its 3D track.

    Mean at time t = the tracked point X_t = d_t·K⁻¹[u_t, v_t, 1] in camera t's frame ("pseudo":
    camera and object motion are not separated), colour from the reference frame (``per_frame``:
    sampled bilinearly at the track in frame t while visible, the nearest visible frame's colour
    while hidden), isotropic scale κ·d_t/f, opacity = visibility (times the edge weight of the
    reference depth), identity rotation.

    Args:
        tracks: dense tracks of the reference frame; frames: ``[T, H, W, 3]`` of the same video.
        options, overrides: :class:`LiftOptions` (kappa, stride, edge_threshold, edge_mode).
    """
    dims: dict[str, int] = {"T": tracks.num_frames, "H": tracks.height, "W": tracks.width}
    check_tensor("frames", frames, ("T", "H", "W", 3), dims=dims)
    opts = lift_options(options, **overrides)
    kappa, stride, edge_threshold, edge_mode = opts.kappa, opts.stride, opts.edge_threshold, opts.edge_mode
    _check_focal(tracks.intrinsics)
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode: expected one of {COLOR_MODES}, got {color_mode!r}")
    selected = torch.zeros(tracks.height, tracks.width, dtype=torch.bool, device=tracks.uv.device)
    selected[::stride, ::stride] = True
    edges = _edge_weight(tracks.depth[tracks.ref_frame : tracks.ref_frame + 1], edge_threshold, edge_mode)[0]
    part = _lift_track_pixels(tracks, frames, selected, kappa * stride, color_mode, edges)
    return GaussianField.from_checked(
        means=part["means"],
        colors=part["colors"],
        opacities=part["opacities"],
        scales=part["scales"].expand(-1, -1, 3).contiguous(),
        quats=_identity_quats(part["means"].shape[1], part["means"].device),
        pixels=part["pixels"],
        reference_frames=torch.full((part["means"].shape[1],), tracks.ref_frame, dtype=torch.long, device=part["means"].device),
    )


def _lift_track_pixels(
    tracks: Tracks3D, frames: torch.Tensor, selected: torch.Tensor, kappa_px: float, color_mode: str, edges: torch.Tensor, regularize=None, max_stretch: float = 1.0
) -> dict[str, torch.Tensor]:
    """The Gaussians of the reference pixels ``selected [H, W]`` (bool) of ``tracks``, in row-major order.

    ``edges`` is the edge weight (:func:`_edge_weight`) of the reference frame ``[H, W]``, or of every
    frame ``[T, H, W]``, then read where the track is in that frame.

    Returns means ``[T, n, 3]``, colors ``[n, 3]`` or ``[T, n, 3]``, opacities ``[T, n]`` (visibility ×
    edge weight), scales ``[T, n, 1]`` (κ_px·d/f), pixels ``[n, 2]``, visibility ``[T, n]`` bool and the
    edge weight ``[n]`` or ``[T, n]``.
    ``regularize(xyz [T, n, 3], visibility [T, n], ref_frame) -> xyz`` moves the points before lifting.
    ``max_stretch`` > 1 grows each Gaussian with the local stretch of its track's neighbourhood
    (:func:`track_stretch`, clamped to [1, max_stretch]), so a surface the camera comes closer to or
    that turns towards it stays closed instead of opening gaps between its splats.
    """
    t_count, r = tracks.num_frames, tracks.ref_frame
    uv, depth = tracks.uv[:, selected], tracks.depth[:, selected]  # [T, n, 2], [T, n]
    vis = tracks.visible()[:, selected]
    k = tracks.intrinsics.reshape(-1, 3, 3).to(depth.dtype)
    means = unproject_pixels(uv, depth, k)
    if regularize is not None:
        from .points import project_points

        means = regularize(means, vis, r)
        uv, depth = project_points(means, tracks.intrinsics)
    if edges.dim() == 2:
        weight = edges[selected]
    else:
        x = uv[..., 0].round().long().clamp(0, tracks.width - 1)
        y = uv[..., 1].round().long().clamp(0, tracks.height - 1)
        weight = edges.flatten(1).gather(1, y * tracks.width + x)
    opacities = vis.to(depth.dtype) * weight * (depth > 0)
    focal = 0.5 * (k[:, 0, 0] + k[:, 1, 1])
    scales = (kappa_px * depth.clamp_min(1e-6) / focal[:, None]).unsqueeze(-1)
    if max_stretch > 1:
        scales = scales * track_stretch(tracks.uv, selected).clamp(1.0, max_stretch).unsqueeze(-1)
    reference = frames[r][selected]
    if color_mode == "reference":
        colors = reference
    else:
        colors = _hold_visible(sample_frames(frames, uv[:, None])[:, 0], vis)
    return {
        "means": means.float(),
        "colors": colors.float().clamp(0, 1),
        "opacities": opacities.float(),
        "scales": scales.float(),
        "pixels": tracks.uv[r][selected].float(),
        "visibility": vis,
        "weight": weight.float(),
    }


def track_stretch(uv: torch.Tensor, selected: torch.Tensor | None = None) -> torch.Tensor:
    """Local areal stretch ``[T, n]`` of dense tracks ``uv [T, H, W, 2]`` at the pixels ``selected [H, W]``
    (default: all, in row-major order): sqrt|det ∂uv_t/∂(x, y)|, the side length in frame t of one
    reference pixel. Each derivative is the smaller of the forward and backward difference, so a
    pixel beside a depth or motion edge reads its own surface.
    """
    t_count, height, width = uv.shape[:3]
    if selected is None:
        selected = torch.ones(height, width, dtype=torch.bool, device=uv.device)
    y, x = selected.nonzero(as_tuple=True)
    flat = uv.reshape(t_count, height * width, 2)

    def at(yy, xx):  # [T, n, 2]
        return flat[:, yy * width + xx]

    centre = at(y, x)

    def derivative(fwd: torch.Tensor, bwd: torch.Tensor) -> torch.Tensor:
        return torch.where((fwd.square().sum(-1) <= bwd.square().sum(-1))[..., None], fwd, bwd)

    # At the image border the missing side repeats the other one.
    right, left = at(y, (x + 1).clamp(max=width - 1)) - centre, centre - at(y, (x - 1).clamp(min=0))
    down, up = at((y + 1).clamp(max=height - 1), x) - centre, centre - at((y - 1).clamp(min=0), x)
    right = torch.where((x == width - 1)[:, None], left, right)
    left = torch.where((x == 0)[:, None], right, left)
    down = torch.where((y == height - 1)[:, None], up, down)
    up = torch.where((y == 0)[:, None], down, up)
    ex, ey = derivative(right, left), derivative(down, up)
    return (ex[..., 0] * ey[..., 1] - ex[..., 1] * ey[..., 0]).abs().sqrt()


def _hold_visible(values: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """``values [T, n, C]`` with each hidden entry replaced by the last visible one before it (before
    the first visible one: that one), in place. Columns never visible keep their values."""
    count = values.shape[0]
    for t in range(1, count):
        values[t] = torch.where(visible[t, :, None], values[t], values[t - 1])
    first = torch.where(visible, torch.arange(count, device=visible.device)[:, None], count).amin(0)
    for t in range(count - 2, -1, -1):
        values[t] = torch.where((t < first)[:, None] & (first < count)[:, None], values[t + 1], values[t])
    return values


# ---------------------------------------------------------------------------------------- multi-reference lifting
# A source-view pixel is covered when the field's accumulated opacity there reaches this: RenderGaussians'
# default hole threshold, so "covered" while lifting means "not a hole" in the render.
COVER_ALPHA = 0.5
# A new reference's track is needed where the field's opacity is below this: not only holes but
# the half-covered pixels between splats too, which a render composites with the black background.
NEED_ALPHA = 0.9
DEFAULT_MIN_COVERAGE = 0.998
DEFAULT_FADE_FRAMES = 2
DEFAULT_MAX_STRETCH = 2.0
GAUSSIAN_BUDGET = 3  # default cap on the field's size, in reference frames' worth of Gaussians (3 H W)


def lift_video(
    frames: torch.Tensor,
    depth,
    intrinsics: torch.Tensor,
    *,
    method: str = "flow_chain",
    max_references: int | None = None,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    reference_every: int = 0,
    first_reference: int = 0,
    tracks: Tracks3D | None = None,
    max_gaussians: int | None = None,
    kappa: float = DEFAULT_KAPPA,
    stride: int = 1,
    color_mode: str = "per_frame",
    edge_threshold: float = 0.1,
    edge_mode: str = "drop",
    fade_frames: int = DEFAULT_FADE_FRAMES,
    max_stretch: float = DEFAULT_MAX_STRETCH,
    near: float = 1.0,
    far: float = 10.0,
    regularize=None,
    track_options: dict | None = None,
    tracker=None,
    progress=None,
    info: dict | None = None,
) -> GaussianField:
    """A pseudo 4D Gaussian field that reproduces the whole video: Gaussians tracked from several reference frames.

    GS-DiT lifts the dense 3D tracks of one reference frame (:func:`lift_tracks`), so whatever that
    frame does not show — surfaces entering the view, the far side of a turning object, background an
    object uncovers, surface whose track the tracker lost — has no Gaussian. Here reference frames are
    added greedily where the field stops covering the video *(ours; the paper uses one reference)*:

    1. The first reference (``first_reference``, or the given ``tracks``) is tracked densely through the
       whole video (``method``, forwards and backwards in time, :func:`~vid4d.py.tracking.track_dense`)
       and all its pixels are lifted.
    2. The field is splatted into the source view of every frame (its exact accumulated opacity there,
       :func:`source_transmittance`; no rasterisation). The frame with the most uncovered pixels
       (opacity < 0.5) that can hold a Gaussian (valid depth, not dropped as a depth edge) becomes the
       next reference — or first any frame farther than ``reference_every`` from every reference.
    3. That frame is tracked densely, but a pixel of it becomes a Gaussian only if its track lands on a
       pixel the field covers to less than :data:`NEED_ALPHA` in some frame where it is visible, and it
       exists only from the first to the last such frame: nothing is doubled where the field already
       covers the surface, while a track lost by the previous references is taken over.
    4. Repeat until every frame is covered to ``min_coverage`` (of the pixels that can hold a
       Gaussian), or ``max_references`` / ``max_gaussians`` is reached, or every frame is a reference.

    Inside its time span (:meth:`GaussianField.spans`) a Gaussian's opacity is its track's visibility ×
    the edge weight of the depth where it is in that frame (a background point beside an object in the
    reference frame comes back once the object has moved on); beyond a span end where its track is
    still visible and the field covers it anyway, it fades in/out linearly over ``fade_frames`` frames:
    a cross-fade with the Gaussians it takes over from, so nothing pops in a new view. Where a track
    ends by occlusion or leaving the frame it is cut (fading there would show it through the occluder).
    Each Gaussian's std is κ·d/f, grown by its neighbourhood's stretch up to ``max_stretch`` (see
    :func:`track_stretch`), colour per frame (``color_mode``).

    Args:
        frames: ``[T, H, W, 3]`` in 0..1, T ≥ 2.
        depth: :class:`~vid4d.py.depth.DepthVideo` (affine depth / disparity is placed between ``near``
            and ``far`` by :meth:`~vid4d.py.depth.DepthVideo.as_depth`) or ``[T, H, W]`` camera z (≤ 0 = unknown).
        intrinsics: ``[3, 3]`` of the source camera; the field is in its frame at each time step (render
            it with ``CameraPath.static(intrinsics, T, W, H)`` to get the video back).
        method: the tracker, ``"flow_chain"`` (no weights) or ``"dot_raft"`` (pass its ``refiner`` in
            ``track_options``); see :func:`~vid4d.py.tracking.track_dense`.
        max_references: at most this many reference frames (``None``: up to T, bounded by the budget).
            ``1`` lifts one reference frame (as GS-DiT; :func:`lift_tracks` is the paper's exact setup).
        min_coverage: stop once every frame's source view is covered to this fraction (counting only
            pixels that can hold a Gaussian).
        reference_every: also add a reference wherever a frame is farther than this from every reference (0 = off).
        first_reference: the first reference frame (ignored when ``tracks`` is given: its ``ref_frame`` is).
        tracks: optional dense tracks of the first reference (e.g. from DenseTrack3D and PointRegularizer),
            used as given instead of tracking that frame here.
        max_gaussians: cap on the field's size (default 3·H·W / stride²); a reference that would pass it is not added.
        kappa, stride, edge_threshold, edge_mode: as :func:`lift_tracks` (stride on every reference's pixel grid).
        color_mode: ``"per_frame"`` (default: colour sampled at the track in each frame, so lighting and
            turning surfaces stay right) or ``"reference"`` (each Gaussian keeps its reference pixel's colour).
        fade_frames: frames of cross-fade before and after a Gaussian's span (0 = cut).
        max_stretch: largest growth of a Gaussian with its track's local stretch (1 = κ·d/f as GS-DiT).
        near, far: where an affine depth / disparity video is placed (see ``depth``).
        regularize: optional ``regularize(xyz [T, n, 3], visibility [T, n], ref_frame) -> xyz``, applied to
            each reference's new points as they are lifted (e.g.
            :class:`~vid4d.py.points.PointRegularization`): per reference, since the rigidity neighbourhoods
            are found in the reference frame and the union has no frame where all its points are seen.
            Not applied to the given ``tracks``, which are used as they are.
        track_options: further keyword arguments of ``track_dense`` (``preset``, ``reanchor_every``,
            ``depth_smoothing``, ``refiner``).
        tracker: optional ``tracker(ref_frame) -> Tracks3D`` replacing ``track_dense`` (another tracker, or
            ground truth in tests); ``method`` and ``track_options`` are then unused.
        progress: ``progress(done, total)`` after every tracked frame (total grows as references are
            added); it may raise to cancel.
        info: optional dict, filled with ``references`` (frames, in the order added), ``reasons`` (why each
            was added), ``added`` (Gaussians per reference), ``coverage`` (``[T]`` estimated source-view
            coverage of the final field), ``coverage_single`` (of the first reference alone), ``stopped``
            (why no further reference was added), ``seconds_tracking``, ``seconds_total``, ``bytes``.

    Returns:
        :class:`GaussianField` with ``means [T, N, 3]``, ``opacities [T, N]``, colours ``[T, N, 3]``
        (``per_frame``) or ``[N, 3]``, ``pixels [N, 2]`` and ``reference_frames [N]`` (the frame whose
        pixel each Gaussian was lifted from). Memory: the field plus one reference's dense tracks.
    """
    import time

    from .depth import DepthVideo
    from .tracking import track_dense

    start = time.perf_counter()
    dims: dict[str, int] = {}
    check_tensor("frames", frames, ("T", "H", "W", 3), dims=dims)
    t_count, height, width = dims["T"], dims["H"], dims["W"]
    if t_count < 2:
        raise ValueError("lift_video: expected a video of at least 2 frames; lift one image with lift_depth")
    if isinstance(depth, DepthVideo):
        depth = depth.as_depth(near, far)
    elif isinstance(depth, torch.Tensor):
        depth = DepthVideo(check_tensor("depth", depth, ("T", "H", "W"), dims=dims).clamp_min(0), kind="metric")
    else:
        raise ValueError(f"depth: expected a DepthVideo or a [T, H, W] tensor, got {type(depth).__name__}")
    check_tensor("depth", depth.depth, ("T", "H", "W"), dims=dims)
    k = check_tensor("intrinsics", intrinsics, (3, 3)).float()
    _check_lift_args(kappa, stride, edge_threshold, edge_mode)
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode: expected one of {COLOR_MODES}, got {color_mode!r}")
    min_coverage = check_finite_number("min_coverage", min_coverage, low=0.0, high=1.0)
    reference_every = check_positive_int("reference_every", reference_every, minimum=0)
    fade_frames = check_positive_int("fade_frames", fade_frames, minimum=0, maximum=1000)
    max_stretch = check_finite_number("max_stretch", max_stretch, low=1.0, high=16.0)
    max_references = t_count if max_references is None else check_positive_int("max_references", max_references, maximum=100_000)
    grid_pixels = len(range(0, height, stride)) * len(range(0, width, stride))
    budget = GAUSSIAN_BUDGET * grid_pixels if max_gaussians is None else check_positive_int("max_gaussians", max_gaussians)
    if tracks is not None:
        if (tracks.num_frames, tracks.height, tracks.width) != (t_count, height, width):
            raise ValueError(f"tracks cover {tracks.num_frames} frames of {tracks.width}x{tracks.height} but the video has {t_count} frames of {width}x{height}")
        first_reference = tracks.ref_frame
    elif isinstance(first_reference, bool) or not isinstance(first_reference, int) or not 0 <= first_reference < t_count:
        raise ValueError(f"first_reference: expected a frame in [0, {t_count}), got {first_reference!r}")
    options = dict(track_options or {})

    # The tracker works on the CPU (OpenCV flow), so the lifting does too; the field comes back there.
    device = torch.device("cpu")
    frames = frames.detach().to(device)
    z = depth.depth.to(device)
    usable = z > 0 if depth.valid is None else (z > 0) & depth.valid.to(device)
    on_grid = torch.zeros(height, width, dtype=torch.bool, device=device)
    on_grid[::stride, ::stride] = True
    # Pixels that can hold a Gaussian: lifting them adds one; the rest (no depth, far side of a depth
    # edge) stay empty whatever is added, so they never call for a reference.
    edges = _edge_weight(z, edge_threshold, edge_mode)
    addable = usable & on_grid & (edges > 0)
    transmittance = torch.ones(t_count, height, width, device=device)
    parts: list[dict[str, torch.Tensor]] = []
    references: list[int] = []
    reasons: list[str] = []
    tracked_seconds = 0.0
    done_frames = 0
    coverage_single = None
    stopped = "every frame covered"
    reference, reason = first_reference, "first reference"
    used = torch.zeros(t_count, dtype=torch.bool)
    total = 0
    while True:
        used[reference] = True
        tick = time.perf_counter()
        if parts or tracks is None:
            base = done_frames

            def report(done, base=base):
                if progress is not None:
                    progress(base + done, base + t_count)

            if tracker is None:
                ref_tracks = track_dense(frames, depth, reference, method, intrinsics=k, progress=report, **options)
            else:
                ref_tracks = tracker(reference)
                if not isinstance(ref_tracks, Tracks3D) or (ref_tracks.num_frames, ref_tracks.height, ref_tracks.width, ref_tracks.ref_frame) != (t_count, height, width, reference):
                    raise ValueError(f"tracker: expected Tracks3D of frame {reference} over {t_count} frames of {width}x{height}, got {ref_tracks!r:.120}")
                report(t_count)
            done_frames += t_count
        else:
            ref_tracks = tracks
        tracked_seconds += time.perf_counter() - tick
        holes = (transmittance > 1 - NEED_ALPHA) & addable if parts else None
        needed = _needed(ref_tracks, holes, on_grid & addable[reference] if parts else on_grid)  # [T, H, W]
        selected = needed.any(0)
        count = int(selected.sum())
        if parts and total + count > budget:
            stopped = f"the next reference (frame {reference}, {count} Gaussians) would pass the budget of {budget} Gaussians"
            break
        if count:
            part = _lift_track_pixels(ref_tracks, frames, selected, kappa * stride, color_mode, edges.to(ref_tracks.uv.device), regularize if (parts or tracks is None) else None, max_stretch)
            # The Gaussian exists from the first to the last frame it fills a hole in (for the first
            # reference: where its track is visible), fading in and out over fade_frames beyond, where
            # its track is still visible and the field already covers it: a cross-fade, never a pop.
            part["opacities"] = part["opacities"] * _span_fade(needed[:, selected].to(part["opacities"].device), fade_frames)
            del part["visibility"], part["weight"]
            part["reference_frames"] = torch.full((count,), reference, dtype=torch.long, device=device)
            # The source view of frame t sees each Gaussian at its tracked pixel: project the means back.
            uv = _project_source(part["means"], k.to(part["means"].device))
            var = _screen_var(part["means"], part["scales"], k.to(part["means"].device))
            for t in range(t_count):
                transmittance[t] *= source_transmittance(uv[t], part["opacities"][t], var[t], height, width).to(device)
            del uv, var
            parts.append(part)
            total += count
            references.append(reference)
            reasons.append(reason)
        del ref_tracks, needed, selected
        uncovered = ((transmittance > 1 - COVER_ALPHA) & addable).flatten(1).sum(1).float() / (height * width)
        if coverage_single is None:
            coverage_single = (transmittance <= 1 - COVER_ALPHA).flatten(1).float().mean(1)
        if len(references) >= max_references:
            stopped = f"max_references = {max_references} reached"
            break
        candidates = ~used
        if not bool(candidates.any()):
            stopped = "every frame is a reference"
            break
        gap = (torch.arange(t_count)[:, None] - torch.tensor(references)[None]).abs().amin(1)
        if reference_every and bool((candidates & (gap > reference_every)).any()):
            reference = int(torch.where(candidates & (gap > reference_every), gap, -1).argmax())
            reason = f"frame {reference} is {int(gap[reference])} frames from the nearest reference (reference_every = {reference_every})"
            continue
        score = torch.where(candidates, uncovered.cpu(), -1.0)
        reference = int(score.argmax())
        if float(score[reference]) <= 1 - min_coverage:
            stopped = f"every frame covered to {100 * min_coverage:.1f}% (of the pixels that can hold a Gaussian)"
            break
        reason = f"{100 * float(score[reference]):.2f}% of its pixels uncovered"

    added = [int(p["means"].shape[1]) for p in parts]
    field = _join_parts(parts, t_count, color_mode)
    if info is not None:
        info.update(
            references=references,
            reasons=reasons,
            added=added,
            coverage=(transmittance <= 1 - COVER_ALPHA).flatten(1).float().mean(1).cpu(),
            coverage_single=coverage_single.cpu(),
            stopped=stopped,
            seconds_tracking=tracked_seconds,
            seconds_total=time.perf_counter() - start,
            bytes=sum(x.untyped_storage().nbytes() for x in (field.means, field.colors, field.opacities, field.scales, field.quats, field.pixels, field.reference_frames)),
        )
    return field


def _project_source(means: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Pixels ``[..., 2]`` of camera-frame points ``[..., 3]`` in the source view ``k [3, 3]``."""
    zc = means[..., 2].clamp_min(1e-9)
    x, y = means[..., 0] / zc, means[..., 1] / zc
    return torch.stack([k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2]], dim=-1)


def source_transmittance(uv: torch.Tensor, opacity: torch.Tensor, sigma2, height: int, width: int, chunk: int = 1 << 20) -> torch.Tensor:
    """``[..., H, W]`` transmittance Π(1 − α_i) of isotropic splats at pixels ``uv [..., n, 2]`` with ``opacity [..., n]``.

    α_i(p) = min(0.99, o_i·exp(−|p − uv_i|² / (2 σ_i²))) with σ_i² = ``sigma2`` (a number or ``[..., n]``, px²)
    + the renderer's 0.3 px² low-pass, skipped below 1/255, as the rasteriser blends (:mod:`vid4d.py.render`):
    this is its accumulated opacity 1 − T for the source view, where a Gaussian of scale κ·d/f projects to a
    splat of std κ px (the perspective stretch off the optical axis, at most a third at 60° field of view, is
    left out, so coverage is if anything underestimated). Order-independent, so fields can be added one by
    one. Leading dimensions (e.g. frames) are separate images, done about ``chunk`` splats at a time.
    """
    lead = uv.shape[:-2]
    n = uv.shape[-2]
    uv = uv.reshape(-1, n, 2)
    count = uv.shape[0]
    opacity = opacity.reshape(count, n)
    var = (torch.as_tensor(sigma2, dtype=torch.float32, device=uv.device).expand(*lead, n).reshape(count, n) + 0.3).contiguous()
    out = torch.empty(count, height, width, device=uv.device)
    step = max(1, chunk // max(n, 1))
    for b0 in range(0, count, step):
        out[b0 : b0 + step] = _transmittance_batch(uv[b0 : b0 + step], opacity[b0 : b0 + step], var[b0 : b0 + step], height, width)
    return out.reshape(*lead, height, width)


def _transmittance_batch(uv: torch.Tensor, opacity: torch.Tensor, var: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """:func:`source_transmittance` of ``B`` images at once: ``uv [B, n, 2]``, ``opacity``, ``var [B, n]`` → ``[B, H, W]``."""
    count, n = opacity.shape
    # Pixel offsets k from the nearest pixel that can reach α ≥ 1/255: |k| − 0.5 ≤ sqrt(2 σ² ln(0.99·255)).
    radius = (torch.sqrt(2 * var * math.log(0.99 * 255)) + 0.5).floor().reshape(-1)
    base = uv.round().reshape(-1, 2)
    uv, opacity, var = uv.reshape(-1, 2), opacity.reshape(-1), var.reshape(-1)
    reach = int(radius.max()) if radius.numel() else 0
    keep = (opacity >= 1.0 / 255) & (base[:, 0] >= -reach) & (base[:, 0] < width + reach) & (base[:, 1] >= -reach) & (base[:, 1] < height + reach)
    # A margin round each image takes the overhang of splats up to `reach` outside it, so no offset needs a bounds test.
    m = 2 * reach
    pw, ph = width + 2 * m, height + 2 * m
    image = torch.arange(count, device=uv.device).repeat_interleave(n) * (ph * pw)
    log_t = torch.zeros(count * ph * pw, dtype=torch.float32, device=uv.device)
    for r in radius[keep].unique().tolist():  # splats grouped by reach: most need only the inner offsets
        group = (keep & (radius == r)).nonzero().squeeze(1)
        pick = lambda x: x.index_select(0, group)  # noqa: E731
        _splat_log_transmittance(log_t, pick(uv), pick(base), pick(opacity), pick(var), int(r), pw, m, pick(image))
    return log_t.reshape(count, ph, pw)[:, m : m + height, m : m + width].exp()


def _splat_log_transmittance(log_t, uv, base, opacity, var, radius: int, pw: int, margin: int, image) -> None:
    """Add Σ ln(1 − α) of the splats (all reaching ``radius`` pixels) to the padded images ``log_t``
    (each splat's image starts at flat index ``image``)."""
    offsets = range(-radius, radius + 1)
    # Separable: exp(-|d|²/2v) = exp(-dx²/2v)·exp(-dy²/2v), 2(2r+1) exponentials instead of (2r+1)².
    fx, fy = uv[:, 0] - base[:, 0], uv[:, 1] - base[:, 1]
    gx = [torch.exp(-0.5 * (d - fx).square() / var) for d in offsets]
    gy = [opacity * torch.exp(-0.5 * (d - fy).square() / var) for d in offsets]
    origin = ((base[:, 1] + margin) * pw + base[:, 0] + margin).long() + image
    for dy, wy in zip(offsets, gy):
        for dx, wx in zip(offsets, gx):
            alpha = (wy * wx).clamp_(max=0.99)
            term = torch.log1p(-alpha).masked_fill_(alpha < 1.0 / 255, 0.0)
            log_t.index_add_(0, origin + (dy * pw + dx), term)


def source_coverage(field: GaussianField, intrinsics: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[T]`` fraction of each frame's source view (``intrinsics [3, 3]``, identity pose) where the
    field's accumulated opacity reaches :data:`COVER_ALPHA`, from the splats alone (no rasterisation)."""
    k = intrinsics.reshape(3, 3).float().to(field.means.device)
    out = []
    for t in range(field.num_frames):
        g = field.at(t)
        trans = source_transmittance(_project_source(g["means"], k), g["opacities"], _screen_var(g["means"], g["scales"], k), height, width)
        out.append(float((trans <= 1 - COVER_ALPHA).float().mean()))
    return torch.tensor(out)


def _needed(tracks: Tracks3D, holes: torch.Tensor | None, candidates: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """``[T, H, W]`` bool: reference pixel p (of ``candidates [H, W]``) is needed at frame t when its
    track is visible there and lands on a hole of the field so far (``holes [T, H, W]``; ``None``: an
    empty field, so wherever the track is visible)."""
    vis = tracks.visible() & candidates
    if holes is None:
        return vis
    height, width = tracks.height, tracks.width
    for t0 in range(0, tracks.num_frames, chunk):  # chunks of frames bound the index temporaries
        uv = tracks.uv[t0 : t0 + chunk].round()
        x, y = uv[..., 0], uv[..., 1]
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        index = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).long().flatten(1)
        hit = holes[t0 : t0 + chunk].flatten(1).to(index.device).gather(1, index).reshape(inside.shape)
        vis[t0 : t0 + chunk] &= inside & hit
    return vis


def _screen_var(means: torch.Tensor, scales: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``[...]`` variance in source-view px² of isotropic Gaussians (``means [..., 3]``, ``scales [..., ≥1]``)."""
    focal = 0.5 * (k[0, 0] + k[1, 1])
    return (scales[..., 0] * focal / means[..., 2].clamp_min(1e-9)).square()


def _span_fade(alive: torch.Tensor, fade: int) -> torch.Tensor:
    """Opacity factor ``[T, n]`` for Gaussians that must exist at ``alive [T, n]``: 1 from each one's
    first to its last such frame (its time span), falling linearly to 0 over ``fade`` frames beyond."""
    count = alive.shape[0]
    t = torch.arange(count, device=alive.device)[:, None]
    first = torch.where(alive, t, count).amin(0)
    last = torch.where(alive, t, -1).amax(0)
    outside = torch.maximum(first - t, t - last).clamp_min(0).float()
    return (1 - outside / (fade + 1)).clamp_min(0)


def _join_parts(parts: list[dict[str, torch.Tensor]], t_count: int, color_mode: str) -> GaussianField:
    """One field from the references' parts (in order), concatenating one attribute at a time."""

    def cat(key: str, dim: int) -> torch.Tensor:
        out = torch.cat([p[key] for p in parts], dim=dim)
        for p in parts:
            del p[key]
        return out

    means = cat("means", 1)
    scales = cat("scales", 1).expand(-1, -1, 3)  # isotropic: one value per Gaussian and frame, shown as 3
    return GaussianField.from_checked(
        means=means,
        colors=cat("colors", 1 if color_mode == "per_frame" else 0),
        opacities=cat("opacities", 1),
        scales=scales,
        quats=_identity_quats(means.shape[1], means.device),
        pixels=cat("pixels", 0),
        reference_frames=cat("reference_frames", 0),
    )


def sample_frames(frames: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear colours ``[T, h, w, 3]`` of ``frames [T, H, W, 3]`` at pixels ``uv [T, h, w, 2]`` (border clamped)."""
    _, height, width, _ = frames.shape
    x = uv[..., 0] / max(width - 1, 1) * 2 - 1
    y = uv[..., 1] / max(height - 1, 1) * 2 - 1
    grid = torch.stack([x, y], dim=-1).to(frames.dtype)
    out = torch.nn.functional.grid_sample(frames.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.permute(0, 2, 3, 1)


def depth_edges(depth: torch.Tensor) -> torch.Tensor:
    """Relative depth jump to the nearest closer 4-neighbour: ``[T, H, W]`` → ``[T, H, W]``.

    e(p) = max over neighbours q with d_q < d_p of (d_p − d_q)/d_q. Only the *far* side of a
    discontinuity scores: "flying pixels" between foreground and background (the rubber sheets of
    estimated depth) and the background ring hugging an object, never the object's own boundary.
    """
    padded = torch.nn.functional.pad(depth[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    h, w = depth.shape[-2:]
    score = torch.zeros_like(depth)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        nb = padded[:, dy : dy + h, dx : dx + w]
        closer = (nb < depth) & (nb > 0)
        score = torch.maximum(score, torch.where(closer, (depth - nb) / nb.clamp_min(1e-6), torch.zeros_like(depth)))
    return score


def _edge_weight(depth: torch.Tensor, threshold: float, mode: str) -> torch.Tensor:
    """Opacity multiplier ``[T, H, W]``: 1 away from edges; ``drop``: 0 above the threshold;
    ``fade``: linear from 1 at the threshold to 0 at twice the threshold."""
    if mode == "keep":
        return torch.ones_like(depth)
    score = depth_edges(depth)
    if mode == "drop":
        return (score <= threshold).to(depth.dtype)
    return (2.0 - score / threshold).clamp(0, 1)


def _check_lift_args(kappa, stride, edge_threshold, edge_mode) -> None:
    check_finite_number("kappa", kappa, low=1e-3, high=100.0)
    check_positive_int("stride", stride, maximum=64)
    check_finite_number("edge_threshold", edge_threshold, low=1e-4, high=1e6)
    if edge_mode not in EDGE_MODES:
        raise ValueError(f"edge_mode: expected one of {EDGE_MODES}, got {edge_mode!r}")


def _check_focal(intrinsics: torch.Tensor) -> None:
    # The field is built unchecked from these (GaussianField.from_checked): a zero focal would give inf scales.
    k = intrinsics.reshape(-1, 3, 3)
    if not bool(((k[:, 0, 0] > 0) & (k[:, 1, 1] > 0)).all()):
        raise ValueError("intrinsics: the focal lengths (fx, fy) must be > 0")


def _identity_quats(n: int, device) -> torch.Tensor:
    q = torch.zeros(n, 4, device=device)
    q[:, 0] = 1
    return q


# ---------------------------------------------------------------------------------------- 4D editing
def select_by_mask(field: GaussianField, mask: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """``[N]`` bool: Gaussians whose reference pixel lies where ``mask`` > threshold.

    ``mask``: ``[H, W]`` drawn on the reference frame, or ``[T, H, W]``, one per frame (e.g. a
    segmentation video): each Gaussian is then tested in the frame it was lifted from
    (``field.reference_frames``), which a field lifted from several reference frames needs.
    """
    if field.pixels is None:
        raise ValueError("this Gaussian field does not know its source pixels (it was not lifted from an image/tracks); select with a 3D box instead")
    check_tensor("mask", mask, [("H", "W"), (None, "H", "W")])
    h, w = mask.shape[-2:]
    xy = field.pixels.round().long()
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    if not bool(inside.all()):
        raise ValueError(f"mask: {w}x{h} does not cover the field's source pixels (up to {int(xy[:, 0].max()) + 1}x{int(xy[:, 1].max()) + 1}); draw the mask on the reference frame")
    mask = mask.to(field.pixels.device)
    refs = field.reference_frames
    if refs is None or (mask.dim() == 2 and bool((refs == refs[0]).all())):
        return (mask if mask.dim() == 2 else mask[0])[xy[:, 1], xy[:, 0]] > threshold
    if mask.dim() == 2 or mask.shape[0] == 1:
        frames = sorted(set(refs.unique().tolist()))
        raise ValueError(
            f"this field was lifted from {len(frames)} reference frames ({frames[:8]}{'...' if len(frames) > 8 else ''}): "
            "give one mask per frame (e.g. a segmentation video) so the Gaussians of every reference can be selected"
        )
    if int(refs.max()) >= mask.shape[0]:
        raise ValueError(f"mask: {mask.shape[0]} frames, but the field has Gaussians lifted from frame {int(refs.max())}")
    return mask[refs.to(mask.device), xy[:, 1], xy[:, 0]] > threshold


def select_by_box(field: GaussianField, low, high, frame: int = 0) -> torch.Tensor:
    """``[N]`` bool: Gaussians whose mean at ``frame`` lies in the axis-aligned box [low, high] (3 numbers each)."""
    lo = torch.as_tensor(low, dtype=field.means.dtype, device=field.means.device).reshape(3)
    hi = torch.as_tensor(high, dtype=field.means.dtype, device=field.means.device).reshape(3)
    if not bool((lo < hi).all()):
        raise ValueError(f"box: every low corner value must be below the high one, got low={lo.tolist()} high={hi.tolist()}")
    m = field.means[min(max(int(frame), 0), field.num_frames - 1)]
    return ((m >= lo) & (m <= hi)).all(dim=-1)


def edit_gaussians(
    field: GaussianField,
    selection: torch.Tensor,
    *,
    num_frames: int | None = None,
    axis=(0.0, -1.0, 0.0),
    angle: float = 0.0,
    pivot=None,
    translate=(0.0, 0.0, 0.0),
    scale: float = 1.0,
    easing: str = "linear",
    freeze_frame: int | None = None,
    speed: float = 1.0,
) -> GaussianField:
    """Edit the selected Gaussians over time (the paper's 4D object editing); the rest stay untouched.

    Order: first *time* — ``freeze_frame`` holds the selection as it is at that frame, ``speed``
    retimes it (source time = t·speed, linear between frames, held at the ends) — then *space*: a
    rigid transform schedule with progress p = ease(t/(T−1)): rotation by ``angle``·p degrees about
    ``axis`` (camera coordinates; default (0, −1, 0) = vertical, positive turns right-handed about it)
    through ``pivot`` (a 3D point; ``None`` = the selection's centroid at each frame, so the pivot
    follows a moving object), uniform scale 1 + (scale − 1)·p about the pivot, then translation
    ``translate``·p. Rotations also turn the Gaussians' quaternions; scaling scales their sizes.

    Args:
        field: the Gaussian field; a static one (T = 1) is first repeated to ``num_frames``.
        selection: ``[N]`` bool (see :func:`select_by_mask`, :func:`select_by_box`).
    """
    check_tensor("selection", selection, (field.num_gaussians,), kind="bool")
    if not bool(selection.any()):
        raise ValueError("selection is empty: the mask/box selects no Gaussian")
    check_finite_number("angle", angle)
    check_finite_number("scale", scale, low=1e-3, high=1e3)
    for name, vector in (("axis", axis), ("translate", translate), ("pivot", pivot)):
        if vector is not None:
            check_tensor(name, torch.as_tensor(vector, dtype=torch.float64).reshape(-1), (3,))
    check_finite_number("speed", speed, low=0.0, high=100.0)
    t_count = field.num_frames
    if t_count == 1 and num_frames is not None:
        t_count = check_positive_int("num_frames", num_frames, maximum=10000)
    full = _time_varying(field, t_count)
    sel = selection.to(full.means.device)
    src_time = torch.arange(t_count, dtype=torch.float64)
    if freeze_frame is not None:
        if not 0 <= int(freeze_frame) < t_count:
            raise ValueError(f"freeze_frame: expected a frame in [0, {t_count}), got {freeze_frame}")
        src_time = torch.full_like(src_time, float(freeze_frame))
    else:
        src_time = (src_time * speed).clamp(0, t_count - 1)
    means, colors, opacities, scales, quats = (_retime(x, src_time, sel) for x in (full.means, full.colors, full.opacities, full.scales, full.quats))

    p = ease(torch.linspace(0, 1, t_count, dtype=torch.float64) if t_count > 1 else torch.ones(1, dtype=torch.float64), easing)
    axis_t = torch.as_tensor(axis, dtype=torch.float64).reshape(3)
    if float(axis_t.norm()) < 1e-9:
        raise ValueError("axis: the rotation axis must not be zero")
    rot = _axis_angle(axis_t / axis_t.norm(), torch.deg2rad(torch.tensor(float(angle), dtype=torch.float64)) * p)  # [T, 3, 3]
    grow = 1.0 + (float(scale) - 1.0) * p  # [T]
    shift = torch.as_tensor(translate, dtype=torch.float64).reshape(1, 3) * p[:, None]
    dev, dt = means.device, means.dtype
    m_sel = means[:, sel].double()
    centre = m_sel.mean(dim=1, keepdim=True) if pivot is None else torch.as_tensor(pivot, dtype=torch.float64).reshape(1, 1, 3).expand(t_count, 1, 3)
    centre = centre.to(dev)
    moved = centre + grow.to(dev)[:, None, None] * (m_sel - centre) @ rot.to(dev).transpose(1, 2) + shift.to(dev)[:, None]
    means = means.clone()
    means[:, sel] = moved.to(dt)
    scales = scales.clone()
    scales[:, sel] = scales[:, sel] * grow.to(dev, dt)[:, None, None]
    quats = quats.clone()
    quats[:, sel] = _quat_multiply(_matrix_to_quat(rot).to(dev, dt)[:, None], quats[:, sel])
    return GaussianField.from_checked(means, colors, opacities, scales, quats, pixels=field.pixels, reference_frames=field.reference_frames)


PLACEMENTS = ("source_view", "world")


def place_in_world(field: GaussianField, camera: CameraPath) -> GaussianField:
    """The pseudo 4D field (each time step in the source camera's frame at that time) placed in the
    world of ``camera`` (e.g. the solved source path): means and rotations by camera_to_world[t]."""
    if camera.num_frames < field.num_frames:
        raise ValueError(f"camera: {camera.num_frames} frame(s) cannot place a field of {field.num_frames} time steps")
    full = _time_varying(field, field.num_frames) if field.num_frames > 1 else field
    c2w = camera.camera_to_world()[: field.num_frames].to(field.means.device, torch.float64)
    means = (torch.einsum("tij,tnj->tni", c2w[:, :3, :3], full.means.double()) + c2w[:, None, :3, 3]).float()
    turn = _matrix_to_quat(c2w[:, :3, :3]).to(field.means.dtype)
    quats = full.quats if full.quats.dim() == 3 else full.quats[None].expand(field.num_frames, -1, -1)
    quats = _quat_multiply(turn[:, None], quats)
    return GaussianField.from_checked(means, full.colors, full.opacities, full.scales, quats, pixels=field.pixels, reference_frames=field.reference_frames)


def _time_varying(field: GaussianField, t_count: int) -> GaussianField:
    """The same field with every attribute ``[T, N, ...]`` (T = ``t_count``)."""

    def per_time(x: torch.Tensor, static_dim: int) -> torch.Tensor:
        if x.dim() == static_dim:
            x = x.unsqueeze(0)
        return x.expand(t_count, *x.shape[1:]).clone() if x.shape[0] != t_count else x

    return GaussianField.from_checked(
        per_time(field.means, 2),
        per_time(field.colors, 2),
        per_time(field.opacities, 1),
        per_time(field.scales, 2),
        per_time(field.quats, 2),
        pixels=field.pixels,
        reference_frames=field.reference_frames,
    )


def _retime(x: torch.Tensor, src_time: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
    """Selected columns of ``x [T, N, ...]`` resampled at fractional times ``src_time [T]`` (linear)."""
    if bool((src_time == torch.arange(len(src_time), dtype=src_time.dtype)).all()):
        return x
    lo = src_time.floor().long().clamp(0, x.shape[0] - 1)
    hi = (lo + 1).clamp(max=x.shape[0] - 1)
    w = (src_time - lo.double()).to(x.dtype).to(x.device).reshape(-1, *([1] * (x.dim() - 1)))
    out = x.clone()
    out[:, sel] = (x[lo.to(x.device)][:, sel] * (1 - w) + x[hi.to(x.device)][:, sel] * w)
    return out


def _axis_angle(axis: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``[T, 3, 3]`` rotations by ``angles [T]`` radians about the unit ``axis [3]``."""
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    return axis_angle_to_rotation_matrix(axis[None] * angles[:, None])


def _matrix_to_quat(rot: torch.Tensor) -> torch.Tensor:
    """``[T, 3, 3]`` → ``[T, 4]`` (w, x, y, z)."""
    from kornia.geometry.conversions import rotation_matrix_to_quaternion

    return rotation_matrix_to_quaternion(rot.contiguous())


def _quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a ⊗ b of (w, x, y, z) quaternions, broadcasting."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw],
        dim=-1,
    )
