"""Live model quality against a real store: inference logs as the server writes them + feedback.

The logs are Parquet objects at :func:`log_key` with ``request_id`` and ``role``,
the labels go through :func:`write_feedback`, and every expected score is
computed here from the rows the test made.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.metrics import f1_score

from mlops.core.errors import DataError, UsageError
from mlops.deployment.state import Release, deploy
from mlops.monitoring.drift import Z_TEST
from mlops.monitoring.feedback import read_feedback, write_feedback
from mlops.monitoring.inference_log import log_key
from mlops.monitoring.quality import (
    MAX_MATRIX_CLASSES,
    OTHER_LABELS,
    check_quality,
    live_quality,
    render_quality_html,
)
from tests import monitoring_stack as ms
from tests.training_helpers import cli_env, run_cli

MODEL = "iris"
HOSTILE = "<script>alert(1)</script>"
NOW = datetime.now(UTC)


def write_log(store, rows: list[dict], model: str = MODEL) -> str:
    """One inference-log object as serving.inference_log writes it."""
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    first = frame["timestamp"].min()
    key = log_key(model, first.date(), first.strftime("%Y%m%dT%H%M%S%fZ"))
    store.put_bytes(key, buffer.getvalue())
    return key


def publish_metadata(store, version: str, label_counts=None, min_accuracy=None) -> None:
    """The parts of a published version the quality check reads: metadata and release evidence."""
    prefix = f"models/{MODEL}/{version}"
    metadata = {"model_name": MODEL, "version": version, "classes": ["a", "b"]}
    if label_counts is not None:
        metadata["label_counts"] = {"train": label_counts}
    store.put_json(f"{prefix}/metadata.json", metadata)
    if min_accuracy is not None:
        store.put_json(f"{prefix}/release.json", {"thresholds": {"min_accuracy": min_accuracy}})
    store.put_json(f"{prefix}/_COMPLETE", {})


def rows(ids, predictions, version, role, start, x=None):
    return [
        {
            "x": float(i) if x is None else x,
            "prediction": p,
            "model_version": version,
            "timestamp": start + timedelta(seconds=i),
            "request_id": rid,
            "role": role,
        }
        for i, (rid, p) in enumerate(zip(ids, predictions, strict=True))
    ]


@pytest.fixture
def served(store):
    """60 stable (v1) and 40 canary (v2) predictions in the last hour, and their labels.

    Returns the expected labelled (prediction, label) pairs per role.
    """
    rng = np.random.default_rng(7)
    publish_metadata(store, "v1", {"a": 300, "b": 300}, min_accuracy=0.75)
    publish_metadata(store, "v2", {"a": 300, "b": 300})
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    start = NOW - timedelta(minutes=30)
    stable_ids = [f"s{i}" for i in range(60)]
    canary_ids = [f"c{i}-0" for i in range(40)]
    stable_pred = rng.choice(["a", "b"], 60).tolist()
    canary_pred = rng.choice(["a", "b"], 40).tolist()
    write_log(store, rows(stable_ids, stable_pred, "v1", "stable", start))
    write_log(store, rows(canary_ids, canary_pred, "v2", "canary", start + timedelta(minutes=2)))
    truth = {rid: str(rng.choice(["a", "b"])) for rid in stable_ids[:50] + canary_ids[:30]}
    labels = pd.DataFrame({"request_id": list(truth), "label": list(truth.values())})
    unknown = pd.DataFrame({"request_id": [f"ghost-{i}" for i in range(5)], "label": ["a"] * 5})
    write_feedback(store, MODEL, pd.concat([labels, unknown]), now=NOW - timedelta(minutes=10))
    # a correction received later wins: s0 gets the opposite of its first label
    truth["s0"] = "b" if truth["s0"] == "a" else "a"
    write_feedback(
        store, MODEL, pd.DataFrame({"request_id": ["s0"], "label": [truth["s0"]]}), now=NOW
    )
    pairs = {
        "stable": [
            (p, truth[r]) for r, p in zip(stable_ids, stable_pred, strict=True) if r in truth
        ],
        "canary": [
            (p, truth[r]) for r, p in zip(canary_ids, canary_pred, strict=True) if r in truth
        ],
    }
    return pairs


def test_accuracy_equals_the_independent_computation(store, served):
    quality = live_quality(store, MODEL, window_hours=2, min_rows=40)
    assert [(g.model_version, g.role) for g in quality.groups] == [
        ("v1", "stable"),
        ("v2", "canary"),
    ]
    for group in quality.groups:
        pairs = served[group.role]
        predicted = [p for p, _ in pairs]
        truth = [t for _, t in pairs]
        right = sum(p == t for p, t in pairs)
        assert group.labelled_rows == len(pairs)
        assert group.accuracy == pytest.approx(right / len(pairs))
        assert group.f1_macro == pytest.approx(f1_score(truth, predicted, average="macro"))
        assert group.labels == ["a", "b"]
        expected = [[sum(t == a and p == b for p, t in pairs) for b in "ab"] for a in "ab"]
        assert group.confusion_matrix == expected
    assert quality.group("stable").predictions == 60
    assert quality.group("stable").enough_labels and not quality.group("canary").enough_labels
    assert quality.labelled_rows == 80 and quality.logged_rows == 100
    assert quality.unmatched_feedback == 5
    assert quality.min_accuracy == 0.75  # the stable release's threshold


def test_prediction_and_target_drift_against_the_training_labels(store):
    publish_metadata(store, "v1", {"a": 500, "b": 500})
    ids = [f"r{i}" for i in range(100)]
    write_log(store, rows(ids, ["a"] * 100, "v1", "stable", NOW - timedelta(minutes=5)))
    labels = ["a", "b"] * 50
    write_feedback(store, MODEL, pd.DataFrame({"request_id": ids, "label": labels}))
    (group,) = live_quality(store, MODEL, window_hours=1).groups
    assert group.accuracy == 0.5
    assert group.prediction_drift.method == Z_TEST and group.prediction_drift.drifted
    assert group.prediction_drift.current_counts == {"a": 100}
    assert not group.target_drift.drifted and group.target_drift.current_rows == 100
    assert group.target_drift.reference_rows == 1000


def test_without_training_label_counts_there_is_no_drift_verdict(store):
    publish_metadata(store, "v1")
    write_log(store, rows(["r1"], ["a"], "v1", "stable", NOW - timedelta(minutes=1)))
    (group,) = live_quality(store, MODEL).groups
    assert group.prediction_drift is None and group.target_drift is None
    assert "label_counts" in group.drift_note
    assert group.accuracy is None and group.labelled_rows == 0


def test_rows_outside_the_window_without_ids_or_reused_ids(store):
    publish_metadata(store, "v1")
    old = rows(["late"], ["a"], "v1", "stable", NOW - timedelta(hours=5))
    legacy = [
        {k: v for k, v in r.items() if k not in ("request_id", "role")}
        for r in rows(["-"], ["a"], "v1", "stable", NOW - timedelta(minutes=9))
    ]
    reused = rows(["dup", "dup"], ["a", "b"], "v1", "stable", NOW - timedelta(minutes=8))
    write_log(store, old)
    write_log(store, legacy)
    write_log(store, reused)
    write_feedback(store, MODEL, pd.DataFrame({"request_id": ["late", "dup"], "label": ["a", "b"]}))
    quality = live_quality(store, MODEL, window_hours=1)
    (group,) = quality.groups
    assert group.role == "stable" and group.predictions == 3  # legacy row + both dup rows
    assert group.labelled_rows == 1 and group.accuracy == 1.0  # the latest "dup" row said "b"
    assert quality.duplicate_log_ids == 1 and quality.unmatched_feedback == 1  # "late" is outside


def test_bad_arguments_and_an_empty_window(store):
    with pytest.raises(UsageError, match="window_hours"):
        live_quality(store, MODEL, window_hours=0)
    with pytest.raises(UsageError, match="min_rows"):
        live_quality(store, MODEL, min_rows=0)
    with pytest.raises(DataError, match="no inference logs"):
        live_quality(store, MODEL)


def test_a_flood_of_distinct_labels_keeps_the_matrix_bounded(store):
    publish_metadata(store, "v1")
    ids = [f"r{i}" for i in range(300)]
    write_log(store, rows(ids, ["a", "b"] * 150, "v1", "stable", NOW - timedelta(minutes=5)))
    write_feedback(
        store, MODEL, pd.DataFrame({"request_id": ids, "label": [f"l{i}" for i in range(300)]})
    )
    (group,) = live_quality(store, MODEL).groups
    assert len(group.labels) == MAX_MATRIX_CLASSES and group.labels[-1] == OTHER_LABELS
    assert sum(map(sum, group.confusion_matrix)) == 300
    assert group.accuracy == 0.0


def test_hostile_labels_are_data_and_escaped_in_the_report(store, tmp_path):
    publish_metadata(store, "v1", {"a": 10, "b": 10})
    ids = [f"r{i}" for i in range(20)]
    write_log(store, rows(ids, ["a", "b"] * 10, "v1", "stable", NOW - timedelta(minutes=5)))
    labels = [HOSTILE if i % 4 == 0 else ("a" if i % 2 == 0 else "b") for i in range(20)]
    write_feedback(store, MODEL, pd.DataFrame({"request_id": ids, "label": labels}))
    assert HOSTILE in read_feedback(store, MODEL)["label"].tolist()  # stored as it came
    quality = live_quality(store, MODEL)
    assert HOSTILE in quality.group("stable").labels  # a class of the matrix, as data
    page = render_quality_html(quality, tmp_path / "report.html").read_text()
    assert HOSTILE not in page and "<script>alert" not in page
    assert (
        "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in page
    )  # in Evidently's data, escaped
    assert 'id="mlops-quality-summary"' in page


def test_check_quality_stores_the_report_and_pushes_metrics(store, tmp_path, monkeypatch):
    publish_metadata(store, "v1", {"a": 5, "b": 5}, min_accuracy=0.9)
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    ids = [f"r{i}" for i in range(10)]
    write_log(store, rows(ids, ["a"] * 10, "v1", "stable", NOW - timedelta(minutes=5)))
    write_feedback(store, MODEL, pd.DataFrame({"request_id": ids, "label": ["a"] * 7 + ["b"] * 3}))
    address = f"{ms.LOCALHOST}:{ms.free_port()}"
    gateway = ms.ManagedProcess(
        "pushgateway",
        [ms.require_binary(ms.PUSHGATEWAY), f"--web.listen-address={address}"],
        tmp_path / "pushgateway.log",
    ).start()
    try:
        ms.wait_http_ready(f"http://{address}/-/ready", gateway)
        monkeypatch.setenv("MLOPS_PUSHGATEWAY", address)
        check = check_quality(store, MODEL, min_rows=5, html_out=tmp_path / "q.html")
        text = requests.get(f"http://{address}/metrics", timeout=10).text
    finally:
        gateway.stop()
    assert check.pushed
    key = check.report_uri.split("/", 3)[3]
    assert store.get_bytes(key) == (tmp_path / "q.html").read_bytes()
    result = store.get_json(check.result_uri.split("/", 3)[3])
    assert result["groups"][0]["accuracy"] == pytest.approx(0.7)
    labels = 'job="mlops_quality",model="iris",role="stable",version="v1"'
    assert f"mlops_model_accuracy{{{labels}}} 0.7" in text.replace('instance="",', "")
    assert f"mlops_model_labelled_rows{{{labels}}} 10" in text.replace('instance="",', "")
    assert 'mlops_model_min_accuracy{instance="",job="mlops_quality",model="iris"} 0.9' in text


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow  # four CLI processes, each importing Evidently
def test_cli_feedback_and_quality(store, tmp_path):
    publish_metadata(store, "v1", {"a": 5, "b": 5})
    ids = [f"req-{i}" for i in range(30)]
    write_log(store, rows(ids, ["a", "b"] * 15, "v1", "stable", NOW - timedelta(minutes=5)))
    labels = tmp_path / "labels.csv"
    unknown = [f"nope-{i}" for i in range(25)]
    lines = [f"{r},a" for r in ids] + [f"{r},b" for r in unknown]
    labels.write_text("id,label\n" + "\n".join(lines) + "\n")
    env = cli_env(tmp_path / "home", store)

    done = run_cli(["feedback", MODEL, "--labels", str(labels), "--json"], env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["labels"], out["matched"], out["unknown_ids"]) == (55, 30, 25)
    assert out["unknown_ids_shown"] == unknown[:20]
    done = run_cli(["feedback", MODEL, "--labels", str(labels)], env, timeout=120)
    assert done.returncode == 0 and "25 unknown to the inference log" in done.stdout, done.stderr
    assert "first 20 of 25" in done.stdout and "nope-19" in done.stdout
    assert "nope-20" not in done.stdout

    done = run_cli(["quality", MODEL, "--json", "--min-rows", "10"], env, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    (group,) = out["groups"]
    assert group["accuracy"] == 0.5 and group["labelled_rows"] == 30 and group["enough_labels"]
    assert out["unmatched_feedback"] == 25 and out["pushed"] is False
    done = run_cli(["quality", MODEL, "--report", str(tmp_path / "r.html")], env, timeout=300)
    assert done.returncode == 0 and "accuracy 0.5000" in done.stdout, done.stderr
    assert (tmp_path / "r.html").is_file()


def test_cli_refuses_bad_labels(store, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\ngood,a\nbad id,b\n")
    env = cli_env(tmp_path / "home", store)
    done = run_cli(["feedback", MODEL, "--labels", str(labels), "--json"], env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "row 2" in json.loads(done.stdout)["error"]
    assert list(store.list(f"feedback/{MODEL}/")) == []
    done = run_cli(["quality", MODEL, "--window-hours", "-1"], env, timeout=120)
    assert done.returncode == 2 and "window_hours" in done.stderr


def test_cli_default_min_rows_matches_the_library():
    from mlops.cli.quality import DEFAULT_MIN_ROWS as CLI_DEFAULT
    from mlops.monitoring.quality import DEFAULT_MIN_ROWS

    assert CLI_DEFAULT == DEFAULT_MIN_ROWS


def test_check_quality_component_with_real_artifacts(store_env, store, tmp_path):
    from kfp.dsl import HTML, ClassificationMetrics, Metrics

    from components.check_quality import check_quality as component
    from tests.training_helpers import artifact

    publish_metadata(store, "v1", {"a": 5, "b": 5}, min_accuracy=0.7)
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    ids = [f"r{i}" for i in range(8)]
    write_log(store, rows(ids, ["a", "b"] * 4, "v1", "stable", NOW - timedelta(minutes=5)))
    write_feedback(store, MODEL, pd.DataFrame({"request_id": ids, "label": ["a"] * 8}))
    report = artifact(HTML, tmp_path / "report.html")
    metrics = artifact(Metrics, tmp_path / "metrics")
    confusion = artifact(ClassificationMetrics, tmp_path / "confusion")
    accuracy, labelled, enough, min_accuracy, summary = component.python_func(
        model_name=MODEL, report=report, metrics=metrics, confusion=confusion, min_rows=5
    )
    assert (accuracy, labelled, enough, min_accuracy) == (0.5, 8, True, 0.7)
    assert json.loads(summary)["groups"][0]["confusion_matrix"] == [[4, 4], [0, 0]]
    assert metrics.metadata["stable_v1_accuracy"] == 0.5
    matrix = confusion.metadata["confusionMatrix"]
    assert matrix["rows"] == [{"row": [4, 4]}, {"row": [0, 0]}]
    assert [spec["displayName"] for spec in matrix["annotationSpecs"]] == ["a", "b"]
    assert (tmp_path / "report.html").is_file()
