"""KFP component: the dependency-audit gate over the repository's requirements and the serving image."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def audit_dependencies(
    repository: Input[Artifact],
    report: Output[Markdown],
    advisory_db_uri: str = "",
    allow_unknown_audit: bool = False,
) -> NamedTuple("AuditOutputs", [("passed", bool), ("gate", str)]):  # type: ignore[valid-type]
    """Audits the repository's requirements together with the serving image's exact pins.

    A requirement the serving image cannot satisfy fails the gate (the model could
    not be served), as does any known vulnerability in what would be served.

    Args:
        repository: The fetched repository (``requirements`` of mlops.yaml).
        report: Markdown findings for the Kubeflow UI.
        advisory_db_uri: Offline OSV advisory database (path or ``s3://`` prefix).
        allow_unknown_audit: Let "could not check" pass. Never lets "vulnerable" pass.

    Returns:
        passed: Gate decision. gate: GateResult JSON.
    """
    import logging
    from pathlib import Path

    from mlops.release.gates import gate_outputs, repository_audit_gate
    from mlops.repository.config import load_config, requirements_path

    logging.basicConfig(level=logging.INFO)
    repo_dir = Path(repository.path)
    gate, markdown = repository_audit_gate(
        requirements_path(repo_dir, load_config(repo_dir)), advisory_db_uri, allow_unknown_audit
    )
    return gate_outputs(gate, markdown, report.path)
