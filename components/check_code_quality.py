"""KFP component: the code-quality gate (ruff and bandit) over the shipped code."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def check_code_quality(
    report: Output[Markdown],
    paths: str = "components,serving",
    fail_on: str = "medium",
) -> NamedTuple("QualityOutputs", [("passed", bool), ("gate", str)]):  # type: ignore[valid-type]
    """Runs ruff and bandit over the code that ships with the model.

    Args:
        report: Markdown summary for the Kubeflow UI.
        paths: Comma-separated paths or installed package names.
        fail_on: Lowest severity that fails the gate: low, medium or high.

    Returns:
        passed: Gate decision. gate: GateResult JSON.
    """
    import logging

    from mlops.release.gates import gate_outputs, quality_gate

    logging.basicConfig(level=logging.INFO)
    gate, markdown = quality_gate(paths, fail_on)
    return gate_outputs(gate, markdown, report.path)
