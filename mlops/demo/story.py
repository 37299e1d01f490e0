"""``make demo``: the whole loop on real data, from a fresh clone.

1. Check the data scientist's repository (``examples/model-repo``) in to git, and let the
   training pipeline take it from there: static gates on its code and requirements, then
   train, holdout gate, scan, sign and publish (kfp.local).
2. Serve it with the KServe model server and send it real requests (V1, V2, explain).
3. Production traffic after a revised grading standard (the label's meaning changes,
   the features do not), true labels back through ``/feedback``, live accuracy falls,
   the monitoring pipeline retrains on the labelled window, the new version beats the
   old one on the newest labelled slice and goes out as a canary.

Every step goes through the ``mlops`` CLI, as a user would type it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.cli.common import ensure_signing_keys, ensure_store_env
from mlops.core import settings
from mlops.core.net import free_port
from mlops.core.store import ObjectStore
from mlops.demo.data import TARGET, revised_grading_traffic, write_breast_cancer
from mlops.monitoring.inference_log import read_inference_logs

MODEL = "breast-cancer"
#: Requests per call when replaying production traffic.
BATCH_ROWS = 50
#: Exit codes of ``mlops run monitoring`` that still carry an outcome (3: rejected).
MONITORING_OUTCOME_CODES = (0, 3)
#: Bearer token of the demo server's feedback endpoint (a fresh one per run).
FEEDBACK_TOKEN = secrets.token_urlsafe(24)
#: Production requests before and after the pause that makes the newest labelled slice.
TRAIN_ROWS, HOLDOUT_ROWS = 1100, 400
#: Seconds between the two batches; the holdout is the newest HOLDOUT_SECONDS of labels.
PAUSE_SECONDS, HOLDOUT_SECONDS = 15, 10


#: The example model repository, next to the package in a clone of the project.
EXAMPLE_REPOSITORY = Path(__file__).resolve().parents[2] / "examples" / "model-repo"


def main() -> int:
    """Runs the demo story; returns the process exit code."""
    work = settings.mlops_home() / "demo"
    training_csv, holdout_csv = set_up(work)
    recipe_uri = check_in_repository(work / "model-repo")
    audit = audit_params()
    if not run_training(recipe_uri, training_csv, holdout_csv, audit):
        return 1
    with model_server(work) as base:
        show_predictions(base, holdout_csv)
        if not ground_truth_story(base, work, training_csv, audit):
            return 1
    show_next_steps()
    return 0


# -- the story's steps ------------------------------------------------------------------------
def set_up(work: Path) -> tuple[Path, Path]:
    """Starts the store, makes signing keys and writes the training and holdout data."""
    banner("Set-up")
    ensure_store_env()
    ensure_signing_keys()
    training_csv, holdout_csv = write_breast_cancer(work)
    print(
        f"real data (scikit-learn's Wisconsin breast-cancer set): {training_csv} and an "
        f"independent holdout {holdout_csv}"
    )
    return training_csv, holdout_csv


def check_in_repository(folder: Path) -> str:
    """Commits a copy of ``examples/model-repo`` to a fresh git repository; returns its recipe URI.

    This is what a data scientist's check-in looks like to the flow: a commit the
    pipeline fetches, pins by SHA, gates and trains.
    """
    import shutil

    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(EXAMPLE_REPOSITORY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-C", str(folder), "-c", "user.name=Demo", "-c", "user.email=demo@example.org"]
    for step in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "model"]):
        subprocess.run([*git, *step], check=True)  # noqa: S603 - fixed git commands
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    print(f"model repository checked in: {folder} (commit {commit[:12]})")
    return f"git+file://{folder}@main"


def audit_params() -> list[str]:
    """The pipeline parameters that configure the dependency audit.

    Without an advisory database (and no internet) the audit cannot answer; the
    demo allows that explicitly, and says so.
    """
    advisory_db = settings.get(settings.ADVISORY_DB_VAR)
    if advisory_db:
        return [f"advisory_db_uri={advisory_db}"]
    print(
        f"WARNING: no advisory database ({settings.ADVISORY_DB_VAR}) and no internet: the "
        "dependency audit cannot check, and this demo allows that explicitly. Real runs must not.",
        flush=True,
    )
    return ["allow_unknown_audit=true"]


def run_training(recipe_uri: str, training_csv: Path, holdout_csv: Path, audit: list[str]) -> bool:
    """Step 1: the training pipeline on the repository, deploying fully; True when it succeeded.

    The model name, target and threshold come from the repository's ``mlops.yaml``.
    """
    banner(
        "1. Training pipeline: fetch the repository, static gates (code quality, audit, "
        "scan), then train, holdout gate, scan, sign, publish"
    )
    params = [
        f"recipe_uri={recipe_uri}",
        f"data_uri={training_csv}",
        f"holdout_uri={holdout_csv}",
        "deploy=full",
        *audit,
    ]
    return cli("run", "training", *as_options(params)).returncode == 0


@contextlib.contextmanager
def model_server(work: Path) -> Iterator[str]:
    """Step 2: runs ``mlops serve`` on a free loopback port until the block ends.

    Yields:
        The server's base URL, once the model is ready.
    """
    banner("2. Serving: KServe model server on 127.0.0.1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Labels come back through the feedback endpoint, which is off unless enabled
    # with a token (it writes to the store); the demo enables it for its own server.
    env = {
        **os.environ,
        settings.FEEDBACK_API_VAR: "true",
        settings.FEEDBACK_TOKEN_VAR: FEEDBACK_TOKEN,
    }
    with open(work / "serve.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlops.cli", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_ready(base)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def show_predictions(base: str, holdout_csv: Path) -> None:
    """Step 2: predicts five holdout rows and explains the first one."""
    sample = pd.read_csv(holdout_csv).sample(5, random_state=3)
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


def ground_truth_story(base: str, work: Path, training_csv: Path, audit: list[str]) -> bool:
    """Step 3: the meaning of the label changes; labels come back; the loop retrains and wins.

    Returns:
        True when the monitoring pipeline ran to an outcome.
    """
    banner(
        "3. Ground truth: a revised grading standard changes what 'malignant' means; "
        "the true labels come back through /feedback"
    )
    frame = pd.read_csv(training_csv)
    first, first_labels = revised_grading_traffic(frame, TRAIN_ROWS, seed=11, quantile=0.4)
    sent_at = datetime.now(UTC)
    records = send_with_feedback(base, first, first_labels)
    print(f"pausing {PAUSE_SECONDS} s: the next requests make the newest labelled slice")
    time.sleep(PAUSE_SECONDS)
    second, second_labels = revised_grading_traffic(frame, HOLDOUT_ROWS, seed=12, quantile=0.4)
    records += send_with_feedback(base, second, second_labels)
    wait_for_logs(TRAIN_ROWS + HOLDOUT_ROWS, sent_at)
    banner("Live quality of the stable version (inference logs joined with the labels)")
    cli("quality", MODEL, "--window-hours", "1")
    outcome = run_monitoring(audit)
    if outcome is None:
        return False
    show_outcome(outcome, work)
    if outcome["status"] == "released":
        show_canary_traffic(base, outcome["model_version"], records)
    return True


def send_with_feedback(
    base: str, features: pd.DataFrame, labels: pd.Series
) -> list[dict[str, Any]]:
    """Sends the rows as production requests, then their true labels by request id.

    Returns:
        The rows sent, as request instances.
    """
    records: list[dict[str, Any]] = json.loads(features.to_json(orient="records"))
    truth = labels.tolist()
    feedback: list[dict[str, Any]] = []
    for start in range(0, len(records), BATCH_ROWS):
        answer = http(
            "POST",
            f"{base}/v1/models/{MODEL}:predict",
            {"instances": records[start : start + BATCH_ROWS]},
        )
        ids = answer.get("ids") or [answer["id"]]
        feedback += [
            {"id": row_id, "label": label}
            for row_id, label in zip(ids, truth[start : start + BATCH_ROWS], strict=True)
        ]
    for start in range(0, len(feedback), 500):
        stored = http(
            "POST",
            f"{base}/v1/models/{MODEL}/feedback",
            {"labels": feedback[start : start + 500]},
            headers={"Authorization": f"Bearer {FEEDBACK_TOKEN}"},
        )
        if stored.get("unknown"):
            print(f"  {stored['unknown']} label(s) for ids the server does not know")
    print(f"sent {len(records)} production requests and their {len(feedback)} true labels")
    return records


def run_monitoring(audit: list[str]) -> dict[str, Any] | None:
    """Runs the monitoring pipeline on the last hour's labelled traffic, releasing a 20 % canary.

    Returns:
        Its JSON outcome, or None when it failed (its error output is shown).
    """
    params = [
        f"model_name={MODEL}",
        "window_hours=1",
        "quality_window_hours=1",
        "retrain_window_hours=1",
        f"holdout_hours={HOLDOUT_SECONDS / 3600:.5f}",
        "min_holdout_rows=30",
        "canary_percent=20",
    ]
    result = cli(
        "run", "monitoring", "--json", *as_options(params), *as_options(audit), capture=True
    )
    if result.returncode not in MONITORING_OUTCOME_CODES:
        print(result.stderr[-3000:], file=sys.stderr)
        return None
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


def show_outcome(outcome: dict[str, Any], work: Path) -> None:
    """Prints why the loop retrained, what it trained on, and old against new on the newest slice."""
    print(f"triggered by: {', '.join(outcome.get('triggered_by') or []) or 'nothing'}")
    drift = outcome["drift"]
    print(f"drift detected: {drift['detected']} ({drift['share']:.0%} of columns)")
    retraining = (outcome.get("trigger") or {}).get("retraining") or {}
    if retraining:
        print(f"retraining set: {retraining['reason']}")
    metrics = outcome.get("metrics") or {}
    if "candidate_accuracy" in metrics:
        print(
            f"on the newest labelled slice: new model accuracy {metrics['candidate_accuracy']:.4f}, "
            f"production (old) model {metrics['champion_accuracy']:.4f}"
        )
    print(f"outcome: {outcome['status']} {outcome.get('model_version') or ''}")
    if outcome["status"] != "released":
        print(f"reason: {outcome.get('reason')}")
    print(f"deployment: {outcome.get('deployment')}")
    report = work / "drift-report.html"
    report.write_bytes(ObjectStore.from_env().get_bytes(outcome["report_uri"]))
    print(f"Evidently drift report: {report} (also {outcome['report_uri']})")


def show_canary_traffic(
    base: str, canary: str, records: list[dict[str, Any]], timeout: float = 60
) -> None:
    """Waits for the server to load the canary, then shows how traffic splits."""
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


def show_next_steps() -> None:
    """Ends the story with what is still running and what to try next."""
    banner("Done")
    print("the embedded object store keeps running: `.venv/bin/mlops store status|stop`")
    print(
        "next: `.venv/bin/mlops serve` to keep serving, `.venv/bin/mlops promote breast-cancer` "
        "to promote the canary, `.venv/bin/mlops rollback breast-cancer` to drop it"
    )


# -- helpers ----------------------------------------------------------------------------------
def banner(text: str) -> None:
    """Prints a step heading."""
    print(f"\n=== {text} ===", flush=True)


def as_options(params: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["-p", "a=1", "-p", "b=2"]`` for ``mlops run``."""
    return [arg for param in params for arg in ("-p", param)]


def cli(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Runs ``mlops ARGS`` in a subprocess, echoing the command as a user would type it."""
    command = [sys.executable, "-m", "mlops.cli", *args]
    print("$ mlops " + " ".join(args), flush=True)
    return subprocess.run(command, text=True, capture_output=capture, check=False)


def http(method: str, url: str, payload: Any = None, headers: dict[str, str] | None = None) -> Any:
    """Sends a JSON request and returns the decoded JSON answer."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback URL
        return json.loads(response.read())


def wait_ready(base: str, timeout: float = 90) -> None:
    """Waits until the model server reports the model ready.

    Raises:
        SystemExit: It did not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http("GET", f"{base}/v2/models/{MODEL}/ready").get("ready"):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the model server did not become ready within {timeout:.0f}s")


def wait_for_logs(rows: int, since: datetime, timeout: float = 60) -> None:
    """Waits until the store holds ``rows`` inference-log rows written since ``since``.

    Raises:
        SystemExit: They did not arrive within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(read_inference_logs(ObjectStore.from_env(), MODEL, since=since)) >= rows:
            return
        time.sleep(1)
    raise SystemExit("inference logs did not reach the store in time")
