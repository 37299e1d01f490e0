"""Bad input to ``mlops run training``: exit code 2, a message naming the problem, no run started.

Preflight fails before any pipeline task runs, so these are fast. With
``--json`` stdout holds exactly one object, ``{"status": "error", ...}``, with the
same message as stderr; without it stdout stays empty. The store
settings come from ``store_env`` (no embedded store is started per test) and
MLOPS_HOME is a tmp folder. Most cases call ``mlops.cli.main`` in-process (the
same entry point the ``mlops`` script runs); a few run ``python -m mlops.cli``
as a real subprocess to check the process exit code and streams end to end.

A bad model repository (no ``mlops.yaml``, a bad key, a git ref that does not
exist) fails the same way before any run. What only running the repository's
code can show (its entry point missing, raising, or building no classifier; a
checked-in model the data does not fit) fails in the train task instead: those
runs start (they are ``slow``), and still exit 2 naming the problem, with nothing
published.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.cli import main
from mlops.core.store import ObjectStore
from tests.conftest import shared_path
from tests.training_helpers import (
    REPO_ROOT,
    TARGET,
    cli_command,
    cli_env,
    demo_data,
    git_repository,
    git_uri,
    keys_under,
    run_cli,
    single_json,
    training_args,
    write_files,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    training_csv, holdout_csv = demo_data(root)
    frame = pd.read_csv(training_csv)
    empty = root / "empty.csv"
    empty.write_text("")
    header_only = root / "header.csv"
    frame.iloc[:0].to_csv(header_only, index=False)
    single = root / "single.csv"
    frame[frame[TARGET] == "benign"].to_csv(single, index=False)
    unlabelled = root / "unlabelled.csv"
    pd.read_csv(holdout_csv).drop(columns=[TARGET]).to_csv(unlabelled, index=False)
    narrow = root / "narrow-holdout.csv"
    pd.read_csv(holdout_csv).drop(columns=["mean_radius"]).to_csv(narrow, index=False)
    # Issue 9, finding 8: each of these failed inside a task with "Inner task failed".
    infinite = root / "infinite.csv"
    with_inf = frame.copy()
    with_inf.loc[[3, 7], "mean_radius"] = [np.inf, -np.inf]
    with_inf.loc[5, "mean_area"] = np.inf
    with_inf.to_csv(infinite, index=False)
    infinite_holdout = root / "infinite-holdout.csv"
    holdout_inf = pd.read_csv(holdout_csv)
    holdout_inf.loc[0, "mean_texture"] = np.inf
    holdout_inf.to_csv(infinite_holdout, index=False)
    unlabelled_row = root / "unlabelled-row.csv"
    one_unlabelled = pd.read_csv(holdout_csv)
    one_unlabelled.loc[2, TARGET] = np.nan
    one_unlabelled.to_csv(unlabelled_row, index=False)
    lone_class = root / "lone-class.csv"
    lone = frame.copy()
    lone.loc[5, TARGET] = "unsure"
    lone.to_csv(lone_class, index=False)
    return {
        "training": training_csv,
        "holdout": holdout_csv,
        "empty": empty,
        "header": header_only,
        "single": single,
        "unlabelled": unlabelled,
        "narrow": narrow,
        "infinite": infinite,
        "infinite-holdout": infinite_holdout,
        "unlabelled-row": unlabelled_row,
        "lone-class": lone_class,
        "missing": root / "does-not-exist.csv",
    }


@pytest.fixture
def home(tmp_path, store_env, monkeypatch):
    """MLOPS_HOME in tmp, the test store's settings, and signing keys kept in that home."""
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(home / "keys" / "signing-key.pem"))
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEY", str(home / "keys" / "signing-key.pub.pem"))
    return home


def run_main(argv: list[str], capfd) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def check_usage_error(code: int, out: str, err: str, home, *fragments: str) -> None:
    """Exit 2, the fragments on stderr, no run; stdout empty, or the one error object (--json)."""
    assert code == 2, f"exit {code}; stderr: {err}"
    assert "error: " in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in stderr: {err}"
    if out:
        check_error_object(out, 2, *fragments)
    assert not (home / "runs").exists(), "no pipeline may start on bad input"


def check_error_object(out: str, exit_code: int, *fragments: str) -> dict:
    """Checks that stdout is exactly one ``{"status": "error", ..., "exit_code": N}`` object."""
    payload = single_json(out)
    assert payload["status"] == "error" and payload["exit_code"] == exit_code, payload
    for fragment in fragments:
        assert fragment in payload["error"], f"{fragment!r} not in {payload['error']!r}"
    return payload


def run_json(argv: list[str], capfd, home, *fragments: str) -> None:
    """A ``--json`` command line with bad input: exit 2 and the error object naming it."""
    assert "--json" in argv
    code, out, err = run_main(argv, capfd)
    check_usage_error(code, out, err, home, *fragments)
    check_error_object(out, 2, *fragments)


def args_for(files, data="training", holdout="holdout", **params) -> list[str]:
    return training_args(files[data], files[holdout], **params)


CASES = {
    # name: (args builder kwargs, fragments the message must hold)
    "missing target column": (
        dict(target="label"),
        ["target column 'label' not found", "diagnosis"],
    ),
    "unreadable data uri": (dict(data="missing"), ["does-not-exist.csv", "no such file"]),
    "empty file": (dict(data="empty"), ["empty.csv", "is empty"]),
    "header-only file": (dict(data="header"), ["header.csv", "no rows"]),
    "single-class data": (dict(data="single"), ["single class", "'benign'", "at least two"]),
    "holdout without target": (
        dict(holdout="unlabelled"),
        ["not found in holdout", "unlabelled.csv"],
    ),
    "unreadable holdout": (dict(holdout="missing"), ["does-not-exist.csv"]),
    "holdout lacks a feature": (dict(holdout="narrow"), ["narrow-holdout.csv", "mean_radius"]),
    "min_accuracy out of range": (
        dict(min_accuracy=1.5),
        ["min_accuracy must be in [0, 1], got 1.5"],
    ),
    "negative min_accuracy": (dict(min_accuracy=-0.1), ["min_accuracy", "-0.1"]),
    "test_size of one": (dict(test_size=1.0), ["test_size must be in (0, 1), got 1.0"]),
    "test_size zero": (dict(test_size=0), ["test_size", "got 0.0"]),
    "unknown estimator": (dict(estimator="svm"), ["estimator 'svm' is unknown", "random_forest"]),
    "bad model_name": (dict(model_name="Breast_Cancer"), ["model_name 'Breast_Cancer' is invalid"]),
    "missing drop column": (
        dict(drop_columns="no_such_column"),
        ["drop_columns", "no_such_column"],
    ),
    "non-numeric min_accuracy": (
        dict(min_accuracy="high"),
        ["min_accuracy='high' is not a valid float"],
    ),
    "non-integer seed": (dict(seed="abc"), ["seed='abc' is not a valid integer"]),
    "bad boolean": (dict(allow_unknown_audit="perhaps"), ["allow_unknown_audit", "not a boolean"]),
    "bad deploy mode": (
        dict(deploy="sideways"),
        ["deploy must be one of none, full, canary, sticky, cohort, shadow"],
    ),
    # Issue 9, finding 8: these used to fail inside a task (exit 1, "Inner task failed").
    "negative seed": (dict(seed=-1), ["seed must be between 0 and 4294967295, got -1"]),
    "seed beyond 32 bits": (dict(seed=2**32), ["seed", str(2**32)]),
    "infinite cells in data": (
        dict(data="infinite"),
        ["infinite.csv", "infinite values", "'mean_radius' (2)", "'mean_area' (1)"],
    ),
    "infinite cell in holdout": (
        dict(holdout="infinite-holdout"),
        ["infinite-holdout.csv", "infinite values", "'mean_texture' (1)"],
    ),
    "unlabelled holdout row": (
        dict(holdout="unlabelled-row"),
        ["unlabelled-row.csv", "target column 'diagnosis'", "1 missing value"],
    ),
    "class with one row": (
        dict(data="lone-class"),
        ["'unsure'", "fewer than 2 rows", "cannot stratify"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_training_input(case, files, home, capfd):
    kwargs, fragments = CASES[case]
    run_json(args_for(files, **kwargs), capfd, home, *fragments)


def test_unsupported_scheme_names_the_uri(files, home, capfd):
    argv = training_args("http://example.com/training.csv", files["holdout"])
    check_usage_error(
        *run_main(argv, capfd), home, "http://example.com/training.csv", "unsupported scheme"
    )


def test_unknown_parameter_lists_valid_ones(files, home, capfd):
    argv = args_for(files) + ["-p", "learning_rate=0.1"]
    check_usage_error(
        *run_main(argv, capfd),
        home,
        "unknown parameter 'learning_rate'",
        "data_uri",
        "min_accuracy",
        "estimator",
    )


def test_missing_required_parameter_is_named(files, home, capfd):
    argv = [
        "run",
        "training",
        "--json",
        "-p",
        f"data_uri={files['training']}",
        "-p",
        f"target_column={TARGET}",
        "-p",
        "model_name=breast-cancer",
    ]
    check_usage_error(*run_main(argv, capfd), home, "missing required parameter", "holdout_uri")


def test_malformed_parameter(files, home, capfd):
    check_usage_error(
        *run_main(args_for(files) + ["-p", "seed"], capfd), home, "'seed' is not key=value"
    )


def test_unknown_pipeline_lists_pipelines(home, capfd):
    argv = ["run", "trainig", "-p", "x=1"]
    check_usage_error(*run_main(argv, capfd), home, "unknown pipeline 'trainig'", "training")
    run_json(argv + ["--json"], capfd, home, "unknown pipeline 'trainig'", "training")


def test_argparse_usage_errors_exit_2(home, capfd):
    code, out, err = run_main(["run"], capfd)
    assert code == 2 and "usage:" in err and out == ""
    assert "mlops run: error: the following arguments are required: pipeline" in err


def test_argparse_usage_errors_with_json_print_the_error_object(home, capfd):
    code, out, err = run_main(["run", "--json"], capfd)
    assert code == 2 and "usage:" in err
    check_error_object(out, 2, "the following arguments are required: pipeline")
    code, out, err = run_main(["run", "training", "--json", "--no-such-flag"], capfd)
    assert code == 2 and "unrecognized arguments: --no-such-flag" in err
    check_error_object(out, 2, "unrecognized arguments: --no-such-flag")


def test_without_json_the_error_is_the_same(files, home, capfd):
    argv = [a for a in args_for(files, target="label") if a != "--json"]
    code, out, err = run_main(argv, capfd)
    assert out == ""
    check_usage_error(code, out, err, home, "target column 'label' not found")


# -- the same through a real process ------------------------------------------------------------
@pytest.mark.parametrize(
    "case", ["missing target column", "min_accuracy out of range", "unknown estimator"]
)
def test_bad_input_in_a_subprocess(case, files, store, tmp_path):
    kwargs, fragments = CASES[case]
    home = tmp_path / "home"
    result = run_cli(args_for(files, **kwargs), cli_env(home, store), timeout=120)
    assert result.returncode == 2, result.stderr
    check_error_object(result.stdout, 2, *fragments)
    for fragment in fragments:
        assert fragment in result.stderr
    assert not (home / "runs").exists()


def test_unknown_parameter_in_a_subprocess(files, store, tmp_path):
    result = run_cli(
        args_for(files) + ["-p", "foo=1"], cli_env(tmp_path / "home", store), timeout=120
    )
    assert result.returncode == 2
    check_error_object(result.stdout, 2, "unknown parameter 'foo'", "holdout_uri")
    assert "unknown parameter 'foo'" in result.stderr and "holdout_uri" in result.stderr


@pytest.mark.parametrize(
    "param, fragment",
    [
        ("retrain_data_uri", "does-not-exist.csv"),
        ("holdout_uri", "does-not-exist.csv"),
        ("current_uri", "does-not-exist.csv"),
    ],
)
def test_monitoring_missing_table_exits_2_before_running(files, home, capfd, param, fragment):
    params = {
        "model_name": "breast-cancer",
        "retrain_data_uri": str(files["training"]),
        "holdout_uri": str(files["holdout"]),
        param: str(files["missing"]),
    }
    argv = ["run", "monitoring", "--json"] + [
        arg for k, v in params.items() for arg in ("-p", f"{k}={v}")
    ]
    run_json(argv, capfd, home, fragment, "no such file")


def test_monitoring_negative_seed_exits_2(files, home, capfd):
    argv = ["run", "monitoring", "--json", "-p", "model_name=breast-cancer", "-p", "seed=-5"]
    argv += ["-p", f"retrain_data_uri={files['training']}", "-p", f"holdout_uri={files['holdout']}"]
    run_json(argv, capfd, home, "seed must be between 0 and 4294967295, got -5")


# -- a bad model repository ---------------------------------------------------------------------
TRAIN_PY = '''"""Training code of a model repository."""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build_model(params):
    """An unfitted scaled logistic regression."""
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))])
'''
ENTRY_POINT = "entry_point: train:build_model\n"

#: name: (files of the repository, fragments the message must hold); each fails before a run.
REPOSITORY_CASES = {
    "no mlops.yaml": ({"train.py": TRAIN_PY}, ["no mlops.yaml in"]),
    "mlops.yaml without entry_point": (
        {"mlops.yaml": "name: breast-cancer\n", "train.py": TRAIN_PY},
        ["mlops.yaml: entry_point is required"],
    ),
    "unknown key in mlops.yaml": (
        {"mlops.yaml": ENTRY_POINT + "estimator: svm\n", "train.py": TRAIN_PY},
        ["mlops.yaml: unknown key(s) estimator", "valid keys"],
    ),
}


@pytest.fixture(scope="module")
def repositories(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-repositories")
    made = {}
    for number, (name, (repo_files, _)) in enumerate(REPOSITORY_CASES.items()):
        made[name] = root / f"repo-{number}"
        write_files(made[name], repo_files)
    return made


@pytest.mark.parametrize("case", list(REPOSITORY_CASES))
def test_bad_model_repository_exits_2_before_running(case, files, repositories, home, capfd):
    fragments = REPOSITORY_CASES[case][1]
    if case == "no mlops.yaml":
        # The user's folder, not the temporary copy the checks read.
        fragments = [f"no mlops.yaml in {repositories[case]}"]
    argv = args_for(files, recipe_uri=repositories[case])
    run_json(argv, capfd, home, *fragments)


def test_git_ref_not_found_exits_2_before_running(files, home, capfd, tmp_path):
    repo, _ = git_repository(
        tmp_path / "repo.git", {"mlops.yaml": ENTRY_POINT, "train.py": TRAIN_PY}
    )
    argv = args_for(files, recipe_uri=git_uri(repo, "no-such-branch"))
    run_json(argv, capfd, home, "git ref no-such-branch not found in", repo.resolve().as_uri())


# -- a bad model repository that only running its code shows (slow: the run starts) -------------
RAISING_PY = '''"""Training code whose entry point fails."""


def build_model(params):
    """Fails the way a data scientist's code can."""
    raise ValueError("the data scientist broke it")
'''
REGRESSOR_PY = '''"""Training code that builds a regressor instead of a classifier."""

from sklearn.linear_model import LinearRegression


def build_model(params):
    """An unfitted linear regression (no predict_proba)."""
    return LinearRegression()
'''

#: name: (fragments the message must hold, the error class the train task raised).
IN_TASK_CASES = {
    "entry point module not found": (
        ["entry point module 'missing_module' not found in the repository"],
        "UsageError",
    ),
    "entry point raises": (
        ["entry point train:build_model raised", "ValueError: the data scientist broke it"],
        "UsageError",
    ),
    "entry point returns no classifier": (
        ["entry point train:build_model returned LinearRegression", "no predict_proba"],
        "UsageError",
    ),
    "checked-in model expects a missing feature": (
        ["checked-in model model.skops expects feature(s) the training data lacks: extra_feature"],
        "DataError",
    ),
}


def checked_in_model(training_csv: Path) -> bytes:
    """A .skops model fitted on the training table plus a feature the run's data lacks."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlops.model.modelio import save_model

    frame = pd.read_csv(training_csv)
    features = frame.drop(columns=[TARGET]).assign(extra_feature=1.0)
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))])
    model.fit(features, frame[TARGET])
    path = training_csv.parent / "extra-feature.skops"
    save_model(model, path)
    return path.read_bytes()


def in_task_repository(case: str, training_csv: Path) -> dict[str, str | bytes]:
    if case == "entry point module not found":
        return {"mlops.yaml": "entry_point: missing_module:build_model\n", "train.py": TRAIN_PY}
    if case == "entry point raises":
        return {"mlops.yaml": ENTRY_POINT, "train.py": RAISING_PY}
    if case == "entry point returns no classifier":
        return {"mlops.yaml": ENTRY_POINT, "train.py": REGRESSOR_PY}
    return {
        "mlops.yaml": ENTRY_POINT + "model: model.skops\n",
        "train.py": TRAIN_PY,
        "model.skops": checked_in_model(training_csv),
    }


@dataclass
class TaskRun:
    """A ``mlops run training --json`` subprocess on its own bucket; output in files."""

    process: subprocess.Popen
    store: ObjectStore
    stdout_file: Path
    stderr_file: Path

    def finish(self) -> tuple[int, str, str]:
        code = self.process.wait(timeout=300)
        return code, self.stdout_file.read_text(), self.stderr_file.read_text()


@pytest.fixture(scope="module")
def in_task_runs(files, store_settings, tmp_path_factory):
    """Starts one run per case at once (each is a few pipeline tasks long)."""
    advisory_db = shared_path("advisory-db")
    runs: dict[str, TaskRun] = {}
    for number, case in enumerate(IN_TASK_CASES):
        root = tmp_path_factory.mktemp(f"in-task-{number}")
        write_files(root / "repo", in_task_repository(case, files["training"]))
        store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
        store.ensure_bucket()
        argv = args_for(files, recipe_uri=root / "repo", advisory_db_uri=advisory_db)
        out, err = root / "stdout.txt", root / "stderr.txt"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            process = subprocess.Popen(
                cli_command(*argv),
                env=cli_env(root / "home", store),
                cwd=REPO_ROOT,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        runs[case] = TaskRun(process, store, out, err)
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("case", list(IN_TASK_CASES))
def test_bad_repository_code_fails_the_train_task_with_exit_2(case, in_task_runs):
    fragments, error_class = IN_TASK_CASES[case]
    run = in_task_runs[case]
    code, out, err = run.finish()
    assert code == 2, f"exit {code}; stderr: {err[-3000:]}"
    payload = check_error_object(out, 2, *fragments)
    # The static gates passed; the repository's code ran (and failed) in the train task only.
    assert payload["failed_task"] == "train-model", payload
    assert payload["error_type"].endswith(error_class), payload
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in stderr: {err[-3000:]}"
    assert keys_under(run.store, "models/") == [], "nothing may be published"
    assert keys_under(run.store, "rejections/") == [], "a failed run is no rejection"
