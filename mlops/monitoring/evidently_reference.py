"""Evidently's own ``DataDriftPreset`` verdicts, parsed into a :class:`DriftResult`.

The reference :func:`mlops.monitoring.drift.compute_drift` is checked against
(``tests/unit/test_drift.py``, ``bench/bench_drift.py``): the real preset, run on
the full data with the same columns and kinds. Nothing in the pipeline or the
CLI calls it; it is slow on big data, which is why ``compute_drift`` exists.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlops.model.schema import FeatureSchema
from mlops.monitoring.drift import (
    ColumnDrift,
    DriftResult,
    check_frames,
    drift_schema,
    is_drifted,
)
from mlops.monitoring.report import run_data_drift_preset

logger = logging.getLogger(__name__)

__all__ = ["evidently_drift"]


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    drift_share_threshold: float = 0.5,
    *,
    schema: FeatureSchema | None = None,
) -> DriftResult:
    """Run Evidently's ``DataDriftPreset`` (``include_tests=True``) and parse it into a ``DriftResult``.

    Columns and kinds are chosen as :func:`mlops.monitoring.drift.compute_drift` chooses them.
    """
    check_frames(reference, current, min_rows=1)
    schema = drift_schema(reference, current, columns, categorical, schema)
    data = run_data_drift_preset(reference, current, schema, drift_share_threshold).dict()
    values, share = _metric_values(data)
    drifted_flags, dataset_test_failed = _test_statuses(data)

    per_column = {}
    for c in schema.names:
        method, score, threshold = values[c]
        per_column[c] = ColumnDrift(
            name=c,
            drifted=drifted_flags[c]
            if c in drifted_flags
            else is_drifted(method, score, threshold),
            score=score,
            method=method,
            threshold=threshold,
        )
    result = DriftResult.from_columns(
        per_column, len(reference), len(current), drift_share_threshold
    )
    if share is not None and not math.isclose(share, result.drift_share):
        logger.warning(
            "evidently drift share %s differs from per-column share %s", share, result.drift_share
        )
    if dataset_test_failed is not None:
        result.drift_detected = bool(dataset_test_failed)
    return result


def _metric_values(
    data: dict[str, Any],
) -> tuple[dict[str, tuple[str, float, float]], float | None]:
    """Per column (method, score, threshold), and the drifted share, from the snapshot's metrics."""
    values: dict[str, tuple[str, float, float]] = {}
    share = None
    for m in data["metrics"]:
        cfg = m.get("config", {})
        kind = cfg.get("type", "")
        if kind.endswith(":ValueDrift"):
            values[cfg["column"]] = (cfg["method"], float(m["value"]), float(cfg["threshold"]))
        elif kind.endswith(":DriftedColumnsCount"):
            share = float(m["value"]["share"])
    return values, share


def _test_statuses(data: dict[str, Any]) -> tuple[dict[str, bool], bool | None]:
    """Per column whether its drift test failed, and whether the dataset test failed."""
    drifted_flags: dict[str, bool] = {}
    dataset_test_failed = None
    for t in data.get("tests", []):
        params = t.get("metric_config", {}).get("params", {})
        kind = params.get("type", "")
        if kind.endswith(":ValueDrift"):
            drifted_flags[params["column"]] = t["status"] == "FAIL"
        elif kind.endswith(":DriftedColumnsCount"):
            dataset_test_failed = t["status"] == "FAIL"
    return drifted_flags, dataset_test_failed
