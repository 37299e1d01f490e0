"""Mesh manifests per routing strategy and the encryption kit, validated against real schemas (issue 13).

Istio and Gateway API objects are checked against their CRDs in ``../shared/schemas``
(skipped without it, failing when ``CI`` is set), with the same structural-schema
conversion as the prometheus-operator manifests. The core Kubernetes objects (the
kit's NetworkPolicy, the sticky Service) are checked with ``kubernetes-validate``
against the Kubernetes OpenAPI of each version in ``KUBERNETES_VERSIONS``, strictly:
a field the API does not define fails.
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
from tests.kubernetes_schemas import KUBERNETES_VERSIONS, core_problems
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


def problems(doc: dict[str, Any]) -> list[str]:
    if doc["kind"] in CRDS:
        return crd_problems(doc)
    return [f"{v}: {p}" for v in KUBERNETES_VERSIONS for p in core_problems(doc, v)]


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
    route = httproute(_state("cohort"), NS, "s", "c")
    route["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] = "Fuzzy"
    assert any("Fuzzy" in p for p in problems(route))


def _network_policy() -> dict[str, Any]:
    (policy,) = yaml.safe_load_all((KIT / "network-policy.yaml").read_text())
    return policy


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_network_policy_is_valid_for_each_kubernetes_version(version):
    assert core_problems(_network_policy(), version) == []


def _broken_policies() -> list[tuple[str, dict[str, Any], str]]:
    """(what is wrong, the policy, text the problem must contain)."""
    misspelt = _network_policy()
    misspelt["spec"]["ingres"] = misspelt["spec"].pop("ingress")
    nested = _network_policy()
    peer = nested["spec"]["ingress"][0]["from"][0]
    peer["namespaceSelecter"] = peer.pop("namespaceSelector")
    wrong_type = _network_policy()
    wrong_type["spec"]["ingress"][0]["ports"][0]["port"] = [8080]
    not_a_list = _network_policy()
    not_a_list["spec"]["podSelector"]["matchExpressions"][0]["values"] = "x"
    missing = _network_policy()
    del missing["spec"]["podSelector"]["matchExpressions"][0]["operator"]
    metadata = _network_policy()
    metadata["metadata"]["label"] = metadata["metadata"].pop("labels")
    return [
        ("a misspelt spec field", misspelt, "'ingres' was unexpected"),
        ("a misspelt field inside a peer", nested, "'namespaceSelecter' was unexpected"),
        ("a list where a port goes", wrong_type, "ingress/0/ports/0/port"),
        ("a string where a list goes", not_a_list, "matchExpressions/0/values"),
        ("a required field missing", missing, "'operator' is a required property"),
        ("a misspelt metadata field", metadata, "'label' was unexpected"),
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_a_broken_network_policy_fails_validation(version):
    for what, policy, expected in _broken_policies():
        found = core_problems(policy, version)
        assert any(expected in problem for problem in found), (what, found)


def test_the_sticky_service_is_valid_and_a_broken_one_fails():
    from mlops.deployment.mesh import sticky_service

    service = sticky_service("iris", NS)
    for version in KUBERNETES_VERSIONS:
        assert core_problems(service, version) == [], version
    service["spec"]["ports"][0]["targetport"] = service["spec"]["ports"][0].pop("targetPort")
    assert any("'targetport' was unexpected" in p for p in problems(service))
    service = sticky_service("iris", NS)
    service["spec"]["ports"][0]["protocol"] = 6
    assert any("ports/0/protocol" in p for p in problems(service))


def test_a_kind_without_a_schema_is_a_problem_not_a_pass():
    policy = _network_policy()
    policy["apiVersion"] = "networking.k8s.io/v9"
    assert any("Couldn't find schema" in p for p in problems(policy))


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
