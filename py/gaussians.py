"""Pseudo 4D Gaussian fields (GS-DiT): one Gaussian per tracked point, its mean moving over time."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .camera import ease, pixel_grid, unproject_pixels
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
    """

    means: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    pixels: torch.Tensor | None = None

    def __post_init__(self):
        dims: dict[str, int] = {}
        check_tensor("GaussianField.means", self.means, ("T", "N", 3), dims=dims)
        check_tensor("GaussianField.colors", self.colors, [("N", 3), ("T", "N", 3)], dims=dims)
        check_tensor("GaussianField.opacities", self.opacities, [("N",), ("T", "N")], dims=dims)
        check_tensor("GaussianField.scales", self.scales, [("N", 3), ("T", "N", 3)], dims=dims)
        check_tensor("GaussianField.quats", self.quats, [("N", 4), ("T", "N", 4)], dims=dims)
        if self.pixels is not None:
            check_tensor("GaussianField.pixels", self.pixels, ("N", 2), dims=dims)
        check_range("GaussianField.opacities", self.opacities, 0.0, 1.0)
        scan(self.scales, "positive", lambda: "GaussianField.scales: every scale must be > 0" if bool((self.scales <= 0).any()) else None)
        scan(self.quats, "nonzero_norm", lambda: "GaussianField.quats: every quaternion must have a non-zero norm" if bool((self.quats.norm(dim=-1) < 1e-8).any()) else None)

    @property
    def num_frames(self) -> int:
        return int(self.means.shape[0])

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[1])

    def median_depth(self, t: int = 0) -> float | None:
        """Median camera z of the visible Gaussians (opacity > 0, z > 0) at time ``t`` in the source camera's frame:
        the scene's scale (CameraPath's ``focus_depth`` auto). None when nothing is in front of the camera."""
        at = self.at(t)
        z = at["means"][:, 2]
        z = z[(at["opacities"] > 0) & (z > 0)]
        return float(z.median()) if z.numel() else None

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
    sampled bilinearly at the track in frame t while visible), isotropic scale κ·d_t/f, opacity =
    visibility (times the edge weight of the reference depth), identity rotation.

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
    t_count, r = tracks.num_frames, tracks.ref_frame
    sel = (slice(None), slice(None, None, stride), slice(None, None, stride))
    uv, depth = tracks.uv[sel], tracks.depth[sel]
    vis = tracks.visibility[sel].float()
    k = tracks.intrinsics.reshape(-1, 3, 3).to(depth.dtype)
    means = unproject_pixels(uv, depth, k).reshape(t_count, -1, 3)
    weight = _edge_weight(tracks.depth[r : r + 1], edge_threshold, edge_mode)[0][sel[1:]]
    opacities = (vis * weight * (depth > 0)).reshape(t_count, -1)
    focal = 0.5 * (k[:, 0, 0] + k[:, 1, 1])
    scales = (kappa * stride * depth.clamp_min(1e-6) / focal[:, None, None]).reshape(t_count, -1, 1).expand(-1, -1, 3)
    reference = frames[r][sel[1:]].reshape(-1, 3)
    if color_mode == "reference":
        colors = reference
    else:
        sampled = sample_frames(frames, uv).reshape(t_count, -1, 3)
        colors = torch.where(vis.reshape(t_count, -1, 1) > 0.5, sampled, reference[None])
    return GaussianField.from_checked(
        means=means.float(),
        colors=colors.float().clamp(0, 1),
        opacities=opacities.float(),
        scales=scales.float().contiguous(),
        quats=_identity_quats(means.shape[1], means.device),
        pixels=tracks.uv[r][sel[1:]].reshape(-1, 2).float(),
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
    """``[N]`` bool: Gaussians whose reference pixel lies where ``mask [H, W]`` > threshold."""
    if field.pixels is None:
        raise ValueError("this Gaussian field does not know its source pixels (it was not lifted from an image/tracks); select with a 3D box instead")
    check_tensor("mask", mask, ("H", "W"))
    h, w = mask.shape
    xy = field.pixels.round().long()
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    if not bool(inside.all()):
        raise ValueError(f"mask: {w}x{h} does not cover the field's source pixels (up to {int(xy[:, 0].max()) + 1}x{int(xy[:, 1].max()) + 1}); draw the mask on the reference frame")
    return mask.to(field.pixels.device)[xy[:, 1], xy[:, 0]] > threshold


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
    return GaussianField.from_checked(means, colors, opacities, scales, quats, pixels=field.pixels)


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
