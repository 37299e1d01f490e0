"""KFP component: the holdout-accuracy and champion/challenger gates on an independent holdout."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def validate_holdout(
    model: Input[Model],
    train_data: Input[Dataset],
    holdout_uri: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    champion: Output[Metrics],
    min_accuracy: float = 0.8,
    max_regression: float = 0.0,
    champion_metric: str = "accuracy",
) -> NamedTuple(  # type: ignore[valid-type]
    "HoldoutOutputs",
    [
        ("passed", bool),
        ("accuracy", float),
        ("gate", str),
        ("regression_gate", str),
        ("holdout_fingerprint", str),
    ],
):
    """Scores the candidate on an independent holdout, and the model in production on the same rows.

    The holdout is given separately from the training data and checked not to
    overlap it: a holdout that shares most rows with the training split would
    vouch for nothing. The deployed stable version of the same model (the
    champion) is verified like a served model and scored on the same rows.

    Args:
        model: Model directory from training.
        train_data: Training split, for the independence check.
        holdout_uri: Labelled holdout table (path, file:// or s3://).
        metrics: Holdout scores.
        classification: Confusion matrix and, for binary targets, the ROC curve.
        champion: Candidate and champion scores side by side, McNemar p-value.
        min_accuracy: Holdout accuracy threshold in [0, 1].
        max_regression: How far below the champion's score the candidate may be, in [0, 1].
        champion_metric: What the champion is compared on: accuracy or f1_macro.

    Returns:
        passed: Holdout gate decision. accuracy: Holdout accuracy. gate: GateResult JSON.
        regression_gate: GateResult JSON of no_regression. holdout_fingerprint: The holdout's.
    """
    import logging

    import pandas as pd

    from mlops.release.holdout import validate_release

    logging.basicConfig(level=logging.INFO)
    result = validate_release(
        model.path,
        pd.read_parquet(train_data.path),
        holdout_uri,
        min_accuracy,
        max_regression=max_regression,
        champion_metric=champion_metric,
    )
    for name, value in result.holdout_gate.metrics.items():
        metrics.log_metric(name, value)
    for name, value in result.regression_gate.metrics.items():
        champion.log_metric(name, value)
    champion.log_metric("no_regression_passed", float(result.regression_gate.passed))
    evaluation = result.evaluation
    labels = [str(label) for label in evaluation.labels]
    classification.log_confusion_matrix(labels, evaluation.confusion_matrix)
    if evaluation.roc_curve:
        classification.log_roc_curve(
            evaluation.roc_curve["fpr"],
            evaluation.roc_curve["tpr"],
            evaluation.roc_curve["thresholds"],
        )
    return (
        result.holdout_gate.passed,
        evaluation.accuracy,
        result.holdout_gate.to_json(),
        result.regression_gate.to_json(),
        result.holdout_fingerprint,
    )
