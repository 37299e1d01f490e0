"""KFP component: the model-scan gate (no code that runs on load)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def scan_model(
    model: Input[Model],
    report: Output[Markdown],
) -> NamedTuple("ScanOutputs", [("passed", bool), ("gate", str)]):  # type: ignore[valid-type]
    """Scans the model directory for files that can run code when loaded.

    Args:
        model: Model directory.
        report: Markdown verdict for the Kubeflow UI.

    Returns:
        passed: Gate decision. gate: GateResult JSON.
    """
    import logging

    from mlops.release.gates import gate_outputs, scan_gate

    logging.basicConfig(level=logging.INFO)
    gate, markdown = scan_gate(model.path)
    return gate_outputs(gate, markdown, report.path)
