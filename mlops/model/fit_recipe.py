"""The child process that runs a model repository's entry point: build, fit, score, save.

Started by :func:`mlops.model.candidate.train_candidate` through
:func:`mlops.model.sandbox.run_child` (``python -m mlops.model.fit_recipe REQUEST``),
in an environment without the project's secrets. The repository's modules are
imported here and nowhere else. Everything that goes wrong is written to
``result.json`` as an ``error`` with the project's error class name, so the parent
raises what a person can act on: a missing module, a function that raised (with
its traceback's last lines), an object that is not a classifier.

Request (``request.json``): ``repo_dir``, ``entry_point`` (``module:function``),
``params``, ``target_column``, ``schema`` (feature-schema metadata), ``train_path``,
``test_path``, ``model_path``. Result: ``classes``, ``metrics`` (test split),
``estimator`` (the fitted object's type).
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.core.errors import DataError, MlopsError, UsageError
from mlops.model.sandbox import RESULT_FILE

#: Lines of a traceback kept in the message when the repository's code raises.
TRACEBACK_LINES = 6


def _traceback_tail(exc: BaseException) -> str:
    lines = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    return "\n".join(lines[-TRACEBACK_LINES:])


def load_entry_point(repo_dir: Path, entry_point: str) -> Callable[..., Any]:
    """Imports ``module:function`` from the repository (its root first on ``sys.path``).

    Raises:
        UsageError: the entry point is malformed, its module or function is missing,
            or importing the module raised (the traceback's last lines included).
    """
    module_name, _, function_name = entry_point.partition(":")
    if not module_name or not function_name:
        raise UsageError(f"entry_point {entry_point!r} is not module:function")
    sys.path.insert(0, str(repo_dir))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(
                f"entry point module {module_name!r} not found in the repository"
            ) from None
        raise UsageError(f"importing {module_name!r} failed:\n{_traceback_tail(exc)}") from None
    except (Exception, SystemExit) as exc:  # the repository's own code raised at import time
        raise UsageError(f"importing {module_name!r} failed:\n{_traceback_tail(exc)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"entry point function {function_name!r} not found in {module_name!r}")
    return function


def build_estimator(repo_dir: Path, entry_point: str, params: dict[str, Any]) -> Any:
    """Calls the entry point with ``params``; returns the unfitted estimator it built.

    Raises:
        UsageError: see :func:`load_entry_point`; the function raised; or what it
            returned has no ``fit`` or no ``predict_proba``.
    """
    function = load_entry_point(repo_dir, entry_point)
    try:
        estimator = function(params)
    except (Exception, SystemExit) as exc:
        raise UsageError(f"entry point {entry_point} raised:\n{_traceback_tail(exc)}") from None
    missing = [name for name in ("fit", "predict_proba") if not hasattr(estimator, name)]
    if missing:
        raise UsageError(
            f"entry point {entry_point} returned {type(estimator).__name__}, which has no "
            f"{' or '.join(missing)}: it must return a scikit-learn classifier (or a Pipeline "
            "ending in one)"
        )
    return estimator


def fit_and_score(request: dict[str, Any]) -> dict[str, Any]:
    """Builds the repository's estimator, fits it on the training split and scores the test split."""
    import pandas as pd

    from mlops.model.modelio import save_model
    from mlops.model.schema import FeatureSchema, coerce
    from mlops.model.training import evaluate

    schema = FeatureSchema.from_metadata(request["schema"])
    target = request["target_column"]
    estimator = build_estimator(
        Path(request["repo_dir"]), request["entry_point"], dict(request["params"])
    )
    train = pd.read_parquet(request["train_path"])
    try:
        estimator.fit(coerce(train, schema, source="training data"), train[target])
    except MlopsError:
        raise
    except (Exception, SystemExit) as exc:
        raise UsageError(
            f"fitting the estimator of {request['entry_point']} failed:\n{_traceback_tail(exc)}"
        ) from None
    if not hasattr(estimator, "classes_"):
        raise UsageError(
            f"the estimator of {request['entry_point']} has no classes_ after fit: "
            "it must be a classifier"
        )
    test = pd.read_parquet(request["test_path"])
    evaluation = evaluate(estimator, test, target, schema, source="test split")
    save_model(estimator, Path(request["model_path"]))
    return {
        "classes": [c.item() if hasattr(c, "item") else c for c in estimator.classes_],
        "metrics": evaluation.metrics("test"),
        "estimator": describe(estimator),
    }


def describe(estimator: Any) -> str:
    """A short name of a fitted estimator: its class, and a Pipeline's last step."""
    name = type(estimator).__name__
    steps = getattr(estimator, "steps", None)
    if steps:
        return f"{name}[{type(steps[-1][1]).__name__}]"
    return name


def main(argv: list[str]) -> int:
    """Runs the request named by ``argv[0]``; writes ``result.json`` beside it."""
    request_path = Path(argv[0])
    result_path = request_path.parent / RESULT_FILE
    try:
        result = fit_and_score(json.loads(request_path.read_text()))
        code = 0
    except (UsageError, DataError) as exc:
        result = {"error": {"type": type(exc).__name__, "message": str(exc)}}
        code = exc.exit_code
    except Exception as exc:  # our own failure: keep the whole message for the log
        traceback.print_exc()
        result = {"error": {"type": "MlopsError", "message": f"{type(exc).__name__}: {exc}"}}
        code = 1
    result_path.write_text(json.dumps(result, sort_keys=True, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
