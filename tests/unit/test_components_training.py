"""The training components through ``.python_func`` with real artifacts on disk.

A component with several outputs returns a plain tuple; :func:`run` names its
items the way KFP's executor does, position by position in the order of the
``NamedTuple`` return annotation. Artifacts are ``kfp.dsl`` objects whose ``uri`` is a tmp path (kfp maps a
local ``uri`` to the same ``.path``); the store is the real SeaweedFS server
(``store_env``); signing uses a key pair generated for the test. The model
repository is the built-in ``logistic_regression`` recipe, fetched by the real
``fetch_repository`` component; its entry point runs in the real child process.
"""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

from components.audit_dependencies import audit_dependencies
from components.check_code_quality import check_code_quality
from components.decide_release import decide_release
from components.decide_static import decide_static
from components.fetch_repository import fetch_repository
from components.load_split import load_split
from components.publish_model import publish_model
from components.record_rejection import record_rejection
from components.record_static_rejection import record_static_rejection
from components.scan_model import scan_model
from components.scan_repository import scan_repository
from components.sign_model import sign_model
from components.train_model import train_model
from components.validate_holdout import validate_holdout
from mlops.core.data import fingerprint, read_table
from mlops.core.errors import DataError, UsageError, VerificationError
from mlops.model.candidate import train_candidate
from mlops.model.registry import COMPLETE_MARKER, list_versions
from mlops.release.decision import CANDIDATE_GATES, GATE_ORDER, STATIC_GATES, GateResult
from mlops.repository.source import fetch_repository as fetch_builtin
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
def repository(work):
    """The built-in logistic_regression recipe as the fetch step leaves it (no name or target in it)."""
    repo = artifact(Artifact, work / "fetch" / "repository")
    outputs = run(fetch_repository, repository=repo, target_column=TARGET, model_name=MODEL_NAME)
    return {"artifact": repo, "outputs": outputs}


@pytest.fixture(scope="module")
def trained(work, split, repository):
    model = artifact(Model, work / "train" / "model")
    metrics = artifact(Metrics, work / "train" / "metrics")
    accuracy = train_model.python_func(
        train_data=split["train"],
        test_data=split["test"],
        repository=repository["artifact"],
        target_column=TARGET,
        model_name=MODEL_NAME,
        model=model,
        metrics=metrics,
        drop_columns="",
        data_fingerprint=split["outputs"].data_fingerprint,
        seed=42,
        source=repository["outputs"].source,
    )
    return {"model": model, "metrics": metrics, "accuracy": accuracy}


def holdout_gate(work, split, trained, data, min_accuracy: float, name: str):
    """validate_holdout on the trained model; the store (``store_env``) has no champion yet."""
    metrics = artifact(Metrics, work / name / "metrics")
    classification = artifact(ClassificationMetrics, work / name / "classification")
    outputs = run(
        validate_holdout,
        model=trained["model"],
        train_data=split["train"],
        holdout_uri=str(data["holdout"]),
        metrics=metrics,
        classification=classification,
        champion=artifact(Metrics, work / name / "champion"),
        min_accuracy=min_accuracy,
    )
    return outputs, metrics, classification


def passed_gates(holdout_accuracy: float = 1.0) -> str:
    """The decision JSON of a release whose every gate passed, as decide_release writes it."""
    return run(
        decide_release,
        static_gates=static_json(),
        scan_gate=gate_json("model_scan"),
        holdout_gate=GateResult(
            "holdout_accuracy", True, "ok", {"holdout_accuracy": holdout_accuracy}
        ).to_json(),
        regression_gate=gate_json("no_regression"),
    ).gates


def sign(work, trained, name: str, gates: str | None = None) -> Any:
    """sign_model on the trained model with a passed decision: (signed artifact, evidence JSON)."""
    signed = artifact(Model, work / name / "signed_model")
    signed.metadata.update(trained["model"].metadata)
    evidence = sign_model.python_func(
        model=trained["model"],
        gates=gates or passed_gates(),
        signed_model=signed,
        evidence=artifact(Markdown, work / name / "evidence.md"),
    )
    return signed, json.loads(evidence)


def gate_json(name: str, passed: bool = True) -> str:
    return GateResult(name, passed, f"{name} {'ok' if passed else 'failed'}").to_json()


def static_json(failed: tuple[str, ...] = ()) -> str:
    """The decision JSON of ``decide_static`` with the ``failed`` static gates failing."""
    return run(
        decide_static,
        quality_gate=gate_json("code_quality", "code_quality" not in failed),
        audit_gate=gate_json("dependency_audit", "dependency_audit" not in failed),
        scan_gate=gate_json("repository_scan", "repository_scan" not in failed),
    ).gates


# -- fetch_repository ---------------------------------------------------------------------------
def test_fetch_repository_settles_parameters_and_records_the_source(repository):
    outputs = repository["outputs"]
    repo = repository["artifact"]
    assert (Path(repo.path) / "mlops.yaml").is_file() and (Path(repo.path) / "train.py").is_file()
    assert outputs.target_column == TARGET and outputs.model_name == MODEL_NAME
    assert outputs.min_accuracy == 0.8  # neither given nor in the recipe's mlops.yaml
    assert outputs.drop_columns == "" and outputs.categorical_columns == ""
    source = json.loads(outputs.source)
    assert source["kind"] == "builtin" and source["uri"] == "builtin:logistic_regression"
    assert source["tree_digest"].startswith("sha256:")
    assert source["parameters"]["target_column"] == {"value": TARGET, "source": "parameter"}
    assert source["parameters"]["min_accuracy"] == {"value": 0.8, "source": "default"}
    assert repo.metadata == {
        "uri": "builtin:logistic_regression",
        "commit": "",
        "tree_digest": source["tree_digest"],
    }


def test_fetch_repository_rejects_an_unknown_estimator_and_a_missing_target(work):
    repo = artifact(Artifact, work / "fetch-bad" / "repository")
    with pytest.raises(UsageError, match="no builtin recipe 'svm'.*random_forest"):
        run(fetch_repository, repository=repo, estimator="svm", model_name=MODEL_NAME)
    with pytest.raises(UsageError, match="target column not set"):
        run(fetch_repository, repository=repo, model_name=MODEL_NAME)


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


def test_declared_categorical_column_is_split_trained_and_recorded(work, data, repository):
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
        repository=repository["artifact"],
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
def test_train_model_writes_the_model_directory(trained, split, repository):
    model_dir = trained["model"].path
    names = {p.name for p in Path(model_dir).iterdir()}
    # Everything but the release evidence and the signature: those follow a passed decision.
    assert names == PUBLISHED_FILES - {"release.json", "model.sig", COMPLETE_MARKER}
    metadata = json.loads(open(f"{model_dir}/metadata.json").read())
    assert metadata["model_name"] == MODEL_NAME
    # What was fitted is what the recipe's entry point built.
    assert metadata["estimator"] == "Pipeline[LogisticRegression]"
    assert trained["model"].metadata["estimator"] == metadata["estimator"]
    assert metadata["recipe"] == {
        "entry_point": "train:build_model",
        "params": {"seed": 42},
        "checked_in_model": None,
    }
    # The repository record of the fetch step, kept for retraining.
    assert metadata["repository"] == json.loads(repository["outputs"].source)
    assert metadata["repository"]["uri"] == "builtin:logistic_regression"
    assert trained["model"].metadata["source"] == "trained by the entry point"
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


def test_train_model_rejects_a_bad_name_and_a_repository_without_mlops_yaml(
    work, split, repository
):
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
        train_model.python_func(model_name="Bad_Name", repository=repository["artifact"], **common)
    bare = work / "bare-repository"
    bare.mkdir()
    (bare / "train.py").write_text("def build_model(params):\n    raise AssertionError\n")
    with pytest.raises(UsageError, match="no mlops.yaml in"):
        train_model.python_func(
            model_name=MODEL_NAME, repository=artifact(Artifact, bare), **common
        )


def test_train_candidate_checks_name_and_mlops_yaml_before_reading_data(tmp_path):
    missing = tmp_path / "no-such-split.parquet"
    builtin = tmp_path / "repository"
    fetch_builtin("builtin:logistic_regression", builtin)
    with pytest.raises(UsageError, match="model_name 'Bad_Name' is invalid"):
        train_candidate(
            missing,
            missing,
            tmp_path / "model",
            builtin,
            target_column=TARGET,
            model_name="Bad_Name",
        )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "mlops.yaml").write_text("entry_point: train:build_model\nestimator: svm\n")
    with pytest.raises(UsageError, match="unknown key.*estimator"):
        train_candidate(
            missing,
            missing,
            tmp_path / "model",
            broken,
            target_column=TARGET,
            model_name=MODEL_NAME,
        )
    assert not (tmp_path / "model").exists()


# -- validate_holdout ---------------------------------------------------------------------------
def test_validate_holdout_passes_and_logs_classification(work, split, trained, data, store_env):
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
    # No model is deployed yet: no champion to regress from, so no_regression passes.
    regression = GateResult.from_json(outputs.regression_gate)
    assert regression.name == "no_regression" and regression.passed, regression.detail
    assert outputs.holdout_fingerprint == fingerprint(read_table(str(data["holdout"])))


def test_validate_holdout_fails_below_threshold(work, split, trained, data, store_env):
    outputs, _, _ = holdout_gate(work, split, trained, data, 0.999, "holdout-fail")
    assert outputs.passed is False
    assert "< min_accuracy 0.9990" in GateResult.from_json(outputs.gate).detail


# -- scan, sign, audit, quality, decide, publish -------------------------------------------------
def test_release_chain_publishes_a_signed_model(
    work, split, trained, data, repository, store_env, monkeypatch
):
    advisory_db = shared_path("advisory-db")
    use_signing_keys(monkeypatch, work / "keys")
    repo = repository["artifact"]

    # The static gates, on the fetched repository.
    quality_report = artifact(Markdown, work / "chain" / "quality.md")
    quality = run(check_code_quality, repository=repo, report=quality_report, fail_on="medium")
    assert quality.passed is True, GateResult.from_json(quality.gate).detail
    assert GateResult.from_json(quality.gate).name == "code_quality"

    audit_report = artifact(Markdown, work / "chain" / "audit.md")
    audit = run(
        audit_dependencies,
        repository=repo,
        report=audit_report,
        advisory_db_uri=str(advisory_db),
    )
    assert audit.passed is True, GateResult.from_json(audit.gate).detail
    assert "Dependency audit: PASSED" in open(audit_report.path).read()

    repo_scan_report = artifact(Markdown, work / "chain" / "repo-scan.md")
    repo_scan = run(scan_repository, repository=repo, report=repo_scan_report)
    assert repo_scan.passed is True
    assert GateResult.from_json(repo_scan.gate).detail == "safe: no checked-in model"

    static = run(
        decide_static, quality_gate=quality.gate, audit_gate=audit.gate, scan_gate=repo_scan.gate
    )
    assert static.passed is True, static.gates
    assert set(json.loads(static.gates)["gates"]) == set(STATIC_GATES)

    # The candidate gates, on the trained model.
    holdout, _, _ = holdout_gate(work, split, trained, data, 0.8, "chain-holdout")
    scan_report = artifact(Markdown, work / "chain" / "scan.md")
    scan = run(scan_model, model=trained["model"], report=scan_report)
    assert scan.passed is True and "PASSED" in open(scan_report.path).read()

    decision = run(
        decide_release,
        static_gates=static.gates,
        scan_gate=scan.gate,
        holdout_gate=holdout.gate,
        regression_gate=holdout.regression_gate,
    )
    assert decision.passed is True, decision.gates
    gates = json.loads(decision.gates)
    assert set(gates["gates"]) == set(GATE_ORDER) and gates["reason"] == "all gates passed"
    # Every gate's metrics, the static ones included, end up in the release decision.
    assert gates["metrics"]["holdout_accuracy"] == holdout.accuracy

    # Signed only after the decision: the evidence records it, the signature covers it.
    signed, evidence = sign(work, trained, "chain", decision.gates)
    assert signed.metadata["signed"] is True
    assert (Path(signed.path) / "model.sig").is_file()
    assert json.loads((Path(signed.path) / "release.json").read_text()) == evidence
    assert evidence["released"] is True and set(evidence["gates"]) == set(GATE_ORDER)
    assert evidence["repository"] == json.loads(repository["outputs"].source)
    assert not (work / "train" / "model" / "model.sig").exists(), "the input model stays unsigned"

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
    assert outcome["repository"] == json.loads(repository["outputs"].source)
    assert f"### Released {MODEL_NAME} {version}" in open(summary.path).read()
    prefix = f"models/{MODEL_NAME}/{version}/"
    assert {key[len(prefix) :] for key in keys_under(store_env, prefix)} == PUBLISHED_FILES
    assert list_versions(store_env, MODEL_NAME) == [version]
    assert keys_under(store_env, "rejections/") == []


def test_publish_refuses_a_tampered_model(work, trained, store_env, monkeypatch):
    use_signing_keys(monkeypatch, work / "keys")
    signed, _ = sign(work, trained, "tamper")
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
    with pytest.raises(UsageError, match="no-such-key"):
        sign(work, trained, "nokey")
    assert not (work / "nokey" / "signed_model").exists(), "nothing is left half signed"


def test_sign_model_fails_closed_with_a_mismatched_public_key(work, trained, monkeypatch):
    private, _ = use_signing_keys(monkeypatch, work / "keys")
    _, other_public = use_signing_keys(monkeypatch, work / "other-keys")
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(private))
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEY", str(other_public))
    with pytest.raises(VerificationError):
        sign(work, trained, "mismatch")
    assert not (work / "mismatch" / "signed_model").exists(), "nothing is left signed"


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


def test_audit_without_a_database_fails_closed(work, repository):
    report = artifact(Markdown, work / "audit-none.md")
    outputs = run(
        audit_dependencies,
        repository=repository["artifact"],
        report=report,
        advisory_db_uri="",
        allow_unknown_audit=False,
    )
    assert outputs.passed is False
    assert GateResult.from_json(outputs.gate).detail.startswith("unknown")
    missing = run(
        audit_dependencies,
        repository=repository["artifact"],
        report=report,
        advisory_db_uri=str(work / "no-db"),
    )
    assert (
        missing.passed is False
        and "advisory database not found" in GateResult.from_json(missing.gate).detail
    )


def test_scan_repository_refuses_a_checked_in_pickle(work):
    repo = work / "pickle-repository"
    repo.mkdir()
    (repo / "mlops.yaml").write_text("entry_point: train:build_model\nmodel: model.pkl\n")
    # A protocol-0 pickle whose loading would call os.system (written as bytes, never loaded).
    (repo / "model.pkl").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    report = artifact(Markdown, work / "pickle-scan.md")
    outputs = run(scan_repository, repository=artifact(Artifact, repo), report=report)
    gate = GateResult.from_json(outputs.gate)
    assert outputs.passed is False and gate.name == "repository_scan"
    assert "only .skops models are accepted, not model.pkl" in gate.detail


def test_decide_static_fails_when_any_static_gate_fails_or_is_missing():
    decision = json.loads(static_json(failed=("dependency_audit",)))
    assert decision["reason"] == "dependency_audit: dependency_audit failed"
    assert set(decision["gates"]) == set(STATIC_GATES)
    partial = run(
        decide_static,
        quality_gate=gate_json("code_quality"),
        audit_gate=gate_json("dependency_audit"),
        scan_gate=gate_json("code_quality"),  # the scan's slot holds another gate
    )
    assert partial.passed is False
    assert "repository_scan: gate did not run" in json.loads(partial.gates)["reason"]


def test_decide_release_names_failed_gates():
    decision = run(
        decide_release,
        static_gates=static_json(),
        scan_gate=gate_json("model_scan"),
        holdout_gate=gate_json("holdout_accuracy", False),
        regression_gate=gate_json("no_regression", False),
    )
    assert decision.passed is False
    reason = json.loads(decision.gates)["reason"]
    assert "holdout_accuracy: holdout_accuracy failed" in reason and "no_regression:" in reason
    assert "model_scan" not in reason
    assert set(json.loads(decision.gates)["gates"]) == set(GATE_ORDER)


def test_decide_release_keeps_a_failed_static_gate_and_needs_every_candidate_gate():
    # decide_release runs only after the static gates passed; should a failed static
    # decision reach it anyway, it fails closed and names that gate.
    failed_static = run(
        decide_release,
        static_gates=static_json(failed=("code_quality",)),
        scan_gate=gate_json("model_scan"),
        holdout_gate=gate_json("holdout_accuracy"),
        regression_gate=gate_json("no_regression"),
    )
    assert failed_static.passed is False
    assert json.loads(failed_static.gates)["reason"] == "code_quality: code_quality failed"
    no_static = run(
        decide_release,
        static_gates=json.dumps({"gates": {}, "metrics": {}, "reason": ""}),
        scan_gate=gate_json("model_scan"),
        holdout_gate=gate_json("holdout_accuracy"),
        regression_gate=gate_json("no_regression"),
    )
    assert no_static.passed is False
    reason = json.loads(no_static.gates)["reason"]
    for name in STATIC_GATES:
        assert f"{name}: gate did not run" in reason
    for name in CANDIDATE_GATES:
        assert name not in reason


def test_record_rejection_publishes_nothing(work, trained, store_env):
    gates = run(
        decide_release,
        static_gates=static_json(),
        scan_gate=gate_json("model_scan"),
        holdout_gate=gate_json("holdout_accuracy", False),
        regression_gate=gate_json("no_regression"),
    ).gates
    summary = artifact(Markdown, work / "reject" / "summary.md")
    outcome = json.loads(
        record_rejection.python_func(model=trained["model"], gates=gates, summary=summary)
    )
    version = trained["model"].metadata["version"]
    assert outcome["status"] == "rejected" and outcome["model_version"] is None
    assert outcome["candidate_version"] == version and outcome["model_uri"] is None
    assert outcome["reason"] == "holdout_accuracy: holdout_accuracy failed"
    assert outcome["repository"]["uri"] == "builtin:logistic_regression"
    key = f"rejections/{MODEL_NAME}/{version}.json"
    assert outcome["record_uri"] == store_env.uri(key)
    record = store_env.get_json(key)
    assert record["status"] == "rejected" and record["reason"] == outcome["reason"]
    assert keys_under(store_env, "models/") == []
    assert f"### Rejected {MODEL_NAME} candidate {version}" in open(summary.path).read()
    assert COMPLETE_MARKER not in "".join(keys_under(store_env, ""))


def test_record_static_rejection_keeps_the_source_and_publishes_nothing(
    work, repository, store_env
):
    gates = static_json(failed=("code_quality",))
    summary = artifact(Markdown, work / "static-reject" / "summary.md")
    outcome = json.loads(
        record_static_rejection.python_func(
            model_name=MODEL_NAME,
            gates=gates,
            source=repository["outputs"].source,
            summary=summary,
            trigger=json.dumps({"drift_detected": True}),
        )
    )
    assert outcome["status"] == "rejected" and outcome["model_version"] is None
    assert outcome["reason"] == "code_quality: code_quality failed"
    assert outcome["repository"] == json.loads(repository["outputs"].source)
    assert outcome["trigger"] == {"drift_detected": True}
    key = f"rejections/{MODEL_NAME}/{outcome['candidate_version']}.json"
    assert outcome["record_uri"] == store_env.uri(key)
    assert store_env.get_json(key)["reason"] == outcome["reason"]
    assert keys_under(store_env, "models/") == []
    assert "code\\_quality" in open(summary.path).read()  # escaped Markdown: code\_quality
