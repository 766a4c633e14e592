"""Model loaders of a shipped UI-format workflow, read as the frontend reads them (no pytest: the real-ComfyUI check
imports this in the harness's Python too)."""

import inspect
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDGET_TYPES = ("INT", "FLOAT", "BOOLEAN", "STRING")


def saved_loaders(workflow: str, mappings) -> list[tuple[str, dict, dict]]:
    """(node type, INPUT_TYPES, {input: saved value}) of each model loader in a UI-format workflow; widget values are
    matched to the node's widget inputs by position, as the frontend does (inputs added later keep their defaults)."""
    graph = json.loads((ROOT / "workflows" / workflow).read_text())
    found = []
    for node in graph["nodes"]:
        if not node["type"].endswith("ModelLoader"):
            continue
        spec = mappings[node["type"]].INPUT_TYPES()
        widgets = [name for section in ("required", "optional") for name, s in spec.get(section, {}).items() if isinstance(s[0], list) or s[0] in WIDGET_TYPES]
        values = dict(zip(widgets, node.get("widgets_values", [])))
        for section in ("required", "optional"):
            for name, s in spec.get(section, {}).items():
                if name in widgets and name not in values and "default" in (s[1] if len(s) > 1 else {}):
                    values[name] = s[1]["default"]
        found.append((node["type"], spec, values))
    return found


def check_workflow(workflow: str, mappings) -> dict:
    """For each loader: the dropdown lists and whether the saved values are choices and pass VALIDATE_INPUTS."""
    report = {}
    for node_type, spec, values in saved_loaders(workflow, mappings):
        cls = mappings[node_type]
        combos = {name: list(s[0]) for section in ("required", "optional") for name, s in spec.get(section, {}).items() if isinstance(s[0], list)}
        not_choices = {name: values[name] for name in combos if name in values and values[name] not in combos[name]}
        wanted = inspect.signature(cls.VALIDATE_INPUTS).parameters
        verdict = cls.VALIDATE_INPUTS(**{k: v for k, v in values.items() if k in wanted})
        report[node_type] = {"choices": combos, "saved": values, "not_choices": not_choices, "validate": verdict}
    return report
