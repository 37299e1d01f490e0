"""KFP component: promote a model's canary to stable."""

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def promote_model(model_name: str, target: str, namespace: str) -> str:
    """Makes the canary the stable release with all the traffic.

    For ``target="kserve"`` the InferenceService changes first (and is rolled
    back if it does not become Ready), then the desired state in the store.

    Args:
        model_name: Registered model name.
        target: ``local`` or ``kserve``.
        namespace: Kubernetes namespace of the InferenceService.

    Returns:
        A JSON summary with the recorded state.
    """
    import json
    import logging

    from mlops.deployment.actions import promote_action

    logging.basicConfig(level=logging.INFO)
    return json.dumps(promote_action(model_name, target, namespace), sort_keys=True)
