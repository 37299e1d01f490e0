"""Reading a failed task's own exception out of the kfp.local stream (mlops.runs.local).

The streams below have the shape kfp.local prints (checked against real runs in
tests/integration/test_task_failures.py): a task's section runs from "Executing
task 'X'" to "Task 'X' finished with status ...", its subprocess lines indented
by four spaces, and tasks that do not depend on a failed one keep running.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mlops.core.errors import (
    EXIT_INVALID,
    EXIT_SYSTEM,
    EXIT_USAGE,
    exit_code_for_error_name,
)
from mlops.runs.local import TaskFailed, _StepReporter, last_exception

LOG = Path("/tmp/runs/run-1.log")

LOAD_SPLIT_FAILS = """\
20:01:11.978 - INFO - Executing task \x1b[96m'load-split'\x1b[0m
20:01:11.978 - INFO - Streamed logs:

    [KFP Executor 2026-12-01 20:01:12,351 INFO]: read 426 rows x 31 columns from data.csv
    Traceback (most recent call last):
      File "/opt/app/mlops/model/training.py", line 104, in split_dataset
        train, test = train_test_split(
                      ^^^^^^^^^^^^^^^^^
    sklearn.utils._param_validation.InvalidParameterError: random_state must be >= 0. Got -1.
    \n    The above exception was the direct cause of the following exception:
    \n    Traceback (most recent call last):
      File "<frozen runpy>", line 198, in _run_module_as_main
      File "/opt/app/mlops/model/training.py", line 108, in split_dataset
        raise DataError(f"cannot split {source}: {exc}") from exc
    mlops.core.errors.DataError: cannot split data.csv: random_state must be >= 0. Got -1.
    \n
20:01:13.574 - ERROR - Task \x1b[96m'load-split'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m
--------------------------------------------------------------------------------
20:01:13.575 - INFO - Executing task 'check-code-quality'
20:01:13.575 - INFO - Streamed logs:

    Traceback (most recent call last):
      File "x.py", line 1, in <module>
    ValueError: an unrelated task's handled error, logged
    [KFP Executor 2026-12-01 20:01:15,397 INFO]: Wrote executor output file
20:01:15.618 - INFO - Task 'check-code-quality' finished with status SUCCESS
"""


def fed(text: str) -> _StepReporter:
    reporter = _StepReporter(io.StringIO(), None)
    for line in text.splitlines(keepends=True):
        reporter.feed(line)
    return reporter


def test_the_failed_tasks_own_final_exception_is_reported():
    failure = fed(LOAD_SPLIT_FAILS).failure("Inner task failed: 'load-split'.", LOG)
    assert isinstance(failure, TaskFailed)
    assert failure.task == "load-split"
    assert failure.error_type == "mlops.core.errors.DataError"
    assert failure.exit_code == EXIT_USAGE
    assert str(failure) == (
        "task 'load-split' failed: DataError: cannot split data.csv: "
        f"random_state must be >= 0. Got -1. (full log: {LOG})"
    )
    assert "unrelated" not in str(failure) and "check-code-quality" not in str(failure)
    assert failure.details() == {
        "failed_task": "load-split",
        "error_type": "mlops.core.errors.DataError",
        "log_file": str(LOG),
    }


def test_no_failed_task_means_no_task_failure():
    succeeded = LOAD_SPLIT_FAILS.replace("\x1b[91mFAILURE", "\x1b[92mSUCCESS")
    assert fed(succeeded).failure("Inner task failed: 'load-split'.", LOG) is None


def test_the_task_kfp_names_is_preferred_over_an_earlier_failure():
    second = (
        "Executing task 'publish-model'\n"
        "    Traceback (most recent call last):\n"
        '      File "p.py", line 3, in publish\n'
        "    mlops.core.errors.StoreError: store unreachable\n"
        "Task 'publish-model' finished with status FAILURE\n"
    )
    failure = fed(LOAD_SPLIT_FAILS + second).failure(
        "Inner task failed: \x1b[96m'publish-model'\x1b[0m inside 'condition-1'.", LOG
    )
    assert failure is not None and failure.task == "publish-model"
    assert failure.exit_code == EXIT_SYSTEM and "StoreError: store unreachable" in str(failure)


def test_a_task_that_printed_no_traceback_shows_its_last_lines():
    killed = (
        "Executing task 'train-model'\n"
        "    fitting 400 rows\n"
        "    half way\n\n"
        "Task 'train-model' finished with status FAILURE\n"
    )
    failure = fed(killed).failure("Inner task failed: 'train-model'.", LOG)
    assert failure is not None and failure.exit_code == EXIT_SYSTEM
    assert failure.error_type == ""
    assert "printed no exception" in str(failure) and "half way" in str(failure)


@pytest.mark.parametrize(
    "lines, expected",
    [
        (
            ["    Traceback (most recent call last):", '      File "a.py"', "    KeyError: 'x'"],
            ("KeyError", "'x'"),
        ),
        (["Traceback (most recent call last):", '  File "a.py"', "SystemExit"], ("SystemExit", "")),
        (
            [
                "  Traceback (most recent call last):",
                '    File "a.py", line 1',
                "  mlops.core.errors.DataError: first line",
                "  second line",
            ],
            ("mlops.core.errors.DataError", "first line\nsecond line"),
        ),
        (["no traceback at all", "ValueError: looks like one"], None),
    ],
)
def test_last_exception(lines, expected):
    assert last_exception(lines) == expected


@pytest.mark.parametrize(
    "name, code",
    [
        ("mlops.core.errors.DataError", EXIT_USAGE),
        ("mlops.core.errors.UsageError", EXIT_USAGE),
        ("DataError", EXIT_USAGE),
        ("mlops.core.errors.VerificationError", EXIT_INVALID),
        ("mlops.core.errors.WriteConflict", EXIT_SYSTEM),
        ("mlops.core.errors.MlopsError", EXIT_SYSTEM),
        ("ValueError", EXIT_SYSTEM),
        ("someone.else.DataError", EXIT_SYSTEM),
        ("", EXIT_SYSTEM),
    ],
)
def test_exit_code_for_error_name(name, code):
    assert exit_code_for_error_name(name) == code
