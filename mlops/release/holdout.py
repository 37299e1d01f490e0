"""Independent validation: the holdout accuracy gate."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlops.core.data import read_table
from mlops.core.rules import check_fraction
from mlops.model.data_checks import check_labelled
from mlops.model.packaging import MODEL_FILE, read_metadata
from mlops.model.schema import FeatureSchema
from mlops.model.training import Evaluation, evaluate
from mlops.release.decision import GateResult

logger = logging.getLogger(__name__)

# A holdout sharing more than this share of its rows with the training split is
# not independent. Some duplication is normal in real data (Iris has repeated rows).
MAX_HOLDOUT_OVERLAP = 0.2


def overlap_share(holdout: pd.DataFrame, train: pd.DataFrame, columns: list[str]) -> float:
    """Share of holdout rows that also appear (all ``columns`` equal) in ``train``."""

    def row_hashes(frame: pd.DataFrame) -> pd.Series:
        return pd.util.hash_pandas_object(frame[columns].astype(str), index=False)

    seen = set(row_hashes(train).tolist())
    hashes = row_hashes(holdout)
    return float(hashes.isin(seen).mean()) if len(hashes) else 0.0


def validate_on_holdout(
    model_dir: Path, train_frame: pd.DataFrame, holdout_uri: str, min_accuracy: float
) -> tuple[GateResult, Evaluation]:
    """Scores the model on the holdout and decides the ``holdout_accuracy`` gate.

    Raises:
        UsageError: ``min_accuracy`` outside [0, 1].
        DataError: the holdout cannot be read or lacks the model's columns.
    """
    from mlops.model.modelio import load_model

    min_accuracy = check_fraction("min_accuracy", min_accuracy, inclusive=True)
    metadata = read_metadata(model_dir)
    target = metadata["target_column"]
    holdout = read_table(holdout_uri)
    check_labelled(holdout, target, f"holdout {holdout_uri!r}")
    model = load_model(Path(model_dir) / MODEL_FILE)
    evaluation = evaluate(
        model,
        holdout,
        target,
        FeatureSchema.from_metadata(metadata),
        source=f"holdout {holdout_uri!r}",
    )
    columns = metadata["feature_names"] + [target]
    shared = (
        overlap_share(holdout, train_frame, columns)
        if set(columns) <= set(train_frame.columns)
        else 0.0
    )
    metrics = {**evaluation.metrics("holdout"), "holdout_overlap_share": shared}
    if shared > MAX_HOLDOUT_OVERLAP:
        detail = (
            f"holdout is not independent: {shared:.0%} of its rows appear in the training data "
            f"(at most {MAX_HOLDOUT_OVERLAP:.0%} allowed)"
        )
        return GateResult("holdout_accuracy", False, detail, metrics), evaluation
    passed = evaluation.accuracy >= min_accuracy
    detail = (
        f"holdout accuracy {evaluation.accuracy:.4f} {'>=' if passed else '<'} "
        f"min_accuracy {min_accuracy:.4f} on {evaluation.rows} rows"
    )
    logger.info("holdout gate: %s", detail)
    return GateResult("holdout_accuracy", passed, detail, metrics), evaluation
