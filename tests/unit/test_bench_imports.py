"""bench/ uses only public names of usetix: no ``_private`` import, no ``._private`` attribute.

The benchmark measures the app as it is; reaching into our private state would tie it to
internals that change without notice. The files are parsed, not imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _ours(module: str | None) -> bool:
    return module is not None and (module == "usetix" or module.startswith("usetix."))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str, filename: str = "<source>") -> list[str]:
    """Each import of a ``_`` name from usetix, and each ``_`` attribute read on a name bound
    by an import from usetix (a module or anything in one), as "file:line: what"."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    bound: set[str] = set()  # names the file's usetix imports bind
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name):
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{filename}:{node.lineno}: import {alias.name}")
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _ours(node.module):
            if any(_private(part) for part in node.module.split(".")):
                found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{filename}:{node.lineno}: from {node.module} import {alias.name}")
                bound.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute | ast.Call | ast.Subscript):
                base = base.func if isinstance(base, ast.Call) else base.value
            if isinstance(base, ast.Name) and base.id in bound:
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return sorted(found)


def test_bench_uses_only_public_names_of_usetix():
    sources = sorted(BENCH.glob("*.py"))
    assert sources, f"no Python files under {BENCH}"
    found = [use for path in sources for use in private_uses(path.read_text(), f"bench/{path.name}")]
    assert found == []


@pytest.mark.parametrize("source", [
    "from usetix.database.prepared import _Compiled",
    "from usetix import _version as v",
    "from usetix._internal import thing",
    "import usetix._internal",
    "from usetix.database import connection\nconnection._KEY",
    "import usetix.database.connection\nusetix.database.connection._discard",
    "import usetix.database.connection as c\nc._KEY",
    "from usetix.extensions import db\ndb.engine._has_events",
    "from usetix.blueprints.api.lists import EVENTS\nEVENTS.statements[0]._compiled",
    "from usetix import create_app\ncreate_app()._private",
])
def test_the_check_sees_a_private_use(source):
    assert len(private_uses(source)) == 1


@pytest.mark.parametrize("source", [
    "from usetix import create_app\nfrom usetix.extensions import db",
    "import usetix\nusetix.__name__",
    "from sqlalchemy import _private_thing\nimport os\nos._exit",  # not ours
    "from .inprocess import _call",  # bench's own modules
    "def _helper(): pass\n_helper()",
    "from usetix.extensions import db\nother = object()\nother._x",
])
def test_the_check_leaves_public_and_foreign_names_alone(source):
    assert private_uses(source) == []
