"""KFP component: combine every gate into the release decision."""

from typing import NamedTuple

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def decide_release(
    static_gates: str,
    scan_gate: str,
    holdout_gate: str,
    regression_gate: str,
) -> NamedTuple("DecisionOutputs", [("passed", bool), ("gates", str)]):  # type: ignore[valid-type]
    """Combines the gates: a release needs every one of them to pass (signing comes after).

    Args:
        static_gates: Decision JSON of the static gates (``decide_static``).
        scan_gate: GateResult JSON of the trained model's scan.
        holdout_gate: GateResult JSON of the holdout accuracy gate.
        regression_gate: GateResult JSON of the champion/challenger gate (no_regression).

    Returns:
        passed: True when every gate passed. gates: JSON of gates, metrics and reason.
    """
    from mlops.release.decision import GateResult, decide, gates_from_json

    decision = decide(
        [
            *gates_from_json(static_gates),
            *(GateResult.from_json(g) for g in (scan_gate, holdout_gate, regression_gate)),
        ]
    )
    return decision.passed, decision.gates_json()
