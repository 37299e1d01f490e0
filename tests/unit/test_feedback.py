"""The feedback format against a real store: checked writes, last-wins reads, label tables."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlops.core.errors import DataError, UsageError
from mlops.monitoring import feedback as fb
from mlops.monitoring.feedback import (
    feedback_frame,
    load_labels,
    read_feedback,
    write_feedback,
)
from mlops.monitoring.inference_log import known_request_ids, log_key, read_inference_logs

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _labels(pairs) -> pd.DataFrame:
    return pd.DataFrame({"request_id": [p[0] for p in pairs], "label": [p[1] for p in pairs]})


def _objects(store, model="iris") -> list[str]:
    return sorted(store.list(f"feedback/{model}/"))


def test_round_trip_stores_labels_as_text(store):
    keys = write_feedback(store, "iris", _labels([("r1", 1), ("r2", "setosa"), ("r3", True)]), T0)
    assert len(keys) == 1 and keys[0].startswith("feedback/iris/") and keys[0].endswith(".parquet")
    stored = pd.read_parquet(io.BytesIO(store.get_bytes(keys[0])))
    assert list(stored.columns) == ["request_id", "label", "received_at"]
    frame = read_feedback(store, "iris")
    assert frame["request_id"].tolist() == ["r1", "r2", "r3"]
    assert frame["label"].tolist() == ["1", "setosa", "True"]
    assert set(frame["received_at"]) == {pd.Timestamp(T0)}
    assert str(frame["received_at"].dt.tz) == "UTC"


def test_duplicates_latest_received_at_wins(store):
    # in one batch: the last row of an id wins
    write_feedback(store, "iris", _labels([("a", "x"), ("b", "y"), ("a", "z")]), T0)
    # a later batch corrects b; an older, late-arriving batch must not override a
    write_feedback(store, "iris", _labels([("b", "later")]), T0 + timedelta(minutes=5))
    write_feedback(store, "iris", _labels([("a", "stale")]), T0 - timedelta(minutes=5))
    frame = read_feedback(store, "iris")
    assert dict(zip(frame["request_id"], frame["label"], strict=True)) == {"a": "z", "b": "later"}


def test_since_filters_by_receipt(store):
    write_feedback(store, "iris", _labels([("old", "x")]), T0 - timedelta(days=2))
    write_feedback(store, "iris", _labels([("new", "y")]), T0)
    assert read_feedback(store, "iris", since=T0 - timedelta(hours=1))["request_id"].tolist() == [
        "new"
    ]
    naive = (T0 - timedelta(days=3)).replace(tzinfo=None)
    assert sorted(read_feedback(store, "iris", since=naive)["request_id"]) == ["new", "old"]
    assert read_feedback(store, "other").empty


@pytest.mark.parametrize(
    "request_id, problem",
    [
        ("", "empty"),
        ("x" * 257, "257 characters"),
        ("a b", "outside"),
        ("../../etc/passwd", "outside"),
        ("<script>", "outside"),
        ("id\n2", "outside"),
        ("é", "outside"),
        (12, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_invalid_ids_are_refused_and_nothing_is_written(store, request_id, problem):
    frame = _labels([("ok-1", "a"), (request_id, "b")])
    with pytest.raises(UsageError, match=problem) as caught:
        write_feedback(store, "iris", frame)
    assert "row 2" in str(caught.value)
    assert _objects(store) == []


def test_longest_id_and_every_allowed_character_pass(store):
    ids = ["x" * 256, "AZaz09._:-"]
    write_feedback(store, "iris", _labels([(ids[0], "a"), (ids[1], "b")]))
    assert sorted(read_feedback(store, "iris")["request_id"]) == sorted(ids)


@pytest.mark.parametrize(
    "label, problem",
    [
        (None, "must be a string"),
        (float("nan"), "missing"),
        ("x" * 1025, "1025 characters"),
        ([1], "must be a string"),
    ],
)
def test_invalid_labels_are_refused(store, label, problem):
    with pytest.raises(UsageError, match=problem):
        write_feedback(store, "iris", _labels([("r1", label)]))
    assert _objects(store) == []


def test_missing_columns_and_bad_model_name(store):
    with pytest.raises(UsageError, match="missing: label"):
        write_feedback(store, "iris", pd.DataFrame({"request_id": ["a"]}))
    with pytest.raises(UsageError, match="model_name"):
        write_feedback(store, "../iris", _labels([("a", "b")]))
    with pytest.raises(UsageError, match="received_at"):
        feedback_frame(pd.DataFrame({"request_id": ["a"], "label": ["b"], "received_at": [None]}))


def test_large_batches_are_split_into_bounded_objects(store, monkeypatch):
    monkeypatch.setattr(fb, "MAX_ROWS_PER_OBJECT", 3)
    keys = write_feedback(store, "iris", _labels([(f"r{i}", str(i % 2)) for i in range(7)]))
    assert len(keys) == 3 and _objects(store) == sorted(keys)
    sizes = sorted(len(pd.read_parquet(io.BytesIO(store.get_bytes(k)))) for k in keys)
    assert sizes == [1, 3, 3]
    assert len(read_feedback(store, "iris")) == 7


def test_hostile_labels_are_stored_as_data(store):
    hostile = ["<script>alert(1)</script>", "'; DROP TABLE x; --", "\u2028line", "${jndi:x}"]
    write_feedback(store, "iris", _labels([(f"h{i}", v) for i, v in enumerate(hostile)]))
    assert read_feedback(store, "iris")["label"].tolist() == hostile


def test_a_broken_object_is_a_data_error(store):
    buffer = io.BytesIO()
    pd.DataFrame({"request_id": ["a"]}).to_parquet(buffer)
    store.put_bytes("feedback/iris/2026-03-01/broken.parquet", buffer.getvalue())
    with pytest.raises(DataError, match="lacks the columns"):
        read_feedback(store, "iris")


# --------------------------------------------------------------------------- label tables


def test_load_labels_from_csv_parquet_and_s3(store_env, store, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("id,label,note\nr-1,setosa,x\n42,1,y\n")
    frame = load_labels(str(csv))
    assert frame.to_dict("records") == [
        {"request_id": "r-1", "label": "setosa"},
        {"request_id": "42", "label": "1"},  # a mixed column reads as text
    ]
    parquet = tmp_path / "labels.parquet"
    pd.DataFrame({"request_id": ["007"], "id": ["ignored"], "label": ["b"]}).to_parquet(parquet)
    assert load_labels(f"file://{parquet}")["request_id"].tolist() == ["007"]  # request_id wins
    store.put_file("uploads/labels.csv", csv)
    assert load_labels(store.uri("uploads/labels.csv"))["request_id"].tolist() == ["r-1", "42"]


def test_load_labels_needs_id_and_label_columns(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("request,label\na,b\n")
    with pytest.raises(UsageError, match="request_id or id"):
        load_labels(str(path))
    path.write_text("id,class\na,b\n")
    with pytest.raises(UsageError, match="label column"):
        load_labels(str(path))
    with pytest.raises(DataError, match="no such file"):
        load_labels(str(tmp_path / "missing.csv"))


# --------------------------------------------------------------------------- inference-log ids


def _write_log(store, frame: pd.DataFrame, model="iris") -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    day = frame["timestamp"].iloc[0].date()
    store.put_bytes(log_key(model, day, day.strftime("%Y%m%dT000000000000Z")), buffer.getvalue())


def test_old_log_objects_read_without_ids_as_stable(store):
    old = pd.DataFrame(
        {
            "x": [1.0, 2.0],
            "prediction": ["a", "b"],
            "model_version": ["v0", "v0"],
            "timestamp": pd.to_datetime([T0, T0], utc=True),
        }
    )
    new = old.assign(
        request_id=["r1", "r2"],
        role=["canary", "stable"],
        timestamp=pd.to_datetime([T0 + timedelta(minutes=1)] * 2, utc=True),
    )
    _write_log(store, old)
    _write_log(store, new)
    frame = read_inference_logs(store, "iris")
    assert frame["request_id"].tolist() == [None, None, "r1", "r2"]
    assert frame["role"].tolist() == ["stable", "stable", "canary", "stable"]
    assert known_request_ids(store, "iris") == {"r1", "r2"}
    assert known_request_ids(store, "iris", since=T0 + timedelta(minutes=2)) == set()
    empty = read_inference_logs(store, "nothing")
    assert {"request_id", "role"} <= set(empty.columns) and empty.empty
