"""``mlops deploy|promote|rollback NAME``: the same actions the pipeline's deployment steps run."""

from __future__ import annotations

import argparse
from typing import Any

from mlops.cli.common import emit_json, ensure_signing_keys
from mlops.core.errors import EXIT_OK
from mlops.core.rules import DEPLOY_TARGETS, check_canary_percent


def cmd_deploy(args: argparse.Namespace) -> int:
    """Deploys a published version, or promotes / rolls back the current canary."""
    from mlops.core.store import ObjectStore
    from mlops.deployment import actions
    from mlops.model.registry import resolve, validate_model_name

    store = ObjectStore.from_env()
    name = validate_model_name(args.model_name)
    if args.command == "deploy":
        ensure_signing_keys()
        ref = resolve(store, name, args.version)
        if args.canary_percent is not None:
            check_canary_percent(args.canary_percent, name="--canary-percent")
        mode = "full" if args.canary_percent is None else "canary"
        summary = actions.deploy_action(
            name,
            ref.uri,
            ref.version,
            mode,
            args.canary_percent or 0,
            args.target,
            args.namespace,
            args.image,
            store=store,
        )
    else:
        action = actions.promote_action if args.command == "promote" else actions.rollback_action
        summary = action(name, args.target, args.namespace, store=store)
    if args.json:
        emit_json(summary)
    else:
        state = summary["state"]
        canary = (
            f", canary {state['canary']} at {state['canary_percent']}%"
            if state.get("canary")
            else ""
        )
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
                "--canary-percent", type=int, help="route this share of traffic to it"
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
