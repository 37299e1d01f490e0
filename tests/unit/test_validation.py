"""The holdout accuracy gate on a real model directory and real holdout files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops.core.data import fingerprint, read_table
from mlops.core.errors import DataError, UsageError
from mlops.model.packaging import (
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    REQUIREMENTS_FILE,
    read_metadata,
    write_model_dir,
)
from mlops.model.schema import FeatureSchema
from mlops.model.training import evaluate, split_dataset, train
from mlops.release.holdout import (
    MAX_HOLDOUT_OVERLAP,
    contained,
    overlap_share,
    validate_on_holdout,
)
from tests.training_helpers import MODEL_NAME, TARGET, demo_data


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    """A trained breast-cancer model directory plus its training split and the demo holdout."""
    root = tmp_path_factory.mktemp("validation")
    training_csv, holdout_csv = demo_data(root / "data")
    frame = read_table(str(training_csv))
    train_frame, test_frame = split_dataset(frame, TARGET, seed=42)
    model, schema = train(train_frame, TARGET, "logistic_regression")
    scores = evaluate(model, test_frame, TARGET, schema).metrics("test")
    model_dir = write_model_dir(
        root / "model",
        model,
        model_name=MODEL_NAME,
        version="v1",
        schema=schema,
        target_column=TARGET,
        estimator="logistic_regression",
        drop_columns=[],
        metrics=scores,
        fingerprints={"data": fingerprint(frame), "train": fingerprint(train_frame)},
        train_features=train_frame.drop(columns=[TARGET]),
        params={"seed": 42},
    )
    return {"dir": model_dir, "train": train_frame, "holdout": holdout_csv, "root": root}


def test_model_dir_contents(candidate):
    from mlops.core.sbom import SBOM_FILE

    files = {p.name for p in candidate["dir"].iterdir()}
    # Everything but the release evidence and the signature: those follow a passed decision.
    assert files == {MODEL_FILE, METADATA_FILE, REFERENCE_FILE, REQUIREMENTS_FILE, SBOM_FILE}
    assert json.loads((candidate["dir"] / SBOM_FILE).read_text())["bomFormat"] == "CycloneDX"
    metadata = read_metadata(candidate["dir"])
    assert metadata["target_column"] == TARGET and metadata["classes"] == ["benign", "malignant"]
    assert metadata["feature_names"] == [c for c in candidate["train"].columns if c != TARGET]
    assert json.loads((candidate["dir"] / METADATA_FILE).read_text()) == metadata
    assert "scikit-learn==" in (candidate["dir"] / REQUIREMENTS_FILE).read_text()


def test_passes_above_threshold(candidate):
    gate, evaluation = validate_on_holdout(
        candidate["dir"], candidate["train"], str(candidate["holdout"]), 0.8
    )
    assert gate.name == "holdout_accuracy" and gate.passed
    assert ">= min_accuracy 0.8000 on 143 rows" in gate.detail
    assert gate.metrics["holdout_accuracy"] == evaluation.accuracy > 0.9
    assert gate.metrics["holdout_overlap_share"] == 0.0
    assert {"holdout_f1_macro", "holdout_rows", "holdout_roc_auc"} <= set(gate.metrics)
    assert evaluation.roc_curve is not None


def test_fails_below_threshold(candidate):
    gate, evaluation = validate_on_holdout(
        candidate["dir"], candidate["train"], candidate["holdout"].as_uri(), 0.999
    )
    assert not gate.passed
    assert f"holdout accuracy {evaluation.accuracy:.4f} < min_accuracy 0.9990" in gate.detail


def test_thresholds_at_the_bounds(candidate):
    assert validate_on_holdout(candidate["dir"], candidate["train"], str(candidate["holdout"]), 0)[
        0
    ].passed
    assert not validate_on_holdout(
        candidate["dir"], candidate["train"], str(candidate["holdout"]), 1
    )[0].passed


def test_overlapping_holdout_is_not_independent(candidate):
    # A "holdout" made of training rows vouches for nothing, however accurate.
    reused = candidate["root"] / "reused.csv"
    candidate["train"].sample(100, random_state=0).to_csv(reused, index=False)
    gate, _ = validate_on_holdout(candidate["dir"], candidate["train"], str(reused), 0.0)
    assert not gate.passed
    assert "not independent" in gate.detail and "100%" in gate.detail
    assert gate.metrics["holdout_overlap_share"] == 1.0


def test_small_overlap_is_tolerated(candidate):
    holdout = pd.read_csv(candidate["holdout"])
    mixed = pd.concat([holdout, candidate["train"].iloc[:20]], ignore_index=True)
    path = candidate["root"] / "mixed.csv"
    mixed.to_csv(path, index=False)
    gate, _ = validate_on_holdout(candidate["dir"], candidate["train"], str(path), 0.5)
    share = gate.metrics["holdout_overlap_share"]
    assert 0 < share <= MAX_HOLDOUT_OVERLAP and gate.passed


def test_overlap_share():
    train_frame = pd.DataFrame({"a": [1, 2, 3], "y": ["x", "y", "x"]})
    holdout = pd.DataFrame({"a": [1, 2, 9, 9], "y": ["x", "x", "x", "y"]})
    assert overlap_share(holdout, train_frame, ["a", "y"]) == 0.25
    assert overlap_share(holdout.iloc[:0], train_frame, ["a", "y"]) == 0.0


@pytest.mark.parametrize("value", [1.5, -0.1, "high"])
def test_min_accuracy_out_of_range_is_a_usage_error(candidate, value):
    with pytest.raises(UsageError, match="min_accuracy"):
        validate_on_holdout(candidate["dir"], candidate["train"], str(candidate["holdout"]), value)


def test_holdout_without_target_names_it(candidate):
    path = candidate["root"] / "unlabelled.csv"
    pd.read_csv(candidate["holdout"]).drop(columns=[TARGET]).to_csv(path, index=False)
    with pytest.raises(DataError, match=f"target column '{TARGET}' not found in holdout") as info:
        validate_on_holdout(candidate["dir"], candidate["train"], str(path), 0.8)
    assert str(path) in str(info.value)


def test_holdout_missing_a_feature_names_it(candidate):
    path = candidate["root"] / "narrow.csv"
    pd.read_csv(candidate["holdout"]).drop(columns=["mean_radius"]).to_csv(path, index=False)
    with pytest.raises(DataError, match="mean_radius"):
        validate_on_holdout(candidate["dir"], candidate["train"], str(path), 0.8)


def test_unreadable_holdout_names_the_uri(candidate):
    missing = candidate["root"] / "absent.csv"
    with pytest.raises(DataError, match="absent.csv"):
        validate_on_holdout(candidate["dir"], candidate["train"], str(missing), 0.8)


def test_overlap_share_compares_typed_values_across_csv_and_parquet(tmp_path):
    # The same rows, once through Parquet (the training split's format: floats, text
    # categories) and once through CSV (ints, categories that look like numbers).
    rows = pd.DataFrame(
        {
            "count": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "x": [0.5, 0.0, float("nan"), 2.25, -1.5, 3.0, 0.125, 9.0],
            "grade": ["1", "2", "3", "1", "2", "3", "1", "2"],
            "y": ["yes", "no", "yes", "no", "yes", "no", "yes", "no"],
        }
    )
    rows.to_parquet(tmp_path / "train.parquet", index=False)
    train_frame = read_table(str(tmp_path / "train.parquet"))
    holdout = pd.concat(
        [
            rows.iloc[:3].assign(count=lambda f: f["count"].astype(int)),
            pd.DataFrame({"count": [100], "x": [0.5], "grade": ["1"], "y": ["yes"]}),
        ],
        ignore_index=True,
    )
    holdout.loc[1, "x"] = -0.0  # equal to the training row's 0.0
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    holdout = read_table(str(tmp_path / "holdout.csv"))
    assert holdout["count"].dtype == "int64" and holdout["grade"].dtype == "int64"
    assert train_frame["count"].dtype == "float64" and train_frame["grade"].dtype == object
    columns = ["count", "x", "grade", "y"]
    schema = FeatureSchema.from_frame(train_frame[columns[:3]])
    assert overlap_share(holdout, train_frame, columns, schema) == 0.75
    assert overlap_share(holdout, train_frame, columns) == 0.75  # kinds from the training split
    # Compared as text cell by cell, 1 and 1.0 (or -0.0 and 0.0) would not meet.
    as_text = pd.util.hash_pandas_object(holdout[columns].astype(str), index=False)
    seen = set(pd.util.hash_pandas_object(train_frame[columns].astype(str), index=False))
    assert not as_text.isin(seen).any()


def test_overlap_share_tells_rows_and_column_order_apart():
    train_frame = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0], "y": [0, 1]})
    swapped = pd.DataFrame({"a": [2.0, 1.0], "b": [1.0, 2.0], "y": [0, 1]})
    assert overlap_share(swapped, train_frame, ["a", "b", "y"]) == 0.0
    assert overlap_share(swapped, train_frame, ["a", "b"]) == 1.0
    # A target numeric in training and text in the holdout is compared as text.
    text_target = train_frame.assign(y=["0", "x"])
    assert overlap_share(text_target, train_frame, ["a", "b", "y"]) == 0.5


def test_holdout_gate_counts_parquet_training_rows_in_a_csv_holdout(candidate):
    reused = candidate["root"] / "reused-as-ints.csv"
    sample = candidate["train"].sample(60, random_state=1)
    pd.concat([pd.read_csv(candidate["holdout"]).iloc[:40], sample]).to_csv(reused, index=False)
    parquet = candidate["root"] / "train.parquet"
    candidate["train"].to_parquet(parquet, index=False)
    gate, _ = validate_on_holdout(candidate["dir"], pd.read_parquet(parquet), str(reused), 0.0)
    assert gate.metrics["holdout_overlap_share"] == 0.6 and not gate.passed


def test_contained_answers_as_numpy_isin():
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 500, 3000).astype(np.uint64)
    values = rng.integers(0, 1000, 2000).astype(np.uint64)
    values[:3] = [0, np.iinfo(np.uint64).max, pool.max()]  # both ends of the sorted pool
    assert (contained(values, pool) == np.isin(values, pool)).all()
    assert not contained(values, pool[:0]).any()
    assert len(contained(values[:0], pool)) == 0
