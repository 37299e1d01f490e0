"""``mlops run PIPELINE``: run a pipeline locally (kfp.local) or submit it with ``--host``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from mlops.cli.common import (
    emit_json,
    ensure_signing_keys,
    ensure_store_env,
    pipeline_named,
    stdout_to_stderr,
)
from mlops.core import settings
from mlops.core.errors import EXIT_OK, EXIT_REJECTED, EXIT_SYSTEM
from mlops.release.decision import GATE_ORDER

_EXIT_FOR_STATUS = {"released": EXIT_OK, "no_drift": EXIT_OK, "rejected": EXIT_REJECTED}


def exit_code_for(status: str) -> int:
    """An outcome the CLI does not know is a failure, never a success."""
    return _EXIT_FOR_STATUS.get(status, EXIT_SYSTEM)


def cmd_run(args: argparse.Namespace) -> int:
    """Parses ``-p`` parameters against the pipeline's signature, then runs or submits it."""
    from mlops.runs.params import parse_params

    pipeline = pipeline_named(args.pipeline)
    arguments = parse_params(pipeline, args.param or [])
    if args.host:
        return _submit(args, pipeline, arguments)
    return _run_local(args, pipeline, arguments)


def _submit(args: argparse.Namespace, pipeline: Any, arguments: dict[str, Any]) -> int:
    """Submits to a Kubeflow Pipelines API; the run executes on the cluster."""
    import kfp

    if args.pipeline == "training":
        from mlops.runs.lifecycle import pin_repository

        arguments = pin_repository(arguments)  # the cluster trains the commit named here
    client = kfp.Client(host=args.host, namespace=args.namespace)
    run = client.create_run_from_pipeline_func(
        pipeline,
        arguments=arguments,
        experiment_name=args.experiment,
        enable_caching=False,
        service_account=args.service_account,
    )
    result = {
        "status": "submitted",
        "run_id": run.run_id,
        "host": args.host,
        "pipeline": args.pipeline,
    }
    if args.json:
        emit_json(result)
    else:
        print(f"submitted {args.pipeline} run {run.run_id} to {args.host}")
    return EXIT_OK


def _run_local(args: argparse.Namespace, pipeline: Any, arguments: dict[str, Any]) -> int:
    from mlops.runs.lifecycle import finish_local_run, prepare_local_run
    from mlops.runs.local import run_locally

    progress = None if args.json else sys.stderr
    # run_locally captures the tasks' output; this also keeps anything printed
    # around it off stdout, which --json reserves for the one outcome object.
    with stdout_to_stderr() if args.json else contextlib.nullcontext():
        ensure_store_env()
        ensure_signing_keys()
        arguments = prepare_local_run(args.pipeline, arguments)
        if progress:
            store_settings = settings.StoreSettings.from_env()
            print(
                f"running {args.pipeline} locally (kfp.local; object store "
                f"{store_settings.endpoint}, bucket {store_settings.bucket})",
                file=progress,
            )
        run = run_locally(pipeline, arguments, settings.mlops_home() / "runs", progress)
        result = finish_local_run(args.pipeline, arguments, run)
    if args.json:
        emit_json(result)
    else:
        print_outcome(result)
    return exit_code_for(result["status"])


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
    print(f"  run folder: {result['run_dir']}")


def register(subparsers: Any) -> None:
    """Adds ``run``."""
    run = subparsers.add_parser("run", help="run a pipeline locally, or submit it with --host")
    run.add_argument("pipeline", help="pipeline name, e.g. training")
    run.add_argument(
        "-p", "--param", action="append", metavar="KEY=VALUE", help="pipeline parameter"
    )
    run.add_argument("--json", action="store_true", help="print one JSON object with the outcome")
    run.add_argument("--host", help="Kubeflow Pipelines API URL: submit instead of running locally")
    run.add_argument("--namespace", help="Kubeflow namespace (with --host)")
    run.add_argument("--experiment", default="mlops", help="KFP experiment (with --host)")
    run.add_argument(
        "--service-account",
        help="Kubernetes service account of the run's pods (with --host; "
        "mlops-pipeline from deploy/k8s/rbac.yaml may manage "
        "InferenceServices)",
    )
    # A local run sets up the store itself, inside its stdout redirection.
    run.set_defaults(func=cmd_run, needs_store=False)
