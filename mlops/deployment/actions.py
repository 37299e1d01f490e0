"""Deploy, promote and roll back a model: the plain functions behind the components.

Two targets:

* ``local``: only the desired state in the object store
  (:mod:`mlops.deployment.state`) changes; ``mlops serve`` reconciles towards it.
* ``kserve``: the InferenceService is built, validated when a CRD is available
  (``MLOPS_KSERVE_CRD`` names the file; the image carries none), applied and
  waited for; then the same desired state is recorded, so the store always says
  what the cluster serves. A cluster failure leaves the state untouched.

Each function returns a JSON-serialisable summary dict.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mlops.core import settings
from mlops.core.errors import UsageError
from mlops.core.rules import (
    ROUTING_STRATEGIES,
    WEIGHTED_STRATEGIES,
    check_canary_percent,
    check_deploy_mode,
    check_deploy_target,
)

__all__ = [
    "deploy_action",
    "promote_action",
    "rollback_action",
]

logger = logging.getLogger(__name__)


def _store(store):
    if store is not None:
        return store
    from mlops.core.store import ObjectStore

    return ObjectStore.from_env()


def _check_published(store, model_name: str, model_uri: str, model_version: str) -> str:
    """The version named by ``model_uri``, after checking it matches and is complete."""
    from mlops.model.registry import COMPLETE_MARKER, parse_model_uri

    parsed, uri_name, uri_version = parse_model_uri(model_uri)
    if uri_name != model_name:
        raise UsageError(f"model_uri {model_uri!r} is for model {uri_name!r}, not {model_name!r}")
    if model_version and model_version != uri_version:
        raise UsageError(
            f"model_uri {model_uri!r} is version {uri_version!r}, not {model_version!r}"
        )
    if not store.exists(f"s3://{parsed.bucket}/{parsed.key}/{COMPLETE_MARKER}"):
        raise UsageError(f"{model_uri} is not a complete published model version")
    return uri_version


def _verified_version(
    store, model_name: str, model_uri: str, model_version: str, public_key: Path | None
) -> str:
    """The published version to deploy, after checking its files against its signature.

    The same verification serving runs before loading: never roll out what would
    not be served (changed since it was signed, or a signed version copied under
    another version name: its signed metadata must name the version of its path).
    """
    from mlops.trust.signing import verify_published

    version = _check_published(store, model_name, model_uri, model_version)
    verify_published(store, model_uri, public_key or settings.signing_key_paths()[1])
    return version


def _validate_if_configured(manifest: dict) -> bool:
    crd = settings.get(settings.KSERVE_CRD_VAR)
    if crd is None:
        logger.info("%s not set: skipping CRD schema validation", settings.KSERVE_CRD_VAR)
        return False
    from mlops.deployment.schema import validate_inferenceservice

    validate_inferenceservice(manifest, crd)
    return True


def _kserve_mode(requested: str | None, live: dict | None, model_name: str, namespace: str) -> str:
    """The deployment mode to build with: asked for, else the live object's, else Serverless.

    Raises:
        UsageError: the request would switch between Serverless and a Raw mode,
            which KServe cannot do in place.
    """
    from mlops.deployment.inferenceservice import deployment_mode_of, is_raw_mode

    requested = requested or settings.get(settings.KSERVE_DEPLOYMENT_MODE_VAR)
    live_mode = deployment_mode_of(live) if live else None
    if requested and live_mode and is_raw_mode(requested) != is_raw_mode(live_mode):
        raise UsageError(
            f"InferenceService {namespace}/{model_name} runs in {live_mode} mode; "
            f"it cannot switch to {requested} (delete it first)"
        )
    return requested or live_mode or "Serverless"


def _roll_out_on_kserve(
    model_name: str,
    version: str,
    model_uri: str,
    percent: int | None,
    *,
    namespace: str,
    image: str,
    client,
    deployment_mode: str | None,
    timeout_seconds: float,
    poll_seconds: float,
) -> dict[str, Any]:
    """Builds, validates and applies the InferenceService and waits for it to be ready.

    Returns:
        What the summary records about the cluster: schema validation,
        namespace, deployment mode, URL, the image (and a warning when it is a tag).
    """
    from mlops.deployment.inferenceservice import (
        build_inferenceservice,
        image_warning,
        serving_image_reference,
    )
    from mlops.deployment.kube import apply_inferenceservice, default_client, get_inferenceservice
    from mlops.runtime import SERVING_IMAGE

    image = image or SERVING_IMAGE
    warning = image_warning(image)  # a malformed reference fails before any cluster call
    client = client or default_client()
    live = get_inferenceservice(model_name, namespace, client)
    kserve_mode = _kserve_mode(deployment_mode, live, model_name, namespace)
    manifest = build_inferenceservice(
        model_name,
        version,
        model_uri,
        namespace=namespace,
        image=image,
        deployment_mode=kserve_mode,  # type: ignore[arg-type]
        canary_percent=percent,
        previous=live,
    )
    schema_validated = _validate_if_configured(manifest)
    ready = apply_inferenceservice(
        manifest, client=client, timeout_seconds=timeout_seconds, poll_seconds=poll_seconds
    )
    result = {
        "schema_validated": schema_validated,
        "namespace": namespace,
        "deployment_mode": kserve_mode,
        "url": (ready.get("status") or {}).get("url"),
        "image": serving_image_reference(image),
    }
    if warning:
        # A tag can be moved to other bytes after the fact; a digest cannot.
        logger.warning("%s", warning)
        result["image_warning"] = warning
    return result


def deploy_action(
    model_name: str,
    model_uri: str,
    model_version: str = "",
    mode: str = "full",
    canary_percent: int = 10,
    target: str = "local",
    namespace: str = "kubeflow-user",
    image: str = "",
    *,
    routing: dict[str, Any] | None = None,
    store=None,
    client=None,
    public_key: Path | None = None,
    deployment_mode: str | None = None,
    timeout_seconds: float = 300,
    poll_seconds: float = 5,
) -> dict[str, Any]:
    """Deploys a published model version.

    Args:
        model_name: Registered model name.
        model_uri: ``s3://<bucket>/models/<name>/<version>``.
        model_version: Expected version ('' takes it from the URI).
        mode: ``none`` (skip), ``full`` (in place of stable), or a candidate next to
            stable routed by a strategy: ``canary`` (``canary_percent`` of requests at
            random), ``sticky`` (``canary_percent`` of clients, by a hash of the client
            header), ``cohort`` (requests whose cohort header matches) or ``shadow``
            (a copy of the traffic; stable answers).
        canary_percent: Candidate share, 1-99, used with ``canary`` and ``sticky``.
        target: ``local`` (desired state only) or ``kserve`` (cluster + state).
        namespace: Kubernetes namespace (``kserve`` only).
        image: Predictor image ('' = the project's serving image, ``mlops.runtime.SERVING_IMAGE``).
        store: Object store (default from ``MLOPS_S3_*``).
        client: ``KServeClient`` (default from the kube config).
        public_key: Key the model must be signed with (default: ``MLOPS_SIGNING_PUBLIC_KEY``
            or the cluster's mounted signing Secret).
        deployment_mode: ``Serverless``/``RawDeployment``/``Standard``; default
            from ``MLOPS_KSERVE_DEPLOYMENT_MODE``, else the live object's, else Serverless.
        timeout_seconds: Readiness timeout (``kserve`` only).
        poll_seconds: Readiness poll interval (``kserve`` only).
        routing: The strategy's options over
            :data:`mlops.deployment.state.DEFAULT_ROUTING` (headers, cohort values,
            shadow percent).

    Returns:
        A summary: action, target, model, version, mode, strategy and the recorded state.

    Raises:
        UsageError: a bad mode/target/percent, a URI that does not match, or
            an unpublished version. VerificationError: the published files do
            not verify against the public key, or their signed metadata names
            another model or version (nothing is deployed). MlopsError: the
            cluster rejected or did not ready the InferenceService (it was rolled back).
    """
    from mlops.deployment import state as desired
    from mlops.model.registry import validate_model_name

    check_deploy_mode(mode)
    check_deploy_target(target)
    strategy = mode if mode in ROUTING_STRATEGIES else "canary"
    summary: dict[str, Any] = {
        "action": "deploy",
        "target": target,
        "model_name": model_name,
        "mode": mode,
        "deployed": False,
    }
    if mode == "none":
        summary["reason"] = "mode is 'none'"
        return summary
    percent = check_canary_percent(canary_percent) if mode in WEIGHTED_STRATEGIES else None
    options = desired.check_routing(routing)
    if target == "kserve" and strategy != "canary" and mode != "full":
        # KServe itself splits by weight only; the other strategies need the mesh routes
        # of mlops.deployment.mesh in front of two predictor Services, which this step
        # does not apply yet. Fail before any cluster call rather than roll out a split
        # that is not the one asked for.
        raise UsageError(
            f"mode {mode!r} is not applied on KServe by the deploy step yet: deploy with "
            "target local (mlops serve routes it), or use mode canary; the mesh manifests "
            "are built by mlops.deployment.mesh"
        )
    validate_model_name(model_name)
    store = _store(store)
    version = _verified_version(store, model_name, model_uri, model_version, public_key)
    summary.update(version=version, model_uri=model_uri, signature="verified")
    if target == "kserve":
        cluster = _roll_out_on_kserve(
            model_name,
            version,
            model_uri,
            percent,
            namespace=namespace,
            image=image,
            client=client,
            deployment_mode=deployment_mode,
            timeout_seconds=timeout_seconds,
            poll_seconds=poll_seconds,
        )
        summary.update(cluster)
    state = desired.deploy(
        store,
        model_name,
        desired.Release(version, model_uri),
        percent,
        strategy=strategy,
        routing=options,
    )
    summary.update(deployed=True, state=state.summary())
    return summary


def _change(
    kind: str,
    model_name: str,
    target: str,
    namespace: str,
    *,
    store,
    client,
    timeout_seconds: float,
    poll_seconds: float,
    expected_candidate: str | None = None,
) -> dict[str, Any]:
    from mlops.deployment import state as desired

    check_deploy_target(target)
    store = _store(store)
    summary: dict[str, Any] = {"action": kind, "target": target, "model_name": model_name}
    # Check the recorded state first, so a refused change never half-happens.
    current = desired.read_state(store, model_name)
    if kind == "promote" and (current is None or current.canary is None):
        raise UsageError(f"model {model_name!r} has no canary to promote")
    if current is not None:
        desired.check_candidate(current, model_name, expected_candidate)
    if kind == "rollback" and target == "kserve" and (current is None or current.canary is None):
        raise UsageError(
            f"model {model_name!r} has no canary to roll back on KServe; "
            "deploy the previous version to go further back"
        )
    if target == "kserve":
        from mlops.deployment.kube import (
            default_client,
            promote_inferenceservice,
            rollback_inferenceservice,
        )

        change = promote_inferenceservice if kind == "promote" else rollback_inferenceservice
        ready = change(
            model_name,
            namespace,
            client or default_client(),
            timeout_seconds=timeout_seconds,
            poll_seconds=poll_seconds,
        )
        summary.update(namespace=namespace, url=(ready.get("status") or {}).get("url"))
    change_state = desired.promote if kind == "promote" else desired.rollback
    state = change_state(store, model_name, expected_candidate=expected_candidate)
    summary["state"] = state.summary()
    return summary


def promote_action(
    model_name: str,
    target: str = "local",
    namespace: str = "kubeflow-user",
    *,
    store=None,
    client=None,
    timeout_seconds: float = 300,
    poll_seconds: float = 5,
    expected_candidate: str | None = None,
) -> dict[str, Any]:
    """Makes the candidate the stable release (cluster first for ``kserve``, then the state).

    ``expected_candidate`` (a version) refuses the change when another candidate is
    deployed by then, as an automated verdict needs.

    Raises:
        UsageError: no canary, another candidate, or a bad target. MlopsError: the
            cluster change failed.
    """
    return _change(
        "promote",
        model_name,
        target,
        namespace,
        store=store,
        client=client,
        timeout_seconds=timeout_seconds,
        poll_seconds=poll_seconds,
        expected_candidate=expected_candidate,
    )


def rollback_action(
    model_name: str,
    target: str = "local",
    namespace: str = "kubeflow-user",
    *,
    store=None,
    client=None,
    timeout_seconds: float = 300,
    poll_seconds: float = 5,
    expected_candidate: str | None = None,
) -> dict[str, Any]:
    """Drops the candidate (cluster first for ``kserve``, then the state).

    ``expected_candidate`` (a version) refuses the change when another candidate is
    deployed by then.

    Locally, with no canary, returns to the previous stable release
    (:func:`mlops.deployment.state.rollback`); on KServe only a canary can be
    rolled back this way — redeploy the previous version to go further back.

    Raises:
        UsageError: nothing to roll back, or a bad target. MlopsError: the cluster change failed.
    """
    return _change(
        "rollback",
        model_name,
        target,
        namespace,
        store=store,
        client=client,
        timeout_seconds=timeout_seconds,
        poll_seconds=poll_seconds,
        expected_candidate=expected_candidate,
    )
