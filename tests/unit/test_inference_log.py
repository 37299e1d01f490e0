"""InferenceLogger against a real store: flush on size, time and close; a down store never blocks."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from mlops.monitoring.inference_log import read_inference_logs
from serving.inference_log import InferenceLogger
from tests.serving_helpers import sample_rows


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _metric(model: str, result: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "mlops_inference_log_records_total", {"model": model, "result": result}
        )
        or 0.0
    )


def test_flush_on_size(store):
    log = InferenceLogger(store, "size-model", flush_rows=10, flush_seconds=60)
    try:
        rows = sample_rows(10)
        ids = ["r1-0", "r1-1", "r1-2", "r1-3"]
        log.record("v1", rows.iloc[:4], np.array([0, 1, 2, 0]), request_ids=ids)
        time.sleep(0.3)
        assert log.written_rows == 0  # below flush_rows, long before flush_seconds
        later = [f"r2-{i}" for i in range(6)]
        log.record("v1", rows.iloc[4:], np.array([1] * 6), request_ids=later, role="canary")
        assert _wait(lambda: log.written_rows == 10, 10)
        frame = read_inference_logs(store, "size-model")
        assert len(frame) == 10
        assert list(frame.columns) == list(rows.columns) + [
            "prediction",
            "model_version",
            "timestamp",
            "request_id",
            "role",
        ]
        assert frame["prediction"].tolist() == [0, 1, 2, 0] + [1] * 6
        assert frame["request_id"].tolist() == ids + later
        assert frame["role"].tolist() == ["stable"] * 4 + ["canary"] * 6
        assert log.known(["r1-0", "r2-5", "nope"]) == {"r1-0", "r2-5"}
        assert set(frame["model_version"]) == {"v1"}
        assert str(frame["timestamp"].dt.tz) == "UTC"
        pd.testing.assert_frame_equal(frame[rows.columns], rows)
        key = log.written_keys[0]
        today = datetime.now(UTC).date().isoformat()
        assert key.startswith(f"inference-logs/size-model/{today}/") and key.endswith(".parquet")
    finally:
        log.close()


def test_flush_on_time_and_rows_as_dicts(store):
    log = InferenceLogger(store, "time-model", flush_rows=1000, flush_seconds=0.3)
    try:
        log.record("v2", [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}], ["yes", "no"])
        assert _wait(lambda: log.written_rows == 2, 10)
        frame = read_inference_logs(store, "time-model")
        assert frame[["a", "b", "prediction", "model_version"]].to_dict("records") == [
            {"a": 1.0, "b": "x", "prediction": "yes", "model_version": "v2"},
            {"a": 2.0, "b": "y", "prediction": "no", "model_version": "v2"},
        ]
        assert (
            len(
                read_inference_logs(
                    store, "time-model", since=datetime.now(UTC) + timedelta(days=1)
                )
            )
            == 0
        )
        assert (
            len(
                read_inference_logs(
                    store, "time-model", since=datetime.now(UTC) - timedelta(minutes=5)
                )
            )
            == 2
        )
    finally:
        log.close()


def test_flush_on_close(store):
    before = _metric("close-model", "written")
    log = InferenceLogger(store, "close-model", flush_rows=1000, flush_seconds=60)
    log.record("v1", sample_rows(5), [0, 1, 2, 1, 0])
    assert log.written_rows == 0
    assert log.close() is True
    assert log.written_rows == 5
    assert len(read_inference_logs(store, "close-model")) == 5
    assert _metric("close-model", "written") - before == 5
    assert read_inference_logs(store, "nothing-logged").empty


def test_store_down_never_blocks_and_drops_are_bounded_and_counted(tmp_path):
    from mlops.core.embedded_store import EmbeddedStore
    from mlops.core.store import ObjectStore

    embedded = EmbeddedStore(tmp_path / "second-store")
    settings = embedded.start()
    try:
        down = ObjectStore(replace(settings, bucket="logs-down"), timeout=1.0)
        down.ensure_bucket()
    finally:
        embedded.stop(timeout=1)  # only this second store; the session store keeps running

    model = "down-model"
    dropped_before = _metric(model, "dropped")
    log = InferenceLogger(down, model, max_buffer_rows=50, flush_rows=10, flush_seconds=0.2)
    rows = sample_rows(10)
    slowest = 0.0
    try:
        for _ in range(40):
            started = time.perf_counter()
            log.record("v1", rows, np.arange(10))
            slowest = max(slowest, time.perf_counter() - started)
            assert log.buffered_rows <= 50
            time.sleep(0.02)
        assert slowest < 0.05, f"record() blocked for {slowest:.3f}s"
        assert _wait(lambda: log.dropped_rows >= 350, 10)  # 400 recorded, at most 50 kept
    finally:
        ok = log.close(timeout=10)
    assert ok is False
    assert log.written_rows == 0
    assert log.dropped_rows == 400  # the 50 still buffered are lost at shutdown, and counted
    assert _metric(model, "dropped") - dropped_before == 400


def test_rows_are_retried_when_the_store_comes_back(tmp_path):
    """The store is down first (nothing listens on its port), then a real one starts there."""
    import json

    from mlops.core.embedded_store import EmbeddedStore
    from mlops.core.net import LOCALHOST, free_port
    from mlops.core.settings import StoreSettings
    from mlops.core.store import ObjectStore

    embedded = EmbeddedStore(tmp_path / "late-store", bucket="logs-retry")
    embedded.root.mkdir(parents=True)
    names = ("s3", "master", "volume", "filer")
    ports = {"http": {n: free_port() for n in names}, "grpc": {n: free_port() for n in names}}
    embedded.ports_file.write_text(json.dumps(ports))  # the server will start on these ports
    embedded.credentials_file.write_text(
        json.dumps({"access_key": "late", "secret_key": "late-secret"})
    )
    store = ObjectStore(
        StoreSettings(
            f"{LOCALHOST}:{ports['http']['s3']}", "late", "late-secret", bucket="logs-retry"
        ),
        timeout=1.0,
    )
    log = InferenceLogger(
        store, "retry-model", max_buffer_rows=100, flush_rows=5, flush_seconds=0.3
    )
    try:
        log.record("v1", sample_rows(20), list(range(20)))
        time.sleep(0.8)  # flushes fail: nothing listens yet
        assert _wait(lambda: log.buffered_rows == 20, 5)
        assert log.written_rows == 0 and log.dropped_rows == 0
        embedded.start()
        assert embedded.settings().endpoint == store.settings.endpoint
        assert _wait(lambda: log.written_rows == 20, 15)
        assert read_inference_logs(store, "retry-model")["prediction"].tolist() == list(range(20))
    finally:
        log.close()
        embedded.stop(timeout=1)


def test_record_rejects_mismatched_outputs(store):
    log = InferenceLogger(store, "bad-model", flush_seconds=60)
    try:
        with pytest.raises(ValueError):
            log.record("v1", sample_rows(3), [1, 2])
    finally:
        log.close()


def test_batched_flush_frame_equals_the_per_request_frames():
    """The flush builds one frame column-wise; it must equal the per-request frames concatenated."""
    from serving.inference_log import _batch_frame, _Chunk

    frames, chunks = [], []
    for i in range(300):
        inputs = pd.DataFrame(
            {
                "a": [float(i), 1.5],
                "b": [np.nan, np.nan],
                "color": ["red" if i % 2 else None, "blue"],
            }
        )
        role = "canary" if i % 3 == 0 else "stable"
        frames.append(
            inputs.assign(
                prediction=np.array(["x", "y"], dtype=object),
                model_version=f"v{i % 2}",
                request_id=np.array([f"r{i}-0", f"r{i}-1"], dtype=object),
                role=role,
            )
        )
        chunks.append(
            _Chunk(
                f"v{i % 2}",
                inputs.to_numpy(dtype=object),
                np.array(["x", "y"], dtype=object),
                datetime.now(UTC),
                2,
                list(inputs.columns),
                [f"r{i}-0", f"r{i}-1"],
                role,
            )
        )
    batched = _batch_frame(chunks)
    expected = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(batched.drop(columns="timestamp"), expected)
    pd.testing.assert_frame_equal(
        pd.concat([c.frame() for c in chunks], ignore_index=True).drop(columns="timestamp"),
        expected,
    )
    assert str(batched["timestamp"].dtype) == "datetime64[us, UTC]"
