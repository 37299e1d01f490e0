"""Gate results and the release decision: every gate must run and pass (fail closed)."""

from __future__ import annotations

import json

from mlops.release.decision import (
    CANDIDATE_GATES,
    GATE_ORDER,
    STATIC_GATES,
    Decision,
    GateResult,
    decide,
    gates_from_json,
)


def passing(name: str, **metrics: float) -> GateResult:
    return GateResult(name, True, f"{name} ok", dict(metrics))


def all_passing() -> list[GateResult]:
    return [passing(name) for name in GATE_ORDER]


def at(name: str) -> int:
    """The index of gate ``name`` in :func:`all_passing` (whatever the order of the gates)."""
    return GATE_ORDER.index(name)


def test_all_gates_pass():
    decision = decide(all_passing())
    assert isinstance(decision, Decision)
    assert decision.passed and decision.reason == "all gates passed"
    assert list(decision.gates) == list(GATE_ORDER)
    assert all(g["passed"] for g in decision.gates.values())


def test_order_of_results_does_not_matter():
    decision = decide(reversed(all_passing()))
    assert list(decision.gates) == list(GATE_ORDER)


def test_failure_reason_names_the_gate_and_detail():
    results = all_passing()
    results[at("model_scan")] = GateResult("model_scan", False, "unsafe: model.pkl: pickle opcodes")
    decision = decide(results)
    assert not decision.passed
    assert decision.reason == "model_scan: unsafe: model.pkl: pickle opcodes"
    assert decision.gates["model_scan"] == {
        "passed": False,
        "detail": "unsafe: model.pkl: pickle opcodes",
    }


def test_every_failure_is_listed():
    results = all_passing()
    results[at("holdout_accuracy")] = GateResult("holdout_accuracy", False, "accuracy 0.5 < 0.8")
    results[at("no_regression")] = GateResult("no_regression", False, "0.90 < champion 0.93")
    results[at("code_quality")] = GateResult("code_quality", False, "bandit: B602 shell=True")
    decision = decide(results)
    assert not decision.passed
    failures = sorted(
        [
            (at("holdout_accuracy"), "holdout_accuracy: accuracy 0.5 < 0.8"),
            (at("no_regression"), "no_regression: 0.90 < champion 0.93"),
            (at("code_quality"), "code_quality: bandit: B602 shell=True"),
        ]
    )
    assert decision.reason == "; ".join(text for _, text in failures)  # in GATE_ORDER


def test_missing_gate_fails_closed():
    results = [r for r in all_passing() if r.name != "dependency_audit"]
    decision = decide(results)
    assert not decision.passed
    assert decision.reason == "dependency_audit: gate did not run"
    assert decision.gates["dependency_audit"] == {"passed": False, "detail": "gate did not run"}


def test_no_results_fail_every_gate():
    decision = decide([])
    assert not decision.passed
    assert set(decision.gates) == set(GATE_ORDER)
    assert all(name in decision.reason for name in GATE_ORDER)


def test_duplicate_gate_cannot_mask_a_failure():
    for results in (
        [GateResult("no_regression", False, "worse"), passing("no_regression")],
        [passing("no_regression"), GateResult("no_regression", False, "worse")],
    ):
        decision = decide(results, required=["no_regression"])
        assert not decision.passed and decision.reason == "no_regression: worse"


def test_custom_required_and_extra_gates():
    decision = decide(
        [passing("holdout_accuracy"), passing("zz_extra")], required=["holdout_accuracy"]
    )
    assert decision.passed
    assert list(decision.gates) == ["holdout_accuracy", "zz_extra"]


def test_metrics_are_merged():
    results = all_passing()
    results[at("holdout_accuracy")] = passing(
        "holdout_accuracy", holdout_accuracy=0.97, holdout_rows=143.0
    )
    results[at("dependency_audit")] = passing("dependency_audit", audit_packages=12.0)
    assert decide(results).metrics == {
        "holdout_accuracy": 0.97,
        "holdout_rows": 143.0,
        "audit_packages": 12.0,
    }


def test_gate_result_json_round_trip():
    gate = GateResult("holdout_accuracy", False, "too low", {"holdout_accuracy": 0.5})
    text = gate.to_json()
    assert json.loads(text) == {
        "name": "holdout_accuracy",
        "passed": False,
        "detail": "too low",
        "metrics": {"holdout_accuracy": 0.5},
    }
    assert GateResult.from_json(text) == gate
    assert GateResult.from_json('{"name": "x", "passed": 1, "detail": 3}') == GateResult(
        "x", True, "3", {}
    )


def test_gates_json():
    last = GATE_ORDER[-1]
    decision = decide(all_passing()[:-1])
    payload = json.loads(decision.gates_json())
    assert set(payload) == {"gates", "metrics", "reason"}
    assert payload["gates"][last]["passed"] is False
    assert payload["reason"] == f"{last}: gate did not run"


def test_the_gates_in_order_and_signing_is_not_one():
    # Static gates first (they run none of the repository's code), then the candidate's;
    # the champion comparison is a gate, the signature follows a passed decision.
    assert GATE_ORDER == STATIC_GATES + CANDIDATE_GATES
    assert STATIC_GATES == ("code_quality", "dependency_audit", "repository_scan")
    assert CANDIDATE_GATES == ("model_scan", "holdout_accuracy", "no_regression")
    assert "signature" not in GATE_ORDER


def test_gates_from_json_reads_a_decision_back():
    results = all_passing()
    results[at("holdout_accuracy")] = passing("holdout_accuracy", holdout_accuracy=0.97)
    results[at("no_regression")] = GateResult("no_regression", False, "worse", {"p": 0.01})
    back = gates_from_json(decide(results).gates_json())
    assert sorted((g.name, g.passed, g.detail) for g in back) == sorted(
        (r.name, r.passed, r.detail) for r in results
    )
    assert back[0].metrics == {"holdout_accuracy": 0.97, "p": 0.01}  # kept once, on the first
    assert all(g.metrics == {} for g in back[1:])
    assert decide(back).reason == "no_regression: worse"
