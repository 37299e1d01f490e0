"""KFP component: combine the static gates, which decide whether the repository's code may run."""

from typing import NamedTuple

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def decide_static(
    quality_gate: str,
    audit_gate: str,
    scan_gate: str,
) -> NamedTuple("StaticDecisionOutputs", [("passed", bool), ("gates", str)]):  # type: ignore[valid-type]
    """Combines code quality, dependency audit and repository scan: training needs all three.

    Args:
        quality_gate: GateResult JSON of the code-quality gate.
        audit_gate: GateResult JSON of the dependency audit.
        scan_gate: GateResult JSON of the scan of a checked-in model.

    Returns:
        passed: True when every static gate passed. gates: JSON of gates, metrics and reason.
    """
    from mlops.release.decision import STATIC_GATES, GateResult, decide

    decision = decide(
        (GateResult.from_json(g) for g in (quality_gate, audit_gate, scan_gate)),
        required=STATIC_GATES,
    )
    return decision.passed, decision.gates_json()
