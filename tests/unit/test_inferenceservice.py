"""InferenceService manifests validated against the real KServe CRD, and the RBAC manifest."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from mlops.core.errors import UsageError
from mlops.core.settings import StoreSettings
from mlops.deployment.inferenceservice import (
    LABEL_VERSION,
    build_inferenceservice,
    promoted_manifest,
    rolled_back_manifest,
    variant_name,
)
from mlops.deployment.schema import schema_problems, validate_inferenceservice
from mlops.runtime import SERVING_IMAGE
from tests.conftest import REPO_ROOT, shared_path

MODEL = "iris"
V1, V2 = "v20261128-183800-a1b2", "v20261129-090000-c3d4"
URI1, URI2 = f"s3://mlops/models/{MODEL}/{V1}", f"s3://mlops/models/{MODEL}/{V2}"


@pytest.fixture(scope="module")
def crd() -> Path:
    return shared_path("schemas", "kserve", "serving.kserve.io_inferenceservices.yaml")


def _live(manifest: dict) -> dict:
    """What the API would return for an applied manifest (plus server fields)."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(resourceVersion="7", generation=1, uid="u-1")
    live["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    return live


def _container(predictor: dict) -> dict:
    return predictor["containers"][0]


# -- manifests that must validate ------------------------------------------------


def test_serverless_full_validates(crd):
    manifest = build_inferenceservice(MODEL, V1, URI1)
    validate_inferenceservice(manifest, crd)
    meta = manifest["metadata"]
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert meta["labels"]["app.kubernetes.io/name"] == MODEL
    assert meta["labels"]["mlops.kfp/model"] == MODEL
    assert meta["labels"]["mlops.kfp/version"] == V1
    assert meta["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert meta["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    predictor = manifest["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    container = _container(predictor)
    assert container["image"] == SERVING_IMAGE, "the lean predictor image, not the pipeline one"
    assert container["args"] == [
        "--model-name",
        MODEL,
        "--storage-uri",
        URI1,
        "--public-key",
        "/etc/mlops/keys/signing-key.pub.pem",
        "--http-port",
        "8080",
    ]
    assert container["ports"][0]["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v2/models/{MODEL}/ready"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert predictor["serviceAccountName"] == "mlops-serving"
    assert predictor["volumes"][0]["secret"]["secretName"] == "mlops-signing-public-key"
    assert container["volumeMounts"][0]["mountPath"] == "/etc/mlops/keys"


def test_serverless_canary_validates(crd):
    stable = _live(build_inferenceservice(MODEL, V1, URI1))
    manifest = build_inferenceservice(MODEL, V2, URI2, canary_percent=20, previous=stable)
    validate_inferenceservice(manifest, crd)
    assert manifest["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert "canary" not in manifest["spec"]
    assert URI2 in _container(manifest["spec"]["predictor"])["args"]


def test_first_release_ignores_canary_percent():
    """With nothing live there is no stable release to share traffic with."""
    manifest = build_inferenceservice(MODEL, V1, URI1, canary_percent=20)
    assert "canaryTrafficPercent" not in manifest["spec"]["predictor"]


@pytest.mark.parametrize("mode", ["RawDeployment", "Standard"])
def test_raw_full_validates(crd, mode):
    manifest = build_inferenceservice(MODEL, V1, URI1, deployment_mode=mode)
    validate_inferenceservice(manifest, crd)
    assert manifest["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    assert "canary" not in manifest["spec"]


@pytest.mark.parametrize("mode", ["RawDeployment", "Standard"])
def test_raw_canary_uses_spec_canary(crd, mode):
    stable = _live(build_inferenceservice(MODEL, V1, URI1, deployment_mode=mode))
    manifest = build_inferenceservice(
        MODEL, V2, URI2, deployment_mode=mode, canary_percent=20, previous=stable
    )
    validate_inferenceservice(manifest, crd)
    spec = manifest["spec"]
    assert spec["predictor"] == stable["spec"]["predictor"]  # the stable keeps serving
    (entry,) = spec["canary"]
    assert entry["trafficPercent"] == 20
    assert entry["predictor"]["name"] == variant_name(MODEL, V2)
    assert URI2 in _container(entry["predictor"])["args"]
    assert "canaryTrafficPercent" not in entry["predictor"]


def test_raw_promote_and_rollback_manifests_validate(crd):
    stable = _live(build_inferenceservice(MODEL, V1, URI1, deployment_mode="Standard"))
    canary = _live(
        build_inferenceservice(
            MODEL, V2, URI2, deployment_mode="Standard", canary_percent=30, previous=stable
        )
    )
    promoted = promoted_manifest(canary)
    validate_inferenceservice(promoted, crd)
    assert "canary" not in promoted["spec"]
    assert promoted["spec"]["predictor"]["name"] == variant_name(MODEL, V2)
    assert promoted["metadata"]["labels"][LABEL_VERSION] == V2
    rolled = rolled_back_manifest(canary)
    validate_inferenceservice(rolled, crd)
    assert rolled["spec"] == stable["spec"]
    assert rolled["metadata"]["labels"][LABEL_VERSION] == V1
    # A full release after promotion rolls the promoted Deployment in place.
    full = build_inferenceservice(
        MODEL,
        "v3",
        "s3://mlops/models/iris/v3",
        deployment_mode="Standard",
        previous=_live(promoted),
    )
    assert full["spec"]["predictor"]["name"] == variant_name(MODEL, V2)


def test_serverless_promote_and_rollback_manifests(crd):
    canary = _live(
        build_inferenceservice(
            MODEL,
            V2,
            URI2,
            canary_percent=20,
            previous=_live(build_inferenceservice(MODEL, V1, URI1)),
        )
    )
    promoted = promoted_manifest(canary)
    validate_inferenceservice(promoted, crd)
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    rolled = rolled_back_manifest(canary)
    validate_inferenceservice(rolled, crd)
    assert rolled["spec"]["predictor"]["canaryTrafficPercent"] == 0
    with pytest.raises(UsageError, match="no canary"):
        promoted_manifest(_live(rolled))
    with pytest.raises(UsageError, match="no canary"):
        rolled_back_manifest(_live(promoted))


# -- invalid manifests -----------------------------------------------------------


def test_misspelled_field_fails_with_json_path(crd):
    manifest = build_inferenceservice(MODEL, V1, URI1)
    manifest["spec"]["predictor"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(UsageError) as caught:
        validate_inferenceservice(manifest, crd)
    assert "$.spec.predictor.containers[0].readinesProbe" in str(caught.value)
    assert "unknown field" in str(caught.value)


def test_misspelled_top_level_spec_field_fails(crd):
    manifest = build_inferenceservice(MODEL, V1, URI1)
    manifest["spec"]["predicter"] = manifest["spec"].pop("predictor")
    problems = schema_problems(manifest, crd)
    assert any(p.startswith("$.spec.predicter: unknown field") for p in problems)
    assert any("'predictor' is a required property" in p for p in problems)


def test_wrong_type_fails_with_json_path(crd):
    manifest = build_inferenceservice(MODEL, V1, URI1)
    manifest["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    with pytest.raises(UsageError) as caught:
        validate_inferenceservice(manifest, crd)
    message = str(caught.value)
    assert "$.spec.predictor.containers[0].ports[0].containerPort" in message
    assert "is not of type 'integer'" in message


def test_int_or_string_accepts_both_and_checks_quantity(crd):
    manifest = build_inferenceservice(MODEL, V1, URI1, resources={"limits": {"cpu": 2}})
    validate_inferenceservice(manifest, crd)  # an int quantity is valid
    manifest["spec"]["predictor"]["containers"][0]["resources"]["limits"]["memory"] = "1 GB"
    with pytest.raises(
        UsageError, match=r"\$\.spec\.predictor\.containers\[0\]\.resources\.limits\.memory"
    ):
        validate_inferenceservice(manifest, crd)


def test_canary_percent_out_of_range_fails_schema(crd):
    stable = _live(build_inferenceservice(MODEL, V1, URI1, deployment_mode="Standard"))
    manifest = build_inferenceservice(
        MODEL, V2, URI2, deployment_mode="Standard", canary_percent=20, previous=stable
    )
    manifest["spec"]["canary"][0]["trafficPercent"] = 150
    with pytest.raises(UsageError, match=r"\$\.spec\.canary\[0\]\.trafficPercent"):
        validate_inferenceservice(manifest, crd)


def test_status_preserves_unknown_fields_and_metadata_is_checked(crd):
    manifest = build_inferenceservice(MODEL, V1, URI1)
    manifest["status"] = {"somethingNew": {"x": 1}}
    validate_inferenceservice(manifest, crd)
    manifest["metadata"]["lables"] = {}
    with pytest.raises(UsageError, match=r"\$\.metadata\.lables"):
        validate_inferenceservice(manifest, crd)


# -- builder input checks and secrets --------------------------------------------


@pytest.mark.parametrize("name", ["Iris", "1iris", "iris_model", "a" * 60, ""])
def test_invalid_names_are_refused(name):
    with pytest.raises(UsageError):
        build_inferenceservice(name, V1, URI1)


def test_invalid_mode_percent_and_uri_are_refused():
    with pytest.raises(UsageError):
        build_inferenceservice(MODEL, V1, URI1, deployment_mode="Knativ")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        build_inferenceservice(MODEL, V1, URI1, canary_percent=101)
    with pytest.raises(UsageError):
        build_inferenceservice(MODEL, V1, "/local/path")
    with pytest.raises(UsageError):
        build_inferenceservice(MODEL, "bad version!", URI1)


def test_variant_names_fit_kubernetes_limits():
    assert variant_name("iris", V1) == V1
    long_name = "m" * 47
    name = variant_name(long_name, V1)
    assert len(f"{long_name}-{name}-predictor") <= 63
    assert name[0].isalpha()


def test_no_credential_values_in_manifest(monkeypatch):
    # The store settings are in the environment while the manifest is built (as in a
    # pipeline pod), so a builder that copied them in would be caught here.
    secrets = StoreSettings(
        endpoint="minio.example:9000",
        access_key="AKIAEXAMPLEACCESS",
        secret_key="very-secret-value-123",
        secure=True,
        bucket="prod-bucket",
    )
    for name, value in secrets.to_env().items():
        monkeypatch.setenv(name, value)
    manifest = build_inferenceservice(MODEL, V1, URI1)
    text = json.dumps(manifest)
    for value in (secrets.endpoint, secrets.access_key, secrets.secret_key):
        assert value not in text
    env = _container(manifest["spec"]["predictor"])["env"]
    names = {item["name"] for item in env}
    assert {
        "MLOPS_S3_ENDPOINT",
        "MLOPS_S3_ACCESS_KEY",
        "MLOPS_S3_SECRET_KEY",
        "MLOPS_S3_SECURE",
        "MLOPS_BUCKET",
    } <= names
    for item in env:
        assert "value" not in item, f"{item['name']} carries a literal value"
        assert item["valueFrom"]["secretKeyRef"]["name"] == "mlops-s3-credentials"


@pytest.mark.parametrize("mode", ["Serverless", "RawDeployment"])
def test_store_ca_configmap_is_mounted_and_named_by_the_bundle_variable(crd, mode):
    manifest = build_inferenceservice(
        MODEL, V1, URI1, deployment_mode=mode, store_ca_config_map="mlops-store-ca"
    )
    assert schema_problems(manifest, crd) == []
    predictor = manifest["spec"]["predictor"]
    container = _container(predictor)
    assert {"name": "MLOPS_S3_CA_BUNDLE", "value": "/etc/mlops/store-ca/ca.crt"} in container["env"]
    assert {"name": "store-ca", "mountPath": "/etc/mlops/store-ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {
        "name": "store-ca",
        "configMap": {"name": "mlops-store-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
    } in predictor["volumes"]
    # Without it nothing changes: no CA variable, no extra volume.
    default = build_inferenceservice(MODEL, V1, URI1, deployment_mode=mode)
    assert "MLOPS_S3_CA_BUNDLE" not in json.dumps(default)
    assert [v["name"] for v in default["spec"]["predictor"]["volumes"]] == ["signing-public-key"]


@pytest.mark.parametrize(
    ("config_map", "key", "message"),
    [
        ("Store_CA", "ca.crt", "store CA ConfigMap name 'Store_CA'"),
        ("mlops-store-ca", "ca/crt", "store CA ConfigMap key 'ca/crt'"),
        ("mlops-store-ca", "", "store CA ConfigMap key ''"),
    ],
)
def test_invalid_store_ca_reference_is_refused(config_map, key, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        build_inferenceservice(MODEL, V1, URI1, store_ca_config_map=config_map, store_ca_key=key)


# -- RBAC ------------------------------------------------------------------------


def _rbac_docs() -> list[dict]:
    path = REPO_ROOT / "deploy" / "k8s" / "rbac.yaml"
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_rbac_grants_exactly_what_the_pipeline_uses():
    docs = _rbac_docs()
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    accounts = {doc["metadata"]["name"] for doc in by_kind["ServiceAccount"]}
    assert {"mlops-pipeline", "mlops-serving"} <= accounts
    (role,) = by_kind["Role"]

    def verbs(group: str, resource: str) -> set[str]:
        out: set[str] = set()
        for rule in role["rules"]:
            if group in rule["apiGroups"] and resource in rule["resources"]:
                out |= set(rule["verbs"])
        return out

    # The KServeClient calls the deployment code makes, mapped to the RBAC verbs they need.
    calls = set(
        re.findall(
            r"\bclient\.(\w+)\(", (REPO_ROOT / "mlops" / "deployment" / "kube.py").read_text()
        )
    )
    verb_of = {
        "get": "get",
        "create": "create",
        "replace": "update",
        "delete": "delete",
        "patch": "patch",
    }
    assert calls <= set(verb_of), f"unmapped KServeClient calls: {calls - set(verb_of)}"
    assert verbs("serving.kserve.io", "inferenceservices") == {verb_of[call] for call in calls}
    assert [rule["resources"] for rule in role["rules"]] == [["inferenceservices"]]
    assert not verbs("", "secrets"), "the pipeline must not read secrets"
    (binding,) = by_kind["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert {
        "kind": "ServiceAccount",
        "name": "mlops-pipeline",
        "namespace": role["metadata"]["namespace"],
    } in binding["subjects"]


def test_store_secret_example_has_placeholders_only():
    path = REPO_ROOT / "deploy" / "k8s" / "store-secret.example.yaml"
    docs = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(path.read_text()) if doc}
    store = docs["mlops-s3-credentials"]
    assert set(store["stringData"]) == {
        "MLOPS_S3_ENDPOINT",
        "MLOPS_S3_ACCESS_KEY",
        "MLOPS_S3_SECRET_KEY",
        "MLOPS_S3_SECURE",
        "MLOPS_BUCKET",
    }
    assert "REPLACE" in store["stringData"]["MLOPS_S3_SECRET_KEY"]
    assert "signing-key.pub.pem" in docs["mlops-signing-public-key"]["stringData"]
    assert "mlops-signing-key" in docs
