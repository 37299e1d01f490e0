"""``mlops deploy|promote|rollback NAME``: the same actions the pipeline's deployment steps run.

On ``--target kserve`` with ``--strategy sticky|cohort|shadow`` the deploy step
returns mesh routes (``mesh_manifests``) it does not apply itself: without
``--json`` they are printed as a YAML stream whose status lines are comments (so
the output can go straight to ``kubectl apply -f -``), or written to
``--mesh-out FILE``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlops.cli.common import emit_json, ensure_signing_keys
from mlops.core.errors import EXIT_OK, UsageError
from mlops.core.rules import (
    DEPLOY_TARGETS,
    ROUTING_STRATEGIES,
    WEIGHTED_STRATEGIES,
    check_canary_percent,
)

logger = logging.getLogger(__name__)


def deploy_mode(strategy: str | None, canary_percent: int | None) -> str:
    """The deploy mode a command line asks for.

    No ``--strategy``: ``canary`` with ``--canary-percent``, else ``full``. The weighted
    strategies (``canary``, ``sticky``) need ``--canary-percent``; ``cohort`` and
    ``shadow`` take none.

    Raises:
        UsageError: a percent missing, out of range or given where it means nothing.
    """
    if canary_percent is not None:
        check_canary_percent(canary_percent, name="--canary-percent")
    if strategy is None:
        return "full" if canary_percent is None else "canary"
    if strategy in WEIGHTED_STRATEGIES and canary_percent is None:
        raise UsageError(f"--strategy {strategy} needs --canary-percent (1-99)")
    if strategy not in WEIGHTED_STRATEGIES and canary_percent is not None:
        raise UsageError(
            f"--strategy {strategy} routes by header or copy, not by weight: "
            "drop --canary-percent (use --shadow-percent for a partial shadow)"
        )
    return strategy


def routing_options(args: argparse.Namespace) -> dict[str, Any]:
    """The routing options given on the command line (the rest keep their defaults)."""
    given = {
        "client_header": args.client_header,
        "cohort_header": args.cohort_header,
        "cohort_values": args.cohort_values,
        "shadow_percent": args.shadow_percent,
    }
    return {key: value for key, value in given.items() if value is not None}


def mesh_yaml(summary: dict[str, Any], comments: list[str]) -> str:
    """The summary's mesh manifests as one YAML stream, ``comments`` first (as ``#`` lines).

    Objects to delete (``mesh_delete``) follow the comments as ``kubectl delete``
    lines, commented out too: the stream applies as is.
    """
    import yaml

    lines = [f"# {line}" for text in comments for line in text.splitlines()]
    delete = summary.get("mesh_delete") or []
    if delete:
        namespace = delete[0]["namespace"]
        names = " ".join(f"{o['kind'].lower()}/{o['name']}" for o in delete)
        lines.append(f"# no longer needed: kubectl delete -n {namespace} {names}")
    docs = [
        yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
        for doc in summary.get("mesh_manifests") or []
    ]
    head = "\n".join(lines) + "\n" if lines else ""
    return head + "".join(f"---\n{doc}" for doc in docs)


def write_atomically(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A reader (or ``kubectl apply -f``) never sees half a file, and a failed write
    leaves what was there before.

    Raises:
        UsageError: the folder does not exist or cannot be written.
    """
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise UsageError(f"--mesh-out {path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"--mesh-out {path}: cannot write in {folder}: {exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_mesh_options(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """``--mesh-out`` and ``--mesh-schemas``, refused before anything runs where they mean nothing."""
    out = Path(args.mesh_out) if args.mesh_out else None
    schemas = Path(args.mesh_schemas) if args.mesh_schemas else None
    if args.target != "kserve" and (out or schemas):
        option = "--mesh-out" if out else "--mesh-schemas"
        raise UsageError(f"{option} needs --target kserve (locally mlops serve routes)")
    if out is not None and out.is_dir():
        raise UsageError(f"--mesh-out {out} is a folder; name a file")
    if out is not None and not (out.parent if str(out.parent) else Path()).is_dir():
        raise UsageError(f"--mesh-out {out}: folder {out.parent} does not exist")
    return out, schemas


def cmd_deploy(args: argparse.Namespace) -> int:
    """Deploys a published version, or promotes / rolls back the current canary."""
    from mlops.core.store import ObjectStore
    from mlops.deployment import actions
    from mlops.model.registry import resolve, validate_model_name

    mesh_out, mesh_schemas = _check_mesh_options(args)
    store = ObjectStore.from_env()
    name = validate_model_name(args.model_name)
    if args.command == "deploy":
        ensure_signing_keys()
        mode = deploy_mode(args.strategy, args.canary_percent)
        ref = resolve(store, name, args.version)
        summary = actions.deploy_action(
            name,
            ref.uri,
            ref.version,
            mode,
            args.canary_percent or 0,
            args.target,
            args.namespace,
            args.image,
            routing=routing_options(args),
            store=store,
            mesh_schemas=mesh_schemas,
        )
    else:
        action = actions.promote_action if args.command == "promote" else actions.rollback_action
        summary = action(name, args.target, args.namespace, store=store, mesh_schemas=mesh_schemas)
    _report(summary, name, args, mesh_out)
    return EXIT_OK


def _report(
    summary: dict[str, Any], name: str, args: argparse.Namespace, mesh_out: Path | None
) -> None:
    """Prints the summary (JSON, or a status line) and the mesh routes (YAML, or to a file)."""
    state = summary["state"]
    canary = ""
    if state.get("canary"):
        strategy = state.get("strategy", "canary")
        share = f" at {state['canary_percent']}%" if strategy in WEIGHTED_STRATEGIES else ""
        canary = f", {strategy} {state['canary']}{share}"
    status = f"{name} ({args.target}): stable {state['stable']}{canary}"
    has_mesh = "mesh_manifests" in summary or "mesh_delete" in summary
    comments = [status, *([summary["mesh_note"]] if summary.get("mesh_note") else [])]
    if mesh_out is not None:
        write_atomically(mesh_out, mesh_yaml(summary, comments))
        logger.info("mesh routes written to %s", mesh_out)
        if not args.json:
            print(status)
            count = len(summary.get("mesh_manifests") or [])
            print(f"{count} mesh manifest(s) written to {mesh_out} (kubectl apply -f {mesh_out})")
    if args.json:
        emit_json(summary)
    elif mesh_out is None and has_mesh:
        # Status and notes as comments: the whole output applies with `kubectl apply -f -`.
        sys.stdout.write(mesh_yaml(summary, comments))
    elif mesh_out is None:
        print(status)


def register(subparsers: Any) -> None:
    """Adds ``deploy``, ``promote`` and ``rollback``."""
    for name, help_text in (
        ("deploy", "deploy a published version (local serving)"),
        ("promote", "make the canary the stable version"),
        ("rollback", "drop the canary, or return to the previous version"),
    ):
        command = subparsers.add_parser(name, help=help_text)
        command.add_argument("model_name")
        if name == "deploy":
            command.add_argument("--version", help="published version (default: latest)")
            command.add_argument(
                "--canary-percent",
                type=int,
                help="route this share of traffic (canary) or of clients (sticky) to it",
            )
            command.add_argument(
                "--strategy",
                choices=ROUTING_STRATEGIES,
                help="how the candidate gets traffic: canary (weighted, random), sticky "
                "(weighted by a hash of the client header), cohort (requests whose cohort "
                "header matches), shadow (a copy; stable answers). Default: canary with "
                "--canary-percent, else a full release",
            )
            command.add_argument(
                "--client-header", help="header sticky hashes (default x-client-id)"
            )
            command.add_argument(
                "--cohort-header", help="header that selects the cohort (default x-mlops-cohort)"
            )
            command.add_argument(
                "--cohort-values",
                help="comma-separated values of the cohort header that reach the candidate "
                "(default beta)",
            )
            command.add_argument(
                "--shadow-percent",
                type=int,
                help="share of requests copied to a shadow candidate (default 100)",
            )
            command.add_argument(
                "--image",
                default="",
                help="predictor image with --target kserve (default: the project's serving image)",
            )
        command.add_argument(
            "--target",
            choices=DEPLOY_TARGETS,
            default="local",
            help="local: `mlops serve` follows it; kserve: apply the InferenceService "
            "with the current kube config too",
        )
        command.add_argument(
            "--namespace", default="kubeflow-user", help="namespace (with --target kserve)"
        )
        command.add_argument(
            "--mesh-out",
            metavar="FILE",
            help="with --target kserve: write the mesh routes (sticky, cohort, shadow; after a "
            "promote or rollback, the routes to stable) to FILE as YAML, atomically, instead "
            "of printing them",
        )
        command.add_argument(
            "--mesh-schemas",
            metavar="DIR",
            help="with --target kserve: a folder with the Istio and Gateway API CRDs "
            "(istio/, gateway-api/); the mesh routes must match them or nothing changes",
        )
        command.add_argument("--json", action="store_true")
        command.set_defaults(func=cmd_deploy, needs_store=True)
