"""The package's imports flow one way: foundations -> envs -> agents -> learning -> problems -> distributed -> commands.

Every import counts, also those inside functions (they run too); only ``if TYPE_CHECKING:`` blocks are exempt.
Within a layer modules may import each other, but no two modules may import each other, directly or round a
longer cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"valan": ROOT / "valan", "valan.envs": ROOT / "envs", "valan.agents": ROOT / "agents"}

# Order of the layers; a module may import its own layer and those before it.
LAYERS = [
    ("foundations", ("valan", "valan.errors", "valan.io", "valan.text", "valan.config", "valan.checkpoint",
                     "valan.features", "valan.data", "valan.configs")),
    ("envs", ("valan.envs",)),
    ("agents", ("valan.agents",)),
    ("learning", ("valan.learning",)),
    ("problems", ("valan.problems",)),
    ("distributed", ("valan.distributed",)),
    ("commands", ("valan.commands", "valan.cli")),
]


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix that names ``module`` or a package above it."""
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def modules() -> dict[str, Path]:
    """Module name -> file of every module of the installed distribution (envs/ and agents/ map into valan)."""
    out = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            if package == "valan" and any(path.is_relative_to(f) for f in SOURCES.values() if f != folder):
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The valan modules ``module`` imports (``from pkg import name`` counts ``pkg.name`` when that is a module)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("valan"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("valan"):
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if candidate in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {module: imports_of(module, path, known) for module, path in found.items()}


def test_imports_flow_one_way():
    against = []
    for module, imported in sorted(import_graph().items()):
        for target in sorted(imported):
            if layer_of(target) > layer_of(module):
                against.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                               f"({LAYERS[layer_of(target)][0]})")
    assert not against, "imports against the layer order:\n" + "\n".join(against)


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every import cycle a depth-first walk of ``graph`` meets, as ``a -> b -> a`` strings."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []
    cycles: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target in graph and target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# Inside valan.envs, by file name: graphs, data and geometry -> metrics -> rewards and the batched base -> envs.
ENVS_ORDER = {"metrics": 1, "rewards": 2, "batched": 2, "env": 3, "__init__": 4}
"""Every other module of valan.envs (graph, dataset, geometry, navigation, views, predictions) is at 0."""


def test_envs_modules_flow_from_graphs_to_environments():
    found = modules()
    graph = {m: deps for m, deps in import_graph().items() if m.startswith("valan.envs")}
    assert {"valan.envs.r2r.metrics", "valan.envs.streetview.env", "valan.envs.batched"} <= set(graph)

    def rank(module: str) -> int:
        return ENVS_ORDER.get(found[module].stem, 0)

    wrong = [f"{m} -> {d}" for m, deps in graph.items() for d in deps if d in graph and rank(d) > rank(m)]
    assert wrong == []


def test_the_layer_table_catches_an_import_against_the_order(tmp_path):
    """The check itself: a foundation module importing a problem is reported."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from valan.problems import get_problem\n")
    imported = imports_of("valan.text", path, {"valan.problems"})
    assert imported == {"valan.problems"} and layer_of("valan.problems") > layer_of("valan.text")
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


HEAVY = ("torch", "numpy", "scipy", "gymnasium", "ray", "PIL", "valan.envs", "valan.agents", "valan.learning",
         "valan.problems", "valan.distributed", "valan.features.extraction", "valan.features.stores")
"""What importing the subcommands, and building the parser for ``valan --help`` or ``valan evaluate r2r``, must not
import: a subcommand imports what it uses inside ``run`` (or ``add_arguments``, which only runs for its own
command line)."""

_PARSER_PROBE = """
import importlib, importlib.util, json, sys
heavy = tuple(sys.argv[1:])
def loaded():
    return {m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy)}
import valan.cli
first = {}
for module in sorted(set(valan.cli.COMMANDS.values())):
    name = "valan.commands." + module.split(":")[0]
    if importlib.util.find_spec(name) is None:  # build_parser skips it too
        continue
    before = loaded()
    importlib.import_module(name)
    for m in loaded() - before:
        first.setdefault(m, module)
for argv in ([], ["--help"], ["evaluate", "r2r", "--json"]):
    before = loaded()
    valan.cli.build_parser(argv)
    for m in loaded() - before:
        first.setdefault(m, "build_parser(%s)" % argv)
print(json.dumps(first))
"""


def test_building_the_cli_parser_imports_no_heavy_or_task_module():
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PARSER_PROBE, *HEAVY], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    first = json.loads(out.stdout)
    culprits = sorted({(first[m], m.split(".")[0] if not m.startswith("valan.") else ".".join(m.split(".")[:2]))
                       for m in first})
    assert not first, "building the parser imported heavy or task modules (move them into run()): " + ", ".join(
        f"{module} -> {heavy}" for module, heavy in culprits)
