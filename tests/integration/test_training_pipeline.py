"""The whole training pipeline, end to end, on kfp.local against the real store.

Three runs, each on its own bucket of the session's SeaweedFS server:

* ``run_locally`` in-process (the CLI's code path, SubprocessRunner(use_venv=False)):
  a release whose published files are checked one by one;
* ``python -m mlops.cli run training --json``: a release (exit 0) and a gate
  rejection with ``min_accuracy=0.999`` (exit 3), each printing exactly one
  JSON object on stdout.

The two CLI runs are started first and run as subprocesses while the in-process
run proceeds, so the module takes about as long as its slowest run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from mlops.core.store import ObjectStore
from mlops.model.registry import COMPLETE_MARKER, fetch_model, list_versions, sha256_file
from tests.conftest import shared_path
from tests.training_helpers import (
    GATE_NAMES,
    MODEL_NAME,
    OUTCOME_KEYS,
    PUBLISHED_FILES,
    REPO_ROOT,
    TARGET,
    cli_command,
    cli_env,
    demo_data,
    keys_under,
    single_json,
    training_args,
    use_signing_keys,
)

pytestmark = pytest.mark.slow
RUN_TIMEOUT = 300


def fresh_store(settings) -> ObjectStore:
    store = ObjectStore(replace(settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    return store


@dataclass
class CliRun:
    """A ``mlops run training --json`` subprocess; stdout/stderr go to files (no pipe can fill up)."""

    process: subprocess.Popen
    home: Path
    store: ObjectStore
    stdout_file: Path
    stderr_file: Path

    def finish(self) -> tuple[int, str, str]:
        code = self.process.wait(timeout=RUN_TIMEOUT)
        return code, self.stdout_file.read_text(), self.stderr_file.read_text()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    training_csv, holdout_csv = demo_data(tmp_path_factory.mktemp("training-data"))
    return {"training": training_csv, "holdout": holdout_csv}


@pytest.fixture(scope="module")
def advisory_db() -> Path:
    return shared_path("advisory-db")


@pytest.fixture(scope="module")
def cli_runs(store_settings, data, advisory_db, tmp_path_factory):
    """Starts the released and the rejected CLI runs in the background."""
    runs: dict[str, CliRun] = {}
    # The released run uses every default (the documented example: the built-in
    # logistic_regression recipe); the rejected one only raises the holdout threshold.
    for name, extra in (
        ("released", {}),
        ("rejected", {"min_accuracy": "0.999"}),
    ):
        root = tmp_path_factory.mktemp(f"cli-{name}")
        store = fresh_store(store_settings)
        args = training_args(
            data["training"], data["holdout"], advisory_db_uri=advisory_db, **extra
        )
        out, err = root / "stdout.txt", root / "stderr.txt"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            process = subprocess.Popen(
                cli_command(*args),
                env=cli_env(root / "home", store),
                cwd=REPO_ROOT,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        runs[name] = CliRun(process, root / "home", store, out, err)
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def test_run_locally_publishes_a_complete_signed_model(
    cli_runs, store_settings, data, advisory_db, tmp_path, monkeypatch
):
    from mlops.core.data import fingerprint
    from mlops.runs.lifecycle import prepare_local_run
    from mlops.runs.local import run_locally
    from mlops.runs.params import parse_params
    from mlops.trust.signing import verify_model_dir
    from pipelines import PIPELINES

    store = fresh_store(store_settings)
    for key, value in store.settings.to_env().items():
        monkeypatch.setenv(key, value)
    _, public_key = use_signing_keys(monkeypatch, tmp_path / "keys")
    training = PIPELINES["training"]
    arguments = parse_params(
        training,
        [
            f"data_uri={data['training']}",
            f"holdout_uri={data['holdout']}",
            f"target_column={TARGET}",
            f"model_name={MODEL_NAME}",
            f"advisory_db_uri={advisory_db}",
            "estimator=random_forest",
        ],
    )
    arguments = prepare_local_run("training", arguments)
    # kfp.local writes its logs to ``sys.stdout``; run_locally captures fd 1. In the CLI
    # process they are the same stream; under pytest sys.stdout is a capture object, so
    # point it at fd 1 for the run, as in the CLI.
    saved, stream = sys.stdout, open(1, "w", buffering=1, closefd=False)
    sys.stdout = stream
    try:
        run = run_locally(training, arguments, tmp_path / "runs")
    finally:
        sys.stdout = saved
        stream.close()

    outcome = run.output
    assert isinstance(outcome, dict), outcome
    assert outcome["status"] == "released", outcome.get("reason")
    assert run.run_dir.is_dir() and run.run_dir.parent == tmp_path / "runs"
    log = re.sub(r"\x1b\[[0-9;]*m", "", run.log_file.read_text())
    assert "Task 'publish-model' finished with status SUCCESS" in log
    assert "Executing task 'record-rejection'" not in log
    assert "Executing task 'record-static-rejection'" not in log
    # Shift left: every static gate ran and was decided before the repository's code did.
    started = {m.group(1): m.start() for m in re.finditer(r"Executing task '([a-z-]+)'", log)}
    for task in ("check-code-quality", "audit-dependencies", "scan-repository", "decide-static"):
        assert started[task] < started["load-split"] < started["train-model"], task
    assert started["fetch-repository"] < started["check-code-quality"]
    version = outcome["model_version"]
    assert outcome["model_uri"] == store.uri(f"models/{MODEL_NAME}/{version}")

    prefix = f"models/{MODEL_NAME}/{version}/"
    assert {key[len(prefix) :] for key in keys_under(store, prefix)} == PUBLISHED_FILES
    assert list_versions(store, MODEL_NAME) == [version]
    assert keys_under(store, "rejections/") == []

    local = fetch_model(store, outcome["model_uri"], tmp_path / "fetched")
    manifest = store.get_json(prefix + COMPLETE_MARKER)
    assert manifest["version"] == version
    assert manifest["files"] == {
        name: sha256_file(local / name) for name in PUBLISHED_FILES - {COMPLETE_MARKER}
    }

    metadata = json.loads((local / "metadata.json").read_text())
    assert metadata["model_name"] == MODEL_NAME and metadata["version"] == version
    assert metadata["target_column"] == TARGET
    # The estimator shorthand selects the built-in recipe; what it built is recorded.
    assert metadata["estimator"] == "Pipeline[RandomForestClassifier]"
    assert metadata["recipe"]["entry_point"] == "train:build_model"
    assert metadata["recipe"]["checked_in_model"] is None
    assert metadata["repository"]["uri"] == "builtin:random_forest"
    assert metadata["repository"]["tree_digest"].startswith("sha256:")
    assert outcome["repository"] == metadata["repository"]
    assert metadata["classes"] == ["benign", "malignant"]
    training_frame = pd.read_csv(data["training"])
    features = [c for c in training_frame.columns if c != TARGET]
    assert metadata["feature_names"] == features
    assert [f["name"] for f in metadata["features"]] == features
    assert all(f["kind"] == "numeric" and f["min"] <= f["max"] for f in metadata["features"])
    assert metadata["metrics"]["test_accuracy"] == outcome["metrics"]["test_accuracy"] > 0.9
    assert set(metadata["data_fingerprints"]) == {"data", "train", "test"}
    assert metadata["data_fingerprints"]["data"] == fingerprint(training_frame)
    assert {"python", "scikit-learn", "skops", "numpy", "pandas"} <= set(
        metadata["library_versions"]
    )

    reference = pd.read_parquet(local / "reference.parquet")
    assert (
        list(reference.columns) == features
        and len(reference) == metadata["reference_sample"]["rows"]
    )
    requirements = (local / "requirements.txt").read_text().splitlines()
    assert requirements and all("==" in line for line in requirements)
    assert any(line.startswith("scikit-learn==") for line in requirements)
    verify_model_dir(local, public_key, "model.sig")  # raises when the signature does not match

    assert outcome["metrics"]["holdout_accuracy"] > 0.9
    assert set(outcome["gates"]) == GATE_NAMES and all(
        g["passed"] for g in outcome["gates"].values()
    )


def test_cli_release_prints_one_json_object(cli_runs):
    run = cli_runs["released"]
    code, stdout, stderr = run.finish()
    assert code == 0, stderr[-3000:]
    outcome = single_json(stdout)
    assert OUTCOME_KEYS <= set(outcome)
    assert outcome["status"] == "released" and outcome["model_name"] == MODEL_NAME
    assert outcome["reason"] == "all gates passed"
    assert set(outcome["gates"]) == GATE_NAMES
    repository = outcome["repository"]
    assert repository["uri"] == "builtin:logistic_regression"
    # Where each run value came from: the CLI's -p, else the recipe's mlops.yaml, else a default.
    assert repository["parameters"]["model_name"] == {"value": MODEL_NAME, "source": "parameter"}
    assert repository["parameters"]["min_accuracy"] == {"value": 0.8, "source": "default"}
    for name, gate in outcome["gates"].items():
        assert set(gate) == {"passed", "detail"} and gate["passed"] is True, (name, gate)
    for metric in ("test_accuracy", "holdout_accuracy", "test_f1_macro", "holdout_roc_auc"):
        assert 0.9 < outcome["metrics"][metric] <= 1.0, metric
    version = outcome["model_version"]
    assert outcome["model_uri"] == run.store.uri(f"models/{MODEL_NAME}/{version}")
    assert run.store.exists(f"models/{MODEL_NAME}/{version}/{COMPLETE_MARKER}")
    assert (
        Path(outcome["run_dir"]).is_dir() and Path(outcome["run_dir"]).parent == run.home / "runs"
    )
    assert (run.home / "keys" / "signing-key.pem").is_file(), "the CLI creates the signing keys"
    log = Path(outcome["log_file"]).read_text()
    assert "publish-model" in log and "Executing task" not in stdout, "task logs stay off stdout"
    # The run ends with a Markdown summary artifact the Kubeflow UI shows.
    summary = (Path(outcome["run_dir"]) / "publish-model" / "summary").read_text()
    assert summary.startswith(f"### Released {MODEL_NAME} {version}")
    assert "| holdout\\_accuracy | passed |" in summary
    assert f"{outcome['metrics']['holdout_accuracy']:.4f}" in summary
    evidence = (Path(outcome["run_dir"]) / "sign-model" / "evidence").read_text()
    assert evidence.startswith(f"### Release evidence: {MODEL_NAME} {version}")


def test_cli_gate_rejection_exits_3_and_publishes_nothing(cli_runs):
    run = cli_runs["rejected"]
    code, stdout, stderr = run.finish()
    assert code == 3, stderr[-3000:]
    outcome = single_json(stdout)
    assert OUTCOME_KEYS <= set(outcome)
    assert outcome["status"] == "rejected"
    assert outcome["model_version"] is None and outcome["model_uri"] is None
    assert set(outcome["gates"]) == GATE_NAMES
    assert outcome["gates"]["holdout_accuracy"]["passed"] is False
    assert "min_accuracy 0.9990" in outcome["gates"]["holdout_accuracy"]["detail"]
    assert outcome["reason"].startswith("holdout_accuracy: ")
    assert all(g["passed"] for name, g in outcome["gates"].items() if name != "holdout_accuracy")
    assert keys_under(run.store, "models/") == [], "a rejected candidate is never published"
    candidate = outcome["candidate_version"]
    assert keys_under(run.store, "rejections/") == [f"rejections/{MODEL_NAME}/{candidate}.json"]
    record = run.store.get_json(f"rejections/{MODEL_NAME}/{candidate}.json")
    assert record["status"] == "rejected" and record["reason"] == outcome["reason"]
    summary = (Path(outcome["run_dir"]) / "record-rejection" / "summary").read_text()
    assert summary.startswith(f"### Rejected {MODEL_NAME} candidate {candidate}")
    assert "| holdout\\_accuracy | FAILED |" in summary
