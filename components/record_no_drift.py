"""KFP component: record that the drift check found nothing to act on."""

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def record_no_drift(drift_summary: str) -> str:
    """Records that no drift was found: production stays as it is.

    Args:
        drift_summary: Summary JSON from ``check_drift``.

    Returns:
        Outcome JSON with status "no_drift".
    """
    import json

    from mlops.release.publish import no_drift_outcome

    return json.dumps(no_drift_outcome(json.loads(drift_summary)), sort_keys=True)
