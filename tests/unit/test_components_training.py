"""The training components through ``.python_func`` with real artifacts on disk.

A component with several outputs returns a plain tuple; :func:`run` names its
items the way KFP's executor does, position by position in the order of the
``NamedTuple`` return annotation. Artifacts are ``kfp.dsl`` objects whose ``uri`` is a tmp path (kfp maps a
local ``uri`` to the same ``.path``); the store is the real SeaweedFS server
(``store_env``); signing uses a key pair generated for the test.
"""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kfp.dsl import ClassificationMetrics, Dataset, Markdown, Metrics, Model

from components.audit_dependencies import audit_dependencies
from components.check_code_quality import check_code_quality
from components.decide_release import decide_release
from components.load_split import load_split
from components.publish_model import publish_model
from components.record_rejection import record_rejection
from components.scan_model import scan_model
from components.sign_model import sign_model
from components.train_model import train_model
from components.validate_holdout import validate_holdout
from mlops.core.data import fingerprint, read_table
from mlops.core.errors import DataError, UsageError, VerificationError
from mlops.model.candidate import train_candidate
from mlops.model.registry import COMPLETE_MARKER, list_versions
from mlops.release.decision import GATE_ORDER, GateResult
from tests.conftest import shared_path
from tests.training_helpers import (
    MODEL_NAME,
    PUBLISHED_FILES,
    TARGET,
    artifact,
    demo_data,
    keys_under,
    use_signing_keys,
)


def run(component, **arguments) -> Any:
    """Calls a multi-output component's function; its outputs by name, as KFP maps them."""
    outputs = inspect.signature(component.python_func).return_annotation
    result = component.python_func(**arguments)
    assert type(result) is tuple and len(result) == len(outputs._fields), result
    return outputs._make(result)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("components")


@pytest.fixture(scope="module")
def data(work):
    training_csv, holdout_csv = demo_data(work / "data")
    return {"training": training_csv, "holdout": holdout_csv}


@pytest.fixture(scope="module")
def split(work, data):
    train_data = artifact(Dataset, work / "split" / "train_data")
    test_data = artifact(Dataset, work / "split" / "test_data")
    outputs = run(
        load_split,
        data_uri=str(data["training"]),
        target_column=TARGET,
        train_data=train_data,
        test_data=test_data,
        test_size=0.2,
        seed=42,
    )
    return {"train": train_data, "test": test_data, "outputs": outputs}


@pytest.fixture(scope="module")
def trained(work, split):
    model = artifact(Model, work / "train" / "model")
    metrics = artifact(Metrics, work / "train" / "metrics")
    accuracy = train_model.python_func(
        train_data=split["train"],
        test_data=split["test"],
        target_column=TARGET,
        model_name=MODEL_NAME,
        model=model,
        metrics=metrics,
        estimator="logistic_regression",
        drop_columns="",
        data_fingerprint=split["outputs"].data_fingerprint,
        seed=42,
    )
    return {"model": model, "metrics": metrics, "accuracy": accuracy}


def holdout_gate(work, split, trained, data, min_accuracy: float, name: str):
    metrics = artifact(Metrics, work / name / "metrics")
    classification = artifact(ClassificationMetrics, work / name / "classification")
    outputs = run(
        validate_holdout,
        model=trained["model"],
        train_data=split["train"],
        holdout_uri=str(data["holdout"]),
        metrics=metrics,
        classification=classification,
        min_accuracy=min_accuracy,
    )
    return outputs, metrics, classification


def gate_json(name: str, passed: bool = True) -> str:
    return GateResult(name, passed, f"{name} {'ok' if passed else 'failed'}").to_json()


# -- load_split ---------------------------------------------------------------------------------
def test_load_split_writes_parquet_splits(split, data):
    frame = read_table(str(data["training"]))
    outputs = split["outputs"]
    assert outputs.rows == len(frame) == 426
    assert outputs.data_fingerprint == fingerprint(frame)
    train_frame = pd.read_parquet(split["train"].path)
    test_frame = pd.read_parquet(split["test"].path)
    assert len(train_frame) + len(test_frame) == len(frame)
    assert split["train"].metadata == {"rows": len(train_frame), "format": "parquet"}
    assert split["test"].metadata["rows"] == len(test_frame) == 86
    assert list(train_frame.columns) == list(frame.columns)


def test_load_split_drops_columns_and_reports_bad_input(work, data):
    train_data = artifact(Dataset, work / "split-drop" / "train")
    test_data = artifact(Dataset, work / "split-drop" / "test")
    run(
        load_split,
        data_uri=data["training"].as_uri(),
        target_column=TARGET,
        train_data=train_data,
        test_data=test_data,
        drop_columns="mean_radius,worst_area",
    )
    assert "mean_radius" not in pd.read_parquet(train_data.path).columns
    with pytest.raises(DataError, match="'label' not found"):
        run(
            load_split,
            data_uri=str(data["training"]),
            target_column="label",
            train_data=train_data,
            test_data=test_data,
        )
    with pytest.raises(UsageError, match="test_size"):
        run(
            load_split,
            data_uri=str(data["training"]),
            target_column=TARGET,
            train_data=train_data,
            test_data=test_data,
            test_size=1.0,
        )


def test_load_split_refuses_a_stray_word_and_a_huge_cell(work, data):
    frame = read_table(str(data["training"])).astype({"mean_radius": object})
    frame.loc[11, "mean_radius"] = "abc"
    stray_csv = work / "stray.csv"
    frame.to_csv(stray_csv, index=False)
    outputs = dict(
        target_column=TARGET,
        train_data=artifact(Dataset, work / "split-bad" / "train"),
        test_data=artifact(Dataset, work / "split-bad" / "test"),
    )
    with pytest.raises(DataError, match="'mean_radius' .* looks numeric .* 1 value.*'abc'"):
        run(load_split, data_uri=str(stray_csv), **outputs)
    frame.loc[11, "mean_radius"] = "1" * 200_000
    huge_csv = work / "huge.csv"
    frame.to_csv(huge_csv, index=False)
    with pytest.raises(DataError, match="'mean_radius' .* 200,000 characters .* limit is 65,536"):
        run(load_split, data_uri=str(huge_csv), **outputs)


def test_declared_categorical_column_is_split_trained_and_recorded(work, data):
    frame = read_table(str(data["training"]))
    grades = [str(i % 3 + 1) for i in range(len(frame))]
    grades[5] = "x"
    graded_csv = work / "graded.csv"
    frame.assign(grade=grades).to_csv(graded_csv, index=False)
    train_data = artifact(Dataset, work / "split-graded" / "train")
    test_data = artifact(Dataset, work / "split-graded" / "test")
    split_args = dict(
        data_uri=str(graded_csv), target_column=TARGET, train_data=train_data, test_data=test_data
    )
    with pytest.raises(DataError, match="categorical_columns=grade"):
        run(load_split, **split_args)
    outputs = run(load_split, categorical_columns="grade", **split_args)
    model = artifact(Model, work / "train-graded" / "model")
    train_model.python_func(
        train_data=train_data,
        test_data=test_data,
        target_column=TARGET,
        model_name=MODEL_NAME,
        model=model,
        metrics=artifact(Metrics, work / "train-graded" / "metrics"),
        categorical_columns="grade",
        data_fingerprint=outputs.data_fingerprint,
    )
    metadata = json.loads(open(f"{model.path}/metadata.json").read())
    assert metadata["params"]["categorical_columns"] == ["grade"]
    kinds = {f["name"]: f["kind"] for f in metadata["features"]}
    assert kinds["grade"] == "categorical" and kinds["mean_radius"] == "numeric"


# -- train_model --------------------------------------------------------------------------------
def test_train_model_writes_the_model_directory(trained, split):
    model_dir = trained["model"].path
    names = {p.name for p in Path(model_dir).iterdir()}
    assert names == {"model.skops", "metadata.json", "reference.parquet", "requirements.txt"}
    metadata = json.loads(open(f"{model_dir}/metadata.json").read())
    assert metadata["model_name"] == MODEL_NAME and metadata["estimator"] == "logistic_regression"
    assert metadata["version"] == trained["model"].metadata["version"]
    assert metadata["data_fingerprints"]["data"] == split["outputs"].data_fingerprint
    assert metadata["data_fingerprints"]["train"] == fingerprint(
        pd.read_parquet(split["train"].path)
    )
    assert metadata["classes"] == ["benign", "malignant"]
    assert trained["model"].metadata["framework"] == "scikit-learn"
    assert trained["accuracy"] == trained["metrics"].metadata["test_accuracy"] > 0.9
    assert set(trained["metrics"].metadata) == {
        "test_accuracy",
        "test_f1_macro",
        "test_rows",
        "test_roc_auc",
    }
    reference = pd.read_parquet(f"{model_dir}/reference.parquet")
    assert TARGET not in reference.columns and len(reference) == len(
        pd.read_parquet(split["train"].path)
    )


def test_train_model_rejects_bad_name_and_estimator(work, split):
    model = artifact(Model, work / "train-bad" / "model")
    metrics = artifact(Metrics, work / "train-bad" / "metrics")
    common = dict(
        train_data=split["train"],
        test_data=split["test"],
        target_column=TARGET,
        model=model,
        metrics=metrics,
    )
    with pytest.raises(UsageError, match="model_name 'Bad_Name' is invalid"):
        train_model.python_func(model_name="Bad_Name", **common)
    with pytest.raises(UsageError, match="estimator 'svm' is unknown"):
        train_model.python_func(model_name=MODEL_NAME, estimator="svm", **common)


def test_train_candidate_checks_name_and_estimator_before_reading_data(tmp_path):
    missing = tmp_path / "no-such-split.parquet"
    with pytest.raises(UsageError, match="model_name 'Bad_Name' is invalid"):
        train_candidate(
            missing, missing, tmp_path / "model", target_column=TARGET, model_name="Bad_Name"
        )
    with pytest.raises(UsageError, match="estimator 'svm' is unknown"):
        train_candidate(
            missing,
            missing,
            tmp_path / "model",
            target_column=TARGET,
            model_name=MODEL_NAME,
            estimator="svm",
        )
    assert not (tmp_path / "model").exists()


# -- validate_holdout ---------------------------------------------------------------------------
def test_validate_holdout_passes_and_logs_classification(work, split, trained, data):
    outputs, metrics, classification = holdout_gate(work, split, trained, data, 0.8, "holdout-pass")
    assert outputs.passed is True and outputs.accuracy > 0.9
    gate = GateResult.from_json(outputs.gate)
    assert gate.name == "holdout_accuracy" and gate.passed
    assert metrics.metadata["holdout_accuracy"] == outputs.accuracy
    assert metrics.metadata["holdout_overlap_share"] == 0.0
    matrix = classification.metadata["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == ["benign", "malignant"]
    assert sum(sum(row["row"]) for row in matrix["rows"]) == 143
    assert len(classification.metadata["confidenceMetrics"]) > 2


def test_validate_holdout_fails_below_threshold(work, split, trained, data):
    outputs, _, _ = holdout_gate(work, split, trained, data, 0.999, "holdout-fail")
    assert outputs.passed is False
    assert "< min_accuracy 0.9990" in GateResult.from_json(outputs.gate).detail


# -- scan, sign, audit, quality, decide, publish -------------------------------------------------
def test_release_chain_publishes_a_signed_model(work, split, trained, data, store_env, monkeypatch):
    advisory_db = shared_path("advisory-db")
    use_signing_keys(monkeypatch, work / "keys")
    holdout, _, _ = holdout_gate(work, split, trained, data, 0.8, "chain-holdout")

    scan_report = artifact(Markdown, work / "chain" / "scan.md")
    scan = run(scan_model, model=trained["model"], report=scan_report)
    assert scan.passed is True and "PASSED" in open(scan_report.path).read()

    audit_report = artifact(Markdown, work / "chain" / "audit.md")
    audit = run(
        audit_dependencies,
        model=trained["model"],
        report=audit_report,
        advisory_db_uri=str(advisory_db),
    )
    assert audit.passed is True, GateResult.from_json(audit.gate).detail
    assert "Dependency audit: PASSED (clean)" in open(audit_report.path).read()

    quality_report = artifact(Markdown, work / "chain" / "quality.md")
    quality = run(check_code_quality, report=quality_report, paths="components", fail_on="medium")
    assert quality.passed is True, GateResult.from_json(quality.gate).detail

    signed = artifact(Model, work / "chain" / "signed_model")
    signed.metadata.update(trained["model"].metadata)
    sign = run(sign_model, model=trained["model"], signed_model=signed)
    assert sign.passed is True and signed.metadata["signed"] is True
    assert (work / "chain" / "signed_model" / "model.sig").is_file()
    assert not (work / "train" / "model" / "model.sig").exists(), "the input model stays unsigned"

    decision = run(
        decide_release,
        holdout_gate=holdout.gate,
        audit_gate=audit.gate,
        scan_gate=scan.gate,
        quality_gate=quality.gate,
        signature_gate=sign.gate,
    )
    assert decision.passed is True, decision.gates
    gates = json.loads(decision.gates)
    assert set(gates["gates"]) == set(GATE_ORDER) and gates["reason"] == "all gates passed"

    summary = artifact(Markdown, work / "chain" / "summary.md")
    published = run(publish_model, signed_model=signed, gates=decision.gates, summary=summary)
    outcome = json.loads(published.outcome)
    version = trained["model"].metadata["version"]
    assert (
        outcome["status"] == "released"
        and outcome["model_version"] == version == published.model_version
    )
    assert published.model_uri == f"s3://{store_env.bucket}/models/{MODEL_NAME}/{version}"
    assert outcome["metrics"]["holdout_accuracy"] == holdout.accuracy
    assert outcome["metrics"]["test_accuracy"] == trained["accuracy"]
    assert f"### Released {MODEL_NAME} {version}" in open(summary.path).read()
    prefix = f"models/{MODEL_NAME}/{version}/"
    assert {key[len(prefix) :] for key in keys_under(store_env, prefix)} == PUBLISHED_FILES
    assert list_versions(store_env, MODEL_NAME) == [version]
    assert keys_under(store_env, "rejections/") == []


def test_publish_refuses_a_tampered_model(work, trained, store_env, monkeypatch):
    use_signing_keys(monkeypatch, work / "keys")
    signed = artifact(Model, work / "tamper" / "signed_model")
    assert run(sign_model, model=trained["model"], signed_model=signed).passed
    with open(f"{signed.path}/requirements.txt", "a") as handle:
        handle.write("evil==6.6.6\n")
    gates = json.dumps({"gates": {}, "metrics": {}, "reason": "all gates passed"})
    with pytest.raises(VerificationError):
        run(
            publish_model,
            signed_model=signed,
            gates=gates,
            summary=artifact(Markdown, work / "tamper" / "summary.md"),
        )
    assert keys_under(store_env, "models/") == []


def test_sign_model_fails_closed_without_a_key(work, trained, monkeypatch):
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(work / "no-such-key.pem"))
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEY", str(work / "no-such-key.pub.pem"))
    signed = artifact(Model, work / "nokey" / "signed_model")
    outputs = run(sign_model, model=trained["model"], signed_model=signed)
    assert outputs.passed is False and signed.metadata["signed"] is False
    assert GateResult.from_json(outputs.gate).detail.startswith("invalid:")


def test_sign_model_fails_closed_with_a_mismatched_public_key(work, trained, monkeypatch):
    private, _ = use_signing_keys(monkeypatch, work / "keys")
    _, other_public = use_signing_keys(monkeypatch, work / "other-keys")
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(private))
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEY", str(other_public))
    outputs = run(
        sign_model,
        model=trained["model"],
        signed_model=artifact(Model, work / "mismatch" / "signed_model"),
    )
    assert outputs.passed is False
    assert "wrong key" in GateResult.from_json(outputs.gate).detail


def test_scan_model_flags_a_pickle(work, trained):
    unsafe_dir = work / "unsafe-model"
    shutil.copytree(trained["model"].path, unsafe_dir)
    # A protocol-0 pickle whose loading would call os.system (written as bytes, never loaded).
    payload = b"cos\nsystem\n(S'echo pwned'\ntR."
    (unsafe_dir / "extra.pkl").write_bytes(payload)
    unsafe = artifact(Model, unsafe_dir)
    report = artifact(Markdown, work / "unsafe-scan.md")
    outputs = run(scan_model, model=unsafe, report=report)
    assert outputs.passed is False
    assert "extra.pkl" in GateResult.from_json(outputs.gate).detail
    assert "FAILED" in open(report.path).read()


def test_audit_without_a_database_fails_closed(work, trained):
    report = artifact(Markdown, work / "audit-none.md")
    outputs = run(
        audit_dependencies,
        model=trained["model"],
        report=report,
        advisory_db_uri="",
        allow_unknown_audit=False,
    )
    assert outputs.passed is False
    assert GateResult.from_json(outputs.gate).detail.startswith("unknown")
    missing = run(
        audit_dependencies,
        model=trained["model"],
        report=report,
        advisory_db_uri=str(work / "no-db"),
    )
    assert (
        missing.passed is False
        and "advisory database not found" in GateResult.from_json(missing.gate).detail
    )


def test_decide_release_names_failed_gates():
    decision = run(
        decide_release,
        holdout_gate=gate_json("holdout_accuracy", False),
        audit_gate=gate_json("dependency_audit"),
        scan_gate=gate_json("model_scan"),
        quality_gate=gate_json("code_quality"),
        signature_gate=gate_json("signature", False),
    )
    assert decision.passed is False
    reason = json.loads(decision.gates)["reason"]
    assert "holdout_accuracy: holdout_accuracy failed" in reason and "signature:" in reason
    assert "model_scan" not in reason


def test_record_rejection_publishes_nothing(work, trained, store_env):
    gates = run(
        decide_release,
        holdout_gate=gate_json("holdout_accuracy", False),
        audit_gate=gate_json("dependency_audit"),
        scan_gate=gate_json("model_scan"),
        quality_gate=gate_json("code_quality"),
        signature_gate=gate_json("signature"),
    ).gates
    summary = artifact(Markdown, work / "reject" / "summary.md")
    outcome = json.loads(
        record_rejection.python_func(model=trained["model"], gates=gates, summary=summary)
    )
    version = trained["model"].metadata["version"]
    assert outcome["status"] == "rejected" and outcome["model_version"] is None
    assert outcome["candidate_version"] == version and outcome["model_uri"] is None
    assert outcome["reason"] == "holdout_accuracy: holdout_accuracy failed"
    key = f"rejections/{MODEL_NAME}/{version}.json"
    assert outcome["record_uri"] == store_env.uri(key)
    record = store_env.get_json(key)
    assert record["status"] == "rejected" and record["reason"] == outcome["reason"]
    assert keys_under(store_env, "models/") == []
    assert f"### Rejected {MODEL_NAME} candidate {version}" in open(summary.path).read()
    assert COMPLETE_MARKER not in "".join(keys_under(store_env, ""))
