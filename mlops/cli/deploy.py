"""``mlops deploy|promote|rollback NAME``: the same actions the pipeline's deployment steps run."""

from __future__ import annotations

import argparse
from typing import Any

from mlops.cli.common import emit_json, ensure_signing_keys
from mlops.core.errors import EXIT_OK, UsageError
from mlops.core.rules import (
    DEPLOY_TARGETS,
    ROUTING_STRATEGIES,
    WEIGHTED_STRATEGIES,
    check_canary_percent,
)


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


def cmd_deploy(args: argparse.Namespace) -> int:
    """Deploys a published version, or promotes / rolls back the current canary."""
    from mlops.core.store import ObjectStore
    from mlops.deployment import actions
    from mlops.model.registry import resolve, validate_model_name

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
        )
    else:
        action = actions.promote_action if args.command == "promote" else actions.rollback_action
        summary = action(name, args.target, args.namespace, store=store)
    if args.json:
        emit_json(summary)
    else:
        state = summary["state"]
        canary = ""
        if state.get("canary"):
            strategy = state.get("strategy", "canary")
            share = f" at {state['canary_percent']}%" if strategy in WEIGHTED_STRATEGIES else ""
            canary = f", {strategy} {state['canary']}{share}"
        print(f"{name} ({args.target}): stable {state['stable']}{canary}")
    return EXIT_OK


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
        command.add_argument("--json", action="store_true")
        command.set_defaults(func=cmd_deploy, needs_store=True)
