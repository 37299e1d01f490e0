"""Push drift, release and live-quality metrics to a Prometheus Pushgateway.

Pushing metrics must never fail the pipeline: every function here logs a
warning and returns ``False`` when the push does not work, ``True`` when it did.

Each push uses a fresh ``CollectorRegistry`` and ``push_to_gateway`` (HTTP PUT),
grouped by ``job`` and ``model`` so that pushes for different models do not
replace each other's series. ``tests.monitoring_assets.PUSHED_METRICS`` lists the
names pushed here (the alert rules and the dashboard are checked against it).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable

    from mlops.monitoring.drift import DriftResult

log = logging.getLogger(__name__)

RELEASE_DECISIONS = ("released", "rejected", "no_drift", "not_enough_ground_truth")
DEFAULT_TIMEOUT = 10.0


class QualityGroup(Protocol):
    """What is pushed of one (version, role): :class:`mlops.monitoring.quality.GroupQuality`.

    A protocol, not an import: the quality check imports this module to push.
    """

    model_version: str
    role: str
    labelled_rows: int
    accuracy: float | None
    f1_macro: float | None


def _push(
    gateway: str, job: str, model_name: str, registry: CollectorRegistry, timeout: float
) -> bool:
    """PUTs ``registry`` to the ``job``/``model`` group; ``False`` (logged) when that fails."""
    try:
        push_to_gateway(
            gateway, job=job, registry=registry, grouping_key={"model": model_name}, timeout=timeout
        )
    except Exception as exc:  # noqa: BLE001 - metrics must never fail the pipeline
        log.warning(
            "could not push metrics for model %r (job %r) to %s: %s", model_name, job, gateway, exc
        )
        return False
    log.info("pushed metrics for model %r (job %r) to %s", model_name, job, gateway)
    return True


def _model_gauge(
    registry: CollectorRegistry, name: str, documentation: str, model_name: str, value: float
) -> None:
    """Sets the gauge ``name{model=model_name}`` in ``registry`` to ``value``."""
    Gauge(name, documentation, ["model"], registry=registry).labels(model=model_name).set(value)


def push_drift_metrics(
    gateway: str,
    model_name: str,
    result: DriftResult,
    job: str = "mlops_drift",
    timeout: float = DEFAULT_TIMEOUT,
) -> bool:
    """Push the drift check ``result`` for ``model_name``; ``True`` on success, ``False`` (logged) otherwise.

    Gauges: ``mlops_drift_share{model}``, ``mlops_drift_detected{model}`` (0/1),
    ``mlops_drifted_columns{model}``, ``mlops_feature_drift_score{model,feature}``,
    ``mlops_drift_last_check_timestamp_seconds{model}``.
    """
    registry = CollectorRegistry()
    try:
        _model_gauge(
            registry,
            "mlops_drift_share",
            "Share of drifted columns",
            model_name,
            float(result.drift_share),
        )
        _model_gauge(
            registry,
            "mlops_drift_detected",
            "1 when dataset drift was detected",
            model_name,
            1 if result.drift_detected else 0,
        )
        _model_gauge(
            registry,
            "mlops_drifted_columns",
            "Number of drifted columns",
            model_name,
            len(result.drifted_columns),
        )
        score = Gauge(
            "mlops_feature_drift_score",
            "Per-feature drift score (p-value or distance, see the drift method)",
            ["model", "feature"],
            registry=registry,
        )
        for name, col in result.columns.items():
            score.labels(model=model_name, feature=str(name)).set(float(col.score))
        _model_gauge(
            registry,
            "mlops_drift_last_check_timestamp_seconds",
            "Unix time of the last drift check",
            model_name,
            time.time(),
        )
    except Exception as exc:  # noqa: BLE001 - a malformed result must not fail the pipeline either
        log.warning("could not build drift metrics for model %r: %s", model_name, exc)
        return False
    return _push(gateway, job, model_name, registry, timeout)


def push_release_decision(
    gateway: str,
    model_name: str,
    decision: str,
    job: str = "mlops_release",
    timeout: float = DEFAULT_TIMEOUT,
) -> bool:
    """Push the release ``decision`` ("released" | "rejected" | "no_drift") for ``model_name``.

    ``mlops_release_decision{model,decision}`` is 1 for the given decision and 0 for
    the other two; ``mlops_release_decision_timestamp_seconds{model}`` is the push time.
    An unknown decision is logged and nothing is pushed (returns ``False``).
    """
    if decision not in RELEASE_DECISIONS:
        log.warning(
            "not pushing release decision %r for model %r: expected one of %s",
            decision,
            model_name,
            RELEASE_DECISIONS,
        )
        return False
    registry = CollectorRegistry()
    gauge = Gauge(
        "mlops_release_decision",
        "1 for the release decision taken, 0 for the others",
        ["model", "decision"],
        registry=registry,
    )
    for d in RELEASE_DECISIONS:
        gauge.labels(model=model_name, decision=d).set(1 if d == decision else 0)
    _model_gauge(
        registry,
        "mlops_release_decision_timestamp_seconds",
        "Unix time of the last release decision",
        model_name,
        time.time(),
    )
    return _push(gateway, job, model_name, registry, timeout)


def push_quality_metrics(
    gateway: str,
    model_name: str,
    groups: Iterable[QualityGroup],
    min_accuracy: float,
    job: str = "mlops_quality",
    timeout: float = DEFAULT_TIMEOUT,
) -> bool:
    """Push the live quality of ``model_name`` per version and role; ``True`` on success.

    Gauges: ``mlops_model_labelled_rows{model,version,role}`` for every group,
    ``mlops_model_accuracy{model,version,role}`` and ``mlops_model_f1_macro{...}``
    for the groups with labelled rows, ``mlops_model_min_accuracy{model}`` (the
    threshold ``MlopsModelAccuracyLow`` compares with) and
    ``mlops_quality_last_check_timestamp_seconds{model}``. The push replaces the
    model's previous quality group, so versions that no longer serve drop out.
    """
    registry = CollectorRegistry()
    try:
        labels = ["model", "version", "role"]
        rows = Gauge(
            "mlops_model_labelled_rows",
            "Logged predictions with a feedback label in the quality window",
            labels,
            registry=registry,
        )
        accuracy = Gauge(
            "mlops_model_accuracy",
            "Accuracy on the labelled production rows of the quality window",
            labels,
            registry=registry,
        )
        f1 = Gauge(
            "mlops_model_f1_macro",
            "Macro-F1 on the labelled production rows of the quality window",
            labels,
            registry=registry,
        )
        for group in groups:
            key = {
                "model": model_name,
                "version": str(group.model_version),
                "role": str(group.role),
            }
            rows.labels(**key).set(group.labelled_rows)
            if group.accuracy is not None:
                accuracy.labels(**key).set(float(group.accuracy))
            if group.f1_macro is not None:
                f1.labels(**key).set(float(group.f1_macro))
        _model_gauge(
            registry,
            "mlops_model_min_accuracy",
            "Accuracy the model's release was held to (min_accuracy)",
            model_name,
            float(min_accuracy),
        )
        _model_gauge(
            registry,
            "mlops_quality_last_check_timestamp_seconds",
            "Unix time of the last live quality check",
            model_name,
            time.time(),
        )
    except Exception as exc:  # noqa: BLE001 - a malformed result must not fail the pipeline either
        log.warning("could not build quality metrics for model %r: %s", model_name, exc)
        return False
    return _push(gateway, job, model_name, registry, timeout)


__all__ = [
    "push_drift_metrics",
    "push_quality_metrics",
    "push_release_decision",
    "RELEASE_DECISIONS",
]
