"""Executes the notebooks with nbclient, as a user would run them locally.

Both drive the pipelines through the Python API (``mlops.run_pipeline``), never
the CLI in a subprocess, and plot with matplotlib: the executed notebooks must
hold ``image/png`` outputs (confusion matrix and ROC; drift per column and the
release decision) and the outcome's HTML table.

The kernel is ``python3`` resolved to this test's interpreter (the project venv):
when the visible ``python3`` kernelspec points elsewhere, one is installed into a
tmp prefix and put first on JUPYTER_PATH. MLOPS_HOME is a tmp folder and the
store is the session's SeaweedFS server (``store_env``), so no embedded store is
started and no key is written outside tmp.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_path
from tests.training_helpers import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "training.ipynb"
MONITORING_NOTEBOOK = REPO_ROOT / "notebooks" / "monitoring.ipynb"

pytestmark = pytest.mark.slow


def kernel_for_this_interpreter(tmp_path: Path, monkeypatch) -> str:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        argv = []
    if argv and os.path.abspath(argv[0]) == os.path.abspath(sys.executable):
        return "python3"
    prefix = tmp_path / "kernel-prefix"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--prefix",
            str(prefix),
            "--name",
            "python3",
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert os.path.abspath(spec.argv[0]) == os.path.abspath(sys.executable), spec.argv
    return "python3"


def outputs_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
                parts.append(output["data"].get("text/html", ""))
    return "\n".join(parts)


def png_outputs(notebook) -> int:
    """How many plots (``image/png`` outputs) the executed notebook holds."""
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("path", [NOTEBOOK, MONITORING_NOTEBOOK], ids=lambda p: p.name)
def test_notebook_is_clean(path):
    import nbformat

    assert "subprocess" not in path.read_text(), "notebooks use the Python API, not the CLI"

    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(
        not cell.get("outputs") and cell.get("execution_count") is None for cell in code
    ), "commit the notebook without outputs"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_training_notebook_releases_locally(store_env, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    advisory_db = shared_path("advisory-db")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_ADVISORY_DB", str(advisory_db))
    monkeypatch.delenv("KFP_HOST", raising=False)
    for name in ("MLOPS_SIGNING_KEY", "MLOPS_SIGNING_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    kernel = kernel_for_this_interpreter(tmp_path, monkeypatch)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(REPO_ROOT)}}
    )
    client.execute()

    text = outputs_text(notebook)
    assert "status: released" in text, text[-3000:]
    assert "reason: all gates passed" in text
    assert f"uri: s3://{store_env.bucket}/models/breast-cancer/" in text
    assert "holdout_accuracy" in text and "test_accuracy" in text
    from mlops.release.decision import GATE_ORDER

    for gate in GATE_ORDER:
        assert gate in text
    assert "<h4>training: released</h4>" in text  # the Outcome's HTML table
    assert png_outputs(notebook) >= 1, "the holdout confusion matrix and ROC plot"
    versions = sorted(
        key for key in store_env.list("models/breast-cancer/") if key.endswith("_COMPLETE")
    )
    assert len(versions) == 1
    assert (tmp_path / "home" / "keys" / "signing-key.pem").is_file()


def test_monitoring_notebook_runs_one_pass_locally(store_env, tmp_path, monkeypatch):
    """A deployed model, then the notebook: drifted traffic -> retrained -> canary."""
    import nbformat
    from nbclient import NotebookClient

    from mlops.demo.data import write_breast_cancer
    from tests.training_helpers import cli_command

    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.delenv("KFP_HOST", raising=False)
    monkeypatch.delenv("MLOPS_ADVISORY_DB", raising=False)
    for name in ("MLOPS_SIGNING_KEY", "MLOPS_SIGNING_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    training_csv, holdout_csv = write_breast_cancer(tmp_path / "data")
    deployed = subprocess.run(
        cli_command(
            "run",
            "training",
            "--json",
            "-p",
            f"data_uri={training_csv}",
            "-p",
            f"holdout_uri={holdout_csv}",
            "-p",
            "target_column=diagnosis",
            "-p",
            "model_name=breast-cancer",
            "-p",
            "deploy=full",
            "-p",
            "allow_unknown_audit=true",
        ),
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert deployed.returncode == 0, deployed.stderr[-3000:]

    kernel = kernel_for_this_interpreter(tmp_path, monkeypatch)
    notebook = nbformat.read(MONITORING_NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(REPO_ROOT)}}
    ).execute()
    text = outputs_text(notebook)
    assert "drift detected: True" in text, text[-3000:]
    assert "status: released" in text
    assert "'canary_percent': 20" in text
    assert f"report: s3://{store_env.bucket}/reports/drift/breast-cancer/" in text
    assert "<h4>monitoring: released</h4>" in text
    assert png_outputs(notebook) >= 2, "drift per column and the release decision"
