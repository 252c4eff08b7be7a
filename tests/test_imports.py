"""No import cycle in lbw_utils: the module graph, function-level imports included, is acyclic.

The graph is read from the source with ``ast`` (nothing is imported): an edge A -> B for every
``import lbw_utils.B`` / ``from lbw_utils.B import x`` / ``from lbw_utils import B`` / relative import,
wherever it stands in A (module level, inside a function, under ``if TYPE_CHECKING``). A package's
``__init__`` counts as the package's module: importing ``lbw_utils.runner.fanout.local`` runs
``lbw_utils.runner.fanout``'s ``__init__`` first, so ``lbw_utils.runner.fanout.local`` -> ``lbw_utils.runner.fanout``
is an edge too (a submodule importing its own package's ``__init__`` is not, Python has it loading already).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "lbw_utils"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imported(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that the module ``name`` imports anywhere in its source."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()

    def add(target: str) -> None:
        # the longest known module that names the target (``lbw_utils.methods.registry.METHODS`` -> registry)
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith(PACKAGE):
                continue
            add(source)
            for alias in node.names:  # ``from lbw_utils import fanout``: the submodule itself
                if f"{source}.{alias.name}" in known:
                    add(f"{source}.{alias.name}")
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    found = modules(root)
    known = set(found)
    graph = {}
    for name, path in found.items():
        edges = imported(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", known)
        # importing a submodule runs its packages' __init__ first (not its own package's: that one is loading)
        for target in list(edges):
            parent = target.rpartition(".")[0]
            while parent and parent != PACKAGE and not name.startswith(parent + ".") and parent != name:
                edges.add(parent)
                parent = parent.rpartition(".")[0]
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules whose last imports its first, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 30 and "lbw_utils.runner.fanout" in graph["lbw_utils.runner.reproduce"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in lbw_utils: " + " -> ".join(cycle)


def test_reproduce_and_fanout_share_the_sequential_pass_below_both():
    graph = import_graph()
    assert "lbw_utils.runner.sequential" in graph["lbw_utils.runner.reproduce"]
    assert "lbw_utils.runner.sequential" in graph["lbw_utils.runner.fanout.shards"]
    assert not any(target.startswith("lbw_utils.runner.reproduce") for target in graph["lbw_utils.runner.fanout.shards"]
                   | graph["lbw_utils.runner.fanout.merge"] | graph["lbw_utils.runner.sequential"])


@pytest.mark.parametrize("files, cycle", [
    # a function-level import closes the loop: found
    ({"a.py": "import lbw_utils.b\n", "b.py": "def f():\n    from lbw_utils import a\n"},
     ["lbw_utils.a", "lbw_utils.b", "lbw_utils.a"]),
    # a relative import inside a subpackage, through the package's __init__
    ({"p/__init__.py": "from lbw_utils.p.x import y\n", "p/x.py": "def g():\n    from ..c import z\n",
      "c.py": "from lbw_utils import p\n"},
     ["lbw_utils.c", "lbw_utils.p", "lbw_utils.p.x", "lbw_utils.c"]),
    ({"a.py": "import lbw_utils.b\n", "b.py": "import os\n"}, None),
])
def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path, files, cycle):
    root = tmp_path / PACKAGE
    for relative, text in {"__init__.py": "", **files}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    assert find_cycle(import_graph(root)) == cycle
