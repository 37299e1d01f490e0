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
        data_fingerprint: Fingerprint of the full dataset (recorded in metadata).
        seed: Random seed.

    Returns:
        Test accuracy.
    """
    import logging
    import os

    import pandas as pd

    from mlops.core.data import fingerprint, parse_columns
    from mlops.model.packaging import write_model_dir
    from mlops.model.registry import new_version, validate_model_name
    from mlops.model.training import check_estimator, evaluate, train

    logging.basicConfig(level=logging.INFO)
    validate_model_name(model_name)
    check_estimator(estimator)
    train_frame = pd.read_parquet(train_data.path)
    test_frame = pd.read_parquet(test_data.path)
    fitted, schema = train(train_frame, target_column, estimator, seed)
    scores = evaluate(fitted, test_frame, target_column, schema, source="test split").metrics(
        "test"
    )
    version = new_version()
    os.makedirs(model.path, exist_ok=True)
    write_model_dir(
        model.path,
        fitted,
        model_name=model_name,
        version=version,
        schema=schema,
        target_column=target_column,
        estimator=estimator,
        drop_columns=parse_columns(drop_columns),
        metrics=scores,
        fingerprints={
            "data": data_fingerprint,
            "train": fingerprint(train_frame),
            "test": fingerprint(test_frame),
        },
        train_features=train_frame.drop(columns=[target_column]),
        params={"seed": seed},
        seed=seed,
    )
    model.metadata.update(
        {
            "model_name": model_name,
            "version": version,
            "estimator": estimator,
            "framework": "scikit-learn",
        }
    )
    for name, value in scores.items():
        metrics.log_metric(name, value)
    return scores["test_accuracy"]
