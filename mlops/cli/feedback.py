"""``mlops feedback``: send a batch of ground-truth labels for logged predictions."""

from __future__ import annotations

import argparse
from typing import Any

from mlops.cli.common import emit_json
from mlops.core.errors import EXIT_OK

#: How many unknown ids the output lists (all of them are counted).
SHOWN_UNKNOWN = 20


def cmd_feedback(args: argparse.Namespace) -> int:
    """Writes the labels of ``--labels`` as feedback of the model and reports ids no log knows."""
    from mlops.core.store import ObjectStore
    from mlops.monitoring.feedback import feedback_frame, load_labels, write_feedback
    from mlops.monitoring.inference_log import known_request_ids

    store = ObjectStore.from_env()
    labels = feedback_frame(load_labels(args.labels))  # checked before anything is read or written
    known = known_request_ids(store, args.model)
    unknown = [i for i in labels["request_id"].tolist() if i not in known]
    keys = write_feedback(store, args.model, labels)
    payload: dict[str, Any] = {
        "status": "ok",
        "model_name": args.model,
        "labels": len(labels),
        "matched": len(labels) - len(unknown),
        "unknown_ids": len(unknown),
        "unknown_ids_shown": unknown[:SHOWN_UNKNOWN],
        "objects": [store.uri(k) for k in keys],
    }
    if args.json:
        emit_json(payload)
        return EXIT_OK
    print(
        f"stored {payload['labels']} labels for {args.model}: {payload['matched']} match a "
        f"logged prediction, {payload['unknown_ids']} unknown to the inference log"
    )
    if unknown:
        more = f" (first {SHOWN_UNKNOWN} of {len(unknown)})" if len(unknown) > SHOWN_UNKNOWN else ""
        print(f"  unknown ids{more}: {', '.join(unknown[:SHOWN_UNKNOWN])}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Adds ``feedback``."""
    parser = subparsers.add_parser(
        "feedback", help="store ground-truth labels for logged predictions (by request id)"
    )
    parser.add_argument("model", metavar="NAME", help="the model the labels are for")
    parser.add_argument(
        "--labels",
        required=True,
        metavar="URI",
        help="CSV or Parquet table (path, file:// or s3://) with request_id (or id) and label",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_feedback, needs_store=True)
