"""Imports inside ``valan.envs`` flow one way: graphs, data and geometry -> metrics -> rewards -> environments."""

from __future__ import annotations

import ast
from pathlib import Path

import valan.envs

ENVS = Path(valan.envs.__file__).parent
LAYER = {"metrics": 1, "rewards": 2, "batched": 2, "env": 3, "__init__": 4}
"""By file name; every other module (graph, dataset, geometry, navigation, views, predictions) is layer 0."""


def _modules() -> dict[str, tuple[int, set[str]]]:
    """Each ``valan.envs`` module's layer and the ``valan.envs`` modules it imports (function-level included)."""
    paths = {}
    for path in ENVS.rglob("*.py"):
        parts = ("valan",) + path.relative_to(ENVS.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if path.stem == "__init__" else parts)] = path
    out = {}
    for name, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        out[name] = LAYER.get(path.stem, 0), {m for m in found if m in paths and m != name}
    return out


def test_no_module_imports_a_later_layer():
    modules = _modules()
    assert {"valan.envs.r2r.metrics", "valan.envs.streetview.env", "valan.envs.batched"} <= set(modules)
    wrong = [f"{m} -> {d}" for m, (layer, deps) in modules.items() for d in deps if modules[d][0] > layer]
    assert wrong == []


def test_no_import_cycles():
    imports = {m: deps for m, (_, deps) in _modules().items()}

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for d in imports[todo.pop()] - seen:
                seen.add(d)
                todo.append(d)
        return seen

    assert [m for m in imports if m in reaches(m)] == []
