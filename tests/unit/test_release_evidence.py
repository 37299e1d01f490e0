"""Release evidence: what ``release.json`` records, how it is signed, the policy that reads it.

:mod:`mlops.release.evidence` builds the evidence and signs it into a copy of the
candidate after a passed decision; :mod:`mlops.trust.evidence` is the policy
deploy, ``mlops verify`` and the model server apply to a verified folder. Real
model folders (trained in-process), real keys, real signatures.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from mlops.core.errors import UsageError, VerificationError
from mlops.release.champion import Comparison
from mlops.release.decision import GATE_ORDER, GateResult, decide
from mlops.release.evidence import (
    build_evidence,
    candidate_evidence,
    evidence_markdown,
    sign_release,
)
from mlops.trust.evidence import (
    EVIDENCE_SCHEMA,
    RELEASE_FILE,
    check_release,
    policy_min_accuracy,
    read_evidence,
)
from mlops.trust.signing import verify_version_dir
from tests.release_helpers import passed_decision_json, write_release
from tests.training_helpers import make_keypair, use_signing_keys

MODEL, VERSION = "iris", "v20261201-120000-abcd"
REPOSITORY = {
    "kind": "git",
    "uri": "https://git.example/ds/iris-model.git",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "tree_digest": "sha256:" + "ab" * 32,
    "pinned_uri": "git+https://git.example/ds/iris-model.git@0123456789abcdef0123456789abcdef01234567",
}
FINGERPRINTS = {"data": "d" * 64, "train": "t" * 64, "test": "e" * 64}
HOLDOUT_METRICS = {
    "holdout_accuracy": 0.95,
    "holdout_f1_macro": 0.9498,
    "holdout_rows": 60.0,
    "holdout_overlap_share": 0.0,
}
COMPARISON = Comparison(
    "v20261101-090000-0001",
    {"accuracy": 0.95, "f1_macro": 0.9498},
    {
        "accuracy": 0.9333,
        "f1_macro": 0.9327,
    },
    0.625,
)


@pytest.fixture(autouse=True)
def _no_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``MLOPS_MIN_ACCURACY`` from the outer environment: tests that need one set it."""
    monkeypatch.delenv("MLOPS_MIN_ACCURACY", raising=False)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained candidate as the training step leaves it: every file but the evidence and signature."""
    from mlops.model.packaging import write_model_dir
    from mlops.model.schema import FeatureSchema
    from mlops.model.training import build_pipeline
    from tests.serving_helpers import iris_frame

    features, target = iris_frame()
    schema = FeatureSchema.from_frame(features)
    model = build_pipeline(schema, "logistic_regression", 0).fit(features, target)
    return write_model_dir(
        tmp_path_factory.mktemp("candidate") / VERSION,
        model,
        model_name=MODEL,
        version=VERSION,
        schema=schema,
        target_column="species",
        estimator="logistic_regression",
        drop_columns=[],
        metrics={"test_accuracy": 0.9667, "test_f1_macro": 0.9665},
        fingerprints=FINGERPRINTS,
        train_features=features,
        params={"C": 1.0},
        repository=REPOSITORY,
    )


def _decision_json(**failures: str) -> str:
    """A decision as ``decide_release`` makes it: every gate of GATE_ORDER, ``failures`` failed."""
    results = []
    for name in GATE_ORDER:
        passed = name not in failures
        results.append(GateResult(name, passed, failures.get(name, f"{name} passed")))
    holdout = next(r for r in results if r.name == "holdout_accuracy")
    holdout.metrics = {**HOLDOUT_METRICS, "min_accuracy": 0.8}
    next(r for r in results if r.name == "no_regression").metrics = COMPARISON.metrics()
    return decide(results).gates_json()


# -- build_evidence -----------------------------------------------------------------------------
def test_build_evidence_records_what_the_release_passed(candidate: Path) -> None:
    decision_json = _decision_json()
    evidence = candidate_evidence(
        candidate,
        decision_json,
        holdout_fingerprint="h" * 64,
        max_regression=0.02,
        run_id="run-7f3a",
        serving_image="registry.example/mlops-serving@sha256:" + "c" * 64,
    )
    assert evidence["schema"] == EVIDENCE_SCHEMA
    assert (evidence["model_name"], evidence["version"]) == (MODEL, VERSION)
    assert evidence["released"] is True and evidence["reason"] == "all gates passed"
    assert datetime.fromisoformat(evidence["decided_at"]).tzinfo is not None
    # Every gate with its verdict and detail.
    assert set(evidence["gates"]) == set(GATE_ORDER)
    assert evidence["gates"] == json.loads(decision_json)["gates"]
    assert evidence["gates"]["holdout_accuracy"] == {
        "passed": True,
        "detail": "holdout_accuracy passed",
    }
    # Holdout scores apart from the threshold and the champion comparison.
    assert evidence["holdout_metrics"] == HOLDOUT_METRICS
    assert evidence["thresholds"] == {"min_accuracy": 0.8, "max_regression": 0.02}
    assert evidence["champion"] == {
        "candidate_accuracy": 0.95,
        "candidate_f1_macro": 0.9498,
        "champion_accuracy": 0.9333,
        "champion_f1_macro": 0.9327,
        "mcnemar_p_value": 0.625,
    }
    assert evidence["test_metrics"] == {"test_accuracy": 0.9667, "test_f1_macro": 0.9665}
    # Where the code came from and which data it saw, the holdout included.
    assert evidence["repository"] == REPOSITORY
    assert evidence["data_fingerprints"] == {**FINGERPRINTS, "holdout": "h" * 64}
    assert evidence["pipeline_run_id"] == "run-7f3a"
    assert evidence["images"] == {"serving": "registry.example/mlops-serving@sha256:" + "c" * 64}
    json.dumps(evidence, allow_nan=False)  # plain JSON: it is written and signed as is


def test_build_evidence_of_a_rejection_says_so(candidate: Path) -> None:
    from mlops.model.packaging import read_metadata

    decision_json = _decision_json(no_regression="candidate accuracy 0.90 < champion 0.93")
    evidence = build_evidence(read_metadata(candidate), decision_json)
    assert evidence["released"] is False
    assert evidence["reason"] == "no_regression: candidate accuracy 0.90 < champion 0.93"
    assert evidence["gates"]["no_regression"]["passed"] is False
    # Nothing invented for what was not given.
    assert evidence["thresholds"] == {"min_accuracy": 0.8}
    assert "holdout" not in evidence["data_fingerprints"]
    assert evidence["pipeline_run_id"] == "" and evidence["images"] == {"serving": None}


def test_build_evidence_without_a_holdout_gate_records_no_threshold() -> None:
    decision = decide([GateResult(name, True, "ok") for name in GATE_ORDER]).gates_json()
    evidence = build_evidence({"model_name": MODEL, "version": VERSION}, decision)
    assert evidence["thresholds"] == {} and evidence["holdout_metrics"] == {}
    assert evidence["repository"] == {} and evidence["data_fingerprints"] == {}


# -- sign_release -------------------------------------------------------------------------------
def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_sign_release_signs_the_evidence_with_the_model_files(
    candidate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, public = use_signing_keys(monkeypatch, tmp_path / "keys")
    before = _listing(candidate)
    evidence = candidate_evidence(candidate, _decision_json(), run_id="run-1")
    signed = sign_release(candidate, tmp_path / "signed", evidence)

    assert signed == tmp_path / "signed"
    assert _listing(candidate) == before, "the candidate itself is left as it was"
    assert set(_listing(signed)) == set(before) | {RELEASE_FILE, "model.sig"}
    assert read_evidence(signed) == evidence
    assert verify_version_dir(signed, public, MODEL, VERSION) == evidence

    # The signature covers release.json: rewriting it (say, to flip a failed gate) breaks it.
    rewritten = dict(evidence, pipeline_run_id="run-2")
    (signed / RELEASE_FILE).write_text(json.dumps(rewritten, indent=2, sort_keys=True))
    with pytest.raises(VerificationError, match="changed since signing: release.json"):
        verify_version_dir(signed, public, MODEL, VERSION)
    (signed / RELEASE_FILE).unlink()
    with pytest.raises(VerificationError, match="signed file\\(s\\) missing: release.json"):
        verify_version_dir(signed, public, MODEL, VERSION)


def test_sign_release_replaces_an_old_signed_copy_and_signature(
    candidate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.trust.signing import sign_model_dir

    private, public = use_signing_keys(monkeypatch, tmp_path / "keys")
    work = tmp_path / "work"
    shutil.copytree(candidate, work)
    sign_model_dir(work, private)  # a stale signature over the files without evidence
    stale = tmp_path / "signed"
    stale.mkdir()
    (stale / "leftover.txt").write_text("from an earlier attempt")
    signed = sign_release(work, stale, candidate_evidence(work, _decision_json()))
    assert not (signed / "leftover.txt").exists()
    verify_version_dir(signed, public, MODEL, VERSION)


def test_a_key_mismatch_leaves_no_signed_folder(
    candidate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.core.settings import PUBLIC_KEY_VAR

    use_signing_keys(monkeypatch, tmp_path / "keys")
    _, other_public = make_keypair(tmp_path / "other-keys")
    monkeypatch.setenv(PUBLIC_KEY_VAR, str(other_public))
    signed = tmp_path / "signed"
    with pytest.raises(VerificationError, match="wrong key"):
        sign_release(candidate, signed, candidate_evidence(candidate, _decision_json()))
    assert not signed.exists()


def test_a_missing_private_key_leaves_no_signed_folder(
    candidate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.core.settings import SIGNING_KEY_VAR

    use_signing_keys(monkeypatch, tmp_path / "keys")
    monkeypatch.setenv(SIGNING_KEY_VAR, str(tmp_path / "nowhere.pem"))
    signed = tmp_path / "signed"
    with pytest.raises(UsageError, match="private key not found"):
        sign_release(candidate, signed, candidate_evidence(candidate, _decision_json()))
    assert not signed.exists()


# -- check_release ------------------------------------------------------------------------------
@pytest.fixture
def released(tmp_path: Path) -> Path:
    """A folder with metadata and the evidence of a passed release (holdout 0.95, min 0.8)."""
    folder = tmp_path / VERSION
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"model_name": MODEL, "version": VERSION}))
    write_release(folder, passed_decision_json(holdout_accuracy=0.95, min_accuracy=0.8))
    return folder


def _rewrite(folder: Path, **changes: object) -> None:
    evidence = json.loads((folder / RELEASE_FILE).read_text())
    evidence.update(changes)
    (folder / RELEASE_FILE).write_text(json.dumps(evidence))


def test_check_release_returns_the_evidence_of_a_passed_release(released: Path) -> None:
    evidence = check_release(released, MODEL, VERSION)
    assert evidence["released"] is True
    assert evidence["holdout_metrics"]["holdout_accuracy"] == 0.95


@pytest.mark.parametrize(
    "change, match",
    [
        ({"model_name": "churn"}, f"evidence of 'churn' version '{VERSION}', not of 'iris'"),
        ({"version": "v1"}, f"evidence of 'iris' version 'v1', not of 'iris' version '{VERSION}'"),
        ({"gates": {}}, "records no gates"),
        ({"gates": None}, "records no gates"),
        (
            {
                "gates": {
                    "model_scan": {"passed": False, "detail": "unsafe type: os.system"},
                    "dependency_audit": {"passed": False, "detail": "PYSEC-2019-133"},
                    "code_quality": {"passed": True, "detail": "clean"},
                }
            },
            "failed gate\\(s\\): dependency_audit: PYSEC-2019-133; model_scan: unsafe type",
        ),
        ({"gates": {"code_quality": {"detail": "no verdict"}}}, "failed gate.*code_quality"),
        ({"holdout_metrics": {}}, "records no holdout accuracy"),
        ({"holdout_metrics": None}, "records no holdout accuracy"),
        ({"holdout_metrics": {"holdout_accuracy": "0.99"}}, "records no holdout accuracy"),
        ({"holdout_metrics": {"holdout_accuracy": math.inf}}, "records no holdout accuracy"),
        (
            {"holdout_metrics": {"holdout_accuracy": 0.79}},
            f"holdout accuracy 0.7900 of iris {VERSION} is below the release policy's "
            "minimum 0.8000",
        ),
    ],
    ids=[
        "other-model",
        "other-version",
        "no-gates",
        "gates-null",
        "failed-gates",
        "gate-without-verdict",
        "no-holdout",
        "holdout-null",
        "holdout-text",
        "holdout-infinite",
        "below-own-threshold",
    ],
)
def test_check_release_refuses(released: Path, change: dict, match: str) -> None:
    _rewrite(released, **change)
    with pytest.raises(VerificationError, match=match):
        check_release(released, MODEL, VERSION)


def test_check_release_refuses_a_folder_without_readable_evidence(released: Path) -> None:
    (released / RELEASE_FILE).unlink()
    with pytest.raises(VerificationError, match="has no release.json: it was never released"):
        check_release(released, MODEL, VERSION)
    (released / RELEASE_FILE).write_text("{not json")
    with pytest.raises(VerificationError, match="release.json of .* is unreadable"):
        check_release(released, MODEL, VERSION)
    (released / RELEASE_FILE).write_text("[1, 2]")
    with pytest.raises(VerificationError, match="is not a JSON object"):
        check_release(released, MODEL, VERSION)


def test_the_policy_minimum_raises_but_never_lowers(
    released: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evidence = read_evidence(released)
    assert policy_min_accuracy(evidence) == 0.8  # unset: the model's own threshold
    monkeypatch.setenv("MLOPS_MIN_ACCURACY", "0.97")
    assert policy_min_accuracy(evidence) == 0.97
    with pytest.raises(
        VerificationError, match="0.9500 .* below the release policy's minimum 0.9700"
    ):
        check_release(released, MODEL, VERSION)
    # An explicit floor wins over the setting (the caller's policy), and raises alike.
    assert check_release(released, MODEL, VERSION, floor=0.9)["version"] == VERSION

    monkeypatch.setenv("MLOPS_MIN_ACCURACY", "0.5")
    assert policy_min_accuracy(evidence) == 0.8, "a lower policy never lowers the model's own"
    check_release(released, MODEL, VERSION)
    _rewrite(released, holdout_metrics={"holdout_accuracy": 0.7})
    with pytest.raises(VerificationError, match="0.7000 .*minimum 0.8000"):
        check_release(released, MODEL, VERSION)

    # Evidence without a threshold of its own: the policy alone decides.
    _rewrite(released, thresholds={})
    assert policy_min_accuracy(read_evidence(released)) == 0.5
    check_release(released, MODEL, VERSION)
    monkeypatch.delenv("MLOPS_MIN_ACCURACY")
    assert policy_min_accuracy(read_evidence(released)) == 0.0


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high"])
def test_an_unparseable_policy_is_a_usage_error_not_a_pass(
    released: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MLOPS_MIN_ACCURACY", value)
    with pytest.raises(UsageError, match="MLOPS_MIN_ACCURACY"):
        check_release(released, MODEL, VERSION)


# -- evidence_markdown --------------------------------------------------------------------------
HOSTILE = "<img src=x onerror=alert(1)>"


def test_evidence_markdown_shows_every_gate(candidate: Path) -> None:
    evidence = candidate_evidence(candidate, _decision_json(), run_id="run-9", max_regression=0.0)
    text = evidence_markdown(evidence)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "Gate" not in line]
    assert {row.split(" | ")[0].removeprefix("| ") for row in rows} == {
        name.replace("_", "\\_") for name in GATE_ORDER
    }
    assert len(rows) == len(GATE_ORDER)
    assert all(" | passed | " in row for row in rows)
    assert REPOSITORY["commit"] in text and "run-9" in text


def test_evidence_markdown_escapes_hostile_values(candidate: Path) -> None:
    decision_json = _decision_json(model_scan=f"unsafe {HOSTILE} | injected cell\n# heading")
    evidence = candidate_evidence(candidate, decision_json, run_id=f"<script>x</script>{HOSTILE}")
    evidence["repository"] = dict(REPOSITORY, uri=f"https://x/{HOSTILE}`", commit=HOSTILE)
    evidence["gates"][HOSTILE] = {"passed": True, "detail": "[link](javascript:alert(1))"}
    text = evidence_markdown(evidence)

    assert "<img" not in text and "<script" not in text
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in text
    assert "](javascript" not in text
    # One line per gate (no line break smuggled in), each row exactly three cells.
    lines = text.splitlines()
    assert not any(line.startswith("#") and "heading" in line for line in lines)
    rows = [line for line in lines if line.startswith("| ") and "Gate" not in line]
    assert len(rows) == len(GATE_ORDER) + 1
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 4, row
    scan = next(row for row in rows if row.startswith("| model\\_scan"))
    assert " | FAILED | " in scan and "injected cell" in scan
