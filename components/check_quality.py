"""KFP component: live accuracy of the served model, from its inference logs and feedback labels."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Metrics, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def check_quality(
    model_name: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    window_hours: float = 24.0,
    min_rows: int = 50,
) -> NamedTuple(  # type: ignore[valid-type]
    "QualityOutputs",
    [
        ("accuracy", float),
        ("labelled_rows", int),
        ("enough_labels", bool),
        ("min_accuracy", float),
        ("summary", str),
    ],
):
    """Joins the window's logged predictions with their feedback labels and scores each version.

    Args:
        model_name: Served model.
        report: Evidently's classification report of the stable version (Kubeflow UI).
        metrics: Labelled rows, accuracy and macro-F1 per version and role.
        confusion: Confusion matrix of the stable version's labelled rows.
        window_hours: Predictions of the last ``window_hours`` are scored.
        min_rows: Labelled rows a version needs for its accuracy to count.

    Without logged traffic in the window the quality is unknown (accuracy -1.0, no
    groups): that never triggers retraining, and the run goes on.

    Returns:
        The stable version's accuracy (-1.0 without labels), its labelled rows,
        whether they reach ``min_rows``, the model's min_accuracy, and the whole
        result as JSON.
    """
    import json
    import logging

    from mlops.core.errors import DataError
    from mlops.core.store import ObjectStore
    from mlops.monitoring.quality import check_quality as run_check

    logging.basicConfig(level=logging.INFO)
    try:
        check = run_check(
            ObjectStore.from_env(),
            model_name,
            window_hours=window_hours,
            min_rows=min_rows,
            html_out=report.path,
        )
    except DataError as exc:
        # No logged traffic in the window: live accuracy is unknown, which never
        # triggers retraining; the drift step decides alone.
        from html import escape

        with open(report.path, "w") as handle:
            handle.write(f"<p>No live quality: {escape(str(exc))}</p>\n")
        unknown = {"model_name": model_name, "groups": [], "note": str(exc)}
        return -1.0, 0, False, -1.0, json.dumps(unknown, sort_keys=True)
    quality = check.quality
    for group in quality.groups:
        key = f"{group.role}_{group.model_version}"
        metrics.log_metric(f"{key}_labelled_rows", group.labelled_rows)
        if group.accuracy is not None:
            metrics.log_metric(f"{key}_accuracy", group.accuracy)
            metrics.log_metric(f"{key}_f1_macro", group.f1_macro)
    stable = quality.group("stable")
    if stable is not None and stable.labelled_rows:
        confusion.log_confusion_matrix(stable.labels, stable.confusion_matrix)
    return (
        stable.accuracy if stable is not None and stable.accuracy is not None else -1.0,
        stable.labelled_rows if stable is not None else 0,
        bool(stable is not None and stable.enough_labels),
        quality.min_accuracy,
        json.dumps(check.summary(), sort_keys=True),
    )
