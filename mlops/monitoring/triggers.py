"""Why the monitoring loop retrains: dataset drift, or live accuracy below the model's threshold.

Either one is enough. The decision and its figures travel as the run's trigger,
so the outcome and the release evidence of a retrained model say what started it.
"""

from __future__ import annotations

from typing import Any

DRIFT = "dataset_drift"
ACCURACY = "accuracy_below_threshold"


def decide_retraining(
    drift_summary: dict[str, Any], quality_summary: dict[str, Any] | None = None
) -> tuple[bool, dict[str, Any]]:
    """Whether to retrain, and the trigger record (the drift summary plus reasons and quality).

    Args:
        drift_summary: The drift step's summary (``drift_detected``, shares, columns...).
        quality_summary: The live-quality step's summary; its stable version's
            ``accuracy``, ``enough_labels`` and the model's ``min_accuracy`` decide
            the accuracy trigger (too few labels never trigger it).

    Returns:
        ``(retrain, trigger)``; ``trigger["reasons"]`` lists what fired.
    """
    reasons = []
    if drift_summary.get("drift_detected"):
        reasons.append(DRIFT)
    stable = _stable(quality_summary or {})
    if stable is not None:
        accuracy, threshold = stable.get("accuracy"), (quality_summary or {}).get("min_accuracy")
        if (
            stable.get("enough_labels")
            and isinstance(accuracy, int | float)
            and isinstance(threshold, int | float)
            and accuracy < threshold
        ):
            reasons.append(ACCURACY)
    trigger = {**drift_summary, "reasons": reasons, "quality": quality_summary or None}
    return bool(reasons), trigger


def _stable(quality_summary: dict[str, Any]) -> dict[str, Any] | None:
    """The stable version's entry of a live-quality summary, if any."""
    for group in quality_summary.get("groups") or []:
        if group.get("role") == "stable":
            return group
    return None


def unchanged_reason(trigger: dict[str, Any]) -> str:
    """Why a pass changed nothing: no drift and accuracy at or above threshold (or unknown)."""
    text = (
        f"drift share {trigger['drift_share']:.2f} below threshold {trigger['share_threshold']:.2f}"
    )
    stable = _stable(trigger.get("quality") or {})
    if stable is not None and stable.get("enough_labels"):
        text += f"; live accuracy {stable['accuracy']:.4f} at or above the threshold"
    elif trigger.get("quality") is not None:
        text += "; too few labels to judge live accuracy"
    return text + ": production unchanged"
