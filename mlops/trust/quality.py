"""Code-quality and security lint gate: ruff + bandit, run as subprocesses.

Severity model (``low`` < ``medium`` < ``high``):

* bandit: its own ``issue_severity`` (LOW / MEDIUM / HIGH); a file bandit
  cannot parse is a ``high`` finding (it was not analysed).
* ruff: ``low``, except real errors, which are ``high``: rule codes starting
  with ``F`` (pyflakes: undefined names, bad calls...) or ``E9`` (syntax / IO
  errors), and syntax errors. The pyflakes *hygiene* rules in
  :data:`RUFF_LOW_EXCEPTIONS` (unused import / variable, placeholder-less
  f-string) stay ``low``.

Findings at or above ``fail_on`` fail the gate. A tool that cannot run or whose
output cannot be parsed fails the gate too (fail closed).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess  # nosec B404 - runs ruff/bandit with a fixed argv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.core.errors import UsageError
from mlops.core.markdown import escape_markdown

logger = logging.getLogger(__name__)

SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
_RANK = {name: i for i, name in enumerate(SEVERITIES)}

RUFF_HIGH_PREFIXES: tuple[str, ...] = ("F", "E9")
RUFF_LOW_EXCEPTIONS: frozenset[str] = frozenset({"F401", "F841", "F541"})

#: Folders bandit skips (its defaults plus virtualenvs and build output).
BANDIT_EXCLUDES = ".venv,venv,.git,__pycache__,.tox,.nox,.eggs,*.egg,node_modules,build,dist"

TOOL_TIMEOUT_SECONDS = 300


@dataclass
class QualityResult:
    """Outcome of :func:`check_code_quality`.

    Attributes:
        passed: False when a finding reaches ``fail_on`` or a tool failed.
        counts: Number of findings per severity (``low``, ``medium``, ``high``).
        findings: Dicts with ``tool``, ``code``, ``severity``, ``file``,
            ``line``, ``message``.
        fail_on: The threshold used.
        detail: Summary, including tool failures.
    """

    passed: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    findings: list[dict[str, Any]] = field(default_factory=list)
    fail_on: str = "medium"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict."""
        return {
            "passed": self.passed,
            "counts": dict(self.counts),
            "findings": [dict(f) for f in self.findings],
            "fail_on": self.fail_on,
            "detail": self.detail,
        }

    def markdown(self) -> str:
        """Renders a Markdown summary: verdict, counts table, findings table.

        File names, rule codes, messages and the detail can come from the checked
        code (a model author's repository), so each is escaped
        (:func:`~mlops.core.markdown.escape_markdown`): a finding cannot inject
        Markdown or HTML into the Kubeflow UI.
        """
        cell = escape_markdown
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"### Code quality: {verdict} (fail on: {cell(self.fail_on)})",
            "",
        ]
        if self.detail:
            lines += [cell(self.detail), ""]
        lines += ["| Severity | Count |", "|---|---:|"]
        lines += [f"| {sev} | {self.counts.get(sev, 0)} |" for sev in reversed(SEVERITIES)]
        if self.findings:
            lines += [
                "",
                "| Severity | Tool | Rule | Location | Message |",
                "|---|---|---|---|---|",
            ]
            ordered = sorted(
                self.findings,
                key=lambda f: (-_RANK.get(f["severity"], 0), f["file"], f["line"] or 0),
            )
            for f in ordered:
                location = f"{f['file']}:{f['line']}" if f["line"] else f["file"]
                lines.append(
                    f"| {cell(f['severity'])} | {cell(f['tool'])} | {cell(f['code'])} | "
                    f"{cell(location)} | {cell(f['message'])} |"
                )
        else:
            lines += ["", "No findings."]
        return "\n".join(lines) + "\n"


#: The gate's fixed ruff rule set: pycodestyle errors and warnings, pyflakes, bugbear.
RUFF_RULES = ("E", "F", "W", "B")


def ruff_severity(code: str | None) -> str:
    """Maps a ruff rule code to a severity.

    Args:
        code: The rule code (``None`` / non-rule codes such as
            ``invalid-syntax`` are syntax errors).

    Returns:
        ``high`` for errors, ``low`` otherwise.
    """
    if not code or not code[:1].isalpha() or "-" in code:
        return "high"  # syntax errors are reported without a rule code
    if code in RUFF_LOW_EXCEPTIONS:
        return "low"
    return "high" if code.startswith(RUFF_HIGH_PREFIXES) else "low"


def _run_json(tool: str, *args: str, cwd: Path | None = None) -> Any:
    """Runs ``python -m <tool> <args>`` and parses its JSON report from stdout.

    Exit codes 0 (clean) and 1 (findings) are both normal for ruff and bandit.

    Raises:
        RuntimeError: The tool failed (any other exit code).
        json.JSONDecodeError: Its output is not JSON.
    """
    argv = [sys.executable, "-m", tool, *args]
    logger.debug("running %s", " ".join(argv))
    proc = subprocess.run(  # nosec B603 - fixed argv, no shell
        argv,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
        cwd=cwd,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{tool} exited {proc.returncode}: {proc.stderr.strip()[:500]}")
    return json.loads(proc.stdout or "null")


@dataclass(frozen=True)
class _Checks:
    """How the tools run: whose ruff rules, from where, and whether ``# nosec`` counts."""

    ruff_config: Path | None = None
    root: Path | None = None
    honour_nosec: bool = True


def _ruff_args(checks: _Checks) -> list[str]:
    if checks.ruff_config is None:
        # --isolated: the gate applies its own rules wherever it runs; a pyproject.toml next
        # to the linted code (ours or the model author's) can neither add nor switch off rules.
        return [
            "--isolated",
            "--select",
            ",".join(RUFF_RULES),
            "--ignore",
            "E501",  # line length is the formatter's business, not a quality finding
        ]
    # The repository's own rules, named explicitly so that no configuration above the
    # repository (the checkout's parents, the user's) leaks in; --no-force-exclude: its
    # exclude patterns cannot hide a file the gate was asked to check.
    return ["--config", str(checks.ruff_config), "--no-force-exclude"]


def _ruff(paths: Sequence[Path], checks: _Checks) -> list[dict[str, Any]]:
    items = _run_json(
        "ruff",
        "check",
        *_ruff_args(checks),
        "--output-format",
        "json",
        "--no-cache",
        *map(str, paths),
        cwd=checks.root,
    )
    if not isinstance(items, list):
        raise RuntimeError("ruff produced no JSON report")
    return [
        {
            "tool": "ruff",
            "code": item.get("code") or "syntax",
            "severity": ruff_severity(item.get("code")),
            "file": item.get("filename", ""),
            "line": (item.get("location") or {}).get("row"),
            "message": item.get("message", ""),
        }
        for item in items
    ]


def _bandit_severity(value: Any) -> str:
    """Lower-cases bandit's ``issue_severity``; anything unrecognised counts as ``high``."""
    severity = str(value).lower()
    return severity if severity in _RANK else "high"


def _bandit(paths: Sequence[Path], checks: _Checks) -> list[dict[str, Any]]:
    # --ini os.devnull: bandit would otherwise adopt a `.bandit` file found under a checked
    # folder, and with it that file's skipped tests and excluded paths.
    args = ["-r", "-f", "json", "-q", "-x", BANDIT_EXCLUDES, "--ini", os.devnull]
    if not checks.honour_nosec:
        args.append("--ignore-nosec")
    report = _run_json("bandit", *args, *map(str, paths))
    if not isinstance(report, dict) or "results" not in report:
        raise RuntimeError("bandit produced no JSON report")
    findings = [
        {
            "tool": "bandit",
            "code": item.get("test_id", ""),
            "severity": _bandit_severity(item.get("issue_severity")),
            "file": item.get("filename", ""),
            "line": item.get("line_number"),
            "message": item.get("issue_text", ""),
        }
        for item in report["results"]
    ]
    findings += [
        {
            "tool": "bandit",
            "code": "error",
            "severity": "high",
            "file": err.get("filename", ""),
            "line": None,
            "message": f"not analysed: {err.get('reason', 'unknown error')}",
        }
        for err in report.get("errors", [])
    ]
    return findings


def check_code_quality(
    paths: Sequence[Path],
    fail_on: str = "medium",
    *,
    root: Path | None = None,
    ruff_config: Path | None = None,
    honour_nosec: bool = True,
) -> QualityResult:
    """Runs ruff and bandit over source paths and applies a severity threshold.

    Args:
        paths: Files or folders to check.
        fail_on: Lowest severity that fails the gate: ``low``, ``medium`` or ``high``.
        root: The folder the code belongs to (a model repository): every path must
            lie inside it, ruff runs from it and findings name files relative to it.
            Without it, findings are relative to the common folder of ``paths``.
        ruff_config: A ruff configuration file to apply instead of the project's fixed
            rules (:data:`RUFF_RULES`); see :func:`repository_ruff_config`.
        honour_nosec: Let ``# nosec`` comments in the code silence bandit findings.

    Returns:
        The gate result; never raises for tool failures (they fail the gate).

    Raises:
        UsageError: Bad ``fail_on``, no paths, a path that does not exist or lies
            outside ``root``.
    """
    fail_on = fail_on.lower()
    if fail_on not in _RANK:
        raise UsageError(f"fail_on must be one of {', '.join(SEVERITIES)}, got {fail_on!r}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise UsageError("no paths to check")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"path(s) not found: {', '.join(missing)}")
    if root is not None:
        root = Path(root).resolve()
        paths = [p.resolve() for p in paths]
        outside = [str(p) for p in paths if not p.is_relative_to(root)]
        if outside:
            raise UsageError(f"path(s) outside {root}: {', '.join(outside)}")

    checks = _Checks(ruff_config=ruff_config, root=root, honour_nosec=honour_nosec)
    findings, failures = _run_tools(paths, checks)
    _relativise(findings, paths, root)

    counts = dict.fromkeys(SEVERITIES, 0)
    for f in findings:
        counts[f["severity"]] += 1
    blocking = sum(n for sev, n in counts.items() if _RANK[sev] >= _RANK[fail_on])
    passed = not failures and blocking == 0
    parts = list(failures)
    parts.append(f"{len(findings)} finding(s), {blocking} at or above {fail_on}")
    return QualityResult(
        passed=passed,
        counts=counts,
        findings=findings,
        fail_on=fail_on,
        detail="; ".join(parts),
    )


def _run_tools(paths: Sequence[Path], checks: _Checks) -> tuple[list[dict[str, Any]], list[str]]:
    """Runs ruff then bandit over ``paths``.

    Returns:
        The findings of both, and one message per tool that failed to run (a
        failure is reported, never raised, so that it fails the gate).
    """
    findings: list[dict[str, Any]] = []
    failures: list[str] = []
    for name, tool in (("ruff", _ruff), ("bandit", _bandit)):
        try:
            findings.extend(tool(paths, checks))
        except Exception as exc:  # not installed, timeout, bad JSON...
            logger.warning("%s failed: %s", name, exc)
            failures.append(f"{name} failed to run: {exc}")
    return findings, failures


def _relativise(findings: list[dict[str, Any]], paths: Sequence[Path], root: Path | None) -> None:
    """Rewrites absolute finding paths relative to ``root`` or what was checked, in place.

    Absolute paths say where the checker ran (a pod, a laptop), not where the
    code lives.
    """
    if root is not None:
        base = root
    else:
        resolved = [p.resolve() for p in paths]
        base = Path(os.path.commonpath(resolved))
        if base in resolved:  # one folder (or file): keep its own name in the paths
            base = base.parent
    for f in findings:
        if f["file"] and os.path.isabs(f["file"]):
            f["file"] = os.path.relpath(f["file"], base)


#: Ruff's configuration files in the order ruff prefers them within one folder.
RUFF_CONFIG_FILES: tuple[str, ...] = (".ruff.toml", "ruff.toml", "pyproject.toml")

#: How many ``extend`` hops a repository's ruff configuration may take.
_MAX_EXTENDS = 10


def repository_ruff_config(root: Path) -> Path | None:
    """The ruff configuration a repository brings, if any.

    Ruff's own discovery order: ``.ruff.toml``, then ``ruff.toml``, then a
    ``pyproject.toml`` with a ``[tool.ruff]`` table. A configuration may
    ``extend`` others, but only files inside the repository.

    Args:
        root: The repository folder.

    Returns:
        The configuration file, or None when the repository has none.

    Raises:
        UsageError: A configuration file is not valid TOML, or extends a file
            outside the repository (or one named through ``~`` / ``$`` expansion).
    """
    root = Path(root).resolve()
    for name in RUFF_CONFIG_FILES:
        candidate = root / name
        if not candidate.is_file():
            continue
        if not candidate.resolve().is_relative_to(root):
            raise UsageError(f"{name} is a link to a file outside the repository")
        table = _ruff_table(candidate, root)
        if table is None:  # a pyproject.toml without [tool.ruff]: ruff skips it too
            continue
        _check_extends(candidate, table, root)
        return candidate
    return None


def _ruff_table(path: Path, root: Path) -> dict[str, Any] | None:
    """The ruff settings in a configuration file (None for a pyproject.toml without them).

    Raises:
        UsageError: The file is not valid TOML.
    """
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path.relative_to(root)}: {exc}") from exc
    if path.name != "pyproject.toml":
        return data
    tool = data.get("tool")
    ruff = tool.get("ruff") if isinstance(tool, dict) else None
    return ruff if isinstance(ruff, dict) else None


def _check_extends(path: Path, table: dict[str, Any], root: Path) -> None:
    """Follows a configuration's ``extend`` chain; every link must stay inside ``root``.

    Raises:
        UsageError: A link leaves the repository, cannot be read, or the chain is too long.
    """
    for _ in range(_MAX_EXTENDS):
        extend = table.get("extend")
        if extend is None:
            return
        label = path.relative_to(root)
        if not isinstance(extend, str) or "~" in extend or "$" in extend:
            raise UsageError(f"{label}: extend = {extend!r} must be a plain relative path")
        target = (path.parent / extend).resolve()
        if not target.is_relative_to(root):
            raise UsageError(f"{label}: extend = {extend!r} points outside the repository")
        if not target.is_file():
            raise UsageError(f"{label}: extend = {extend!r} is not a file in the repository")
        path = target
        table = _ruff_table(path, root) or {}
    raise UsageError(f"ruff configuration extends more than {_MAX_EXTENDS} files")
