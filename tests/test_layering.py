"""The core's import graph: one-way, and free of the plugin packages.

Module-level imports count, those under ``if TYPE_CHECKING:`` included (a
circle there is still two modules that cannot be understood apart); imports
inside functions are deferred on purpose and do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import seqbench

CORE = Path(seqbench.__file__).parent
PLUGIN_PACKAGES = ("seqbench_numpy", "seqbench_torch", "seqbench_jax", "seqbench_keras")


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)  # "from seqbench import x"
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))

    visit(tree.body)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imports = _top_level_imports(ast.parse(path.read_text()))
        graph[name] = {i for i in imports if i in modules and i not in (name, "seqbench")}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, if there is any (depth-first search, colouring modules as it goes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None


def test_no_module_level_import_circle_in_the_core() -> None:
    graph = _graph()
    assert "seqbench.loader" in graph and "seqbench.results" in graph["seqbench.loader"]  # the graph is real
    assert _circle(graph) is None, " -> ".join(_circle(graph) or [])


def test_the_core_never_imports_a_plugin_package() -> None:
    for path in CORE.rglob("*.py"):
        imported = {name.split(".")[0] for name in _imports_anywhere(ast.parse(path.read_text()))}
        assert not imported & set(PLUGIN_PACKAGES), f"{path.name} imports {sorted(imported & set(PLUGIN_PACKAGES))}"


def _imports_anywhere(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names
