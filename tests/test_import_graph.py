"""The project's import graph has no cycles, lazy (function-level) imports included.

DESIGN.md: a helper lives in the module that owns its concept and low-level modules never reach
up. A cycle hidden in a function-level import still couples two modules both ways (and decides
what an import costs at run time), so every ``import`` statement anywhere in a module counts.
Edges go to the module an import names: ``from a.b import c`` is an edge to ``a.b.c`` when that
is a module of the project, else to ``a.b``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "vton_models", "shards", "tune", "cluster")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest project module ``name`` refers to (a module, or the module defining the name)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved and resolved != module:
                    graph[module].add(resolved)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle_through_a_lazy_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_project_has_no_import_cycles():
    graph = import_graph()
    assert "orchestrator.train.loop" in graph and graph["orchestrator.train.loop"], "the graph looks empty"
    found = cycles(graph)
    described = "\n\n".join("\n".join(f"  {m} imports {sorted(graph[m] & set(c))}" for m in c) for c in found)
    assert not found, f"import cycles (each module with the imports that close its cycle):\n{described}"


def test_every_import_of_a_project_name_resolves():
    """``from <project module> import <name>`` anywhere, tests and benchmarks included (lazy imports
    too), names something that exists: a moved helper must not survive as an import that only fails
    when its branch runs."""
    import importlib

    modules = _modules()
    sources = {**modules, **{f"tests.{p.stem}": p for p in (REPO / "tests").rglob("*.py")},
               **{f"bench.{p.stem}": p for p in (REPO / "bench").glob("*.py")}}
    broken = []
    for module, path in sorted(sources.items()):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            if node.module.split(".")[0] not in PACKAGES:
                continue
            try:
                target = importlib.import_module(node.module)
            except ImportError as exc:
                broken.append(f"{module}:{node.lineno} from {node.module}: {exc}")
                continue
            for alias in node.names:
                if not hasattr(target, alias.name) and f"{node.module}.{alias.name}" not in modules:
                    broken.append(f"{module}:{node.lineno} from {node.module} import {alias.name}")
    assert not broken, "imports of names that do not exist:\n  " + "\n  ".join(broken)
