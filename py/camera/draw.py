"""The camera path diagram: a top and a side view of a path or rig as an IMAGE (PIL), so a user sees
the move before anything is rendered."""

from __future__ import annotations

import math

import torch

from ..checks import check_positive_int
from .geometry import POSE_DTYPE, CameraPath, check_positive, unproject_pixels
from .rig import CameraRig, as_path_list

_TIME_STOPS = ((37, 99, 235), (168, 85, 190), (245, 130, 20))  # blue → violet → orange: t = 0 → T−1
_RIG_HUES = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
             (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))  # tab10


def draw_camera_path(
    paths: CameraPath | CameraRig | list[CameraPath],
    size: tuple[int, int] = (640, 320),
    focus_depth: float | None = None,
    scene_points: torch.Tensor | None = None,
) -> torch.Tensor:
    """A diagram of a camera path or rig: IMAGE ``[H, W, 3]`` float32 in 0..1, ``size = (W, H)``.

    Two panels side by side, each auto-fitted (equal aspect, with margin) to the cameras, F and the
    scene points: **top** (x right, z up the panel = forward) and **side** (z right, −y up). Shown: a
    light grid (its spacing printed in the corner), the source camera (frame 0 at the origin, black),
    the focus point F = (0, 0, ``focus_depth``) if given (red cross), a line through every frame's
    camera centre, and camera frusta (pyramids from the centre along the viewing direction, as wide
    as the field of view) for at most 12 evenly spaced frames including the first and the last.
    A single path is coloured by time, blue (t=0) → orange (t=T-1); in a rig each camera has its own
    hue, pale at t=0 and strong at t=T-1. ``scene_points`` (``[..., 3]`` world points, e.g. a subsample
    of the lifted scene) are drawn as faint grey dots; the view fits their 1..99 % range.
    """
    from PIL import Image, ImageDraw

    path_list = as_path_list(paths)
    out_w, out_h = _check_size(size)
    if focus_depth is not None:
        focus_depth = check_positive("focus_depth", focus_depth)
    points = _scene_point_array(scene_points)

    rig = len(path_list) > 1
    per_path = 12 if not rig else max(2, 12 // len(path_list))
    centres = [p.centers().detach().to("cpu", POSE_DTYPE) for p in path_list]
    anchors = [torch.zeros(1, 3, dtype=POSE_DTYPE)] + centres
    if focus_depth is not None:
        anchors.append(torch.tensor([[0.0, 0.0, focus_depth]], dtype=POSE_DTYPE))
    if points is not None:
        anchors.append(torch.quantile(points, torch.tensor([0.01, 0.99], dtype=POSE_DTYPE), dim=0))
    anchors = torch.cat(anchors)
    extent = float((anchors.amax(0) - anchors.amin(0)).max())
    # Frusta big enough to read the direction, small enough not to hide the path.
    depth = 0.18 * extent if extent > 1e-6 else 0.3 * (focus_depth or 1.0)

    # Everything to draw, in world coordinates: (kind, colour, [N, 3] points).
    strokes = []
    src_k = path_list[0].intrinsics[0].detach().to("cpu", POSE_DTYPE)
    source = _frustum(src_k, torch.eye(4, dtype=POSE_DTYPE), path_list[0].width, path_list[0].height, depth)
    for i, (path, c) in enumerate(zip(path_list, centres)):
        t_count = path.num_frames
        colour = (lambda tau, i=i: _rig_colour(i, tau)) if rig else _time_colour
        for t in range(t_count - 1):
            strokes.append(("line", colour((t + 0.5) / max(t_count - 1, 1)), c[t : t + 2]))
        c2w = path.camera_to_world().detach().to("cpu", POSE_DTYPE)
        k_all = path.intrinsics.detach().to("cpu", POSE_DTYPE)
        for t in _frame_subset(t_count, per_path):
            tau = t / max(t_count - 1, 1)
            strokes.append(("frustum", colour(tau if t_count > 1 else 1.0), _frustum(k_all[t], c2w[t], path.width, path.height, depth)))
    if rig:  # the rig's formation at frame 0
        strokes.insert(0, ("line", (190, 190, 190), torch.stack([c[0] for c in centres])))
    fit = torch.cat([anchors] + [s[2] for s in strokes] + [source])

    ss = 2 if out_w * out_h <= 2048 * 2048 else 1  # supersampling for smooth lines
    left_w = out_w // 2
    panel_sizes = ((left_w * ss, out_h * ss), ((out_w - left_w) * ss, out_h * ss))
    font = _font(max(9, round(out_h / 26)) * ss)
    views = (("top (x right, z up)", lambda p: torch.stack([p[..., 0], p[..., 2]], -1)),
             ("side (z right, -y up)", lambda p: torch.stack([p[..., 2], -p[..., 1]], -1)))
    panels = []
    for index, ((title, flatten), (pw, ph)) in enumerate(zip(views, panel_sizes)):
        pad_top, pad_bottom = _font_height(font) * 1.6, _font_height(font) * 1.8
        to_px, scale = _fit_panel(flatten(fit), pw, ph, pad_top, pad_bottom, ss)
        label_w = font.getlength("source") + 8 * ss
        if float(to_px(flatten(torch.zeros(1, 3, dtype=POSE_DTYPE)))[0, 0]) < label_w:  # make room for the "source" label
            to_px, scale = _fit_panel(flatten(fit), pw, ph, pad_top, pad_bottom, ss, pad_left=label_w)
        canvas = torch.full((ph, pw, 3), 252, dtype=torch.uint8)
        if points is not None:
            _splat_points(canvas, to_px(flatten(points)), ss)
        image = Image.fromarray(canvas.numpy())
        draw = ImageDraw.Draw(image)
        step = _draw_grid(draw, to_px, scale, pw, ph, ss)
        for kind, colour, pts in strokes:
            xy = to_px(flatten(pts))
            if kind == "line":
                draw.line([tuple(v) for v in xy.tolist()], fill=colour, width=2 * ss)
            else:
                _draw_frustum(draw, xy, colour, ss)
        _draw_frustum(draw, to_px(flatten(source)), (0, 0, 0), ss, width=2 * ss)
        ox, oy = to_px(flatten(torch.zeros(1, 3, dtype=POSE_DTYPE)))[0].tolist()
        draw.ellipse([ox - 3 * ss, oy - 3 * ss, ox + 3 * ss, oy + 3 * ss], fill=(0, 0, 0))
        # Left of the origin: the frusta point away from it (right in the side view, up in the top view).
        draw.text((ox - 5 * ss - draw.textlength("source", font=font), oy + ss), "source", fill=(60, 60, 60), font=font)
        if focus_depth is not None:
            fx, fy = to_px(flatten(torch.tensor([[0.0, 0.0, focus_depth]], dtype=POSE_DTYPE)))[0].tolist()
            r = 5 * ss
            draw.line([fx - r, fy - r, fx + r, fy + r], fill=(220, 30, 30), width=2 * ss)
            draw.line([fx - r, fy + r, fx + r, fy - r], fill=(220, 30, 30), width=2 * ss)
            draw.text((fx + r + 2 * ss, fy - r - _font_height(font)), "F", fill=(200, 20, 20), font=font)
        if rig and index == 0 and len(path_list) <= 12:
            for i, c in enumerate(centres):
                x, y = to_px(flatten(c[:1]))[0].tolist()
                draw.text((x - 3 * ss, y + 4 * ss), str(i), fill=_rig_colour(i, 1.0), font=font)
        draw.text((6 * ss, 4 * ss), title, fill=(30, 30, 30), font=font)
        label = f"grid {step:g}"
        draw.text((pw - 6 * ss - draw.textlength(label, font=font), 4 * ss), label, fill=(120, 120, 120), font=font)
        _draw_legend(draw, font, index, path_list, rig, pw, ph, ss)
        if index == 1:
            draw.line([0, 0, 0, ph], fill=(170, 170, 170), width=ss)
        panels.append(image)

    full = Image.new("RGB", (out_w * ss, out_h * ss))
    full.paste(panels[0], (0, 0))
    full.paste(panels[1], (left_w * ss, 0))
    if ss > 1:
        full = full.resize((out_w, out_h), Image.BOX)
    return torch.frombuffer(bytearray(full.tobytes()), dtype=torch.uint8).reshape(out_h, out_w, 3).float() / 255.0



def _check_size(size) -> tuple[int, int]:
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise ValueError(f"size: expected (width, height), got {size!r}")
    return check_positive_int("size[0] (width)", size[0], minimum=64, maximum=4096), check_positive_int("size[1] (height)", size[1], minimum=32, maximum=4096)


def _scene_point_array(points) -> torch.Tensor | None:
    """``[N, 3]`` float64 points, at most 50 000 (an even stride keeps the spatial spread).

    Non-finite points (e.g. from invalid depth) are dropped rather than refused: this is only a preview.
    """
    if points is None:
        return None
    if not isinstance(points, torch.Tensor) or points.dim() < 2 or points.shape[-1] != 3 or not points.is_floating_point():
        what = f"{list(points.shape)} {points.dtype}" if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"scene_points: expected float world points [N, 3], got {what}")
    points = points.detach().reshape(-1, 3)
    points = points[::max(1, points.shape[0] // 50000)].to("cpu", POSE_DTYPE)
    points = points[torch.isfinite(points).all(-1)]
    return points if points.shape[0] else None


def _frame_subset(num_frames: int, count: int) -> list[int]:
    """At most ``count`` evenly spaced frame indices, always the first and the last."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


def _frustum(k: torch.Tensor, c2w: torch.Tensor, width: int, height: int, depth: float) -> torch.Tensor:
    """``[5, 3]`` world points: the centre, then the image corners (outer pixel edges) at ``depth``."""
    corners = torch.tensor([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]], dtype=POSE_DTYPE)
    cam = unproject_pixels(corners, torch.full((4,), depth, dtype=POSE_DTYPE), k)
    world = cam @ c2w[:3, :3].T + c2w[:3, 3]
    return torch.cat([c2w[None, :3, 3], world])


def _draw_frustum(draw, xy: torch.Tensor, colour, ss: int, width: int | None = None) -> None:
    width = width or ss + ss // 2
    apex, corners = tuple(xy[0].tolist()), [tuple(v) for v in xy[1:].tolist()]
    for c in corners:
        draw.line([apex, c], fill=colour, width=width)
    draw.line(corners + corners[:1], fill=colour, width=width)
    # A thicker top edge tells which way is up (it shows a roll or a look down).
    draw.line(corners[:2], fill=colour, width=2 * width)


def _time_colour(tau: float) -> tuple[int, int, int]:
    tau = min(max(tau, 0.0), 1.0) * (len(_TIME_STOPS) - 1)
    i = min(int(tau), len(_TIME_STOPS) - 2)
    w = tau - i
    return tuple(round((1 - w) * a + w * b) for a, b in zip(_TIME_STOPS[i], _TIME_STOPS[i + 1]))


def _rig_colour(index: int, tau: float) -> tuple[int, int, int]:
    hue = _RIG_HUES[index % len(_RIG_HUES)]
    strength = 0.35 + 0.65 * min(max(tau, 0.0), 1.0)  # pale at t=0, full at the end
    return tuple(round(255 * (1 - strength) + c * strength) for c in hue)


def _font(pixels: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=pixels)
    except (TypeError, ValueError, OSError, ImportError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _font_height(font) -> int:
    box = font.getbbox("Ag")
    return int(box[3] - box[1]) + 2


def _fit_panel(flat: torch.Tensor, pw: int, ph: int, pad_top: float, pad_bottom: float, ss: int, pad_left: float = 0.0):
    """A world → pixel map (equal aspect, 8 % margin) fitting ``flat [N, 2]`` into the panel, and its scale."""
    lo, hi = flat.amin(0), flat.amax(0)
    centre = (lo + hi) / 2
    span = (hi - lo).clamp(min=1e-6) * 1.16
    pad_left = max(pad_left, 6 * ss)
    avail_w, avail_h = pw - pad_left - 6 * ss, ph - pad_top - pad_bottom
    scale = min(avail_w / float(span[0]), avail_h / float(span[1]))
    mid_x, mid_y = pad_left + avail_w / 2, pad_top + avail_h / 2

    def to_px(p: torch.Tensor) -> torch.Tensor:
        p = p.reshape(-1, 2)
        return torch.stack([mid_x + (p[:, 0] - centre[0]) * scale, mid_y - (p[:, 1] - centre[1]) * scale], -1)

    return to_px, scale


def _nice_step(span: float) -> float:
    """1, 2 or 5 × 10^k, at least span / 10."""
    raw = max(span / 10, 1e-12)
    base = 10 ** math.floor(math.log10(raw))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw)


def _draw_grid(draw, to_px, scale: float, pw: int, ph: int, ss: int) -> float:
    """Light lines every ``step`` world units, the axes through the origin a little darker; returns step."""
    origin = to_px(torch.zeros(1, 2, dtype=POSE_DTYPE))[0]
    ox, oy = float(origin[0]), float(origin[1])
    step = _nice_step(max(pw, ph) / scale)
    px = step * scale
    for axis, (o, limit) in enumerate(((ox, pw), (oy, ph))):
        first = math.ceil(-o / px)
        for i in range(first, first + int(limit / px) + 2):
            v = o + i * px
            colour = (200, 200, 200) if i == 0 else (232, 232, 232)
            draw.line([v, 0, v, ph] if axis == 0 else [0, v, pw, v], fill=colour, width=ss)
    return step


def _splat_points(canvas: torch.Tensor, xy: torch.Tensor, ss: int) -> None:
    """Faint grey density of points ``[N, 2]`` (pixels) on ``canvas [H, W, 3]`` uint8, in place."""
    h, w = canvas.shape[:2]
    ij = xy.round().long()
    counts = torch.zeros(h * w)
    for dy in range(ss):
        for dx in range(ss):  # an ss × ss stamp survives the downsampling as one pixel
            x, y = ij[:, 0] + dx, ij[:, 1] + dy
            keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            counts.index_add_(0, (y * w + x)[keep], torch.ones(int(keep.sum())))
    alpha = (0.55 * (1 - torch.exp(-0.6 * counts))).reshape(h, w, 1)
    canvas.copy_((canvas.float() * (1 - alpha) + 120.0 * alpha).round().to(torch.uint8))


def _draw_legend(draw, font, index: int, path_list: list[CameraPath], rig: bool, pw: int, ph: int, ss: int) -> None:
    fh = _font_height(font)
    y = ph - fh - 7 * ss
    t_last = path_list[0].num_frames - 1
    if index == 0:
        # Time legend: "t=0 [gradient] t=T-1" (pale → strong in a rig).
        x = 6 * ss
        draw.text((x, y), "t=0", fill=(60, 60, 60), font=font)
        x += draw.textlength("t=0 ", font=font)
        bar = 60 * ss
        for j in range(bar):
            tau = j / (bar - 1)
            colour = _rig_colour(0, tau) if rig else _time_colour(tau)
            draw.line([x + j, y + 2 * ss, x + j, y + fh - 2 * ss], fill=colour)
        draw.text((x + bar + 4 * ss, y), f"t={t_last}" if t_last > 0 else "(1 frame)", fill=(60, 60, 60), font=font)
    elif rig:
        x = 6 * ss
        draw.text((x, y), f"{len(path_list)} cameras:", fill=(60, 60, 60), font=font)
        x += draw.textlength(f"{len(path_list)} cameras: ", font=font)
        for i in range(min(len(path_list), 10)):
            label = str(i)
            if x + draw.textlength(label, font=font) > pw - 6 * ss:
                break
            draw.text((x, y), label, fill=_rig_colour(i, 1.0), font=font)
            x += draw.textlength(label + " ", font=font)
