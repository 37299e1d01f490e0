"""The trust gates of a release, as plain functions returning ``GateResult``s.

Each turns a tool's verdict into a gate: only a definite "safe/clean/valid"
passes; a tool that could not decide makes the gate fail (fail closed).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.core.data import local_path
from mlops.core.errors import MlopsError, UsageError
from mlops.core.markdown import escape_markdown
from mlops.model.packaging import REQUIREMENTS_FILE
from mlops.release.decision import GateResult

if TYPE_CHECKING:
    from mlops.trust.audit import AuditResult
    from mlops.trust.quality import QualityResult
    from mlops.trust.requirements import Servability

logger = logging.getLogger(__name__)

DEFAULT_QUALITY_PATHS = "components,serving"


def _materialise(uri: str, work: Path) -> Path:
    """A local folder for a path or an ``s3://`` prefix (downloaded into ``work``)."""
    if uri.startswith("s3://"):
        from mlops.core.store import ObjectStore

        ObjectStore.from_env().download_dir(uri, work)
        return work
    path = local_path(uri)
    if not path.is_dir():
        raise UsageError(f"advisory database not found: {uri}")
    return path


def audit_gate(
    model_dir: Path, advisory_db_uri: str = "", allow_unknown: bool = False, online: bool = False
) -> tuple[GateResult, str]:
    """Audits the model's serving requirements.

    Args:
        model_dir: Model directory holding ``requirements.txt``.
        advisory_db_uri: Offline advisory database: a path, ``file://`` or ``s3://``
            prefix; empty for none (then only ``online`` can answer).
        allow_unknown: Let an audit that could not check pass, with a warning.
        online: Also ask the OSV web service.

    Returns:
        The ``dependency_audit`` gate and a Markdown report.
    """
    from mlops.trust.audit import audit_requirements

    requirements = Path(model_dir) / REQUIREMENTS_FILE
    with tempfile.TemporaryDirectory() as work:
        try:
            database = _materialise(advisory_db_uri, Path(work)) if advisory_db_uri else None
            result = audit_requirements(requirements, advisory_db=database, online=online)
        except MlopsError as exc:
            return _audit_could_not_run(exc)
    passed, detail, lines = _audit_report(result, allow_unknown)
    return GateResult("dependency_audit", passed, detail), "\n".join(lines) + "\n"


def _audit_report(result: AuditResult, allow_unknown: bool) -> tuple[bool, str, list[str]]:
    """An audit's verdict, its gate detail and its Markdown lines."""
    from mlops.trust.audit import gate_passes

    passed = gate_passes(result, allow_unknown)
    ids = ", ".join(sorted({f"{f.package}=={f.version} {f.id}" for f in result.findings}))
    detail = f"{result.state}: {result.detail}" + (f" ({ids})" if ids else "")
    if result.state == "unknown" and passed:
        detail = "WARNING allowed unknown audit result: " + detail
        logger.warning("dependency audit could not check; allowed explicitly: %s", result.detail)
    lines = [
        f"### Dependency audit: {'PASSED' if passed else 'FAILED'} ({result.state})",
        "",
        escape_markdown(result.detail),
        "",
        f"Packages checked: {result.checked}",
        "",
    ]
    if result.findings:
        lines += ["| Package | Version | Advisory | Fixed in |", "|---|---|---|---|"]
        lines += [
            f"| {escape_markdown(f.package)} | {escape_markdown(f.version)} | "
            f"{escape_markdown(f.id)} | {escape_markdown(', '.join(f.fixed_versions) or '-')} |"
            for f in result.findings
        ]
    return passed, detail, lines


def gate_outputs(gate: GateResult, markdown: str, report_path: str | Path) -> tuple[bool, str]:
    """Writes a gate's Markdown report and returns what a gate component outputs.

    The audit, scan and code-quality components all end this way.

    Args:
        gate: The gate's result.
        markdown: Its report, shown by the Kubeflow UI.
        report_path: Where the report goes (the component's ``Markdown`` artifact).

    Returns:
        ``(passed, gate JSON)``: the component's ``passed`` and ``gate`` outputs.
    """
    Path(report_path).write_text(markdown)
    return gate.passed, gate.to_json()


def scan_gate(model_dir: Path) -> tuple[GateResult, str]:
    """Scans every file of the model directory for code that runs on load.

    Untrusted skops types are named in the detail (``types outside the
    allow-list: ...``), as are pickles, wherever they hide.

    Args:
        model_dir: Model directory.

    Returns:
        The ``model_scan`` gate and a Markdown report.
    """
    from mlops.trust.scan import scan_path

    model_dir = Path(model_dir)
    result = scan_path(model_dir)
    if result.safe:
        detail = f"safe: {len(result.scanned)} file(s) scanned, no code-execution risk found"
    else:
        detail = "unsafe: " + "; ".join(
            f"{_relative(f['file'], model_dir)}: {f['detail']}" for f in result.findings
        )
    return GateResult("model_scan", result.safe, detail), _scan_report(result.safe, detail)


def _relative(file: str, base: Path) -> str:
    """``file`` relative to ``base`` when inside it (where the scan ran is nobody's business)."""
    path = Path(file)
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return path.name


def _scan_report(passed: bool, detail: str, title: str = "Model scan") -> str:
    return f"### {title}: {'PASSED' if passed else 'FAILED'}\n\n{escape_markdown(detail)}\n"


def resolve_code_paths(paths: str) -> list[Path]:
    """Resolves comma-separated paths or importable package names to folders.

    Args:
        paths: e.g. ``"components,serving"``; an existing path wins over a package.

    Returns:
        The folders to check.

    Raises:
        UsageError: An item is neither, or nothing was given.
    """
    resolved = []
    for item in (p.strip() for p in paths.split(",")):
        if not item:
            continue
        if Path(item).exists():
            resolved.append(Path(item))
            continue
        spec = importlib.util.find_spec(item)
        if spec is None or not spec.submodule_search_locations:
            raise UsageError(f"code path {item!r} is neither a path nor an importable package")
        resolved.extend(Path(p) for p in spec.submodule_search_locations)
    if not resolved:
        raise UsageError("no code paths given for the code-quality gate")
    return resolved


def quality_gate(
    paths: str = DEFAULT_QUALITY_PATHS, fail_on: str = "medium"
) -> tuple[GateResult, str]:
    """Runs ruff and bandit over the code that ships with the model.

    Args:
        paths: Comma-separated paths or package names (see :func:`resolve_code_paths`).
        fail_on: Lowest severity that fails the gate: low, medium or high.

    Returns:
        The ``code_quality`` gate and a Markdown report.
    """
    from mlops.trust.quality import check_code_quality

    result = check_code_quality(resolve_code_paths(paths), fail_on=fail_on)
    counts = ", ".join(f"{k}={v}" for k, v in result.counts.items())
    detail = f"{'passed' if result.passed else 'failed'} (fail on {fail_on}; {counts})"
    if result.detail:
        detail += f": {result.detail}"
    return GateResult("code_quality", result.passed, detail), result.markdown()


def _audit_could_not_run(exc: Exception) -> tuple[GateResult, str]:
    """The failed ``dependency_audit`` gate of an audit that could not start."""
    return (
        GateResult("dependency_audit", False, f"unknown: {exc}"),
        f"### Dependency audit: FAILED\n\n{escape_markdown(exc)}\n",
    )


# --- Gates over a data scientist's repository -----------------------------------------
# They run before any of the repository's code does (static gates): they read its files
# and never import, install or execute anything from it.

#: The name of the checked-in model's scan (see ``STATIC_GATES`` in mlops.release.decision).
REPOSITORY_SCAN_GATE = "repository_scan"

#: How many blocking findings a repository gate's detail names (the report has them all).
_DETAIL_FINDINGS = 10


def repository_quality_gate(
    repo_dir: Path, paths: list[Path], fail_on: str = "medium"
) -> tuple[GateResult, str]:
    """Runs ruff and bandit over a repository's Python files.

    Ruff applies the repository's own configuration when it has one
    (``.ruff.toml``, ``ruff.toml`` or ``pyproject.toml`` with ``[tool.ruff]``),
    else the project's fixed rules. Bandit applies the project's rules whatever
    the repository says: a ``.bandit`` file in it is not read and its ``# nosec``
    comments do not count, since the author cannot vouch for their own code here.

    Args:
        repo_dir: The fetched repository.
        paths: Its files (or folders) to check, inside ``repo_dir``.
        fail_on: Lowest severity that fails the gate: low, medium or high.

    Returns:
        The ``code_quality`` gate (its detail names the blocking findings, by
        path relative to the repository) and a Markdown report.

    Raises:
        UsageError: ``fail_on`` is not a severity.
    """
    from mlops.trust.quality import SEVERITIES, check_code_quality, repository_ruff_config

    if fail_on.lower() not in SEVERITIES:
        raise UsageError(f"fail_on must be one of {', '.join(SEVERITIES)}, got {fail_on!r}")
    repo_dir = Path(repo_dir)
    try:
        config = repository_ruff_config(repo_dir)
        result = check_code_quality(
            paths, fail_on, root=repo_dir, ruff_config=config, honour_nosec=False
        )
    except UsageError as exc:  # no files, a path outside, an unusable ruff config
        detail = f"failed: could not check the repository: {exc}"
        return GateResult("code_quality", False, detail), (
            f"### Code quality: FAILED\n\n{escape_markdown(detail)}\n"
        )
    rules = f"the repository's {config.name}" if config else "the project's rules"
    counts = ", ".join(f"{k}={v}" for k, v in result.counts.items())
    verdict = "passed" if result.passed else "failed"
    detail = f"{verdict} (fail on {result.fail_on}; {counts}; ruff: {rules})"
    if result.detail:
        detail += f": {result.detail}"
    blocking = _blocking_findings(result)
    if blocking:
        shown = blocking[:_DETAIL_FINDINGS]
        more = len(blocking) - len(shown)
        detail += " -- " + "; ".join(shown) + (f"; and {more} more" if more else "")
    markdown = result.markdown() + f"\nRuff rules: {escape_markdown(rules)}.\n"
    return GateResult("code_quality", result.passed, detail), markdown


def _blocking_findings(result: QualityResult) -> list[str]:
    """``file:line tool code (severity)`` for each finding at or above the threshold."""
    from mlops.trust.quality import SEVERITIES

    floor = SEVERITIES.index(result.fail_on)
    return [
        f"{f['file']}{':' + str(f['line']) if f['line'] else ''} {f['tool']} {f['code']} "
        f"({f['severity']})"
        for f in sorted(result.findings, key=lambda f: (f["file"], f["line"] or 0))
        if SEVERITIES.index(f["severity"]) >= floor
    ]


def repository_audit_gate(
    requirements: Path | None, advisory_db_uri: str = "", allow_unknown: bool = False
) -> tuple[GateResult, str]:
    """Checks a repository's requirements against the serving image, and audits both.

    The released model runs in the serving image, which installs nothing the
    repository asks for; so every requirement must be met by the image's locked
    version (else the gate fails naming the package). The audited set is the
    image's closure plus the repository's exact pins: a pin the image does not
    serve is audited too, so a known advisory for it is named as well.

    Args:
        requirements: The repository's requirements file; None when it has none
            (then the serving closure alone is audited, and the detail says so).
        advisory_db_uri: Offline advisory database: a path, ``file://`` or ``s3://``
            prefix; empty for none (the audit then cannot answer).
        allow_unknown: Let an audit that could not check pass, with a warning. It
            never lets through a requirement the image cannot serve.

    Returns:
        The ``dependency_audit`` gate and a Markdown report.
    """
    from mlops.trust.requirements import check_servable, serving_pins

    serving = serving_pins()
    if not serving:
        return _audit_could_not_run(
            UsageError("the serving image's packages are not installed here")
        )
    servability: Servability | None = None
    if requirements is not None:
        try:
            servability = check_servable(Path(requirements), serving)
        except UsageError as exc:
            return _audit_could_not_run(exc)
    with tempfile.TemporaryDirectory() as work:
        try:
            database = (
                _materialise(advisory_db_uri, Path(work) / "advisory-db")
                if advisory_db_uri
                else None
            )
        except MlopsError as exc:
            return _audit_could_not_run(exc)
        result = _audit_serving_and_pins(Path(work), serving, servability, database)
    audit_passed, audit_detail, lines = _audit_report(result, allow_unknown)
    return _repository_audit_outcome(requirements, servability, audit_passed, audit_detail, lines)


def _audit_serving_and_pins(
    work: Path, serving: dict[str, str], servability: Servability | None, database: Path | None
) -> AuditResult:
    """Audits the serving closure, and the repository's pins the image does not serve.

    Two flat files because one cannot name a package twice (pip-audit refuses it).
    """
    from mlops.trust.audit import audit_requirements, combine_results
    from mlops.trust.requirements import pin_lines

    closure = work / "serving-requirements.txt"
    closure.write_text(pin_lines({name: f"=={version}" for name, version in serving.items()}))
    results = [_labelled("serving image", audit_requirements(closure, advisory_db=database))]
    if servability is not None and servability.unserved_pins:
        pins = work / "repository-pins.txt"
        pins.write_text(pin_lines(servability.unserved_pins))
        audited = audit_requirements(pins, advisory_db=database)
        results.append(_labelled("repository pins the image does not serve", audited))
    return combine_results(results)


def _labelled(label: str, result: AuditResult) -> AuditResult:
    return dataclasses.replace(result, detail=f"{label}: {result.detail}")


def _repository_audit_outcome(
    requirements: Path | None,
    servability: Servability | None,
    audit_passed: bool,
    audit_detail: str,
    audit_lines: list[str],
) -> tuple[GateResult, str]:
    """The gate and report: requirement problems first, then the audit's verdict."""
    reasons: list[str] = []
    if servability is None:
        note = "no requirements file in the repository: audited the serving image's closure alone"
    else:
        reasons = [*servability.problems, *servability.unservable]
        note = (
            f"{Path(requirements or '').name}: {servability.checked} requirement(s) checked "
            "against the serving image"
            + (
                f", {len(servability.skipped)} skipped by their marker"
                if servability.skipped
                else ""
            )
        )
    passed = audit_passed and not reasons
    detail = "; ".join([*reasons, audit_detail, note])
    heading = f"### Dependency audit: {'PASSED' if passed else 'FAILED'}"
    lines = [heading, "", escape_markdown(note), ""]
    if reasons:
        lines += ["#### Requirements the serving image cannot meet", ""]
        lines += [f"- {escape_markdown(reason)}" for reason in reasons]
        lines.append("")
    if servability is not None and servability.skipped:
        lines += ["Skipped (marker false for the serving interpreter):", ""]
        lines += [f"- {escape_markdown(item)}" for item in servability.skipped]
        lines.append("")
    # The audit's own section, one level down.
    lines += [audit_lines[0].replace("### Dependency audit", "#### Advisories"), *audit_lines[1:]]
    return GateResult("dependency_audit", passed, detail), "\n".join(lines) + "\n"


def repository_model_scan_gate(model_file: Path | None) -> tuple[GateResult, str]:
    """Statically scans a model file checked into the repository; never loads it.

    Args:
        model_file: The checked-in model, or None when the repository has none.

    Returns:
        The ``repository_scan`` gate (a static gate, apart from the trained
        candidate's ``model_scan``) and a Markdown report: only a ``.skops`` file
        with no pickle content and only allow-listed types passes.
    """
    from mlops.trust.scan import SKOPS_SUFFIX, scan_path

    if model_file is None:
        return _repository_scan(True, "safe: no checked-in model")
    model_file = Path(model_file)
    if not model_file.is_file():
        return _repository_scan(False, f"unsafe: checked-in model {model_file.name} is not a file")
    reasons: list[str] = []
    if model_file.suffix.lower() != SKOPS_SUFFIX:
        reasons.append(f"only .skops models are accepted, not {model_file.name}")
    result = scan_path(model_file)
    reasons += [f"{model_file.name}: {f['detail']}" for f in result.findings]
    if reasons:
        return _repository_scan(False, "unsafe: " + "; ".join(reasons))
    return _repository_scan(
        True, f"safe: {model_file.name} holds only allow-listed types and no pickle data"
    )


def _repository_scan(passed: bool, detail: str) -> tuple[GateResult, str]:
    return GateResult(REPOSITORY_SCAN_GATE, passed, detail), _scan_report(
        passed, detail, "Checked-in model scan"
    )
