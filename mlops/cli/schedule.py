"""``mlops schedule``: KFP recurring runs of a pipeline, and managing the ones this project made.

    mlops schedule PIPELINE --host URL --cron "0 0 3 * * *" [-p K=V ...]   create one
    mlops schedule list   --host URL                                      list them
    mlops schedule pause  NAME --host URL    (resume, delete alike)        by name or id

Cron has six fields, seconds first. Created recurring runs are named ``mlops-...``;
``list``, ``pause``, ``resume`` and ``delete`` only see those.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlops.api.schedules import SCHEDULE_PREFIX, Schedule, parse_cron
from mlops.cli.common import add_cluster_arguments, cluster_from_args, emit_json, json_stdout
from mlops.core.errors import EXIT_OK, UsageError

__all__ = ["ACTIONS", "cmd_schedule", "parse_cron", "register"]

#: The management actions; any other first word is the pipeline to schedule.
ACTIONS = ("list", "pause", "resume", "delete")
_DONE = {"pause": "paused", "resume": "resumed", "delete": "deleted"}


def cmd_schedule(args: argparse.Namespace) -> int:
    """Creates a recurring run (``mlops schedule PIPELINE``) or manages one (``list``, ``pause``...)."""
    if args.target in ACTIONS:
        return _manage(args)
    if args.name_or_id:
        raise UsageError(
            f"unexpected {args.name_or_id!r} after the pipeline name; use --name for the schedule"
        )
    return _create(args)


def _create(args: argparse.Namespace) -> int:
    from mlops.api.runs import pipeline_named, schedule_pipeline
    from mlops.runs.params import parse_params

    if not args.cron:
        raise UsageError('--cron is required to create a schedule, e.g. --cron "0 0 3 * * *"')
    cron = parse_cron(args.cron)
    arguments = parse_params(pipeline_named(args.target), args.param or [])
    with json_stdout(args.json):
        schedule = schedule_pipeline(
            args.target,
            cron=cron,
            cluster=cluster_from_args(args),
            name=args.name,
            max_concurrency=args.max_concurrency,
            catch_up=args.catch_up,
            **arguments,
        )
    if args.json:
        emit_json(
            {
                "status": "scheduled",
                "recurring_run_id": schedule.id,
                "name": schedule.name,
                "cron": cron,
                "pipeline": args.target,
            }
        )
    else:
        print(f"scheduled {args.target} ({cron}) as recurring run {schedule.name} ({schedule.id})")
    return EXIT_OK


def _manage(args: argparse.Namespace) -> int:
    from mlops.api import schedules

    cluster = cluster_from_args(args)
    if args.target == "list":
        with json_stdout(args.json):
            found = schedules.list_schedules(cluster)
        if args.json:
            emit_json({"status": "ok", "schedules": [s.to_dict() for s in found]})
        else:
            _print_table(found)
        return EXIT_OK
    if not args.name_or_id:
        raise UsageError(f"mlops schedule {args.target} needs the schedule's name or id")
    action = {
        "pause": schedules.pause_schedule,
        "resume": schedules.resume_schedule,
        "delete": schedules.delete_schedule,
    }[args.target]
    with json_stdout(args.json):
        schedule = action(cluster, args.name_or_id)
    if args.json:
        emit_json({"status": _DONE[args.target], "schedule": schedule.to_dict()})
    else:
        print(f"{_DONE[args.target]} {schedule.name} ({schedule.id})")
    return EXIT_OK


def _print_table(found: list[Schedule]) -> None:
    if not found:
        print(f"no recurring runs named {SCHEDULE_PREFIX}* on this cluster")
        return
    print(f"{'NAME':<36} {'PIPELINE':<12} {'CRON':<16} {'STATE':<8} ID")
    for s in found:
        state = "enabled" if s.enabled else "paused"
        print(f"{s.name:<36} {s.pipeline or '?':<12} {s.cron:<16} {state:<8} {s.id}")


def register(subparsers: Any) -> None:
    """Adds ``schedule``."""
    schedule = subparsers.add_parser(
        "schedule",
        help="create a KFP recurring run of a pipeline; list, pause, resume or delete them",
        description=(__doc__ or "").split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schedule.add_argument(
        "target", metavar="PIPELINE|list|pause|resume|delete", help="what to schedule, or an action"
    )
    schedule.add_argument(
        "name_or_id", nargs="?", metavar="NAME", help="the schedule (pause, resume, delete)"
    )
    add_cluster_arguments(schedule, required=True)
    schedule.add_argument(
        "--cron", help='six fields, seconds first: "0 0 * * * *" = hourly (creating)'
    )
    schedule.add_argument("-p", "--param", action="append", metavar="KEY=VALUE")
    schedule.add_argument(
        "--name", help=f"recurring run name (creating; default {SCHEDULE_PREFIX}PIPELINE)"
    )
    schedule.add_argument(
        "--max-concurrency",
        type=int,
        default=1,
        help="runs in flight at most (default 1)",
    )
    schedule.add_argument(
        "--catch-up",
        action="store_true",
        help="after a pause, run every missed interval (default: only the latest)",
    )
    schedule.add_argument("--json", action="store_true")
    schedule.set_defaults(func=cmd_schedule, needs_store=False)
