"""A non-editable install (`pip install .`, the Registry's wheel) must carry every subpackage: setuptools'
explicit `packages` list does not pick new folders up by itself."""

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import pytest

    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"vid4d"} | {"vid4d." + ".".join(p.parent.relative_to(ROOT).parts) for room in ("py", "models", "nodes") for p in (ROOT / room).rglob("__init__.py")}
    assert found <= listed, f"pyproject.toml [tool.setuptools] packages lacks {sorted(found - listed)}"


def test_the_native_sources_are_package_data():
    # vid4d.py.native compiles py/csrc/*.c at run time, so a wheel without them would fall back silently
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    sources = sorted(p.relative_to(ROOT / "py") for p in (ROOT / "py" / "csrc").glob("*"))
    assert sources and all(any(s.match(glob) for glob in data.get("vid4d.py", [])) for s in sources), (sources, data)
