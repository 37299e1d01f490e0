"""The one settings module: its table, its parsers, the README, and who reads the environment.

``mlops/core/settings.py`` is the only module that reads an ``MLOPS_*`` variable;
the AST check below holds every other module of the project to that, and
``MLOPS_ADVISORY_DB`` is followed from the variable to a local run's arguments.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mlops.core import settings
from mlops.core.errors import UsageError
from tests.architecture import REPO_ROOT

README = REPO_ROOT / "README.md"
SETTINGS_MODULE = REPO_ROOT / "mlops" / "core" / "settings.py"
#: Everything that runs as the project: the library, the server, components, pipelines.
CHECKED_ROOTS = ("mlops", "serving", "components", "pipelines", "compile.py")


# -- the README table ------------------------------------------------------------------------
def _readme_configuration_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Configuration\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _readme_table_variables() -> list[str]:
    """The first-column names of the Configuration table (a cell may name several)."""
    names = []
    for line in _readme_configuration_section().splitlines():
        if line.startswith("| `MLOPS_"):
            names += re.findall(r"`(MLOPS_[A-Z0-9_]+)`", line.split("|")[1])
    return names


def test_readme_table_lists_exactly_the_variables():
    listed = _readme_table_variables()
    assert sorted(set(listed)) == sorted(listed), "a variable is listed twice"
    assert set(listed) - set(settings.VARIABLES) == set(), "README lists unknown variables"
    assert set(settings.VARIABLES) - set(listed) == set(), "README misses variables"


def test_readme_table_is_the_generated_one():
    assert settings.markdown_table() in _readme_configuration_section(), (
        "regenerate the README table: "
        'python -c "from mlops.core import settings; print(settings.markdown_table())"'
    )


def test_every_variable_is_named_and_described():
    for name, variable in settings.VARIABLES.items():
        assert name == variable.name and name.startswith("MLOPS_")
        assert variable.description and "|" not in variable.description
        assert "|" not in variable.documented_default()


def test_grouped_names_are_variables_of_the_table():
    for name in (*settings.STORE_ENV_VARS, *settings.CONFIG_MAP_VARS):
        assert name in settings.VARIABLES
    assert not any(settings.VARIABLES[name].secret for name in settings.CONFIG_MAP_VARS)


# -- parsers ---------------------------------------------------------------------------------
BAD_VALUES = {
    settings.parse_bool: ["perhaps", "2", "yes please"],
    settings.parse_positive_int: ["abc", "0", "-3", "1.5"],
    settings.parse_positive_float: ["abc", "0", "-1", "inf", "nan"],
    settings.parse_fraction: ["abc", "-0.1", "1.5", "nan", "inf"],
}
#: Parsers that accept any text: nothing to reject.
FREE_TEXT = (settings.parse_text, settings.parse_path)


def test_every_parser_is_covered_here():
    for variable in settings.VARIABLES.values():
        assert variable.parse in BAD_VALUES or variable.parse in FREE_TEXT, variable.name


@pytest.mark.parametrize(
    "name,value",
    [
        (variable.name, value)
        for variable in settings.VARIABLES.values()
        for value in BAD_VALUES.get(variable.parse, [])
    ],
)
def test_bad_values_are_refused_with_the_variable_name(name, value):
    with pytest.raises(UsageError) as info:
        settings.get(name, {name: value})
    assert name in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("name", sorted(settings.VARIABLES))
def test_unset_and_empty_mean_the_default(name):
    default = settings.VARIABLES[name].default
    assert settings.get(name, {}) == default
    assert settings.get(name, {name: "  "}) == default


@pytest.mark.parametrize(
    "parse,text,expected",
    [
        (settings.parse_bool, "On", True),
        (settings.parse_bool, "0", False),
        (settings.parse_positive_int, " 12 ", 12),
        (settings.parse_positive_float, "0.5", 0.5),
        (settings.parse_text, " x ", "x"),
    ],
)
def test_good_values_parse(parse, text, expected):
    assert parse(text, "MLOPS_X") == expected


def test_get_of_an_unknown_name_is_a_key_error():
    with pytest.raises(KeyError):
        settings.get("MLOPS_NO_SUCH_SETTING", {})


# -- nobody else reads MLOPS_* -----------------------------------------------------------------
def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "literal"`` assignments."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = node.value.value
    return found


def _names_a_setting(node: ast.expr, constants: dict[str, str]) -> bool:
    """A literal ``"MLOPS_..."``, a local constant holding one, or any ``*_VAR`` constant."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value.startswith("MLOPS_")
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    if name is None:
        return False
    return name.endswith("_VAR") or constants.get(name, "").startswith("MLOPS_")


def _is_environ(node: ast.expr) -> bool:
    """``os.environ`` or a bare ``environ`` (``from os import environ``)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == "environ"


def _setting_read(node: ast.AST, constants: dict[str, str]) -> bool:
    """``os.environ.get(X)``, ``os.environ[X]`` (read), ``os.getenv(X)``, ``X in os.environ``."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
        func = node.func
        environ_get = func.attr == "get" and _is_environ(func.value)
        getenv = (
            func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os"
        )
        return (environ_get or getenv) and _names_a_setting(node.args[0], constants)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        return node.func.id == "getenv" and _names_a_setting(node.args[0], constants)
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return _is_environ(node.value) and _names_a_setting(node.slice, constants)
    if isinstance(node, ast.Compare) and len(node.comparators) == 1:
        in_environ = isinstance(node.ops[0], (ast.In, ast.NotIn)) and _is_environ(
            node.comparators[0]
        )
        return in_environ and _names_a_setting(node.left, constants)
    return False


def setting_reads(source: str, where: str) -> list[str]:
    """Every place ``source`` reads an ``MLOPS_*`` variable from the environment itself."""
    tree = ast.parse(source)
    constants = _string_constants(tree)
    return [
        f"{where}:{node.lineno} reads {ast.unparse(node)}"
        for node in ast.walk(tree)
        if _setting_read(node, constants)
    ]


def _checked_files() -> list[Path]:
    files = []
    for root in CHECKED_ROOTS:
        path = REPO_ROOT / root
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [path for path in files if path != SETTINGS_MODULE]


def _project_problems(check: Callable[[str, str], list[str]]) -> str:
    """``check`` run on every checked file, its findings one a line ('' when clean)."""
    problems = []
    for path in _checked_files():
        problems += check(path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT)))
    return "\n".join(problems)


def test_only_the_settings_module_reads_mlops_variables():
    problems = _project_problems(setting_reads)
    assert problems == "", "read these through mlops.core.settings.get:\n" + problems


_SETTING_NAME = re.compile(r"MLOPS_[A-Z0-9_]+")


def spelt_out_names(source: str, where: str) -> list[str]:
    """String literals that are exactly a variable's name (``"MLOPS_BUCKET"``).

    A name spelt out is read or passed on somewhere, possibly through a helper
    the read check cannot follow; the constants of :mod:`mlops.core.settings`
    are the one spelling.
    """
    return [
        f"{where}:{node.lineno} spells out {node.value!r}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _SETTING_NAME.fullmatch(node.value)
    ]


def test_only_the_settings_module_spells_out_variable_names():
    problems = _project_problems(spelt_out_names)
    assert problems == "", "use the *_VAR constants of mlops.core.settings:\n" + problems


def test_the_name_check_catches_a_literal_and_ignores_prose():
    source = (
        'RECONCILE = "MLOPS_RECONCILE_SECONDS"\n'
        'x = helper("MLOPS_MAX_BODY_BYTES", 5)\n'
        'message = "MLOPS_S3_* not set"\n'
        'doc = f"set {name} (MLOPS_HOME)"\n'
    )
    assert [line.split(" ", 1)[0] for line in spelt_out_names(source, "m.py")] == [
        "m.py:1",
        "m.py:2",
    ]


@pytest.mark.parametrize(
    "source",
    [
        'import os\nx = os.environ.get("MLOPS_HOME")\n',
        'import os\nx = os.environ["MLOPS_BUCKET"]\n',
        'import os\nx = os.getenv("MLOPS_BUCKET", "mlops")\n',
        'from os import environ\nx = environ.get("MLOPS_BUCKET")\n',
        'from os import getenv\nx = getenv("MLOPS_BUCKET")\n',
        'import os\nGATEWAY = "MLOPS_PUSHGATEWAY"\nx = os.environ.get(GATEWAY)\n',
        "import os\nfrom mlops.core.settings import HOME_VAR\nx = os.environ.get(HOME_VAR)\n",
        "import os\nfrom mlops.core import settings\nx = os.environ[settings.HOME_VAR]\n",
        'import os\nx = "MLOPS_HOME" in os.environ\n',
    ],
)
def test_the_check_catches_a_direct_read(source):
    assert setting_reads(source, "bad.py")


@pytest.mark.parametrize(
    "source",
    [
        'import os\nos.environ["MLOPS_HOME"] = "/tmp/h"\n',  # writing for child processes
        "import os\nos.environ.update(settings.to_env())\n",
        'import os\nos.environ.setdefault("MLOPS_SIGNING_KEY", "k")\n',
        'import os\nx = os.environ.get("HOME")\n',
    ],
)
def test_the_check_allows_writes_and_other_variables(source):
    assert setting_reads(source, "ok.py") == []


# -- MLOPS_ADVISORY_DB means the same for `mlops audit` and `mlops run` ----------------------
@pytest.fixture
def advisory_db(monkeypatch, tmp_path) -> str:
    path = str(tmp_path / "advisory-db")
    monkeypatch.setenv(settings.ADVISORY_DB_VAR, path)
    return path


@pytest.mark.parametrize("pipeline", ["training", "monitoring"])
def test_local_run_arguments_take_the_advisory_db(pipeline, advisory_db):
    from mlops.runs.lifecycle import local_arguments

    arguments = local_arguments(pipeline, {"model_name": "iris"})
    assert arguments["advisory_db_uri"] == advisory_db


def test_an_explicit_advisory_db_uri_wins(advisory_db):
    from mlops.runs.lifecycle import local_arguments

    given = {"model_name": "iris", "advisory_db_uri": "/elsewhere"}
    assert local_arguments("training", given)["advisory_db_uri"] == "/elsewhere"
    # An explicit empty value is a choice too: no database for this run.
    assert local_arguments("training", {"advisory_db_uri": ""})["advisory_db_uri"] == ""


def test_no_variable_no_argument(monkeypatch):
    from mlops.runs.lifecycle import local_arguments

    monkeypatch.delenv(settings.ADVISORY_DB_VAR, raising=False)
    assert "advisory_db_uri" not in local_arguments("training", {"model_name": "iris"})


def test_the_advisory_db_never_becomes_a_pipeline_default(advisory_db):
    from pipelines import PIPELINES

    audited = [p for p in PIPELINES.values() if "advisory_db_uri" in p.component_spec.inputs]
    assert len(audited) >= 2  # training and monitoring
    for pipeline in audited:
        assert pipeline.component_spec.inputs["advisory_db_uri"].default == ""


def test_mlops_run_passes_the_advisory_db_to_the_pipeline(
    advisory_db, store_env, tmp_path, monkeypatch, capfd
):
    """The whole CLI path of ``mlops run monitoring``, with the pipeline itself replaced."""
    from mlops.cli import main
    from mlops.runs import local
    from tests.training_helpers import use_signing_keys

    monkeypatch.setenv(settings.HOME_VAR, str(tmp_path / "home"))
    use_signing_keys(monkeypatch, tmp_path / "keys")
    received: dict = {}

    def fake_run(pipeline, arguments, pipeline_root, progress=None):
        received.update(arguments)
        return local.LocalRun({"status": "no_drift"}, Path(pipeline_root), tmp_path / "log", 0.1)

    monkeypatch.setattr(local, "run_locally", fake_run)
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,0\n")  # only checked to exist: the pipeline does not run
    argv = ["run", "monitoring", "-p", "model_name=iris", "--json"]
    for name in ("retrain_data_uri", "holdout_uri"):
        argv += ["-p", f"{name}={data}"]
    code = main(argv)
    out, err = capfd.readouterr()
    assert code == 0, err
    assert json.loads(out)["status"] == "no_drift"
    assert received["advisory_db_uri"] == advisory_db
    assert received["deploy_target"] == "local"
