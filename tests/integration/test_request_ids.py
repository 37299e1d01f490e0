"""Request ids and the feedback endpoint, against ``python -m serving.server`` and the real store.

Ids round-trip (the ``x-request-id`` header wins, else the V2 body ``id``, else a
generated one) in the header and the body, V1 and V2, one row and many; invalid
client ids are refused naming the header; inference-log rows carry the row ids
and the role. The feedback endpoint is off by default, checks its bearer token,
bounds and validates what it gets, reports unknown ids and stores hostile label
values as plain data.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest
import requests

from tests.serving_helpers import (
    build_model_dir,
    make_keypair,
    publish,
    sample_rows,
    serving_process,
    v1_list_rows,
)

pytestmark = pytest.mark.slow

MODEL = "iris"
TOKEN = "feedback-" + uuid.uuid4().hex


def _v2_body(rows, request_id: str | None = None) -> dict:
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": "FP64", "data": rows[name].tolist()}
        for name in ("sepal_length", "sepal_width", "petal_length", "petal_width")
    ]
    inputs.append(
        {"name": "color", "shape": [len(rows)], "datatype": "BYTES", "data": rows["color"].tolist()}
    )
    body: dict = {"inputs": inputs}
    if request_id is not None:
        body["id"] = request_id
    return body


@pytest.fixture(scope="module")
def deployed(store_settings, tmp_path_factory):
    """A store with iris v1 deployed as stable, and the key it is signed with."""
    from mlops.core.store import ObjectStore
    from mlops.deployment.state import Release, deploy

    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    work = tmp_path_factory.mktemp("ids")
    private, public = make_keypair(work / "keys")
    model_dir, _, _ = build_model_dir(work / "v1", private, version="v1")
    publish(store, model_dir, MODEL, "v1")
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    return store, public, work


@pytest.fixture(scope="module")
def server(deployed):
    store, public, work = deployed
    (work / "on").mkdir()
    with serving_process(
        store,
        public,
        work / "on",
        MLOPS_FEEDBACK_API="true",
        MLOPS_FEEDBACK_TOKEN=TOKEN,
        MLOPS_MAX_BODY_BYTES="262144",
    ) as running:
        yield running, store
    assert running.process.returncode == 0, running.tail()


def _wait_logged(store, ids: set[str], timeout: float = 20.0):
    from mlops.monitoring.inference_log import read_inference_logs

    deadline = time.monotonic() + timeout
    while True:
        frame = read_inference_logs(store, MODEL)
        if ids <= set(frame["request_id"].dropna()):
            return frame
        if time.monotonic() > deadline:
            raise AssertionError(
                f"ids {sorted(ids - set(frame['request_id'].dropna()))} not logged"
            )
        time.sleep(0.2)


def test_v1_ids_round_trip_in_header_and_body(server):
    running, store = server
    url = f"{running.base}/v1/models/{MODEL}:predict"
    one = requests.post(
        url,
        json={"instances": v1_list_rows(sample_rows(1))},
        headers={"x-request-id": "client-1"},
        timeout=10,
    )
    assert one.status_code == 200, one.text
    assert one.headers["x-request-id"] == "client-1"
    assert one.headers["x-mlops-role"] == "stable"
    assert one.json()["id"] == "client-1" and one.json()["ids"] == ["client-1"]
    assert one.json()["role"] == "stable" and one.json()["model_version"] == "v1"

    many = requests.post(url, json={"instances": v1_list_rows(sample_rows(3))}, timeout=10)
    assert many.status_code == 200, many.text
    generated = many.headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0  # uuid4 hex
    assert many.json()["id"] == generated
    assert many.json()["ids"] == [f"{generated}-{i}" for i in range(3)]

    frame = _wait_logged(store, {"client-1", f"{generated}-2"})
    logged = frame.set_index("request_id")
    assert logged.loc["client-1", "role"] == "stable"
    assert logged.loc["client-1", "model_version"] == "v1"
    assert [logged.loc[f"{generated}-{i}", "prediction"] for i in range(3)] == many.json()[
        "predictions"
    ]


def test_v2_ids_come_from_the_header_then_the_body_then_are_generated(server):
    running, _ = server
    url = f"{running.base}/v2/models/{MODEL}/infer"
    rows = sample_rows(2)
    by_header = requests.post(
        url, json=_v2_body(rows, "body-id"), headers={"x-request-id": "header-id"}, timeout=10
    )
    assert by_header.status_code == 200, by_header.text
    assert by_header.headers["x-request-id"] == "header-id"
    assert by_header.json()["id"] == "header-id"
    assert by_header.json()["parameters"] == {
        "role": "stable",
        "row_ids": "header-id-0,header-id-1",
    }

    by_body = requests.post(url, json=_v2_body(rows.head(1), "body-id"), timeout=10)
    assert by_body.headers["x-request-id"] == "body-id" == by_body.json()["id"]
    assert by_body.json()["parameters"]["row_ids"] == "body-id"

    generated = requests.post(url, json=_v2_body(rows.head(1)), timeout=10)
    assert generated.json()["id"] == generated.headers["x-request-id"]
    assert "null" not in generated.text  # OIP: an object or nothing, never null


def test_bad_header_ids_are_refused_and_odd_v2_body_ids_echoed(server):
    running, _ = server
    bad = requests.post(
        f"{running.base}/v1/models/{MODEL}:predict",
        json={"instances": v1_list_rows(sample_rows(1))},
        headers={"x-request-id": "has space<script>"},
        timeout=10,
    )
    assert bad.status_code == 400
    assert "x-request-id header" in bad.json()["error"]
    # A V2 body id is the OIP's to echo, whatever it holds; one that cannot be a request
    # id is echoed, and the request gets a generated id for its header and rows.
    odd = "spaces and ünïcode <>"
    echoed = requests.post(
        f"{running.base}/v2/models/{MODEL}/infer", json=_v2_body(sample_rows(1), odd), timeout=10
    )
    assert echoed.status_code == 200, echoed.text
    assert echoed.json()["id"] == odd
    generated = echoed.headers["x-request-id"]
    assert len(generated) == 32 and echoed.json()["parameters"]["row_ids"] == generated
    # Errors carry an id too (a generated one), so a client can quote it.
    error = requests.post(
        f"{running.base}/v1/models/{MODEL}:predict", json={"instances": [[1]]}, timeout=10
    )
    assert error.status_code == 400 and len(error.headers["x-request-id"]) == 32


def _feedback(base: str, body, token: str | None = TOKEN, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(
        f"{base}/v1/models/{MODEL}/feedback", json=body, headers=headers, timeout=20, **kwargs
    )


def test_feedback_stores_labels_reports_unknown_ids_and_keeps_hostile_values_as_data(server):
    from mlops.monitoring.feedback import read_feedback

    running, store = server
    answer = requests.post(
        f"{running.base}/v1/models/{MODEL}:predict",
        json={"instances": v1_list_rows(sample_rows(2))},
        headers={"x-request-id": "fb-1"},
        timeout=10,
    )
    assert answer.status_code == 200
    hostile = "<script>alert('x')</script>\"; DROP TABLE labels; -- \u202e\U0001f600"
    labels = [
        {"id": "fb-1-0", "label": 0},
        {"id": "fb-1-1", "label": "first"},
        {"id": "fb-1-1", "label": hostile},  # the last one wins
        *({"id": f"never-{i}", "label": 1} for i in range(25)),
    ]
    stored = _feedback(running.base, {"labels": labels})
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["stored"] == 27
    assert body["unknown"] == 25
    assert body["unknown_ids"] == [f"never-{i}" for i in range(20)]

    deadline = time.monotonic() + 20
    while True:
        frame = read_feedback(store, MODEL)
        if {"fb-1-0", "fb-1-1"} <= set(frame["request_id"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    got = dict(zip(frame["request_id"], frame["label"], strict=True))
    assert got["fb-1-0"] == "0"
    assert got["fb-1-1"] == hostile  # stored exactly, as data
    keys = store.list(f"feedback/{MODEL}/")
    assert keys and all(k.endswith(".parquet") for k in keys)


def test_feedback_checks_the_token_the_model_and_the_body(server):
    running, _ = server
    assert _feedback(running.base, {"labels": []}, token=None).status_code == 401
    wrong = _feedback(running.base, {"labels": []}, token="not-the-token")
    assert wrong.status_code == 403 and "invalid feedback token" in wrong.json()["error"]
    missing = requests.post(
        f"{running.base}/v1/models/nope/feedback",
        json={"labels": []},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert missing.status_code == 404
    bad_id = _feedback(running.base, {"labels": [{"id": "a b", "label": 1}]})
    assert bad_id.status_code == 400 and "labels[0].id" in bad_id.json()["error"]
    bad_label = _feedback(running.base, {"labels": [{"id": "ok", "label": {"nested": 1}}]})
    assert bad_label.status_code == 400 and "labels[0].label" in bad_label.json()["error"]
    too_many = _feedback(running.base, {"labels": [{"id": "a", "label": 1}] * 10_001})
    assert too_many.status_code in (400, 413)
    shape = _feedback(running.base, {"rows": []})
    assert shape.status_code == 400
    too_big = requests.post(
        f"{running.base}/v1/models/{MODEL}/feedback",
        data=b"{" + b" " * 300_000 + b"}",
        headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
        timeout=10,
    )
    assert too_big.status_code == 413


def test_feedback_is_off_by_default(deployed):
    store, public, work = deployed
    (work / "off").mkdir()
    (work / "token-only").mkdir()
    with serving_process(store, public, work / "off") as running:
        refused = _feedback(running.base, {"labels": [{"id": "x", "label": 1}]})
        assert refused.status_code == 403
        assert "MLOPS_FEEDBACK_API" in refused.json()["error"]
    # A token alone does not open it: the opt-in is needed too.
    with serving_process(store, public, work / "token-only", MLOPS_FEEDBACK_TOKEN=TOKEN) as running:
        assert _feedback(running.base, {"labels": [{"id": "x", "label": 1}]}).status_code == 403
    from mlops.monitoring.feedback import read_feedback

    assert "x" not in set(read_feedback(store, MODEL)["request_id"])
