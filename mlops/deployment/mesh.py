"""Service-mesh manifests that route a model's traffic the way its deployment state says.

On a cluster, KServe splits by weight only (``canaryTrafficPercent`` /
``spec.canary``, :mod:`mlops.deployment.inferenceservice`). The other
strategies need the mesh in front of the two predictor Services:

* ``canary``: weighted destinations (Istio ``VirtualService``, Gateway API
  ``HTTPRoute`` ``backendRefs`` weights) -- the same split KServe makes.
* ``cohort``: a header match (``x-mlops-cohort: beta`` by default) routed to
  the candidate, every other request to stable.
* ``shadow``: every request to stable, and ``mirror`` + ``mirrorPercentage``
  (Istio) or a ``RequestMirror`` filter (Gateway API) copying it to the
  candidate; the mesh drops the copy's answer, and a slow or failing candidate
  never delays the response.
* ``sticky``: Istio's consistent hash on the client header
  (``DestinationRule`` ``consistentHash.httpHeaderName``) over one Service that
  selects the pods of both versions. **What the cluster cannot do:** the hash
  picks a *pod*, so the split follows the pods' share (the replica counts of
  the two predictors), not ``canary_percent``; and the Gateway API has no
  standard consistent hashing, so no ``HTTPRoute`` is built for it. The model
  server itself (``mlops serve``) splits sticky traffic by the exact percent
  (:func:`mlops.deployment.routing.sticky_bucket`).

On KServe the deploy step (:func:`mlops.deployment.actions.deploy_action`,
``target="kserve"``, mode ``sticky``/``cohort``/``shadow``) runs the candidate in
RawDeployment/Standard mode as ``spec.canary`` at ``trafficPercent: 0`` under its
own variant name, so each version has its own predictor Service
(:func:`predictor_services` reads their names off the InferenceService), and
builds these manifests for the state it records. When a schema folder is given
(laid out ``istio/`` and ``gateway-api/``),
:func:`validate_mesh_manifests` checks every custom object against its CRD first
and the step fails before any cluster change when one does not match.

After a promote or a rollback of such a candidate the routes must go:
:func:`stable_routes` builds a ``VirtualService`` and an ``HTTPRoute`` of the
same names sending everything to the stable Service (apply them to replace the
strategy's routes at once), and :func:`routing_objects` names what the strategy
created, to delete once nothing uses it.

The manifests are plain dicts; the deploy step returns them in its summary
(``mesh_manifests``) and ``mlops deploy`` prints them as YAML (or writes them
with ``--mesh-out``) for ``kubectl apply`` -- the InferenceService is the only
kind it applies itself (custom objects of other groups need a client and RBAC
the pipeline's service account does not have).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mlops.core.errors import UsageError
from mlops.deployment.inferenceservice import LABEL_MODEL, LABEL_PART_OF
from mlops.deployment.state import DeploymentState

__all__ = [
    "CRD_FILES",
    "HTTP_PORT",
    "MESH_STRATEGIES",
    "httproute",
    "mesh_manifests",
    "predictor_service",
    "predictor_services",
    "routing_objects",
    "stable_routes",
    "sticky_destination_rule",
    "sticky_service",
    "validate_mesh_manifests",
    "virtual_service",
]

logger = logging.getLogger(__name__)

ISTIO_NETWORKING = "networking.istio.io/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
#: The port KServe's predictor Services listen on.
HTTP_PORT = 80
#: The container port of the predictor (``mlops.deployment.inferenceservice.HTTP_PORT``).
CONTAINER_PORT = 8080
#: The strategies KServe cannot split itself: on a cluster the mesh routes them.
MESH_STRATEGIES = ("sticky", "cohort", "shadow")
#: Each custom kind's CRD file, relative to a schema folder (``istio/``, ``gateway-api/``).
CRD_FILES: dict[str, str] = {
    "VirtualService": "istio/networking.istio.io_virtualservices.yaml",
    "DestinationRule": "istio/networking.istio.io_destinationrules.yaml",
    "HTTPRoute": "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
}
#: Core kinds: no CRD describes them (the schema folder holds CRDs only).
_CORE_KINDS = {("v1", "Service")}


def predictor_service(model_name: str, variant: str | None = None) -> str:
    """The name of KServe's predictor Service: ``<isvc>-predictor`` or ``<isvc>-<variant>-predictor``."""
    return f"{model_name}-{variant}-predictor" if variant else f"{model_name}-predictor"


def predictor_services(isvc: dict) -> tuple[str, str | None]:
    """The Service names of an InferenceService's stable and candidate predictors.

    Raw/Standard mode: ``spec.predictor`` is stable and the first ``spec.canary``
    entry the candidate; each ``predictor.name`` is its variant
    (:func:`predictor_service`).

    Returns:
        ``(stable, candidate)``; the candidate is None without ``spec.canary``.

    Raises:
        UsageError: the object has no name or no ``spec.predictor``.
    """
    name = (isvc.get("metadata") or {}).get("name")
    spec = isvc.get("spec") or {}
    if not name or not isinstance(spec.get("predictor"), dict):
        raise UsageError("the InferenceService has no metadata.name or no spec.predictor")
    stable = predictor_service(name, spec["predictor"].get("name"))
    canary = spec.get("canary") or []
    if not canary:
        return stable, None
    return stable, predictor_service(name, (canary[0].get("predictor") or {}).get("name"))


def _fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def _metadata(name: str, namespace: str, model_name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {LABEL_MODEL: model_name, LABEL_PART_OF: "kfp-mlops"},
    }


def _destination(service: str, namespace: str, weight: int | None = None) -> dict[str, Any]:
    route: dict[str, Any] = {
        "destination": {"host": _fqdn(service, namespace), "port": {"number": HTTP_PORT}}
    }
    if weight is not None:
        route["weight"] = weight
    return route


def _require_candidate(state: DeploymentState) -> None:
    if state.canary is None:
        raise UsageError(f"model {state.model_name!r} has no candidate to route to")


def virtual_service(
    state: DeploymentState,
    namespace: str,
    stable_service: str,
    candidate_service: str,
    *,
    hosts: list[str] | None = None,
    gateways: list[str] | None = None,
) -> dict[str, Any]:
    """The Istio ``VirtualService`` of the state's strategy (canary, cohort or shadow).

    Args:
        state: The deployment state (with a candidate).
        namespace: Where the model serves.
        stable_service: The stable predictor's Service name.
        candidate_service: The candidate predictor's Service name.
        hosts: The hosts clients call (default ``<model>.<namespace>.svc.cluster.local``).
        gateways: Istio gateways to bind (default: the mesh only).

    Raises:
        UsageError: no candidate, or ``sticky`` (see :func:`sticky_destination_rule`).
    """
    _require_candidate(state)
    strategy = state.strategy
    if strategy == "sticky":
        raise UsageError("sticky routing is a DestinationRule's consistent hash, not a route")
    routing = state.routing
    http: list[dict[str, Any]]
    if strategy == "canary":
        percent = int(state.canary_percent)
        http = [
            {
                "name": "weighted",
                "route": [
                    _destination(stable_service, namespace, 100 - percent),
                    _destination(candidate_service, namespace, percent),
                ],
            }
        ]
    elif strategy == "cohort":
        http = [
            {
                "name": "cohort",
                "match": [
                    {"headers": {routing["cohort_header"]: {"exact": value}}}
                    for value in routing["cohort_values"]
                ],
                "route": [_destination(candidate_service, namespace)],
            },
            {"name": "everyone-else", "route": [_destination(stable_service, namespace)]},
        ]
    else:  # shadow
        http = [
            {
                "name": "shadow",
                "route": [_destination(stable_service, namespace)],
                "mirror": {
                    "host": _fqdn(candidate_service, namespace),
                    "port": {"number": HTTP_PORT},
                },
                "mirrorPercentage": {"value": float(routing["shadow_percent"])},
            }
        ]
    spec: dict[str, Any] = {
        "hosts": hosts or [_fqdn(state.model_name, namespace)],
        "http": http,
    }
    if gateways:
        spec["gateways"] = gateways
    return {
        "apiVersion": ISTIO_NETWORKING,
        "kind": "VirtualService",
        "metadata": _metadata(f"{state.model_name}-routing", namespace, state.model_name),
        "spec": spec,
    }


def httproute(
    state: DeploymentState,
    namespace: str,
    stable_service: str,
    candidate_service: str,
    *,
    gateway: str = "mlops-gateway",
    gateway_namespace: str | None = None,
    hostnames: list[str] | None = None,
) -> dict[str, Any]:
    """The Gateway API ``HTTPRoute`` of the state's strategy (canary, cohort or shadow).

    Args:
        state: The deployment state (with a candidate).
        namespace: Where the model serves (the route and both Services).
        stable_service: The stable predictor's Service name.
        candidate_service: The candidate predictor's Service name.
        gateway: The parent ``Gateway``'s name.
        gateway_namespace: Its namespace (default: ``namespace``).
        hostnames: Host names the route answers (default: the gateway's).

    Raises:
        UsageError: no candidate, or ``sticky`` (the Gateway API has no standard
            consistent hashing).
    """
    _require_candidate(state)
    strategy = state.strategy
    if strategy == "sticky":
        raise UsageError(
            "the Gateway API has no standard consistent hashing: sticky splits need Istio's "
            "DestinationRule, or mlops serve"
        )
    routing = state.routing

    def backend(service: str, weight: int | None = None) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": service, "port": HTTP_PORT}
        if weight is not None:
            ref["weight"] = weight
        return ref

    rules: list[dict[str, Any]]
    if strategy == "canary":
        percent = int(state.canary_percent)
        rules = [
            {
                "backendRefs": [
                    backend(stable_service, 100 - percent),
                    backend(candidate_service, percent),
                ]
            }
        ]
    elif strategy == "cohort":
        rules = [
            {
                "matches": [
                    {
                        "headers": [
                            {"type": "Exact", "name": routing["cohort_header"], "value": value}
                        ]
                    }
                    for value in routing["cohort_values"]
                ],
                "backendRefs": [backend(candidate_service)],
            },
            {"backendRefs": [backend(stable_service)]},
        ]
    else:  # shadow
        mirror: dict[str, Any] = {"backendRef": {"name": candidate_service, "port": HTTP_PORT}}
        if int(routing["shadow_percent"]) < 100:
            mirror["percent"] = int(routing["shadow_percent"])
        rules = [
            {
                "filters": [{"type": "RequestMirror", "requestMirror": mirror}],
                "backendRefs": [backend(stable_service)],
            }
        ]
    parent: dict[str, Any] = {"name": gateway}
    if gateway_namespace:
        parent["namespace"] = gateway_namespace
    spec: dict[str, Any] = {"parentRefs": [parent], "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": _metadata(f"{state.model_name}-routing", namespace, state.model_name),
        "spec": spec,
    }


def sticky_service(model_name: str, namespace: str) -> dict[str, Any]:
    """One Service over the predictor pods of every version of the model (for the sticky hash)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(f"{model_name}-sticky", namespace, model_name),
        "spec": {
            "selector": {LABEL_MODEL: model_name},
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": CONTAINER_PORT, "protocol": "TCP"}
            ],
        },
    }


def sticky_destination_rule(state: DeploymentState, namespace: str) -> dict[str, Any]:
    """Istio's consistent hash on the client header over :func:`sticky_service`.

    One client (one header value) always reaches the same pod, hence the same
    version; the versions' shares follow their pod counts, not ``canary_percent``.
    """
    name = f"{state.model_name}-sticky"
    return {
        "apiVersion": ISTIO_NETWORKING,
        "kind": "DestinationRule",
        "metadata": _metadata(name, namespace, state.model_name),
        "spec": {
            "host": _fqdn(name, namespace),
            "trafficPolicy": {
                "loadBalancer": {
                    "consistentHash": {"httpHeaderName": state.routing["client_header"]}
                }
            },
        },
    }


def mesh_manifests(
    state: DeploymentState,
    namespace: str,
    stable_service: str,
    candidate_service: str,
    *,
    gateway: str = "mlops-gateway",
) -> list[dict[str, Any]]:
    """Every manifest the state's strategy needs in front of the predictors.

    Returns:
        ``canary``/``cohort``/``shadow``: the ``VirtualService`` and the ``HTTPRoute``
        (apply the one of the mesh you run); ``sticky``: the combined ``Service`` and
        its consistent-hash ``DestinationRule``. Empty without a candidate.
    """
    if state.canary is None:
        return []
    if state.strategy == "sticky":
        return [
            sticky_service(state.model_name, namespace),
            sticky_destination_rule(state, namespace),
        ]
    return [
        virtual_service(state, namespace, stable_service, candidate_service),
        httproute(state, namespace, stable_service, candidate_service, gateway=gateway),
    ]


def stable_routes(
    model_name: str,
    namespace: str,
    stable_service: str,
    *,
    gateway: str = "mlops-gateway",
) -> list[dict[str, Any]]:
    """A ``VirtualService`` and an ``HTTPRoute`` sending every request to the stable Service.

    They carry the names of the cohort/shadow routes (``<model>-routing``), so
    applying them replaces those routes at once (no route to a Service that a
    promote or rollback removed); delete them once clients call the model directly.
    """
    host = _fqdn(model_name, namespace)
    return [
        {
            "apiVersion": ISTIO_NETWORKING,
            "kind": "VirtualService",
            "metadata": _metadata(f"{model_name}-routing", namespace, model_name),
            "spec": {
                "hosts": [host],
                "http": [{"name": "stable", "route": [_destination(stable_service, namespace)]}],
            },
        },
        {
            "apiVersion": GATEWAY_API,
            "kind": "HTTPRoute",
            "metadata": _metadata(f"{model_name}-routing", namespace, model_name),
            "spec": {
                "parentRefs": [{"name": gateway}],
                "rules": [{"backendRefs": [{"name": stable_service, "port": HTTP_PORT}]}],
            },
        },
    ]


def routing_objects(strategy: str, model_name: str, namespace: str) -> list[dict[str, str]]:
    """What :func:`mesh_manifests` creates for ``strategy``: apiVersion, kind, name, namespace.

    Returns:
        ``sticky``: the combined Service and its DestinationRule; the others: the
        VirtualService and the HTTPRoute.
    """
    if strategy == "sticky":
        kinds = [("v1", "Service"), (ISTIO_NETWORKING, "DestinationRule")]
        name = f"{model_name}-sticky"
    else:
        kinds = [(ISTIO_NETWORKING, "VirtualService"), (GATEWAY_API, "HTTPRoute")]
        name = f"{model_name}-routing"
    return [
        {"apiVersion": api, "kind": kind, "name": name, "namespace": namespace}
        for api, kind in kinds
    ]


def validate_mesh_manifests(manifests: list[dict[str, Any]], schemas: Path) -> list[str]:
    """Checks every custom object against its CRD in ``schemas``; fails on the first mismatch.

    Args:
        manifests: What :func:`mesh_manifests` or :func:`stable_routes` built.
        schemas: A folder of CRDs laid out as :data:`CRD_FILES` says.

    Returns:
        The kinds checked against a CRD, in order. A core ``v1`` Service has no CRD
        and is not among them (its fields are fixed by :func:`sticky_service`).

    Raises:
        UsageError: a manifest does not match its CRD (one line per problem, each
            with its JSON path), a CRD file is missing, or a kind is neither a known
            custom kind nor a core one.
    """
    from mlops.deployment.schema import schema_problems

    checked: list[str] = []
    for doc in manifests:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        if (api, kind) in _CORE_KINDS:
            continue
        if kind not in CRD_FILES:
            raise UsageError(f"no schema for mesh manifest kind {kind!r} ({api})")
        crd = Path(schemas) / CRD_FILES[kind]
        if not crd.is_file():
            raise UsageError(f"mesh schema folder {schemas} has no {CRD_FILES[kind]}")
        problems = schema_problems(doc, crd)
        if problems:
            name = (doc.get("metadata") or {}).get("name")
            lines = "\n".join(f"  - {problem}" for problem in problems)
            raise UsageError(f"{kind} {name!r} does not match {crd.name}:\n{lines}")
        checked.append(str(kind))
    logger.info("mesh manifests match their CRDs: %s", ", ".join(checked) or "none to check")
    return checked
