"""The monitoring loop closed with ground truth: accuracy falls, retraining on the labelled window wins.

A model learns ``label = x1 > 0``; then the world changes (``label = x2 > 0``: the
relationship between features and label, not the features' distribution). The
production traffic it answered is logged in the model server's inference-log format
(request ids, version, role, timestamps) and its true labels come back as feedback.
The real monitoring pipeline (CLI, kfp.local, SeaweedFS) sees no drift but live
accuracy below the threshold, retrains on the labelled rows of the window only,
holds out the newest slice, and the retrained model beats production there.
"""

from __future__ import annotations

import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.model.registry import fetch_model
from tests.training_helpers import cli_command, cli_env, make_keypair, single_json

pytestmark = pytest.mark.slow
FEATURES = [f"x{i}" for i in range(1, 6)]
MODEL = "concept"


def world(rows: int, seed: int, concept: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    frame["label"] = (frame[concept] > 0).astype(int)
    return frame


def run(env: dict, *args: str) -> tuple[int, dict, str]:
    done = subprocess.run(
        cli_command(*args), env=env, capture_output=True, text=True, timeout=600, check=False
    )
    return done.returncode, single_json(done.stdout), done.stderr


def write_traffic(
    store, model, version: str, frame: pd.DataFrame, stamps, prefix: str
) -> pd.DataFrame:
    """Logs ``frame`` as answered by ``model`` at ``stamps``, one object per hour; labels as feedback."""
    from mlops.model.schema import FeatureSchema, coerce
    from mlops.monitoring.feedback import write_feedback
    from mlops.monitoring.inference_log import log_key

    schema = FeatureSchema.from_frame(frame[FEATURES])
    logged = frame[FEATURES].copy()
    logged["prediction"] = model.predict(coerce(frame, schema))
    logged["model_version"] = version
    logged["timestamp"] = pd.to_datetime(stamps, utc=True)
    logged["request_id"] = [f"{prefix}-{i}" for i in range(len(frame))]
    logged["role"] = "stable"
    for hour, part in logged.groupby(logged["timestamp"].dt.floor("h")):
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        key = log_key(MODEL, hour.date(), f"{prefix}-{hour:%Y%m%dT%H%M%S}")
        store.put_bytes(key, buffer.getvalue())
    write_feedback(
        store, MODEL, pd.DataFrame({"request_id": logged["request_id"], "label": frame["label"]})
    )
    return logged.assign(label=frame["label"].to_numpy())


def test_falling_accuracy_retrains_on_the_labelled_window_and_the_new_model_wins(tmp_path, store):
    from mlops.model.modelio import load_model

    training = world(1500, seed=0, concept="x1")
    holdout = world(400, seed=1, concept="x1")
    training.to_csv(tmp_path / "training.csv", index=False)
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    private, public = make_keypair(tmp_path / "keys")
    env = cli_env(
        tmp_path / "home",
        store,
        MLOPS_SIGNING_KEY=str(private),
        MLOPS_SIGNING_PUBLIC_KEY=str(public),
    )
    code, released, stderr = run(
        env, "run", "training", "--json",
        "-p", f"data_uri={tmp_path / 'training.csv'}", "-p", f"holdout_uri={tmp_path / 'holdout.csv'}",
        "-p", "target_column=label", "-p", f"model_name={MODEL}", "-p", "deploy=full",
        "-p", "allow_unknown_audit=true", "-p", "min_accuracy=0.8",
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    old_version = released["model_version"]
    old_model = load_model(
        fetch_model(store, released["model_uri"], tmp_path / "v1") / "model.skops"
    )

    now = datetime.now(UTC)
    # Before the window: traffic of the old world, which retraining must not see.
    stale = world(200, seed=2, concept="x1")
    stale_rows = write_traffic(
        store, old_model, old_version, stale,
        [now - timedelta(hours=30, minutes=i % 300) for i in range(len(stale))], "stale",
    )  # fmt: skip
    # The last 20 hours: the new world, answered by the old model.
    current = world(800, seed=3, concept="x2")
    stamps = [now - timedelta(hours=20) + timedelta(seconds=90 * i) for i in range(len(current))]
    current_rows = write_traffic(store, old_model, old_version, current, stamps, "now")

    code, outcome, stderr = run(
        env, "run", "monitoring", "--json", "-p", f"model_name={MODEL}",
        "-p", "window_hours=20", "-p", "quality_window_hours=20",
        "-p", "retrain_window_hours=24", "-p", "holdout_hours=5",
        "-p", "allow_unknown_audit=true", "-p", "canary_percent=20",
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    assert outcome["triggered_by"] == ["accuracy_below_threshold"], outcome
    stable = next(g for g in outcome["quality"]["groups"] if g["role"] == "stable")
    scored = current_rows[current_rows["timestamp"] >= pd.Timestamp(outcome["quality"]["since"])]
    expected_accuracy = float((scored["prediction"] == scored["label"]).mean())
    assert stable["labelled_rows"] == len(scored)
    assert stable["accuracy"] == pytest.approx(expected_accuracy)
    assert stable["accuracy"] < 0.8
    assert outcome["status"] == "released", outcome.get("reason")
    assert outcome["deployment"]["canary"] == outcome["model_version"] != old_version

    # The retraining set: only the window's labelled rows, the holdout strictly later.
    retraining = outcome["trigger"]["retraining"]
    cut = pd.Timestamp(retraining["windows"]["holdout_since"])
    train = _read(store, retraining["train_uri"])
    held = _read(store, retraining["holdout_uri"])
    window = current_rows[
        current_rows["timestamp"] >= pd.Timestamp(retraining["windows"]["retrain_since"])
    ]
    assert len(train) == int((window["timestamp"] < cut).sum())
    assert len(held) == int((window["timestamp"] >= cut).sum())
    assert not set(train["x1"]) & set(stale_rows["x1"]), "stale rows leaked into retraining"
    by_x1 = current_rows.set_index("x1")["timestamp"]
    assert by_x1[held["x1"]].min() > by_x1[train["x1"]].max()

    # The new model answers differently on the newest slice and is measurably better there.
    new_model = load_model(
        fetch_model(store, outcome["model_uri"], tmp_path / "v2") / "model.skops"
    )
    features = held[FEATURES].astype("float64")
    new_predictions, old_predictions = new_model.predict(features), old_model.predict(features)
    assert (new_predictions != old_predictions).any()
    new_accuracy = float((new_predictions == held["label"]).mean())
    old_accuracy = float((old_predictions == held["label"]).mean())
    assert new_accuracy > old_accuracy + 0.2, (new_accuracy, old_accuracy)
    gate = outcome["gates"]["no_regression"]
    assert gate["passed"] and f"{old_version}" in gate["detail"]
    assert outcome["metrics"]["candidate_accuracy"] == pytest.approx(new_accuracy)
    assert outcome["metrics"]["champion_accuracy"] == pytest.approx(old_accuracy)
    evidence = json.loads(
        Path(
            fetch_model(store, outcome["model_uri"], tmp_path / "v2-again") / "release.json"
        ).read_text()
    )
    assert evidence["trigger"]["reasons"] == ["accuracy_below_threshold"]
    assert evidence["trigger"]["windows"]["holdout_since"] == retraining["windows"]["holdout_since"]


def _read(store, uri: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(store.get_bytes(uri.split("/", 3)[3])))
