from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def scan_model(
    model: Input[Model],
    report: Output[Markdown],
) -> NamedTuple("ScanOutputs", [("passed", bool), ("gate", str)]):
    """Scans the model directory for files that can run code when loaded.

    Args:
        model: Model directory.
        report: Markdown verdict for the Kubeflow UI.

    Returns:
        passed: Gate decision. gate: GateResult JSON.
    """
    import logging
    from collections import namedtuple

    from mlops.release.gates import scan_gate

    logging.basicConfig(level=logging.INFO)
    gate, markdown = scan_gate(model.path)
    with open(report.path, "w") as handle:
        handle.write(markdown)
    return namedtuple("ScanOutputs", ["passed", "gate"])(gate.passed, gate.to_json())
