"""KFP component: train (or adopt) the repository's model, score and package it."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def train_model(
    train_data: Input[Dataset],
    test_data: Input[Dataset],
    repository: Input[Artifact],
    target_column: str,
    model_name: str,
    model: Output[Model],
    metrics: Output[Metrics],
    drop_columns: str = "",
    categorical_columns: str = "",
    data_fingerprint: str = "",
    seed: int = 42,
    source: str = "",
    use_checked_in_model: bool = True,
) -> float:
    """Fits the estimator the repository's entry point builds, or adopts its checked-in model.

    The repository's code runs here only, in a child process whose environment
    holds none of the project's settings or credentials.

    Args:
        train_data: Training split (Parquet).
        test_data: Test split (Parquet), scored into ``metrics``.
        repository: The fetched repository (``mlops.yaml``, the entry point's code).
        target_column: Label column.
        model_name: Registry name of the model.
        model: Model directory (model.skops, metadata.json, reference.parquet, requirements.txt).
        metrics: Test-split scores for the Kubeflow UI.
        drop_columns: Columns dropped before training (recorded in the recipe).
        categorical_columns: Comma-separated columns that are categorical whatever
            their values look like (recorded in the recipe).
        data_fingerprint: Fingerprint of the full dataset (recorded in metadata).
        seed: Random seed (``params["seed"]`` of the entry point unless mlops.yaml sets it).
        source: Repository record JSON from ``fetch_repository`` (recorded in metadata).
        use_checked_in_model: Use the model mlops.yaml names, if any (False: always train).

    Returns:
        Test accuracy.
    """
    import json
    import logging

    from mlops.model.candidate import train_candidate

    logging.basicConfig(level=logging.INFO)
    candidate = train_candidate(
        train_data.path,
        test_data.path,
        model.path,
        repository.path,
        target_column=target_column,
        model_name=model_name,
        drop_columns=drop_columns,
        categorical_columns=categorical_columns,
        data_fingerprint=data_fingerprint,
        seed=seed,
        repository=json.loads(source) if source else None,
        use_checked_in_model=use_checked_in_model,
    )
    model.metadata.update(candidate.summary())
    for name, value in candidate.metrics.items():
        metrics.log_metric(name, value)
    return candidate.metrics["test_accuracy"]
