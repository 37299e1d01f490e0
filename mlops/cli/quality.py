"""``mlops quality``: live accuracy of a served model, from its inference logs and feedback labels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlops.cli.common import emit_json
from mlops.core.errors import EXIT_OK

#: ``mlops.monitoring.quality.DEFAULT_MIN_ROWS``, without importing pandas to build the parser.
DEFAULT_MIN_ROWS = 50


def _score(value: float | None) -> str:
    return "     -" if value is None else f"{value:.4f}"


def cmd_quality(args: argparse.Namespace) -> int:
    """Joins the window's logged predictions with their labels and prints the scores per version."""
    from mlops.core.store import ObjectStore
    from mlops.monitoring.quality import check_quality

    check = check_quality(
        ObjectStore.from_env(),
        args.model,
        window_hours=args.window_hours,
        min_rows=args.min_rows,
        html_out=args.report,
    )
    payload: dict[str, Any] = {"status": "ok", **check.summary(), "pushed": check.pushed}
    if args.report:
        payload["report"] = str(args.report)
    if args.json:
        emit_json(payload)
        return EXIT_OK
    quality = check.quality
    print(
        f"{quality.model_name}: {quality.labelled_rows} of {quality.logged_rows} logged rows "
        f"labelled in the last {quality.window_hours:g} h "
        f"({quality.unmatched_feedback} labels without a logged row); "
        f"min_accuracy {quality.min_accuracy:g}"
    )
    for group in quality.groups:
        flag = "" if group.enough_labels else f"  (fewer than {quality.min_rows} labels)"
        drifts = []
        for name, drift in (
            ("predictions", group.prediction_drift),
            ("labels", group.target_drift),
        ):
            if drift is not None:
                drifts.append(f"{name} {'DRIFT' if drift.drifted else 'ok'}")
        print(
            f"  {group.model_version:<24} {group.role:<7} labelled {group.labelled_rows:>6}  "
            f"accuracy {_score(group.accuracy)}  macro-F1 {_score(group.f1_macro)}  "
            f"{', '.join(drifts) or group.drift_note}{flag}"
        )
    print(f"  report: {check.report_uri}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Adds ``quality``."""
    parser = subparsers.add_parser(
        "quality", help="live accuracy per version and role, from inference logs and feedback"
    )
    parser.add_argument("model", metavar="NAME", help="the served model")
    parser.add_argument(
        "--window-hours", type=float, default=24.0, help="score the predictions of the last H hours"
    )
    parser.add_argument(
        "--min-rows",
        type=int,
        default=DEFAULT_MIN_ROWS,
        help=f"labelled rows a version needs for its accuracy to count (default {DEFAULT_MIN_ROWS})",
    )
    parser.add_argument("--report", type=Path, help="also write the HTML report here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_quality, needs_store=True)
