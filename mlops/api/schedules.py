"""Recurring runs on a Kubeflow Pipelines cluster: create, list, pause, resume, delete.

Every recurring run this project creates has a display name starting with
:data:`SCHEDULE_PREFIX`, so listing and managing them never touches anyone
else's. By default at most one run is in flight (``max_concurrency=1``) and a
paused schedule does not catch up on the runs it missed.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops.api.cluster import Cluster, api_errors, compiled_package
from mlops.core.errors import UsageError

logger = logging.getLogger(__name__)

#: The display-name prefix of the recurring runs this project creates and manages.
SCHEDULE_PREFIX = "mlops-"
#: The description marker naming the pipeline (``kfp-mlops pipeline: monitoring``).
DESCRIPTION_MARKER = "kfp-mlops pipeline: "
_PAGE_SIZE = 100


@dataclass(frozen=True)
class Schedule:
    """One recurring run.

    Attributes:
        id: The recurring run's id.
        name: Its display name (starts with :data:`SCHEDULE_PREFIX`).
        pipeline: The pipeline it runs, from its description ('' when unknown).
        cron: Six-field cron, seconds first.
        enabled: False while paused.
        max_concurrency: Runs in flight at most.
        no_catchup: Whether missed runs are skipped after a pause.
        service_account: The service account of its runs' pods ('' = the default).
    """

    id: str
    name: str
    pipeline: str
    cron: str
    enabled: bool
    max_concurrency: int
    no_catchup: bool
    service_account: str

    @classmethod
    def from_api(cls, run: Any) -> Schedule:
        """From a KFP ``V2beta1RecurringRun``."""
        description = str(getattr(run, "description", "") or "")
        trigger = getattr(run, "trigger", None)
        cron = getattr(getattr(trigger, "cron_schedule", None), "cron", None) or ""
        return cls(
            id=str(run.recurring_run_id),
            name=str(run.display_name or ""),
            pipeline=description.partition(DESCRIPTION_MARKER)[2].split()[0]
            if DESCRIPTION_MARKER in description
            else "",
            cron=str(cron),
            enabled=str(getattr(run, "mode", "")) == "ENABLE",
            max_concurrency=int(getattr(run, "max_concurrency", 0) or 0),
            no_catchup=bool(getattr(run, "no_catchup", False)),
            service_account=str(getattr(run, "service_account", "") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return asdict(self)


def parse_cron(expression: str) -> str:
    """KFP cron has six fields, seconds first; a five-field crontab line is refused with a hint.

    Raises:
        UsageError: not six fields.
    """
    fields = expression.split()
    if len(fields) != 6:
        hint = f" (did you mean '0 {expression}'?)" if len(fields) == 5 else ""
        raise UsageError(
            f"cron {expression!r} has {len(fields)} fields; KFP needs 6, seconds first{hint}"
        )
    return expression


def schedule_name(pipeline_name: str, name: str | None = None) -> str:
    """The display name of a new recurring run: ``name`` (or the pipeline's) with the prefix."""
    base = name or pipeline_name
    return base if base.startswith(SCHEDULE_PREFIX) else f"{SCHEDULE_PREFIX}{base}"


def create_schedule(
    pipeline_name: str,
    pipeline: Any,
    arguments: dict[str, Any],
    cron: str,
    cluster: Cluster,
    *,
    name: str | None = None,
    max_concurrency: int = 1,
    catch_up: bool = False,
) -> Schedule:
    """Compiles the pipeline with the cluster's images and creates a recurring run.

    Args:
        pipeline_name: ``training`` or ``monitoring``.
        pipeline: Its ``@dsl.pipeline`` function.
        arguments: Typed arguments of every run.
        cron: Six fields, seconds first (``0 0 3 * * *``: daily at 03:00:00).
        cluster: Where and how (images, service account, namespace, credentials).
        name: Display name (prefixed with :data:`SCHEDULE_PREFIX` when it lacks it).
        max_concurrency: Runs in flight at most (>= 1).
        catch_up: Run every interval missed while paused (default: only the latest).

    Raises:
        UsageError: a bad cron, a name already taken, or the API refused the request.
    """
    cron = parse_cron(cron)
    if max_concurrency < 1:
        raise UsageError(f"max_concurrency must be at least 1, got {max_concurrency}")
    display_name = schedule_name(pipeline_name, name)
    client = cluster.client()
    if any(s.name == display_name for s in _list(client, cluster)):
        raise UsageError(
            f"a recurring run named {display_name!r} exists; delete it first "
            f"(mlops schedule delete {display_name}) or choose another --name"
        )
    with api_errors(cluster.host):
        experiment_id = client.create_experiment(
            name=cluster.experiment, namespace=cluster.namespace
        ).experiment_id
    with tempfile.TemporaryDirectory() as work:
        package, _ = compiled_package(pipeline, cluster, Path(work))
        with api_errors(cluster.host):
            run = client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=display_name,
                description=f"{DESCRIPTION_MARKER}{pipeline_name}",
                cron_expression=cron,
                max_concurrency=max_concurrency,
                no_catchup=not catch_up,
                params=arguments,
                pipeline_package_path=str(package),
                enable_caching=False,
                service_account=cluster.service_account,
            )
    logger.info("created recurring run %s (%s) on %s", display_name, cron, cluster.host)
    return Schedule.from_api(run)


def list_schedules(cluster: Cluster) -> list[Schedule]:
    """The recurring runs this project created (names starting with :data:`SCHEDULE_PREFIX`)."""
    return _list(cluster.client(), cluster)


def _list(client: Any, cluster: Cluster) -> list[Schedule]:
    found: list[Schedule] = []
    token = ""
    while True:
        with api_errors(cluster.host):
            page = client.list_recurring_runs(
                page_token=token, page_size=_PAGE_SIZE, namespace=cluster.namespace
            )
        for run in getattr(page, "recurring_runs", None) or []:
            if str(run.display_name or "").startswith(SCHEDULE_PREFIX):
                found.append(Schedule.from_api(run))
        token = getattr(page, "next_page_token", "") or ""
        if not token:
            return sorted(found, key=lambda s: s.name)


def find_schedule(cluster: Cluster, name_or_id: str) -> Schedule:
    """The project's recurring run with this display name or id.

    Raises:
        UsageError: none of the project's recurring runs has it (they are listed),
            or several share the name (use the id).
    """
    schedules = list_schedules(cluster)
    by_id = [s for s in schedules if s.id == name_or_id]
    if by_id:
        return by_id[0]
    named = [s for s in schedules if s.name in (name_or_id, schedule_name("", name_or_id))]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(s.id for s in named)
        raise UsageError(f"{len(named)} recurring runs are named {name_or_id!r}; give an id: {ids}")
    known = ", ".join(s.name for s in schedules) or "none"
    raise UsageError(
        f"no recurring run of this project is named {name_or_id!r} (or has that id); "
        f"they are: {known}"
    )


def pause_schedule(cluster: Cluster, name_or_id: str) -> Schedule:
    """Disables the recurring run (no new runs until resumed)."""
    return _change(cluster, name_or_id, "disable_recurring_run", enabled=False)


def resume_schedule(cluster: Cluster, name_or_id: str) -> Schedule:
    """Enables a paused recurring run again."""
    return _change(cluster, name_or_id, "enable_recurring_run", enabled=True)


def delete_schedule(cluster: Cluster, name_or_id: str) -> Schedule:
    """Deletes the recurring run (its past runs stay); returns what it was."""
    return _change(cluster, name_or_id, "delete_recurring_run", enabled=False)


def _change(cluster: Cluster, name_or_id: str, method: str, *, enabled: bool) -> Schedule:
    schedule = find_schedule(cluster, name_or_id)
    with api_errors(cluster.host):
        getattr(cluster.client(), method)(recurring_run_id=schedule.id)
    logger.info("%s: %s (%s)", method, schedule.name, schedule.id)
    return Schedule(**{**schedule.to_dict(), "enabled": enabled})
