"""KFP component: train, score and package a candidate model."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def train_model(
    train_data: Input[Dataset],
    test_data: Input[Dataset],
    target_column: str,
    model_name: str,
    model: Output[Model],
    metrics: Output[Metrics],
    estimator: str = "logistic_regression",
    drop_columns: str = "",
    categorical_columns: str = "",
    data_fingerprint: str = "",
    seed: int = 42,
) -> float:
    """Trains a scikit-learn Pipeline and writes the model directory.

    Args:
        train_data: Training split (Parquet).
        test_data: Test split (Parquet), scored into ``metrics``.
        target_column: Label column.
        model_name: Registry name of the model.
        model: Model directory (model.skops, metadata.json, reference.parquet, requirements.txt).
        metrics: Test-split scores for the Kubeflow UI.
        estimator: logistic_regression, random_forest or gradient_boosting.
        drop_columns: Columns dropped before training (recorded in the recipe).
        categorical_columns: Comma-separated columns that are categorical whatever
            their values look like (recorded in the recipe).
        data_fingerprint: Fingerprint of the full dataset (recorded in metadata).
        seed: Random seed.

    Returns:
        Test accuracy.
    """
    import logging

    from mlops.model.candidate import train_candidate

    logging.basicConfig(level=logging.INFO)
    candidate = train_candidate(
        train_data.path,
        test_data.path,
        model.path,
        target_column=target_column,
        model_name=model_name,
        estimator=estimator,
        drop_columns=drop_columns,
        categorical_columns=categorical_columns,
        data_fingerprint=data_fingerprint,
        seed=seed,
    )
    model.metadata.update(candidate.summary())
    for name, value in candidate.metrics.items():
        metrics.log_metric(name, value)
    return candidate.metrics["test_accuracy"]
