"""Benchmark: the local model server (``mlops serve``) on loopback.

    python bench/bench_serving.py [--requests 2000] [--connections 1 4]

Trains the breast-cancer model with the project's own training code, signs and
publishes it to a throw-away embedded store, deploys it, starts ``mlops serve``
on 127.0.0.1, and sends a bounded number of V1 ``:predict`` requests (one row
each, keep-alive connections) per concurrency level. Prints requests/s and
latency percentiles. The same load then goes to ``ceiling_server.py`` (a trivial
``kserve.Model``, same server), so one run shows what share of the HTTP stack's
ceiling the real predictor keeps. Every loop is bounded by count; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench-model"
CEILING = "ceiling: trivial kserve.Model on the same server"


def publish_model(home: Path) -> None:
    """Train, package, sign, publish and deploy with the project's own functions."""
    from mlops.core.embedded_store import EmbeddedStore
    from mlops.core.store import ObjectStore
    from mlops.demo.data import TARGET, breast_cancer_frame
    from mlops.deployment.state import Release, deploy
    from mlops.model.packaging import write_model_dir
    from mlops.model.registry import publish_model_dir
    from mlops.model.training import split_dataset, train
    from mlops.trust.signing import default_key_paths, generate_keypair, sign_model_dir

    settings = EmbeddedStore(home).start()
    os.environ.update(settings.to_env())
    store = ObjectStore(settings)
    train_frame, _ = split_dataset(breast_cancer_frame(), TARGET)
    model, schema = train(train_frame, TARGET, "logistic_regression")
    model_dir = home / "model"
    write_model_dir(
        model_dir,
        model,
        model_name=MODEL,
        version="v1",
        schema=schema,
        target_column=TARGET,
        estimator="logistic_regression",
        drop_columns=[],
        metrics={},
        fingerprints={},
        train_features=train_frame.drop(columns=[TARGET]),
        params={},
    )
    private, public = default_key_paths(home)
    generate_keypair(private, public)
    sign_model_dir(model_dir, private)
    ref = publish_model_dir(store, model_dir, MODEL, "v1")
    deploy(store, MODEL, Release(ref.version, ref.uri))


def wait_ready(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", f"/v2/models/{MODEL}/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("server not ready")


def worker(port: int, body: bytes, count: int, latencies: list[float], errors: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    for _ in range(count):
        started = time.perf_counter()
        connection.request("POST", f"/v1/models/{MODEL}:predict", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            errors.append(response.status)


def measure(port: int, body: bytes, requests: int, connections: int) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    per = requests // connections
    threads = [
        threading.Thread(target=worker, args=(port, body, per, latencies, errors))
        for _ in range(connections)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "connections": connections,
        "requests": len(latencies),
        "errors": len(errors),
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    from mlops.core.embedded_store import EmbeddedStore
    from mlops.core.net import free_port
    from mlops.demo.data import TARGET, breast_cancer_frame

    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as work:
        home = Path(work)
        os.environ["MLOPS_HOME"] = str(home)
        publish_model(home)
        row = json.loads(
            breast_cancer_frame().drop(columns=[TARGET]).head(1).to_json(orient="records")
        )
        body = json.dumps({"instances": row}).encode()
        servers = {
            "mlops serve": lambda port: [
                sys.executable,
                "-m",
                "mlops.cli",
                "serve",
                "--port",
                str(port),
            ],
            CEILING: lambda port: [
                sys.executable,
                str(ROOT / "bench" / "ceiling_server.py"),
                str(port),
            ],
        }
        rates: dict[str, dict[int, float]] = {}
        print(f"V1 :predict, 1 row, {args.requests} requests per level (loopback)")
        try:
            for label, command in servers.items():
                port = free_port()
                server = subprocess.Popen(
                    command(port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                try:
                    wait_ready(port)
                    measure(port, body, 200, 1)  # warm-up
                    print(f"{label}:")
                    for connections in args.connections:
                        result = measure(port, body, args.requests, connections)
                        rates.setdefault(label, {})[connections] = result["req_per_s"]
                        print(
                            f"  {connections} connection(s): {result['req_per_s']:7.0f} req/s  "
                            f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
                            f"errors {result['errors']}"
                        )
                finally:
                    server.terminate()
                    server.wait(timeout=30)
        finally:
            EmbeddedStore(home).stop()
        for connections in args.connections:
            share = rates["mlops serve"][connections] / rates[CEILING][connections]
            print(
                f"mlops serve reaches {share:.0%} of the ceiling at {connections} connection(s) "
                "(validation, model, metrics and inference log included)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
