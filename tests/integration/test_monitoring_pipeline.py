"""The monitoring loop end to end on real data: kfp.local, the real store, the CLI.

Scenarios: no drift -> nothing retrained; drift -> retrained and released as a
canary; drift but the retrained model fails the holdout gate -> rejected and
production unchanged; bad input to ``mlops drift`` -> exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlops.demo.data import TARGET, large_tumour_traffic, write_breast_cancer
from mlops.deployment.state import read_state
from mlops.model.registry import list_versions

pytestmark = pytest.mark.slow
MODEL = "bc-monitor"


def mlops(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlops.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory, store_settings):
    """A released, deployed model in its own bucket, and the scenario data."""
    from dataclasses import replace

    from mlops.core.store import ObjectStore

    root = tmp_path_factory.mktemp("monitoring")
    store = ObjectStore(replace(store_settings, bucket="monitoring-scenarios"))
    store.ensure_bucket()
    env = {**os.environ, **store.settings.to_env(), "MLOPS_HOME": str(root / "home")}
    env.pop("MLOPS_PUSHGATEWAY", None)
    training_csv, holdout_csv = write_breast_cancer(root / "data")
    training = pd.read_csv(training_csv)
    steady = root / "data" / "steady.csv"
    pd.read_csv(holdout_csv).drop(columns=[TARGET]).to_csv(steady, index=False)
    drifted = root / "data" / "drifted.csv"
    large_tumour_traffic(training).to_csv(drifted, index=False)
    released = mlops(
        env,
        "run",
        "training",
        "--json",
        "-p",
        f"data_uri={training_csv}",
        "-p",
        f"holdout_uri={holdout_csv}",
        "-p",
        f"target_column={TARGET}",
        "-p",
        f"model_name={MODEL}",
        "-p",
        "allow_unknown_audit=true",
        "-p",
        "deploy=full",
    )
    assert released.returncode == 0, released.stdout + released.stderr[-3000:]
    return {
        "env": env,
        "store": store,
        "training": training_csv,
        "holdout": holdout_csv,
        "steady": steady,
        "drifted": drifted,
        "root": root,
        "first_version": json.loads(released.stdout)["model_version"],
    }


def monitoring(world, current: Path, *extra: str) -> tuple[int, dict]:
    result = mlops(
        world["env"],
        "run",
        "monitoring",
        "--json",
        "-p",
        f"model_name={MODEL}",
        "-p",
        f"current_uri={current}",
        "-p",
        f"retrain_data_uri={world['training']}",
        "-p",
        f"holdout_uri={world['holdout']}",
        "-p",
        "allow_unknown_audit=true",
        "-p",
        "canary_percent=20",
        # No feedback flows in these tests: the base table alone is the retraining set.
        "-p",
        "min_train_rows=0",
        *extra,
    )
    assert result.stdout.count("\n") == 1, result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout)


def test_no_drift_means_no_retraining(world):
    before = list_versions(world["store"], MODEL)
    code, outcome = monitoring(world, world["steady"])
    assert code == 0 and outcome["status"] == "no_drift"
    assert outcome["drift"]["detected"] is False and outcome["drift"]["share"] < 0.5
    assert world["store"].exists(outcome["report_uri"])
    assert list_versions(world["store"], MODEL) == before


def test_drift_but_failed_holdout_gate_is_rejected_and_production_unchanged(world):
    state_before = read_state(world["store"], MODEL).to_dict()
    versions_before = list_versions(world["store"], MODEL)
    code, outcome = monitoring(world, world["drifted"], "-p", "min_accuracy=0.999")
    assert code == 3 and outcome["status"] == "rejected"
    assert outcome["drift"]["detected"] is True
    assert outcome["gates"]["holdout_accuracy"]["passed"] is False
    assert "min_accuracy" in outcome["reason"]
    state_after = read_state(world["store"], MODEL).to_dict()
    state_before.pop("updated_at"), state_after.pop("updated_at")
    assert state_after == state_before
    assert list_versions(world["store"], MODEL) == versions_before


def test_drift_retrains_and_releases_a_canary(world):
    code, outcome = monitoring(world, world["drifted"])
    assert code == 0 and outcome["status"] == "released", outcome.get("reason")
    drifted = [name for name, column in outcome["drift"]["columns"].items() if column["drifted"]]
    assert outcome["drift"]["detected"] is True and "mean_radius" in drifted
    assert outcome["trigger"]["model_version"] == world["first_version"]
    state = read_state(world["store"], MODEL)
    assert state.stable.version == world["first_version"]
    assert state.canary.version == outcome["model_version"] != world["first_version"]
    assert state.canary_percent == 20
    # Retrained with the deployed model's recipe (the built-in one it named), through its
    # entry point, and the release records which.
    metadata = json.loads(
        world["store"].get_bytes(f"models/{MODEL}/{outcome['model_version']}/metadata.json")
    )
    assert metadata["repository"]["uri"] == "builtin:logistic_regression"
    assert metadata["recipe"]["entry_point"] == "train:build_model"
    assert metadata["recipe"]["checked_in_model"] is None
    assert outcome["repository"]["uri"] == "builtin:logistic_regression"
    html = world["store"].get_bytes(outcome["report_uri"]).decode()
    assert "<html" in html.lower()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--reference", "/nonexistent/ref.csv", "--current", "/nonexistent/cur.csv"],
            "no such file",
        ),
    ],
)
def test_drift_cli_missing_file(world, args, message):
    result = mlops(world["env"], "drift", *args)
    assert result.returncode == 2 and message in result.stderr


def test_drift_cli_no_common_columns(world, tmp_path):
    other = tmp_path / "other.csv"
    pd.DataFrame({"unrelated": range(100)}).to_csv(other, index=False)
    result = mlops(world["env"], "drift", "--model", MODEL, "--current", str(other))
    assert result.returncode == 2
    assert "column" in result.stderr.lower()


def test_drift_cli_empty_window(world):
    result = mlops(world["env"], "drift", "--model", MODEL, "--window-hours", "1")
    assert result.returncode == 2
    assert "no production data" in result.stderr


def test_drift_cli_json(world, tmp_path):
    report = tmp_path / "report.html"
    result = mlops(
        world["env"],
        "drift",
        "--reference",
        str(world["training"]),
        "--current",
        str(world["drifted"]),
        "--report",
        str(report),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["drift_detected"] is True
    assert payload["columns"]["mean_radius"]["drifted"] is True
    assert TARGET not in payload["columns"]  # production data has no target: ignored
    assert report.stat().st_size > 10_000
