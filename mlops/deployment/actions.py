"""Deploy, promote and roll back a model: the plain functions behind the components.

Two targets:

* ``local``: only the desired state in the object store
  (:mod:`mlops.deployment.state`) changes; ``mlops serve`` reconciles towards it.
* ``kserve``: the InferenceService is built, validated when a CRD is available
  (``MLOPS_KSERVE_CRD`` names the file; the image carries none), applied and
  waited for; then the same desired state is recorded, so the store always says
  what the cluster serves. A cluster failure leaves the state untouched.

On ``kserve``, KServe splits by weight only, so ``canary`` is its own split and
the other strategies (``sticky``, ``cohort``, ``shadow``:
:data:`mlops.deployment.mesh.MESH_STRATEGIES`) run the candidate next to stable
at ``trafficPercent: 0`` with its own predictor Service (RawDeployment/Standard
mode only; Serverless is refused before any cluster change) and return the mesh
routes that decide which requests reach it (``mesh_manifests``), validated
against their CRDs when a schema folder is given. Promote and rollback of such a
candidate return the routes that send everything to stable and name the
strategy's objects to delete.

Each function returns a JSON-serialisable summary dict.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core import settings
from mlops.core.errors import MlopsError, UsageError
from mlops.core.rules import (
    ROUTING_STRATEGIES,
    WEIGHTED_STRATEGIES,
    check_canary_percent,
    check_deploy_mode,
    check_deploy_target,
)

if TYPE_CHECKING:
    from mlops.core.store import ObjectStore
    from mlops.deployment.state import DeploymentState, Release

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


def _store_ca() -> tuple[str | None, str]:
    """The store's CA ConfigMap and key for the predictor, from ``MLOPS_S3_CA_CONFIGMAP`` (``NAME[/KEY]``)."""
    from mlops.runtime import STORE_CA_KEY

    value = settings.get(settings.CA_CONFIGMAP_VAR)
    if not value:
        return None, STORE_CA_KEY
    name, _, key = value.partition("/")
    return name, key or STORE_CA_KEY


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


def _mesh_refusal(mode: str, deployment_mode: str) -> UsageError:
    return UsageError(
        f"mode {mode!r} on KServe needs deployment mode RawDeployment or Standard, not "
        f"{deployment_mode}: the mesh routes between two predictor Services, and Serverless "
        "keeps both versions in one Knative Service. Deploy with deployment_mode RawDeployment "
        "(MLOPS_KSERVE_DEPLOYMENT_MODE; a live Serverless InferenceService must be deleted "
        "first), use mode canary (KServe's weighted split), or target local (mlops serve "
        "routes every strategy)"
    )


def _check_mesh_schemas(mesh_schemas: Path | None) -> Path | None:
    """The mesh schema folder given, else ``MLOPS_MESH_SCHEMAS``; refuses one that is not a folder.

    Fails closed: a folder that was asked for but is missing stops the deploy.
    """
    if mesh_schemas is None:
        mesh_schemas = settings.get(settings.MESH_SCHEMAS_VAR)
    if mesh_schemas is None:
        return None
    path = Path(mesh_schemas)
    if not path.is_dir():
        raise UsageError(f"mesh schema folder {path} is not a folder")
    return path


def _validate_mesh(manifests: list[dict[str, Any]], mesh_schemas: Path | None) -> list[str] | None:
    """The kinds validated against their CRDs, or None when no schema folder is given."""
    if mesh_schemas is None:
        if manifests:
            logger.info("no mesh schema folder given: skipping the mesh CRD validation")
        return None
    from mlops.deployment.mesh import validate_mesh_manifests

    return validate_mesh_manifests(manifests, mesh_schemas)


def _mesh_summary(
    manifests: list[dict[str, Any]], validated: list[str] | None, services: dict[str, Any]
) -> dict[str, Any]:
    return {
        "mesh_manifests": manifests,
        "mesh_schema_validated": validated is not None,
        "mesh_validated_kinds": validated or [],
        "predictor_services": services,
    }


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
    mesh_strategy: str | None = None,
    mesh_state: DeploymentState | None = None,
    mesh_schemas: Path | None = None,
) -> dict[str, Any]:
    """Builds, validates and applies the InferenceService and waits for it to be ready.

    With ``mesh_strategy`` (one of the mesh strategies) the mode must be Raw or
    Standard. With ``mesh_state`` too (the state about to be recorded, with its
    candidate), the new version runs next to stable at ``trafficPercent: 0`` and
    the mesh manifests for that state are built and validated before the
    InferenceService is applied, so a refusal changes nothing; without it (no
    stable release recorded) the version is released fully.

    Returns:
        What the summary records about the cluster: schema validation,
        namespace, deployment mode, URL, the image (and a warning when it is a tag);
        with ``mesh_state``, the mesh manifests and the two predictor Services.

    Raises:
        UsageError: Serverless mode with ``mesh_strategy``, nothing live to run the
            candidate next to, or a mesh manifest that does not match its CRD.
    """
    from mlops.deployment.inferenceservice import (
        build_inferenceservice,
        image_warning,
        is_raw_mode,
        serving_image_reference,
    )
    from mlops.deployment.kube import apply_inferenceservice, default_client, get_inferenceservice
    from mlops.deployment.mesh import mesh_manifests, predictor_services
    from mlops.runtime import SERVING_IMAGE

    image = image or SERVING_IMAGE
    warning = image_warning(image)  # a malformed reference fails before any cluster call
    client = client or default_client()
    live = get_inferenceservice(model_name, namespace, client)
    kserve_mode = _kserve_mode(deployment_mode, live, model_name, namespace)
    if mesh_strategy is not None and not is_raw_mode(kserve_mode):
        raise _mesh_refusal(mesh_strategy, kserve_mode)
    store_ca_config_map, store_ca_key = _store_ca()
    manifest = build_inferenceservice(
        model_name,
        version,
        model_uri,
        namespace=namespace,
        image=image,
        deployment_mode=kserve_mode,  # type: ignore[arg-type]
        # KServe's weighted split is not the one asked for: a mesh strategy's
        # candidate gets 0% from KServe, a first release all of it.
        canary_percent=None if mesh_strategy is not None else percent,
        previous=live,
        mesh_routed=mesh_state is not None,
        store_ca_config_map=store_ca_config_map,
        store_ca_key=store_ca_key,
    )
    mesh: dict[str, Any] = {}
    if mesh_state is not None:
        stable_service, candidate_service = predictor_services(manifest)
        if candidate_service is None:  # build_inferenceservice refuses first; never route to none
            raise MlopsError(f"the InferenceService for {model_name} {version} has no candidate")
        manifests = mesh_manifests(mesh_state, namespace, stable_service, candidate_service)
        mesh = _mesh_summary(
            manifests,
            _validate_mesh(manifests, mesh_schemas),
            {"stable": stable_service, "candidate": candidate_service},
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
        **mesh,
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
    mesh_schemas: Path | None = None,
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
        mesh_schemas: A folder with the Istio and Gateway API CRDs, laid out
            ``istio/``, ``gateway-api/`` (default ``MLOPS_MESH_SCHEMAS``); given, the mesh
            manifests must match them or nothing is deployed (``kserve`` only).

    Returns:
        A summary: action, target, model, version, mode, strategy and the recorded
        state. On ``kserve`` with ``sticky``/``cohort``/``shadow`` also
        ``mesh_manifests`` (the routes to ``kubectl apply``; none for a first
        release, which becomes stable), ``mesh_schema_validated``,
        ``mesh_validated_kinds``, ``predictor_services`` (``stable``/``candidate``
        Service names) and ``mesh_note``.

    Raises:
        UsageError: a bad mode/target/percent, a URI that does not match, or
            an unpublished version; on ``kserve`` with a mesh strategy, Serverless
            mode, nothing live next to a recorded stable release, the stable
            version again, or a mesh manifest that does not match its CRD (all
            before any cluster change). VerificationError: the published files do
            not verify against the public key, or their signed metadata names
            another model or version (nothing is deployed). MlopsError: the
            cluster rejected or did not ready the InferenceService (it was rolled back).
    """
    from mlops.deployment import state as desired
    from mlops.deployment.mesh import MESH_STRATEGIES
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
    meshed = target == "kserve" and mode in MESH_STRATEGIES
    if target == "local" and mesh_schemas is not None:
        raise UsageError("mesh_schemas applies to target kserve only (locally mlops serve routes)")
    mesh_schemas = _check_mesh_schemas(mesh_schemas)
    if meshed:
        # KServe splits by weight only: refuse Serverless, which has no second predictor
        # Service for the mesh to route to, before the store or the cluster is touched.
        requested = deployment_mode or settings.get(settings.KSERVE_DEPLOYMENT_MODE_VAR)
        if requested == "Serverless":
            raise _mesh_refusal(mode, requested)
    validate_model_name(model_name)
    store = _store(store)
    version = _verified_version(store, model_name, model_uri, model_version, public_key)
    summary.update(version=version, model_uri=model_uri, signature="verified")
    release = desired.Release(version, model_uri)
    if target == "kserve":
        # The state about to be recorded: a candidate iff a stable release is recorded
        # (desired.deploy's rule for cohort/shadow, and for sticky, whose percent is 1-99).
        mesh_state = (
            _candidate_state(store, model_name, release, percent, mode, options) if meshed else None
        )
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
            mesh_strategy=mode if meshed else None,
            mesh_state=mesh_state,
            mesh_schemas=mesh_schemas,
        )
        summary.update(cluster)
    state = desired.deploy(
        store,
        model_name,
        release,
        percent,
        strategy=strategy,
        routing=options,
    )
    summary.update(deployed=True, state=state.summary())
    if meshed:
        summary.update(_recorded_mesh(state, summary, namespace, mesh_schemas))
    return summary


def _candidate_state(
    store: ObjectStore,
    model_name: str,
    release: Release,
    percent: int | None,
    mode: str,
    options: dict[str, Any],
) -> DeploymentState | None:
    """The state a mesh-strategy deploy will record, when it records a candidate; else None."""
    from mlops.deployment import state as desired
    from mlops.deployment.mesh import MESH_STRATEGIES

    current = desired.read_state(store, model_name)
    if mode not in MESH_STRATEGIES or current is None or current.stable is None:
        return None
    return desired.DeploymentState(
        model_name,
        stable=current.stable,
        canary=release,
        canary_percent=percent or 0,
        strategy=mode,
        routing=options,
    )


def _recorded_mesh(
    state: DeploymentState, summary: dict[str, Any], namespace: str, mesh_schemas: Path | None
) -> dict[str, Any]:
    """The mesh part of a deploy summary, for the state as recorded.

    The manifests were built and validated for the state predicted before the
    rollout; a writer that changed the state meanwhile is caught here and its
    manifests are validated too.
    """
    from mlops.deployment.mesh import mesh_manifests

    services = summary.get("predictor_services")
    if state.canary is None or services is None:
        return {
            "mesh_manifests": [],
            "mesh_note": "no stable release was recorded: this version is stable, nothing to route",
        }
    if state.strategy != summary["mode"] or state.canary.version != summary["version"]:
        raise MlopsError(
            f"the deployment state of {state.model_name} changed during the rollout "
            f"(candidate {state.canary.version}, {state.strategy}); apply no mesh route, "
            "check the state and deploy again"
        )
    manifests = mesh_manifests(state, namespace, services["stable"], services["candidate"])
    out: dict[str, Any] = {"mesh_manifests": manifests}
    if manifests != summary["mesh_manifests"]:
        out.update(_mesh_summary(manifests, _validate_mesh(manifests, mesh_schemas), services))
    note = (
        "KServe sends the candidate 0%; the deploy step applies only the InferenceService: "
        "kubectl apply the mesh_manifests of the mesh you run (Istio VirtualService or "
        "Gateway API HTTPRoute)"
    )
    if state.strategy == "sticky":
        note = (
            "KServe sends the candidate 0%; kubectl apply the Service and DestinationRule and "
            f"call {state.model_name}-sticky. What the cluster cannot do: Istio's consistent "
            f"hash picks a pod, so the split follows the predictors' replica counts, not "
            f"{state.canary_percent}%; the Gateway API has no consistent hashing (mlops serve "
            "splits by the exact percent)"
        )
    out["mesh_note"] = note
    return out


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
    mesh_schemas: Path | None = None,
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
    if target == "local" and mesh_schemas is not None:
        raise UsageError("mesh_schemas applies to target kserve only (locally mlops serve routes)")
    mesh_schemas = _check_mesh_schemas(mesh_schemas)
    if target == "kserve":
        from mlops.deployment.kube import (
            default_client,
            promote_inferenceservice,
            rollback_inferenceservice,
        )

        client = client or default_client()
        mesh: dict[str, Any] = {}
        if current is not None and current.canary is not None:
            # Built (and validated) from the live object before it changes: a refusal
            # changes nothing.
            mesh = _mesh_after_change(kind, current, namespace, client, mesh_schemas)
        change = promote_inferenceservice if kind == "promote" else rollback_inferenceservice
        ready = change(
            model_name,
            namespace,
            client,
            timeout_seconds=timeout_seconds,
            poll_seconds=poll_seconds,
        )
        summary.update(namespace=namespace, url=(ready.get("status") or {}).get("url"), **mesh)
    change_state = desired.promote if kind == "promote" else desired.rollback
    state = change_state(store, model_name, expected_candidate=expected_candidate)
    summary["state"] = state.summary()
    return summary


def _mesh_after_change(
    kind: str, current: DeploymentState, namespace: str, client: Any, mesh_schemas: Path | None
) -> dict[str, Any]:
    """What the mesh needs once a mesh strategy's candidate is promoted or rolled back.

    The strategy's routes name a predictor Service that the change removes (the
    old stable one on promote, the candidate's on rollback). The summary gets
    routes of the same names sending everything to the remaining stable Service
    (cohort/shadow: apply them at once), and the objects the strategy created,
    to delete once nothing uses them (sticky: its Service selects the pods of
    every version, so it keeps answering until deleted).

    Returns:
        ``mesh_manifests``, ``mesh_schema_validated``, ``mesh_validated_kinds``,
        ``predictor_services``, ``mesh_delete`` and ``mesh_note``; empty for a
        ``canary`` strategy (KServe's own split, no mesh).

    Raises:
        UsageError: the live object has no canary, or a route does not match its CRD.
        MlopsError: the InferenceService does not exist.
    """
    from mlops.deployment.inferenceservice import promoted_manifest, rolled_back_manifest
    from mlops.deployment.kube import get_inferenceservice
    from mlops.deployment.mesh import (
        MESH_STRATEGIES,
        predictor_services,
        routing_objects,
        stable_routes,
    )

    strategy, model_name = current.strategy, current.model_name
    if strategy not in MESH_STRATEGIES:
        return {}
    live = get_inferenceservice(model_name, namespace, client)
    if live is None:
        raise MlopsError(f"InferenceService {namespace}/{model_name} does not exist")
    after = (promoted_manifest if kind == "promote" else rolled_back_manifest)(live)
    stable_service, _ = predictor_services(after)
    manifests = [] if strategy == "sticky" else stable_routes(model_name, namespace, stable_service)
    delete = routing_objects(strategy, model_name, namespace)
    names = " ".join(f"{o['kind'].lower()}/{o['name']}" for o in delete)
    if manifests:
        note = (
            f"the {strategy} routes name a Service the {kind} removes: kubectl apply "
            f"mesh_manifests now (everything to {stable_service}), then delete "
            f"them once clients call the model directly (kubectl delete -n {namespace} {names})"
        )
    else:
        note = (
            f"the sticky Service selects every version's pods, so it keeps answering after "
            f"the {kind}; it is no longer needed: kubectl delete -n {namespace} {names}"
        )
    return {
        **_mesh_summary(
            manifests,
            _validate_mesh(manifests, mesh_schemas),
            {"stable": stable_service, "candidate": None},
        ),
        "mesh_delete": delete,
        "mesh_note": note,
    }


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
    mesh_schemas: Path | None = None,
) -> dict[str, Any]:
    """Makes the candidate the stable release (cluster first for ``kserve``, then the state).

    ``expected_candidate`` (a version) refuses the change when another candidate is
    deployed by then, as an automated verdict needs.

    On ``kserve``, a candidate of a mesh strategy (``sticky``/``cohort``/``shadow``)
    leaves routes that name the old stable Service: the summary holds routes of
    the same names sending everything to the promoted one (``mesh_manifests``,
    checked against the CRDs in ``mesh_schemas`` when given) and the strategy's
    objects to delete (``mesh_delete``).

    Raises:
        UsageError: no canary, another candidate, a bad target, or a route that does
            not match its CRD. MlopsError: the cluster change failed.
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
        mesh_schemas=mesh_schemas,
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
    mesh_schemas: Path | None = None,
) -> dict[str, Any]:
    """Drops the candidate (cluster first for ``kserve``, then the state).

    ``expected_candidate`` (a version) refuses the change when another candidate is
    deployed by then.

    Locally, with no canary, returns to the previous stable release
    (:func:`mlops.deployment.state.rollback`); on KServe only a canary can be
    rolled back this way — redeploy the previous version to go further back. A
    mesh strategy's candidate gets the same ``mesh_manifests`` and ``mesh_delete``
    as :func:`promote_action`, towards the stable Service that stays.

    Raises:
        UsageError: nothing to roll back, a bad target, or a route that does not
            match its CRD. MlopsError: the cluster change failed.
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
        mesh_schemas=mesh_schemas,
    )
