"""Retraining on drift uses the deployed model's repository at its recorded commit, not the branch.

A model is released from a real git repository (``git+file://...@main``), which
records the commit ``main`` pointed at. Then the data scientist commits a change
to ``main``: other params, and a ``build_model`` that writes a marker file. The
monitoring pipeline, seeing drift, retrains: the retrained model must come from
the first commit (its ``metadata.json`` names it, its params are the first
commit's) and the new commit's code must never have run (no marker file).
Everything is real: git, the CLI in a subprocess, kfp.local, the store.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pandas as pd
import pytest

from mlops.core.store import ObjectStore
from mlops.demo.data import large_tumour_traffic
from mlops.deployment.state import read_state
from tests.training_helpers import (
    TARGET,
    cli_env,
    commit_files,
    demo_data,
    git_repository,
    git_uri,
    run_cli,
    single_json,
)

pytestmark = pytest.mark.slow
MODEL = "bc-retrain-commit"

TRAIN_PY = '''"""Training code of the model repository."""

from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build_model(params):
    """A scaled logistic regression; leaves a mark when params name a marker file."""
    if params.get("marker"):
        Path(params["marker"]).write_text("the second commit ran")
    model = LogisticRegression(C=params["C"], max_iter=params["max_iter"])
    return Pipeline([("scale", StandardScaler()), ("model", model)])
'''


def mlops_yaml(**params: object) -> str:
    lines = [f"name: {MODEL}", f"target: {TARGET}", "entry_point: train:build_model", "params:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def released(tmp_path_factory, store_settings):
    """The first commit released and deployed; then a second commit on main."""
    root = tmp_path_factory.mktemp("retrain-commit")
    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    env = cli_env(root / "home", store)
    training_csv, holdout_csv = demo_data(root / "data")
    drifted = root / "data" / "drifted.csv"
    large_tumour_traffic(pd.read_csv(training_csv)).to_csv(drifted, index=False)
    marker = root / "marker.txt"
    repo, first = git_repository(
        root / "model-repo.git",
        {"mlops.yaml": mlops_yaml(C=1.0, max_iter=2000), "train.py": TRAIN_PY},
    )
    tables = ["-p", f"data_uri={training_csv}", "-p", f"holdout_uri={holdout_csv}"]
    release = run_cli(
        ["run", "training", "--json", *tables, "-p", f"recipe_uri={git_uri(repo, 'main')}"]
        + ["-p", "allow_unknown_audit=true", "-p", "deploy=full"],
        env,
        timeout=600,
    )
    assert release.returncode == 0, release.stdout + release.stderr[-3000:]
    outcome = single_json(release.stdout)
    second = commit_files(
        repo,
        {"mlops.yaml": mlops_yaml(C=0.01, max_iter=3000, marker=str(marker))},
        "tune C, and leave a mark",
    )
    assert second != first
    return {
        "env": env,
        "store": store,
        "repo": repo,
        "first": first,
        "second": second,
        "marker": marker,
        "outcome": outcome,
        "tables": (training_csv, holdout_csv),
        "drifted": drifted,
    }


def model_metadata(store: ObjectStore, version: str) -> dict:
    return json.loads(store.get_bytes(f"models/{MODEL}/{version}/metadata.json"))


def test_the_release_records_the_commit_main_pointed_at(released):
    outcome = released["outcome"]
    assert outcome["status"] == "released" and outcome["model_name"] == MODEL
    repository = model_metadata(released["store"], outcome["model_version"])["repository"]
    assert repository["commit"] == released["first"] == outcome["repository"]["commit"]
    # The CLI pinned @main to its commit before the run: every step saw that commit.
    assert repository["ref"] == released["first"]
    assert repository["uri"] == f"git+{released['repo'].resolve().as_uri()}@{released['first']}"


def test_retraining_on_drift_uses_the_recorded_commit(released):
    store = released["store"]
    first_version = released["outcome"]["model_version"]
    training_csv, holdout_csv = released["tables"]
    result = run_cli(
        ["run", "monitoring", "--json", "-p", f"model_name={MODEL}"]
        + ["-p", f"current_uri={released['drifted']}", "-p", f"retrain_data_uri={training_csv}"]
        + ["-p", f"holdout_uri={holdout_csv}", "-p", "allow_unknown_audit=true"]
        # No feedback flows here: the base table alone is the retraining set.
        + ["-p", "min_train_rows=0"],
        released["env"],
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    outcome = single_json(result.stdout)
    assert outcome["drift"]["detected"] is True
    assert outcome["status"] == "released", outcome.get("reason")
    assert outcome["trigger"]["model_version"] == first_version
    retrained = model_metadata(store, outcome["model_version"])
    assert outcome["model_version"] != first_version
    # The first commit, named as it was recorded: not what main points at now.
    assert retrained["repository"]["commit"] == released["first"] != released["second"]
    assert retrained["repository"]["uri"].endswith(f"@{released['first']}")
    assert retrained["recipe"]["entry_point"] == "train:build_model"
    assert retrained["recipe"]["params"] == {"seed": 42, "C": 1.0, "max_iter": 2000}
    assert retrained["recipe"]["checked_in_model"] is None
    assert not released["marker"].exists(), "the second commit's code ran"
    state = read_state(store, MODEL)
    assert state.stable.version == first_version
    assert state.canary.version == outcome["model_version"]
