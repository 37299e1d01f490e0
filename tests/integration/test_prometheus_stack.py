"""End to end: the real model server, Pushgateway, Alertmanager and Prometheus on 127.0.0.1.

The model server serves a signed, deployed model from the real test store, with a second
version as its shadow candidate, and gets a mix of traffic (V1/V2 predictions, out-of-range
inputs, 4xx requests, an explanation); the drift and release metrics are pushed with ``mlops.monitoring.push``. Prometheus scrapes both
with a config shaped like deploy/monitoring/prometheus.yml and loads a copy of
deploy/monitoring/alerts.yaml in which only the ``for:`` durations (-> 0s) and the group
``interval:`` (-> 1s) are shortened -- the production durations are unit-tested with
``promtool test rules deploy/monitoring/tests/alerts_test.yaml``. Alertmanager runs the
repo's alertmanager.yml with the webhook pointed at a receiver in this process.

The live-quality metrics (``mlops_model_accuracy`` and friends) are pushed like a quality
check pushes them. Checks: every PromQL query of the Grafana dashboard returns data (the
shadow panels' too), the shadow's copies stay out of the client-traffic panels and rules,
``mlops_model_accuracy`` is read from the Pushgateway and through Prometheus, and the drift
(and rejected-release, accuracy, error-rate) alerts reach the webhook through the repo's routing.
Last, a third version is deployed as a weighted canary in place of the shadow, and the
"Rollout: candidate vs stable" panels return one series per version and role that answered
clients (stable v1, canary v3), never the shadow's copies still in the window.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import monitoring_stack as ms
from tests.serving_helpers import (
    FEATURES,
    NUMERIC,
    build_model_dir,
    iris_frame,
    make_keypair,
    publish,
    sample_rows,
    v1_list_rows,
    v1_object_rows,
)

# skipped locally (before the store starts) when a binary is missing; fails in CI
pytestmark = [pytest.mark.slow, ms.skip_unless_binaries()]

REPO = Path(__file__).resolve().parents[2]
MODEL = "iris"
SHADOW_VERSION = "v2"  # the shadow candidate next to stable v1
CANARY_VERSION = "v3"  # published up front, deployed as a weighted canary by the rollout test
SERVING_JOB = "mlops-serving"  # job label of the model servers (alerts.yaml, podmonitor.yaml)
LOCAL = ms.LOCALHOST


@dataclass
class Env:
    serving: str
    pushgateway: str
    alertmanager: str
    prometheus: str
    receiver: ms.WebhookReceiver
    stack: ms.Stack
    http: requests.Session
    store: Any  # the test store holding the deployment state (ObjectStore)

    def predict(self, instances, **extra) -> requests.Response:
        return self.http.post(
            f"{self.serving}/v1/models/{MODEL}:predict",
            json={"instances": instances, **extra},
            timeout=10,
        )

    def logs(self) -> str:
        return self.stack.logs()


def _v2_body(frame) -> dict:
    inputs = []
    for name in FEATURES:
        if name in NUMERIC:
            inputs.append(
                {
                    "name": name,
                    "shape": [len(frame)],
                    "datatype": "FP64",
                    "data": frame[name].astype(float).tolist(),
                }
            )
        else:
            inputs.append(
                {
                    "name": name,
                    "shape": [len(frame)],
                    "datatype": "BYTES",
                    "data": frame[name].astype(str).tolist(),
                }
            )
    return {"inputs": inputs}


def _send_traffic(env: Env) -> None:
    """One bounded round of every kind of request the dashboard has a panel for."""
    rows = sample_rows(30, seed=3)  # rows of all three classes
    response = env.predict(v1_list_rows(rows))
    assert response.status_code == 200, response.text
    assert len(set(response.json()["predictions"])) >= 2, response.json()
    assert (
        env.predict(v1_object_rows(rows[:5]), parameters={"probabilities": True}).status_code == 200
    )

    # beyond the training max (sepal_length max is 7.9) and an unseen category
    out_of_range = [[100.0, 3.5, 1.4, 0.2, "red"], [5.1, 3.5, 1.4, 0.2, "purple"]]
    response = env.predict(out_of_range)
    assert response.status_code == 200, response.text

    v2 = env.http.post(
        f"{env.serving}/v2/models/{MODEL}/infer", json=_v2_body(rows[:4]), timeout=10
    )
    assert v2.status_code == 200, v2.text
    explain = env.http.post(
        f"{env.serving}/v1/models/{MODEL}:explain",
        json={"instances": v1_list_rows(rows[:2])},
        timeout=10,
    )
    assert explain.status_code == 200, explain.text

    url = f"{env.serving}/v1/models/{MODEL}:predict"
    bad = [
        env.http.post(
            url,
            data=b'{"instances": [[5.1, ',
            headers={"Content-Type": "application/json"},
            timeout=10,
        ),
        env.http.post(url, json={"instances": [{"sepal_length": 5.1}]}, timeout=10),
        env.http.post(
            url,
            data=b"instances=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        ),
        env.http.post(f"{env.serving}/v2/models/{MODEL}/infer", json={"id": "1"}, timeout=10),
    ]
    assert [r.status_code for r in bad] == [400, 400, 415, 400], [r.text for r in bad]


def _drift_result():
    """A real drift check: every numeric column shifted far beyond the reference."""
    from mlops.monitoring.drift import compute_drift

    reference, _ = iris_frame(seed=0)
    current, _ = iris_frame(seed=1)
    for name in NUMERIC:
        current[name] = current[name] * 1.5 + 3.0
    return compute_drift(reference, current)


def _quality_groups():
    """A live quality check's result: the stable version fell below min_accuracy, the canary did not."""
    from mlops.monitoring.quality import GroupQuality

    def group(version, role, rows, right):
        return GroupQuality(
            model_version=version,
            role=role,
            predictions=rows * 2,
            labelled_rows=rows,
            enough_labels=True,
            accuracy=right / rows,
            f1_macro=right / rows - 0.05,
            labels=["setosa", "versicolor"],
            confusion_matrix=[[right, rows - right], [0, 0]],
        )

    return [group("v1", "stable", 120, 72), group("v2", "canary", 60, 57)]


@pytest.fixture(scope="module")
def env(store_settings):
    for binary in ms.STACK_BINARIES:
        ms.require_binary(binary)
    from mlops.core.store import ObjectStore
    from mlops.deployment.state import Release, deploy
    from tests.monitoring_assets import alertmanager_config_path, rules_path

    work = Path(tempfile.mkdtemp(prefix="mlops-prom-stack-"))
    stack = ms.Stack(work / "logs")
    receiver = ms.WebhookReceiver().start()
    http = requests.Session()
    try:
        # --- model: trained, signed, published and deployed in the real store
        store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
        store.ensure_bucket()
        private, public = make_keypair(work / "keys")
        model_dir, _, _ = build_model_dir(work / "v1", private, model_name=MODEL, version="v1")
        publish(store, model_dir, MODEL, "v1")
        deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
        # A shadow candidate: its copies are counted under role="shadow", which the dashboard's
        # shadow panels show and its client-traffic panels and the rules must leave out.
        shadow_dir, _, _ = build_model_dir(
            work / SHADOW_VERSION, private, model_name=MODEL, version=SHADOW_VERSION, seed=1
        )
        publish(store, shadow_dir, MODEL, SHADOW_VERSION)
        deploy(
            store,
            MODEL,
            Release(SHADOW_VERSION, store.uri(f"models/{MODEL}/{SHADOW_VERSION}")),
            strategy="shadow",
        )
        # Published only: test_rollout_panels_split_versions_and_roles deploys it as a canary.
        canary_dir, _, _ = build_model_dir(
            work / CANARY_VERSION, private, model_name=MODEL, version=CANARY_VERSION, seed=2
        )
        publish(store, canary_dir, MODEL, CANARY_VERSION)

        ports = {
            name: ms.free_port()
            for name in ("serving", "pushgateway", "alertmanager", "prometheus")
        }
        addr = {name: f"{LOCAL}:{port}" for name, port in ports.items()}

        # --- configs
        rules = ms.fast_rules_copy(rules_path(), work / "alerts.fast.yaml")
        ms.promtool_check_rules(rules)
        am_config = ms.write_yaml(
            work / "alertmanager.yml",
            ms.alertmanager_config(alertmanager_config_path(), receiver.url),
        )
        prom_config = ms.write_yaml(
            work / "prometheus.yml",
            ms.prometheus_config(
                serving_targets=[addr["serving"]],
                pushgateway=addr["pushgateway"],
                alertmanager=addr["alertmanager"],
                rule_files=[rules],
                serving_job=SERVING_JOB,
            ),
        )

        # --- processes (all started first, then waited for, to overlap their start-up)
        server_env = {
            **os.environ,
            **store.settings.to_env(),
            "MLOPS_HOME": str(work / "home"),
            "MLOPS_RECONCILE_SECONDS": "0.5",
            "MLOPS_INFERENCE_LOG_FLUSH_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        serving = stack.start(
            "model-server",
            [
                sys.executable,
                "-m",
                "serving.server",
                "--host",
                LOCAL,
                "--port",
                ports["serving"],
                "--public-key",
                public,
            ],
            env=server_env,
            cwd=REPO,
        )
        pushgateway = stack.start(
            "pushgateway",
            [ms.require_binary(ms.PUSHGATEWAY), f"--web.listen-address={addr['pushgateway']}"],
        )
        alertmanager = stack.start(
            "alertmanager",
            [
                ms.require_binary(ms.ALERTMANAGER),
                f"--config.file={am_config}",
                f"--storage.path={work / 'alertmanager-data'}",
                f"--web.listen-address={addr['alertmanager']}",
                "--cluster.listen-address=",
            ],
        )
        prometheus = stack.start(
            "prometheus",
            [
                ms.require_binary(ms.PROMETHEUS),
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={work / 'prometheus-data'}",
                f"--web.listen-address={addr['prometheus']}",
            ],
        )

        env = Env(
            serving=f"http://{addr['serving']}",
            pushgateway=f"http://{addr['pushgateway']}",
            alertmanager=f"http://{addr['alertmanager']}",
            prometheus=f"http://{addr['prometheus']}",
            receiver=receiver,
            stack=stack,
            http=http,
            store=store,
        )
        ms.wait_http_ready(f"{env.pushgateway}/-/ready", pushgateway)
        ms.wait_http_ready(f"{env.alertmanager}/-/ready", alertmanager)
        ms.wait_http_ready(f"{env.prometheus}/-/ready", prometheus)
        ms.wait_http_ready(f"{env.serving}/v2/models/{MODEL}/ready", serving, timeout=60)

        # --- traffic and pushed metrics. A counter series first scraped with its value already
        # at N has rate() 0 (no increase inside the window), so send one round, wait until
        # Prometheus has scraped it, and send another: every counter then has a real rate.
        _send_traffic(env)
        ms.wait_until(
            lambda: ms.prom_query(
                env.prometheus, f'mlops_request_errors_total{{job="{SERVING_JOB}",model="{MODEL}"}}'
            ),
            timeout=30,
            interval=0.3,
            describe=stack.logs,
        )
        _send_traffic(env)
        from mlops.monitoring.push import push_drift_metrics, push_release_decision

        drift = _drift_result()
        assert drift.drift_detected and len(drift.drifted_columns) >= 4, drift.to_dict()
        assert push_drift_metrics(addr["pushgateway"], MODEL, drift), stack.logs()
        assert push_release_decision(addr["pushgateway"], MODEL, "rejected"), stack.logs()
        from mlops.monitoring.push import push_quality_metrics

        assert push_quality_metrics(
            addr["pushgateway"], MODEL, _quality_groups(), min_accuracy=0.8
        ), stack.logs()
        yield env
    finally:
        codes = stack.stop_all()
        receiver.stop()
        http.close()
        if os.environ.get("MLOPS_SHOW_SERVER_LOG"):
            print(stack.logs(20_000))
        shutil.rmtree(work, ignore_errors=True)
    # the model server shuts down cleanly on SIGTERM (flushes its inference log)
    assert codes.get("model-server") == 0, codes


def test_every_dashboard_query_returns_data(env):
    from tests.monitoring_assets import (
        dashboard_queries,
        iter_panels,
        load_dashboard,
        render_grafana_variables,
    )

    queries = dashboard_queries(render=True)
    assert len(queries) >= 10, queries
    empty: list[str] = list(queries)
    deadline = time.monotonic() + 60
    rounds = 0
    while empty and time.monotonic() < deadline:
        if rounds < 20:  # a little more traffic while waiting, so the rates are non-zero
            assert env.predict(v1_list_rows(sample_rows(3, seed=rounds))).status_code == 200
            rounds += 1
        empty = [q for q in empty if not ms.prom_query(env.prometheus, q)]
        if empty:
            time.sleep(1.0)
    if empty:
        targets = ms.prom_targets_up(env.prometheus)
        pytest.fail(
            f"{len(empty)} of {len(queries)} dashboard queries returned no data after 60 s:\n  "
            + "\n  ".join(empty)
            + f"\ntargets: {targets}\n{env.logs()}"
        )

    # the shadow's copies: its own panels show them, the client-traffic panel and rule do not
    panels = {p["title"]: p for p in iter_panels(load_dashboard()["panels"]) if p.get("targets")}

    def versions(query: str) -> set[str]:
        return {s["metric"].get("version", "") for s in ms.prom_query(env.prometheus, query)}

    for target in panels["Shadow candidate: copies scored and error ratio"]["targets"]:
        assert versions(render_grafana_variables(target["expr"])) == {SHADOW_VERSION}, target
    (client_rate,) = panels["Request rate by model/version"]["targets"]
    assert "v1" in versions(render_grafana_variables(client_rate["expr"]))
    assert SHADOW_VERSION not in versions(render_grafana_variables(client_rate["expr"]))
    assert ms.wait_until(
        lambda: ms.prom_query(
            env.prometheus, f'model_version:mlops_requests:rate5m{{model="{MODEL}"}}'
        ),
        timeout=30,
    )
    assert SHADOW_VERSION not in versions("model_version:mlops_requests:rate5m")

    # the 4xx requests show up as a real error ratio (not just a 0 rate) in the recording rule
    ratio = ms.wait_until(
        lambda: ms.prom_query(
            env.prometheus, f'model:mlops_request_error_ratio:rate5m{{model="{MODEL}"}} > 0.05'
        ),
        timeout=30,
        describe=lambda: str(
            ms.prom_query(env.prometheus, "model:mlops_request_error_ratio:rate5m")
        ),
    )
    assert len(ratio) == 1, ratio

    # the data is about the served model, from the expected jobs
    info = ms.prom_query(env.prometheus, "mlops_model_info == 1")
    assert {(s["metric"]["model"], s["metric"]["job"]) for s in info} == {(MODEL, SERVING_JOB)}, (
        info
    )
    # live quality: pushed to the Pushgateway, read back from it and from Prometheus
    served = requests.get(f"{env.pushgateway}/metrics", timeout=10).text
    assert 'mlops_model_accuracy{instance="",job="mlops_quality",model="iris",role="stable",' in (
        served
    ), served[-3000:]
    accuracy = ms.prom_query(env.prometheus, "mlops_model_accuracy")
    assert sorted(
        (
            s["metric"]["model"],
            s["metric"]["version"],
            s["metric"]["role"],
            s["metric"]["job"],
            float(s["value"][1]),
        )
        for s in accuracy
    ) == [
        (MODEL, "v1", "stable", "mlops_quality", 0.6),
        (MODEL, "v2", "canary", "mlops_quality", 0.95),
    ], accuracy
    drift = ms.prom_query(env.prometheus, "mlops_drift_detected")
    assert [(s["metric"]["model"], s["metric"]["job"], s["value"][1]) for s in drift] == [
        (MODEL, "mlops_drift", "1")
    ], drift
    classes = ms.prom_query(
        env.prometheus, f'sum by (class) (mlops_predictions_total{{model="{MODEL}"}})'
    )
    assert len(classes) >= 2, classes
    features = {
        s["metric"]["feature"]
        for s in ms.prom_query(env.prometheus, f'mlops_input_out_of_range_total{{model="{MODEL}"}}')
    }
    assert {"sepal_length", "color"} <= features, features
    codes = {
        s["metric"]["code"]
        for s in ms.prom_query(env.prometheus, f'mlops_request_errors_total{{model="{MODEL}"}}')
    }
    assert {"400", "415"} <= codes, codes
    protocols = {
        s["metric"]["protocol"]
        for s in ms.prom_query(env.prometheus, f'mlops_requests_total{{model="{MODEL}"}}')
    }
    assert {"v1", "v2"} <= protocols, protocols
    endpoints = {
        s["metric"]["endpoint"]
        for s in ms.prom_query(
            env.prometheus, f'mlops_request_duration_seconds_count{{model="{MODEL}"}}'
        )
    }
    assert "explain" in endpoints, endpoints


def test_alerts_reach_the_webhook(env):
    receiver = env.receiver

    def describe() -> str:
        alerts = requests.get(f"{env.prometheus}/api/v1/alerts", timeout=10).json()["data"][
            "alerts"
        ]
        firing = sorted(
            (a["labels"]["alertname"], a["labels"].get("model"), a["state"]) for a in alerts
        )
        return f"prometheus alerts: {firing}\n{receiver.summary()}\n{env.logs()}"

    drift = ms.wait_until(
        lambda: receiver.find("MlopsDatasetDrift", model=MODEL), timeout=60, describe=describe
    )
    path, alert = drift[0]
    assert path == "/alerts", path  # the repo's mlops-default receiver
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["team"] == "mlops", alert
    assert alert["labels"]["environment"] == "test", alert  # came through our Prometheus
    assert MODEL in alert["annotations"]["summary"], alert

    rejected = ms.wait_until(
        lambda: receiver.find("MlopsRetrainingRejected", model=MODEL), timeout=30, describe=describe
    )
    assert rejected[0][0] == "/alerts", rejected
    # the stable version is right 60% of the time on 120 labels, below min_accuracy 0.8
    low = ms.wait_until(
        lambda: receiver.find("MlopsModelAccuracyLow", model=MODEL), timeout=30, describe=describe
    )
    assert {(a["labels"]["version"], a["labels"]["role"]) for _, a in low} == {("v1", "stable")}
    assert low[0][0] == "/alerts", low
    # 4 of every ~10 requests failed: > 5% errors, routed to the critical receiver
    errors = ms.wait_until(
        lambda: receiver.find("MlopsServingErrorRate", model=MODEL), timeout=30, describe=describe
    )
    assert errors[0][0] == "/alerts/critical", errors
    assert errors[0][1]["labels"]["severity"] == "critical", errors


def test_rollout_panels_split_versions_and_roles(env):
    """The rollout row keeps each answering (version, role) apart and leaves shadow copies out.

    Runs last: it replaces the shadow candidate with a weighted canary (the server's
    reconcile loop picks the new state up). The shadow's series stay in Prometheus inside
    the window, so a panel that counted them would show a (v2, shadow) series.
    """
    from mlops.deployment.state import Release, deploy
    from tests.monitoring_assets import iter_panels, load_dashboard, render_grafana_variables

    panels = {
        p["title"]: p
        for p in iter_panels(load_dashboard()["panels"])
        if p["title"].startswith("Rollout: ") and p.get("targets")
    }
    assert len(panels) == 5, sorted(panels)
    queries = {
        title: render_grafana_variables(p["targets"][0]["expr"]) for title, p in panels.items()
    }
    p99 = queries["Rollout: p99 latency by version/role"]
    shadow_copies = ms.prom_query(
        env.prometheus,
        f'mlops_request_duration_seconds_count{{model="{MODEL}", role="shadow"}}',
    )
    assert {s["metric"]["version"] for s in shadow_copies} == {SHADOW_VERSION}, shadow_copies

    deploy(
        env.store,
        MODEL,
        Release(CANARY_VERSION, env.store.uri(f"models/{MODEL}/{CANARY_VERSION}")),
        canary_percent=50,
    )
    expected = {("v1", "stable"), (CANARY_VERSION, "canary")}

    def pairs(query: str) -> set[tuple[str, str]]:
        return {
            (s["metric"].get("version", ""), s["metric"].get("role", ""))
            for s in ms.prom_query(env.prometheus, query)
        }

    def both_versions_answered() -> bool:
        # traffic while waiting: half of it goes to the canary once the server has loaded it
        rows = sample_rows(6, seed=11)
        for _ in range(4):
            assert env.predict(v1_list_rows(rows)).status_code == 200
        return pairs(p99) == expected

    ms.wait_until(
        both_versions_answered,
        timeout=60,
        interval=0.5,
        describe=lambda: f"p99 panel: {pairs(p99)}\n{env.logs()}",
    )
    series = ms.prom_query(env.prometheus, p99)
    assert len(series) == len(expected), series  # one series per (version, role), no more
    for each in series:
        seconds = float(each["value"][1])
        assert 0 < seconds < 10, each
    # every rollout panel: both answering versions (0, not a gap, without errors or bad
    # inputs), and nothing else
    for title, query in queries.items():
        assert pairs(query) == expected, (title, pairs(query))
    # the shadow's copies are in the window but in no rollout panel
    assert ms.prom_query(
        env.prometheus,
        f'increase(mlops_request_duration_seconds_count{{model="{MODEL}", role="shadow"}}[30m]) > 0',
    )
