"""Checks run before a pipeline starts, so bad input fails fast with exit code 2.

The same functions run again inside the components (on a cluster nothing
checks before); here they turn a failed task into a message that names the
problem.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.core.data import check_readable
from mlops.core.errors import UsageError
from mlops.core.rules import (
    WEIGHTED_STRATEGIES,
    check_canary_percent,
    check_deploy_mode,
    check_fraction,
)
from mlops.model.registry import validate_model_name

#: The seeds scikit-learn accepts (``random_state``: a 32-bit unsigned integer).
MAX_SEED = 2**32 - 1


def check_seed(seed: Any) -> int:
    """A random seed: a whole number in [0, :data:`MAX_SEED`].

    Raises:
        UsageError: anything else, naming ``seed``.
    """
    try:
        value = int(seed)
    except (TypeError, ValueError):
        raise UsageError(f"seed must be a whole number, got {seed!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise UsageError(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    return value


#: What the pipelines' ``min_accuracy`` parameter holds when it is not given.
MIN_ACCURACY_NOT_GIVEN = -1.0


def check_min_accuracy(value: Any) -> float:
    """A ``min_accuracy`` parameter: a number in [0, 1], or -1 for "not given".

    Only -1 means "not given" (then the repository's ``mlops.yaml`` or the default
    decides); any other negative number is a mistake, never a silent default.

    Raises:
        UsageError: anything else, naming ``min_accuracy`` and the value.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"min_accuracy must be a number, got {value!r}") from None
    if number == MIN_ACCURACY_NOT_GIVEN:
        return number
    return check_fraction("min_accuracy", number, inclusive=True)


def check_deploy(mode: str, canary_percent: int) -> None:
    """The pipeline's ``deploy`` mode and, for a canary, its ``canary_percent``.

    Raises:
        UsageError: an unknown mode or a canary percent outside 1-99.
    """
    check_deploy_mode(mode, name="deploy")
    if mode in WEIGHTED_STRATEGIES:
        check_canary_percent(canary_percent)


#: The training parameters a repository's ``mlops.yaml`` may supply.
REPOSITORY_PARAMETERS = (
    "target_column",
    "model_name",
    "min_accuracy",
    "drop_columns",
    "categorical_columns",
)


def repository_parameters(arguments: dict[str, Any]) -> dict[str, Any]:
    """The run's values of :data:`REPOSITORY_PARAMETERS`, settled against the repository's mlops.yaml.

    The repository is fetched into a temporary folder and only its ``mlops.yaml``
    is read; none of its code runs.

    Raises:
        UsageError: the repository cannot be fetched, its mlops.yaml is bad, or a
            required value is given nowhere.
    """
    from mlops.repository.checkout import checkout, recipe_uri_for

    overrides = {key: arguments[key] for key in REPOSITORY_PARAMETERS if key in arguments}
    overrides.setdefault("min_accuracy", MIN_ACCURACY_NOT_GIVEN)
    estimator = arguments.get("estimator", "logistic_regression")
    with tempfile.TemporaryDirectory(prefix="mlops-preflight-") as work:
        dest = Path(work) / "repository"
        try:
            result = checkout(arguments.get("recipe_uri", ""), dest, overrides, estimator=estimator)
        except UsageError as exc:
            # The folder is this check's own copy, gone when it returns: name the recipe.
            recipe = recipe_uri_for(arguments.get("recipe_uri", ""), estimator)
            raise type(exc)(str(exc).replace(str(dest), recipe)) from None
    return result.values


def check_training(arguments: dict[str, Any]) -> None:
    """Parameters, repository, data and holdout of a ``training`` run.

    The data is split as the ``load-split`` task will split it, so what would
    fail there (a class too rare to stratify, a test split smaller than the
    number of classes) fails here, before anything runs.

    Raises:
        UsageError: the first problem found, named (a DataError for the data).
    """
    from mlops.model.training import check_estimator
    from mlops.repository.checkout import recipe_uri_for

    test_size = check_fraction("test_size", arguments.get("test_size", 0.2))
    seed = check_seed(arguments.get("seed", 42))
    estimator = arguments.get("estimator", "logistic_regression")
    # The CLI pins recipe_uri before these checks, so a run that names no recipe
    # arrives with builtin:<estimator>: name the estimator parameter, not the URI.
    if arguments.get("recipe_uri", "") in ("", recipe_uri_for("", estimator)):
        check_estimator(estimator)
    check_min_accuracy(arguments.get("min_accuracy", MIN_ACCURACY_NOT_GIVEN))
    check_deploy(arguments.get("deploy", "none"), arguments.get("canary_percent", 10))
    values = repository_parameters(arguments)
    validate_model_name(values["model_name"])
    check_fraction("min_accuracy", values["min_accuracy"], inclusive=True)
    _in_child(
        check_training_data,
        arguments["data_uri"],
        arguments["holdout_uri"],
        values["target_column"],
        test_size=test_size,
        seed=seed,
        drop_columns=values["drop_columns"],
        categorical_columns=values["categorical_columns"],
    )


def check_training_data(
    data_uri: str,
    holdout_uri: str,
    target: str,
    *,
    test_size: float,
    seed: int,
    drop_columns: str | list[str],
    categorical_columns: str | list[str],
) -> None:
    """The training table and holdout as ``load-split`` and ``validate-holdout`` will check them.

    The data is split as the ``load-split`` task will split it, so what would fail
    there (an infinite cell, a class too rare to stratify, a test split smaller
    than the number of classes) fails here, without copying the table into train
    and test parts.

    Raises:
        DataError: the first problem found, named.
    """
    from mlops.core.data import read_table
    from mlops.model.data_checks import check_finite, check_labelled
    from mlops.model.training import check_split

    data = read_table(data_uri)
    features = check_split(
        data,
        target,
        test_size,
        seed,
        drop_columns,
        source=f"data {data_uri!r}",
        categorical_columns=categorical_columns,
    )
    del data
    holdout = read_table(holdout_uri)
    check_labelled(holdout, target, f"holdout {holdout_uri!r}")
    missing = [c for c in features if c not in holdout.columns]
    if missing:
        raise UsageError(
            f"holdout {holdout_uri!r} lacks feature column(s) the model will "
            f"use: {', '.join(map(str, missing))}"
        )
    check_finite(holdout, f"holdout {holdout_uri!r}", features)


def _in_child(check: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Runs ``check`` (a function of this module) in a short-lived child process.

    Reading a table of a million rows leaves the reading process hundreds of MiB
    larger (pandas, scikit-learn and Arrow's memory pool keep what they took), and
    the CLI then waits beside every pipeline task for the whole run. In a child,
    that memory goes back when the check ends. The child inherits the environment
    (an ``s3://`` table needs the store's settings) and reports an error as
    ``{"type", "message"}``, raised here as the same error class.

    Raises:
        MlopsError: what the check raised (a DataError for the data), or the child
            died without saying why.
    """
    import json
    import subprocess
    import sys

    from mlops.core.errors import MlopsError, error_from_name

    request = json.dumps({"check": check.__name__, "args": args, "kwargs": kwargs})
    done = subprocess.run(  # noqa: S603 - our own module, list arguments
        [sys.executable, "-m", __name__],
        input=request,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return
    try:
        error = json.loads(done.stdout)
    except ValueError:
        tail = done.stderr.strip().splitlines()[-5:]
        raise MlopsError(
            f"the pre-run data check exited with code {done.returncode}: " + "\n".join(tail)
        ) from None
    raise error_from_name(error["type"], error["message"])


def _child_main() -> int:
    """The child of :func:`_in_child`: the request on stdin, an error object on stdout."""
    import json
    import sys

    from mlops.core.errors import MlopsError

    request = json.loads(sys.stdin.read())
    check = {"check_training_data": check_training_data}[request["check"]]
    try:
        check(*request["args"], **request["kwargs"])
    except MlopsError as exc:
        json.dump({"type": type(exc).__name__, "message": str(exc)}, sys.stdout)
        return exc.exit_code
    return 0


def check_monitoring(arguments: dict[str, Any]) -> None:
    """Parameters and tables of a ``monitoring`` run (the drift data itself is checked in the run)."""
    validate_model_name(arguments["model_name"])
    check_min_accuracy(arguments.get("min_accuracy", MIN_ACCURACY_NOT_GIVEN))
    check_fraction("test_size", arguments.get("test_size", 0.2))
    check_fraction(
        "drift_share_threshold", arguments.get("drift_share_threshold", 0.5), allow_one=True
    )
    if float(arguments.get("window_hours", 24.0)) <= 0:
        raise UsageError(f"window_hours must be positive, got {arguments['window_hours']}")
    check_deploy("canary", arguments.get("canary_percent", 10))
    check_seed(arguments.get("seed", 42))
    # Existence only: the retraining tables are read only on drift, the production
    # table by the drift step itself; reading them here would double the work.
    for name in ("retrain_data_uri", "holdout_uri", "current_uri"):
        if arguments.get(name):
            check_readable(arguments[name])


if __name__ == "__main__":
    raise SystemExit(_child_main())
