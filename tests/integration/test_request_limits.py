"""Over real HTTP: request bounds (issue 9 finding 3), hostile values (5), V2 answers (issue 17).

``python -m serving`` (the in-pod entry) serving one model from a local folder on
127.0.0.1: a 1,000-class model, and the 30-feature breast-cancer model. A request past a bound is a 413 JSON error naming the
setting, answered in milliseconds, and small requests keep answering while big
ones arrive; values past float range are a 400 on every endpoint; V2 answers
validate against the Open Inference Protocol (no ``null`` parameters, every
advertised output by default) and tritonclient still reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.model_builders import (
    WIDE_FEATURES,
    breast_cancer_model_dir,
    many_class_model_dir,
    wide_rows,
)
from tests.serving_helpers import make_keypair

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MODEL = "wide"
CANCER = "cancer"
CLASSES = 1000
PREDICT = f"/v1/models/{MODEL}:predict"
EXPLAIN = f"/v1/models/{MODEL}:explain"
INFER = f"/v2/models/{MODEL}/infer"


class Server:
    def __init__(self, base: str, log: Path, model) -> None:
        self.base = base
        self.log = log
        self.model = model
        self.http = requests.Session()

    def post(self, path: str, body, **kwargs) -> requests.Response:
        return self.http.post(self.base + path, json=body, timeout=30, **kwargs)


@contextlib.contextmanager
def _serving(work: Path, model_dir: Path, name: str, public: Path, model) -> Iterator[Server]:
    """``python -m serving`` for one model folder on a loopback port, until the block ends."""
    from mlops.core.net import free_port

    port = free_port()
    # No store: the folder is served as is (no MLOPS_S3_* from the caller's environment).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(MLOPS_HOME=str(work / "home"), PYTHONUNBUFFERED="1")
    log = work / f"{name}.log"
    argv = [sys.executable, "-m", "serving", "--model-name", name, "--storage-uri", str(model_dir)]
    argv += ["--public-key", str(public), "--host", "127.0.0.1", "--http-port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    served = Server(f"http://127.0.0.1:{port}", log, model)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if served.http.get(f"{served.base}/v2/models/{name}/ready", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return make_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, keys) -> Iterator[Server]:
    """The 1,000-class model."""
    work = tmp_path_factory.mktemp("wide")
    model_dir, model = many_class_model_dir(work / "model", keys[0], CLASSES, MODEL)
    with _serving(work, model_dir, MODEL, keys[1], model) as served:
        yield served


@pytest.fixture(scope="module")
def cancer(tmp_path_factory, keys) -> Iterator[Server]:
    """The 30-feature breast-cancer model (standard deviations below one)."""
    work = tmp_path_factory.mktemp("cancer")
    model_dir, model = breast_cancer_model_dir(work / "model", keys[0], name=CANCER)
    with _serving(work, model_dir, CANCER, keys[1], model) as served:
        yield served


def _error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def test_a_big_predict_with_probabilities_is_refused_fast_with_its_setting(server):
    body = {"instances": wide_rows(20_000), "parameters": {"probabilities": True}}
    assert len(json.dumps(body)) < 1 << 20  # within the body limit: the row bound answers
    started = time.monotonic()
    message = _error(server.post(PREDICT, body), 413)
    assert "MLOPS_MAX_ROWS" in message and "20000 rows" in message
    body = {"instances": wide_rows(1_500), "parameters": {"probabilities": True}}
    assert "MLOPS_MAX_RESPONSE_VALUES" in _error(server.post(PREDICT, body), 413)
    assert "MLOPS_MAX_SCORED_VALUES" in _error(
        server.post(PREDICT, {"instances": wide_rows(3_000)}), 413
    )
    assert "MLOPS_MAX_EXPLAIN_ROWS" in _error(
        server.post(EXPLAIN, {"instances": wide_rows(101)}), 413
    )
    assert time.monotonic() - started < 5, "refusals must not do the work"


def test_small_requests_keep_answering_while_big_ones_arrive(server):
    big = {"instances": wide_rows(9_000), "parameters": {"probabilities": True}}
    stop = threading.Event()
    refused = []

    def hammer() -> None:
        with requests.Session() as http:
            while not stop.is_set():
                refused.append(http.post(server.base + PREDICT, json=big, timeout=30).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    latencies = []
    try:
        rows = wide_rows(3)
        for _ in range(20):
            started = time.monotonic()
            answer = server.post(
                PREDICT, {"instances": rows, "parameters": {"probabilities": True}}
            )
            latencies.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text[:300]
            assert len(answer.json()["probabilities"][0]) == CLASSES
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert refused and set(refused) == {413}
    assert max(latencies) < 2.0, latencies  # issue 9: 8.25 s behind one big request


def test_1e306_times_30_is_a_400_everywhere(cancer):
    # Issue 9: 200 with null probabilities on :predict, 500 on :explain.
    row = [1e306] * 30
    tensor = {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": row}
    for path, body in (
        (
            f"/v1/models/{CANCER}:predict",
            {"instances": [row], "parameters": {"probabilities": True}},
        ),
        (f"/v1/models/{CANCER}:explain", {"instances": [row]}),
        (f"/v2/models/{CANCER}/infer", {"inputs": [tensor]}),
    ):
        message = _error(cancer.post(path, body), 400)
        assert "value 1e+306 overflows to infinity (not finite)" in message, (path, message)


def test_malformed_v2_tensors_are_a_400(server):
    for tensor, expected in (
        ({"shape": [1, 4], "datatype": "FP64", "data": [[1, 2], 3]}, "ragged"),
        ({"shape": [4294967296, 4294967296], "datatype": "FP64", "data": [1, 2, 3, 4]}, "needs"),
        ({"shape": [1, 4], "datatype": "FP32", "data": [1e39, 1, 1, 1]}, "does not fit FP32"),
    ):
        body = {"inputs": [{"name": "x", **tensor}]}
        assert expected in _error(server.post(INFER, body), 400)


def test_v2_answers_every_advertised_output_and_no_null(server):
    metadata = server.http.get(f"{server.base}/v2/models/{MODEL}", timeout=10).json()
    advertised = [o["name"] for o in metadata["outputs"]]
    assert advertised == ["predict", "probabilities"]
    rows = wide_rows(2)
    tensor = {"name": "x", "shape": [2, 4], "datatype": "FP64", "data": sum(rows, [])}
    for outputs, expected in ((None, advertised), (["probabilities"], ["probabilities"])):
        body: dict = {"inputs": [tensor]}
        if outputs:
            body["outputs"] = [{"name": n} for n in outputs]
        answer = server.post(INFER, body)
        assert answer.status_code == 200, answer.text[:300]
        assert "null" not in answer.text, answer.text[:300]  # no "parameters": null
        document = answer.json()
        assert [o["name"] for o in document["outputs"]] == expected
    probabilities = document["outputs"][0]
    assert probabilities["shape"] == [2, CLASSES]
    import pandas as pd

    np.testing.assert_allclose(
        np.reshape(probabilities["data"], (2, CLASSES)),
        server.model.predict_proba(pd.DataFrame(rows, columns=WIDE_FEATURES)),
        rtol=1e-9,
    )


def test_tritonclient_reads_the_default_outputs(server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=server.base.removeprefix("http://"))
    rows = np.array(wide_rows(3), dtype=np.float64)
    tensor = httpclient.InferInput("x", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    result = client.infer(MODEL, [tensor])
    assert result.as_numpy("probabilities").shape == (3, CLASSES)
    assert result.as_numpy("predict").shape == (3,)
