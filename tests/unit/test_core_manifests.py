"""Every core Kubernetes object the project ships or builds, against the Kubernetes OpenAPI.

``deploy/`` holds core objects (RBAC, the Secret templates, the mesh kit's
NetworkPolicy, the Grafana dashboard's ConfigMap) beside custom ones (Istio,
Kyverno, sigstore, Prometheus operator: checked against their CRDs elsewhere).
The core ones are validated here with ``kubernetes-validate``, strictly, for each
version in ``KUBERNETES_VERSIONS``. The InferenceService's predictor is a KServe
object, but its containers and volumes are a Kubernetes pod's: they are checked
as the Pod KServe makes of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.deployment.inferenceservice import build_inferenceservice
from tests.conftest import REPO_ROOT
from tests.kubernetes_schemas import KUBERNETES_VERSIONS, core_problems

DEPLOY = REPO_ROOT / "deploy"
#: API groups of custom kinds: their CRDs, not the Kubernetes OpenAPI, define them.
CUSTOM_GROUPS = {
    "kyverno.io",
    "policy.sigstore.dev",
    "networking.istio.io",
    "security.istio.io",
    "monitoring.coreos.com",
}


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file, object) for every Kubernetes object in a YAML file under ``deploy/``."""
    found = []
    for path in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            # Prometheus, Alertmanager and promtool files are YAML but no Kubernetes object.
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                found.append((str(path.relative_to(REPO_ROOT)), doc))
    return found


def _group(doc: dict[str, Any]) -> str:
    api_version = doc["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


CORE = [(path, doc) for path, doc in _manifests() if _group(doc) not in CUSTOM_GROUPS]


def test_the_core_objects_found_are_the_ones_shipped():
    # A glob or group mistake must not leave an object unchecked without anyone noticing.
    kinds = sorted({(path, doc["kind"]) for path, doc in CORE})
    assert kinds == [
        ("deploy/k8s/mesh/network-policy.yaml", "NetworkPolicy"),
        ("deploy/k8s/rbac.yaml", "Role"),
        ("deploy/k8s/rbac.yaml", "RoleBinding"),
        ("deploy/k8s/rbac.yaml", "ServiceAccount"),
        ("deploy/k8s/store-ca.example.yaml", "ConfigMap"),
        ("deploy/k8s/store-secret.example.yaml", "Secret"),
        ("deploy/monitoring/grafana/dashboard-configmap.yaml", "ConfigMap"),
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("path", "doc"), CORE, ids=[f"{p.rsplit('/', 1)[-1]}:{d['metadata']['name']}" for p, d in CORE]
)
def test_every_core_object_in_deploy_validates(path: str, doc: dict[str, Any], version: str):
    assert core_problems(doc, version) == [], path


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_a_misspelt_field_in_the_rbac_fails(version):
    binding = next(doc for _, doc in CORE if doc["kind"] == "RoleBinding")
    broken = yaml.safe_load(yaml.safe_dump(binding))
    broken["subjects"][0]["namespac"] = broken["subjects"][0].pop("namespace")
    found = core_problems(broken, version)
    assert any("'namespac' was unexpected" in p for p in found), found
    account = next(doc for _, doc in CORE if doc["metadata"]["name"] == "mlops-serving")
    broken = yaml.safe_load(yaml.safe_dump(account))
    broken["automountServiceAccountToken"] = "false"  # a string, not the boolean it must be
    found = core_problems(broken, version)
    assert any("automountServiceAccountToken" in p for p in found), found


def _predictor_pods(isvc: dict[str, Any]) -> list[dict[str, Any]]:
    """The Pods KServe makes of the predictors: their pod-spec fields, their labels as metadata."""
    # ``ComponentExtensionSpec`` fields (labels, replicas, canary percent, name) are KServe's.
    kserve_only = {
        "labels",
        "annotations",
        "name",
        "minReplicas",
        "maxReplicas",
        "canaryTrafficPercent",
    }
    spec = isvc["spec"]
    predictors = [spec["predictor"], *(entry["predictor"] for entry in spec.get("canary", []))]
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{isvc['metadata']['name']}-predictor",
                "namespace": isvc["metadata"]["namespace"],
                "labels": predictor.get("labels", {}),
            },
            "spec": {k: v for k, v in predictor.items() if k not in kserve_only},
        }
        for predictor in predictors
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("mode", ["Serverless", "RawDeployment"])
def test_the_predictor_pod_is_a_valid_kubernetes_pod(version, mode):
    isvc = build_inferenceservice("iris", "v1", "s3://mlops/models/iris/v1", deployment_mode=mode)
    (pod,) = _predictor_pods(isvc)
    assert pod["spec"]["containers"][0]["env"], "the store settings reach the container"
    assert core_problems(pod, version) == []
    pod["spec"]["containers"][0]["volumeMount"] = pod["spec"]["containers"][0].pop("volumeMounts")
    assert any("'volumeMount' was unexpected" in p for p in core_problems(pod, version))


def test_manifests_helper_reads_every_file_under_deploy():
    files = {path for path, _ in _manifests()}
    assert "deploy/k8s/image-policy-kyverno.yaml" in files  # custom kinds are found, then left out
    assert all(Path(REPO_ROOT / f).is_file() for f in files)


def test_the_store_ca_template_is_what_the_compile_option_reads():
    from mlops.api.compiling import DEFAULT_STORE_CA_KEY, check_store_ca

    (config_map,) = yaml.safe_load_all((DEPLOY / "k8s" / "store-ca.example.yaml").read_text())
    assert list(config_map["data"]) == [DEFAULT_STORE_CA_KEY]
    assert check_store_ca(config_map["metadata"]["name"], DEFAULT_STORE_CA_KEY)
    assert "BEGIN CERTIFICATE-----\n" not in config_map["data"][DEFAULT_STORE_CA_KEY], (
        "a placeholder, not a real certificate"
    )
