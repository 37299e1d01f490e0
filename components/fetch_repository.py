"""KFP component: fetch the model repository at a pinned commit and settle the run's parameters."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def fetch_repository(
    repository: Output[Artifact],
    recipe_uri: str = "",
    estimator: str = "logistic_regression",
    target_column: str = "",
    model_name: str = "",
    min_accuracy: float = -1.0,
    drop_columns: str = "",
    categorical_columns: str = "",
) -> NamedTuple(  # type: ignore[valid-type]
    "RepositoryOutputs",
    [
        ("target_column", str),
        ("model_name", str),
        ("min_accuracy", float),
        ("drop_columns", str),
        ("categorical_columns", str),
        ("source", str),
    ],
):
    """Fetches the repository (git resolved to a full commit) and reads its ``mlops.yaml``.

    Nothing in the repository is imported or run here. Each value below is the
    explicit parameter when given, else the repository's ``mlops.yaml`` value.

    Args:
        repository: The repository's files (no ``.git``).
        recipe_uri: A folder, ``git+file://...@REF``, ``git+https://...@REF``,
            ``s3://bucket/prefix/`` or ``builtin:NAME``; '' = ``builtin:<estimator>``.
        estimator: Built-in recipe used when ``recipe_uri`` is ''.
        target_column: Label column ('' = ``target`` of mlops.yaml).
        model_name: Registry name ('' = ``name`` of mlops.yaml).
        min_accuracy: Holdout threshold in [0, 1] (-1 = mlops.yaml's, else 0.8).
        drop_columns: Comma-separated columns to drop ('' = mlops.yaml's).
        categorical_columns: Comma-separated categorical columns ('' = mlops.yaml's).

    Returns:
        The settled target_column, model_name, min_accuracy, drop_columns and
        categorical_columns, and source: JSON of the repository URL, commit, tree
        digest and where each value came from.
    """
    import json
    import logging
    from pathlib import Path

    from mlops.repository.checkout import checkout

    logging.basicConfig(level=logging.INFO)
    result = checkout(
        recipe_uri,
        Path(repository.path),
        {
            "target_column": target_column,
            "model_name": model_name,
            "min_accuracy": min_accuracy,
            "drop_columns": drop_columns,
            "categorical_columns": categorical_columns,
        },
        estimator=estimator,
    )
    record = result.record()
    repository.metadata.update(
        {key: record[key] for key in ("uri", "commit", "tree_digest") if key in record}
    )
    values = result.values
    return (
        values["target_column"],
        values["model_name"],
        float(values["min_accuracy"]),
        values["drop_columns"],
        values["categorical_columns"],
        json.dumps(record, sort_keys=True),
    )
