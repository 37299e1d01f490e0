"""Automated canary analysis on synthetic ``/metrics`` text and the real store (issue 13).

The metrics pages are rendered by ``prometheus_client`` with the model server's
series (``tests/canary_helpers.py``; :func:`role_page` adds the ``role`` label the
server's series carry, for shadow candidates); the deployment state, the inference
logs, the feedback and the analysis records are real objects in SeaweedFS. A shadow's
copies are counted by the real :class:`serving.router.ShadowMirror` scoring with a
real signed predictor, read back from ``prometheus_client``'s default registry (the
one the server's ``/metrics`` serves). The run against a real Prometheus is
``tests/integration/test_canary_prometheus.py``; shadows against the real server,
from both sources, ``tests/integration/test_shadow_analysis.py``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest
from kserve.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException

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
from serving.limits import RequestTooLarge
from serving.predictor import SklearnPredictor
from serving.router import ShadowMirror, error_status
from tests.canary_helpers import LATENCY_BUCKETS, Traffic, metrics_page
from tests.serving_helpers import (
    build_model_dir,
    make_keypair,
    sample_rows,
    v1_list_rows,
    v2_per_feature,
)

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


@pytest.mark.parametrize("strategy", ["sticky", "cohort"])
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


def test_the_latency_check_reads_scoring_requests_not_explanations():
    # Explanations take far longer than predictions; like the dashboard's latency panels,
    # the p99 check leaves them out (a slow explainer is not a slow model).
    registry = CollectorRegistry()
    duration = Histogram(
        "mlops_request_duration_seconds",
        "d",
        ["model", "version", "role", "endpoint"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    for endpoint, seconds in (("predict", 0.01), ("infer", 0.01), ("explain", 4.0)):
        for _ in range(50):
            duration.labels(MODEL, "v2", "canary", endpoint).observe(seconds)
    text = generate_latest(registry).decode()
    figures = figures_from_metrics_text(text, MODEL, ("v1", "v2"))
    assert figures["v2"].p99_seconds is not None and figures["v2"].p99_seconds < 0.05


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


# --------------------------------------------------------------------------- shadow candidates


def role_page(model: str, traffic: dict[tuple[str, str], Traffic]) -> str:
    """The ``/metrics`` text of a server whose ``(version, role)`` pairs answered ``traffic``.

    The series carry the labels ``serving.metrics`` gives them, ``role`` included.
    """
    registry = CollectorRegistry()
    labels = ["model", "version", "role"]
    requests = Counter("mlops_requests_total", "r", [*labels, "protocol"], registry=registry)
    errors = Counter("mlops_request_errors_total", "e", [*labels, "code"], registry=registry)
    predictions = Counter("mlops_predictions_total", "p", [*labels, "class"], registry=registry)
    out_of_range = Counter(
        "mlops_input_out_of_range_total", "o", [*labels, "feature"], registry=registry
    )
    duration = Histogram(
        "mlops_request_duration_seconds",
        "d",
        [*labels, "endpoint"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    for (version, role), seen in traffic.items():
        requests.labels(model, version, role, "v1").inc(seen.requests)
        if seen.errors:
            errors.labels(model, version, role, "500").inc(seen.errors)
        for label, share in seen.classes.items():
            predictions.labels(model, version, role, label).inc(round(seen.requests * share))
        if seen.out_of_range:
            out_of_range.labels(model, version, role, "x").inc(seen.requests * seen.out_of_range)
        histogram = duration.labels(model, version, role, "predict")
        for _ in range(min(seen.requests, 2000)):
            histogram.observe(seen.latency)
    return generate_latest(registry).decode()


@pytest.fixture
def shadow(store):
    """v1 stable, v2 its shadow, in the real store."""
    desired.deploy(store, MODEL, _release("v1"))
    desired.deploy(store, MODEL, _release("v2"), None, strategy="shadow")
    return store


#: v2 also answered a few requests pinned to it by path (role canary): not its shadow copies.
PINNED = Traffic(50, errors=50, latency=3.0)


def test_a_healthy_shadow_is_judged_on_its_copies_and_promoted(shadow):
    text = role_page(
        MODEL,
        {("v1", "stable"): HEALTHY, ("v2", "shadow"): Traffic(300), ("v2", "canary"): PINNED},
    )
    analysis = analyze_canary(shadow, MODEL, metrics_text=text)
    assert analysis.strategy == "shadow" and analysis.candidate_role == "shadow"
    assert analysis.verdict == "promote" and analysis.outcome == "promoted"
    assert (analysis.candidate.requests, analysis.candidate.errors) == (300, 0)
    assert analysis.candidate.predicted_rows == 300
    assert analysis.stable.requests == 400
    state = desired.read_state(shadow, MODEL)
    assert state.stable.version == "v2" and state.canary is None and state.strategy == "canary"
    assert shadow.get_json(analysis.record_key)["candidate_role"] == "shadow"


@pytest.mark.parametrize(
    ("copies", "failed_check"),
    [
        (Traffic(200, errors=40), "error_ratio"),
        (Traffic(200, latency=0.6), "p99_latency"),
        (Traffic(200, classes={"a": 0.95, "b": 0.05}), "prediction_distribution"),
        (Traffic(200, out_of_range=0.5), "out_of_range_share"),
    ],
)
def test_a_shadow_worse_on_its_copies_is_rolled_back_and_removed(shadow, copies, failed_check):
    text = role_page(MODEL, {("v1", "stable"): HEALTHY, ("v2", "shadow"): copies})
    analysis = analyze_canary(shadow, MODEL, metrics_text=text)
    assert analysis.verdict == "rollback" and analysis.outcome == "rolled_back"
    assert [c.name for c in analysis.checks if c.outcome == "fail"] == [failed_check]
    state = desired.read_state(shadow, MODEL)
    assert state.canary is None and state.stable.version == "v1" and state.strategy == "canary"


def test_a_shadow_erroring_early_is_rolled_back_before_the_traffic_minimum(shadow):
    text = role_page(MODEL, {("v1", "stable"): HEALTHY, ("v2", "shadow"): Traffic(30, errors=30)})
    analysis = analyze_canary(shadow, MODEL, metrics_text=text)
    assert analysis.verdict == "rollback"
    assert any("error ratio: candidate 100.00%" in reason for reason in analysis.reasons)


def test_a_shadow_without_copies_waits_whatever_else_its_version_answered(shadow):
    # Only pinned requests, and series without a role (the candidate's answered traffic).
    for text in (
        role_page(MODEL, {("v1", "stable"): HEALTHY, ("v2", "canary"): Traffic(300)}),
        metrics_page(MODEL, {"v1": HEALTHY, "v2": Traffic(300)}),
    ):
        analysis = analyze_canary(shadow, MODEL, metrics_text=text)
        assert analysis.verdict == "wait" and analysis.candidate.requests == 0
        assert analysis.reasons[0] == "requests: stable 400, candidate 0 (each needs 100)"
    assert desired.read_state(shadow, MODEL).canary.version == "v2"


def test_a_promoted_shadow_is_judged_on_what_it_answered_not_on_its_copies(store):
    desired.deploy(store, MODEL, _release("v2"))
    desired.deploy(store, MODEL, _release("v3"), 20)
    text = role_page(
        MODEL,
        {
            ("v2", "shadow"): Traffic(500, errors=500, latency=5.0),  # before its promotion
            ("v2", "stable"): HEALTHY,
            ("v3", "canary"): Traffic(150),
            ("v3", "shadow"): Traffic(100, errors=100),  # not a shadow now: not compared
        },
    )
    analysis = analyze_canary(store, MODEL, metrics_text=text)
    assert analysis.candidate_role == "canary" and analysis.verdict == "promote"
    assert (analysis.stable.requests, analysis.stable.errors) == (400, 0)
    assert (analysis.candidate.requests, analysis.candidate.errors) == (150, 0)


def test_the_metrics_text_parser_chooses_a_shadows_copies():
    text = role_page(
        MODEL,
        {
            ("v1", "stable"): Traffic(10, errors=1),
            ("v1", "shadow"): Traffic(7, errors=7),
            ("v2", "shadow"): Traffic(6, errors=2),
            ("v2", "canary"): Traffic(5, errors=5),
        },
    )
    copies = figures_from_metrics_text(text, MODEL, ("v1", "v2"), shadow=True)
    assert (copies["v1"].requests, copies["v1"].errors) == (10, 1)
    assert (copies["v2"].requests, copies["v2"].errors) == (6, 2)
    answered = figures_from_metrics_text(text, MODEL, ("v1", "v2"))
    assert (answered["v2"].requests, answered["v2"].errors) == (5, 5)


def _log(store, version: str, role: str, ids: list[str], predictions: list[str]) -> None:
    """Logged predictions of ``version`` in ``role`` for the requests ``ids``."""
    import io

    from mlops.monitoring.inference_log import log_key

    start = datetime.now(UTC) - timedelta(minutes=5)
    frame = pd.DataFrame(
        {
            "x": [1.0] * len(ids),
            "prediction": predictions,
            "model_version": [version] * len(ids),
            "timestamp": [start + timedelta(seconds=i) for i in range(len(ids))],
            "request_id": ids,
            "role": [role] * len(ids),
        }
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.put_bytes(
        log_key(MODEL, start.date(), f"{start:%Y%m%dT%H%M%S%f}Z-{version}-{role}"),
        buffer.getvalue(),
    )


def test_a_shadows_accuracy_is_measured_on_its_copies_of_the_labelled_requests(shadow):
    # The shadow's rows carry the request ids of the stable answers they copy, so one
    # label per request scores both; its pinned (canary) rows are not its copies.
    ids = [f"req-{i}" for i in range(80)]
    _log(shadow, "v1", "stable", ids, ["a"] * 76 + ["b"] * 4)  # 0.95
    _log(shadow, "v2", "shadow", ids, ["a"] * 64 + ["b"] * 16)  # 0.80
    pinned = [f"pinned-{i}" for i in range(90)]
    _log(shadow, "v2", "canary", pinned, ["a"] * 90)  # 1.00, more rows: ignored
    labels = pd.DataFrame({"request_id": ids + pinned, "label": "a"})
    labels["received_at"] = pd.Timestamp.now(tz="UTC")
    write_feedback(shadow, MODEL, labels)
    text = role_page(MODEL, {("v1", "stable"): HEALTHY, ("v2", "shadow"): Traffic(200)})
    analysis = analyze_canary(shadow, MODEL, metrics_text=text)
    check = next(c for c in analysis.checks if c.name == "accuracy")
    assert check.outcome == "fail" and math.isclose(check.value, 0.8), check
    assert (analysis.stable.labelled_rows, analysis.candidate.labelled_rows) == (80, 80)
    assert analysis.verdict == "rollback"


# --------------------------------------------------------------------------- what the mirror counts

MIRRORED = "shadow-unit"


@pytest.fixture(scope="module")
def shadow_predictor(tmp_path_factory) -> SklearnPredictor:
    """A real signed model version, loaded as the server loads it."""
    work = tmp_path_factory.mktemp("shadow-mirror")
    private, public = make_keypair(work / "keys")
    model_dir, _, _ = build_model_dir(work / "v2", private, model_name=MIRRORED, version="v2")
    predictor = SklearnPredictor(MIRRORED, model_dir, public, version="v2")
    assert predictor.load(), predictor.not_ready_reason
    return predictor


class BrokenShadow:
    """A candidate whose every prediction raises ``error`` (a stand-in for a broken model)."""

    def __init__(self, error: Exception) -> None:
        self.version = "v2"
        self.error = error

    def predict(self, payload: Any, **kwargs: Any) -> Any:
        raise self.error


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"model": MIRRORED, **labels}) or 0.0


#: The series a shadow's copies count in (name, labels), by a short key for the test below.
_SHADOW_SERIES = {
    "v1": ("mlops_requests_total", {"version": "v2", "role": "shadow", "protocol": "v1"}),
    "v2": ("mlops_requests_total", {"version": "v2", "role": "shadow", "protocol": "v2"}),
    **{
        code: ("mlops_request_errors_total", {"version": "v2", "role": "shadow", "code": code})
        for code in ("400", "413", "500")
    },
    **{
        endpoint: (
            "mlops_request_duration_seconds_count",
            {"version": "v2", "role": "shadow", "endpoint": endpoint},
        )
        for endpoint in ("predict", "infer")
    },
    "range": (
        "mlops_input_out_of_range_total",
        {"version": "v2", "role": "shadow", "feature": "sepal_length"},
    ),
    "scored": ("mlops_shadow_requests_total", {"result": "scored"}),
    "failed": ("mlops_shadow_requests_total", {"result": "failed"}),
}


def test_the_mirror_counts_each_copy_as_a_request_of_the_shadow(shadow_predictor):
    before = {key: _sample(name, **labels) for key, (name, labels) in _SHADOW_SERIES.items()}
    rows = sample_rows(3)
    outlier = v1_list_rows(rows)
    outlier[0][0] = 1000.0  # far above the training range of sepal_length
    mirror = ShadowMirror(MIRRORED)
    copies: list[tuple[Any, Any]] = [
        (shadow_predictor, {"instances": v1_list_rows(rows)}),
        (shadow_predictor, {"instances": outlier}),
        (shadow_predictor, v2_per_feature(rows, model_name=MIRRORED)),
        (BrokenShadow(InvalidInput("the shadow refuses the row")), {"instances": []}),
        (BrokenShadow(RequestTooLarge("past MLOPS_MAX_ROWS")), {"instances": []}),
        (BrokenShadow(RuntimeError("the shadow model is broken")), {"instances": []}),
    ]
    for number, (candidate, body) in enumerate(copies):
        assert mirror.offer(candidate, body, f"copy-{number}")
    deadline = time.monotonic() + 10
    while _sample("mlops_shadow_requests_total", result="scored") + _sample(
        "mlops_shadow_requests_total", result="failed"
    ) < before["scored"] + before["failed"] + len(copies):
        assert time.monotonic() < deadline, "the mirror did not score every copy"
        time.sleep(0.02)
    mirror.close()

    def grew(key: str) -> float:
        name, labels = _SHADOW_SERIES[key]
        return _sample(name, **labels) - before[key]

    assert grew("v1") == 5 and grew("v2") == 1
    for code in ("400", "413", "500"):
        assert grew(code) == 1, code
    assert grew("predict") == 5 and grew("infer") == 1
    assert grew("range") == 1
    assert grew("scored") == 3 and grew("failed") == 3
    # Nothing was answered: no request of any other role exists for this model.
    assert _sample("mlops_requests_total", version="v2", role="stable", protocol="v1") == 0
    assert _sample("mlops_requests_total", version="v2", role="canary", protocol="v1") == 0


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("bad row"), 400),
        (RequestTooLarge("past MLOPS_MAX_ROWS"), 413),  # an HTTPException first: its own status
        (HTTPException(status_code=422, detail="x"), 422),
        (ModelNotFound("m"), 404),
        (ModelNotReady("m"), 503),
        (InferenceError("nan"), 500),
        (NotImplementedError("no"), 501),
        (RuntimeError("broken"), 500),
        (ValueError("broken"), 500),
    ],
)
def test_a_shadow_error_gets_the_status_the_server_answers_it_with(error, status):
    assert error_status(error) == status
