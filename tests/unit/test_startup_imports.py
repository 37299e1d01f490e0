"""Start-up cost: a command imports only what it needs (issue 18).

Each case runs in a fresh interpreter and lists the heavy packages left in
``sys.modules`` afterwards: the CLI's parser, ``mlops --help``, ``mlops store
status``, ``mlops drift`` between two tables, and the body of every component
(its function-level imports, read from the source with ``ast``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training_helpers import REPO_ROOT

#: Never needed before a model is explained, served or a report rendered.
HEAVY = ("evidently", "shap", "kserve")
#: Not needed by commands that read no table and load no model.
DATA = ("pandas", "sklearn", "scipy", "pyarrow")
#: Components whose bodies read tables or models: they may import DATA, never HEAVY.
DATA_COMPONENTS = {
    "load_split",
    "train_model",
    "validate_holdout",
    "check_drift",
    "check_quality",
    "build_retraining_data",
}


def imported_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """Top-level packages (plus ``scipy.stats``) in ``sys.modules`` after running ``code``."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "names = {m.split('.')[0] for m in sys.modules} | "
        "({'scipy.stats'} & set(sys.modules))\n"
        "sys.__stderr__.write('MODULES=' + json.dumps(sorted(names)) + '\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("MODULES=")]
    assert lines, f"probe failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
    return set(json.loads(lines[-1].removeprefix("MODULES=")))


def _main(argv: list[str]) -> str:
    # --help exits through SystemExit inside main(); the probe must still report.
    return f"from mlops.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"


def test_building_the_parser_imports_nothing_heavy():
    loaded = imported_after("import mlops.cli\nmlops.cli.build_parser()")
    assert not loaded & {*HEAVY, *DATA}, sorted(loaded & {*HEAVY, *DATA})


def test_help_imports_nothing_heavy():
    loaded = imported_after(_main(["--help"]))
    assert not loaded & {*HEAVY, *DATA}, sorted(loaded & {*HEAVY, *DATA})


def test_store_status_imports_nothing_heavy(tmp_path):
    env = {"MLOPS_HOME": str(tmp_path / "home")}
    loaded = imported_after(_main(["store", "status"]), env)
    assert not loaded & {*HEAVY, *DATA}, sorted(loaded & {*HEAVY, *DATA})


def test_drift_between_tables_imports_neither_evidently_nor_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name in ("reference", "current"):
        path = tmp_path / f"{name}.csv"
        # Over 1000 rows: the Wasserstein test, which needs no scipy.stats either.
        pd.DataFrame(rng.normal(size=(2000, 3)), columns=["a", "b", "c"]).to_csv(path, index=False)
        paths.append(str(path))
    argv = ["drift", "--reference", paths[0], "--current", paths[1], "--json"]
    loaded = imported_after(_main(argv))
    assert "pandas" in loaded, "the probe ran the command"
    unwanted = {*HEAVY, "sklearn", "scipy.stats"}
    assert not loaded & unwanted, sorted(loaded & unwanted)


def _body_imports(path: Path) -> str:
    """The import statements inside the component function of ``path``, as code."""
    tree = ast.parse(path.read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert len(functions) == 1, path
    lines = [
        ast.unparse(node)
        for node in ast.walk(functions[0])
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    return "\n".join(lines) or "pass"


COMPONENTS = sorted(p for p in (REPO_ROOT / "components").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.stem)
def test_component_bodies_import_only_what_they_need(path):
    loaded = imported_after(_body_imports(path))
    unwanted = set(HEAVY) if path.stem in DATA_COMPONENTS else {*HEAVY, *DATA}
    assert not loaded & unwanted, f"{path.stem} imports {sorted(loaded & unwanted)}"


def test_the_probe_sees_heavy_imports():
    # A probe that silently saw nothing would pass every test above.
    assert {"pandas", "scipy.stats"} <= imported_after("import scipy.stats, pandas")
