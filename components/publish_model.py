"""KFP component: publish a signed model version to the object store."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def publish_model(
    signed_model: Input[Model],
    gates: str,
    summary: Output[Markdown],
    trigger: str = "",
) -> NamedTuple("PublishOutputs", [("outcome", str), ("model_uri", str), ("model_version", str)]):  # type: ignore[valid-type]
    """Publishes the signed model to ``s3://<bucket>/models/<name>/<version>/``.

    Every file is uploaded before the ``_COMPLETE`` marker, so readers never see
    a half-published version.

    Args:
        signed_model: Signed model directory.
        gates: Decision JSON from ``decide_release``.
        trigger: JSON saying why this run happened (e.g. a drift check), kept in the outcome.
        summary: Markdown release summary for the Kubeflow UI.

    Returns:
        outcome: Outcome JSON. model_uri: Published URI. model_version: Version id.
    """
    import json
    import logging

    from mlops.release.publish import outcome_markdown, publish_release

    logging.basicConfig(level=logging.INFO)
    outcome = publish_release(signed_model.path, gates, trigger)
    with open(summary.path, "w") as handle:
        handle.write(outcome_markdown(outcome))
    return json.dumps(outcome, sort_keys=True), outcome["model_uri"], outcome["model_version"]
