"""Release gates as plain functions: audit sources, fail-closed behaviour."""

from __future__ import annotations

from pathlib import Path

from mlops.release.decision import GateResult
from mlops.release.gates import audit_gate, gate_outputs
from tests.conftest import shared_path


def _model_dir(tmp_path: Path, requirements: str) -> Path:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "requirements.txt").write_text(requirements)
    return model_dir


def test_audit_gate_reads_an_advisory_db_from_the_store(store_env, tmp_path):
    """``advisory_db_uri`` may be an s3:// prefix: the pipeline's way to ship the database."""
    database = shared_path("advisory-db")
    for package in ("requests", "urllib3"):
        for advisory in (database / "vulns" / package).glob("*.yaml"):
            store_env.put_file(f"advisories/vulns/{package}/{advisory.name}", advisory)
    gate, report = audit_gate(
        _model_dir(tmp_path, "requests==2.19.1\nurllib3==2.2.3\n"), store_env.uri("advisories")
    )
    assert not gate.passed and gate.detail.startswith("vulnerable")
    assert "PYSEC-2018-28" in gate.detail and "PYSEC-2018-28" in report


def test_audit_gate_fails_closed_without_a_source(tmp_path):
    gate, _ = audit_gate(_model_dir(tmp_path, "requests==2.32.3\n"))
    assert not gate.passed and gate.detail.startswith("unknown")
    (tmp_path / "again").mkdir()
    allowed, _ = audit_gate(
        _model_dir(tmp_path / "again", "requests==2.32.3\n"), allow_unknown=True
    )
    assert allowed.passed and allowed.detail.startswith("WARNING allowed unknown")


def test_audit_gate_names_a_missing_database(tmp_path):
    gate, _ = audit_gate(_model_dir(tmp_path, "requests==2.32.3\n"), "/nonexistent/advisory-db")
    assert not gate.passed and "/nonexistent/advisory-db" in gate.detail


def test_gate_outputs_writes_the_report_and_returns_passed_and_the_gate_json(tmp_path):
    gate = GateResult("model_scan", False, "unsafe: extra.pkl")
    report = tmp_path / "report.md"
    passed, gate_json = gate_outputs(gate, "### Model scan: FAILED\n", report)
    assert passed is False and GateResult.from_json(gate_json) == gate
    assert report.read_text() == "### Model scan: FAILED\n"
