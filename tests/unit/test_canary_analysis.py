"""Automated canary analysis on synthetic ``/metrics`` text and the real store (issue 13).

The metrics pages are rendered by ``prometheus_client`` with the model server's
series (``tests/canary_helpers.py``); the deployment state, the inference logs,
the feedback and the analysis records are real objects in SeaweedFS. The run
against a real Prometheus is ``tests/integration/test_canary_prometheus.py``.
"""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from mlops.core.errors import MlopsError, UsageError
from mlops.deployment import state as desired
from mlops.deployment.actions import promote_action
from mlops.monitoring.canary import (
    REPORTS_PREFIX,
    CanaryThresholds,
    VersionFigures,
    analyze_canary,
    figures_from_metrics_text,
    histogram_quantile,
    jensen_shannon_distance,
)
from mlops.monitoring.feedback import write_feedback
from tests.canary_helpers import Traffic, metrics_page

MODEL = "iris"
HEALTHY = Traffic(requests=400)


def _release(version: str) -> desired.Release:
    return desired.Release(version, f"s3://models/{MODEL}/{version}")


@pytest.fixture
def candidate(store):
    """v1 stable, v2 a 20% canary, in the real store."""
    desired.deploy(store, MODEL, _release("v1"))
    desired.deploy(store, MODEL, _release("v2"), 20)
    return store


def analyse(store, candidate_traffic: Traffic, stable: Traffic = HEALTHY, **kwargs):
    text = metrics_page(MODEL, {"v1": stable, "v2": candidate_traffic})
    return analyze_canary(store, MODEL, metrics_text=text, **kwargs)


def test_a_healthy_candidate_is_promoted_and_the_figures_recorded(candidate):
    analysis = analyse(candidate, Traffic(requests=120))
    assert analysis.verdict == "promote" and analysis.applied and analysis.outcome == "promoted"
    state = desired.read_state(candidate, MODEL)
    assert state.stable.version == "v2" and state.canary is None
    record = candidate.get_json(analysis.record_key)
    assert analysis.record_key.startswith(f"{REPORTS_PREFIX}/{MODEL}/")
    assert record["verdict"] == "promote" and record["candidate"]["requests"] == 120
    assert record["stable"]["requests"] == 400, "the other model's series are not counted"
    assert record["candidate"]["errors"] == 0, "aborted requests are not errors"
    assert {c["name"]: c["outcome"] for c in record["checks"]} == {
        "traffic": "pass",
        "error_ratio": "pass",
        "p99_latency": "pass",
        "prediction_distribution": "pass",
        "out_of_range_share": "pass",
        "accuracy": "skip",
    }
    assert record["window_minutes"] is None, "/metrics counters run since the server started"


def test_a_candidate_that_errors_is_rolled_back(candidate):
    analysis = analyse(candidate, Traffic(requests=200, errors=20))
    assert analysis.verdict == "rollback" and analysis.outcome == "rolled_back"
    assert any("error ratio: candidate 10.00%" in reason for reason in analysis.reasons)
    state = desired.read_state(candidate, MODEL)
    assert state.canary is None and state.stable.version == "v1"


def test_errors_roll_back_before_the_traffic_minimum(candidate):
    analysis = analyse(candidate, Traffic(requests=30, errors=15))
    assert analysis.verdict == "rollback"
    assert desired.read_state(candidate, MODEL).canary is None
    # A few errors in a small sample are not enough evidence: wait.
    desired.deploy(candidate, MODEL, _release("v2"), 20)
    assert analyse(candidate, Traffic(requests=30, errors=3)).verdict == "wait"


def test_a_slow_candidate_is_rolled_back(candidate):
    analysis = analyse(candidate, Traffic(requests=200, latency=0.4))
    assert analysis.verdict == "rollback"
    (reason,) = analysis.reasons
    assert reason.startswith("p99 latency: candidate") and analysis.candidate.p99_seconds > 0.25
    assert desired.read_state(candidate, MODEL).canary is None


def test_a_little_slower_inside_the_allowance_is_not_a_regression(candidate):
    # 4 ms -> 8 ms is twice as slow but far below the 50 ms the p99 may grow by.
    assert analyse(candidate, Traffic(requests=200, latency=0.008)).verdict == "promote"


def test_a_candidate_with_skewed_predictions_is_rolled_back(candidate):
    analysis = analyse(candidate, Traffic(requests=200, classes={"a": 0.95, "b": 0.05}))
    assert analysis.verdict == "rollback"
    check = next(c for c in analysis.checks if c.name == "prediction_distribution")
    assert check.outcome == "fail" and check.value > 0.2
    assert "a 95%, b 5%" in check.detail


def test_a_candidate_seeing_out_of_range_inputs_is_rolled_back(candidate):
    analysis = analyse(candidate, Traffic(requests=200, out_of_range=0.5))
    assert analysis.verdict == "rollback"
    assert analysis.reasons[0].startswith("out-of-range inputs per row: candidate 0.500")


def test_too_little_traffic_waits_and_changes_nothing(candidate):
    before = desired.read_state(candidate, MODEL)
    analysis = analyse(candidate, Traffic(requests=40))
    assert analysis.verdict == "wait" and not analysis.applied and analysis.outcome == "waiting"
    assert analysis.reasons == ["requests: stable 400, candidate 40 (each needs 100)"]
    after = desired.read_state(candidate, MODEL)
    assert after.summary() == before.summary()
    assert candidate.get_json(analysis.record_key)["verdict"] == "wait"
    # Thresholds are parameters: a lower minimum decides on the same figures.
    lower = CanaryThresholds(min_requests=20, min_predictions=20)
    assert analyse(candidate, Traffic(requests=40), thresholds=lower).verdict == "promote"
    assert desired.read_state(candidate, MODEL).stable.version == "v2"


def test_a_dry_run_records_the_verdict_and_changes_nothing(candidate):
    analysis = analyse(candidate, Traffic(requests=200, errors=50), apply=False)
    assert analysis.verdict == "rollback" and analysis.outcome == "analysed"
    assert desired.read_state(candidate, MODEL).canary.version == "v2"


@pytest.mark.parametrize("strategy", ["sticky", "cohort", "shadow"])
def test_every_strategy_is_analysed_by_version(store, strategy):
    desired.deploy(store, MODEL, _release("v1"))
    desired.deploy(
        store, MODEL, _release("v2"), 30 if strategy == "sticky" else None, strategy=strategy
    )
    analysis = analyse(store, Traffic(requests=300, errors=40))
    assert analysis.strategy == strategy and analysis.verdict == "rollback"
    assert desired.read_state(store, MODEL).canary is None


def _log_and_label(store, version: str, role: str, n: int, right: int, start: datetime) -> None:
    """``n`` logged predictions of ``version``, the first ``right`` of them labelled correctly."""
    import io

    from mlops.monitoring.inference_log import log_key

    ids = [f"{version}-{i}" for i in range(n)]
    frame = pd.DataFrame(
        {
            "x": [1.0] * n,
            "prediction": ["a"] * n,
            "model_version": [version] * n,
            "timestamp": [start + timedelta(seconds=i) for i in range(n)],
            "request_id": ids,
            "role": [role] * n,
        }
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.put_bytes(
        log_key(MODEL, start.date(), f"{start:%Y%m%dT%H%M%S%f}Z-{version}"), buffer.getvalue()
    )
    labels = ["a"] * right + ["b"] * (n - right)
    write_feedback(
        store,
        MODEL,
        pd.DataFrame(
            {
                "request_id": ids,
                "label": labels,
                "received_at": pd.Timestamp.now(tz="UTC"),
            }
        ),
    )


def test_accuracy_on_labelled_feedback_rolls_back_a_worse_candidate(candidate):
    start = datetime.now(UTC) - timedelta(minutes=10)
    _log_and_label(candidate, "v1", "stable", 80, 76, start)  # 0.95
    _log_and_label(candidate, "v2", "canary", 60, 48, start)  # 0.80
    analysis = analyse(candidate, Traffic(requests=200))
    check = next(c for c in analysis.checks if c.name == "accuracy")
    assert check.outcome == "fail" and math.isclose(check.value, 0.8)
    assert analysis.verdict == "rollback"
    assert (analysis.stable.labelled_rows, analysis.candidate.labelled_rows) == (80, 60)


def test_labels_required_but_too_few_waits(candidate):
    start = datetime.now(UTC) - timedelta(minutes=5)
    _log_and_label(candidate, "v2", "canary", 10, 10, start)
    analysis = analyse(
        candidate, Traffic(requests=200), thresholds=CanaryThresholds(require_labels=True)
    )
    assert analysis.verdict == "wait"
    assert analysis.reasons == ["accuracy: 0 stable and 10 candidate labelled rows (each needs 50)"]


def test_a_candidate_replaced_meanwhile_is_not_promoted(candidate):
    with pytest.raises(UsageError, match="the candidate is now v2, not v9; nothing changed"):
        promote_action(MODEL, store=candidate, expected_candidate="v9")
    assert desired.read_state(candidate, MODEL).canary.version == "v2"


def test_refusals_name_the_problem(store, candidate):
    with pytest.raises(UsageError, match="name a metrics source"):
        analyze_canary(candidate, MODEL)
    with pytest.raises(UsageError, match="window must be a positive"):
        analyze_canary(candidate, MODEL, metrics_text="", window_minutes=0)
    with pytest.raises(UsageError, match="max_latency_ratio must be at least 1"):
        analyse(candidate, HEALTHY, thresholds=CanaryThresholds(max_latency_ratio=0.5))
    with pytest.raises(UsageError, match="no candidate to analyse"):
        analyze_canary(candidate, "other", metrics_text="")
    with pytest.raises(MlopsError, match="cannot query Prometheus at http://127.0.0.1:9"):
        analyze_canary(candidate, MODEL, prometheus_url="http://127.0.0.1:9")


def test_histogram_quantile_interpolates_as_prometheus():
    # 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.2], 10 in (0.2, 0.5].
    buckets = {0.1: 50.0, 0.2: 90.0, 0.5: 100.0, math.inf: 100.0}
    assert math.isclose(histogram_quantile(0.5, buckets), 0.1)
    assert math.isclose(histogram_quantile(0.7, buckets), 0.15)
    assert math.isclose(histogram_quantile(0.99, buckets), 0.2 + 0.3 * 9 / 10)
    assert histogram_quantile(0.99, {0.1: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.99, {0.1: 1.0, math.inf: 10.0}) == 0.1, "in +Inf: top bound"


def test_jensen_shannon_distance_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    first, second = {"a": 30, "b": 70}, {"a": 80, "b": 15, "c": 5}
    expected = jensenshannon([30, 70, 0], [80, 15, 5], base=2)
    assert math.isclose(jensen_shannon_distance(first, second), expected)
    assert jensen_shannon_distance(first, first) == 0.0
    assert math.isclose(jensen_shannon_distance({"a": 1}, {"b": 1}), 1.0)


def test_the_metrics_text_parser_reads_the_server_series():
    text = metrics_page(MODEL, {"v1": Traffic(10, errors=2, latency=0.03), "v9": Traffic(5)})
    figures = figures_from_metrics_text(text, MODEL, ("v1", "v2"))
    assert figures["v1"].requests == 10 and figures["v1"].errors == 2
    assert figures["v1"].predictions == {"a": 5.0, "b": 5.0}
    assert 0.025 < figures["v1"].p99_seconds <= 0.05
    assert figures["v2"] == VersionFigures("v2"), "no series: zeros"


class _Page:
    """A tiny /metrics server (the model server's page, for the CLI and the component)."""

    def __init__(self, text: str) -> None:
        body = text.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cli_analyze(store_env, capsys):
    from mlops.cli import main

    desired.deploy(store_env, MODEL, _release("v1"))
    desired.deploy(store_env, MODEL, _release("v2"), 20)
    page = _Page(metrics_page(MODEL, {"v1": HEALTHY, "v2": Traffic(150, errors=30)}))
    try:
        code = main(["canary", "analyze", MODEL, "--metrics-url", page.url, "--dry-run"])
        out = capsys.readouterr().out
        assert code == 0 and "ROLLBACK candidate v2 (canary) against stable v1" in out
        assert "dry run: nothing changed" in out
        code = main(
            [
                "canary",
                "analyze",
                MODEL,
                "--metrics-url",
                page.url,
                "--json",
                "--max-error-increase",
                "0.5",
            ]
        )
        payload = json.loads(capsys.readouterr().out)
        assert code == 0 and payload["verdict"] == "promote" and payload["outcome"] == "promoted"
        assert payload["thresholds"]["max_error_increase"] == 0.5
        assert desired.read_state(store_env, MODEL).stable.version == "v2"
        code = main(["canary", "analyze", MODEL, "--metrics-url", page.url, "--json"])
        payload = json.loads(capsys.readouterr().out)
        assert code == 2 and "no candidate to analyse" in payload["error"]
    finally:
        page.close()


def test_the_component_runs_the_analysis(store_env, tmp_path):
    from kfp.dsl import Markdown, Metrics

    from components.analyze_canary import analyze_canary as component

    desired.deploy(store_env, MODEL, _release("v1"))
    desired.deploy(store_env, MODEL, _release("v2"), None, strategy="cohort")
    page = _Page(metrics_page(MODEL, {"v1": HEALTHY, "v2": Traffic(150, latency=2.0)}))
    metrics = Metrics(uri=str(tmp_path / "metrics"))
    report = Markdown(uri=str(tmp_path / "report.md"))
    report.path = str(tmp_path / "report.md")
    try:
        verdict, summary = component.python_func(
            model_name=MODEL,
            metrics=metrics,
            report=report,
            metrics_url=page.url,
            target="local",
        )
    finally:
        page.close()
    outcome = json.loads(summary)
    assert verdict == "rollback" and outcome["status"] == "rolled_back"
    assert outcome["strategy"] == "cohort"
    assert metrics.metadata["candidate_requests"] == 150.0
    text = (tmp_path / "report.md").read_text()
    assert "**rollback**" in text and "| p99_latency | fail |" in text
    assert desired.read_state(store_env, MODEL).canary is None
