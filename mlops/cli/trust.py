"""``mlops`` CLI subcommands for trust checks: keys, verify, audit, scan.

:func:`register` adds the subcommands to an existing argparse subparsers
object. Every subcommand sets ``func``, a callable taking the parsed
namespace and returning the process exit code; :func:`mlops.cli.main` turns
errors raised on purpose into their exit code.

Exit codes: 0 ok, 2 usage error, 4 verification failed (invalid signature,
vulnerable or unknown audit, unsafe file).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from mlops.cli.common import emit_json, ensure_store_env
from mlops.core import settings
from mlops.core.errors import EXIT_INVALID, EXIT_OK


def _home() -> Path:
    return settings.mlops_home()


def _cmd_keys_init(args: argparse.Namespace) -> int:
    from mlops.trust.signing import default_key_paths, generate_keypair

    private_path, public_path = default_key_paths(_home())
    generate_keypair(private_path, public_path, overwrite=args.force)
    print(f"private key: {private_path}")
    print(f"public key:  {public_path}")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from mlops.core.errors import VerificationError
    from mlops.trust.signing import default_key_paths

    public_key = Path(args.public_key or default_key_paths(_home())[1])
    try:
        if args.model_dir.startswith("s3://"):
            evidence = _verify_published(args.model_dir, public_key)
        else:
            evidence = _verify_local(Path(args.model_dir), public_key)
    except VerificationError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"OK: {args.model_dir} is signed by {public_key} and released")
    _print_evidence(evidence)
    return EXIT_OK


#: A folder named like a version id (``v20261128-183800-a1b2``) claims to be that version.
_VERSION_NAME = re.compile(r"v\d{8}-\d{6}-[0-9a-f]{4}")


def _verify_local(model_dir: Path, public_key: Path) -> dict[str, Any]:
    """Signature, then identity and release policy of a local folder; returns its evidence.

    A folder named like a version must be that version (a signed folder copied
    under another version name is refused); otherwise the signed metadata names it.
    """
    from mlops.model.packaging import read_metadata
    from mlops.trust.evidence import check_release
    from mlops.trust.signing import verify_identity, verify_model_dir

    verify_model_dir(model_dir, public_key)
    metadata = read_metadata(model_dir)
    name, version = str(metadata.get("model_name")), str(metadata.get("version"))
    if _VERSION_NAME.fullmatch(model_dir.resolve().name):
        version = model_dir.resolve().name
    verify_identity(model_dir, name, version)
    return check_release(model_dir, name, version)


def _print_evidence(evidence: dict[str, Any]) -> None:
    """The release evidence, briefly: repository, gates, holdout metrics, thresholds."""
    repository = evidence.get("repository") or {}
    print(f"  model: {evidence['model_name']} {evidence['version']}")
    if repository:
        print(
            f"  repository: {repository.get('uri')} (commit {repository.get('commit') or '-'}, "
            f"tree {repository.get('tree_digest')})"
        )
    from mlops.release.evidence import ordered_gates

    for name, gate in ordered_gates(evidence["gates"]):
        print(f"  [{'pass' if gate['passed'] else 'FAIL'}] {name}: {gate['detail']}")
    accuracy = evidence.get("holdout_metrics", {}).get("holdout_accuracy")
    if accuracy is not None:
        print(f"  holdout_accuracy: {accuracy:.4f}; thresholds: {evidence.get('thresholds')}")


def _verify_published(model_uri: str, public_key: Path) -> dict[str, Any]:
    """Verifies a published version; one without its completion marker is invalid, named so.

    Raises:
        VerificationError: incomplete (no ``_COMPLETE``: the upload never
            finished), or its signature does not hold.
        UsageError: nothing is published at ``model_uri``.
    """
    from mlops.core.errors import UsageError, VerificationError
    from mlops.core.store import ObjectStore
    from mlops.model.registry import COMPLETE_MARKER, parse_model_uri
    from mlops.trust.signing import verify_published

    ensure_store_env()
    store = ObjectStore.from_env()
    parsed, _, _ = parse_model_uri(model_uri)
    if not store.exists(f"{parsed}/{COMPLETE_MARKER}"):
        if next(iter(store.list(f"{parsed}/")), None) is None:
            raise UsageError(f"nothing is published at {model_uri}")
        raise VerificationError(
            f"{model_uri} is incomplete: it has no {COMPLETE_MARKER} marker (its upload "
            "never finished), so it is not a published version and is never served"
        )
    return verify_published(store, model_uri, public_key)


def _cmd_audit(args: argparse.Namespace) -> int:
    from mlops.trust.audit import audit_requirements

    advisory_db = args.advisory_db or settings.get(settings.ADVISORY_DB_VAR)
    result = audit_requirements(
        Path(args.requirements),
        advisory_db=Path(advisory_db) if advisory_db else None,
        online=args.online,
        timeout=args.timeout,
    )
    if args.json:
        emit_json(result.to_dict())
    else:
        print(f"audit: {result.state} ({result.checked} package(s) checked)")
        for f in result.findings:
            fixed = ", ".join(f.fixed_versions) or "no fix"
            print(f"  {f.package}=={f.version}  {f.id}  fixed in: {fixed}")
        if result.detail:
            stream = sys.stdout if result.state == "clean" else sys.stderr
            print(result.detail, file=stream)
    return EXIT_OK if result.state == "clean" else EXIT_INVALID


def _cmd_scan(args: argparse.Namespace) -> int:
    from mlops.trust.scan import scan_path

    result = scan_path(Path(args.path))
    if args.json:
        emit_json(result.to_dict())
    else:
        print(
            f"scan: {'safe' if result.safe else 'UNSAFE'} ({len(result.scanned)} file(s) scanned)"
        )
        for f in result.findings:
            print(f"  [{f['severity']}] {f['file']}: {f['detail']}", file=sys.stderr)
    return EXIT_OK if result.safe else EXIT_INVALID


def register(subparsers: Any) -> None:
    """Adds ``keys init``, ``verify``, ``audit`` and ``scan`` subcommands.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers()``.
    """
    keys = subparsers.add_parser("keys", help="manage the model signing key pair")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND")
    keys_sub.required = True
    init = keys_sub.add_parser("init", help="create an ECDSA P-256 key pair under $MLOPS_HOME/keys")
    init.add_argument("--force", action="store_true", help="replace existing key files")
    init.set_defaults(func=_cmd_keys_init, needs_store=False)

    verify = subparsers.add_parser(
        "verify", help="verify a signed model (local folder or published s3:// URI)"
    )
    verify.add_argument(
        "model_dir",
        metavar="MODEL_URI",
        help="local model folder or s3://<bucket>/models/<name>/<version>",
    )
    verify.add_argument(
        "--public-key",
        metavar="PEM",
        default=None,
        help="public key (default: $MLOPS_HOME/keys/signing-key.pub.pem)",
    )
    verify.set_defaults(func=_cmd_verify, needs_store=False)

    audit = subparsers.add_parser(
        "audit", help="audit an exactly pinned requirements file for known vulnerabilities"
    )
    audit.add_argument("-r", "--requirements", required=True, metavar="REQUIREMENTS")
    audit.add_argument(
        "--advisory-db",
        metavar="DIR",
        default=None,
        help=f"PyPA advisory-database checkout (default: ${settings.ADVISORY_DB_VAR})",
    )
    audit.add_argument("--online", action="store_true", help="also query the OSV web service")
    audit.add_argument("--timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    audit.add_argument("--json", action="store_true", help="print one JSON object")
    audit.set_defaults(func=_cmd_audit, needs_store=False)

    scan = subparsers.add_parser("scan", help="statically scan pickle / joblib / skops files")
    scan.add_argument("path", metavar="PATH", help="file or directory")
    scan.add_argument("--json", action="store_true", help="print one JSON object")
    scan.set_defaults(func=_cmd_scan, needs_store=False)
