"""docs/ARCHITECTURE.md states what travels between nodes; keep its tables equal to the code."""

import re
from pathlib import Path

from vid4d.nodes import NODE_CLASS_MAPPINGS
from vid4d.nodes.common import SOCKET_TYPES

DOC = (Path(__file__).resolve().parent.parent / "docs" / "ARCHITECTURE.md").read_text()


def test_every_socket_has_a_row():
    rows = DOC.split("## What travels on each edge")[1].split("Every node's outputs")[0]
    for name in SOCKET_TYPES:
        assert f"`{name}`" in rows, f"docs/ARCHITECTURE.md: no row for the socket {name}"


def test_the_outputs_table_is_the_code():
    table = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", DOC.split("Every node's outputs")[1].split("## Validation")[0], re.M))
    assert set(table) == set(NODE_CLASS_MAPPINGS), sorted(set(table) ^ set(NODE_CLASS_MAPPINGS))
    for key, cls in NODE_CLASS_MAPPINGS.items():
        names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
        expected = ", ".join(f"{n} `{t}`" for n, t in zip(names, cls.RETURN_TYPES))
        assert table[key] == expected, f"docs/ARCHITECTURE.md row of {key}: {table[key]!r}, the code says {expected!r}"
