"""KFP component: the code-quality gate (ruff and bandit) over the model repository's code."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def check_code_quality(
    repository: Input[Artifact],
    report: Output[Markdown],
    fail_on: str = "medium",
) -> NamedTuple("QualityOutputs", [("passed", bool), ("gate", str)]):  # type: ignore[valid-type]
    """Runs ruff and bandit over the repository's code, without importing any of it.

    The paths are ``quality`` of mlops.yaml (default: every Python file but the
    tests); ruff uses the repository's own configuration when it has one.

    Args:
        repository: The fetched repository.
        report: Markdown findings (paths relative to the repository) for the Kubeflow UI.
        fail_on: Lowest severity that fails the gate: low, medium or high.

    Returns:
        passed: Gate decision. gate: GateResult JSON.
    """
    import logging
    from pathlib import Path

    from mlops.release.gates import gate_outputs, repository_quality_gate
    from mlops.repository.config import load_config, quality_paths

    logging.basicConfig(level=logging.INFO)
    repo_dir = Path(repository.path)
    paths = quality_paths(repo_dir, load_config(repo_dir))
    gate, markdown = repository_quality_gate(repo_dir, paths, fail_on)
    return gate_outputs(gate, markdown, report.path)
