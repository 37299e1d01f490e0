"""KFP component: the dependency-audit gate over the model's serving requirements."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def audit_dependencies(
    model: Input[Model],
    report: Output[Markdown],
    advisory_db_uri: str = "",
    allow_unknown_audit: bool = False,
) -> NamedTuple("AuditOutputs", [("passed", bool), ("gate", str)]):  # type: ignore[valid-type]
    """Audits the model's exact serving requirements for known vulnerabilities.

    Args:
        model: Model directory holding ``requirements.txt``.
        report: Markdown findings for the Kubeflow UI.
        advisory_db_uri: Offline OSV advisory database (path or ``s3://`` prefix).
        allow_unknown_audit: Let "could not check" pass. Never lets "vulnerable" pass.

    Returns:
        passed: Gate decision. gate: GateResult JSON.
    """
    import logging

    from mlops.release.gates import audit_gate, gate_outputs

    logging.basicConfig(level=logging.INFO)
    gate, markdown = audit_gate(model.path, advisory_db_uri, allow_unknown_audit)
    return gate_outputs(gate, markdown, report.path)
