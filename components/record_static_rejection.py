"""KFP component: record a run whose static gates failed (nothing was trained)."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def record_static_rejection(
    model_name: str,
    gates: str,
    source: str,
    summary: Output[Markdown],
    trigger: str = "",
) -> str:
    """Records why the repository was rejected before any of its code ran; publishes nothing.

    Args:
        model_name: The model the run was for.
        gates: Decision JSON from ``decide_static``.
        source: Repository record JSON from ``fetch_repository``.
        summary: Markdown rejection summary for the Kubeflow UI.
        trigger: JSON saying why this run happened (e.g. a drift check), kept in the outcome.

    Returns:
        Outcome JSON with status "rejected" and the reason.
    """
    import json
    import logging

    from mlops.release.publish import outcome_markdown
    from mlops.release.publish import record_static_rejection as record

    logging.basicConfig(level=logging.INFO)
    outcome = record(model_name, gates, source, trigger)
    with open(summary.path, "w") as handle:
        handle.write(outcome_markdown(outcome))
    return json.dumps(outcome, sort_keys=True)
