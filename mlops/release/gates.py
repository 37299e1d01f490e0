"""The trust gates of a release, as plain functions returning ``GateResult``s.

Each turns a tool's verdict into a gate: only a definite "safe/clean/valid"
passes; a tool that could not decide makes the gate fail (fail closed).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from pathlib import Path

from mlops.core.data import local_path
from mlops.core.errors import MlopsError, UsageError, VerificationError
from mlops.core.settings import signing_key_paths
from mlops.model.packaging import REQUIREMENTS_FILE, SIGNATURE_FILE
from mlops.release.decision import GateResult

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
    from mlops.trust.audit import audit_requirements, gate_passes

    requirements = Path(model_dir) / REQUIREMENTS_FILE
    with tempfile.TemporaryDirectory() as work:
        try:
            database = _materialise(advisory_db_uri, Path(work)) if advisory_db_uri else None
            result = audit_requirements(requirements, advisory_db=database, online=online)
        except MlopsError as exc:
            return GateResult(
                "dependency_audit", False, f"unknown: {exc}"
            ), f"### Dependency audit: FAILED\n\n{exc}\n"
    passed = gate_passes(result, allow_unknown)
    ids = ", ".join(sorted({f"{f.package}=={f.version} {f.id}" for f in result.findings}))
    detail = f"{result.state}: {result.detail}" + (f" ({ids})" if ids else "")
    if result.state == "unknown" and passed:
        detail = "WARNING allowed unknown audit result: " + detail
        logger.warning("dependency audit could not check; allowed explicitly: %s", result.detail)
    lines = [
        f"### Dependency audit: {'PASSED' if passed else 'FAILED'} ({result.state})",
        "",
        result.detail,
        "",
        f"Packages checked: {result.checked}",
        "",
    ]
    if result.findings:
        lines += ["| Package | Version | Advisory | Fixed in |", "|---|---|---|---|"]
        lines += [
            f"| {f.package} | {f.version} | {f.id} | {', '.join(f.fixed_versions) or '-'} |"
            for f in result.findings
        ]
    return GateResult("dependency_audit", passed, detail), "\n".join(lines) + "\n"


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

    Args:
        model_dir: Model directory.

    Returns:
        The ``model_scan`` gate and a Markdown report.
    """
    from mlops.trust.scan import scan_path

    result = scan_path(Path(model_dir))
    if result.safe:
        detail = f"safe: {len(result.scanned)} file(s) scanned, no code-execution risk found"
    else:
        detail = "unsafe: " + "; ".join(f"{f['file']}: {f['detail']}" for f in result.findings)
    lines = [f"### Model scan: {'PASSED' if result.safe else 'FAILED'}", "", detail, ""]
    return GateResult("model_scan", result.safe, detail), "\n".join(lines)


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


def signature_gate(model_dir: Path, signed_dir: Path) -> GateResult:
    """Copies the model to ``signed_dir``, signs it and verifies the signature.

    Verification uses the public key that serving will use, so a key mismatch
    is caught here, before anything is published.

    Args:
        model_dir: The unsigned model directory (left untouched).
        signed_dir: Where the signed copy goes; replaced if it exists.

    Returns:
        The ``signature`` gate; a missing or mismatched key fails it.
    """
    from mlops.trust.signing import sign_model_dir, verify_model_dir

    private_key, public_key = signing_key_paths()
    signed_dir = Path(signed_dir)
    if signed_dir.exists():
        shutil.rmtree(signed_dir)
    shutil.copytree(model_dir, signed_dir)
    (signed_dir / SIGNATURE_FILE).unlink(missing_ok=True)
    try:
        sign_model_dir(signed_dir, private_key, SIGNATURE_FILE)
        verify_model_dir(signed_dir, public_key, SIGNATURE_FILE)
    except (UsageError, VerificationError) as exc:
        return GateResult("signature", False, f"invalid: {exc}")
    return GateResult("signature", True, f"valid: signed and verified with {public_key.name}")
