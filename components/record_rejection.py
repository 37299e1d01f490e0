"""KFP component: record why a candidate was rejected."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def record_rejection(
    model: Input[Model],
    gates: str,
    summary: Output[Markdown],
    trigger: str = "",
) -> str:
    """Records why a candidate was rejected; publishes nothing.

    Args:
        model: The rejected candidate's model directory.
        gates: Decision JSON from ``decide_release``.
        trigger: JSON saying why this run happened (e.g. a drift check), kept in the outcome.
        summary: Markdown rejection summary for the Kubeflow UI.

    Returns:
        Outcome JSON with status "rejected" and the reason.
    """
    import json
    import logging

    from mlops.release.publish import outcome_markdown
    from mlops.release.publish import record_rejection as record

    logging.basicConfig(level=logging.INFO)
    outcome = record(model.path, gates, trigger)
    with open(summary.path, "w") as handle:
        handle.write(outcome_markdown(outcome))
    return json.dumps(outcome, sort_keys=True)
