"""KFP component: the static scan of a model file checked in to the repository."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def scan_repository(
    repository: Input[Artifact],
    report: Output[Markdown],
) -> NamedTuple("RepositoryScanOutputs", [("passed", bool), ("gate", str)]):  # type: ignore[valid-type]
    """Scans the model file ``mlops.yaml`` names, if any, without loading it.

    Only a ``.skops`` file whose types are all on the trusted allow-list passes;
    pickle, joblib or unknown types fail. A repository without one passes.

    Args:
        repository: The fetched repository.
        report: Markdown verdict for the Kubeflow UI.

    Returns:
        passed: Gate decision. gate: GateResult JSON.
    """
    import logging
    from pathlib import Path

    from mlops.release.gates import gate_outputs, repository_model_scan_gate
    from mlops.repository.config import load_config, model_path

    logging.basicConfig(level=logging.INFO)
    repo_dir = Path(repository.path)
    gate, markdown = repository_model_scan_gate(model_path(repo_dir, load_config(repo_dir)))
    return gate_outputs(gate, markdown, report.path)
