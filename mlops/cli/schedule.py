"""``mlops schedule PIPELINE``: a KFP recurring run (six-field cron, seconds first)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from mlops.cli.common import emit_json, pipeline_named
from mlops.core.errors import EXIT_OK, UsageError


def parse_cron(expression: str) -> str:
    """KFP cron has six fields, seconds first; a five-field crontab line is refused with a hint."""
    fields = expression.split()
    if len(fields) != 6:
        hint = f" (did you mean '0 {expression}'?)" if len(fields) == 5 else ""
        raise UsageError(
            f"cron {expression!r} has {len(fields)} fields; KFP needs 6, seconds first{hint}"
        )
    return expression


def cmd_schedule(args: argparse.Namespace) -> int:
    """Compiles the pipeline and creates the recurring run on ``--host``."""
    import kfp

    from mlops.runs.params import parse_params

    pipeline = pipeline_named(args.pipeline)
    cron = parse_cron(args.cron)
    arguments = parse_params(pipeline, args.param or [])
    client = kfp.Client(host=args.host, namespace=args.namespace)
    run = schedule_pipeline(client, args.pipeline, cron, arguments, args.experiment, args.name)
    payload = {
        "status": "scheduled",
        "recurring_run_id": run,
        "cron": cron,
        "pipeline": args.pipeline,
    }
    if args.json:
        emit_json(payload)
    else:
        print(f"scheduled {args.pipeline} ({cron}) as recurring run {run}")
    return EXIT_OK


def schedule_pipeline(
    client: Any,
    pipeline_name: str,
    cron: str,
    arguments: dict[str, Any],
    experiment: str,
    name: str | None = None,
) -> str:
    """Compiles the pipeline and creates a KFP recurring run; returns its id."""
    from kfp import compiler

    experiment_id = client.create_experiment(name=experiment).experiment_id
    with tempfile.TemporaryDirectory() as work:
        package = Path(work) / f"{pipeline_name}.yaml"
        compiler.Compiler().compile(pipeline_named(pipeline_name), str(package))
        run = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name or f"{pipeline_name}-recurring",
            cron_expression=cron,
            pipeline_package_path=str(package),
            params=arguments,
            enable_caching=False,
            max_concurrency=1,
        )
    # kfp 2 names it recurring_run_id; older API objects only have id.
    run_id = getattr(run, "recurring_run_id", None) or getattr(run, "id", None)
    return str(run_id or "")


def register(subparsers: Any) -> None:
    """Adds ``schedule``."""
    schedule = subparsers.add_parser("schedule", help="create a KFP recurring run of a pipeline")
    schedule.add_argument("pipeline")
    schedule.add_argument("--host", required=True, help="Kubeflow Pipelines API URL")
    schedule.add_argument(
        "--cron", required=True, help='six fields, seconds first: "0 0 * * * *" = hourly'
    )
    schedule.add_argument("-p", "--param", action="append", metavar="KEY=VALUE")
    schedule.add_argument("--experiment", default="mlops")
    schedule.add_argument("--namespace")
    schedule.add_argument("--name", help="recurring run name")
    schedule.add_argument("--json", action="store_true")
    schedule.set_defaults(func=cmd_schedule, needs_store=False)
