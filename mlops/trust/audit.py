"""Dependency vulnerability audit of an exactly pinned requirements file.

Uses pip-audit's machinery (``RequirementSource`` to read the pins, the
``Auditor`` to de-duplicate results, ``VulnerabilityService`` for lookups) and
adds an offline service, :class:`OfflineAdvisoryService`, backed by a local copy
of the PyPA advisory database (OSV records in ``vulns/<package>/<ID>.yaml``).

The audit fails *closed*. pip-audit on its own reports "No known
vulnerabilities found" when it could not ask anybody; here every situation in
which the answer is not known for every pinned package yields state
``"unknown"``: unpinned requirements, no advisory database, a network or
service error, an unreadable advisory, a package that could not be audited.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops.core.errors import UsageError

if TYPE_CHECKING:
    from packaging.version import Version
    from pip_audit._service.interface import Dependency, VulnerabilityResult

logger = logging.getLogger(__name__)

AuditState = Literal["clean", "vulnerable", "unknown"]


@dataclass(frozen=True)
class Finding:
    """One known vulnerability affecting one pinned package."""

    package: str
    version: str
    id: str
    aliases: list[str] = field(default_factory=list)
    fixed_versions: list[str] = field(default_factory=list)
    summary: str = ""


@dataclass
class AuditResult:
    """Outcome of :func:`audit_requirements`.

    Attributes:
        state: ``clean`` (every package checked, nothing found), ``vulnerable``
            (at least one finding) or ``unknown`` (the audit could not give a
            complete answer; see ``detail``).
        findings: Vulnerabilities found (may be non-empty even when ``unknown``).
        detail: Human-readable explanation.
        checked: Number of packages actually checked.
    """

    state: AuditState
    findings: list[Finding] = field(default_factory=list)
    detail: str = ""
    checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict."""
        return {
            "state": self.state,
            "findings": [asdict(f) for f in self.findings],
            "detail": self.detail,
            "checked": self.checked,
        }


def gate_passes(result: AuditResult, allow_unknown: bool) -> bool:
    """Decides whether an audit result lets a release through.

    Args:
        result: The audit result.
        allow_unknown: Let an ``unknown`` result pass (never a ``vulnerable`` one).

    Returns:
        True for ``clean``; True for ``unknown`` only when ``allow_unknown``.
    """
    if result.state == "clean":
        return True
    return allow_unknown and result.state == "unknown"


def combine_results(results: Sequence[AuditResult]) -> AuditResult:
    """One result for several audits (files that cannot be one: a package twice).

    Args:
        results: The audits, at least one.

    Returns:
        ``unknown`` if any audit is, else ``vulnerable`` if any is, else ``clean``;
        the findings and checked counts of all, their details joined.

    Raises:
        UsageError: No result was given.
    """
    if not results:
        raise UsageError("no audit results to combine")
    states = {r.state for r in results}
    state: AuditState = (
        "unknown" if "unknown" in states else "vulnerable" if "vulnerable" in states else "clean"
    )
    return AuditResult(
        state,
        findings=[f for r in results for f in r.findings],
        detail="; ".join(r.detail for r in results if r.detail),
        checked=sum(r.checked for r in results),
    )


def resolve_vulns_dir(advisory_db: Path) -> Path:
    """Finds the ``vulns`` folder of an advisory database checkout.

    Args:
        advisory_db: Either the database root (containing ``vulns/``) or the
            ``vulns`` folder itself.

    Returns:
        The folder holding one sub-folder per package.

    Raises:
        UsageError: The path is not a directory.
    """
    advisory_db = Path(advisory_db)
    if not advisory_db.is_dir():
        raise UsageError(f"advisory database not found: {advisory_db}")
    if (advisory_db / "vulns").is_dir():
        return advisory_db / "vulns"
    return advisory_db


def _parse_version(text: Any) -> Version:
    from packaging.version import Version

    return Version(str(text))


#: Replay order of OSV range events that share a version.
_EVENT_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 2}


def _sorted_events(events: list[Mapping[str, Any]]) -> list[tuple[str, Version | None]]:
    """The ``(kind, version)`` events of one range, lowest version first.

    ``introduced: "0"`` (version ``None``) sorts before everything; unknown
    event kinds are dropped.

    Raises:
        packaging.version.InvalidVersion: An event version does not parse.
    """
    keyed: list[tuple[tuple[Any, ...], str, Version | None]] = []
    for event in events:
        for kind, raw in event.items():
            if kind not in _EVENT_ORDER:
                continue
            if kind == "introduced" and str(raw) == "0":
                keyed.append(((0,), kind, None))
            else:
                bound = _parse_version(raw)
                keyed.append(((1, bound, _EVENT_ORDER[kind]), kind, bound))
    keyed.sort(key=lambda item: item[0])
    return [(kind, bound) for _, kind, bound in keyed]


def _range_affects(version: Version, events: list[Mapping[str, Any]]) -> bool:
    """Evaluates one OSV ECOSYSTEM/SEMVER range for a version.

    Events are sorted by version (``introduced: "0"`` is the lowest) and
    replayed: ``introduced`` opens an affected interval, ``fixed`` and ``limit``
    close it at that version, ``last_affected`` closes it just after.

    Raises:
        packaging.version.InvalidVersion: An event version does not parse.
    """
    affected = False
    for kind, bound in _sorted_events(events):
        if bound is None:  # introduced "0": affected from the very first version
            affected = True
        elif kind == "introduced":
            affected = affected or version >= bound
        elif kind == "last_affected":
            affected = affected and version <= bound
        else:  # fixed, limit
            affected = affected and version < bound
    return affected


def _affects(record: Mapping[str, Any], name: str, version: Version) -> tuple[bool, list[str]]:
    """Tells whether an OSV record affects ``name==version``; returns fixed versions too."""
    from packaging.utils import canonicalize_name

    hit = False
    fixed: list[str] = []
    for affected in record.get("affected") or []:
        pkg = affected.get("package") or {}
        if pkg.get("ecosystem") != "PyPI" or canonicalize_name(str(pkg.get("name", ""))) != name:
            continue
        for listed in affected.get("versions") or []:
            try:
                if _parse_version(listed) == version:
                    hit = True
            except ValueError:
                if str(listed) == str(version):
                    hit = True
        for rng in affected.get("ranges") or []:
            if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
                continue
            events = rng.get("events") or []
            if _range_affects(version, events):
                hit = True
            fixed.extend(str(e["fixed"]) for e in events if "fixed" in e)
    return hit, fixed


class _OfflineServiceMixin:
    """Implementation shared by the pip-audit subclass built lazily below."""

    def __init__(self, advisory_db: Path) -> None:
        from packaging.utils import canonicalize_name

        self.vulns_dir = resolve_vulns_dir(advisory_db)
        self._packages: dict[str, Path] = {
            canonicalize_name(p.name): p for p in self.vulns_dir.iterdir() if p.is_dir()
        }
        if not self._packages:
            raise UsageError(f"advisory database {advisory_db} holds no package folders")

    def _records(self, name: str) -> Iterator[tuple[Path, Mapping[str, Any]]]:
        import json

        import yaml

        folder = self._packages.get(name)
        if folder is None:
            return
        for path in sorted(folder.iterdir()):
            if path.suffix not in (".yaml", ".yml", ".json"):
                continue
            try:
                text = path.read_text(encoding="utf-8")
                record = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            except Exception as exc:
                raise ValueError(f"cannot read {path}: {exc}") from exc
            if not isinstance(record, dict) or "id" not in record:
                raise ValueError(f"{path} is not an OSV record")
            yield path, record

    def query(self, spec: Dependency) -> tuple[Dependency, list[VulnerabilityResult]]:
        """Looks a resolved dependency up in the local advisory database.

        Raises:
            pip_audit._service.interface.ServiceError: An advisory for this
                package could not be read or evaluated.
        """
        from pip_audit._service.interface import ServiceError

        if spec.is_skipped():
            return spec, []
        version = spec.version
        results: list[VulnerabilityResult] = []
        where = ""
        try:
            records = list(self._records(spec.canonical_name))  # read errors name the file
            for path, record in records:
                where = f" (in {path.name})"
                if record.get("withdrawn"):
                    logger.debug("skipping withdrawn advisory %s", record["id"])
                    continue
                hit, fixed = _affects(record, spec.canonical_name, version)
                if hit:
                    results.append(_vulnerability_result(record, fixed))
        except ServiceError:
            raise
        except Exception as exc:
            raise ServiceError(
                f"cannot evaluate advisories for {spec.canonical_name}{where}: "
                + " ".join(str(exc).split())
            ) from exc
        return spec, results


def _vulnerability_result(record: Mapping[str, Any], fixed: list[str]) -> VulnerabilityResult:
    """pip-audit's result for one OSV record that affects the package.

    Raises:
        packaging.version.InvalidVersion: A fixed version does not parse.
    """
    from pip_audit._service.interface import VulnerabilityID, VulnerabilityResult

    description = record.get("summary") or record.get("details") or "N/A"
    # Keep the advisory's own ID as the primary one (pip-audit's ``create``
    # would promote a CVE alias over non-PYSEC IDs).
    record_id = str(record["id"])
    return VulnerabilityResult(
        id=VulnerabilityID(record_id),
        description=" ".join(str(description).split()),
        fix_versions=sorted({_parse_version(v) for v in fixed}),
        aliases={
            VulnerabilityID(str(a)) for a in record.get("aliases") or [] if str(a) != record_id
        },
        published=None,
    )


def OfflineAdvisoryService(advisory_db: Path) -> Any:  # noqa: N802 - acts as a class
    """Builds a pip-audit ``VulnerabilityService`` backed by a local advisory DB.

    The class is created on first use so that importing this module does not
    import pip-audit.

    Args:
        advisory_db: The database root (containing ``vulns/``) or ``vulns`` itself.

    Returns:
        An instance of a ``pip_audit._service.interface.VulnerabilityService``
        subclass.
    """
    return _offline_service_class()(advisory_db)


@functools.cache
def _offline_service_class() -> type:
    """Builds the pip-audit service class once, on first use."""
    from pip_audit._service.interface import VulnerabilityService

    class _OfflineAdvisoryService(_OfflineServiceMixin, VulnerabilityService):
        """pip-audit service answering from a local OSV advisory database."""

    return _OfflineAdvisoryService


def _combined_service(services: list[Any]) -> Any:
    """A service querying several services and concatenating their answers."""
    from pip_audit._service.interface import VulnerabilityService

    class _Combined(VulnerabilityService):
        def query(self, spec: Dependency) -> tuple[Dependency, list[VulnerabilityResult]]:
            results: list[VulnerabilityResult] = []
            for service in services:
                spec, found = service.query(spec)
                results.extend(found)
            return spec, results

    return _Combined()


def _check_pins(requirements: Path) -> tuple[list[str], list[str]]:
    """Returns ``(pinned names, problems)`` for a requirements file.

    Every requirement must be ``name==version`` (or ``===``) with no wildcard;
    URL, editable, unversioned and range requirements are problems. Names are
    canonicalised, as pip-audit reports them.
    """
    from packaging.utils import canonicalize_name
    from pip_requirements_parser import RequirementsFile

    rf = RequirementsFile.from_file(str(requirements))
    problems = [
        f"line {bad.line_number}: {bad.line.strip()} ({bad.error_message})"
        for bad in rf.invalid_lines
    ]
    # Nested files would not be audited by pip-audit's requirement source.
    problems += [
        f"{opt.line.strip()} (nested requirement/constraint files are not audited; "
        "pass a single flat, pinned file)"
        for opt in rf.options
        if {"requirements", "constraints"} & set(opt.options)
    ]
    pinned: list[str] = []
    for req in rf.requirements:
        line = req.requirement_line.line.strip() if req.requirement_line else str(req)
        if req.req is None or req.is_url or req.is_editable:
            problems.append(f"{line} (not a pinned PyPI release)")
            continue
        specs = list(req.specifier or [])
        if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
            problems.append(f"{line} (not pinned to an exact version)")
            continue
        pinned.append(canonicalize_name(req.name))
    return pinned, problems


class _AuditUnknown(Exception):
    """The audit cannot give a complete answer; the message says why.

    Raised by the set-up steps of :func:`audit_requirements` and turned into
    ``state="unknown"`` there, so every such path fails closed the same way.
    """


def audit_requirements(
    requirements: Path,
    advisory_db: Path | None = None,
    online: bool = False,
    timeout: float = 10,
    *,
    osv_url: str | None = None,
) -> AuditResult:
    """Audits an exactly pinned requirements file for known vulnerabilities.

    Args:
        requirements: A requirements file where every line is ``name==version``.
        advisory_db: Local PyPA advisory database (root or its ``vulns`` folder).
        online: Also (or only, without ``advisory_db``) ask the OSV web service
            through pip-audit. Any network or service error makes the result
            ``unknown``.
        timeout: Network timeout in seconds for the online service.
        osv_url: Override the OSV query endpoint (for mirrors and tests).

    Returns:
        The audit result; never raises for audit failures, which become
        ``state="unknown"`` with a ``detail``.

    Raises:
        UsageError: The requirements file does not exist.
    """
    requirements = Path(requirements)
    if not requirements.is_file():
        raise UsageError(f"requirements file not found: {requirements}")
    try:
        pinned = _exact_pins(requirements)
        service, source_label = _vulnerability_service(advisory_db, online, timeout, osv_url)
    except _AuditUnknown as exc:
        return AuditResult("unknown", detail=str(exc))
    return _run_audit(requirements, pinned, service, source_label)


def _exact_pins(requirements: Path) -> list[str]:
    """The canonical names pinned by ``requirements``, which must all be exact pins.

    Raises:
        _AuditUnknown: The file does not parse, has a requirement that is not an
            exact pin, or has no requirements at all.
    """
    try:
        pinned, problems = _check_pins(requirements)
    except Exception as exc:
        raise _AuditUnknown(f"cannot parse {requirements}: {exc}") from exc
    if problems:
        raise _AuditUnknown(
            "requirements must be exact pins (name==version); offending: " + "; ".join(problems)
        )
    if not pinned:
        raise _AuditUnknown(f"no requirements found in {requirements}")
    return pinned


def _vulnerability_service(
    advisory_db: Path | None, online: bool, timeout: float, osv_url: str | None
) -> tuple[Any, str]:
    """The service to audit with and a label naming its sources.

    Raises:
        _AuditUnknown: No source was asked for, or one could not be set up.
    """
    services: list[Any] = []
    sources: list[str] = []
    if advisory_db is not None:
        try:
            services.append(OfflineAdvisoryService(Path(advisory_db)))
        except UsageError as exc:
            raise _AuditUnknown(str(exc)) from exc
        sources.append(f"advisory database {advisory_db}")
    if online:
        services.append(_osv_service(timeout, osv_url))
        sources.append("OSV online service")
    if not services:
        raise _AuditUnknown(
            "no vulnerability source: give an advisory database or allow online lookups"
        )
    service = services[0] if len(services) == 1 else _combined_service(services)
    return service, " + ".join(sources)


def _osv_service(timeout: float, osv_url: str | None) -> Any:
    """pip-audit's OSV web service.

    Raises:
        _AuditUnknown: It cannot be set up (e.g. pip-audit's OSV module fails to import).
    """
    try:
        from pip_audit._service.osv import OsvService

        kwargs: dict[str, Any] = {"timeout": timeout}
        if osv_url:
            kwargs["osv_url"] = osv_url
        return OsvService(**kwargs)
    except Exception as exc:
        raise _AuditUnknown(f"cannot set up the OSV service: {exc}") from exc


@dataclass
class _Progress:
    """What an audit has established so far; kept when it stops part-way."""

    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    audited: set[str] = field(default_factory=set)
    checked: int = 0

    def add(self, dep: Dependency, vulns: list[VulnerabilityResult]) -> None:
        """Records pip-audit's answer for one dependency."""
        if dep.is_skipped():
            self.skipped.append(f"{dep.name} ({dep.skip_reason})")
            return
        self.checked += 1
        self.audited.add(dep.canonical_name)
        for v in vulns:
            self.findings.append(
                Finding(
                    package=dep.canonical_name,
                    version=str(dep.version),
                    id=str(v.id),
                    aliases=sorted(str(a) for a in v.aliases),
                    fixed_versions=[str(f) for f in v.fix_versions],
                    summary=v.description,
                )
            )


def _run_audit(
    requirements: Path, pinned: list[str], service: Any, source_label: str
) -> AuditResult:
    """Audits the pinned packages with ``service``; anything not audited is ``unknown``."""
    from pip_audit._audit import Auditor
    from pip_audit._dependency_source.requirement import RequirementSource

    source = RequirementSource([requirements], no_deps=True, disable_pip=True)
    progress = _Progress()
    try:
        for dep, vulns in Auditor(service).audit(source):
            progress.add(dep, vulns)
    except Exception as exc:  # ServiceError, requests errors, parse errors: fail closed
        logger.warning("audit failed: %s", exc)
        return AuditResult(
            "unknown",
            findings=progress.findings,
            detail=f"audit could not complete ({source_label}): {type(exc).__name__}: {exc}",
            checked=progress.checked,
        )
    return _verdict(progress, pinned, source_label)


def _verdict(progress: _Progress, pinned: list[str], source_label: str) -> AuditResult:
    """The result of a completed audit: ``unknown`` if any pin was not audited."""
    findings, checked = progress.findings, progress.checked
    # pip-audit silently drops requirements whose environment marker is false
    # here; the model may be served elsewhere, so those are not "clean".
    skipped = progress.skipped + [
        f"{name} (not audited, e.g. excluded by an environment marker)"
        for name in sorted(set(pinned) - progress.audited)
    ]
    if skipped:
        return AuditResult(
            "unknown",
            findings=findings,
            detail="could not audit: " + "; ".join(skipped),
            checked=checked,
        )
    if findings:
        packages = sorted({f"{f.package}=={f.version}" for f in findings})
        return AuditResult(
            "vulnerable",
            findings=findings,
            detail=f"{len(findings)} known vulnerabilit{'y' if len(findings) == 1 else 'ies'} "
            f"in {', '.join(packages)} ({source_label})",
            checked=checked,
        )
    return AuditResult(
        "clean",
        detail=f"no known vulnerabilities in {checked} package(s) ({source_label})",
        checked=checked,
    )
