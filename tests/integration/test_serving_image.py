"""The serving image's environment is enough to serve ``python -m serving``.

The image's entry point runs with every distribution outside
``requirements-serving.lock`` made unimportable, against the real store, with the
arguments an InferenceService passes (so every interface bound, as in a pod),
and answers V1, V2, explain and /metrics, and flushes its inference log on shutdown.

No Docker engine runs here, so the image itself is not built; this runs the same
entry point with the same package set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from tests.conftest import REPO_ROOT
from tests.serving_helpers import (
    PROC_NET_TCP,
    build_model_dir,
    listening_addresses,
    make_keypair,
    publish,
    sample_rows,
    v1_list_rows,
)

pytestmark = pytest.mark.slow

MODEL = "iris"

# Installs an import hook that refuses any module whose file belongs to a
# distribution outside the serving lock, records who asked, then runs the entry point.
BOOTSTRAP = textwrap.dedent("""
    import importlib.abc, importlib.machinery, importlib.metadata as md, json, os, runpy, sys
    from packaging.utils import canonicalize_name

    lock, record, project = sys.argv[1], sys.argv[2], tuple(sys.argv[3].split(os.pathsep))
    allowed = {canonicalize_name(line.split("==")[0]) for line in open(lock).read().split()}
    allowed.add("kfp-mlops")
    outside = set()
    for dist in md.distributions():
        if canonicalize_name(dist.metadata["Name"]) not in allowed:
            outside.update(os.path.realpath(dist.locate_file(f)) for f in dist.files or ())

    class OutsideTheServingImage(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or not spec.origin or os.path.realpath(spec.origin) not in outside:
                return None
            frame = sys._getframe(1)
            while frame and frame.f_code.co_filename.startswith("<frozen"):
                frame = frame.f_back
            importer = os.path.realpath(frame.f_code.co_filename) if frame else "?"
            with open(record, "a") as out:
                out.write(json.dumps({"module": fullname, "importer": importer,
                                      "ours": importer.startswith(project)}) + "\\n")
            raise ModuleNotFoundError(f"{fullname} is not in the serving image", name=fullname)

    sys.meta_path.insert(0, OutsideTheServingImage())
    sys.argv = ["serving", *sys.argv[4:]]
    runpy.run_module("serving", run_name="__main__", alter_sys=True)
""")


def test_the_serving_lock_is_enough_to_serve(store, tmp_path):
    from mlops.core.net import free_port
    from mlops.monitoring.inference_log import read_inference_logs

    private, public = make_keypair(tmp_path / "keys")
    model_dir, model, _ = build_model_dir(tmp_path / "model", private, estimator="random_forest")
    uri = publish(store, model_dir, MODEL, "v1").uri
    bootstrap = tmp_path / "bootstrap.py"
    bootstrap.write_text(BOOTSTRAP)
    record = tmp_path / "refused.jsonl"
    record.touch()
    port = free_port()
    env = {
        **os.environ,
        **store.settings.to_env(),
        "MLOPS_INFERENCE_LOG_FLUSH_SECONDS": "60",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "server.log"
    # The project's own code; an import refused there is a missing serving dependency.
    project = os.pathsep.join(
        str((REPO_ROOT / package).resolve()) + os.sep for package in ("mlops", "serving")
    )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(bootstrap),
                str(REPO_ROOT / "requirements-serving.lock"),
                str(record),
                project,
                "--model-name",
                MODEL,
                "--storage-uri",
                uri,
                "--public-key",
                str(public),
                "--http-port",
                str(port),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()[-4000:]
            try:
                if http.get(f"{base}/v2/models/{MODEL}/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.3)

        if PROC_NET_TCP.exists():  # the pod's entry: every interface
            assert listening_addresses(port) == {"0.0.0.0"}  # nosec B104
        rows = sample_rows(5)
        expected = model.predict(rows).tolist()
        v1 = http.post(
            f"{base}/v1/models/{MODEL}:predict", json={"instances": v1_list_rows(rows)}, timeout=10
        )
        assert v1.status_code == 200 and v1.json()["predictions"] == expected
        numeric = rows.drop(columns=["color"])
        v2_inputs = [
            {"name": name, "shape": [len(rows)], "datatype": "FP64", "data": numeric[name].tolist()}
            for name in numeric.columns
        ]
        v2_inputs.append(
            {
                "name": "color",
                "shape": [len(rows)],
                "datatype": "BYTES",
                "data": rows["color"].tolist(),
            }
        )
        v2 = http.post(f"{base}/v2/models/{MODEL}/infer", json={"inputs": v2_inputs}, timeout=10)
        assert v2.status_code == 200, v2.text
        assert next(o for o in v2.json()["outputs"] if o["name"] == "predict")["data"] == expected
        explained = http.post(
            f"{base}/v1/models/{MODEL}:explain",
            json={"instances": v1_list_rows(rows.head(1))},
            timeout=30,
        )
        assert explained.status_code == 200 and explained.json()["method"] == "tree_shap"
        assert (
            http.post(
                f"{base}/v1/models/{MODEL}:predict",
                data=b"{oops",
                headers={"Content-Type": "application/json"},
                timeout=10,
            ).status_code
            == 400
        )
        assert "mlops_predictions_total" in http.get(f"{base}/metrics", timeout=5).text
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()[-4000:]
    # The log buffer (flush interval 60 s) reaches the store only through the shutdown flush.
    assert len(read_inference_logs(store, MODEL)) == 2 * len(rows)
    # Libraries may probe optional modules (and carry on without them); the project may not.
    refused = [json.loads(line) for line in record.read_text().splitlines()]
    assert not [r for r in refused if r["ours"]], (
        f"project code imports outside the serving lock: {refused}"
    )
    assert "httptools" not in {r["module"] for r in refused}, (
        "uvicorn's fast HTTP parser is in the image"
    )
