"""KFP component: record a monitoring pass that changed nothing."""

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def record_no_drift(trigger: str) -> str:
    """Records that production stays as it is: no trigger fired, or not enough ground truth.

    Args:
        trigger: JSON of the pass (drift summary, live quality, reasons, and the
            retraining data summary when retraining was wanted but the labels were too few).

    Returns:
        Outcome JSON with status "no_drift" or "not_enough_ground_truth".
    """
    import json

    from mlops.release.publish import no_drift_outcome

    return json.dumps(no_drift_outcome(json.loads(trigger)), sort_keys=True)
