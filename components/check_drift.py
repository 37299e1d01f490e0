"""KFP component: compare production data with the deployed model's training sample."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Metrics, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def check_drift(
    model_name: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    current_uri: str = "",
    reference_uri: str = "",
    window_hours: float = 24.0,
    drift_share_threshold: float = 0.5,
) -> NamedTuple(  # type: ignore[valid-type]
    "DriftOutputs",
    [
        ("drift_detected", bool),
        ("drift_share", float),
        ("drifted_columns", str),
        ("summary", str),
        ("target_column", str),
        ("drop_columns", str),
        ("recipe_uri", str),
        ("categorical_columns", str),
    ],
):
    """Compares production data with the deployed model's training sample (Evidently tests).

    Args:
        model_name: Deployed model.
        report: Evidently HTML report (rendered by the Kubeflow UI).
        metrics: Drift share and drifted column count.
        current_uri: Production data table; '' uses the model's inference logs.
        reference_uri: Reference table; '' uses the sample stored with the model.
        window_hours: Inference-log window when ``current_uri`` is ''.
        drift_share_threshold: Share of drifted columns that means dataset drift.

    Returns:
        drift_detected, drift_share, drifted_columns (comma-separated), summary
        (JSON), and how the deployed model was built: target_column, drop_columns,
        recipe_uri (its repository at the recorded commit), categorical_columns.
    """
    import json
    import logging

    from mlops.core.store import ObjectStore
    from mlops.monitoring.check import check_drift as run_check

    logging.basicConfig(level=logging.INFO)
    check = run_check(
        ObjectStore.from_env(),
        model_name,
        reference_uri=reference_uri,
        current_uri=current_uri,
        window_hours=window_hours,
        drift_share_threshold=drift_share_threshold,
        html_out=report.path,
    )
    summary = check.summary()
    metrics.log_metric("drift_share", summary["drift_share"])
    metrics.log_metric("drifted_columns", len(summary["drifted_columns"]))
    recipe = check.model.recipe()
    return (
        summary["drift_detected"],
        summary["drift_share"],
        ",".join(summary["drifted_columns"]),
        json.dumps(summary, sort_keys=True),
        recipe["target_column"],
        recipe["drop_columns"],
        recipe["recipe_uri"],
        recipe["categorical_columns"],
    )
