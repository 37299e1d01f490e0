"""``mlops drift`` and ``mlops schedule``: the monitoring loop's commands."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from mlops.errors import EXIT_OK, UsageError


def cmd_drift(args: argparse.Namespace) -> int:
    from mlops.cli import emit_json, ensure_store_env

    if args.model:
        from mlops.monitoring import check_drift, drift_payload
        from mlops.store import ObjectStore

        ensure_store_env()
        check = check_drift(
            ObjectStore.from_env(),
            args.model,
            reference_uri=args.reference or "",
            current_uri=args.current or "",
            window_hours=args.window_hours,
            drift_share_threshold=args.threshold,
            html_out=args.report,
        )
        payload = {
            **drift_payload(check.result),
            "report_uri": check.report_uri,
            "model_version": check.model.version,
        }
    else:
        if not (args.reference and args.current):
            raise UsageError("give --model NAME, or both --reference and --current")
        payload = _drift_between_tables(args)
    if args.report:
        payload["report"] = str(args.report)
    if args.json:
        emit_json(payload)
    else:
        verdict = "DRIFT" if payload["drift_detected"] else "no drift"
        print(
            f"{verdict}: {payload['drift_share']:.0%} of columns drifted "
            f"({payload['n_current']} current rows vs {payload['n_reference']} reference rows)"
        )
        for name, column in payload["columns"].items():
            flag = "drifted" if column["drifted"] else "ok     "
            print(f"  {flag} {name:<28} {column['method']:<30} {column['score']:.4g}")
        for key in ("report_uri", "report"):
            if payload.get(key):
                print(f"  report: {payload[key]}")
    return EXIT_OK


def _drift_between_tables(args: argparse.Namespace) -> dict[str, Any]:
    """Two tables, no model: compare the columns they share (non-numeric ones as categorical)."""
    import pandas as pd

    from mlops.data import read_table
    from mlops.drift import compute_drift, render_report_html
    from mlops.monitoring import drift_payload

    if args.reference.startswith("s3://") or args.current.startswith("s3://"):
        from mlops.cli import ensure_store_env

        ensure_store_env()
    reference, current = read_table(args.reference), read_table(args.current)
    columns = [c for c in reference.columns if c in current.columns]
    categorical = [c for c in columns if not pd.api.types.is_numeric_dtype(reference[c])]
    result = compute_drift(
        reference,
        current,
        columns=columns,
        categorical=categorical,
        drift_share_threshold=args.threshold,
    )
    if args.report:
        render_report_html(
            reference,
            current,
            list(result.columns),
            [c for c in categorical if c in result.columns],
            Path(args.report),
            verdict=result,
            drift_share_threshold=args.threshold,
        )
    return drift_payload(result)


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
    import kfp

    from mlops.cli import emit_json
    from mlops.pipeline_params import parse_params
    from pipelines import PIPELINES

    if args.pipeline not in PIPELINES:
        raise UsageError(
            f"unknown pipeline {args.pipeline!r}; pipelines are: {', '.join(PIPELINES)}"
        )
    cron = parse_cron(args.cron)
    arguments = parse_params(PIPELINES[args.pipeline], args.param or [])
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

    from pipelines import PIPELINES

    experiment_id = client.create_experiment(name=experiment).experiment_id
    with tempfile.TemporaryDirectory() as work:
        package = Path(work) / f"{pipeline_name}.yaml"
        compiler.Compiler().compile(PIPELINES[pipeline_name], str(package))
        run = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name or f"{pipeline_name}-recurring",
            cron_expression=cron,
            pipeline_package_path=str(package),
            params=arguments,
            enable_caching=False,
            max_concurrency=1,
        )
    return getattr(run, "recurring_run_id", None) or getattr(run, "id", "")


def register(subparsers: Any) -> None:
    drift = subparsers.add_parser(
        "drift", help="compare production data with the training reference"
    )
    drift.add_argument(
        "--model",
        help="deployed model: its training sample is the default reference, "
        "its inference logs the default current data",
    )
    drift.add_argument("--reference", help="reference table (path, file:// or s3://)")
    drift.add_argument("--current", help="current production table (path, file:// or s3://)")
    drift.add_argument(
        "--window-hours", type=float, default=24.0, help="inference-log window (with --model)"
    )
    drift.add_argument(
        "--threshold", type=float, default=0.5, help="drifted-column share meaning dataset drift"
    )
    drift.add_argument("--report", type=Path, help="write the Evidently HTML report here")
    drift.add_argument("--json", action="store_true")
    drift.set_defaults(func=cmd_drift)

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
    schedule.set_defaults(func=cmd_schedule)
