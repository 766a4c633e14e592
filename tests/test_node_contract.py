"""Every registered node satisfies ComfyUI's V1 contract (checked generically: new nodes are covered)."""

import inspect

import pytest

import vid4d
from vid4d.nodes.common import CORE_TYPES, SOCKET_TYPES

MISSION_IDS = {"DenseTrack3D", "LiftGaussians", "CameraPath", "SpectralMotion", "SoftmaxSplat", "GSDiTSampler", "PointRegularizer", "VideoDepth", "RenderGaussians", "EditGaussians"}
WIDGETS = ("INT", "FLOAT", "STRING", "BOOLEAN")
NODES = sorted(vid4d.NODE_CLASS_MAPPINGS.items())


def _inputs(cls):
    spec = cls.INPUT_TYPES()
    assert isinstance(spec, dict) and "required" in spec, "INPUT_TYPES must return a dict with 'required'"
    assert set(spec) <= {"required", "optional", "hidden"}
    for section in ("required", "optional"):
        for name, value in (spec.get(section) or {}).items():
            yield section, name, value


@pytest.mark.parametrize("node_id,cls", NODES, ids=[n for n, _ in NODES])
def test_v1_contract(node_id, cls):
    assert node_id in MISSION_IDS or node_id.startswith("Vid4D"), "further node ids need the Vid4D prefix"
    assert node_id in vid4d.NODE_DISPLAY_NAME_MAPPINGS
    assert cls.CATEGORY.startswith("Vid4D/")
    assert isinstance(getattr(cls, "DESCRIPTION", None), str) and cls.DESCRIPTION
    returns = cls.RETURN_TYPES
    assert isinstance(returns, tuple)
    names = getattr(cls, "RETURN_NAMES", returns)
    assert len(names) == len(returns) and len(set(names)) == len(names)
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        assert len(cls.OUTPUT_TOOLTIPS) == len(returns)
    for t in returns:
        assert t in CORE_TYPES or t in SOCKET_TYPES, f"output type {t} is neither core nor a VID4D_ socket"
    if not returns:
        assert getattr(cls, "OUTPUT_NODE", False), "a node without outputs must be an OUTPUT_NODE"

    fn = getattr(cls, cls.FUNCTION)
    params = inspect.signature(fn).parameters
    has_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    declared = set()
    for section, name, spec in _inputs(cls):
        declared.add(name)
        assert isinstance(spec, tuple) and 1 <= len(spec) <= 2, f"{name}: spec must be (type,) or (type, options)"
        kind, opts = spec[0], (spec[1] if len(spec) == 2 else {})
        assert isinstance(opts, dict)
        assert has_kwargs or name in params, f"{cls.FUNCTION}() does not accept input '{name}'"
        if section == "optional" and name in params:
            assert params[name].default is not inspect.Parameter.empty, f"optional input '{name}' needs a default in {cls.FUNCTION}()"
        if isinstance(kind, list):
            if "default" in opts:
                assert opts["default"] in kind
            continue
        assert kind in CORE_TYPES or kind in SOCKET_TYPES, f"input '{name}' has unknown type {kind}"
        if kind in ("INT", "FLOAT"):
            assert "default" in opts and "min" in opts and "max" in opts, f"{name}: numeric widgets need default/min/max"
            assert opts["min"] <= opts["default"] <= opts["max"]
        if kind == "FLOAT":
            assert "step" in opts, f"{name}: FLOAT widgets need an explicit step (the frontend rounds to 0.1 otherwise)"
    required_params = {n for n, p in params.items() if p.default is inspect.Parameter.empty and n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    assert required_params <= declared, f"{cls.FUNCTION}() requires {required_params - declared} which are not inputs"


def test_custom_socket_names_are_prefixed():
    assert all(name.startswith("VID4D_") for name in SOCKET_TYPES)


def test_display_names_cover_exactly_the_nodes():
    assert set(vid4d.NODE_DISPLAY_NAME_MAPPINGS) == set(vid4d.NODE_CLASS_MAPPINGS)
