"""The project's import graph, read from the source with ``ast`` (nothing is imported).

Used by ``tests/unit/test_architecture.py`` to hold the layering of ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mlops", "serving", "components", "pipelines")

#: Layers of the ``mlops`` library, lowest first: a module may import its own layer
#: and the ones before it, never one after it. ``mlops.runtime`` belongs to core.
MLOPS_LAYERS: tuple[tuple[str, ...], ...] = (
    ("mlops", "mlops.runtime", "mlops.core"),
    ("mlops.repository",),
    ("mlops.model",),
    ("mlops.trust",),
    ("mlops.deployment",),
    ("mlops.monitoring",),
    ("mlops.release",),
    ("mlops.runs",),
    ("mlops.api", "mlops.cli", "mlops.demo"),
)
#: The applications on top: the only parts of ``mlops`` that may use serving and pipelines.
APPLICATIONS = ("mlops.api", "mlops.cli", "mlops.demo")


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what, where, and whether at module level."""

    importer: str
    imported: str
    line: int
    module_level: bool
    type_checking: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every project module by dotted name (packages by their ``__init__``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, *([target] if target else [])])


def imports_of(module: str, path: Path) -> Iterator[Import]:
    """Every import in one file, with the names ``from x import y`` brings resolved to modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    known = project_modules_cached()
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, module_level: bool, type_checking: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, alias.name, child.lineno, module_level, type_checking)
            elif isinstance(child, ast.ImportFrom):
                base = (
                    _resolve_relative(module, is_package, child.level, child.module)
                    if child.level
                    else child.module or ""
                )
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    target = candidate if candidate in known else base
                    yield Import(module, target, child.lineno, module_level, type_checking)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, False, type_checking)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                yield from visit(child, module_level, True)
            else:
                yield from visit(child, module_level, type_checking)

    yield from visit(tree, True, False)


_MODULES: dict[str, Path] | None = None


def project_modules_cached() -> dict[str, Path]:
    global _MODULES
    if _MODULES is None:
        _MODULES = project_modules()
    return _MODULES


def project_imports() -> list[Import]:
    """Imports between project modules (a name inside a module counts as that module)."""
    modules = project_modules_cached()
    edges = []
    for module, path in modules.items():
        for imp in imports_of(module, path):
            target = imp.imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.append(Import(module, target, imp.line, imp.module_level, imp.type_checking))
    return edges


def all_imports() -> list[Import]:
    """Every import of every project module, third-party and stdlib included."""
    return [
        imp for module, path in project_modules_cached().items() for imp in imports_of(module, path)
    ]


def is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


def layer_of(module: str) -> int | None:
    """Index in :data:`MLOPS_LAYERS` of an ``mlops`` module (longest prefix wins)."""
    best: tuple[int, int] | None = None
    for index, layer in enumerate(MLOPS_LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


def find_cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    return [sorted(c) for c in _StronglyConnected(graph).components() if len(c) > 1]


class _StronglyConnected:
    """Tarjan's algorithm over ``{module: modules it imports}``, nodes visited in sorted order."""

    def __init__(self, graph: dict[str, set[str]]) -> None:
        self.graph = graph
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.found: list[list[str]] = []

    def components(self) -> list[list[str]]:
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
        for node in sorted(self.graph):
            if node not in self.index:
                self._visit(node)
        return self.found

    def _visit(self, node: str) -> None:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        for succ in sorted(self.graph[node]):
            if succ not in self.index:
                self._visit(succ)
                self.low[node] = min(self.low[node], self.low[succ])
            elif succ in self.on_stack:
                self.low[node] = min(self.low[node], self.index[succ])
        if self.low[node] == self.index[node]:
            self.found.append(self._pop_component(node))

    def _pop_component(self, root: str) -> list[str]:
        component = []
        while True:
            top = self.stack.pop()
            self.on_stack.discard(top)
            component.append(top)
            if top == root:
                return component
