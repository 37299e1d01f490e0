"""``mlops.yaml``: what it may say, every refusal named, the paths it names, and the run's parameters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops.core.errors import UsageError
from mlops.repository.config import (
    CONFIG_FILE,
    DEFAULT_MIN_ACCURACY,
    KEYS,
    RepoConfig,
    effective_parameters,
    load_config,
    model_path,
    quality_paths,
    requirements_path,
)

MINIMAL = "entry_point: recipe.train:fit\n"


def write_repo(root: Path, config: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(config, encoding="utf-8")
    for relative, text in (files or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def refusal(tmp_path: Path, config: str, files: dict[str, str] | None = None) -> str:
    repo = write_repo(tmp_path / "repo", config, files)
    with pytest.raises(UsageError) as info:
        load_config(repo)
    return str(info.value)


# -- a good file -------------------------------------------------------------------------------
def test_every_key_is_read(tmp_path):
    repo = write_repo(
        tmp_path / "repo",
        "name: churn\n"
        "target: churned\n"
        "entry_point: recipe.train:fit\n"
        "drop_columns: [customer_id, signup_date]\n"
        "categorical_columns: plan, region\n"
        "min_accuracy: 0.75\n"
        "params: {n_estimators: 50, max_depth: null, weights: [1, 2.5], nested: {a: true}}\n"
        "model: models/churn.skops\n"
        "requirements: deps/requirements.txt\n"
        "quality: [recipe, tools/helper.py]\n",
        {
            "models/churn.skops": "not really a model",
            "deps/requirements.txt": "scikit-learn==1.5.2\n",
            "recipe/train.py": "def fit(): ...\n",
            "tools/helper.py": "X = 1\n",
        },
    )
    config = load_config(repo)
    assert config == RepoConfig(
        name="churn",
        target="churned",
        entry_point="recipe.train:fit",
        drop_columns=("customer_id", "signup_date"),
        categorical_columns=("plan", "region"),
        min_accuracy=0.75,
        params={"n_estimators": 50, "max_depth": None, "weights": [1, 2.5], "nested": {"a": True}},
        model="models/churn.skops",
        requirements="deps/requirements.txt",
        quality=("recipe", "tools/helper.py"),
    )
    as_dict = config.to_dict()
    assert set(as_dict) == set(KEYS)
    assert as_dict["drop_columns"] == ["customer_id", "signup_date"]
    assert as_dict["quality"] == ["recipe", "tools/helper.py"]
    assert model_path(repo, config) == repo / "models" / "churn.skops"
    assert requirements_path(repo, config) == repo / "deps" / "requirements.txt"
    assert quality_paths(repo, config) == [repo / "recipe", repo / "tools" / "helper.py"]


def test_only_the_entry_point_is_required(tmp_path):
    repo = write_repo(tmp_path / "repo", MINIMAL)
    config = load_config(repo)
    assert (config.name, config.target, config.min_accuracy, config.model) == (None,) * 4
    assert config.params == {} and config.drop_columns == () and config.quality == ()
    assert config.requirements == "requirements.txt"
    assert model_path(repo, config) is None
    # The default requirements file may be absent; then there is nothing to audit.
    assert requirements_path(repo, config) is None
    (repo / "requirements.txt").write_text("numpy\n")
    assert requirements_path(repo, config) == repo / "requirements.txt"


def test_a_model_that_is_not_skops_is_returned_for_the_scan_gate_to_refuse(tmp_path):
    repo = write_repo(tmp_path / "repo", MINIMAL + "model: model.pkl\n", {"model.pkl": "x"})
    assert model_path(repo, load_config(repo)) == repo / "model.pkl"


def test_default_quality_paths_are_the_modules_without_tests_caches_and_venvs(tmp_path):
    repo = write_repo(
        tmp_path / "repo",
        MINIMAL,
        {
            "recipe/train.py": "",
            "recipe/__init__.py": "",
            "recipe/features_test.py": "",
            "recipe/tests/helpers.py": "",
            "tests/test_train.py": "",
            "test_top.py": "",
            "conftest.py": "",
            "notes.md": "",
            ".git/hooks/x.py": "",
            "recipe/__pycache__/train.py": "",
            ".venv/lib/site.py": "",
            "env/pyvenv.cfg": "",
            "env/lib/mod.py": "",
            "setup.py": "",
        },
    )
    (repo / "linked.py").symlink_to(repo / "setup.py")
    found = [path.relative_to(repo).as_posix() for path in quality_paths(repo, load_config(repo))]
    assert found == ["recipe/__init__.py", "recipe/train.py", "setup.py"]


# -- refusals, each naming the key -------------------------------------------------------------
def test_no_config_file_names_the_repository(tmp_path):
    with pytest.raises(UsageError, match=f"no mlops.yaml in {tmp_path}"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("entry_point: [unclosed\n", "not valid YAML"),
        ("- entry_point\n", "must be a mapping of settings, not list"),
        ("", "must be a mapping of settings, not NoneType"),
        ("just text\n", "must be a mapping of settings, not str"),
        ("name: x\n", "entry_point is required"),
        (MINIMAL + "targets: y\n", "unknown key(s) targets; valid keys: name, target, entry_point"),
        ("entry_point: recipe.train\n", 'entry_point must be "module:function"'),
        ("entry_point: 'recipe-x:fit'\n", "entry_point must be"),
        ("entry_point: 'recipe:fit.x'\n", "entry_point must be"),
        ("entry_point: 'class:fit'\n", "entry_point must be"),
        ("entry_point: 7\n", "entry_point must be"),
        (MINIMAL + "name: ''\n", "name must be a non-empty string"),
        (MINIMAL + "name: 3\n", "name must be a non-empty string"),
        (MINIMAL + "target: [a]\n", "target must be a non-empty string"),
        (MINIMAL + "drop_columns: {a: 1}\n", "drop_columns must be a list of column names"),
        (MINIMAL + "drop_columns: [a, 2]\n", "drop_columns must list non-empty column names"),
        (MINIMAL + "categorical_columns: a, b, a\n", "categorical_columns names a more than once"),
        (MINIMAL + "min_accuracy: 1.5\n", "min_accuracy must be between 0 and 1"),
        (MINIMAL + "min_accuracy: -0.1\n", "min_accuracy must be between 0 and 1"),
        (MINIMAL + "min_accuracy: .nan\n", "min_accuracy must be between 0 and 1"),
        (MINIMAL + "min_accuracy: high\n", "min_accuracy must be a number"),
        (MINIMAL + "min_accuracy: true\n", "min_accuracy must be a number"),
        (MINIMAL + "params: [1, 2]\n", "params must be a mapping"),
        (MINIMAL + "params: {1: a}\n", "params key 1 is not a valid"),
        (MINIMAL + "params: {for: 1}\n", "params key 'for' is not a valid"),
        (MINIMAL + "params: {when: 2024-01-01}\n", "params.when must be a string, number"),
        (MINIMAL + "params: {x: [1, .inf]}\n", "params.x[1] must be a finite number"),
        (MINIMAL + "model: /etc/passwd\n", "model '/etc/passwd' must be a relative path"),
        (MINIMAL + "model: ../x.skops\n", "model '../x.skops' must be a relative path"),
        (MINIMAL + "model: missing.skops\n", "model 'missing.skops' does not exist"),
        (MINIMAL + "model: 5\n", "model must be a relative path"),
        (MINIMAL + "requirements: reqs/none.txt\n", "requirements 'reqs/none.txt' does not exist"),
        (MINIMAL + "requirements: 'a\\b.txt'\n", "requirements 'a\\\\b.txt' must be a relative"),
        (MINIMAL + "quality: [src/gone]\n", "quality 'src/gone' does not exist"),
        (MINIMAL + "quality: {a: 1}\n", "quality must be a list of relative paths"),
        (MINIMAL + "quality: [sub/../..]\n", "must be a relative path inside the repository"),
        ("a: &x [1]\nb: *x\n", "anchors and aliases"),
    ],
)
def test_refusals_name_the_problem(tmp_path, text, expected):
    message = refusal(tmp_path, text)
    assert message.startswith("mlops.yaml: ")
    assert expected in message


def test_a_named_requirements_file_must_exist_even_with_the_default_name_elsewhere(tmp_path):
    repo = write_repo(tmp_path / "repo", MINIMAL + "requirements: requirements.txt\n")
    with pytest.raises(UsageError, match="requirements 'requirements.txt' does not exist"):
        load_config(repo)


def test_a_model_that_is_a_folder_is_refused(tmp_path):
    message = refusal(tmp_path, MINIMAL + "model: models\n", {"models/a.skops": "x"})
    assert message == "mlops.yaml: model 'models' is not a file"


def test_symlinks_leaving_the_repository_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.skops").write_text("x")
    (outside / "requirements.txt").write_text("numpy\n")
    repo = write_repo(tmp_path / "repo", MINIMAL + "model: model.skops\n")
    (repo / "model.skops").symlink_to(outside / "model.skops")
    with pytest.raises(UsageError, match="model 'model.skops' leaves the repository"):
        load_config(repo)
    # A symlinked folder on the way counts too, and so does the default requirements file.
    (repo / CONFIG_FILE).write_text(MINIMAL + "quality: [ext/requirements.txt]\n")
    os.symlink(outside, repo / "ext")
    with pytest.raises(UsageError, match="quality 'ext/requirements.txt' leaves the repository"):
        load_config(repo)
    (repo / CONFIG_FILE).write_text(MINIMAL)
    (repo / "requirements.txt").symlink_to(outside / "requirements.txt")
    with pytest.raises(UsageError, match="requirements 'requirements.txt' leaves the repository"):
        requirements_path(repo, load_config(repo))


def test_a_config_file_linked_from_outside_is_refused(tmp_path):
    outside = write_repo(tmp_path / "elsewhere", MINIMAL)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / CONFIG_FILE).symlink_to(outside / CONFIG_FILE)
    with pytest.raises(UsageError, match="mlops.yaml: is a symlink leaving the repository"):
        load_config(repo)


def test_a_symlink_inside_the_repository_is_fine(tmp_path):
    repo = write_repo(tmp_path / "repo", MINIMAL + "model: current.skops\n", {"v1.skops": "x"})
    (repo / "current.skops").symlink_to("v1.skops")
    assert model_path(repo, load_config(repo)) == repo / "current.skops"


def test_a_huge_file_is_refused(tmp_path):
    assert "larger than" in refusal(tmp_path, MINIMAL + "#" * (64 * 1024) + "\n")


# -- effective parameters ----------------------------------------------------------------------
FULL = RepoConfig(
    name="churn",
    target="churned",
    entry_point="recipe:fit",
    drop_columns=("id", "date"),
    categorical_columns=("plan",),
    min_accuracy=0.7,
)
BARE = RepoConfig(name=None, target=None, entry_point="recipe:fit")
NOT_GIVEN = {
    "target_column": "",
    "model_name": "",
    "min_accuracy": -1.0,
    "drop_columns": "",
    "categorical_columns": "",
}


def test_the_file_fills_what_parameters_leave_out():
    values, sources = effective_parameters(FULL, dict(NOT_GIVEN, unrelated="x"))
    assert values == {
        "target_column": "churned",
        "model_name": "churn",
        "min_accuracy": 0.7,
        "drop_columns": "id,date",
        "categorical_columns": "plan",
    }
    assert set(sources.values()) == {"mlops.yaml"}


def test_given_parameters_win():
    overrides = {
        "target_column": "label",
        "model_name": "other",
        "min_accuracy": 0.0,
        "drop_columns": " a , b ",
        "categorical_columns": "c",
    }
    values, sources = effective_parameters(FULL, overrides)
    assert values == {
        "target_column": "label",
        "model_name": "other",
        "min_accuracy": 0.0,
        "drop_columns": "a,b",
        "categorical_columns": "c",
    }
    assert set(sources.values()) == {"parameter"}


def test_defaults_when_neither_says():
    values, sources = effective_parameters(
        BARE, {"target_column": "y", "model_name": "m", "min_accuracy": -1.0}
    )
    assert values["min_accuracy"] == DEFAULT_MIN_ACCURACY
    assert values["drop_columns"] == values["categorical_columns"] == ""
    assert sources == {
        "target_column": "parameter",
        "model_name": "parameter",
        "min_accuracy": "default",
        "drop_columns": "default",
        "categorical_columns": "default",
    }


def test_target_and_name_must_come_from_somewhere():
    with pytest.raises(UsageError) as info:
        effective_parameters(BARE, dict(NOT_GIVEN, model_name="m"))
    assert str(info.value) == (
        "target column not set: give `target` in mlops.yaml or -p target_column=..."
    )
    with pytest.raises(UsageError, match="model name not set: give `name` in mlops.yaml"):
        effective_parameters(BARE, {"target_column": "y"})


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({"min_accuracy": 1.2}, "parameter min_accuracy must be between 0 and 1"),
        ({"min_accuracy": "most"}, "parameter min_accuracy must be a number"),
        ({"min_accuracy": True}, "parameter min_accuracy must be a number"),
        ({"target_column": 3}, "parameter target_column must be a string"),
        ({"drop_columns": "a,a"}, "parameter drop_columns names a more than once"),
    ],
)
def test_bad_parameters_are_named(overrides, expected):
    with pytest.raises(UsageError) as info:
        effective_parameters(FULL, overrides)
    assert expected in str(info.value)


def test_a_zero_threshold_in_the_file_is_a_value_not_a_gap():
    config = RepoConfig(name="m", target="y", entry_point="recipe:fit", min_accuracy=0.0)
    values, sources = effective_parameters(config, {"min_accuracy": -1.0})
    assert values["min_accuracy"] == 0.0 and sources["min_accuracy"] == "mlops.yaml"


def test_a_min_accuracy_given_as_text_counts():
    values, sources = effective_parameters(FULL, {"min_accuracy": "0.9"})
    assert values["min_accuracy"] == 0.9 and sources["min_accuracy"] == "parameter"
    values, sources = effective_parameters(FULL, {"min_accuracy": "-1"})
    assert values["min_accuracy"] == 0.7 and sources["min_accuracy"] == "mlops.yaml"
