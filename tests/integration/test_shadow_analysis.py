"""Canary analysis of shadow candidates against the real model server (issue 13).

``python -m serving.server`` serves iris from the real store: v1 stable, then a
shadow candidate. Every answer is stable's; the shadow's copies are counted by
the server itself as requests of the candidate in role ``shadow``. The server is
started with a preamble that breaks v3 only (a stand-in for a broken model: its
shadow copies raise ``InvalidInput`` or ``RuntimeError``), so one server shows
both outcomes:

* v2, a healthy shadow with enough copies, is promoted: the deployment state
  makes it stable and the server answers with it;
* v3, a shadow whose copies all fail, is rolled back: the shadow is removed,
  v2 keeps answering, and no client ever saw an error.

The figures come from the server's own ``/metrics`` in one test and from a real
Prometheus (the Debian binary) scraping that server every second in the other.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from mlops.monitoring.canary import CanaryThresholds, analyze_canary
from tests import monitoring_stack as ms
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
#: Varied rows, so both versions' predicted classes have a distribution to compare.
ROWS = v1_list_rows(sample_rows(150))
THRESHOLDS = CanaryThresholds(min_requests=50, min_predictions=50)

BROKEN_V3 = """
from kserve.errors import InvalidInput
from serving import predictor as _predictor

_original = _predictor.SklearnPredictor.predict


def _predict(self, payload, headers=None, response_headers=None, role="stable", request_id=None):
    if role == "shadow" and self.version == "v3":
        if request_id is not None and request_id[-1] in "02468":
            raise InvalidInput("v3 refuses the row")
        raise RuntimeError("v3 is broken")
    return _original(self, payload, headers, response_headers, role=role, request_id=request_id)


_predictor.SklearnPredictor.predict = _predict
"""


@pytest.fixture(scope="module")
def published(store_settings, tmp_path_factory):
    """A fresh bucket with v1, v2 and v3 published; the public key; a work folder."""
    from mlops.core.store import ObjectStore

    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    work = tmp_path_factory.mktemp("shadow-analysis")
    private, public = make_keypair(work / "keys")
    # Logistic regressions throughout: a shadow as fast as stable, so only its errors differ.
    for seed, version in enumerate(("v1", "v2", "v3")):
        model_dir, _, _ = build_model_dir(work / version, private, version=version, seed=seed)
        publish(store, model_dir, MODEL, version)
    return store, public, work


def _deploy(store, version: str, strategy: str | None = None) -> None:
    from mlops.deployment.state import Release, deploy

    release = Release(version, store.uri(f"models/{MODEL}/{version}"))
    if strategy is None:
        deploy(store, MODEL, release)
    else:
        deploy(store, MODEL, release, None, strategy=strategy)


def _wait_route(base: str, stable: str, canary: str | None, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get(f"{base}/v1/models/{MODEL}", timeout=5).json()
        if (status.get("stable"), status.get("canary")) == (stable, canary):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"the server never served {stable}/{canary}: {status}")
        time.sleep(0.1)


def _predict(http: requests.Session, base: str, number: int) -> requests.Response:
    return http.post(
        f"{base}/v1/models/{MODEL}:predict",
        json={"instances": [ROWS[number % len(ROWS)]]},
        headers={"x-request-id": f"r-{uuid.uuid4().hex[:8]}-{number}"},
        timeout=10,
    )


def _send(base: str, count: int) -> set[tuple[int, str]]:
    """``count`` requests; every (status, answering version) seen."""
    with requests.Session() as http:
        answers = [_predict(http, base, n) for n in range(count)]
    return {(a.status_code, a.json().get("model_version")) for a in answers}


def _metrics(base: str) -> str:
    return requests.get(f"{base}/metrics", timeout=5).text


def _wait_copies(base: str, version: str, count: int, timeout: float = 30.0) -> str:
    """The ``/metrics`` text once ``count`` copies of ``version`` were counted."""
    return ms.wait_until(
        lambda: (
            text
            if metric_sample(
                text := _metrics(base), "mlops_requests_total", version=version, role="shadow"
            )
            >= count
            else None
        ),
        timeout,
        interval=0.2,
    )


def test_server_metrics_promote_a_healthy_shadow_and_roll_back_a_failing_one(published):
    from mlops.deployment.state import read_state

    store, public, work = published
    folder = work / "metrics-source"
    folder.mkdir()
    _deploy(store, "v1")
    with serving_process(store, public, folder, preamble=BROKEN_V3) as running:
        base = running.base
        metrics_url = f"{base}/metrics"
        _deploy(store, "v2", "shadow")
        _wait_route(base, "v1", "v2")
        assert _send(base, 120) == {(200, "v1")}
        text = _wait_copies(base, "v2", 120)
        assert metric_sample(text, "mlops_request_errors_total", version="v2", role="shadow") == 0

        healthy = analyze_canary(store, MODEL, metrics_url=metrics_url, thresholds=THRESHOLDS)
        assert healthy.verdict == "promote", healthy.to_dict()
        assert healthy.candidate_role == "shadow" and healthy.candidate.requests == 120
        assert healthy.candidate.predicted_rows == 120 and healthy.stable.requests >= 120
        state = read_state(store, MODEL)
        assert state.stable.version == "v2" and state.canary is None
        _wait_route(base, "v2", None)
        assert _send(base, 60) == {(200, "v2")}

        _deploy(store, "v3", "shadow")
        _wait_route(base, "v2", "v3")
        assert _send(base, 60) == {(200, "v2")}, "a failing shadow fails no answer"
        text = _wait_copies(base, "v3", 60)
        shadow = {"version": "v3", "role": "shadow"}
        refused = metric_sample(text, "mlops_request_errors_total", code="400", **shadow)
        broken = metric_sample(text, "mlops_request_errors_total", code="500", **shadow)
        assert refused > 0 and broken > 0 and refused + broken == 60
        # InvalidInput is counted with the status the server answers it with to a client.
        bad = requests.post(
            f"{base}/v1/models/{MODEL}:predict", json={"instances": [[1.0, 2.0]]}, timeout=10
        )
        assert bad.status_code == 400, bad.text

        failing = analyze_canary(store, MODEL, metrics_url=metrics_url, thresholds=THRESHOLDS)
        assert failing.verdict == "rollback", failing.to_dict()
        assert failing.candidate.errors == 60 and failing.candidate.error_ratio == 1.0
        # v2's copies from its time as a shadow are not what it answered as stable.
        assert failing.stable.requests == 60 + 60 + 1 and failing.stable.errors == 1
        state = read_state(store, MODEL)
        assert state.stable.version == "v2" and state.canary is None
        _wait_route(base, "v2", None)
        assert _send(base, 10) == {(200, "v2")}
    assert running.process.returncode == 0, running.tail()


class _Load:
    """Steady background traffic (about 40 requests a second) until stopped."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.seen: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as http:
            number = 0
            while not self._stop.is_set():
                answer = _predict(http, self.base, number)
                self.seen.add((answer.status_code, answer.json().get("model_version")))
                number += 1
                time.sleep(0.02)

    def start(self) -> _Load:
        self._thread.start()
        return self

    def stop(self) -> set[tuple[int, str]]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)
        return self.seen


def _increase(url: str, version: str, role: str, metric: str = "mlops_requests_total") -> float:
    result = ms.prom_query(
        url, f'sum(increase({metric}{{model="{MODEL}",version="{version}",role="{role}"}}[1m]))'
    )
    return float(result[0]["value"][1]) if result else 0.0


@ms.skip_unless_binaries([ms.PROMETHEUS])
def test_prometheus_figures_promote_a_healthy_shadow_and_roll_back_a_failing_one(published):
    from mlops.deployment.state import read_state

    store, public, work = published
    folder = work / "prometheus-source"
    folder.mkdir()
    stack = ms.Stack(Path(tempfile.mkdtemp(prefix="mlops-shadow-prom-")) / "logs")
    _deploy(store, "v1")
    with serving_process(store, public, folder, preamble=BROKEN_V3) as running:
        load = _Load(running.base)
        try:
            address = f"{ms.LOCALHOST}:{ms.free_port()}"
            config = {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "mlops-serving",
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [f"{ms.LOCALHOST}:{running.port}"]}],
                    }
                ],
            }
            data = folder / "prometheus"
            data.mkdir()
            prometheus = stack.start(
                "prometheus",
                [
                    ms.require_binary(ms.PROMETHEUS),
                    f"--config.file={ms.write_yaml(data / 'prometheus.yml', config)}",
                    f"--storage.tsdb.path={data / 'tsdb'}",
                    f"--web.listen-address={address}",
                ],
            )
            url = f"http://{address}"
            ms.wait_http_ready(f"{url}/-/ready", prometheus)
            _deploy(store, "v2", "shadow")
            _wait_route(running.base, "v1", "v2")
            load.start()
            # increase() needs several scrapes of each series inside the one-minute window.
            ms.wait_until(
                lambda: (
                    _increase(url, "v2", "shadow") >= 80 and _increase(url, "v1", "stable") >= 80
                ),
                timeout=90,
                describe=stack.logs,
            )
            healthy = analyze_canary(
                store, MODEL, prometheus_url=url, window_minutes=1, thresholds=THRESHOLDS
            )
            assert healthy.verdict == "promote", healthy.to_dict()
            assert healthy.source == f"prometheus {url}" and healthy.candidate_role == "shadow"
            assert healthy.candidate.requests >= 50 and healthy.candidate.errors == 0
            assert read_state(store, MODEL).stable.version == "v2"
            _wait_route(running.base, "v2", None)

            _deploy(store, "v3", "shadow")
            _wait_route(running.base, "v2", "v3")
            ms.wait_until(
                lambda: (
                    _increase(url, "v3", "shadow", "mlops_request_errors_total") >= 30
                    and _increase(url, "v2", "stable") >= 50
                ),
                timeout=90,
                describe=stack.logs,
            )
            failing = analyze_canary(
                store, MODEL, prometheus_url=url, window_minutes=1, thresholds=THRESHOLDS
            )
            assert failing.verdict == "rollback", failing.to_dict()
            assert failing.candidate.error_ratio is not None and failing.candidate.error_ratio > 0.9
            assert failing.stable.errors == 0
            state = read_state(store, MODEL)
            assert state.stable.version == "v2" and state.canary is None
            _wait_route(running.base, "v2", None)
        finally:
            seen = load.stop()
            stack.stop_all()
        assert {status for status, _ in seen} == {200}, "no client saw a shadow's failure"
        assert {version for _, version in seen} == {"v1", "v2"}
    assert running.process.returncode == 0, running.tail()
