"""KFP component: roll a model back to its stable release."""

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def rollback_model(model_name: str, target: str, namespace: str) -> str:
    """Drops the canary; locally, with no canary, returns to the previous stable release.

    Args:
        model_name: Registered model name.
        target: ``local`` or ``kserve``.
        namespace: Kubernetes namespace of the InferenceService.

    Returns:
        A JSON summary with the recorded state.
    """
    import json
    import logging

    from mlops.deployment.actions import rollback_action

    logging.basicConfig(level=logging.INFO)
    return json.dumps(rollback_action(model_name, target, namespace), sort_keys=True)
