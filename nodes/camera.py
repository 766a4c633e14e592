"""CameraPath: schedule cameras (a preset move or a rig of them) and preview the path in the browser.

The node's inputs are derived from the preset registry (``py.camera.PARAMS``, ``py.camera.CAMERA_PRESETS``):
the preset menu, then the frame widgets, then one widget per parameter in the registry's order (saved
workflows store widget values by position). The browser preview posts the same widget values to
:data:`ROUTE`; :func:`camera_path_request` answers with the path this node would make, and the frontend
reads the widget names from the node's definition (``/object_info``), so neither keeps its own list.
"""

from __future__ import annotations

import json

import torch

from ..py import camera as cam
from . import preview
from .common import CAMERA_PATH, GAUSSIANS, camera_paths, category, expect, info

ROUTE = "/vid4d/camera_path"
# Without a source camera connected, CameraPath's 0 sizes mean "the source's"; preview a typical clip.
PREVIEW_SOURCE = {"num_frames": 49, "width": 720, "height": 480}
FRAME_WIDGETS = {
    "num_frames": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1, "tooltip": "0 = as many as the source camera"}),
    "width": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1, "tooltip": "0 = the source camera's"}),
    "height": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1, "tooltip": "0 = the source camera's"}),
}
SOCKET_KINDS = {"CAMERA_PATH": CAMERA_PATH}  # parameter kinds that arrive on a socket rather than a widget
_WIDGET_KINDS = {"FLOAT": "FLOAT", "INT": "INT", "JSON": "STRING"}


def param_input(param: cam.Param) -> tuple:
    """A registry parameter as a ComfyUI input spec; a preset parameter's tooltip names the presets that use it."""
    tooltip = param.tooltip
    if param.scope == "preset" and cam.param_users(param.name):
        tooltip = f"{tooltip} ({', '.join(cam.param_users(param.name))})"
    if param.kind in SOCKET_KINDS:
        return (SOCKET_KINDS[param.kind], {"tooltip": tooltip})
    if param.kind == "COMBO":
        return (list(param.options["choices"]), {"default": param.default, "tooltip": tooltip})
    return (_WIDGET_KINDS[param.kind], {"default": param.default, **param.options, "tooltip": tooltip})


class CameraPath:
    DESCRIPTION = (
        "Scheduled camera intrinsics and extrinsics relative to the source view (frame 0 = the original camera), from a preset move: "
        + ", ".join(cam.PRESETS) + ". dolly_zoom keeps the subject at focus_depth framed while the background swells; keyframes takes "
        "a JSON list of {frame, position, look_at | angles, fov}. cameras > 1 makes a rig of synchronized cameras spread over rig_angle "
        "around the subject (multi-camera shooting). On the solved source camera (source_path, from Estimate Camera): follow_source keeps "
        "a share of its move, stabilize smooths its shake away, transfer copies another video's move (reference_path) scaled by "
        "focus_depth / reference_depth. The preview shows the path from the top and the side; the node itself shows it "
        "in 3D (drag to orbit, wheel to zoom, scrub to look through the camera at frame t)."
    )
    CATEGORY = category("gaussians")
    FUNCTION = "make"
    RETURN_TYPES = (CAMERA_PATH, "IMAGE")
    RETURN_NAMES = ("camera", "preview")
    OUTPUT_TOOLTIPS = ("the camera path (or rig of paths)", "top and side view of the camera frusta over time")

    @classmethod
    def INPUT_TYPES(cls):
        required = {"preset": (list(cam.CAMERA_PRESETS), {"default": "dolly_zoom"}), **FRAME_WIDGETS}
        optional = {
            "source_camera": (CAMERA_PATH, {"tooltip": "the source view (LiftGaussians' source_camera): size, frame count and intrinsics"}),
            "gaussians": (GAUSSIANS, {"tooltip": "optional, only for the previews: the scene's points are drawn with the path"}),
        }
        for param in cam.PARAMS.values():
            (optional if param.kind in SOCKET_KINDS else required)[param.name] = param_input(param)
        return {"required": required, "optional": optional}

    def make(self, preset, num_frames, width, height, source_camera=None, gaussians=None, **params):
        out, focus_depth = self.build(preset, num_frames, width, height, source_camera=source_camera, **params)
        text = f"{preset}: {len(cam.as_path_list(out))} camera(s) x {out.num_frames} frames at {out.width}x{out.height}"
        ui = {**info(text), "vid4d_path": [preview.path_payload(out, focus_depth=focus_depth, text=text)]}
        points = None
        if gaussians is not None:
            points = preview.field_points(expect(gaussians, GAUSSIANS, "gaussians"), frame=0)
            ui["vid4d_points"] = [points]
        if source_camera is not None:
            ui["vid4d_source"] = [preview.source_payload(camera_paths(source_camera, "source_camera")[0])]
        image = cam.draw_camera_path(out, focus_depth=focus_depth, scene_points=preview.scene_points(points))[None]
        return {"ui": ui, "result": (out, image)}

    @staticmethod
    def build(preset, num_frames, width, height, source_camera=None, **params):
        """The node's inputs → (CameraPath or CameraRig, focus_depth); also serves the browser preview.

        ``params`` are the registry parameters by name (a missing one takes its widget default). The
        values a connected input decides are resolved here, before :func:`camera_path` sees them:
        0 sizes and the intrinsics come from ``source_camera``.
        """
        unknown = sorted(set(params) - set(cam.PARAMS))
        if unknown:
            raise ValueError(f"{unknown[0]}: not an input of CameraPath; expected {', '.join(cam.PARAMS)}")
        values = {name: params.get(name, param.default) for name, param in cam.PARAMS.items()}
        intrinsics = None
        if source_camera is not None:
            src = camera_paths(source_camera, "source_camera")[0]
            num_frames = num_frames or src.num_frames
            if (width or src.width, height or src.height) != (src.width, src.height):
                raise ValueError(f"width/height {width}x{height} differ from the source camera's {src.width}x{src.height}; set them to 0 to use the source size")
            width, height, intrinsics = src.width, src.height, src.intrinsics[0]
        if not (num_frames and width and height):
            raise ValueError("num_frames, width and height must be set (> 0) when no source_camera is connected")
        entry = cam.get_preset(preset)
        kwargs = {name: values[name] for name, param in cam.PARAMS.items() if param.scope == "path"}
        if intrinsics is not None:
            kwargs["intrinsics"] = intrinsics
            del kwargs["fov"]  # fov is the field of view "when no source camera is connected"
        for name in entry.params:
            value = values[name]
            if cam.PARAMS[name].kind == "JSON" and isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{name}: not valid JSON ({exc})") from None
            kwargs[name] = value
        focus_depth = values["focus_depth"]
        # A move in the world of a solved source camera (stabilize, transfer, ...) comes with that camera;
        # the rig goes in between, so every rig camera is placed in the world: W_t·O_k·S_t⁻¹.
        base, source = cam.camera_move(preset, num_frames, width, height, **kwargs)
        # Paths are relative to the source view at each frame; a field placed in the world of a solved
        # camera (LiftGaussians placement = world) hands that camera on as source_camera.
        place = (lambda path: cam.in_source_view(path, src)) if source_camera is not None else (lambda path: path)
        if values["cameras"] > 1:
            rig = cam.camera_rig(values["cameras"], num_frames, width, height, arc_angle=values["rig_angle"], focus_depth=focus_depth, base=base)
            return cam.CameraRig([place(cam.relative_to_source(path, source)) for path in rig]), focus_depth
        return place(cam.relative_to_source(base, source)), focus_depth


# ---------------------------------------------------------------------------------------- the preview route


def route_fields() -> dict[str, type]:
    """Widget name → the Python type the route accepts: every widget of CameraPath, in the node's order."""
    kinds = {"INT": int, "FLOAT": float, "STRING": str}
    return {name: (str if isinstance(spec[0], list) else kinds[spec[0]]) for name, spec in CameraPath.INPUT_TYPES()["required"].items()}


def camera_path_request(body) -> tuple[int, dict]:
    """The route's logic, callable without a server: CameraPath widget values → (HTTP status, JSON).

    ``body`` holds the widgets (:func:`route_fields`, missing ones take the node's defaults) and
    optionally ``source`` = ``{"num_frames", "width", "height", "K": [fx, s, cx, fy, cy]}``, the source
    camera CameraPath saw in its last run. A bad value answers 400 with ``{"error": message}``.
    """
    if not isinstance(body, dict):
        return 400, {"error": f"expected a JSON object of CameraPath widget values, got {type(body).__name__}"}
    spec = CameraPath.INPUT_TYPES()["required"]
    values = {}
    try:
        for name, kind in route_fields().items():
            raw = body.get(name, spec[name][1].get("default"))
            if kind is int:
                values[name] = int(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) and float(raw).is_integer() else _bad(name, "an integer", raw)
            elif kind is float:
                values[name] = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else _bad(name, "a number", raw)
            else:
                values[name] = raw if isinstance(raw, str) else _bad(name, "a string", raw)
        sockets = [name for name in cam.get_preset(values["preset"]).params if cam.PARAMS[name].kind in SOCKET_KINDS]
        if sockets:  # the browser posts widgets only; the node's last run shows the path
            raise ValueError(f"{values['preset']} reads {' and '.join(sockets)} from a socket: its path shows after a run")
        source, note = _source_camera(body.get("source"), values)
        out, focus_depth = CameraPath.build(**values, source_camera=source)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    count = len(cam.as_path_list(out))
    text = f"{values['preset']}: {count} camera(s) x {out.num_frames} frames at {out.width}x{out.height}{note}"
    return 200, preview.path_payload(out, focus_depth=focus_depth, text=text)


def _bad(name: str, expected: str, got):
    raise ValueError(f"{name}: expected {expected}, got {got!r}")


def _source_camera(source, values: dict):
    """The source camera the browser remembered from the last run, or a stand-in when sizes are 0."""
    if source:
        if not isinstance(source, dict):
            raise ValueError(f"source: expected {{num_frames, width, height, K}}, got {source!r:.80}")
        k5 = source.get("K")
        if not isinstance(k5, list) or len(k5) != 5:
            raise ValueError(f"source.K: expected [fx, s, cx, fy, cy], got {k5!r:.80}")
        fx, s, cx, fy, cy = (float(v) for v in k5)
        k = torch.tensor([[fx, s, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cam.CameraPath.static(k, int(source["num_frames"]), int(source["width"]), int(source["height"])), " (source camera of the last run)"
    missing = [n for n in ("num_frames", "width", "height") if not values[n]]
    if not missing:
        return None, ""
    for name in missing:
        values[name] = PREVIEW_SOURCE[name]
    return None, f" ({', '.join(missing)} from the source camera: shown as {PREVIEW_SOURCE['num_frames']} frames at 720x480 until a run)"


ROUTES = {ROUTE: camera_path_request}  # POST routes nodes/__init__.py registers on ComfyUI's server

NODE_CLASS_MAPPINGS = {"CameraPath": CameraPath}
NODE_DISPLAY_NAME_MAPPINGS = {"CameraPath": "Camera Path (Vid4D)"}
