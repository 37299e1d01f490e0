"""A failure inside a pipeline task, on a real kfp.local run, names the task and its own exception.

Issue 9, finding 8: ``seed=-1``, an ``inf`` cell, an unlabelled holdout row and
a class with one row each ended in "Inner task failed: X" (exit 1) with the log
lines of whichever task ran last, and ``--json`` printed nothing. Pre-run checks
now catch those four (tests/integration/test_cli_bad_input.py); here they are
switched off, so the same inputs fail inside the tasks as they still would on
a cluster, where nothing checks before the run.

A small pipeline of test components shows the mapping quickly: a ``DataError``
in a task exits 2, any other exception 1, a task that dies without a traceback
1 with its last lines. The training pipeline cases are slow (4-13 s each: the
tasks that do not depend on the failed one keep running).
"""

# No ``from __future__ import annotations``: kfp reads the components' annotations as types.
import json

import numpy as np
import pandas as pd
import pytest
from kfp import dsl

from mlops.cli import main
from mlops.core.errors import EXIT_SYSTEM, EXIT_USAGE, exit_code_for_error_name
from mlops.runtime import COMPONENT_KWARGS
from tests.training_helpers import TARGET, demo_data, single_json, training_args


# -- a small pipeline whose tasks fail on purpose ------------------------------------------------
@dsl.component(**COMPONENT_KWARGS)
def reject_data(column: str) -> str:
    """Logs a little, then fails the way a library function does on bad data."""
    import logging

    from mlops.core.errors import DataError

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("reject").info("read 10 rows")
    try:
        float("abc")
    except ValueError as exc:
        raise DataError(f"column {column!r} holds 3 values that are not numbers") from exc
    return column


@dsl.component(**COMPONENT_KWARGS)
def crash() -> str:
    """Fails with a plain exception, not one of the project's errors."""
    raise ZeroDivisionError("the divisor came out as 0")


@dsl.component(**COMPONENT_KWARGS)
def die() -> str:
    """Ends its process without a traceback, as a killed task does."""
    import os

    print("half way through", flush=True)
    os._exit(3)


@dsl.component(**COMPONENT_KWARGS)
def chatter() -> str:
    """An independent task whose log looks like an error (it is not the failure)."""
    print("Traceback (most recent call last):")
    print("ValueError: chatter from another task")
    return "ok"


@dsl.pipeline(name="failing")
def failing(fault: str = "data", deploy_target: str = "local") -> None:
    """Runs ``chatter`` and one failing task (``deploy_target`` is what local runs add)."""
    chatter()
    with dsl.If(fault == "data"):
        reject_data(column="mean_radius")
    with dsl.If(fault == "crash"):
        crash()
    with dsl.If(fault == "die"):
        die()


@pytest.fixture
def home(tmp_path, store_env, monkeypatch):
    """MLOPS_HOME in tmp, the test store's settings, signing keys in that home."""
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(home / "keys" / "signing-key.pem"))
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEY", str(home / "keys" / "signing-key.pub.pem"))
    return home


@pytest.fixture
def failing_pipeline(monkeypatch):
    import pipelines

    monkeypatch.setitem(pipelines.PIPELINES, "failing", failing)


def run_main(argv: list[str], capfd) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def test_a_data_error_in_a_task_exits_2_with_its_message(home, failing_pipeline, capfd):
    code, out, err = run_main(["run", "failing", "--json", "-p", "fault=data"], capfd)
    assert code == EXIT_USAGE, err
    payload = single_json(out)
    message = "task 'reject-data' failed: DataError: column 'mean_radius' holds 3 values"
    assert payload["status"] == "error" and payload["exit_code"] == EXIT_USAGE
    assert payload["error"].startswith(message), payload
    assert payload["failed_task"] == "reject-data"
    assert payload["error_type"] == "mlops.core.errors.DataError"
    assert "chatter" not in payload["error"]
    log_file = home / "runs" / payload["log_file"].rsplit("/", 1)[1]
    assert log_file.is_file() and "holds 3 values" in log_file.read_text()
    assert f"error: {message}" in err


def test_another_exception_in_a_task_exits_1(home, failing_pipeline, capfd):
    code, out, err = run_main(["run", "failing", "-p", "fault=crash"], capfd)
    assert code == EXIT_SYSTEM
    assert out == "", "without --json stdout stays empty"
    assert "error: task 'crash' failed: ZeroDivisionError: the divisor came out as 0" in err
    assert "chatter from another task" not in err


def test_a_task_without_traceback_shows_its_last_lines(home, failing_pipeline, capfd):
    code, out, err = run_main(["run", "failing", "--json", "-p", "fault=die"], capfd)
    assert code == EXIT_SYSTEM
    payload = single_json(out)
    assert payload["failed_task"] == "die" and payload["exit_code"] == EXIT_SYSTEM
    assert "printed no exception" in payload["error"]
    assert "half way through" in payload["error"]


# -- the training pipeline, with the pre-run checks switched off ---------------------------------
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("task-failures")
    training_csv, holdout_csv = demo_data(root)
    frame, holdout = pd.read_csv(training_csv), pd.read_csv(holdout_csv)
    infinite = frame.copy()
    infinite.loc[3, "mean_radius"] = np.inf
    infinite.to_csv(root / "infinite.csv", index=False)
    unlabelled = holdout.copy()
    unlabelled.loc[2, TARGET] = np.nan
    unlabelled.to_csv(root / "unlabelled-row.csv", index=False)
    lone = frame.copy()
    lone.loc[5, TARGET] = "unsure"
    lone.to_csv(root / "lone-class.csv", index=False)
    bad_recipe = root / "bad-recipe"
    bad_recipe.mkdir()
    (bad_recipe / "mlops.yaml").write_text("entry_point: train:build_model\nestimator: svm\n")
    return {
        "bad-recipe": bad_recipe,
        "training": training_csv,
        "holdout": holdout_csv,
        "infinite": root / "infinite.csv",
        "unlabelled-row": root / "unlabelled-row.csv",
        "lone-class": root / "lone-class.csv",
    }


TRAINING_CASES = {
    # case: (data, holdout, extra params, failed task, fragments of the message)
    "negative seed": ("training", "holdout", {"seed": -1}, "load-split", ["random_state", "-1"]),
    "class with one row": (
        "lone-class",
        "holdout",
        {},
        "load-split",
        ["'unsure'", "fewer than 2 rows"],
    ),
    # Caught where the data is split and scored, so a cluster run (no preflight) says it too.
    "infinite cell": ("infinite", "holdout", {}, "load-split", ["infinite", "'mean_radius' (1)"]),
    "unlabelled holdout row": (
        "training",
        "unlabelled-row",
        {},
        "validate-holdout",
        ["missing value", "every row must be labelled"],
    ),
    # The fetch step reads mlops.yaml again: a cluster run says what the checks say locally.
    "bad mlops.yaml": (
        "training",
        "holdout",
        {"recipe_uri": "bad-recipe"},
        "fetch-repository",
        ["mlops.yaml: unknown key(s) estimator"],
    ),
}
#: The static gates must pass for a run to reach the tasks above; without an advisory
#: database the audit could not check, which these runs allow.
STATIC_GATES_PASS = {"allow_unknown_audit": "true"}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TRAINING_CASES))
def test_training_task_failures_name_the_task_and_cause(case, bad_files, home, monkeypatch, capfd):
    data, holdout, params, task, fragments = TRAINING_CASES[case]
    monkeypatch.setattr("mlops.runs.preflight.check_training", lambda arguments: None)
    params = {k: bad_files.get(v, v) if k == "recipe_uri" else v for k, v in params.items()}
    argv = training_args(bad_files[data], bad_files[holdout], **params, **STATIC_GATES_PASS)
    code, out, err = run_main(argv, capfd)
    payload = single_json(out)
    assert payload["status"] == "error" and payload["failed_task"] == task, payload
    assert payload["error"].startswith(f"task {task!r} failed: "), payload
    for fragment in fragments:
        assert fragment in payload["error"], payload
    # The exit code is the one the task's error class stands for (a DataError: 2).
    assert code == payload["exit_code"] == exit_code_for_error_name(payload["error_type"])
    if payload["error_type"].endswith("DataError"):
        assert code == EXIT_USAGE
    # Not the lines of a task that ran after the failed one.
    assert "check-code-quality" not in payload["error"]
    assert f"error: {payload['error']}" in err
    assert json.loads(out) == payload
