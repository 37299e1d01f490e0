"""A release candidate: one trained, scored and packaged (unsigned) model directory.

:func:`train_candidate` is the whole training step of the pipeline in one call,
so the ``train_model`` component only hands over its artifact paths: check the
name and estimator, fit on the training split, score on the test split, and
write the model directory (model, metadata, drift reference, requirements).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlops.core.data import fingerprint, parse_columns
from mlops.model.packaging import write_model_dir
from mlops.model.registry import new_version, validate_model_name
from mlops.model.training import check_estimator, evaluate, train

logger = logging.getLogger(__name__)

FRAMEWORK = "scikit-learn"


@dataclass(frozen=True)
class Candidate:
    """A model directory written by :func:`train_candidate`, not yet gated or signed.

    Attributes:
        model_dir: The directory holding the model files.
        model_name: Registry name of the model.
        version: Version id the candidate would be published under.
        estimator: Estimator name it was trained with.
        metrics: Test-split scores (``test_accuracy``, ``test_f1_macro``, ...).
    """

    model_dir: Path
    model_name: str
    version: str
    estimator: str
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, str]:
        """Name, version, estimator and framework: what a pipeline shows next to the model."""
        return {
            "model_name": self.model_name,
            "version": self.version,
            "estimator": self.estimator,
            "framework": FRAMEWORK,
        }


def train_candidate(
    train_path: str | Path,
    test_path: str | Path,
    model_dir: str | Path,
    *,
    target_column: str,
    model_name: str,
    estimator: str = "logistic_regression",
    drop_columns: str = "",
    categorical_columns: str = "",
    data_fingerprint: str = "",
    seed: int = 42,
) -> Candidate:
    """Trains on the training split, scores on the test split and writes the model directory.

    Args:
        train_path: Training split (Parquet).
        test_path: Test split (Parquet).
        model_dir: Where the model directory goes (created if missing).
        target_column: Label column.
        model_name: Registry name of the model.
        estimator: logistic_regression, random_forest or gradient_boosting.
        drop_columns: Comma-separated columns dropped before training (kept in the recipe).
        categorical_columns: Comma-separated columns that are categorical whatever
            their values look like (kept in the recipe, ``params``, so retraining
            types them the same way).
        data_fingerprint: Fingerprint of the full dataset (kept in the metadata).
        seed: Random seed of training and of the drift reference sample.

    Returns:
        The candidate.

    Raises:
        UsageError: The model name or the estimator is invalid.
        DataError: The test split lacks the target or a feature, or a declared
            categorical column is not a feature.
    """
    # Bad parameters fail before any data is read.
    validate_model_name(model_name)
    check_estimator(estimator)
    train_frame = pd.read_parquet(train_path)
    test_frame = pd.read_parquet(test_path)
    declared = parse_columns(categorical_columns)
    fitted, schema = train(train_frame, target_column, estimator, seed, declared)
    evaluation = evaluate(fitted, test_frame, target_column, schema, source="test split")
    metrics = evaluation.metrics("test")
    version = new_version()
    write_model_dir(
        Path(model_dir),
        fitted,
        model_name=model_name,
        version=version,
        schema=schema,
        target_column=target_column,
        estimator=estimator,
        drop_columns=parse_columns(drop_columns),
        metrics=metrics,
        fingerprints={
            "data": data_fingerprint,
            "train": fingerprint(train_frame),
            "test": fingerprint(test_frame),
        },
        train_features=train_frame.drop(columns=[target_column]),
        params={"seed": seed, "categorical_columns": declared},
        seed=seed,
    )
    logger.info("candidate %s %s: %s", model_name, version, metrics)
    return Candidate(Path(model_dir), model_name, version, estimator, metrics)
