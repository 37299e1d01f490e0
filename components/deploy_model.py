"""KFP component: deploy a published model version (KServe and/or desired state)."""

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def deploy_model(
    model_name: str,
    model_uri: str,
    model_version: str,
    mode: str,
    canary_percent: int,
    target: str,
    namespace: str,
    image: str,
) -> str:
    """Deploys a published model version.

    ``target="local"`` records the desired state in the object store (store
    settings from ``MLOPS_S3_*``); ``target="kserve"`` also builds, validates
    (when ``MLOPS_KSERVE_CRD`` names a CRD file) and applies the
    InferenceService, waits for it to be Ready and rolls it back if it is not.

    Args:
        model_name: Registered model name (also the InferenceService name).
        model_uri: ``s3://<bucket>/models/<name>/<version>`` of the version.
        model_version: Expected version; '' takes it from ``model_uri``.
        mode: ``none`` (skip), ``canary`` or ``full``.
        canary_percent: Share of traffic (1-99) for ``mode="canary"``.
        target: ``local`` or ``kserve``.
        namespace: Kubernetes namespace of the InferenceService.
        image: Predictor image; '' uses the project's serving image.

    Returns:
        A JSON summary: action, target, model, version, mode, deployed, state.
    """
    import json
    import logging

    from mlops.deployment.actions import deploy_action

    logging.basicConfig(level=logging.INFO)
    summary = deploy_action(
        model_name, model_uri, model_version, mode, canary_percent, target, namespace, image
    )
    return json.dumps(summary, sort_keys=True)
