"""End to end: batched serving over real HTTP (``python -m serving.server``, real store).

The served model is a model-repository pipeline (HistGradientBoosting after a
ColumnTransformer), so every prediction goes through the batcher. Concurrent V1
and V2 requests get the in-process answers, a malformed one among them gets its
400 while the others get 200, and a slow client (its body still on its way) holds
nobody up: the others are answered well within ``MLOPS_MAX_BATCH_WAIT_MS``, set
high here so that waiting for it would show.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import requests

from tests.serving_helpers import (
    FEATURES,
    NUMERIC,
    make_keypair,
    metric_sample,
    publish,
    sample_rows,
    serving_process,
    v1_list_rows,
    v1_object_rows,
)
from tests.unit.test_batching_predictor import hist_gradient_boosting_dir

pytestmark = pytest.mark.slow

MODEL = "iris"
WAIT_MS = 3000


@pytest.fixture(scope="module")
def served(store_settings, tmp_path_factory):
    from mlops.core.store import ObjectStore
    from mlops.deployment.state import Release, deploy
    from mlops.model.modelio import load_model

    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    work = tmp_path_factory.mktemp("batching")
    private, public = make_keypair(work / "keys")
    model_dir = hist_gradient_boosting_dir(work / "v1", private)
    publish(store, model_dir, MODEL, "v1")
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    with serving_process(
        store,
        public,
        work,
        MLOPS_MAX_BATCH_WAIT_MS=str(WAIT_MS),
        MLOPS_BODY_TIMEOUT_SECONDS="20",
    ) as server:
        yield server, load_model(model_dir / "model.skops")


def expected_labels(model, frame) -> list:
    from mlops.model.schema import FeatureSchema, coerce

    features = frame[FEATURES]
    return model.predict(coerce(features, FeatureSchema.from_frame(features))).tolist()


def v2_body(frame) -> dict:
    return {
        "id": "req",
        "inputs": [
            {
                "name": name,
                "shape": [len(frame)],
                "datatype": "FP64" if name in NUMERIC else "BYTES",
                "data": frame[name].tolist(),
            }
            for name in FEATURES
        ],
    }


def test_concurrent_v1_and_v2_requests_get_the_in_process_answers_and_only_bad_ones_fail(served):
    server, model = served
    cases = []
    for i in range(48):
        frame = sample_rows(1 + i % 4, seed=i)
        if i % 12 == 5:
            cases.append(("v1", {"instances": [[5.1, "wide", 1.4, 0.2, "red"]]}, None))
        elif i % 2:
            cases.append(("v2", v2_body(frame), expected_labels(model, frame)))
        else:
            rows = v1_list_rows(frame) if i % 4 else v1_object_rows(frame)
            cases.append(("v1", {"instances": rows}, expected_labels(model, frame)))

    def send(case):
        protocol, body, _ = case
        path = f"/v1/models/{MODEL}:predict" if protocol == "v1" else f"/v2/models/{MODEL}/infer"
        with requests.Session() as http:
            return http.post(server.base + path, json=body, timeout=30)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, cases))
    for (protocol, _, expected), answer in zip(cases, answers, strict=True):
        if expected is None:
            assert answer.status_code == 400, answer.text
            assert "sepal_width" in answer.json()["error"]
            continue
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if protocol == "v1":
            assert body["predictions"] == expected
        else:
            outputs = {o["name"]: o for o in body["outputs"]}
            assert outputs["predict"]["data"] == expected
            assert body["id"] == "req"
    metrics = requests.get(f"{server.base}/metrics", timeout=5).text
    calls = metric_sample(metrics, "mlops_batch_requests_count", model=MODEL)
    scored = metric_sample(metrics, "mlops_batch_requests_sum", model=MODEL)
    assert scored > calls  # some model calls scored more than one request


def test_a_slow_client_holds_nobody_up(served):
    server, model = served
    frame = sample_rows(2, seed=3)
    slow_body = json.dumps({"instances": v1_list_rows(frame)}).encode()
    head = (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(slow_body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
        slow.sendall(head + slow_body[:10])  # the headers and a little of the body: arriving
        time.sleep(0.3)
        started = time.monotonic()
        answer = requests.post(
            f"{server.base}/v1/models/{MODEL}:predict",
            json={"instances": v1_object_rows(frame)},
            timeout=30,
        )
        waited = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected_labels(model, frame)
        # Not waited for: its body is not in (the bound would be 3 s).
        assert waited < WAIT_MS / 1000 / 2, waited
        slow.sendall(slow_body[10:])
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = slow.recv(65536)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["predictions"] == expected_labels(
        model, frame
    )
