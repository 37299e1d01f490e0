"""Routing strategies end to end: ``python -m serving.server``, the real store, real HTTP.

* sticky: each of 200 client ids gets one version on every request, the one
  :func:`mlops.deployment.routing.sticky_bucket` gives it, and the share of ids
  on the candidate is within 10 points of the weight (3 standard deviations for
  200 ids at 30 %); requests without the header go to stable;
* cohort: the cohort header reaches the candidate and no other request does;
* shadow: every answer is stable's, while the candidate's predictions of the same
  requests appear in the inference log with role ``shadow`` and in the metrics, each
  copy a request of the candidate in role ``shadow`` (no error, its latency observed);
* a shadow that raises, or sleeps 2 s, on every copy changes no status code, and
  the p99 of stable answers stays within ``2 x baseline + 50 ms`` (a shadow on the
  request path would add 2 s to each).
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
import requests

from tests.serving_helpers import (
    build_model_dir,
    make_keypair,
    metric_sample,
    publish,
    sample_rows,
    serving_process,
    v1_list_rows,
)

pytestmark = pytest.mark.slow

MODEL = "iris"
WEIGHT = 30
ROWS = v1_list_rows(sample_rows(1))


@pytest.fixture(scope="module")
def published(store_settings, tmp_path_factory):
    """A store with v1 (stable) and v2 published and v1 deployed; the public key; a work folder."""
    from mlops.core.store import ObjectStore
    from mlops.deployment.state import Release, deploy

    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    work = tmp_path_factory.mktemp("routing")
    private, public = make_keypair(work / "keys")
    for version, estimator in (("v1", "logistic_regression"), ("v2", "random_forest")):
        model_dir, _, _ = build_model_dir(
            work / version, private, version=version, estimator=estimator
        )
        publish(store, model_dir, MODEL, version)
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    return store, public, work


def _candidate(store, strategy: str, percent: int | None = None) -> None:
    from mlops.deployment.state import Release, deploy

    deploy(store, MODEL, Release("v2", store.uri(f"models/{MODEL}/v2")), percent, strategy=strategy)


def _wait_strategy(base: str, strategy: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get(f"{base}/v1/models/{MODEL}", timeout=5).json()
        if status.get("strategy") == strategy and status.get("canary") == "v2":
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the server never routed by {strategy}: {status}")
        time.sleep(0.1)


def _predict(base: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{base}/v1/models/{MODEL}:predict", json={"instances": ROWS}, headers=headers, timeout=10
    )


@pytest.fixture(scope="module")
def server(published):
    store, public, work = published
    (work / "server").mkdir()
    with serving_process(store, public, work / "server") as running:
        yield running, store
    assert running.process.returncode == 0, running.tail()


def test_sticky_sends_each_client_to_one_version_split_by_the_weight(server):
    from mlops.deployment.routing import sticky_bucket

    running, store = server
    _candidate(store, "sticky", WEIGHT)
    _wait_strategy(running.base, "sticky")
    clients = [f"client-{i}" for i in range(200)]
    seen: dict[str, set[tuple[str, str]]] = {c: set() for c in clients}
    with requests.Session() as http:
        for _ in range(3):
            for client in clients:
                answer = http.post(
                    f"{running.base}/v1/models/{MODEL}:predict",
                    json={"instances": ROWS},
                    headers={"x-client-id": client},
                    timeout=10,
                )
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert answer.headers["x-mlops-role"] == body["role"]
                seen[client].add((body["model_version"], body["role"]))
    assert all(len(versions) == 1 for versions in seen.values())  # sticky: never both
    on_candidate = {c for c, versions in seen.items() if versions == {("v2", "canary")}}
    assert on_candidate == {c for c in clients if sticky_bucket(c) < WEIGHT}
    assert abs(len(on_candidate) / len(clients) * 100 - WEIGHT) <= 10
    anonymous = {_predict(running.base).json()["model_version"] for _ in range(30)}
    assert anonymous == {"v1"}  # no client key: stable, so nobody flips


def test_the_cohort_header_reaches_the_candidate_and_nothing_else_does(server):
    running, store = server
    _candidate(store, "cohort")
    _wait_strategy(running.base, "cohort")
    for _ in range(20):
        beta = _predict(running.base, {"x-mlops-cohort": "beta"})
        assert (beta.json()["model_version"], beta.json()["role"]) == ("v2", "canary")
        assert beta.headers["x-mlops-role"] == "canary"
    others = [{}, {"x-mlops-cohort": "alpha"}, {"x-mlops-cohort": "Beta"}, {"x-client-id": "beta"}]
    for headers in others * 10:
        answer = _predict(running.base, headers)
        assert (answer.json()["model_version"], answer.json()["role"]) == ("v1", "stable")


def test_shadow_answers_with_stable_and_logs_the_candidates_predictions(server):
    from mlops.monitoring.inference_log import read_inference_logs

    running, store = server
    _candidate(store, "shadow")
    _wait_strategy(running.base, "shadow")
    ids = [f"shadow-{i}" for i in range(40)]
    for request_id in ids:
        answer = _predict(running.base, {"x-request-id": request_id})
        assert answer.status_code == 200
        assert (answer.json()["model_version"], answer.json()["role"]) == ("v1", "stable")
    deadline = time.monotonic() + 20
    while True:
        frame = read_inference_logs(store, MODEL)
        mine = frame[frame["request_id"].isin(ids)]
        shadow = mine[mine["role"] == "shadow"]
        if len(shadow) == len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sorted(shadow["request_id"]) == sorted(ids)
    assert set(shadow["model_version"]) == {"v2"}
    stable = mine[mine["role"] == "stable"]
    assert sorted(stable["request_id"]) == sorted(ids) and set(stable["model_version"]) == {"v1"}
    # Each copy is counted as a request of v2 in role shadow once scored (the canary
    # analysis compares these with stable's), a moment after its row is logged.
    deadline = time.monotonic() + 10
    while True:
        text = requests.get(f"{running.base}/metrics", timeout=5).text
        copies = metric_sample(text, "mlops_requests_total", version="v2", role="shadow")
        if copies >= len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert copies == len(ids)
    shadow_v1 = {"version": "v2", "role": "shadow", "protocol": "v1"}
    assert metric_sample(text, "mlops_requests_total", **shadow_v1) == copies  # the original's
    assert metric_sample(text, "mlops_request_errors_total", version="v2", role="shadow") == 0
    shadow_latency = {"version": "v2", "role": "shadow", "endpoint": "predict"}
    assert metric_sample(text, "mlops_request_duration_seconds_count", **shadow_latency) == copies
    assert metric_sample(text, "mlops_predictions_total", version="v2", role="shadow") >= len(ids)
    assert metric_sample(text, "mlops_shadow_requests_total", result="scored") >= len(ids)


MISBEHAVING_SHADOW = """
import time
from serving import predictor as _predictor

_original = _predictor.SklearnPredictor.predict


def _predict(self, payload, headers=None, response_headers=None, role="stable", request_id=None):
    if role == "shadow":
        if {mode!r} == "sleep":
            time.sleep(2.0)
        else:
            raise RuntimeError("the shadow model is broken")
    return _original(self, payload, headers, response_headers, role=role, request_id=request_id)


_predictor.SklearnPredictor.predict = _predict
"""


def _latencies(base: str, count: int = 200) -> tuple[list[int], list[float], set]:
    def one(i: int) -> tuple[int, float, str]:
        started = time.perf_counter()
        answer = requests.post(
            f"{base}/v1/models/{MODEL}:predict",
            json={"instances": ROWS},
            headers={"x-request-id": f"lat-{uuid.uuid4().hex[:8]}-{i}"},
            timeout=30,
        )
        took = time.perf_counter() - started
        version = answer.json().get("model_version") if answer.status_code == 200 else None
        return answer.status_code, took, version

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(count)))
    return [r[0] for r in results], [r[1] for r in results], {r[2] for r in results}


@pytest.mark.parametrize("mode", ["sleep", "raise"])
def test_a_slow_or_failing_shadow_changes_neither_status_codes_nor_p99(published, mode):
    from mlops.deployment.state import Release, deploy

    store, public, work = published
    folder = work / f"misbehaving-{mode}"
    folder.mkdir()
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))  # stable only
    with serving_process(
        store, public, folder, preamble=MISBEHAVING_SHADOW.format(mode=mode)
    ) as running:
        _latencies(running.base, 40)  # warm-up
        codes, baseline, _ = _latencies(running.base)
        assert set(codes) == {200}
        _candidate(store, "shadow")
        _wait_strategy(running.base, "shadow")
        codes, shadowed, versions = _latencies(running.base)
        assert set(codes) == {200} and versions == {"v1"}
        p99_base, p99_shadow = np.percentile(baseline, 99), np.percentile(shadowed, 99)
        assert p99_shadow <= 2 * p99_base + 0.05, (p99_base, p99_shadow)
        text = requests.get(f"{running.base}/metrics", timeout=5).text
        if mode == "raise":
            assert metric_sample(text, "mlops_shadow_requests_total", result="failed") > 0
        else:  # 2 s per copy: while 200 answers came back, only a handful of copies were scored
            assert metric_sample(text, "mlops_shadow_requests_total", result="scored") < 10
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
