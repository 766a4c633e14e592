"""Run ComfyUI workflow files without ComfyUI: UI format (as saved from the editor) or API format.

This mirrors what the frontend and server do for the parts a Vid4D workflow uses: positional
``widgets_values`` are matched to widget inputs in INPUT_TYPES order (seed widgets carry an extra
"control_after_generate" value, upload combos may carry the upload button's value), Reroute and
PrimitiveNode are resolved away, Note nodes ignored, muted nodes dropped and bypassed nodes passed
through; then only output nodes and what they depend on run, in dependency order, with the same
input validation the server applies (required inputs, combo lists, min/max, link types).
A few core nodes that example workflows use (SaveImage, PreviewImage, LoadImage) have headless
equivalents here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..py.checks import check_image
from . import runtime
from .common import output_path, preview_entry

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
FRONTEND_ONLY = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
SEED_CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
MODE_MUTED, MODE_BYPASSED = 2, 4


class WorkflowError(ValueError):
    """A workflow cannot run: unknown node types, missing or invalid inputs, broken links."""


# ---------------------------------------------------------------- headless core nodes
class _SaveImage:
    OUTPUT_NODE = True
    FUNCTION = "save"
    RETURN_TYPES = ()
    CATEGORY = "image"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}}

    def save(self, images, filename_prefix="ComfyUI"):
        from ..py.video import save_image

        entries = []
        for frame in check_image("images", images):
            path, sub, _ = output_path(filename_prefix, "png")
            save_image(frame, path)
            entries.append(preview_entry(path, sub))
        return {"ui": {"images": entries}}


class _PreviewImage(_SaveImage):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}

    def save(self, images):
        return super().save(images, "preview/preview")


class _LoadImage:
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "MASK")
    CATEGORY = "image"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ([], {"image_upload": True})}}

    def load(self, image):
        from ..py.video import read_video

        clip = read_video(runtime.resolve_input_file(image), max_frames=0)
        frames = clip.frames
        return (frames, torch.zeros(frames.shape[:3]))


CORE_NODES: dict[str, type] = {"SaveImage": _SaveImage, "PreviewImage": _PreviewImage, "LoadImage": _LoadImage}
KNOWN_CORE_TYPES = tuple(sorted(set(FRONTEND_ONLY) | set(CORE_NODES)))
# Core nodes that need ComfyUI's model machinery (the Wan workflows' loaders, conditioning, samplers, VAE):
# headless, they and everything downstream of them are skipped, and the rest of the workflow runs.
COMFYUI_ONLY_TYPES = frozenset({
    "UNETLoader", "CLIPLoader", "VAELoader", "CLIPVisionLoader", "CLIPVisionEncode", "CLIPTextEncode", "ConditioningZeroOut",
    "ModelSamplingSD3", "LoraLoader", "LoraLoaderModelOnly", "WanVaceToVideo", "WanFunControlToVideo", "Wan22FunControlToVideo",
    "WanImageToVideo", "WanFunInpaintToVideo", "KSampler", "KSamplerAdvanced", "TrimVideoLatent", "VAEEncode", "VAEDecode",
    "VAEDecodeTiled", "SetLatentNoiseMask", "CreateVideo", "SaveVideo", "SaveAnimatedWEBP",
})


# ---------------------------------------------------------------- input specs
@dataclass
class InputSpec:
    name: str
    type: str  # socket type, or "COMBO"
    options: dict
    required: bool
    choices: list | None = None

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.options.get("forceInput", False)

    @property
    def has_seed_control(self) -> bool:
        return self.type == "INT" and (self.options.get("control_after_generate") or self.name in ("seed", "noise_seed"))

    @property
    def has_upload_button(self) -> bool:
        return any(self.options.get(k) for k in ("image_upload", "video_upload", "animated_image_upload"))


def input_specs(cls: type) -> list[InputSpec]:
    """The inputs of a node class in widget order (required, then optional)."""
    types = cls.INPUT_TYPES()
    specs = []
    for section in ("required", "optional"):
        for name, spec in (types.get(section) or {}).items():
            kind, opts = (spec[0], spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
            if isinstance(kind, (list, tuple)):
                specs.append(InputSpec(name, "COMBO", opts, section == "required", list(kind)))
            elif kind == "COMBO":
                specs.append(InputSpec(name, "COMBO", opts, section == "required", list(opts.get("options", []))))
            else:
                specs.append(InputSpec(name, kind, opts, section == "required"))
    return specs


# ---------------------------------------------------------------- formats
def load_workflow(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"workflow file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if not isinstance(data, dict):
        raise WorkflowError(f"{path}: expected a JSON object (a ComfyUI workflow)")
    return data


def is_ui_format(workflow: dict) -> bool:
    return isinstance(workflow.get("nodes"), list)


def _links(workflow: dict) -> dict[int, tuple[int, int, int, int, str]]:
    """link id → (src node, src slot, dst node, dst slot, type); both list and object link forms."""
    out = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            lid, src, ss, dst, ds, t = (link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"], link.get("type", "*"))
        else:
            lid, src, ss, dst, ds, t = link[:6]
        out[int(lid)] = (int(src), int(ss), int(dst), int(ds), str(t))
    return out


def ui_to_api(workflow: dict, classes: dict[str, type]) -> dict[str, dict]:
    """A UI-format workflow → API format ``{id: {"class_type", "inputs"}}`` (what the Run button sends)."""
    if workflow.get("definitions", {}).get("subgraphs"):
        raise WorkflowError("workflows with subgraphs are not supported by the headless runner; unpack the subgraph in ComfyUI first")
    nodes = {int(n["id"]): n for n in workflow["nodes"]}
    links = _links(workflow)
    _check_types((n.get("type") for n in nodes.values() if n.get("mode", 0) != MODE_MUTED), classes)

    def source(link_id) -> tuple[str, Any] | None:
        """Follow a link back through Reroutes and bypassed nodes: ("link", [id, slot]) or ("value", v)."""
        seen = set()
        while link_id is not None:
            if link_id in seen or link_id not in links:
                raise WorkflowError(f"broken link {link_id} in the workflow")
            seen.add(link_id)
            src, slot, _, _, ltype = links[link_id]
            node = nodes.get(src)
            if node is None:
                raise WorkflowError(f"link {link_id} starts at node {src}, which is not in the workflow")
            if node.get("mode", 0) == MODE_MUTED:
                return None
            if node["type"] == "Reroute":
                link_id = (node.get("inputs") or [{}])[0].get("link")
                continue
            if node["type"] == "PrimitiveNode":
                return ("value", (node.get("widgets_values") or [None])[0])
            if node.get("mode", 0) == MODE_BYPASSED:
                # Like the frontend: an output passes through the first input of the same type.
                out_type = (node.get("outputs") or [{}] * (slot + 1))[slot].get("type", ltype)
                match = [i for i in node.get("inputs") or [] if i.get("type") == out_type and i.get("link") is not None]
                if not match:
                    return None
                link_id = match[0]["link"]
                continue
            return ("link", [str(src), slot])
        return None

    prompt = {}
    for nid, node in nodes.items():
        ntype = node["type"]
        if ntype in FRONTEND_ONLY or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
            continue
        specs = input_specs(classes[ntype])
        inputs = _widget_values(nid, ntype, specs, node.get("widgets_values"))
        by_name = {s.name: s for s in specs}
        for slot in node.get("inputs") or []:
            name = slot.get("widget", {}).get("name") or slot.get("name")
            if slot.get("link") is None or name not in by_name:
                continue
            resolved = source(slot["link"])
            if resolved is None:
                inputs.pop(name, None)
            else:
                inputs[name] = resolved[1]
        prompt[str(nid)] = {"class_type": ntype, "inputs": inputs, "_meta": {"title": node.get("title") or ntype}}
    return prompt


def _widget_values(nid, ntype: str, specs: list[InputSpec], values) -> dict:
    if values is None:
        return {}
    if isinstance(values, dict):
        return {s.name: values[s.name] for s in specs if s.is_widget and s.name in values}
    out, i = {}, 0
    values = list(values)
    for spec in specs:
        if not spec.is_widget:
            continue
        if i >= len(values):
            # Saved before the node grew this widget (new ones go at the end): like the frontend, it keeps its default.
            if "default" in spec.options:
                out[spec.name] = spec.options["default"]
            continue
        out[spec.name] = values[i]
        i += 1
        if spec.has_seed_control and i < len(values) and values[i] in SEED_CONTROL_VALUES:
            i += 1
        if spec.has_upload_button and i < len(values) and _is_upload_value(values[i], specs, spec):
            i += 1
    return out


def _is_upload_value(value, specs: list[InputSpec], upload: InputSpec) -> bool:
    """Whether the value after an upload combo is the upload button's, not the next widget's.

    Frontend 1.2x puts the button after all widgets (its value, if any, is trailing and ignored);
    older frontends put it right after the combo, saving "image" there.
    """
    if value is None:
        return True
    widgets = [s for s in specs if s.is_widget]
    following = widgets[widgets.index(upload) + 1] if widgets.index(upload) + 1 < len(widgets) else None
    return value in ("image", "video") and (following is None or following.type in ("INT", "FLOAT", "BOOLEAN"))


def _check_types(types, classes: dict[str, type]) -> None:
    unknown = sorted({t for t in types if t not in classes and t not in FRONTEND_ONLY})
    if unknown:
        raise WorkflowError(
            f"unknown node type(s): {', '.join(unknown)}. This runner knows the Vid4D nodes and the core nodes {', '.join(KNOWN_CORE_TYPES)}; "
            "install the pack that provides the others and run the workflow in ComfyUI."
        )


# ---------------------------------------------------------------- validation and execution
def _coerce(spec: InputSpec, value, where: str):
    if spec.type == "INT":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise WorkflowError(f"{where}: expected an integer, got {value!r}")
        value = int(value)
    elif spec.type == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WorkflowError(f"{where}: expected a number, got {value!r}")
        value = float(value)
    elif spec.type == "BOOLEAN":
        if not isinstance(value, bool):
            raise WorkflowError(f"{where}: expected true or false, got {value!r}")
    elif spec.type == "STRING":
        if not isinstance(value, str):
            raise WorkflowError(f"{where}: expected a string, got {value!r}")
    if spec.type in ("INT", "FLOAT"):
        lo, hi = spec.options.get("min"), spec.options.get("max")
        if lo is not None and value < lo:
            raise WorkflowError(f"{where}: value {value} is smaller than the minimum {lo}")
        if hi is not None and value > hi:
            raise WorkflowError(f"{where}: value {value} is bigger than the maximum {hi}")
    return value


def parse_override(text: str) -> tuple[str, str, str]:
    """``NODE_ID.INPUT=VALUE`` → (node id, input, raw value)."""
    target, sep, raw = text.partition("=")
    nid, dot, name = target.partition(".")
    if not sep or not dot or not nid or not name:
        raise WorkflowError(f"--set {text!r}: expected NODE_ID.INPUT=VALUE, e.g. 3.num_frames=8")
    return nid.strip(), name.strip(), raw


def apply_overrides(prompt: dict, overrides: list[str], classes: dict[str, type]) -> None:
    for text in overrides:
        nid, name, raw = parse_override(text)
        if nid not in prompt:
            raise WorkflowError(f"--set {text!r}: no node {nid} in the workflow (nodes: {', '.join(sorted(prompt, key=_id_key))})")
        specs = {s.name: s for s in input_specs(classes[prompt[nid]["class_type"]])}
        if name not in specs:
            raise WorkflowError(f"--set {text!r}: node {nid} ({prompt[nid]['class_type']}) has no input {name!r}; inputs: {', '.join(specs)}")
        spec = specs[name]
        if spec.type == "BOOLEAN":
            value: Any = raw.strip().lower() in ("1", "true", "yes", "on")
        elif spec.type in ("INT", "FLOAT"):
            try:
                value = float(raw) if spec.type == "FLOAT" else int(float(raw))
            except ValueError:
                raise WorkflowError(f"--set {text!r}: {raw!r} is not a number") from None
        else:
            value = raw
        prompt[nid]["inputs"][name] = value


# The file-loading nodes ``--input`` points at, and the input that takes the path.
INPUT_NODES = {"Vid4DLoadVideo": "path", "LoadImage": "image"}


def input_nodes(prompt: dict) -> list[str]:
    """Ids of the nodes that read the workflow's input file (what ``--input`` replaces)."""
    return [nid for nid, node in prompt.items() if node["class_type"] in INPUT_NODES]


def set_input_file(prompt: dict, path: Path) -> list[str]:
    """Point every file-loading node at ``path`` (for ``--input``); returns the node ids changed."""
    changed = input_nodes(prompt)
    if not changed:
        raise WorkflowError("--input was given but the workflow has no Vid4DLoadVideo or LoadImage node to read it")
    for nid in changed:
        prompt[nid]["inputs"][INPUT_NODES[prompt[nid]["class_type"]]] = str(path)
    return changed


def _id_key(nid: str):
    return (0, int(nid)) if nid.isdigit() else (1, nid)


def validate(prompt: dict, classes: dict[str, type]) -> list[str]:
    """Check a prompt like the server does; returns the ids of the nodes that will run, in order."""
    _check_types((n.get("class_type") for n in prompt.values()), classes)
    problems = []
    for nid in sorted(prompt, key=_id_key):
        node = prompt[nid]
        cls = classes[node["class_type"]]
        where = f"node {nid} ({node['class_type']})"
        for spec in input_specs(cls):
            value = node["inputs"].get(spec.name)
            if value is None:
                if spec.required:
                    problems.append(f"{where}: missing required input '{spec.name}' ({spec.type})")
                continue
            if _is_link(value):
                src = str(value[0])
                if src not in prompt:
                    problems.append(f"{where}: input '{spec.name}' is linked to node {src}, which is not in the workflow")
                    continue
                src_cls = classes[prompt[src]["class_type"]]
                slot = int(value[1])
                if slot >= len(src_cls.RETURN_TYPES):
                    problems.append(f"{where}: input '{spec.name}' uses output {slot} of node {src}, which has {len(src_cls.RETURN_TYPES)} outputs")
                    continue
                out_type = src_cls.RETURN_TYPES[slot]
                want = spec.type if spec.type != "COMBO" else out_type
                if "*" not in (want, out_type) and out_type != want:
                    problems.append(f"{where}: input '{spec.name}' expects {want} but node {src} output {slot} is {out_type}")
                continue
            try:
                node["inputs"][spec.name] = _coerce(spec, value, f"{where}: input '{spec.name}'")
                if spec.type == "COMBO" and spec.choices and value not in spec.choices and not hasattr(cls, "VALIDATE_INPUTS"):
                    problems.append(f"{where}: input '{spec.name}' = {value!r} is not one of {spec.choices}")
            except WorkflowError as exc:
                problems.append(str(exc))
    if problems:
        raise WorkflowError("the workflow cannot run:\n  " + "\n  ".join(problems))

    outputs = [nid for nid in prompt if getattr(classes[prompt[nid]["class_type"]], "OUTPUT_NODE", False)]
    if not outputs:
        raise WorkflowError("the workflow has no output node (e.g. Vid4DSaveVideo, SaveImage), so nothing would run")
    order, state = [], {}

    def visit(nid, chain):
        if state.get(nid) == "done":
            return
        if state.get(nid) == "active":
            raise WorkflowError(f"the workflow has a cycle through nodes {' -> '.join(chain + [nid])}")
        state[nid] = "active"
        for value in prompt[nid]["inputs"].values():
            if _is_link(value):
                visit(str(value[0]), chain + [nid])
        state[nid] = "done"
        order.append(nid)

    for nid in sorted(outputs, key=_id_key):
        visit(nid, [])
    return order


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and isinstance(value[1], int)


@dataclass
class RunResult:
    outputs: dict[str, dict] = field(default_factory=dict)  # node id → its "ui" dict
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # ids of nodes that need ComfyUI (and what depends on them)

    def files(self) -> list[Path]:
        """Every file the output nodes reported, as absolute paths."""
        root = runtime.output_directory()
        found = []
        for ui in self.outputs.values():
            for entry in ui.get("images", []) if isinstance(ui, dict) else []:
                found.append(root / entry.get("subfolder", "") / entry["filename"])
        return found


def execute(
    prompt: dict,
    classes: dict[str, type],
    log: Callable[[str], None] = print,
    on_node: Callable[[str, str, int, int], None] | None = None,
) -> RunResult:
    """Validate and run an API-format prompt; returns the output nodes' UI results.

    ``on_node(node_id, class_type, index, count)`` is called as each node starts (batch progress).
    """
    order = validate(prompt, classes)
    results: dict[str, tuple] = {}
    run = RunResult()
    for index, nid in enumerate(order):
        node = prompt[nid]
        if on_node is not None:
            on_node(nid, node["class_type"], index, len(order))
        cls = classes[node["class_type"]]
        kwargs = {name: (results[str(v[0])][int(v[1])] if _is_link(v) else v) for name, v in node["inputs"].items()}
        accepted = {s.name for s in input_specs(cls)}
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        log(f"[{nid}] {node['class_type']}")
        start = time.perf_counter()
        try:
            out = getattr(cls(), cls.FUNCTION)(**kwargs)
        except runtime.Interrupted:
            raise
        except Exception as exc:
            # Keep the exception type (callers and tests match on it) but say which node failed.
            exc.args = (f"node {nid} ({node['class_type']}): {exc}",)
            raise
        run.timings[nid] = time.perf_counter() - start
        ui = None
        if isinstance(out, dict):
            ui = out.get("ui")
            out = out.get("result", ())
        results[nid] = tuple(out or ())
        if ui is not None:
            run.outputs[nid] = ui
            for text in ui.get("vid4d_info", []):
                for line in str(text).splitlines():
                    log(f"      {line}")
        runtime.check_interrupted()
    return run


def run_file(
    path,
    classes: dict[str, type],
    *,
    input_file=None,
    overrides: list[str] = (),
    log: Callable[[str], None] = print,
    on_node: Callable[[str, str, int, int], None] | None = None,
) -> RunResult:
    """Load a workflow file (UI or API format), apply ``--input``/``--set`` and run it."""
    prompt, all_classes, skipped = load_prompt(path, classes, input_file=input_file, overrides=overrides)
    if skipped:
        kinds = sorted(set(skipped.values()))
        log(f"skipped {len(skipped)} node(s) that run only in ComfyUI ({', '.join(kinds)}) and what depends on them; running the rest")
    result = execute(prompt, all_classes, log, on_node)
    result.skipped = sorted(skipped, key=_id_key)
    return result


def load_prompt(path, classes: dict[str, type], *, input_file=None, overrides: list[str] = ()) -> tuple[dict, dict[str, type], dict[str, str]]:
    """A workflow file (UI or API format) as an API prompt with ``--input``/``--set`` applied, the
    node classes it runs with (``classes`` plus the headless core nodes), and ``{node id: type}`` of the
    nodes left out because they run only in ComfyUI (:func:`without_comfyui_nodes`)."""
    workflow = load_workflow(path)
    all_classes = {**CORE_NODES, **classes}
    workflow, skipped = without_comfyui_nodes(workflow)
    prompt = ui_to_api(workflow, all_classes) if is_ui_format(workflow) else _api(workflow)
    if input_file is not None:
        input_file = Path(input_file)
        if not input_file.exists():
            raise FileNotFoundError(f"--input file not found: {input_file}")
        set_input_file(prompt, input_file.resolve())
    apply_overrides(prompt, list(overrides), all_classes)
    return prompt, all_classes, skipped


def without_comfyui_nodes(workflow: dict) -> tuple[dict, dict[str, str]]:
    """The workflow without the nodes of :data:`COMFYUI_ONLY_TYPES` and everything downstream of them (UI
    format: muted; API format: removed), and ``{node id: type}`` of what was taken out."""
    ui = is_ui_format(workflow)
    if ui:
        types = {str(n["id"]): n.get("type") for n in workflow["nodes"]}
        edges = [(str(src), str(dst)) for src, _, dst, _, _ in _links(workflow).values()]
    else:
        types = {str(k): n.get("class_type") for k, n in workflow.items() if isinstance(n, dict)}
        edges = [(str(v[0]), str(k)) for k, n in workflow.items() if isinstance(n, dict) for v in (n.get("inputs") or {}).values() if _is_link(v)]
    drop = {nid for nid, t in types.items() if t in COMFYUI_ONLY_TYPES}
    grew = True
    while grew:
        more = {dst for src, dst in edges if src in drop and dst not in drop}
        grew = bool(more)
        drop |= more
    if not drop:
        return workflow, {}
    if ui:
        nodes = [{**n, "mode": MODE_MUTED} if str(n["id"]) in drop else n for n in workflow["nodes"]]
        out = {**workflow, "nodes": nodes}
    else:
        out = {k: v for k, v in workflow.items() if str(k) not in drop}
    return out, {nid: types[nid] for nid in drop}


def _api(workflow: dict) -> dict:
    prompt = {}
    for nid, node in workflow.items():
        if not isinstance(node, dict) or "class_type" not in node:
            raise WorkflowError(f"node {nid}: an API-format node needs 'class_type' and 'inputs'")
        prompt[str(nid)] = {"class_type": node["class_type"], "inputs": dict(node.get("inputs") or {})}
    return prompt


# ---------------------------------------------------------------- authoring
def api_to_ui(prompt: dict, classes: dict[str, type], titles: dict[str, str] | None = None) -> dict:
    """An API-format prompt → a UI-format workflow laid out left to right by dependency depth.

    For writing example workflows: load the result in ComfyUI to check and polish the layout.
    """
    all_classes = {**CORE_NODES, **classes}
    prompt = _api(prompt)
    _check_types((n["class_type"] for n in prompt.values()), all_classes)
    depth: dict[str, int] = {}

    def level(nid):
        if nid not in depth:
            deps = [str(v[0]) for v in prompt[nid]["inputs"].values() if _is_link(v)]
            depth[nid] = 1 + max((level(d) for d in deps), default=-1)
        return depth[nid]

    for nid in prompt:
        level(nid)
    rows: dict[int, int] = {}
    nodes, links = [], []
    outputs: dict[tuple[str, int], list[int]] = {}
    for nid in sorted(prompt, key=lambda n: (depth[n], _id_key(n))):
        node = prompt[nid]
        cls = all_classes[node["class_type"]]
        specs = input_specs(cls)
        widgets, ui_inputs = [], []
        for spec in specs:
            value = node["inputs"].get(spec.name, spec.options.get("default"))
            if spec.is_widget:
                if value is None and spec.type == "COMBO":
                    value = spec.choices[0] if spec.choices else ""
                widgets.append(spec.options.get("default", "") if _is_link(value) else value)
                if spec.has_seed_control:
                    widgets.append("fixed")
            if _is_link(node["inputs"].get(spec.name)):
                src, slot = str(node["inputs"][spec.name][0]), int(node["inputs"][spec.name][1])
                link_id = len(links) + 1
                src_type = all_classes[prompt[src]["class_type"]].RETURN_TYPES[slot]
                links.append([link_id, int(src), slot, int(nid), len(ui_inputs), src_type])
                outputs.setdefault((src, slot), []).append(link_id)
                entry = {"name": spec.name, "type": src_type if spec.type == "COMBO" else spec.type, "link": link_id}
                if spec.is_widget:
                    entry["widget"] = {"name": spec.name}
                ui_inputs.append(entry)
            elif not spec.is_widget:
                ui_inputs.append({"name": spec.name, "type": spec.type, "link": None})
        if any(s.has_upload_button for s in specs):
            widgets.append("image")  # the upload button's value, last (as frontend 1.2x saves it)
        row = rows.get(depth[nid], 0)
        height = 60 + 26 * (len(widgets) + max(len(ui_inputs), len(cls.RETURN_TYPES)))
        rows[depth[nid]] = row + height + 40
        nodes.append(
            {
                "id": int(nid),
                "type": node["class_type"],
                "pos": [60 + 380 * depth[nid], 60 + row],
                "size": [320, height],
                "flags": {},
                "order": len(nodes),
                "mode": 0,
                "inputs": ui_inputs,
                "outputs": [],
                "properties": {"Node name for S&R": node["class_type"]},
                "widgets_values": widgets,
                **({"title": titles[nid]} if titles and nid in titles else {}),
            }
        )
    for ui_node in nodes:
        cls = all_classes[ui_node["type"]]
        names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
        ui_node["outputs"] = [
            {"name": names[i], "type": t, "links": outputs.get((str(ui_node["id"]), i), []), "slot_index": i}
            for i, t in enumerate(cls.RETURN_TYPES)
        ]
    return {
        "last_node_id": max(int(n) for n in prompt),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }
