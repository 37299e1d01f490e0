"""Retraining on current data: labelled production rows, split in time into training and holdout.

The monitoring loop retrains on what is current, not on the table the model was
first trained on: the inference-log rows of the last ``retrain_window_hours``
whose true label came back as feedback (joined by request id), optionally with a
base table. The holdout is the most recent labelled slice (``holdout_hours``),
strictly later than every training row and disjoint from them by request id, so
the new model is judged on data it never saw, from after everything it learnt
from. Too few labelled rows is an outcome of its own ("not enough ground
truth"), never a silent retrain on stale data.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from mlops.core.data import read_table
from mlops.core.errors import UsageError
from mlops.core.store import ObjectStore

logger = logging.getLogger(__name__)

RETRAINING_PREFIX = "retraining"
#: Labelled rows below which a window is "not enough ground truth".
DEFAULT_MIN_TRAIN_ROWS = 100
DEFAULT_MIN_HOLDOUT_ROWS = 30


@dataclass
class RetrainingSet:
    """Where the retraining and holdout tables are, and what went into them.

    Attributes:
        enough: False when there is not enough ground truth (nothing was written).
        reason: What was found (rows and windows), for the outcome.
        train_uri: ``s3://`` URI of the training table ('' when not enough).
        holdout_uri: The holdout table's URI (the given one, or the written slice).
        windows: The time windows used (ISO timestamps), for the outcome and evidence.
        counts: Labelled rows in the window, training rows, holdout rows, base rows.
    """

    enough: bool
    reason: str
    train_uri: str = ""
    holdout_uri: str = ""
    windows: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (the outcome's ``retraining`` entry)."""
        return asdict(self)


def labelled_rows(
    store: ObjectStore, model_name: str, target_column: str, since: datetime
) -> pd.DataFrame:
    """Inference-log rows since ``since`` joined with their feedback labels, oldest first.

    The label lands in ``target_column`` (as text, as feedback stores it); rows
    without feedback are dropped, and so are log rows without a request id.
    """
    from mlops.monitoring.feedback import read_feedback
    from mlops.monitoring.inference_log import read_inference_logs

    logs = read_inference_logs(store, model_name, since=since)
    if logs.empty or "request_id" not in logs.columns:
        return logs.iloc[0:0]
    logs = logs[logs["request_id"].notna()]
    labels = read_feedback(store, model_name)
    if labels.empty:
        return logs.iloc[0:0]
    labels = labels[["request_id", "label"]].rename(columns={"label": target_column})
    joined = logs.drop(columns=[target_column], errors="ignore").merge(
        labels, on="request_id", how="inner", validate="many_to_one"
    )
    # One row per request id: a row logged twice (a retried upload) counts once.
    joined = joined.drop_duplicates("request_id", keep="last")
    return joined.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _label_dtype(labels: pd.Series, classes: list[Any]) -> pd.Series:
    """Feedback labels (text) back in the type of the model's classes when they all are numbers."""
    if classes and all(isinstance(c, bool | int) for c in classes):
        converted = pd.to_numeric(labels, errors="coerce")
        if converted.notna().all() and (converted == converted.round()).all():
            return converted.astype("int64")
    return labels.astype(str)


def build_retraining_set(
    store: ObjectStore,
    model_name: str,
    *,
    metadata: dict[str, Any],
    retrain_window_hours: float = 168.0,
    holdout_hours: float = 24.0,
    base_data_uri: str = "",
    holdout_uri: str = "",
    min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS,
    min_holdout_rows: int = DEFAULT_MIN_HOLDOUT_ROWS,
    now: datetime | None = None,
) -> RetrainingSet:
    """Builds (and writes to the store) the training and holdout tables of a retraining run.

    Args:
        store: The object store.
        model_name: The deployed model.
        metadata: Its ``metadata.json`` (target column, feature names, classes).
        retrain_window_hours: Hours of labelled production rows to train on.
        holdout_hours: The newest hours of labelled rows (counted back from the newest
            labelled row) that form the holdout, unless ``holdout_uri`` is given.
        base_data_uri: A base table unioned with the labelled rows ('' = none).
        holdout_uri: A fixed holdout table ('' = the most recent labelled slice).
        min_train_rows: Fewest training rows worth a retraining.
        min_holdout_rows: Fewest holdout rows worth a verdict.
        now: The end of the windows (default: now, UTC).

    Raises:
        UsageError: a window that is not positive, or a holdout window not shorter
            than the retraining window.
    """
    if retrain_window_hours <= 0 or holdout_hours <= 0:
        raise UsageError("retrain_window_hours and holdout_hours must be positive")
    if not holdout_uri and holdout_hours >= retrain_window_hours:
        raise UsageError(
            f"holdout_hours ({holdout_hours:g}) must be shorter than retrain_window_hours "
            f"({retrain_window_hours:g}): the holdout is the newest part of the window"
        )
    now = (now or datetime.now(UTC)).astimezone(UTC)
    since = now - timedelta(hours=retrain_window_hours)
    target = metadata["target_column"]
    columns = [*metadata["feature_names"], target]
    labelled = labelled_rows(store, model_name, target, since)
    windows = {"retrain_since": since.isoformat(), "until": now.isoformat()}
    if holdout_uri:
        train, holdout = labelled, None
    elif labelled.empty:
        train, holdout = labelled, labelled
    else:
        # The newest slice of what came back labelled, anchored at the newest labelled
        # row (not the clock), so when the step runs does not change what it holds out.
        cut = labelled["timestamp"].max().to_pydatetime() - timedelta(hours=holdout_hours)
        windows["holdout_since"] = cut.isoformat()
        holdout = labelled[labelled["timestamp"] >= pd.Timestamp(cut)]
        train = labelled[labelled["timestamp"] < pd.Timestamp(cut)]
        # Strictly later by construction (one row per id, split at one instant): the
        # holdout starts after the last training row and shares no request id with it.
    counts = {
        "labelled_rows": len(labelled),
        "train_rows": len(train),
        "holdout_rows": 0 if holdout is None else len(holdout),
    }
    shortfalls = []
    if len(train) < min_train_rows:
        shortfalls.append(f"{len(train)} labelled training rows (need {min_train_rows})")
    if holdout is not None and len(holdout) < min_holdout_rows:
        shortfalls.append(
            f"{len(holdout)} labelled rows in the last {holdout_hours:g} h for the holdout "
            f"(need {min_holdout_rows})"
        )
    if shortfalls:
        reason = (
            f"not enough ground truth in the last {retrain_window_hours:g} h: "
            + "; ".join(shortfalls)
            + ": production unchanged"
        )
        logger.warning("%s: %s", model_name, reason)
        return RetrainingSet(False, reason, windows=windows, counts=counts)
    classes = list(metadata.get("classes") or [])
    # reindex: with no labelled rows (a base table alone) the log frame has no feature columns.
    train_table = train.reindex(columns=columns)
    train_table[target] = _label_dtype(train_table[target], classes)
    if base_data_uri:
        base = read_table(base_data_uri)
        counts["base_rows"] = len(base)
        parts = [base[columns], train_table] if len(train_table) else [base[columns]]
        train_table = pd.concat(parts, ignore_index=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    prefix = f"{RETRAINING_PREFIX}/{model_name}/{stamp}"
    train_uri = store.put_bytes(f"{prefix}/train.parquet", _parquet(train_table))
    if holdout is not None:
        holdout_table = holdout.reindex(columns=columns)
        holdout_table[target] = _label_dtype(holdout_table[target], classes)
        holdout_uri = store.put_bytes(f"{prefix}/holdout.parquet", _parquet(holdout_table))
    reason = (
        f"retraining on {len(train_table)} rows ({len(train)} labelled production rows since "
        f"{since:%Y-%m-%d %H:%M} UTC), holdout {counts['holdout_rows'] or holdout_uri}"
    )
    return RetrainingSet(True, reason, train_uri, holdout_uri, windows, counts)


def _parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
