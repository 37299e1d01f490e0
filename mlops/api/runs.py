"""``run_pipeline`` and ``schedule_pipeline``: the one code path of notebooks and the CLI."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import IO, Any

from mlops.api.cluster import Cluster, submit
from mlops.api.outcome import Outcome
from mlops.api.schedules import Schedule, create_schedule
from mlops.core.errors import UsageError

logger = logging.getLogger(__name__)


def pipeline_named(name: str) -> Any:
    """The pipeline function called ``name``; an unknown name is a usage error listing them."""
    from pipelines import PIPELINES

    if name not in PIPELINES:
        raise UsageError(f"unknown pipeline {name!r}; pipelines are: {', '.join(PIPELINES)}")
    return PIPELINES[name]


def pipeline_arguments(pipeline: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against the pipeline's inputs and converted to their types.

    Text values are parsed as ``-p NAME=VALUE`` is (``"0.9"`` for a float,
    ``"true"`` for a boolean); other values must already have the type.

    Raises:
        UsageError: an unknown name (the valid ones are listed), a value of the
            wrong type, or a required parameter missing.
    """
    from mlops.runs.params import pipeline_inputs

    inputs = pipeline_inputs(pipeline)
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        raise UsageError(
            f"unknown parameter {unknown[0]!r}; parameters are: {', '.join(sorted(inputs))}"
        )
    missing = [n for n, (_, required) in inputs.items() if required and n not in params]
    if missing:
        raise UsageError(f"missing required parameter(s): {', '.join(missing)}")
    return {name: _typed(name, value, inputs[name][0]) for name, value in params.items()}


def _typed(name: str, value: Any, kind: str) -> Any:
    from mlops.core.settings import parse_bool

    if isinstance(value, str) and kind != "String":
        try:
            if kind == "Boolean":
                return parse_bool(value, name)
            return int(value) if kind == "Integer" else float(value)
        except ValueError as exc:
            raise UsageError(f"parameter {name}={value!r} is not a valid {kind.lower()}") from exc
    valid = {
        "String": isinstance(value, str),
        "Boolean": isinstance(value, bool),
        "Integer": isinstance(value, int) and not isinstance(value, bool),
        "Float": isinstance(value, (int, float)) and not isinstance(value, bool),
    }
    if not valid.get(kind, True):
        raise UsageError(f"parameter {name}={value!r} is not a valid {kind.lower()}")
    return float(value) if kind == "Float" else value


def _cluster_for(host: str | None, cluster: Cluster | None) -> Cluster | None:
    if cluster is not None and host is not None and host != cluster.host:
        raise UsageError(f"host {host!r} differs from the cluster's {cluster.host!r}; give one")
    if cluster is None and host is not None:
        return Cluster(host=host)
    return cluster


def run_pipeline(
    pipeline: str,
    /,
    *,
    host: str | None = None,
    cluster: Cluster | None = None,
    wait: bool = True,
    timeout: float = 3600.0,
    poll_seconds: float = 10.0,
    progress: IO[str] | None = None,
    **params: Any,
) -> Outcome:
    """Runs a pipeline here (kfp.local) or submits it to a Kubeflow Pipelines cluster.

    Example::

        from mlops import run_pipeline
        outcome = run_pipeline(
            "training", recipe_uri="git+https://github.com/org/model.git@main",
            data_uri="train.csv", holdout_uri="holdout.csv",
        )
        outcome.status, outcome.metrics["holdout_accuracy"], outcome.model_uri

    Args:
        pipeline: ``training`` or ``monitoring``.
        host: The KFP API URL: submit there instead of running here (shorthand
            for ``cluster=Cluster(host)``).
        cluster: Where and how to submit (namespace, service account, images,
            credentials); ``None`` with no ``host``: run here.
        wait: On a cluster, wait for the run to finish (local runs always do).
        timeout: Seconds to wait for a cluster run.
        poll_seconds: Seconds between two looks at a cluster run.
        progress: Stream for one line per finished local step (``sys.stdout`` in
            a notebook), or None.
        **params: Pipeline parameters (``data_uri=...``); text is parsed as
            ``-p NAME=VALUE`` would be. A training ``recipe_uri`` is pinned to its
            commit before the run.

    Returns:
        The :class:`Outcome` (status ``released``, ``rejected``, ``no_drift``;
        ``submitted`` when not waiting; ``failed`` when a cluster run failed).

    Raises:
        UsageError: a bad parameter, table, setting or host (exit 2; nothing ran).
        TaskFailed: a local task failed (its exception line and exit code).
        MlopsError: the cluster could not be reached, or the run did not finish in time.
    """
    function = pipeline_named(pipeline)
    arguments = pipeline_arguments(function, params)
    target = _cluster_for(host, cluster)
    if target is None:
        from mlops.api.local import run_local

        return run_local(pipeline, function, arguments, progress)
    if pipeline == "training":
        from mlops.runs.lifecycle import pin_repository

        arguments = pin_repository(arguments)  # the cluster trains the commit named here
    return submit(
        pipeline,
        function,
        arguments,
        target,
        wait=wait,
        timeout=timeout,
        poll_seconds=poll_seconds,
    )


def schedule_pipeline(
    pipeline: str,
    /,
    *,
    cron: str,
    host: str | None = None,
    cluster: Cluster | None = None,
    name: str | None = None,
    max_concurrency: int = 1,
    catch_up: bool = False,
    **params: Any,
) -> Schedule:
    """Creates a recurring run of a pipeline on a Kubeflow Pipelines cluster.

    Args:
        pipeline: ``monitoring`` (usually) or ``training``.
        cron: Six fields, seconds first: ``"0 0 3 * * *"`` is daily at 03:00:00.
        host: The KFP API URL (shorthand for ``cluster=Cluster(host)``).
        cluster: Where and how (namespace, service account, images, credentials).
        name: Display name; ``mlops-`` is put in front when missing (default
            ``mlops-<pipeline>``), which is how ``list_schedules`` finds it.
        max_concurrency: Runs in flight at most.
        catch_up: Run every interval missed while paused (default: only the latest).
        **params: Pipeline parameters of every run. A training ``recipe_uri`` is
            not pinned: each run fetches the ref and records its commit.

    Raises:
        UsageError: no host, a bad cron or parameter, a taken name, or the API refused.
    """
    target = _cluster_for(host, cluster)
    if target is None:
        raise UsageError("a schedule needs a cluster: give host= (the KFP API URL)")
    function = pipeline_named(pipeline)
    arguments = pipeline_arguments(function, params)
    return create_schedule(
        pipeline,
        function,
        arguments,
        cron,
        target,
        name=name,
        max_concurrency=max_concurrency,
        catch_up=catch_up,
    )
