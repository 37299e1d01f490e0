"""Independent validation: the holdout accuracy gate."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.data import read_table
from mlops.core.rules import check_fraction
from mlops.model.data_checks import check_labelled
from mlops.model.packaging import MODEL_FILE, read_metadata
from mlops.model.schema import (
    CATEGORICAL,
    NUMERIC,
    Feature,
    FeatureSchema,
    coerce_column,
    infer_kind,
)
from mlops.model.training import Evaluation, evaluate
from mlops.release.decision import GateResult

logger = logging.getLogger(__name__)

# A holdout sharing more than this share of its rows with the training split is
# not independent. Some duplication is normal in real data (Iris has repeated rows).
MAX_HOLDOUT_OVERLAP = 0.2

# Row hashes combine the column hashes as Python's tuple hash does (and pandas for a
# frame): order matters, so (1, 2) and (2, 1) differ.
_MIX_START = np.uint64(0x345678)
_MIX_MULTIPLIER = np.uint64(1000003)
_MIX_END = np.uint64(97531)


def overlap_columns(
    train: pd.DataFrame, columns: Sequence[str], schema: FeatureSchema | None = None
) -> FeatureSchema:
    """The kinds the overlap check compares ``columns`` as.

    Features take their kind from the model's ``schema``; any other column (the
    target) and every column without a schema takes it from the training split
    (:func:`mlops.model.schema.infer_kind`), as training decides kinds.
    """
    return FeatureSchema(
        tuple(
            schema.feature(name)
            if schema is not None and name in schema.name_set
            else Feature(str(name), infer_kind(train[name]))
            for name in columns
        )
    )


def _typed(feature: Feature, column: pd.Series) -> np.ndarray:
    """One column as model input with one bit pattern per value (hashes compare bits).

    Numbers are float64, so an int 3 from a CSV and a float 3.0 from Parquet are one
    value; -0.0 becomes 0.0 and every NaN the same NaN. Categories are ``str``.
    """
    values = coerce_column(feature, column)
    if feature.kind == CATEGORICAL:
        return values
    values = values + 0.0  # a copy (never a view of the frame), and -0.0 + 0.0 == +0.0
    values[np.isnan(values)] = np.nan
    return values


def _column_pair(feature: Feature, train: pd.Series, holdout: pd.Series) -> tuple[np.ndarray, ...]:
    """Both sides of one column, typed alike; as text when one side holds non-numbers.

    The features were coerced already when the holdout was scored; only the target,
    numeric in training and text in the holdout (say), gets here as text. Its
    values then compare as text on both sides.
    """
    if feature.kind == NUMERIC:
        try:
            return _typed(feature, train), _typed(feature, holdout)
        except (TypeError, ValueError):
            feature = Feature(feature.name, CATEGORICAL)
    return _typed(feature, train), _typed(feature, holdout)


def _combine(hashes: np.ndarray, column: np.ndarray, remaining: int) -> None:
    hashes ^= pd.util.hash_array(column, categorize=True)
    hashes *= _MIX_MULTIPLIER + np.uint64(82520 + 2 * remaining)


def row_hashes(
    train: pd.DataFrame, holdout: pd.DataFrame, columns: Sequence[str], kinds: FeatureSchema
) -> tuple[np.ndarray, np.ndarray]:
    """A uint64 hash per row of ``train`` and of ``holdout`` over ``columns``.

    Args:
        train: The training split.
        holdout: The holdout.
        columns: The columns to hash, in order.
        kinds: Their features (:func:`overlap_columns`), in the same order.


    Each column is typed once (:func:`_typed`) and hashed whole
    (``pandas.util.hash_array``, categories hashed once per distinct value); the
    column hashes are mixed into one row hash. Equal rows get equal hashes
    whatever dtype each file gave them; distinct rows collide with probability
    about 2^-64 per pair.
    """
    train_hashes = np.full(len(train), _MIX_START, dtype=np.uint64)
    holdout_hashes = np.full(len(holdout), _MIX_START, dtype=np.uint64)
    for position, (name, feature) in enumerate(zip(columns, kinds.features, strict=True)):
        train_column, holdout_column = _column_pair(feature, train[name], holdout[name])
        remaining = len(kinds) - position
        _combine(train_hashes, train_column, remaining)
        _combine(holdout_hashes, holdout_column, remaining)
    train_hashes += _MIX_END
    holdout_hashes += _MIX_END
    return train_hashes, holdout_hashes


def overlap_share(
    holdout: pd.DataFrame,
    train: pd.DataFrame,
    columns: Sequence[str],
    schema: FeatureSchema | None = None,
) -> float:
    """Share of holdout rows that also appear (all ``columns`` equal) in ``train``.

    Values are compared as the model sees them (see :func:`overlap_columns` for
    the kinds), so the same rows read from a CSV (ints, text) and from Parquet
    (floats, categories) overlap. Vectorised: one hash per row, looked up in the
    sorted training hashes (:func:`contained`).

    Args:
        holdout: The holdout table.
        train: The training split.
        columns: The columns that make a row (features and target).
        schema: The model's feature schema (kinds of the features it lists).
    """
    if len(holdout) == 0:
        return 0.0
    kinds = overlap_columns(train, columns, schema)
    train_hashes, holdout_hashes = row_hashes(train, holdout, columns, kinds)
    return float(contained(holdout_hashes, train_hashes).mean())


def contained(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is in ``pool`` (what ``numpy.isin`` answers, ~8x faster here).

    One sort of ``pool`` and a binary search per value: ``numpy.isin`` takes the
    unique values of both arrays and a stable argsort of them together instead.
    """
    if not len(pool):
        return np.zeros(len(values), dtype=bool)
    ordered = np.sort(pool)
    found = np.searchsorted(ordered, values)
    found[found == len(ordered)] = len(ordered) - 1  # past the end: compared with the last
    return ordered[found] == values


@dataclass(frozen=True)
class HoldoutValidation:
    """What the holdout step decided: both of its gates, the scores, the holdout's fingerprint."""

    holdout_gate: GateResult
    regression_gate: GateResult
    evaluation: Evaluation
    holdout_fingerprint: str


def validate_release(
    model_dir: Path,
    train_frame: pd.DataFrame,
    holdout_uri: str,
    min_accuracy: float,
    *,
    max_regression: float = 0.0,
    champion_metric: str = "accuracy",
    store: Any = None,
    public_key: Path | None = None,
) -> HoldoutValidation:
    """The holdout step: the accuracy gate and, on the same rows, the champion comparison.

    Raises:
        UsageError: ``min_accuracy`` or ``max_regression`` outside [0, 1], or an unknown metric.
        DataError: the holdout cannot be read or lacks the model's columns.
        VerificationError: the production champion does not verify.
    """
    from mlops.core.data import fingerprint
    from mlops.release.champion import check_champion_metric, no_regression_gate

    # Every parameter is checked before anything is read (min_accuracy first, as before).
    check_fraction("min_accuracy", min_accuracy, inclusive=True)
    check_fraction("max_regression", max_regression, inclusive=True)
    check_champion_metric(champion_metric)
    min_accuracy, metadata, schema, holdout, model = _load(model_dir, holdout_uri, min_accuracy)
    gate, evaluation = _holdout_gate(
        model, metadata, schema, train_frame, holdout, holdout_uri, min_accuracy
    )
    regression = no_regression_gate(
        model,
        schema,
        holdout,
        metadata["target_column"],
        metadata["model_name"],
        max_regression=max_regression,
        metric=champion_metric,
        store=store,
        public_key=public_key,
    )
    return HoldoutValidation(gate, regression, evaluation, fingerprint(holdout))


def validate_on_holdout(
    model_dir: Path, train_frame: pd.DataFrame, holdout_uri: str, min_accuracy: float
) -> tuple[GateResult, Evaluation]:
    """Scores the model on the holdout and decides the ``holdout_accuracy`` gate.

    Raises:
        UsageError: ``min_accuracy`` outside [0, 1].
        DataError: the holdout cannot be read or lacks the model's columns.
    """
    min_accuracy, metadata, schema, holdout, model = _load(model_dir, holdout_uri, min_accuracy)
    return _holdout_gate(model, metadata, schema, train_frame, holdout, holdout_uri, min_accuracy)


def _load(
    model_dir: Path, holdout_uri: str, min_accuracy: float
) -> tuple[float, dict[str, Any], FeatureSchema, pd.DataFrame, Any]:
    """The checked threshold, the model's metadata and schema, the labelled holdout, the model."""
    from mlops.model.modelio import load_model

    min_accuracy = check_fraction("min_accuracy", min_accuracy, inclusive=True)
    metadata = read_metadata(model_dir)
    schema = FeatureSchema.from_metadata(metadata)
    holdout = read_table(holdout_uri)
    check_labelled(holdout, metadata["target_column"], f"holdout {holdout_uri!r}")
    return min_accuracy, metadata, schema, holdout, load_model(Path(model_dir) / MODEL_FILE)


def _holdout_gate(
    model: Any,
    metadata: dict[str, Any],
    schema: FeatureSchema,
    train_frame: pd.DataFrame,
    holdout: pd.DataFrame,
    holdout_uri: str,
    min_accuracy: float,
) -> tuple[GateResult, Evaluation]:
    """The ``holdout_accuracy`` gate on a loaded model and holdout."""
    target = metadata["target_column"]
    evaluation = evaluate(model, holdout, target, schema, source=f"holdout {holdout_uri!r}")
    columns = [*schema.names, target]
    shared = (
        overlap_share(holdout, train_frame, columns, schema)
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
    metrics["min_accuracy"] = min_accuracy
    return GateResult("holdout_accuracy", passed, detail, metrics), evaluation
