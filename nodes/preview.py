"""Data for the in-graph 3D previews (js/vid4d_preview.js): camera paths, point clouds, track trails.

The browser never re-implements the camera maths: it posts CameraPath's widget values to
``POST /vid4d/camera_path`` (nodes/camera.py answers; :func:`register_routes` adds it to ComfyUI's
server when it is running) and draws what :func:`path_payload` returns. After a run, CameraPath,
LiftGaussians and DenseTrack3D send the same kind of payload as UI output (``ui.vid4d_path``,
``ui.vid4d_points``, ``ui.vid4d_tracks``).

Payloads are plain JSON, rounded and capped (:data:`MAX_POINTS`, :data:`MAX_TRACKS`,
:data:`MAX_PATH_FRAMES`) so a 49×480×720 field does not flood the browser or the history.
"""

from __future__ import annotations

import json
import math
import sys

import torch

from ..py import camera as cam

MAX_POINTS = 20000
MAX_TRACKS = 2000
MAX_PATH_FRAMES = 512
DEFAULT_POINTS = 8000
DEFAULT_TRACKS = 600
TRAIL = 8  # frames of history drawn behind each track's head


def _flat(values: torch.Tensor, digits: int) -> list[float]:
    """A tensor as a flat list of numbers rounded to ``digits`` decimals (JSON stays small)."""
    scale = 10.0**digits
    out = (values.detach().to("cpu", torch.float64).reshape(-1) * scale).round() / scale
    return [int(v) if digits == 0 else v for v in out.tolist()]


def _even_subset(count: int, limit: int) -> torch.Tensor:
    """At most ``limit`` evenly spaced indices of ``range(count)``, always the first and the last."""
    if count <= limit:
        return torch.arange(count)
    return torch.linspace(0, count - 1, limit).round().long().unique()


def _check_cap(name: str, value, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(f"{name}: expected an integer in [1, {maximum}], got {value!r}")
    return value


# ---------------------------------------------------------------------------------------- camera paths


def path_payload(paths, focus_depth: float | None = None, text: str = "") -> dict:
    """A camera path or rig as JSON for the browser.

    Returns ``{"kind": "path", "num_frames", "width", "height", "frames": [t...], "focus": [x, y, z] | None,
    "cameras": [{"K": [[fx, s, cx, fy, cy] per frame], "w2c": [[12 numbers, rows of R|t] per frame],
    "centers": [[x, y, z] per frame]}], "text"}`` for at most :data:`MAX_PATH_FRAMES` frames (evenly
    spaced, first and last kept). World = the source camera at frame 0 (OpenCV axes).
    """
    path_list = cam.as_path_list(paths)
    first = path_list[0]
    frames = _even_subset(first.num_frames, MAX_PATH_FRAMES)
    cameras = []
    for path in path_list:
        k = path.intrinsics.detach().to("cpu", torch.float64)[frames]
        w2c = path.world_to_camera.detach().to("cpu", torch.float64)[frames, :3, :4]
        centres = path.centers().detach().to("cpu", torch.float64)[frames]
        k5 = torch.stack([k[:, 0, 0], k[:, 0, 1], k[:, 0, 2], k[:, 1, 1], k[:, 1, 2]], -1)
        cameras.append({
            "K": [_flat(row, 3) for row in k5],
            "w2c": [_flat(row, 6) for row in w2c.reshape(-1, 12)],
            "centers": [_flat(row, 5) for row in centres],
        })
    return {
        "kind": "path",
        "num_frames": first.num_frames,
        "width": first.width,
        "height": first.height,
        "frames": frames.tolist(),
        "focus": None if focus_depth is None else [0.0, 0.0, float(focus_depth)],
        "cameras": cameras,
        "text": text,
    }


def source_payload(path: cam.CameraPath) -> dict:
    """What the browser keeps of a source camera (frame 0's intrinsics) to ask for previews of later edits."""
    k = path.intrinsics[0].detach().to("cpu", torch.float64)
    return {"num_frames": path.num_frames, "width": path.width, "height": path.height,
            "K": _flat(torch.stack([k[0, 0], k[0, 1], k[0, 2], k[1, 1], k[1, 2]]), 4)}


# ---------------------------------------------------------------------------------------- point clouds


def points_payload(xyz: torch.Tensor, rgb: torch.Tensor | None = None, *, frame: int = 0, num_frames: int = 1, max_points: int = DEFAULT_POINTS, text: str = "") -> dict:
    """World points ``[N, 3]`` (colours ``[N, 3]`` in 0..1) → ``{"kind": "points", "xyz": [3·n], "rgb": [3·n] 0..255, ...}``.

    Non-finite points are dropped and at most ``max_points`` (≤ :data:`MAX_POINTS`) kept with an even
    stride over the input order (pixel order for lifted fields, so the spatial spread survives).
    """
    max_points = _check_cap("max_points", max_points, MAX_POINTS)
    if not isinstance(xyz, torch.Tensor) or xyz.dim() != 2 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz: expected points [N, 3], got {getattr(xyz, 'shape', type(xyz).__name__)}")
    if rgb is not None and tuple(rgb.shape) != tuple(xyz.shape):
        raise ValueError(f"rgb: expected colours {list(xyz.shape)} like xyz, got {list(rgb.shape)}")
    total = xyz.shape[0]
    keep = torch.isfinite(xyz).all(-1).nonzero()[:, 0]
    keep = keep[_even_subset(keep.shape[0], max_points)] if keep.shape[0] else keep
    points = xyz[keep].to("cpu", torch.float64)
    colours = (rgb[keep].to("cpu", torch.float64).clamp(0, 1) * 255) if rgb is not None else torch.full_like(points, 200.0)
    return {"kind": "points", "frame": frame, "num_frames": num_frames, "total": total, "count": int(points.shape[0]),
            "xyz": _flat(points, 3), "rgb": _flat(colours, 0), "text": text}


def field_points(field, frame: int = 0, max_points: int = DEFAULT_POINTS) -> dict:
    """A Gaussian field's centres at time ``frame`` (clamped into range), coloured, opacity > 0 only."""
    t = min(max(int(frame), 0), field.num_frames - 1)
    means = field.means[t]
    colours = field.colors[t] if field.colors.dim() == 3 else field.colors
    opacity = field.opacities[t] if field.opacities.dim() == 2 else field.opacities
    seen = opacity > 0
    text = f"{int(seen.sum())} of {field.num_gaussians} Gaussians at frame {t}"
    return points_payload(means[seen], colours[seen], frame=t, num_frames=field.num_frames, max_points=max_points, text=text)


def scene_points(payload: dict | None) -> torch.Tensor | None:
    """``[N, 3]`` points back from a points payload (for the IMAGE diagram), ``None`` without one."""
    if not payload or not payload.get("xyz"):
        return None
    return torch.tensor(payload["xyz"], dtype=torch.float64).reshape(-1, 3)


# ---------------------------------------------------------------------------------------- tracks


def tracks_payload(tracks, frames: torch.Tensor | None = None, *, frame: int = 0, max_tracks: int = DEFAULT_TRACKS, trail: int = TRAIL) -> dict:
    """Dense 3D tracks as short trails ending at ``frame``: ``{"kind": "tracks", "xyz": [n·L·3], "visible": [n], ...}``.

    At most ``max_tracks`` (≤ :data:`MAX_TRACKS`) reference pixels on an even grid; each trail holds
    the camera-space positions of frames ``frame − trail + 1 .. frame`` (clamped at 0, so ``L`` =
    ``trail_length``). Only the chosen pixels are unprojected, so memory does not grow with H·W.
    Colours come from ``frames[ref_frame]`` (``[T, H, W, 3]``) when given.
    """
    from ..py.camera import unproject_pixels

    max_tracks = _check_cap("max_tracks", max_tracks, MAX_TRACKS)
    trail = _check_cap("trail", trail, 64)
    t_count, h, w = tracks.num_frames, tracks.height, tracks.width
    t = min(max(int(frame), 0), t_count - 1)
    step = max(1, math.ceil(math.sqrt(h * w / max_tracks)))
    ys, xs = torch.arange(step // 2, h, step), torch.arange(step // 2, w, step)
    while ys.numel() * xs.numel() > max_tracks:  # ceil of the root can still leave a few too many
        step += 1
        ys, xs = torch.arange(step // 2, h, step), torch.arange(step // 2, w, step)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gy, gx = gy.reshape(-1), gx.reshape(-1)
    times = torch.arange(max(0, t - trail + 1), t + 1)
    uv = tracks.uv[times][:, gy, gx].to(torch.float64)  # [L, n, 2]
    depth = tracks.depth[times][:, gy, gx].to(torch.float64)
    k = tracks.intrinsics.to(torch.float64)
    k = k[times] if k.dim() == 3 else k
    xyz = unproject_pixels(uv, depth, k).transpose(0, 1)  # [n, L, 3]
    finite = torch.isfinite(xyz).all(-1).all(-1)
    visible = tracks.visible()[t][gy, gx] & finite
    xyz = torch.where(finite[:, None, None], xyz, torch.zeros_like(xyz))
    if frames is not None:
        colours = frames[tracks.ref_frame][gy, gx].to(torch.float64).clamp(0, 1) * 255
    else:
        colours = torch.full((gy.numel(), 3), 200.0, dtype=torch.float64)
    text = f"{gy.numel()} of {h * w} tracks (every {step} px), frames {int(times[0])}..{t}"
    return {"kind": "tracks", "frame": t, "num_frames": t_count, "total": h * w, "count": int(gy.numel()),
            "trail_length": int(times.numel()), "xyz": _flat(xyz, 3), "visible": _flat(visible.to(torch.float64), 0),
            "rgb": _flat(colours, 0), "text": text}


def payload_size(payload: dict) -> int:
    """Bytes of the payload as the server sends it (compact JSON)."""
    return len(json.dumps(payload, separators=(",", ":")))


# ---------------------------------------------------------------------------------------- the route

_registered: set[str] = set()


def register_routes(handlers: dict) -> bool:
    """Add ``POST path`` for each ``path -> handler(body) -> (status, json)`` to ComfyUI's running PromptServer.

    False (a no-op) outside ComfyUI or when every path is registered already. Looks the server up in
    ``sys.modules`` instead of importing it, so the package stays importable (and light) in tests and
    the CLI, where no ``server`` module is loaded.
    """
    server = getattr(sys.modules.get("server"), "PromptServer", None)
    instance = getattr(server, "instance", None)
    routes = getattr(instance, "routes", None)
    todo = {path: handler for path, handler in handlers.items() if path not in _registered}
    if routes is None or not todo:
        return False
    for path, handler in todo.items():
        routes.post(path)(_json_route(handler))
        _registered.add(path)
    return True


def _json_route(handler):
    async def route(request):
        from aiohttp import web  # ComfyUI's server runs on aiohttp; only needed once it calls us

        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": "expected a JSON body"}, status=400)
        status, data = handler(body)
        return web.json_response(data, status=status)

    return route
