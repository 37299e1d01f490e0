"""push_drift_metrics / push_release_decision against a real Pushgateway on 127.0.0.1.

The ``prometheus-pushgateway`` binary runs for the module (skipped when it is not
installed, failing when ``CI`` is set); every test starts from an empty gateway and
reads back what the gateway serves on ``/metrics``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client import CollectorRegistry, Summary, push_to_gateway
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mlops.core.net import LOCALHOST, free_port
from mlops.monitoring.drift import ColumnDrift, DriftResult
from mlops.monitoring.push import push_drift_metrics, push_release_decision
from tests import monitoring_assets as assets
from tests import monitoring_stack as ms


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory) -> Iterator[str]:
    """``host:port`` of a Pushgateway running for the whole module."""
    address = f"{LOCALHOST}:{free_port()}"
    process = ms.ManagedProcess(
        "pushgateway",
        [
            ms.require_binary(ms.PUSHGATEWAY),
            f"--web.listen-address={address}",
            "--web.enable-admin-api",
        ],
        tmp_path_factory.mktemp("pushgateway") / "pushgateway.log",
    ).start()
    try:
        ms.wait_http_ready(f"http://{address}/-/ready", process)
        yield address
    finally:
        process.stop()


@pytest.fixture
def gateway(gateway_process: str) -> str:
    """The module's Pushgateway, emptied first so tests never see each other's pushes."""
    response = requests.put(f"http://{gateway_process}/api/v1/admin/wipe", timeout=10)
    assert response.status_code == 202, response.text
    return gateway_process


def pushed(gateway: str) -> list[Sample]:
    """The ``mlops_*`` samples the gateway serves to Prometheus."""
    text = requests.get(f"http://{gateway}/metrics", timeout=10).text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("mlops_")
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The value of the one sample ``name`` whose labels include ``labels``."""
    (found,) = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return found


def _result() -> DriftResult:
    cols = {
        "age": ColumnDrift("age", True, 0.25, "Wasserstein distance (normed)", 0.1),
        "city": ColumnDrift("city", False, 0.03, "Jensen-Shannon distance", 0.1),
    }
    return DriftResult(
        drift_detected=True,
        drift_share=0.5,
        drifted_columns=["age"],
        columns=cols,
        n_reference=1000,
        n_current=800,
        share_threshold=0.5,
    )


def test_push_drift_metrics(gateway):
    before = time.time()
    assert push_drift_metrics(gateway, "iris", _result()) is True
    samples = pushed(gateway)
    group = {"job": "mlops_drift", "model": "iris"}
    assert value(samples, "mlops_drift_share", **group) == 0.5
    assert value(samples, "mlops_drift_detected", **group) == 1.0
    assert value(samples, "mlops_drifted_columns", **group) == 1.0
    assert value(samples, "mlops_feature_drift_score", feature="age", **group) == 0.25
    assert value(samples, "mlops_feature_drift_score", feature="city", **group) == 0.03
    stamp = value(samples, "mlops_drift_last_check_timestamp_seconds", **group)
    assert before - 1 <= stamp <= time.time() + 1


def test_push_release_decision(gateway):
    assert push_release_decision(f"http://{gateway}", "iris", "rejected") is True
    samples = pushed(gateway)
    group = {"job": "mlops_release", "model": "iris"}
    decisions = {
        s.labels["decision"]: s.value for s in samples if s.name == "mlops_release_decision"
    }
    assert decisions == {
        "rejected": 1.0,
        "released": 0.0,
        "no_drift": 0.0,
        "not_enough_ground_truth": 0.0,
    }
    assert value(samples, "mlops_release_decision_timestamp_seconds", **group) > 0


def test_pushed_metric_names_are_the_known_ones(gateway):
    """The rules and the dashboard are checked against ``PUSHED_METRICS``; it must be exact."""
    assert push_drift_metrics(gateway, "iris", _result())
    assert push_release_decision(gateway, "iris", "released")
    from mlops.monitoring.push import push_quality_metrics
    from mlops.monitoring.quality import GroupQuality

    group = GroupQuality("v1", "stable", 10, 10, False, 0.9, 0.8, ["a"], [[9]])
    assert push_quality_metrics(gateway, "iris", [group], 0.8)
    assert {s.name for s in pushed(gateway)} == assets.PUSHED_METRICS


def test_models_do_not_replace_each_other(gateway):
    assert push_drift_metrics(gateway, "iris", _result())
    assert push_drift_metrics(gateway, "wine", _result())
    models = {s.labels["model"] for s in pushed(gateway) if s.name == "mlops_drift_share"}
    assert models == {"iris", "wine"}


def test_unknown_decision_is_not_pushed(gateway, caplog):
    with caplog.at_level(logging.WARNING, logger="mlops.monitoring.push"):
        assert push_release_decision(gateway, "iris", "maybe") is False
    assert pushed(gateway) == []
    assert "maybe" in caplog.text


def test_unreachable_gateway_returns_false(caplog):
    address = f"{LOCALHOST}:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="mlops.monitoring.push"):
        assert push_drift_metrics(address, "iris", _result(), timeout=2) is False
        assert push_release_decision(address, "iris", "released", timeout=2) is False
    assert "could not push metrics" in caplog.text


def test_rejected_push_returns_false(gateway, caplog):
    # another job already pushed a summary named mlops_drift_share: the gateway answers 400
    registry = CollectorRegistry()
    Summary("mlops_drift_share", "conflicting type", registry=registry).observe(1)
    push_to_gateway(gateway, job="other", registry=registry)
    with caplog.at_level(logging.WARNING, logger="mlops.monitoring.push"):
        assert push_drift_metrics(gateway, "iris", _result()) is False
    assert "400" in caplog.text


def test_wrong_gateway_path_returns_false(gateway, caplog):
    with caplog.at_level(logging.WARNING, logger="mlops.monitoring.push"):
        assert push_drift_metrics(f"{gateway}/not-a-gateway", "iris", _result()) is False
    assert "404" in caplog.text
    assert pushed(gateway) == []
