"""KFP component: combine every gate into the release decision."""

from typing import NamedTuple

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def decide_release(
    holdout_gate: str,
    audit_gate: str,
    scan_gate: str,
    quality_gate: str,
    signature_gate: str,
) -> NamedTuple("DecisionOutputs", [("passed", bool), ("gates", str)]):  # type: ignore[valid-type]
    """Combines the gates: a release needs every one of them to pass.

    Args:
        holdout_gate: GateResult JSON of the holdout accuracy gate.
        audit_gate: GateResult JSON of the dependency audit.
        scan_gate: GateResult JSON of the model scan.
        quality_gate: GateResult JSON of the code-quality gate.
        signature_gate: GateResult JSON of signing and verification.

    Returns:
        passed: True when every gate passed. gates: JSON of gates, metrics and reason.
    """
    from mlops.release.decision import GateResult, decide

    decision = decide(
        GateResult.from_json(g)
        for g in (holdout_gate, audit_gate, scan_gate, quality_gate, signature_gate)
    )
    return decision.passed, decision.gates_json()
