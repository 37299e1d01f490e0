"""``mlops run PIPELINE``: run a pipeline locally (kfp.local) or submit it with ``--host``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlops.api.outcome import exit_code_for
from mlops.cli.common import add_cluster_arguments, cluster_from_args, emit_json, json_stdout
from mlops.core.errors import UsageError
from mlops.release.decision import GATE_ORDER

__all__ = ["cmd_run", "exit_code_for", "print_outcome", "register"]


def cmd_run(args: argparse.Namespace) -> int:
    """Parses ``-p`` parameters against the pipeline's signature, then runs or submits it.

    Exit codes: 0 released (or no drift; or submitted without ``--wait``), 3 rejected
    by a gate, 2 bad input (nothing ran), 1 a failed task or cluster run, an
    unreachable cluster, a ``--wait`` that timed out, or an outcome the CLI does not know.
    """
    from mlops.api.runs import pipeline_named, run_pipeline
    from mlops.runs.params import parse_params

    arguments = parse_params(pipeline_named(args.pipeline), args.param or [])
    if args.wait and not args.host:
        raise UsageError("--wait needs --host (a local run always waits)")
    cluster = cluster_from_args(args) if args.host else None
    # run_locally captures the tasks' output; this also keeps anything printed
    # around it (and kfp's links) off stdout, which --json reserves for the one object.
    with json_stdout(args.json):
        outcome = run_pipeline(
            args.pipeline,
            cluster=cluster,
            wait=args.wait,
            timeout=args.timeout,
            progress=None if args.json else sys.stderr,
            **arguments,
        )
    result = outcome.to_dict()
    if args.json:
        emit_json(result)
    elif outcome.status == "submitted":
        print(f"submitted {args.pipeline} run {result['run_id']} to {args.host}")
        print(f"  {result['run_url']}")
    else:
        print_outcome(result)
    return outcome.exit_code


def print_outcome(result: dict[str, Any]) -> None:
    """The human-readable summary of a run's outcome (the ``--json`` object, as text)."""
    print(
        f"\n{result['status'].upper()}: {result.get('model_name', '')} "
        f"{result.get('model_version') or result.get('candidate_version') or ''}".rstrip()
    )
    if result.get("model_uri"):
        print(f"  model: {result['model_uri']}")
    repository = result.get("repository") or {}
    if repository.get("uri"):
        print(f"  repository: {repository['uri']} (tree {repository.get('tree_digest', '?')})")
    for name, value in sorted(result.get("metrics", {}).items()):
        if name.endswith(("accuracy", "f1_macro", "roc_auc", "drift_share")):
            print(f"  {name}: {value:.4f}")
    if result.get("drift"):
        drift = result["drift"]
        drifted = [name for name, column in drift["columns"].items() if column["drifted"]]
        print(
            f"  drift: detected={drift['detected']} share={drift['share']:.2f} "
            f"({len(drifted)} of {len(drift['columns'])} columns)"
        )
    gates = result.get("gates", {})
    for name in sorted(
        gates, key=lambda n: GATE_ORDER.index(n) if n in GATE_ORDER else len(GATE_ORDER)
    ):
        print(f"  [{'pass' if gates[name]['passed'] else 'FAIL'}] {name}: {gates[name]['detail']}")
    for key in ("deployment", "report_uri"):
        if result.get(key):
            print(f"  {key}: {result[key]}")
    if result["status"] != "released":
        print(f"  reason: {result.get('reason')}")
    _print_where(result)


def _print_where(result: dict[str, Any]) -> None:
    """Where the run's outputs are: the local run folder, or the cluster run's page."""
    if result.get("run_dir"):
        print(f"  run folder: {result['run_dir']}")
    if result.get("run_url"):
        print(f"  run: {result['run_url']} ({result.get('state')})")


def register(subparsers: Any) -> None:
    """Adds ``run``."""
    run = subparsers.add_parser("run", help="run a pipeline locally, or submit it with --host")
    run.add_argument("pipeline", help="pipeline name, e.g. training")
    run.add_argument(
        "-p", "--param", action="append", metavar="KEY=VALUE", help="pipeline parameter"
    )
    run.add_argument("--json", action="store_true", help="print one JSON object with the outcome")
    add_cluster_arguments(run)
    run.add_argument(
        "--wait",
        action="store_true",
        help="with --host: wait for the run and exit with its outcome "
        "(0 released or no drift, 3 rejected, 1 failed)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="with --wait: seconds to wait at most (default 3600; then exit 1)",
    )
    # A local run sets up the store itself, inside its stdout redirection.
    run.set_defaults(func=cmd_run, needs_store=False)
