"""End to end: ``python -m serving.server`` against the real test store, over real HTTP.

One server for the module (tests run in file order and share its state):
V1/V2 predictions match in-process sklearn, bad requests get 4xx JSON, a
tampered version is never served, canary 20% -> promote -> rollback, metrics
and inference logs.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
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
    metric_sample,
    publish,
    raw_exchange,
    sample_rows,
    serving_process,
    v1_list_rows,
    v1_object_rows,
)

pytestmark = pytest.mark.slow

MODEL = "iris"
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
ROW = [5.1, 3.5, 1.4, 0.2, "red"]
V2_BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "BYTES", "data": [str(v) for v in ROW]}]}
).encode()


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


@pytest.fixture(scope="module")
def served(store_settings, tmp_path_factory):
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

    with serving_process(
        store,
        public,
        work,
        MLOPS_MAX_BODY_BYTES="65536",
        MLOPS_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        MLOPS_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
    ) as server:
        yield Served(server.base, store, models, server.log, server.process)
    assert server.process.returncode == 0, server.tail()


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
    body = response.json()
    assert body.pop("ids") == [f"{body['id']}-{i}" for i in range(25)]
    assert body.pop("id") == response.headers["x-request-id"]
    assert body == {"predictions": expected, "model_version": "v1", "role": "stable"}
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
        *(
            (
                f"Inference-Header-Content-Length {value}",
                v2,
                V2_BODY,
                {**json_type, "Inference-Header-Content-Length": value},
                400,
                "Inference-Header-Content-Length",
            )
            for value in ("abc", "-5", "1e3", "99999999999999999999999", str(len(V2_BODY) + 1))
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
        metric_sample(after, "mlops_request_errors_total", model=MODEL, code=str(code))
        - metric_sample(before, "mlops_request_errors_total", model=MODEL, code=str(code))
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
    metadata = served.http.get(f"{served.base}/v2/models/{MODEL}", timeout=5).json()
    assert metadata["versions"] == ["v1", "v2"]
    for version in ("v1", "v2"):  # a versioned path pins the version: no traffic split
        answered = {
            _infer(served, f"/versions/{version}").json()["model_version"] for _ in range(20)
        }
        assert answered == {version}
    before = served.metrics()
    counts = _versions(served, 1000)
    assert set(counts) == {"v1", "v2"}
    assert 150 <= counts["v2"] <= 250, counts
    after = served.metrics()
    for version in ("v1", "v2"):
        sent = metric_sample(
            after, "mlops_requests_total", model=MODEL, version=version, protocol="v1"
        ) - metric_sample(
            before, "mlops_requests_total", model=MODEL, version=version, protocol="v1"
        )
        assert sent == counts[version]
    assert metric_sample(after, "mlops_model_info", model=MODEL, version="v2", role="canary") == 1
    assert metric_sample(after, "mlops_model_info", model=MODEL, version="v1", role="stable") == 1
    assert metric_sample(after, "mlops_predictions_total", model=MODEL, version="v2") > 0

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
    assert metric_sample(metrics, "mlops_model_info", model=MODEL, version="v1") == 0
    assert metric_sample(metrics, "mlops_model_info", model=MODEL, version="v2", role="stable") == 1

    rollback(store, MODEL)
    served.wait_status(lambda s: s["stable"] == "v1")
    assert _versions(served, 50) == {"v1": 50}


def test_out_of_range_inputs_are_counted(served):
    before = served.metrics()
    row = [100.0, 3.5, 1.4, 0.2, "purple"]
    assert served.predict([row, row]).status_code == 200
    after = served.metrics()
    for feature in ("sepal_length", "color"):
        delta = metric_sample(
            after, "mlops_input_out_of_range_total", model=MODEL, feature=feature
        ) - metric_sample(before, "mlops_input_out_of_range_total", model=MODEL, feature=feature)
        assert delta == 2, feature
    assert (
        metric_sample(
            after, "mlops_request_duration_seconds_count", model=MODEL, endpoint="predict"
        )
        > 0
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
    written = metric_sample(
        served.metrics(), "mlops_inference_log_records_total", model=MODEL, result="written"
    )
    assert written == len(frame)


def _infer(served, version_path: str = "", body: bytes = V2_BODY) -> requests.Response:
    return served.http.post(
        f"{served.base}/v2/models/{MODEL}{version_path}/infer",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def _json_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def test_metadata_names_the_served_versions_and_the_platform(served):
    base = f"{served.base}/v2/models/{MODEL}"
    metadata = served.http.get(base, timeout=5).json()
    assert (metadata["versions"], metadata["platform"]) == (["v1"], "sklearn")
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    versioned = served.http.get(f"{base}/versions/v1", timeout=5)
    assert versioned.status_code == 200 and versioned.json() == metadata
    ready = served.http.get(f"{base}/versions/v1/ready", timeout=5)
    assert ready.status_code == 200 and ready.json() == {"name": MODEL, "ready": True}
    answer = _infer(served, "/versions/v1")
    assert answer.status_code == 200 and answer.json()["model_version"] == "v1"
    expected = served.models["v1"].predict(pd.DataFrame([ROW], columns=FEATURES)).tolist()
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    assert outputs["predict"] == expected
    for response in (answer, _infer(served)):  # the OIP wants no null where an object goes
        body = response.json()
        # Response parameters are scalars (OIP): the role and the row ids; outputs carry none.
        assert body["parameters"] == {"role": "stable", "row_ids": body["id"]}
        assert all("parameters" not in o for o in body["outputs"])
        assert {o["name"] for o in body["outputs"]} == {"predict", "probabilities"}


def test_a_version_the_name_does_not_serve_is_a_404_json_error(served):
    base = f"{served.base}/v2/models/{MODEL}/versions"
    for path in ("/v3", "/v3/ready", "/nope"):
        assert "does not serve version" in _json_error(served.http.get(base + path, timeout=5), 404)
    assert "does not serve version" in _json_error(_infer(served, "/versions/v3"), 404)
    unknown = served.http.get(f"{served.base}/v2/models/nope/versions/v1", timeout=5)
    assert "nope" in _json_error(unknown, 404)


def test_the_model_repository_is_refused_and_the_model_still_answers(served):
    repository = f"{served.base}/v2/repository/models/{MODEL}"
    for action in ("unload", "load"):
        for headers in ({}, {"Authorization": "Bearer guessed"}):
            refused = served.http.post(f"{repository}/{action}", headers=headers, timeout=5)
            assert "MLOPS_ADMIN_API" in _json_error(refused, 403)
    assert served.predict(v1_list_rows(sample_rows(1))).status_code == 200
    assert served.http.get(f"{served.base}/v2/models/{MODEL}/ready", timeout=5).status_code == 200
    extensions = served.http.get(f"{served.base}/v2", timeout=5).json()["extensions"]
    assert "model_repository_extension" not in extensions
    assert served.http.get(f"{served.base}/v2/", timeout=5).json()["extensions"] == extensions


def test_an_unknown_model_is_one_log_line_not_a_traceback(served):
    lines_before = len(served.log.read_text(errors="replace").splitlines())
    predict = served.http.post(
        f"{served.base}/v1/models/nosuchmodel:predict", json={"instances": [ROW]}, timeout=5
    )
    assert "nosuchmodel" in _json_error(predict, 404)
    infer = served.http.post(
        f"{served.base}/v2/models/nosuchmodel/infer",
        data=V2_BODY,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert "nosuchmodel" in _json_error(infer, 404)
    time.sleep(0.3)
    new = served.log.read_text(errors="replace").splitlines()[lines_before:]
    assert not [line for line in new if "Traceback" in line], "\n".join(new)
    assert len([line for line in new if "nosuchmodel" in line]) <= 2, "\n".join(new)


def _wait_metric(served, name: str, minimum: float, **labels: str) -> float:
    deadline = time.monotonic() + 10
    while True:
        value = metric_sample(served.metrics(), name, **labels)
        if value >= minimum or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_an_aborted_upload_is_not_counted_as_a_server_error(served):
    port = int(served.base.rsplit(":", 1)[1])
    before = served.metrics()
    aborted_before = metric_sample(
        before, "mlops_request_errors_total", model=MODEL, code="aborted"
    )
    for path in (f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 5000\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(head + b'{"instances": [[5.1, ')
            time.sleep(0.2)  # the server is reading the body when the client goes away
    aborted = _wait_metric(
        served, "mlops_request_errors_total", aborted_before + 2, model=MODEL, code="aborted"
    )
    assert aborted == aborted_before + 2
    after = served.metrics()
    for code in ("500", "400"):
        assert metric_sample(after, "mlops_request_errors_total", model=MODEL, code=code) == (
            metric_sample(before, "mlops_request_errors_total", model=MODEL, code=code)
        ), code
    assert served.predict(v1_list_rows(sample_rows(1))).status_code == 200


def test_slow_headers_and_bodies_are_dropped_within_their_deadline(served):
    port = int(served.base.rsplit(":", 1)[1])
    head = f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\n".encode()
    # Headers that never finish, a trickle one byte at a time, and a connection that sends nothing.
    for chunks, pause in (([head], 0.0), ([bytes([b]) for b in head * 4], 0.05), ([], 0.0)):
        answer, seconds = raw_exchange(port, chunks, pause)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"MLOPS_HEADER_TIMEOUT_SECONDS" in answer
        assert seconds < HEADER_TIMEOUT + 2.0, seconds
    body_head = head + b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    answer, seconds = raw_exchange(port, [body_head, b'{"instances": '])
    assert answer.startswith(b"HTTP/1.1 408"), answer
    status_line, _, rest = answer.partition(b"\r\n\r\n")
    assert b"MLOPS_BODY_TIMEOUT_SECONDS" in json.loads(rest)["error"].encode()
    assert BODY_TIMEOUT - 0.5 < seconds < BODY_TIMEOUT + 2.0, seconds
    timeouts = served.metrics()
    assert metric_sample(timeouts, "mlops_request_timeouts_total", phase="headers") >= 3
    assert metric_sample(timeouts, "mlops_request_timeouts_total", phase="body") >= 1
    assert served.predict(v1_list_rows(sample_rows(1))).status_code == 200


ADMIN_TOKEN = "test-admin-token-" + uuid.uuid4().hex


def _publish_chain(store, work: Path, private: Path, model: str, second: Path | None) -> None:
    """Publishes and deploys ``model`` v1, then v2 (``second``, default: a fresh v2) as stable.

    The deployment state then has stable v2 and history [v1], as after a release.
    """
    from mlops.deployment.state import Release, deploy

    first, _, _ = build_model_dir(work / f"{model}-v1", private, model_name=model, version="v1")
    publish(store, first, model, "v1")
    publish(store, second if second is not None else first, model, "v2")
    for version in ("v1", "v2"):
        deploy(store, model, Release(version, store.uri(f"models/{model}/{version}")))


def test_a_stable_that_fails_verification_at_start_falls_back_to_the_last_verified(store, tmp_path):
    private, public = make_keypair(tmp_path / "keys")
    tampered, _, _ = build_model_dir(tmp_path / "tampered", private, version="v2")
    flip_byte(tampered / "model.skops")
    _publish_chain(store, tmp_path, private, MODEL, tampered)
    # A signed v1 copied under the version name v2: its signature verifies, its identity does not.
    _publish_chain(store, tmp_path, private, "copied", None)

    with serving_process(
        store,
        public,
        tmp_path,
        ready=(MODEL, "copied"),
        MLOPS_ADMIN_API="true",
        MLOPS_ADMIN_TOKEN=ADMIN_TOKEN,
    ) as server:
        http = requests.Session()
        metrics = http.get(f"{server.base}/metrics", timeout=5).text
        for name, why in ((MODEL, "model.skops"), ("copied", "copied under another name")):
            status = http.get(f"{server.base}/v1/models/{name}", timeout=5)
            body = status.json()
            assert status.status_code == 200 and body["ready"] is True, body
            assert (body["stable"], body["desired"]["stable"]) == ("v1", "v2"), body
            assert body["fallback"]["version"] == "v1" and body["fallback"]["desired"] == "v2"
            assert why in body["fallback"]["reason"] and why in body["not_ready_reason"], body
            assert metric_sample(metrics, "mlops_model_fallback", model=name, version="v1") == 1
            answer = http.post(
                f"{server.base}/v1/models/{name}:predict", json={"instances": [ROW]}, timeout=5
            )
            assert answer.status_code == 200 and answer.json()["model_version"] == "v1"
        _check_admin_api(http, server.base)
    assert server.process.returncode == 0, server.tail()


def _check_admin_api(http: requests.Session, base: str) -> None:
    """With MLOPS_ADMIN_API and a token: no token 401, a wrong one 403, the right one works."""
    unload = f"{base}/v2/repository/models/{MODEL}/unload"
    predict = f"{base}/v1/models/{MODEL}:predict"
    assert "Bearer" in _json_error(http.post(unload, timeout=5), 401)
    wrong = {"Authorization": "Bearer not-the-token"}
    assert "invalid admin token" in _json_error(http.post(unload, headers=wrong, timeout=5), 403)
    assert http.post(predict, json={"instances": [ROW]}, timeout=5).status_code == 200

    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert http.post(unload, headers=right, timeout=5).json() == {"name": MODEL, "unload": True}
    assert http.post(predict, json={"instances": [ROW]}, timeout=5).status_code == 404
    load = f"{base}/v2/repository/models/{MODEL}/load"
    assert http.post(load, headers=right, timeout=5).json() == {"name": MODEL, "load": True}
    answer = http.post(predict, json={"instances": [ROW]}, timeout=5)
    assert answer.status_code == 200 and answer.json()["model_version"] == "v1"
    assert "model_repository_extension" in http.get(f"{base}/v2", timeout=5).json()["extensions"]
