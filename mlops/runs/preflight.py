"""Checks run before a pipeline starts, so bad input fails fast with exit code 2.

The same functions run again inside the components (on a cluster nothing
checks before); here they turn a failed task into a message that names the
problem.
"""

from __future__ import annotations

from typing import Any

from mlops.core.data import check_readable, read_table
from mlops.core.errors import UsageError
from mlops.core.rules import check_canary_percent, check_deploy_mode, check_fraction
from mlops.model.registry import validate_model_name
from mlops.model.training import check_estimator, prepare_frame


def check_deploy(mode: str, canary_percent: int) -> None:
    """The pipeline's ``deploy`` mode and, for a canary, its ``canary_percent``.

    Raises:
        UsageError: an unknown mode or a canary percent outside 1-99.
    """
    check_deploy_mode(mode, name="deploy")
    if mode == "canary":
        check_canary_percent(canary_percent)


def check_training(arguments: dict[str, Any]) -> None:
    """Parameters, data and holdout of a ``training`` run.

    Raises:
        UsageError: the first problem found, named.
    """
    validate_model_name(arguments["model_name"])
    check_fraction("min_accuracy", arguments.get("min_accuracy", 0.8), inclusive=True)
    check_fraction("test_size", arguments.get("test_size", 0.2))
    check_estimator(arguments.get("estimator", "logistic_regression"))
    check_deploy(arguments.get("deploy", "none"), arguments.get("canary_percent", 10))
    target = arguments["target_column"]
    data = read_table(arguments["data_uri"])
    prepared = prepare_frame(
        data, target, arguments.get("drop_columns", ""), source=arguments["data_uri"]
    )
    holdout = read_table(arguments["holdout_uri"])
    if target not in holdout.columns:
        raise UsageError(
            f"target column {target!r} not found in holdout {arguments['holdout_uri']!r}; "
            f"columns are: {', '.join(map(str, holdout.columns))}"
        )
    missing = [c for c in prepared.columns if c not in holdout.columns]
    if missing:
        raise UsageError(
            f"holdout {arguments['holdout_uri']!r} lacks feature column(s) the model will "
            f"use: {', '.join(map(str, missing))}"
        )


def check_monitoring(arguments: dict[str, Any]) -> None:
    """Parameters and tables of a ``monitoring`` run (the drift data itself is checked in the run)."""
    validate_model_name(arguments["model_name"])
    check_fraction("min_accuracy", arguments.get("min_accuracy", 0.8), inclusive=True)
    check_fraction("test_size", arguments.get("test_size", 0.2))
    check_fraction(
        "drift_share_threshold", arguments.get("drift_share_threshold", 0.5), allow_one=True
    )
    if float(arguments.get("window_hours", 24.0)) <= 0:
        raise UsageError(f"window_hours must be positive, got {arguments['window_hours']}")
    check_deploy("canary", arguments.get("canary_percent", 10))
    # Existence only: the retraining tables are read only on drift, the production
    # table by the drift step itself; reading them here would double the work.
    for name in ("retrain_data_uri", "holdout_uri", "current_uri"):
        if arguments.get(name):
            check_readable(arguments[name])
