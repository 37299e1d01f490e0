"""KFP component: automated canary analysis of a deployed candidate, then promote, roll back or wait."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def analyze_canary(
    model_name: str,
    metrics: Output[Metrics],
    report: Output[Markdown],
    prometheus_url: str = "",
    metrics_url: str = "",
    window_minutes: float = 30.0,
    min_requests: int = 100,
    max_error_increase: float = 0.01,
    max_latency_ratio: float = 1.5,
    max_js_distance: float = 0.2,
    max_out_of_range_increase: float = 0.05,
    min_labels: int = 50,
    max_accuracy_drop: float = 0.02,
    require_labels: bool = False,
    apply: bool = True,
    target: str = "kserve",
    namespace: str = "kubeflow-user",
) -> NamedTuple(  # type: ignore[valid-type]
    "CanaryOutputs", [("verdict", str), ("summary", str)]
):
    """Compares the candidate with the stable release and promotes it, rolls it back or waits.

    Args:
        model_name: The deployed model with a candidate (any strategy).
        metrics: The compared figures of both versions (Kubeflow UI).
        report: Every check, its figures and the verdict (Kubeflow UI).
        prometheus_url: Prometheus to query over the window ('' = read metrics_url).
        metrics_url: The model server's /metrics, used without prometheus_url.
        window_minutes: Minutes of traffic (and labelled feedback) analysed, > 0.
        min_requests: Requests each version needs before a promotion.
        max_error_increase: Largest allowed error ratio above stable, in [0, 1].
        max_latency_ratio: Largest allowed candidate/stable p99 latency, >= 1.
        max_js_distance: Largest allowed Jensen-Shannon distance of the predicted classes, in [0, 1].
        max_out_of_range_increase: Largest allowed out-of-range inputs per row above stable, in [0, 1].
        min_labels: Labelled rows each version needs for the accuracy comparison.
        max_accuracy_drop: Largest allowed accuracy below stable, in [0, 1].
        require_labels: Wait until both versions have min_labels labelled rows.
        apply: Carry out promote/rollback (False: record the verdict only).
        target: kserve (the InferenceService and the state) or local (the state).
        namespace: Kubernetes namespace of the InferenceService.

    Returns:
        The verdict (promote, rollback or wait) and the outcome JSON: ``status``
        promoted, rolled_back, waiting or analysed (not applied), with every figure.
    """
    import json
    import logging

    from mlops.core.markdown import escape_markdown
    from mlops.core.store import ObjectStore
    from mlops.monitoring.canary import CanaryThresholds
    from mlops.monitoring.canary import analyze_canary as run_analysis

    logging.basicConfig(level=logging.INFO)
    analysis = run_analysis(
        ObjectStore.from_env(),
        model_name,
        prometheus_url=prometheus_url,
        metrics_url=metrics_url,
        window_minutes=window_minutes,
        thresholds=CanaryThresholds(
            min_requests=min_requests,
            max_error_increase=max_error_increase,
            max_latency_ratio=max_latency_ratio,
            max_js_distance=max_js_distance,
            max_out_of_range_increase=max_out_of_range_increase,
            min_labels=min_labels,
            max_accuracy_drop=max_accuracy_drop,
            require_labels=require_labels,
        ),
        apply=apply,
        target=target,
        namespace=namespace,
    )
    for role, figures in (("stable", analysis.stable), ("candidate", analysis.candidate)):
        for key, value in figures.to_dict().items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics.log_metric(f"{role}_{key}", float(value))
    lines = [
        f"# Canary analysis of {escape_markdown(model_name)}: **{analysis.verdict}**",
        "",
        f"Candidate {escape_markdown(analysis.candidate.version)} ({analysis.strategy}) "
        f"against stable {escape_markdown(analysis.stable.version)}; "
        f"source {escape_markdown(analysis.source)}; "
        f"{'applied' if analysis.applied else 'not applied'}.",
        "",
        "| check | outcome | detail |",
        "|---|---|---|",
    ]
    for check in analysis.checks:
        lines.append(f"| {check.name} | {check.outcome} | {escape_markdown(check.detail)} |")
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    outcome = {"status": analysis.outcome, **analysis.to_dict()}
    return analysis.verdict, json.dumps(outcome, sort_keys=True)
