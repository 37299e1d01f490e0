"""Canary analysis against a real Prometheus (issue 13).

Prometheus (the Debian binary) scrapes two model servers' ``/metrics`` pages
every second: ``tests/canary_helpers.MetricsServer`` renders the server's series
with ``prometheus_client`` and lets the counters grow with time, one page per
model. ``analyze_canary`` then runs the dashboard's PromQL (``increase`` over a
one-minute window) through Prometheus' HTTP API and acts on the real store: the
slow candidate is rolled back, the healthy one promoted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from mlops.deployment import state as desired
from mlops.monitoring.canary import CanaryThresholds, analyze_canary
from tests import monitoring_stack as ms
from tests.canary_helpers import MetricsServer, Traffic

pytestmark = [pytest.mark.slow, ms.skip_unless_binaries([ms.PROMETHEUS])]

#: Per second: the stable version and a candidate, for two models.
SLOW = {"v1": Traffic(40), "v2": Traffic(10, latency=0.6)}
HEALTHY = {"v1": Traffic(40), "v2": Traffic(10)}


def _release(model: str, version: str) -> desired.Release:
    return desired.Release(version, f"s3://models/{model}/{version}")


def test_prometheus_figures_roll_back_a_slow_candidate_and_promote_a_healthy_one(store):
    work = Path(tempfile.mkdtemp(prefix="mlops-canary-prom-"))
    stack = ms.Stack(work / "logs")
    servers = {
        "slow-model": MetricsServer("slow-model", SLOW).start(),
        "good-model": MetricsServer("good-model", HEALTHY).start(),
    }
    try:
        for model in servers:
            desired.deploy(store, model, _release(model, "v1"))
            desired.deploy(store, model, _release(model, "v2"), 20, strategy="sticky")
        address = f"{ms.LOCALHOST}:{ms.free_port()}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "mlops-serving",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [s.address for s in servers.values()]}],
                }
            ],
        }
        prometheus = stack.start(
            "prometheus",
            [
                ms.require_binary(ms.PROMETHEUS),
                f"--config.file={ms.write_yaml(work / 'prometheus.yml', config)}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address={address}",
            ],
        )
        url = f"http://{address}"
        ms.wait_http_ready(f"{url}/-/ready", prometheus)
        # increase() needs several samples of each series inside the window.
        ms.wait_until(
            lambda: (
                all(
                    float(r["value"][1]) >= 5
                    for r in ms.prom_query(url, "count_over_time(mlops_requests_total[1m])")
                )
                and len(ms.prom_query(url, "count_over_time(mlops_requests_total[1m])")) >= 6
            ),
            timeout=60,
            describe=stack.logs,
        )
        thresholds = CanaryThresholds(min_requests=20, min_predictions=20)
        slow = analyze_canary(
            store, "slow-model", prometheus_url=url, window_minutes=1, thresholds=thresholds
        )
        assert slow.verdict == "rollback", slow.to_dict()
        assert slow.source == f"prometheus {url}" and slow.window_minutes == 1
        assert slow.candidate.p99_seconds > 0.5 and slow.stable.p99_seconds < 0.01
        assert slow.candidate.requests >= 20 and slow.stable.requests > slow.candidate.requests
        assert desired.read_state(store, "slow-model").canary is None

        good = analyze_canary(
            store, "good-model", prometheus_url=url, window_minutes=1, thresholds=thresholds
        )
        assert good.verdict == "promote", good.to_dict()
        assert desired.read_state(store, "good-model").stable.version == "v2"
        assert store.get_json(good.record_key)["source"] == f"prometheus {url}"
    finally:
        for server in servers.values():
            server.stop()
        stack.stop_all()
