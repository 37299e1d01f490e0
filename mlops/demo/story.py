"""``make demo``: the whole loop on real data, from a fresh clone.

1. Train, gate, sign and publish a breast-cancer classifier (training pipeline, kfp.local).
2. Serve it with the KServe model server and send it real requests (V1, V2, explain).
3. Send drifted production traffic, run the monitoring pipeline: drift is detected,
   the model is retrained, passes the gates and goes out as a canary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any

MODEL = "breast-cancer"


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def cli(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlops.cli", *args]
    print("$ mlops " + " ".join(args), flush=True)
    return subprocess.run(command, text=True, capture_output=capture, check=False)


def http(method: str, url: str, payload: Any = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback URL
        return json.loads(response.read())


def wait_ready(base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http("GET", f"{base}/v2/models/{MODEL}/ready").get("ready"):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the model server did not become ready within {timeout:.0f}s")


def main() -> int:
    import pandas as pd

    from mlops.cli.common import ensure_signing_keys, ensure_store_env
    from mlops.core.net import free_port
    from mlops.core.settings import mlops_home
    from mlops.demo.data import TARGET, large_tumour_traffic, write_breast_cancer

    home = mlops_home()
    work = home / "demo"
    banner("Set-up")
    ensure_store_env()
    ensure_signing_keys()
    training_csv, holdout_csv = write_breast_cancer(work)
    print(
        f"real data (scikit-learn's Wisconsin breast-cancer set): {training_csv} and an "
        f"independent holdout {holdout_csv}"
    )
    audit = (
        [f"advisory_db_uri={os.environ['MLOPS_ADVISORY_DB']}"]
        if os.environ.get("MLOPS_ADVISORY_DB")
        else []
    )
    if not audit:
        audit = ["allow_unknown_audit=true"]
        print(
            "WARNING: no advisory database (MLOPS_ADVISORY_DB) and no internet: the dependency "
            "audit cannot check, and this demo allows that explicitly. Real runs must not.",
            flush=True,
        )
    params = [
        f"data_uri={training_csv}",
        f"holdout_uri={holdout_csv}",
        f"target_column={TARGET}",
        f"model_name={MODEL}",
        "deploy=full",
        *audit,
    ]

    banner("1. Training pipeline: split, train, holdout gate, audit, scan, quality, sign, publish")
    if cli("run", "training", *[arg for p in params for arg in ("-p", p)]).returncode != 0:
        return 1

    banner("2. Serving: KServe model server on 127.0.0.1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(work / "serve.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops.cli", "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(base)
        holdout = pd.read_csv(holdout_csv)
        sample = holdout.sample(5, random_state=3)
        rows = json.loads(sample.drop(columns=[TARGET]).to_json(orient="records"))
        answer = http("POST", f"{base}/v1/models/{MODEL}:predict", {"instances": rows})
        print(
            f"POST /v1/models/{MODEL}:predict (5 holdout rows), model version {answer.get('model_version')}"
        )
        for predicted, truth in zip(answer["predictions"], sample[TARGET], strict=True):
            print(f"  predicted {predicted:<10} actual {truth}")
        explained = http("POST", f"{base}/v1/models/{MODEL}:explain", {"instances": rows[:1]})
        first = explained["explanations"][0]
        print(
            f"POST /v1/models/{MODEL}:explain ({explained['method']}): predicted {first['prediction']} "
            f"(p={first['probability']:.3f}); strongest features:"
        )
        for item in sorted(first["attributions"], key=lambda a: -abs(a["attribution"]))[:5]:
            print(
                f"  {item['feature']:<28} value {item['value']:<10.4g} attribution {item['attribution']:+.4f}"
            )

        banner("3. Drift story: production starts sending larger tumours")
        traffic = large_tumour_traffic(pd.read_csv(training_csv))
        records = json.loads(traffic.to_json(orient="records"))
        sent_at = datetime.now(timezone.utc)
        for start in range(0, len(records), 50):
            http(
                "POST",
                f"{base}/v1/models/{MODEL}:predict",
                {"instances": records[start : start + 50]},
            )
        print(
            f"sent {len(records)} production requests; waiting for the inference logs to reach the store"
        )
        wait_for_logs(len(records), sent_at)
        result = cli(
            "run",
            "monitoring",
            "--json",
            "-p",
            f"model_name={MODEL}",
            "-p",
            "window_hours=1",
            "-p",
            f"retrain_data_uri={training_csv}",
            "-p",
            f"holdout_uri={holdout_csv}",
            "-p",
            "canary_percent=20",
            *[arg for p in audit for arg in ("-p", p)],
            capture=True,
        )
        if result.returncode not in (0, 3):
            print(result.stderr[-3000:], file=sys.stderr)
            return 1
        outcome = json.loads(result.stdout)
        drifted = [n for n, c in outcome["drift"]["columns"].items() if c["drifted"]]
        print(
            f"drift detected: {outcome['drift']['detected']} ({outcome['drift']['share']:.0%} of "
            f"columns: {', '.join(drifted[:6])}{'...' if len(drifted) > 6 else ''})"
        )
        print(f"outcome: {outcome['status']} {outcome.get('model_version') or ''}")
        print(f"deployment: {outcome.get('deployment')}")
        report = work / "drift-report.html"
        report.write_bytes(_store().get_bytes(outcome["report_uri"]))
        print(f"Evidently drift report: {report} (also {outcome['report_uri']})")
        if outcome["status"] == "released":
            show_canary_traffic(base, outcome["model_version"], records)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    banner("Done")
    print("the embedded object store keeps running: `.venv/bin/mlops store status|stop`")
    print(
        "next: `.venv/bin/mlops serve` to keep serving, `.venv/bin/mlops promote breast-cancer` "
        "to promote the canary, `.venv/bin/mlops rollback breast-cancer` to drop it"
    )
    return 0


def show_canary_traffic(base: str, canary: str, records: list, timeout: float = 60) -> None:
    """Waits for the server to load the canary, then shows how traffic splits."""
    from collections import Counter

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http("GET", f"{base}/v1/models/{MODEL}").get("canary") == canary:
            break
        time.sleep(1)
    versions = Counter(
        http(
            "POST",
            f"{base}/v1/models/{MODEL}:predict",
            {"instances": records[i % len(records) : i % len(records) + 1]},
        )["model_version"]
        for i in range(200)
    )
    print(
        "200 requests after the release: "
        + ", ".join(f"{v}: {n}" for v, n in versions.most_common())
    )


def _store():
    from mlops.core.store import ObjectStore

    return ObjectStore.from_env()


def wait_for_logs(rows: int, since: datetime, timeout: float = 60) -> None:
    from mlops.monitoring.inference_log import read_inference_logs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(read_inference_logs(_store(), MODEL, since=since)) >= rows:
            return
        time.sleep(1)
    raise SystemExit("inference logs did not reach the store in time")
