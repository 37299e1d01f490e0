"""Tests for mlops.trust.audit: offline advisory DB, fail-closed states."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from mlops.core.errors import UsageError
from mlops.core.net import free_port
from mlops.trust import audit
from mlops.trust.audit import AuditResult, audit_requirements, gate_passes

SHARED_DB = Path(__file__).resolve().parents[2].parent / "shared" / "advisory-db"


@pytest.fixture
def shared_db() -> Path:
    if not (SHARED_DB / "vulns").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"advisory database snapshot missing at {SHARED_DB} (required in CI)")
        pytest.skip(f"advisory database snapshot not found at {SHARED_DB}")
    return SHARED_DB


@pytest.fixture
def mini_db(tmp_path: Path) -> Path:
    """A tiny hand-written advisory DB exercising the OSV range semantics."""
    vulns = tmp_path / "db" / "vulns"
    (vulns / "demo-pkg").mkdir(parents=True)
    (vulns / "demo-pkg" / "DEMO-1.yaml").write_text(
        textwrap.dedent(
            """\
            id: DEMO-1
            summary: range with a fix
            aliases: [CVE-0000-0001]
            affected:
            - package: {name: Demo_Pkg, ecosystem: PyPI}
              ranges:
              - type: ECOSYSTEM
                events:
                - introduced: "1.0"
                - fixed: "1.5"
                - introduced: "2.0"
                - fixed: "2.0.3"
            """
        )
    )
    (vulns / "demo-pkg" / "DEMO-2.yaml").write_text(
        textwrap.dedent(
            """\
            id: DEMO-2
            details: last affected
            affected:
            - package: {name: demo-pkg, ecosystem: PyPI}
              ranges:
              - type: SEMVER
                events:
                - introduced: "0"
                - last_affected: "0.9.0"
            """
        )
    )
    (vulns / "demo-pkg" / "DEMO-3.yaml").write_text(
        textwrap.dedent(
            """\
            id: DEMO-3
            details: explicit versions only
            affected:
            - package: {name: demo-pkg, ecosystem: PyPI}
              versions: ["3.1"]
            """
        )
    )
    (vulns / "demo-pkg" / "DEMO-4.yaml").write_text(
        textwrap.dedent(
            """\
            id: DEMO-4
            details: withdrawn, must be ignored
            withdrawn: "2024-01-01T00:00:00Z"
            affected:
            - package: {name: demo-pkg, ecosystem: PyPI}
              ranges:
              - type: ECOSYSTEM
                events: [{introduced: "0"}]
            """
        )
    )
    return tmp_path / "db"


def _reqs(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_known_advisory_flagged(tmp_path: Path, shared_db: Path) -> None:
    req = _reqs(tmp_path, "requests==2.19.1", "numpy==2.1.0")
    result = audit_requirements(req, advisory_db=shared_db)
    assert result.state == "vulnerable"
    assert result.checked == 2
    ids = {f.id for f in result.findings}
    assert "PYSEC-2018-28" in ids  # CVE-2018-18074, fixed in 2.20.0
    finding = next(f for f in result.findings if f.id == "PYSEC-2018-28")
    assert finding.package == "requests" and finding.version == "2.19.1"
    assert "CVE-2018-18074" in finding.aliases
    assert finding.fixed_versions == ["2.20.0"]
    assert not gate_passes(result, allow_unknown=True)
    d = result.to_dict()
    assert d["state"] == "vulnerable" and d["findings"][0]["id"]


def test_last_affected_in_real_db(tmp_path: Path, shared_db: Path) -> None:
    # PYSEC-2022-42969: py through 1.11.0 (last_affected)
    result = audit_requirements(_reqs(tmp_path, "py==1.11.0"), advisory_db=shared_db / "vulns")
    assert "PYSEC-2022-42969" in {f.id for f in result.findings}


def test_clean_pins(tmp_path: Path, shared_db: Path) -> None:
    req = _reqs(tmp_path, "requests==2.32.3", "urllib3==2.2.3", "jinja2==3.1.6", "numpy==2.1.0")
    result = audit_requirements(req, advisory_db=shared_db)
    assert result.state == "clean", result.detail
    assert result.checked == 4 and result.findings == []
    assert gate_passes(result, allow_unknown=False)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.5", {"DEMO-2"}),
        ("0.9.0", {"DEMO-2"}),
        ("0.9.1", set()),
        ("1.0", {"DEMO-1"}),
        ("1.4.9", {"DEMO-1"}),
        ("1.5", set()),
        ("2.0.2", {"DEMO-1"}),
        ("2.0.3", set()),
        ("3.1", {"DEMO-3"}),
        ("3.1.0", {"DEMO-3"}),
    ],
)
def test_osv_range_semantics(
    tmp_path: Path, mini_db: Path, version: str, expected: set[str]
) -> None:
    result = audit_requirements(_reqs(tmp_path, f"demo-pkg=={version}"), advisory_db=mini_db)
    assert {f.id for f in result.findings} == expected
    assert result.state == ("vulnerable" if expected else "clean")


def test_vulns_folder_accepted_and_normalised_names(tmp_path: Path, mini_db: Path) -> None:
    result = audit_requirements(_reqs(tmp_path, "Demo.Pkg==1.2"), advisory_db=mini_db / "vulns")
    assert [f.id for f in result.findings] == ["DEMO-1"]
    assert result.findings[0].aliases == ["CVE-0000-0001"]
    assert result.findings[0].fixed_versions == ["1.5", "2.0.3"]


def test_broken_advisory_is_unknown(tmp_path: Path, mini_db: Path) -> None:
    (mini_db / "vulns" / "demo-pkg" / "BAD-1.yaml").write_text("id: [unclosed\n")
    result = audit_requirements(_reqs(tmp_path, "demo-pkg==9.9"), advisory_db=mini_db)
    assert result.state == "unknown"
    assert "demo-pkg" in result.detail


def test_unpinned_lines_are_unknown(tmp_path: Path, mini_db: Path) -> None:
    req = _reqs(tmp_path, "demo-pkg==1.0", "flask>=2", "jinja2", "click==8.*", "-r other.txt")
    result = audit_requirements(req, advisory_db=mini_db)
    assert result.state == "unknown"
    for name in ("flask>=2", "jinja2", "click==8.*", "-r other.txt"):
        assert name in result.detail
    assert "demo-pkg==1.0" not in result.detail
    assert not gate_passes(result, allow_unknown=False)
    assert gate_passes(result, allow_unknown=True)


def test_requirement_excluded_by_marker_is_unknown(tmp_path: Path, mini_db: Path) -> None:
    # pip-audit drops a requirement whose marker is false here; it was not checked.
    req = _reqs(tmp_path, 'demo-pkg==1.0 ; sys_platform == "never"')
    result = audit_requirements(req, advisory_db=mini_db)
    assert result.state == "unknown" and result.checked == 0
    assert "demo-pkg" in result.detail


def test_empty_requirements_unknown(tmp_path: Path, mini_db: Path) -> None:
    result = audit_requirements(_reqs(tmp_path, "# nothing"), advisory_db=mini_db)
    assert result.state == "unknown"


def test_no_db_is_unknown(tmp_path: Path) -> None:
    result = audit_requirements(_reqs(tmp_path, "requests==2.19.1"))
    assert result.state == "unknown"
    assert "no vulnerability source" in result.detail


def test_missing_db_dir_is_unknown(tmp_path: Path) -> None:
    result = audit_requirements(_reqs(tmp_path, "requests==2.19.1"), advisory_db=tmp_path / "nope")
    assert result.state == "unknown"


def test_online_unreachable_is_unknown(tmp_path: Path) -> None:
    port = free_port()
    result = audit_requirements(
        _reqs(tmp_path, "requests==2.32.3"),
        online=True,
        timeout=2,
        osv_url=f"http://127.0.0.1:{port}/v1/query",
    )
    assert result.state == "unknown"
    assert "could not complete" in result.detail


def test_online_failure_with_db_still_unknown(tmp_path: Path, mini_db: Path) -> None:
    port = free_port()
    result = audit_requirements(
        _reqs(tmp_path, "demo-pkg==9.0"),
        advisory_db=mini_db,
        online=True,
        timeout=2,
        osv_url=f"http://127.0.0.1:{port}/v1/query",
    )
    assert result.state == "unknown"


def test_missing_requirements_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        audit_requirements(tmp_path / "nope.txt")


def test_offline_service_is_a_pip_audit_service(mini_db: Path) -> None:
    from pip_audit._service.interface import VulnerabilityService

    assert isinstance(audit.OfflineAdvisoryService(mini_db), VulnerabilityService)


def test_gate_passes_states() -> None:
    assert gate_passes(AuditResult("clean"), allow_unknown=False)
    assert not gate_passes(AuditResult("unknown"), allow_unknown=False)
    assert gate_passes(AuditResult("unknown"), allow_unknown=True)
    assert not gate_passes(AuditResult("vulnerable"), allow_unknown=True)
