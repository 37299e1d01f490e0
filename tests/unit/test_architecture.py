"""The layering of ARCHITECTURE.md, checked on the source (``ast``, nothing is imported).

Each rule below is a ``test_*``; ``test_the_checks_catch_*`` feed the same checks
a known-bad graph so a rule that silently matches nothing fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kserve
import pytest

from tests.architecture import (
    APPLICATIONS,
    MLOPS_LAYERS,
    REPO_ROOT,
    Import,
    all_imports,
    find_cycles,
    is_stdlib,
    layer_of,
    project_imports,
    project_modules,
)


def _library_problem(source: str, target: str) -> str | None:
    if not source.startswith(APPLICATIONS) and target.split(".")[0] in _APP_PACKAGES:
        return "the library imports no serving, pipeline or component"
    if not target.startswith("mlops"):
        return None
    low, high = layer_of(target), layer_of(source)
    if low is None or high is None:
        return "module outside every layer of MLOPS_LAYERS"
    return f"{MLOPS_LAYERS[low]} is above {MLOPS_LAYERS[high]}" if low > high else None


_APP_PACKAGES = ("serving", "pipelines", "components")
#: What each non-library package may not import, and why.
_FORBIDDEN = {
    "serving": (
        ("pipelines", "components", *APPLICATIONS, "mlops.runs"),
        "serving uses only the library",
    ),
    "components": (
        ("pipelines", "serving", *APPLICATIONS, "mlops.runs"),
        "components use only the library",
    ),
    "pipelines": (("serving", *APPLICATIONS), "pipelines wire components only"),
}


def layer_violations(edges: list[Import]) -> list[str]:
    """Imports that point up the ``mlops`` layers or from the library into the applications."""
    problems = []
    for edge in edges:
        source, target = edge.importer, edge.imported
        package = source.split(".")[0]
        if package == "mlops":
            problem = _library_problem(source, target)
        else:
            forbidden, reason = _FORBIDDEN[package]
            problem = reason if target.startswith(forbidden) else None
        if problem:
            problems.append(f"{source}:{edge.line} imports {target}: {problem}")
    return problems


def component_violations(imports: list[Import]) -> list[str]:
    """Module-level imports of a component beyond stdlib, kfp and ``mlops.runtime``."""
    allowed = ("kfp", "mlops.runtime")
    return [
        f"{imp.importer}:{imp.line} imports {imp.imported} at module level"
        for imp in imports
        if imp.importer.startswith("components.")
        and imp.module_level
        and not (
            is_stdlib(imp.imported) or imp.imported in allowed or imp.imported.startswith(("kfp.",))
        )
    ]


def _kserve_private_names() -> set[str]:
    """Every ``_``-prefixed (non-dunder) name KServe's own source defines or assigns."""
    names: set[str] = set()
    for path in Path(kserve.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = None
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = node.name
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                name = node.attr
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                name = node.id
            if name and name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return names


def _names_defined(tree: ast.AST) -> set[str]:
    """Functions, classes, attributes and variables a source defines or assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _is_private_path(dotted: str) -> bool:
    return dotted.startswith("kserve") and any(p.startswith("_") for p in dotted.split("."))


def _private_import(node: ast.AST) -> str | None:
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kserve"):
        names_private = any(a.name.startswith("_") for a in node.names)
        if _is_private_path(node.module or "") or names_private:
            return f"from {node.module} import private"
    if isinstance(node, ast.Import):
        for alias in node.names:
            if _is_private_path(alias.name):
                return f"import {alias.name}"
    return None


def private_kserve_uses(sources: dict[str, str], kserve_private: set[str]) -> list[str]:
    """Uses of a private KServe member.

    That is ``from kserve... import _x``, ``kserve._x`` module paths, and ``obj._x``
    where ``_x`` is private in KServe and not defined by the project itself.
    """
    trees = {name: ast.parse(text) for name, text in sources.items()}
    own = set().union(*(_names_defined(tree) for tree in trees.values()))
    foreign = kserve_private - own
    problems = []
    for module, tree in trees.items():
        for node in ast.walk(tree):
            found = _private_import(node)
            if found is None and isinstance(node, ast.Attribute) and node.attr in foreign:
                found = f"uses KServe's private .{node.attr}"
            if found:
                problems.append(f"{module}:{getattr(node, 'lineno', 0)} {found}")
    return problems


# -- the rules, on the project ------------------------------------------------------------
def test_every_module_is_in_a_layer():
    outside = [m for m in project_modules() if m.startswith("mlops") and layer_of(m) is None]
    assert not outside, f"add these to MLOPS_LAYERS (tests/architecture.py): {outside}"


def test_no_import_cycles():
    assert find_cycles(project_imports()) == []


def test_dependencies_point_one_way():
    assert layer_violations(project_imports()) == []


def test_components_import_only_stdlib_kfp_and_the_runtime_module_at_module_level():
    assert component_violations(all_imports()) == []


def test_components_package_docstring_states_the_import_rule():
    doc = ast.get_docstring(ast.parse((REPO_ROOT / "components" / "__init__.py").read_text()))
    assert doc and "mlops.runtime" in doc and "kfp" in doc and "standard library" in doc


def test_no_private_kserve_member_is_used():
    sources = {
        m: p.read_text(encoding="utf-8")
        for m, p in project_modules().items()
        if m.split(".")[0] in ("serving", "mlops")
    }
    sources["bench.bare_serving"] = (REPO_ROOT / "bench" / "bare_serving.py").read_text()
    assert private_kserve_uses(sources, _kserve_private_names()) == []


# -- the checks themselves catch what they are for -------------------------------------------
def test_the_checks_catch_a_cycle_and_an_upward_import():
    edges = [
        Import("mlops.core.store", "mlops.model.registry", 1, True, False),
        Import("mlops.model.registry", "mlops.core.store", 1, True, False),
        Import("mlops.model.training", "serving.predictor", 2, False, False),
    ]
    assert find_cycles(edges) == [["mlops.core.store", "mlops.model.registry"]]
    problems = layer_violations(edges)
    assert any("mlops.core.store:1 imports mlops.model.registry" in p for p in problems)
    assert any("serving.predictor" in p for p in problems)


def test_the_checks_catch_a_heavy_component_import():
    imports = [
        Import("components.train_model", "pandas", 3, True, False),
        Import("components.train_model", "mlops.model.training", 4, True, False),
        Import("components.train_model", "mlops.model.training", 9, False, False),
        Import("components.train_model", "kfp.dsl", 1, True, False),
    ]
    assert component_violations(imports) == [
        "components.train_model:3 imports pandas at module level",
        "components.train_model:4 imports mlops.model.training at module level",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "class S(kserve.ModelServer):\n    def go(self):\n        self._rest_server.start()\n",
        "from kserve.protocol.rest._private import x\n",
        "from kserve.model_server import _fn\n",
    ],
)
def test_the_checks_catch_a_private_kserve_use(source):
    assert private_kserve_uses({"serving.bad": source}, _kserve_private_names())
