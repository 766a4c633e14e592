"""CameraPath: schedule cameras (a preset move or a rig of them) and preview the path in the browser.

The node's inputs are derived from the preset registry (``py.camera.PARAMS``, ``py.camera.CAMERA_PRESETS``):
the preset menu, then the frame widgets, then one widget per parameter in the registry's order (saved
workflows store widget values by position). The browser preview posts the same widget values to
:data:`ROUTE`; :func:`camera_path_request` answers with the path this node would make, and the frontend
reads the widget names from the node's definition (``/object_info``), so neither keeps its own list.
"""

from __future__ import annotations

import json
import reprlib

import torch

from ..py import camera as cam
from . import preview, runtime
from ..py.checks import check_finite_number, check_positive_int
from .common import CAMERA_PATH, GAUSSIANS, camera_paths, category, check_inputs, expect, info

ROUTE = "/vid4d/camera_path"
# Without a source camera connected, CameraPath's 0 sizes mean "the source's"; preview a typical clip.
PREVIEW_SOURCE = {"num_frames": 49, "width": 720, "height": 480}
FRAME_WIDGETS = {
    "num_frames": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1, "tooltip": "0 = as many as the source camera"}),
    "width": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1, "tooltip": "0 = the source camera's"}),
    "height": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1, "tooltip": "0 = the source camera's"}),
}
AUTO_PARAMS = ("distance",)  # scene-scale preset parameters whose 0 means "the preset's default at the scene's scale"
MAX_JSON_CHARS = 4_000_000  # a keyframes widget: 10000 keys of ~400 characters
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
        field = None if gaussians is None else expect(gaussians, GAUSSIANS, "gaussians")
        scene_depth = None if field is None else field.median_depth(0)
        out, focus_depth = self.build(preset, num_frames, width, height, source_camera=source_camera, scene_depth=scene_depth, **params)
        text = f"{preset}: {len(cam.as_path_list(out))} camera(s) x {out.num_frames} frames at {out.width}x{out.height}"
        lines = [text, focus_note(params.get("focus_depth", cam.PARAMS["focus_depth"].default), focus_depth, scene_depth, field is not None)]
        ui = {**info(*lines), "vid4d_path": [preview.path_payload(out, focus_depth=focus_depth, text=text)]}
        points = None
        runtime.check_interrupted()
        if field is not None:
            points = preview.field_points(field, frame=0)
            ui["vid4d_points"] = [points]
        if source_camera is not None:
            ui["vid4d_source"] = [{**preview.source_payload(camera_paths(source_camera, "source_camera")[0]), "focus_depth": focus_depth}]
        runtime.check_interrupted()
        image = cam.draw_camera_path(out, focus_depth=focus_depth, scene_points=preview.scene_points(points), cancel=runtime.check_interrupted)[None]
        return {"ui": ui, "result": (out, image)}

    @staticmethod
    def build(preset, num_frames, width, height, source_camera=None, scene_depth: float | None = None, **params):
        """The node's inputs → (CameraPath or CameraRig, focus_depth); also serves the browser preview.

        ``params`` are the registry parameters by name (a missing one takes its widget default). The
        values a connected input decides are resolved here, before :func:`camera_path` sees them:
        0 sizes and the intrinsics come from ``source_camera``; ``focus_depth`` 0 (auto) is ``scene_depth``,
        the connected field's median depth (:meth:`GaussianField.median_depth`), or 3 without one.
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
        focus_depth = resolve_focus_depth(values["focus_depth"], scene_depth)
        for name in entry.params:
            value = values[name]
            if name in AUTO_PARAMS and value == cam.presets.AUTO:
                value = cam.presets.scaled_default(preset, name, focus_depth)  # 0 = auto: the default at the scene's scale
            if cam.PARAMS[name].kind == "JSON" and isinstance(value, str):
                if len(value) > MAX_JSON_CHARS:
                    raise ValueError(f"{name}: {len(value)} characters of JSON, more than the {MAX_JSON_CHARS} accepted (one key per frame at most)")
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{name}: not valid JSON ({exc})") from None
                except RecursionError:
                    raise ValueError(f"{name}: the JSON is nested too deeply; expected a list of keyframe objects") from None
            kwargs[name] = value
        kwargs["focus_depth"] = focus_depth
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


def resolve_focus_depth(value: float, scene_depth: float | None) -> float:
    """The focus_depth widget → the depth the moves use: a value > 0 as given; 0 (auto) the scene's median depth
    when the field is connected, else the library default (3)."""
    if value != cam.presets.AUTO:
        return value
    return scene_depth if scene_depth is not None and scene_depth > 0 else cam.presets.DEFAULT_FOCUS_DEPTH


def focus_note(value: float, used: float, scene_depth: float | None, connected: bool) -> str:
    """The info line that says where focus_depth came from."""
    if value != cam.presets.AUTO:
        extra = f"; the scene's median depth is {scene_depth:.3g}" if scene_depth is not None and not 0.5 < value / scene_depth < 2 else ""
        return f"focus_depth {used:g}{extra}"
    if scene_depth is not None:
        return f"focus_depth auto = {used:.3g} (median depth of the gaussians)"
    why = "the gaussians show nothing in front of the camera" if connected else "connect the gaussians input to follow the scene's scale"
    return f"focus_depth auto = {used:g} (default: {why})"


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
    unknown = sorted(set(body) - set(spec) - {"source"})
    if unknown:
        return 400, {"error": f"{unknown[0]!s:.40}: not a CameraPath widget; expected {', '.join(spec)} and optionally source"}
    try:
        # The node's own check of every widget (menus, integers, finite numbers within min/max): the same as a run.
        values = check_inputs(CameraPath, {name: body.get(name, spec[name][1].get("default")) for name in route_fields()})
        sockets = [name for name in cam.get_preset(values["preset"]).params if cam.PARAMS[name].kind in SOCKET_KINDS]
        if sockets:  # the browser posts widgets only; the node's last run shows the path
            raise ValueError(f"{values['preset']} reads {' and '.join(sockets)} from a socket: its path shows after a run")
        source, note = _source_camera(body.get("source"), values)
        # focus_depth auto: the depth the last run resolved (the browser keeps it with the source camera).
        remembered = body["source"].get("focus_depth") if isinstance(body.get("source"), dict) else None
        scene_depth = None if remembered is None else check_finite_number("source.focus_depth", remembered, low=1e-6)
        if values["focus_depth"] == cam.presets.AUTO and scene_depth is None:
            note += f" (focus_depth auto: shown at {cam.presets.DEFAULT_FOCUS_DEPTH:g} until a run with gaussians connected)"
        out, focus_depth = CameraPath.build(**values, source_camera=source, scene_depth=scene_depth)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    except (TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:  # a malformed body must never be a 500
        return 400, {"error": f"malformed request ({type(exc).__name__}: {exc!s:.200})"}
    count = len(cam.as_path_list(out))
    text = f"{values['preset']}: {count} camera(s) x {out.num_frames} frames at {out.width}x{out.height}{note}"
    return 200, preview.path_payload(out, focus_depth=focus_depth, text=text)


def _source_camera(source, values: dict):
    """The source camera the browser remembered from the last run, or a stand-in when sizes are 0."""
    if source:
        if not isinstance(source, dict):
            raise ValueError(f"source: expected {{num_frames, width, height, K}}, got {reprlib.repr(source)}")
        sizes = {}
        for name, (_, opts) in FRAME_WIDGETS.items():
            if name not in source:
                raise ValueError(f"source.{name}: missing; expected {{num_frames, width, height, K}} as the last run sent it")
            sizes[name] = check_positive_int(f"source.{name}", source[name], maximum=opts["max"])
        k5 = source.get("K")
        if not isinstance(k5, list) or len(k5) != 5:
            raise ValueError(f"source.K: expected [fx, s, cx, fy, cy], got {reprlib.repr(k5)}")
        fx, s, cx, fy, cy = (check_finite_number(f"source.K[{i}]", v) for i, v in enumerate(k5))
        if fx <= 0 or fy <= 0:
            raise ValueError(f"source.K: expected focal lengths fx, fy > 0, got {fx:g}, {fy:g}")
        k = torch.tensor([[fx, s, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cam.CameraPath.static(k, sizes["num_frames"], sizes["width"], sizes["height"]), " (source camera of the last run)"
    missing = [n for n in ("num_frames", "width", "height") if not values[n]]
    if not missing:
        return None, ""
    for name in missing:
        values[name] = PREVIEW_SOURCE[name]
    return None, f" ({', '.join(missing)} from the source camera: shown as {PREVIEW_SOURCE['num_frames']} frames at 720x480 until a run)"


ROUTES = {ROUTE: camera_path_request}  # POST routes nodes/__init__.py registers on ComfyUI's server

NODE_CLASS_MAPPINGS = {"CameraPath": CameraPath}
NODE_DISPLAY_NAME_MAPPINGS = {"CameraPath": "Camera Path (Vid4D)"}
