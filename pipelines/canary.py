"""The ``canary-analysis`` pipeline (recurring): judge a deployed candidate and act on the verdict.

Scheduled next to the monitoring pipeline (``mlops schedule``), it compares the
candidate of any strategy (canary, sticky, cohort, shadow) with the stable
release over a window and promotes it, rolls it back, or waits for more traffic
or labels; the figures are recorded in the store either way.
"""

from kfp import dsl

from components.analyze_canary import analyze_canary
from pipelines._cluster import live, uses_store


@dsl.pipeline(
    name="canary-analysis",
    description="Compare the deployed candidate with the stable release on errors, p99 latency, "
    "predicted classes, out-of-range inputs and labelled accuracy; promote it, roll it back, or "
    "wait for enough traffic.",
)
def canary_analysis(
    model_name: str,
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
    deploy_target: str = "kserve",
    namespace: str = "kubeflow-user",
) -> str:
    """Returns the outcome JSON: status promoted, rolled_back, waiting or analysed, with the figures.

    Args:
        model_name: The deployed model with a candidate (registry name, lowercase
            letters, digits and '-').
        prometheus_url: Prometheus to query over the window, e.g.
            http://prometheus.monitoring:9090 ('' = read metrics_url).
        metrics_url: The model server's /metrics, used when prometheus_url is ''.
        window_minutes: Minutes of traffic and labelled feedback analysed, > 0.
        min_requests: Requests each version needs before the candidate can be promoted.
        max_error_increase: Largest allowed error ratio above the stable one, in [0, 1].
        max_latency_ratio: Largest allowed candidate/stable p99 latency ratio, >= 1.
        max_js_distance: Largest allowed Jensen-Shannon distance between the two
            versions' predicted classes, in [0, 1].
        max_out_of_range_increase: Largest allowed out-of-range inputs per row above
            the stable share, in [0, 1].
        min_labels: Labelled rows each version needs for the accuracy comparison.
        max_accuracy_drop: Largest allowed accuracy below the stable one, in [0, 1].
        require_labels: Wait until both versions have min_labels labelled rows.
        apply: Promote or roll back on the verdict (false: record it only).
        deploy_target: kserve (an InferenceService) or local (mlops serve).
        namespace: Kubernetes namespace of the InferenceService.
    """
    analysis = live(
        uses_store(
            analyze_canary(
                model_name=model_name,
                prometheus_url=prometheus_url,
                metrics_url=metrics_url,
                window_minutes=window_minutes,
                min_requests=min_requests,
                max_error_increase=max_error_increase,
                max_latency_ratio=max_latency_ratio,
                max_js_distance=max_js_distance,
                max_out_of_range_increase=max_out_of_range_increase,
                min_labels=min_labels,
                max_accuracy_drop=max_accuracy_drop,
                require_labels=require_labels,
                apply=apply,
                target=deploy_target,
                namespace=namespace,
            )
        )
    )
    analysis.set_display_name("Analyse the candidate: promote, roll back or wait")
    return analysis.outputs["summary"]
