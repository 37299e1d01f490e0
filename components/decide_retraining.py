"""KFP component: retrain on drift or on live accuracy below the threshold."""

from typing import NamedTuple

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def decide_retraining(
    drift_summary: str,
    quality_summary: str,
) -> NamedTuple("RetrainingDecision", [("retrain", bool), ("trigger", str)]):  # type: ignore[valid-type]
    """Decides whether to retrain: dataset drift, or the stable version's live accuracy too low.

    Args:
        drift_summary: Summary JSON of ``check_drift``.
        quality_summary: Summary JSON of ``check_quality`` (too few labels never trigger).

    Returns:
        retrain: Either trigger fired. trigger: JSON of the drift summary, the live
        quality and the reasons, kept in the outcome and the release evidence.
    """
    import json

    from mlops.monitoring.triggers import decide_retraining as decide

    retrain, trigger = decide(json.loads(drift_summary), json.loads(quality_summary))
    return retrain, json.dumps(trigger, sort_keys=True)
