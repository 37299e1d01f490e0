"""Tests for mlops.trust.quality: ruff + bandit gate on tiny source trees."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlops.core.errors import UsageError
from mlops.trust import quality
from mlops.trust.quality import check_code_quality


def _tree(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    for name, body in files.items():
        (root / f"{name}.py").write_text(body)
    return root


def test_clean_code_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, good="def add(a: int, b: int) -> int:\n    return a + b\n")
    result = check_code_quality([root])
    assert result.passed, result.detail
    assert result.counts == {"low": 0, "medium": 0, "high": 0}
    assert "PASSED" in result.markdown()


def test_eval_input_fails_with_bandit(tmp_path: Path) -> None:
    root = _tree(tmp_path, bad="def run():\n    return eval(input())\n")
    result = check_code_quality([root])
    assert not result.passed
    hits = [f for f in result.findings if f["tool"] == "bandit" and f["code"] == "B307"]
    assert hits and hits[0]["severity"] == "medium" and hits[0]["line"] == 2


def test_shell_true_is_high(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        bad="import subprocess\n\n\ndef run(x):\n    return subprocess.call(x, shell=True)\n",
    )
    result = check_code_quality([root], fail_on="high")
    assert not result.passed
    assert any(f["code"] == "B602" and f["severity"] == "high" for f in result.findings)
    md = result.markdown()
    assert "FAILED" in md and "B602" in md and "| high |" in md


def test_unused_import_is_low(tmp_path: Path) -> None:
    root = _tree(tmp_path, lint="import json\n\n\ndef f():\n    return 1\n")
    result = check_code_quality([root])
    unused = [f for f in result.findings if f["code"] == "F401"]
    assert unused and unused[0]["severity"] == "low"
    assert result.passed  # low is below the default medium threshold
    assert not check_code_quality([root], fail_on="low").passed


def test_undefined_name_is_high(tmp_path: Path) -> None:
    root = _tree(tmp_path, err="def f():\n    return undefined_thing\n")
    result = check_code_quality([root], fail_on="high")
    assert not result.passed
    assert any(f["code"] == "F821" and f["severity"] == "high" for f in result.findings)


def test_syntax_error_fails_closed(tmp_path: Path) -> None:
    root = _tree(tmp_path, broken="def (:\n")
    result = check_code_quality([root], fail_on="high")
    assert not result.passed
    assert {f["tool"] for f in result.findings if f["severity"] == "high"} == {"ruff", "bandit"}


def test_tool_failure_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path, good="X = 1\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    result = check_code_quality([root])
    assert not result.passed
    assert "ruff failed to run" in result.detail and "bandit failed to run" in result.detail


@pytest.mark.parametrize(
    ("code", "severity"),
    [
        ("F401", "low"),
        ("F821", "high"),
        ("E902", "high"),
        ("E501", "low"),
        ("W291", "low"),
        (None, "high"),
        ("invalid-syntax", "high"),
    ],
)
def test_ruff_severity(code: str | None, severity: str) -> None:
    assert quality.ruff_severity(code) == severity


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        check_code_quality([tmp_path], fail_on="critical")
    with pytest.raises(UsageError):
        check_code_quality([tmp_path / "missing"])
    with pytest.raises(UsageError):
        check_code_quality([])
