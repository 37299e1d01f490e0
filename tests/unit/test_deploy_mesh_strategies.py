"""Sticky, cohort and shadow on KServe: the candidate at 0% next to stable, and its mesh routes.

The Kubernetes API is mocked because no Kubernetes API runs here: ``FakeKServe``
(from ``test_kube_apply``) stands in for ``KServeClient`` with in-memory
InferenceServices. Everything else is real: the embedded SeaweedFS store, the
signed and published versions, the manifests, and their validation against the
KServe, Istio and Gateway API CRDs in ``../shared/schemas`` (those tests skip
without it, and fail when ``CI`` is set).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from mlops.cli import main
from mlops.core.errors import UsageError
from mlops.deployment import state as desired
from mlops.deployment.actions import deploy_action, promote_action, rollback_action
from mlops.deployment.inferenceservice import LABEL_VERSION, variant_name
from mlops.deployment.mesh import CRD_FILES, validate_mesh_manifests
from mlops.model.registry import publish_model_dir
from tests.conftest import shared_path
from tests.release_helpers import release_and_sign
from tests.training_helpers import use_signing_keys
from tests.unit.test_kube_apply import FakeKServe

MODEL = "iris"
NS = "kubeflow-user"
WAIT = {"timeout_seconds": 0.2, "poll_seconds": 0.0}
STABLE_SERVICE = f"{MODEL}-predictor"
CANDIDATE_SERVICE = f"{MODEL}-{variant_name(MODEL, 'v2')}-predictor"


def fqdn(service: str) -> str:
    return f"{service}.{NS}.svc.cluster.local"


@pytest.fixture
def published(store_env, tmp_path, monkeypatch):
    """Two released, signed and published versions: {version: uri}."""
    monkeypatch.delenv("MLOPS_MIN_ACCURACY", raising=False)
    monkeypatch.delenv("MLOPS_KSERVE_CRD", raising=False)
    monkeypatch.delenv("MLOPS_KSERVE_DEPLOYMENT_MODE", raising=False)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    private, _ = use_signing_keys(monkeypatch, tmp_path / "keys")
    uris = {}
    for version in ("v1", "v2"):
        model_dir = tmp_path / version
        model_dir.mkdir()
        (model_dir / "model.skops").write_bytes(b"not really a model " + version.encode())
        (model_dir / "metadata.json").write_text(
            json.dumps({"model_name": MODEL, "version": version})
        )
        release_and_sign(model_dir, private)
        uris[version] = publish_model_dir(store_env, model_dir, MODEL, version).uri
    return uris


@pytest.fixture
def schemas() -> Path:
    return shared_path("schemas")


def deploy(published, store, fake, version, mode, percent=0, **kwargs):
    return deploy_action(
        MODEL,
        published[version],
        version,
        mode,
        percent,
        "kserve",
        NS,
        "",
        store=store,
        client=fake,
        **{**WAIT, **kwargs},
    )


def stable_on_raw(published, store, fake):
    """v1 deployed fully in RawDeployment mode: the stable release the candidates join."""
    deploy(published, store, fake, "v1", "full", deployment_mode="RawDeployment")
    assert "canary" not in fake.live()["spec"]


def hosts(manifest: dict) -> list[str]:
    """Every Service a VirtualService or HTTPRoute sends to or mirrors to, in order."""
    spec = manifest["spec"]
    if manifest["kind"] == "VirtualService":
        out = []
        for rule in spec["http"]:
            out += [r["destination"]["host"] for r in rule["route"]]
            if "mirror" in rule:
                out.append(rule["mirror"]["host"])
        return out
    out = []
    for rule in spec["rules"]:
        out += [fqdn(ref["name"]) for ref in rule["backendRefs"]]
        for f in rule.get("filters", []):
            out.append(fqdn(f["requestMirror"]["backendRef"]["name"]))
    return out


@pytest.mark.parametrize(
    ("mode", "percent", "routing", "kinds"),
    [
        ("cohort", 0, {"cohort_header": "X-Tier", "cohort_values": ["staff"]}, "VS+HTTPRoute"),
        ("shadow", 0, {"shadow_percent": 30}, "VS+HTTPRoute"),
        ("sticky", 25, {"client_header": "X-User"}, "Service+DestinationRule"),
    ],
)
def test_a_mesh_strategy_runs_the_candidate_at_zero_with_its_own_predictor(
    store_env, published, schemas, monkeypatch, mode, percent, routing, kinds
):
    monkeypatch.setenv(
        "MLOPS_KSERVE_CRD", str(schemas / "kserve" / "serving.kserve.io_inferenceservices.yaml")
    )
    fake = FakeKServe()
    stable_on_raw(published, store_env, fake)
    summary = deploy(
        published, store_env, fake, "v2", mode, percent, routing=routing, mesh_schemas=schemas
    )

    spec = fake.live()["spec"]
    (entry,) = spec["canary"]
    assert entry["trafficPercent"] == 0  # KServe sends it nothing: the mesh decides
    assert entry["predictor"]["name"] == variant_name(MODEL, "v2")
    assert entry["predictor"]["labels"][LABEL_VERSION] == "v2"
    assert spec["predictor"]["labels"][LABEL_VERSION] == "v1"
    assert summary["schema_validated"] is True  # the InferenceService against the KServe CRD
    assert summary["deployment_mode"] == "RawDeployment"
    assert summary["predictor_services"] == {
        "stable": STABLE_SERVICE,
        "candidate": CANDIDATE_SERVICE,
    }
    assert summary["state"]["canary"] == "v2" and summary["state"]["strategy"] == mode

    manifests = summary["mesh_manifests"]
    assert summary["mesh_schema_validated"] is True
    # Checked again here, independently of the summary's claim.
    assert validate_mesh_manifests(manifests, schemas) == summary["mesh_validated_kinds"]
    if mode == "sticky":
        service, rule = manifests
        assert [service["kind"], rule["kind"]] == ["Service", "DestinationRule"]
        assert service["spec"]["selector"] == {"mlops.kfp/model": MODEL}  # both versions' pods
        hashing = rule["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]
        assert hashing == {"httpHeaderName": "x-user"}
        assert "replica counts, not 25%" in summary["mesh_note"]
        return
    route, httproute = manifests
    assert [route["kind"], httproute["kind"]] == ["VirtualService", "HTTPRoute"]
    for doc in manifests:
        assert set(hosts(doc)) == {fqdn(STABLE_SERVICE), fqdn(CANDIDATE_SERVICE)}
    first = route["spec"]["http"][0]
    if mode == "cohort":
        assert first["match"] == [{"headers": {"x-tier": {"exact": "staff"}}}]
        assert first["route"][0]["destination"]["host"] == fqdn(CANDIDATE_SERVICE)
    else:
        assert first["route"][0]["destination"]["host"] == fqdn(STABLE_SERVICE)
        assert first["mirror"]["host"] == fqdn(CANDIDATE_SERVICE)
        assert first["mirrorPercentage"] == {"value": 30.0}


def test_serverless_is_refused_before_any_cluster_change(store_env, published, monkeypatch):
    fake = FakeKServe()
    # Asked for explicitly (argument or setting): refused before the cluster is even read.
    with pytest.raises(UsageError, match="mode 'cohort' on KServe needs deployment mode"):
        deploy(published, store_env, fake, "v1", "cohort", deployment_mode="Serverless")
    monkeypatch.setenv("MLOPS_KSERVE_DEPLOYMENT_MODE", "Serverless")
    with pytest.raises(UsageError, match="Serverless keeps both versions in one Knative"):
        deploy(published, store_env, fake, "v1", "shadow")
    assert fake.calls == [] and desired.read_state(store_env, MODEL) is None

    # A live Serverless InferenceService (the default mode): read, then refused, unchanged.
    monkeypatch.delenv("MLOPS_KSERVE_DEPLOYMENT_MODE")
    deploy(published, store_env, fake, "v1", "full")
    before, calls = copy.deepcopy(fake.live()), len(fake.calls)
    with pytest.raises(UsageError, match="use mode canary"):
        deploy(published, store_env, fake, "v2", "sticky", 30)
    assert {call for call, _ in fake.calls[calls:]} == {"get"}
    assert fake.live() == before
    assert desired.read_state(store_env, MODEL).canary is None


def test_a_route_that_does_not_match_its_crd_changes_nothing(
    store_env, published, schemas, tmp_path
):
    fake = FakeKServe()
    stable_on_raw(published, store_env, fake)
    before = copy.deepcopy(fake.live())
    # The real CRD with one rule tightened: route names of at most 3 characters.
    strict = tmp_path / "schemas"
    for kind, relative in CRD_FILES.items():
        crd = yaml.safe_load((schemas / relative).read_text())
        if kind == "VirtualService":
            version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
            http = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["http"]
            http["items"]["properties"]["name"]["maxLength"] = 3
        (strict / relative).parent.mkdir(parents=True, exist_ok=True)
        (strict / relative).write_text(yaml.safe_dump(crd))
    with pytest.raises(
        UsageError,
        match=r"(?s)VirtualService 'iris-routing'.*http\[0\]\.name: 'cohort' is too long",
    ):
        deploy(published, store_env, fake, "v2", "cohort", mesh_schemas=strict)
    # A schema folder without the Gateway API CRD is a refusal too, not a skipped check.
    (strict / CRD_FILES["HTTPRoute"]).unlink()
    (strict / CRD_FILES["VirtualService"]).write_text(
        (schemas / CRD_FILES["VirtualService"]).read_text()
    )
    with pytest.raises(UsageError, match="has no gateway-api/"):
        deploy(published, store_env, fake, "v2", "shadow", mesh_schemas=strict)
    with pytest.raises(UsageError, match="is not a folder"):
        deploy(published, store_env, fake, "v2", "shadow", mesh_schemas=tmp_path / "none")
    assert fake.live() == before
    assert desired.read_state(store_env, MODEL).canary is None


def test_refusals_that_would_route_to_no_candidate(store_env, published):
    fake = FakeKServe()
    stable_on_raw(published, store_env, fake)
    with pytest.raises(UsageError, match="already serves v1 as its stable release"):
        deploy(published, store_env, fake, "v1", "cohort")
    # The store records a stable release the cluster does not run: nothing to run next to.
    fake.objects.clear()
    with pytest.raises(UsageError, match="is not live: a mesh-routed candidate needs"):
        deploy(published, store_env, fake, "v2", "cohort", deployment_mode="Standard")
    assert fake.live() is None
    assert desired.read_state(store_env, MODEL).canary is None


def test_a_first_release_with_a_mesh_strategy_becomes_stable(store_env, published):
    fake = FakeKServe()
    summary = deploy(published, store_env, fake, "v1", "cohort", deployment_mode="RawDeployment")
    assert summary["mesh_manifests"] == [] and "nothing to route" in summary["mesh_note"]
    assert summary["state"]["stable"] == "v1" and summary["state"]["canary"] is None
    assert "canary" not in fake.live()["spec"]


def test_promote_and_rollback_route_everything_to_stable(store_env, published, schemas):
    fake = FakeKServe()
    stable_on_raw(published, store_env, fake)
    deploy(published, store_env, fake, "v2", "shadow")
    rolled = rollback_action(
        MODEL, "kserve", NS, store=store_env, client=fake, mesh_schemas=schemas, **WAIT
    )
    assert "canary" not in fake.live()["spec"] and rolled["state"]["canary"] is None
    assert rolled["mesh_schema_validated"] is True
    for doc in rolled["mesh_manifests"]:
        assert doc["metadata"]["name"] == f"{MODEL}-routing"  # replaces the shadow routes
        assert hosts(doc) == [fqdn(STABLE_SERVICE)]
    assert [(o["kind"], o["name"]) for o in rolled["mesh_delete"]] == [
        ("VirtualService", f"{MODEL}-routing"),
        ("HTTPRoute", f"{MODEL}-routing"),
    ]

    deploy(published, store_env, fake, "v2", "cohort")
    promoted = promote_action(
        MODEL, "kserve", NS, store=store_env, client=fake, mesh_schemas=schemas, **WAIT
    )
    spec = fake.live()["spec"]
    assert "canary" not in spec and spec["predictor"]["name"] == variant_name(MODEL, "v2")
    assert promoted["state"]["stable"] == "v2" and promoted["state"]["canary"] is None
    # The promoted predictor keeps its variant name, hence its Service.
    assert promoted["predictor_services"]["stable"] == CANDIDATE_SERVICE
    assert validate_mesh_manifests(promoted["mesh_manifests"], schemas) == [
        "VirtualService",
        "HTTPRoute",
    ]
    for doc in promoted["mesh_manifests"]:
        assert hosts(doc) == [fqdn(CANDIDATE_SERVICE)]


def test_promoting_a_sticky_candidate_names_what_to_delete(store_env, published):
    fake = FakeKServe()
    stable_on_raw(published, store_env, fake)
    deploy(published, store_env, fake, "v2", "sticky", 40)
    promoted = promote_action(MODEL, "kserve", NS, store=store_env, client=fake, **WAIT)
    assert promoted["mesh_manifests"] == [] and promoted["mesh_schema_validated"] is False
    assert [(o["kind"], o["name"]) for o in promoted["mesh_delete"]] == [
        ("Service", f"{MODEL}-sticky"),
        ("DestinationRule", f"{MODEL}-sticky"),
    ]
    assert f"kubectl delete -n {NS} service/{MODEL}-sticky" in promoted["mesh_note"]


def test_canary_on_kserve_and_the_local_target_are_unchanged(store_env, published):
    fake = FakeKServe()
    stable_on_raw(published, store_env, fake)
    summary = deploy(published, store_env, fake, "v2", "canary", 20)
    assert fake.live()["spec"]["canary"][0]["trafficPercent"] == 20
    assert "mesh_manifests" not in summary
    assert "mesh_manifests" not in promote_action(
        MODEL, "kserve", NS, store=store_env, client=fake, **WAIT
    )
    local = deploy_action(MODEL, published["v1"], "v1", "cohort", 0, "local", NS, "")
    assert "mesh_manifests" not in local and local["state"]["strategy"] == "cohort"
    with pytest.raises(UsageError, match="target kserve only"):
        deploy_action(
            MODEL, published["v1"], "v1", "cohort", 0, "local", NS, "", mesh_schemas=Path()
        )


# -- the CLI -------------------------------------------------------------------


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_or_prints_the_mesh_routes(
    store_env, published, schemas, capsys, monkeypatch, tmp_path
):
    fake = FakeKServe()
    monkeypatch.setattr("mlops.deployment.kube.default_client", lambda: fake)
    monkeypatch.setenv("MLOPS_KSERVE_DEPLOYMENT_MODE", "RawDeployment")
    code, _, _ = run(capsys, "deploy", MODEL, "--version", "v1", "--target", "kserve")
    assert code == 0

    out_file = tmp_path / "routes.yaml"
    code, out, _ = run(
        capsys,
        "deploy",
        MODEL,
        "--version",
        "v2",
        "--target",
        "kserve",
        "--strategy",
        "cohort",
        "--mesh-out",
        str(out_file),
        "--mesh-schemas",
        str(schemas),
        "--json",
    )
    assert code == 0
    summary = json.loads(out)
    written = [doc for doc in yaml.safe_load_all(out_file.read_text()) if doc]
    assert written == summary["mesh_manifests"] and len(written) == 2
    assert summary["mesh_schema_validated"] is True
    assert not list(tmp_path.glob(".routes.yaml.*"))  # no temporary file left behind
    assert fake.live()["spec"]["canary"][0]["trafficPercent"] == 0

    # Without --mesh-out the routes go to stdout as YAML: status lines are comments.
    code, out, _ = run(capsys, "promote", MODEL, "--target", "kserve")
    assert code == 0 and out.startswith("# iris (kserve): stable v2")
    docs = [doc for doc in yaml.safe_load_all(out) if doc]
    assert [d["kind"] for d in docs] == ["VirtualService", "HTTPRoute"]
    assert validate_mesh_manifests(docs, schemas) == ["VirtualService", "HTTPRoute"]
    assert f"# no longer needed: kubectl delete -n {NS} virtualservice/iris-routing" in out


def test_cli_mesh_options_need_the_kserve_target(store_env, published, capsys, tmp_path):
    code, _, err = run(
        capsys, "deploy", MODEL, "--strategy", "cohort", "--mesh-out", str(tmp_path / "r.yaml")
    )
    assert code == 2 and "--mesh-out needs --target kserve" in err
    code, _, err = run(
        capsys,
        "deploy",
        MODEL,
        "--target",
        "kserve",
        "--mesh-out",
        str(tmp_path / "missing" / "r.yaml"),
    )
    assert code == 2 and "does not exist" in err
    assert desired.read_state(store_env, MODEL) is None


def test_the_store_ca_configmap_setting_reaches_the_predictor(store_env, published, monkeypatch):
    """MLOPS_S3_CA_CONFIGMAP (which compile.py --s3-ca-configmap sets in the deploy task)."""
    monkeypatch.setenv("MLOPS_S3_CA_CONFIGMAP", "store-ca/bundle.pem")
    fake = FakeKServe()
    deploy(published, store_env, fake, "v1", "full", deployment_mode="RawDeployment")
    predictor = fake.live()["spec"]["predictor"]
    (volume,) = [v for v in predictor["volumes"] if "configMap" in v]
    assert volume["configMap"] == {
        "name": "store-ca",
        "items": [{"key": "bundle.pem", "path": "bundle.pem"}],
    }
    (container,) = predictor["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLOPS_S3_CA_BUNDLE"] == "/etc/mlops/store-ca/bundle.pem"
    monkeypatch.setenv("MLOPS_S3_CA_CONFIGMAP", "Not_A_Name")
    with pytest.raises(UsageError, match="store CA ConfigMap name 'Not_A_Name'"):
        deploy(published, store_env, FakeKServe(), "v1", "full", deployment_mode="RawDeployment")
