"""Retraining on current data: labelled production rows, split in time, against the real store.

Inference-log objects are written in the format the model server writes
(:func:`mlops.monitoring.inference_log.log_key`, Parquet, with request ids and
roles); labels through :func:`mlops.monitoring.feedback.write_feedback`.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import UsageError
from mlops.monitoring.feedback import write_feedback
from mlops.monitoring.inference_log import log_key
from mlops.monitoring.retraining import build_retraining_set
from mlops.monitoring.triggers import ACCURACY, DRIFT, decide_retraining

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
METADATA = {
    "target_column": "label",
    "feature_names": ["x", "colour"],
    "classes": [0, 1],
}


def write_logs(store, rows: pd.DataFrame) -> None:
    """One inference-log object per hour of ``rows`` (as the server flushes them)."""
    for hour, part in rows.groupby(rows["timestamp"].dt.floor("h")):
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        store.put_bytes(
            log_key("model", hour.date(), hour.strftime("%Y%m%dT%H%M%S")), buffer.getvalue()
        )


def traffic(hours: int, per_hour: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamps = [
        NOW - timedelta(hours=h, minutes=int(m))
        for h in range(hours, 0, -1)
        for m in np.linspace(1, 59, per_hour)
    ]
    x = rng.normal(size=len(stamps))
    return pd.DataFrame(
        {
            "x": x,
            "colour": rng.choice(["red", "blue"], size=len(stamps)),
            "prediction": (x > 0).astype(int),
            "model_version": "v1",
            "timestamp": pd.to_datetime(stamps, utc=True),
            "request_id": [f"req-{i}" for i in range(len(stamps))],
            "role": "stable",
        }
    )


def label(store, logs: pd.DataFrame, every: int = 1) -> pd.DataFrame:
    labelled = logs.iloc[::every]
    truth = (labelled["x"] > 0.3).astype(int)  # the world moved: a new boundary
    write_feedback(
        store, "model", pd.DataFrame({"request_id": labelled["request_id"], "label": truth})
    )
    return labelled.assign(label=truth.to_numpy())


def test_training_rows_are_the_labelled_window_and_the_holdout_is_strictly_later(store):
    logs = traffic(hours=48, per_hour=20)
    write_logs(store, logs)
    labelled = label(store, logs, every=2)
    result = build_retraining_set(
        store, "model", metadata=METADATA, retrain_window_hours=24, holdout_hours=6, now=NOW
    )
    assert result.enough, result.reason
    train = pd.read_parquet(io.BytesIO(store.get_bytes(result.train_uri.split("/", 3)[3])))
    holdout = pd.read_parquet(io.BytesIO(store.get_bytes(result.holdout_uri.split("/", 3)[3])))
    assert list(train.columns) == ["x", "colour", "label"]
    window = labelled[labelled["timestamp"] >= pd.Timestamp(NOW - timedelta(hours=24))]
    window = window.sort_values("timestamp", kind="stable")  # the set is oldest first
    cut = window["timestamp"].max() - pd.Timedelta(hours=6)  # back from the newest labelled row
    expected_train = window[window["timestamp"] < cut]
    expected_holdout = window[window["timestamp"] >= cut]
    # Exactly the labelled rows of the window, by value (ids are not features).
    assert len(train) == len(expected_train) and len(holdout) == len(expected_holdout)
    np.testing.assert_array_equal(train["x"].to_numpy(), expected_train["x"].to_numpy())
    np.testing.assert_array_equal(holdout["x"].to_numpy(), expected_holdout["x"].to_numpy())
    assert (
        train["label"].dtype == np.int64
        and train["label"].tolist() == expected_train["label"].tolist()
    )
    assert expected_holdout["timestamp"].min() > expected_train["timestamp"].max()
    assert not set(expected_holdout["request_id"]) & set(expected_train["request_id"])
    assert result.counts == {
        "labelled_rows": len(window),
        "train_rows": len(train),
        "holdout_rows": len(holdout),
    }
    assert result.windows["holdout_since"] == cut.isoformat()


def test_too_few_labels_is_not_enough_ground_truth_and_writes_nothing(store):
    logs = traffic(hours=24, per_hour=10)
    write_logs(store, logs)
    label(store, logs, every=10)  # 24 labels
    result = build_retraining_set(
        store, "model", metadata=METADATA, retrain_window_hours=24, holdout_hours=6, now=NOW
    )
    assert not result.enough and result.train_uri == ""
    assert result.reason.startswith("not enough ground truth in the last 24 h")
    assert "need 100" in result.reason and "production unchanged" in result.reason
    assert not list(store.list("retraining/", recursive=True))


def test_a_base_table_and_a_fixed_holdout(store, tmp_path):
    logs = traffic(hours=12, per_hour=5)
    write_logs(store, logs)
    label(store, logs)
    base = pd.DataFrame({"x": [0.1, 0.2], "colour": ["red", "red"], "label": [0, 1]})
    base.to_csv(tmp_path / "base.csv", index=False)
    result = build_retraining_set(
        store,
        "model",
        metadata=METADATA,
        retrain_window_hours=24,
        base_data_uri=str(tmp_path / "base.csv"),
        holdout_uri="s3://elsewhere/holdout.parquet",
        min_train_rows=10,
        now=NOW,
    )
    assert result.enough and result.holdout_uri == "s3://elsewhere/holdout.parquet"
    assert result.counts["base_rows"] == 2 and result.counts["train_rows"] == len(logs)


def test_window_parameters_are_checked(store):
    with pytest.raises(UsageError, match="holdout_hours \\(24\\) must be shorter"):
        build_retraining_set(
            store, "model", metadata=METADATA, retrain_window_hours=24, holdout_hours=24
        )
    with pytest.raises(UsageError, match="must be positive"):
        build_retraining_set(store, "model", metadata=METADATA, retrain_window_hours=0)


def test_either_drift_or_low_live_accuracy_triggers():
    drift = {"drift_detected": False, "model_name": "m", "model_version": "v1"}
    quality = {
        "min_accuracy": 0.9,
        "groups": [{"role": "stable", "accuracy": 0.7, "enough_labels": True}],
    }
    assert decide_retraining(drift, quality)[0] is True
    assert decide_retraining(drift, quality)[1]["reasons"] == [ACCURACY]
    quality["groups"][0]["enough_labels"] = False  # too few labels never trigger
    assert decide_retraining(drift, quality) == (
        False,
        {**drift, "reasons": [], "quality": quality},
    )
    retrain, trigger = decide_retraining({**drift, "drift_detected": True}, quality)
    assert retrain and trigger["reasons"] == [DRIFT]
