"""End to end: ``python -m serving.server`` against the real test store, over real HTTP.

One server for the module (tests run in file order and share its state):
V1/V2 predictions match in-process sklearn, bad requests get 4xx JSON, a
tampered version is never served, canary 20% -> promote -> rollback, metrics
and inference logs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.serving_helpers import (
    FEATURES,
    NUMERIC,
    PROC_NET_TCP,
    build_model_dir,
    flip_byte,
    listening_addresses,
    make_keypair,
    publish,
    sample_rows,
    v1_list_rows,
    v1_object_rows,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MODEL = "iris"


class Served:
    def __init__(self, base: str, store, models: dict, log: Path, process) -> None:
        self.base = base
        self.store = store
        self.models = models  # version -> fitted pipeline
        self.log = log
        self.process = process
        self.http = requests.Session()

    def predict(self, instances, **extra):
        return self.http.post(
            f"{self.base}/v1/models/{MODEL}:predict",
            json={"instances": instances, **extra},
            timeout=10,
        )

    def status(self) -> dict:
        return self.http.get(f"{self.base}/v1/models/{MODEL}", timeout=5).json()

    def wait_status(self, condition, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if condition(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"status never matched: {status}\n{self.tail()}")
            time.sleep(0.1)

    def metrics(self) -> str:
        return self.http.get(f"{self.base}/metrics", timeout=5).text

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _sample(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def served(store_settings, tmp_path_factory):
    from mlops.core.net import free_port
    from mlops.core.store import ObjectStore
    from mlops.deployment.state import Release, deploy

    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    work = tmp_path_factory.mktemp("serving")
    private, public = make_keypair(work / "keys")
    models = {}
    for version, estimator in (("v1", "logistic_regression"), ("v2", "random_forest")):
        model_dir, model, _ = build_model_dir(
            work / version, private, version=version, estimator=estimator
        )
        publish(store, model_dir, MODEL, version)
        models[version] = model
    tampered, _, _ = build_model_dir(work / "v3", private, version="v3")
    flip_byte(tampered / "model.skops")
    publish(store, tampered, MODEL, "v3")
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))

    port = free_port()
    env = {
        **os.environ,
        **store.settings.to_env(),
        "MLOPS_HOME": str(work / "home"),
        "MLOPS_RECONCILE_SECONDS": "0.3",
        "MLOPS_INFERENCE_LOG_FLUSH_SECONDS": "0.5",
        "MLOPS_MAX_BODY_BYTES": "65536",
        "PYTHONUNBUFFERED": "1",
    }
    log = work / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving.server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--public-key",
                str(public),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", store, models, log, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}:\n{served.tail()}")
            try:
                if (
                    served.http.get(f"{served.base}/v2/models/{MODEL}/ready", timeout=2).status_code
                    == 200
                ):
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in 60 s:\n{served.tail()}")
            time.sleep(0.2)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if os.environ.get("MLOPS_SHOW_SERVER_LOG"):
            print(served.tail())
    assert process.returncode == 0, served.tail()


@pytest.mark.skipif(not PROC_NET_TCP.exists(), reason="needs Linux /proc/net/tcp")
def test_the_local_server_listens_on_loopback_only(served):
    # KServe's ModelServer.start binds 0.0.0.0; --host 127.0.0.1 must really narrow it.
    port = int(served.base.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"127.0.0.1"}


def test_tritonclient_v2_matches_in_process(served):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=served.base.removeprefix("http://"))
    assert client.is_model_ready(MODEL)
    rows = sample_rows(12)
    inputs = []
    for name in FEATURES:
        if name in NUMERIC:
            tensor = httpclient.InferInput(name, [len(rows)], "FP64")
            tensor.set_data_from_numpy(rows[name].to_numpy(np.float64))
        else:
            tensor = httpclient.InferInput(name, [len(rows)], "BYTES")
            tensor.set_data_from_numpy(rows[name].to_numpy(object), binary_data=False)
        inputs.append(tensor)
    result = client.infer(
        MODEL,
        inputs,
        parameters={"probabilities": True},
        outputs=[
            httpclient.InferRequestedOutput("predict"),
            httpclient.InferRequestedOutput("probabilities", binary_data=False),
        ],
    )
    expected = served.models["v1"]
    assert result.as_numpy("predict").tolist() == expected.predict(rows).tolist()
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), expected.predict_proba(rows), rtol=1e-9
    )
    assert result.get_response()["model_version"] == "v1"

    matrix = httpclient.InferInput("input-0", [len(rows), len(FEATURES)], "BYTES")
    matrix.set_data_from_numpy(
        np.array([[str(v) for v in r] for r in v1_list_rows(rows)], dtype=object)
    )
    result = client.infer(MODEL, [matrix])
    assert result.as_numpy("predict").tolist() == expected.predict(rows).tolist()
    metadata = client.get_model_metadata(MODEL)
    assert [i["name"] for i in metadata["inputs"]] == FEATURES


def test_v1_http_matches_in_process(served):
    rows = sample_rows(25)
    expected = served.models["v1"].predict(rows).tolist()
    response = served.predict(v1_list_rows(rows))
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected, "model_version": "v1"}
    response = served.predict(v1_object_rows(rows), parameters={"probabilities": True})
    body = response.json()
    assert body["predictions"] == expected
    np.testing.assert_allclose(body["probabilities"], served.models["v1"].predict_proba(rows))
    explained = served.http.post(
        f"{served.base}/v1/models/{MODEL}:explain",
        json={"instances": v1_list_rows(rows[:2])},
        timeout=10,
    ).json()
    assert explained["method"] == "linear" and explained["model_version"] == "v1"
    assert [a["feature"] for a in explained["explanations"][0]["attributions"]] == FEATURES
    status = served.status()
    assert (
        status["ready"] is True and status["stable"] == "v1" and status["not_ready_reason"] is None
    )


def _bad_requests(base: str):
    url = f"{base}/v1/models/{MODEL}:predict"
    v2 = f"{base}/v2/models/{MODEL}/infer"
    row = [5.1, 3.5, 1.4, 0.2, "red"]
    obj = dict(zip(FEATURES, row, strict=True))
    json_type = {"Content-Type": "application/json"}
    return [
        (
            "malformed JSON",
            url,
            b'{"instances": [[5.1, ',
            json_type,
            400,
            "Unrecognized request format",
        ),
        ("malformed V2 JSON", v2, b'{"inputs": [', json_type, 400, "malformed JSON"),
        ("V2 without inputs", v2, b'{"id": "1"}', json_type, 400, "inputs"),
        (
            "wrong content type",
            url,
            b"instances=1",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported content type",
        ),
        (
            "text/plain",
            url,
            json.dumps({"instances": [row]}).encode(),
            {"Content-Type": "text/plain"},
            415,
            "application/json",
        ),
        (
            "missing feature",
            url,
            {"instances": [{k: v for k, v in obj.items() if k != "color"}]},
            None,
            400,
            "missing feature(s) 'color'",
        ),
        (
            "extra feature",
            url,
            {"instances": [{**obj, "weight": 1}]},
            None,
            400,
            "unknown feature(s) 'weight'",
        ),
        ("wrong width", url, {"instances": [row, row[:3]]}, None, 400, "row 1: expected 5 values"),
        (
            "string number",
            url,
            {"instances": [[5.1, "3.5", 1.4, 0.2, "red"]]},
            None,
            400,
            "feature 'sepal_width' row 0: expected a number",
        ),
        ("empty instances", url, {"instances": []}, None, 400, "empty"),
        (
            "NaN literal",
            url,
            b'{"instances": [[NaN, 3.5, 1.4, 0.2, "red"]]}',
            json_type,
            400,
            "Unrecognized request format",
        ),
        (
            "NaN string",
            url,
            {"instances": [["NaN", 3.5, 1.4, 0.2, "red"]]},
            None,
            400,
            "NaN/infinity",
        ),
        ("instances not a list", url, {"instances": "abc"}, None, 400, "list"),
        ("no instances", url, {"rows": [row]}, None, 400, "instances"),
        ("oversize body", url, {"instances": [row] * 5000}, None, 413, "exceeds the limit"),
        (
            "V2 wrong width",
            v2,
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 4],
                        "datatype": "BYTES",
                        "data": ["1", "2", "3", "4"],
                    }
                ]
            },
            None,
            400,
            "expected 5 columns",
        ),
        (
            "V2 NaN",
            v2,
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 5],
                        "datatype": "BYTES",
                        "data": ["nan", "2", "3", "4", "red"],
                    }
                ]
            },
            None,
            400,
            "NaN/infinity",
        ),
    ]


def test_bad_requests_get_4xx_json(served):
    before = served.metrics()
    cases = _bad_requests(served.base)
    for name, url, body, headers, status, message in cases:
        if isinstance(body, bytes):
            response = served.http.post(url, data=body, headers=headers, timeout=10)
        else:
            response = served.http.post(url, json=body, timeout=10)
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("application/json"), name
        assert message in response.json()["error"], f"{name}: {response.json()}"
    chunked = served.http.post(
        f"{served.base}/v1/models/{MODEL}:predict",
        data=iter([b'{"instances": [', b'[1, 2, 3, 4, "red"], ' * 5000, b"]}"]),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert chunked.status_code == 413, chunked.text
    after = served.metrics()
    errors = sum(
        _sample(after, "mlops_request_errors_total", model=MODEL, code=str(code))
        - _sample(before, "mlops_request_errors_total", model=MODEL, code=str(code))
        for code in (400, 413, 415)
    )
    assert errors == len(cases) + 1


def test_tampered_version_is_never_served(served):
    from mlops.deployment.state import Release, deploy

    store = served.store
    deploy(store, MODEL, Release("v3", store.uri(f"models/{MODEL}/v3")))
    status = served.wait_status(lambda s: s["desired"]["stable"] == "v3" and s["not_ready_reason"])
    assert status["stable"] == "v1" and status["ready"] is True
    assert "v3" in status["not_ready_reason"] and "model.skops" in status["not_ready_reason"]
    assert served.http.get(f"{served.base}/v2/models/{MODEL}/ready", timeout=5).status_code == 200
    for _ in range(5):
        assert served.predict(v1_list_rows(sample_rows(1))).json()["model_version"] == "v1"
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    served.wait_status(lambda s: s["desired"]["stable"] == "v1" and s["not_ready_reason"] is None)


def _versions(served, n: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    row = v1_list_rows(sample_rows(1))
    for _ in range(n):
        response = served.predict(row)
        assert response.status_code == 200, response.text
        version = response.json()["model_version"]
        counts[version] = counts.get(version, 0) + 1
    return counts


def test_canary_split_promote_and_rollback(served):
    from mlops.deployment.state import Release, deploy, promote, rollback

    store = served.store
    deploy(store, MODEL, Release("v2", store.uri(f"models/{MODEL}/v2")), canary_percent=20)
    served.wait_status(lambda s: s["canary"] == "v2" and s["canary_percent"] == 20)
    before = served.metrics()
    counts = _versions(served, 1000)
    assert set(counts) == {"v1", "v2"}
    assert 150 <= counts["v2"] <= 250, counts
    after = served.metrics()
    for version in ("v1", "v2"):
        sent = _sample(
            after, "mlops_requests_total", model=MODEL, version=version, protocol="v1"
        ) - _sample(before, "mlops_requests_total", model=MODEL, version=version, protocol="v1")
        assert sent == counts[version]
    assert _sample(after, "mlops_model_info", model=MODEL, version="v2", role="canary") == 1
    assert _sample(after, "mlops_model_info", model=MODEL, version="v1", role="stable") == 1
    assert _sample(after, "mlops_predictions_total", model=MODEL, version="v2") > 0

    promote(store, MODEL)
    served.wait_status(lambda s: s["stable"] == "v2" and s["canary"] is None)
    assert _versions(served, 50) == {"v2": 50}
    assert (
        "method"
        in served.http.post(
            f"{served.base}/v1/models/{MODEL}:explain",
            json={"instances": v1_list_rows(sample_rows(1))},
        ).json()
    )
    metrics = served.metrics()
    assert _sample(metrics, "mlops_model_info", model=MODEL, version="v1") == 0
    assert _sample(metrics, "mlops_model_info", model=MODEL, version="v2", role="stable") == 1

    rollback(store, MODEL)
    served.wait_status(lambda s: s["stable"] == "v1")
    assert _versions(served, 50) == {"v1": 50}


def test_out_of_range_inputs_are_counted(served):
    before = served.metrics()
    row = [100.0, 3.5, 1.4, 0.2, "purple"]
    assert served.predict([row, row]).status_code == 200
    after = served.metrics()
    for feature in ("sepal_length", "color"):
        delta = _sample(
            after, "mlops_input_out_of_range_total", model=MODEL, feature=feature
        ) - _sample(before, "mlops_input_out_of_range_total", model=MODEL, feature=feature)
        assert delta == 2, feature
    assert (
        _sample(after, "mlops_request_duration_seconds_count", model=MODEL, endpoint="predict") > 0
    )


def test_inference_logs_reach_the_store(served):
    from mlops.monitoring.inference_log import read_inference_logs

    def logged() -> int:
        return len(read_inference_logs(served.store, MODEL))

    # every successful prediction row so far, once the 0.5 s flushes have caught up
    deadline = time.monotonic() + 15
    previous = -1
    while time.monotonic() < deadline:
        current = logged()
        if current == previous and current > 0:
            break
        previous = current
        time.sleep(1.2)
    rows = sample_rows(7)
    assert served.predict(v1_list_rows(rows)).status_code == 200
    deadline = time.monotonic() + 15
    while logged() != current + 7:
        assert time.monotonic() < deadline, f"{logged()} rows logged, expected {current + 7}"
        time.sleep(0.3)
    frame = read_inference_logs(served.store, MODEL)
    tail = frame.tail(7).reset_index(drop=True)
    assert tail["prediction"].tolist() == served.models["v1"].predict(rows).tolist()
    assert set(tail["model_version"]) == {"v1"}
    assert list(frame.columns[: len(FEATURES)]) == FEATURES
    assert set(frame["model_version"]) >= {"v1", "v2"}
    written = _sample(
        served.metrics(), "mlops_inference_log_records_total", model=MODEL, result="written"
    )
    assert written == len(frame)
