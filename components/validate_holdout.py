"""KFP component: the holdout-accuracy gate on an independent holdout."""

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
    min_accuracy: float = 0.8,
) -> NamedTuple("HoldoutOutputs", [("passed", bool), ("accuracy", float), ("gate", str)]):  # type: ignore[valid-type]
    """Scores the model on an independent holdout set and decides the accuracy gate.

    The holdout is given separately from the training data and checked not to
    overlap it: a holdout that shares most rows with the training split would
    vouch for nothing.

    Args:
        model: Model directory from training.
        train_data: Training split, for the independence check.
        holdout_uri: Labelled holdout table (path, file:// or s3://).
        metrics: Holdout scores.
        classification: Confusion matrix and, for binary targets, the ROC curve.
        min_accuracy: Gate threshold in [0, 1].

    Returns:
        passed: Gate decision. accuracy: Holdout accuracy. gate: GateResult JSON.
    """
    import logging

    import pandas as pd

    from mlops.release.holdout import validate_on_holdout

    logging.basicConfig(level=logging.INFO)
    gate, evaluation = validate_on_holdout(
        model.path, pd.read_parquet(train_data.path), holdout_uri, min_accuracy
    )
    for name, value in gate.metrics.items():
        metrics.log_metric(name, value)
    labels = [str(label) for label in evaluation.labels]
    classification.log_confusion_matrix(labels, evaluation.confusion_matrix)
    if evaluation.roc_curve:
        classification.log_roc_curve(
            evaluation.roc_curve["fpr"],
            evaluation.roc_curve["tpr"],
            evaluation.roc_curve["thresholds"],
        )
    return gate.passed, evaluation.accuracy, gate.to_json()
