"""``mlops drift``: compare production data with the training reference."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlops.cli.common import emit_json, ensure_store_env
from mlops.core.errors import EXIT_OK, UsageError


def cmd_drift(args: argparse.Namespace) -> int:
    """Drift of a deployed model (``--model``) or between two tables."""
    if args.model:
        from mlops.core.store import ObjectStore
        from mlops.monitoring.check import check_drift, drift_payload

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
    """Two tables, no model: compare the columns they share, kinds inferred once from the reference."""
    from mlops.core.data import read_table
    from mlops.monitoring.check import drift_payload
    from mlops.monitoring.drift import compute_drift, drift_schema
    from mlops.monitoring.report import render_report_html

    if args.reference.startswith("s3://") or args.current.startswith("s3://"):
        ensure_store_env()
    reference, current = read_table(args.reference), read_table(args.current)
    # The reference plays the model's part: its columns decide the kinds, as training would.
    schema = drift_schema(reference, current)
    result = compute_drift(reference, current, schema=schema, drift_share_threshold=args.threshold)
    if args.report:
        render_report_html(
            reference,
            current,
            Path(args.report),
            schema=schema.select(result.columns),
            verdict=result,
            drift_share_threshold=args.threshold,
        )
    return drift_payload(result)


def register(subparsers: Any) -> None:
    """Adds ``drift``."""
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
    drift.set_defaults(func=cmd_drift, needs_store=False)
