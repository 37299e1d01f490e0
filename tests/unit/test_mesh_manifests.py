"""Mesh manifests per routing strategy and the encryption kit, validated against real schemas (issue 13).

Istio and Gateway API objects are checked against their CRDs in ``../shared/schemas``
(skipped without it, failing when ``CI`` is set), with the same structural-schema
conversion as the prometheus-operator manifests. ``kubernetes-validate`` is not
installed here and ``../shared`` has no core Kubernetes schema, so the
NetworkPolicy and the Service are checked against the Kubernetes client's
OpenAPI-generated models instead: every field must exist at its place with the
right type, and required fields must be present.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from mlops.core.errors import UsageError
from mlops.deployment import state as desired
from mlops.deployment.mesh import (
    httproute,
    mesh_manifests,
    sticky_destination_rule,
    virtual_service,
)
from mlops.deployment.routing import sticky_bucket
from tests.conftest import REPO_ROOT, shared_path
from tests.unit.test_monitoring_manifests import to_jsonschema

CRDS = {
    "VirtualService": ("istio", "networking.istio.io_virtualservices.yaml"),
    "DestinationRule": ("istio", "networking.istio.io_destinationrules.yaml"),
    "PeerAuthentication": ("istio", "security.istio.io_peerauthentications.yaml"),
    "AuthorizationPolicy": ("istio", "security.istio.io_authorizationpolicies.yaml"),
    "HTTPRoute": ("gateway-api", "gateway.networking.k8s.io_httproutes.yaml"),
}
KIT = REPO_ROOT / "deploy" / "k8s" / "mesh"
NS = "kubeflow-user"


def crd_problems(doc: dict[str, Any]) -> list[str]:
    crd = yaml.safe_load(shared_path("schemas", *CRDS[doc["kind"]]).read_text())
    group, version = doc["apiVersion"].split("/")
    assert crd["spec"]["group"] == group
    entry = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    assert entry.get("served", True)
    schema = to_jsonschema(copy.deepcopy(entry["schema"]["openAPIV3Schema"]))
    # Istio's CRDs describe spec/status only; the API server owns the object's envelope.
    schema.setdefault("properties", {}).update(
        apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft7Validator(schema).iter_errors(doc)
    ]


_SCALARS = {"str": str, "int": int, "bool": bool, "object": object}


def _walk(value: Any, type_name: str, where: str, out: list[str]) -> None:
    """Checks ``value`` against the kubernetes client type ``type_name``, appending problems."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            out.append(f"{where}: not a list")
            return
        for i, item in enumerate(value):
            _walk(item, type_name[5:-1], f"{where}/{i}", out)
    elif type_name.startswith("dict("):
        if not isinstance(value, dict):
            out.append(f"{where}: not a mapping")
    elif type_name in _SCALARS:
        if not isinstance(value, _SCALARS[type_name]):
            out.append(f"{where}: {value!r} is not {type_name}")
    else:
        _walk_object(value, type_name, where, out)


def _walk_object(value: Any, type_name: str, where: str, out: list[str]) -> None:
    import kubernetes.client as k8s

    cls = getattr(k8s, type_name)
    if not isinstance(value, dict):
        out.append(f"{where}: not an object")
        return
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    unknown = [key for key in value if key not in by_json]
    out.extend(f"{where}: unknown field {key!r} for {type_name}" for key in unknown)
    for key, item in value.items():
        if key in by_json:
            _walk(item, cls.openapi_types[by_json[key]], f"{where}/{key}", out)
    try:  # the generated constructors enforce the required fields
        cls(**{by_json[k]: v for k, v in value.items() if k in by_json})
    except ValueError as exc:
        out.append(f"{where}: {exc}")


def model_problems(doc: dict[str, Any]) -> list[str]:
    """Checks a core object against the kubernetes client's OpenAPI-generated model classes."""
    out: list[str] = []
    _walk(doc, f"V1{doc['kind']}", doc["kind"], out)
    return out


def problems(doc: dict[str, Any]) -> list[str]:
    return crd_problems(doc) if doc["kind"] in CRDS else model_problems(doc)


def _state(strategy: str, percent: int = 0, **routing) -> desired.DeploymentState:
    return desired.DeploymentState(
        "iris",
        stable=desired.Release("v1", "s3://models/iris/v1"),
        canary=desired.Release("v2", "s3://models/iris/v2"),
        canary_percent=percent,
        strategy=strategy,
        routing=desired.check_routing(routing),
    )


@pytest.mark.parametrize(
    "state",
    [
        _state("canary", 20),
        _state("cohort", cohort_values=["beta", "staff"]),
        _state("shadow", shadow_percent=30),
        _state("shadow"),
        _state("sticky", 25, client_header="X-User"),
    ],
    ids=["canary", "cohort", "shadow-30", "shadow-100", "sticky"],
)
def test_every_strategy_manifest_validates(state):
    docs = mesh_manifests(state, NS, "iris-predictor", "iris-v2-predictor")
    assert docs
    for doc in docs:
        assert problems(doc) == [], doc


def test_the_routes_say_what_the_strategy_means():
    cohort = virtual_service(_state("cohort", cohort_header="X-Tier"), NS, "s", "c")
    first, rest = cohort["spec"]["http"]
    assert first["match"] == [{"headers": {"x-tier": {"exact": "beta"}}}]
    assert first["route"][0]["destination"]["host"] == f"c.{NS}.svc.cluster.local"
    assert rest["route"][0]["destination"]["host"] == f"s.{NS}.svc.cluster.local"
    shadow = virtual_service(_state("shadow", shadow_percent=30), NS, "s", "c")["spec"]["http"][0]
    assert shadow["mirror"]["host"] == f"c.{NS}.svc.cluster.local"
    assert shadow["mirrorPercentage"] == {"value": 30.0}
    assert [r["destination"]["host"] for r in shadow["route"]] == [f"s.{NS}.svc.cluster.local"]
    weighted = virtual_service(_state("canary", 20), NS, "s", "c")["spec"]["http"][0]["route"]
    assert [r["weight"] for r in weighted] == [80, 20]
    route = httproute(_state("shadow", shadow_percent=30), NS, "s", "c")["spec"]["rules"][0]
    assert route["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "c", "port": 80}, "percent": 30},
        }
    ]
    cohort_route = httproute(_state("cohort"), NS, "s", "c")["spec"]["rules"][0]
    assert cohort_route["matches"][0]["headers"] == [
        {"type": "Exact", "name": "x-mlops-cohort", "value": "beta"}
    ]
    rule = sticky_destination_rule(_state("sticky", 25, client_header="X-User"), NS)
    assert rule["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"] == {
        "httpHeaderName": "x-user"
    }
    with pytest.raises(UsageError, match="no standard consistent hashing"):
        httproute(_state("sticky", 25), NS, "s", "c")
    no_candidate = desired.DeploymentState("iris", stable=desired.Release("v1", "s3://x/v1"))
    assert mesh_manifests(no_candidate, NS, "s", "c") == []
    assert 0 <= sticky_bucket("someone") < 100


def test_validation_catches_a_misspelt_field():
    doc = virtual_service(_state("shadow"), NS, "s", "c")
    doc["spec"]["http"][0]["mirrorPercent"] = {"value": 5}
    assert any("mirrorPercent" in p for p in problems(doc))
    policy = yaml.safe_load((KIT / "network-policy.yaml").read_text())
    policy["spec"]["ingres"] = policy["spec"].pop("ingress")
    assert any("ingres" in p for p in problems(policy))
    route = httproute(_state("cohort"), NS, "s", "c")
    route["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] = "Fuzzy"
    assert any("Fuzzy" in p for p in problems(route))


@pytest.mark.parametrize("path", sorted(KIT.glob("*.yaml")), ids=lambda p: p.name)
def test_the_encryption_kit_validates(path: Path):
    for doc in yaml.safe_load_all(path.read_text()):
        assert problems(doc) == [], path.name


def test_the_encryption_kit_says_strict_mutual_tls_and_who_may_call():
    docs = {
        doc["kind"]: doc
        for path in KIT.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
    }
    assert docs["PeerAuthentication"]["spec"]["mtls"]["mode"] == "STRICT"
    assert docs["DestinationRule"]["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
    (rule,) = docs["AuthorizationPolicy"]["spec"]["rules"]
    assert docs["AuthorizationPolicy"]["spec"]["action"] == "ALLOW"
    assert rule["from"][0]["source"]["principals"] == [
        "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
        "cluster.local/ns/kubeflow-user/sa/mlops-pipeline",
    ]
    assert docs["NetworkPolicy"]["spec"]["policyTypes"] == ["Ingress"]
    assert len(docs["NetworkPolicy"]["spec"]["ingress"][0]["from"]) == 2
