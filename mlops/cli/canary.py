"""``mlops canary analyze NAME``: compare the candidate with stable, then promote, roll back or wait."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from mlops.cli.common import emit_json
from mlops.core.errors import EXIT_OK
from mlops.core.rules import DEPLOY_TARGETS

#: ``mlops serve``'s own metrics page at its default address.
DEFAULT_METRICS_URL = "http://127.0.0.1:8080/metrics"


def cmd_analyze(args: argparse.Namespace) -> int:
    """Runs the analysis and prints the verdict (exit 0 for promote, rollback and wait alike)."""
    from mlops.core.store import ObjectStore
    from mlops.monitoring.canary import CanaryThresholds, analyze_canary

    given = {
        item.name: getattr(args, item.name)
        for item in fields(CanaryThresholds)
        if getattr(args, item.name, None) is not None
    }
    analysis = analyze_canary(
        ObjectStore.from_env(),
        args.model,
        prometheus_url=args.prometheus or "",
        metrics_url="" if args.prometheus else args.metrics_url,
        window_minutes=args.window,
        thresholds=CanaryThresholds(**given),
        apply=not args.dry_run,
        target=args.target,
        namespace=args.namespace,
    )
    if args.json:
        emit_json({"status": "ok", **analysis.to_dict()})
        return EXIT_OK
    if args.dry_run:
        note = "dry run: nothing changed"
    else:
        note = f"{analysis.verdict} applied" if analysis.applied else "nothing changed"
    judged = "; judged on its shadow copies" if analysis.candidate_role == "shadow" else ""
    print(
        f"{analysis.model_name}: {analysis.verdict.upper()} candidate "
        f"{analysis.candidate.version} ({analysis.strategy}) against stable "
        f"{analysis.stable.version}; {note}{judged}"
    )
    for check in analysis.checks:
        print(f"  {check.outcome:<5} {check.detail}")
    print(f"  source: {analysis.source}; record: {analysis.record_key}")
    return EXIT_OK


def _add_thresholds(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`~mlops.monitoring.canary.CanaryThresholds` field (its default shown)."""
    from mlops.monitoring.canary import CanaryThresholds

    defaults = CanaryThresholds()
    group = parser.add_argument_group("thresholds")
    for item in fields(CanaryThresholds):
        default = getattr(defaults, item.name)
        flag = "--" + item.name.replace("_", "-")
        if isinstance(default, bool):
            group.add_argument(
                flag,
                dest=item.name,
                action="store_true",
                default=None,
                help="wait until both versions have --min-labels labelled rows",
            )
        else:
            group.add_argument(
                flag,
                dest=item.name,
                type=type(default),
                default=None,
                help=f"default {default}",
            )


def register(subparsers: Any) -> None:
    """Adds ``canary analyze``."""
    canary = subparsers.add_parser("canary", help="automated canary analysis")
    actions = canary.add_subparsers(dest="canary_command", metavar="ACTION")
    actions.required = True
    analyze = actions.add_parser(
        "analyze",
        help="compare the candidate with stable (errors, p99 latency, predicted classes, "
        "out-of-range inputs, accuracy) and promote, roll back or wait; a shadow is judged "
        "on the copies it scored, and promoting it makes it stable, rolling it back removes it",
    )
    analyze.add_argument("model", metavar="NAME", help="the deployed model")
    analyze.add_argument(
        "--prometheus", metavar="URL", help="query this Prometheus (else read --metrics-url)"
    )
    analyze.add_argument(
        "--metrics-url",
        default=DEFAULT_METRICS_URL,
        help=f"the model server's /metrics (default {DEFAULT_METRICS_URL}); its counters "
        "run since the server started",
    )
    analyze.add_argument(
        "--window", type=float, default=30.0, metavar="M", help="minutes analysed (default 30)"
    )
    analyze.add_argument(
        "--dry-run", action="store_true", help="record the verdict but do not promote/roll back"
    )
    analyze.add_argument("--target", choices=DEPLOY_TARGETS, default="local")
    analyze.add_argument("--namespace", default="kubeflow-user", help="with --target kserve")
    analyze.add_argument("--json", action="store_true", help="print one JSON object")
    _add_thresholds(analyze)
    analyze.set_defaults(func=cmd_analyze, needs_store=True)
