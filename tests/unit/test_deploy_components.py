"""Deploy/promote/rollback actions and the ``deploy_model`` KFP component.

Promote and rollback have no component (no pipeline runs them; the CLI calls
the actions), so their tests call the actions.

``target="local"`` runs against the real SeaweedFS store (``store_env``). The
``kserve`` target uses ``FakeKServe`` from ``test_kube_apply``: the Kubernetes
API is mocked because no Kubernetes API runs here; the store stays real.
"""

from __future__ import annotations

import json

import pytest

from mlops.core.errors import MlopsError, UsageError, VerificationError
from mlops.deployment import state as desired
from mlops.deployment.actions import deploy_action, promote_action, rollback_action
from mlops.model.registry import publish_model_dir
from mlops.trust.signing import sign_model_dir
from tests.release_helpers import passed_decision_json, release_and_sign
from tests.training_helpers import use_signing_keys
from tests.unit.test_kube_apply import FakeKServe

MODEL = "iris"
NS = "kubeflow-user"
WAIT = {"timeout_seconds": 0.2, "poll_seconds": 0.0}


@pytest.fixture
def published(store_env, tmp_path, monkeypatch):
    """Three released (evidence written, then signed), published versions: {version: uri}.

    The deploy step verifies like serving does: MLOPS_SIGNING_PUBLIC_KEY names the
    key they were signed with, the signed metadata names the version of the path,
    and the signed ``release.json`` records a passed release of that version.
    """
    monkeypatch.delenv("MLOPS_MIN_ACCURACY", raising=False)
    private, _ = use_signing_keys(monkeypatch, tmp_path / "keys")
    uris = {}
    for version in ("v1", "v2", "v3"):
        model_dir = _candidate(tmp_path / version, version)
        release_and_sign(model_dir, private)
        uris[version] = publish_model_dir(store_env, model_dir, MODEL, version).uri
    return uris


def _candidate(model_dir, version):
    """A model folder as training leaves it: model file and metadata naming its identity."""
    model_dir.mkdir()
    (model_dir / "model.skops").write_bytes(b"not really a model " + version.encode())
    (model_dir / "metadata.json").write_text(json.dumps({"model_name": MODEL, "version": version}))
    return model_dir


def _failed_decision_json():
    """A decision whose no_regression gate failed (the evidence a rejection would carry)."""
    decision = json.loads(passed_decision_json())
    decision["gates"]["no_regression"] = {"passed": False, "detail": "candidate is worse"}
    return json.dumps(decision)


def test_unsigned_or_tampered_version_is_never_deployed(store_env, published, tmp_path):
    unsigned = tmp_path / "unsigned"
    unsigned.mkdir()
    (unsigned / "model.skops").write_bytes(b"unsigned")
    uri = publish_model_dir(store_env, unsigned, MODEL, "v4").uri
    with pytest.raises(VerificationError, match="missing signature"):
        deploy_action(MODEL, uri, "v4", "full", 0, "local", NS, "")
    store_env.put_bytes("models/iris/v2/model.skops", b"swapped after publishing")
    with pytest.raises(VerificationError, match="changed since signing: model.skops"):
        deploy_action(MODEL, published["v2"], "v2", "full", 0, "local", NS, "")
    # The evidence is signed with the model: rewriting it after publishing is tampering too.
    evidence = json.loads(store_env.get_bytes("models/iris/v3/release.json"))
    evidence["gates"]["no_regression"] = {"passed": True, "detail": "rewritten"}
    store_env.put_bytes("models/iris/v3/release.json", json.dumps(evidence).encode())
    with pytest.raises(VerificationError, match="changed since signing: release.json"):
        deploy_action(MODEL, published["v3"], "v3", "full", 0, "local", NS, "")
    assert desired.read_state(store_env, MODEL) is None


def test_a_signed_version_copied_under_another_name_is_never_deployed(store_env, published):
    # Every object of v2, marker included, copied to v9: the signature still verifies.
    for key in list(store_env.list("models/iris/v2/")):
        store_env.put_bytes(key.replace("/v2/", "/v9/"), store_env.get_bytes(key))
    copy = published["v2"].replace("/v2", "/v9")
    with pytest.raises(VerificationError, match="says model 'iris' version 'v2'.*version 'v9'"):
        deploy_action(MODEL, copy, "v9", "full", 0, "local", NS, "")
    assert desired.read_state(store_env, MODEL) is None


def test_a_version_whose_metadata_records_no_identity_is_never_deployed(
    store_env, published, tmp_path
):
    from mlops.core.settings import signing_key_paths

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "model.skops").write_bytes(b"weights")
    (legacy / "metadata.json").write_text("{}")
    sign_model_dir(legacy, signing_key_paths()[0])
    uri = publish_model_dir(store_env, legacy, MODEL, "v5").uri
    with pytest.raises(VerificationError, match="records no model_name and version"):
        deploy_action(MODEL, uri, "v5", "full", 0, "local", NS, "")


@pytest.mark.parametrize(
    "release, match",
    [
        # signed by the right key, but the sign step never ran after a passed decision
        (None, "signed but has no release.json: it was never released"),
        (
            {"decision_json": _failed_decision_json()},
            "records failed gate.*no_regression: candidate is worse",
        ),
        ({"version": "v1"}, "evidence of 'iris' version 'v1', not of 'iris' version 'v7'"),
        ({"holdout_metrics": {"holdout_accuracy": 0.5}}, "0.5000 .*below.*minimum 0.8000"),
        ({"holdout_metrics": {}}, "records no holdout accuracy"),
    ],
    ids=["signed-not-released", "failed-gate", "other-version", "below-own", "no-holdout"],
)
def test_a_signed_version_without_a_passed_release_is_never_deployed(
    store_env, published, tmp_path, release, match
):
    from mlops.core.settings import signing_key_paths
    from tests.release_helpers import write_release

    model_dir = _candidate(tmp_path / "v7", "v7")
    if release is not None:
        write_release(model_dir, **release)
    sign_model_dir(model_dir, signing_key_paths()[0])
    uri = publish_model_dir(store_env, model_dir, MODEL, "v7").uri
    with pytest.raises(VerificationError, match=match):
        deploy_action(MODEL, uri, "v7", "full", 0, "local", NS, "")
    assert desired.read_state(store_env, MODEL) is None


def test_the_policy_minimum_accuracy_raises_the_bar_for_deploy(
    store_env, published, tmp_path, monkeypatch
):
    from mlops.core.settings import signing_key_paths

    model_dir = _candidate(tmp_path / "v7", "v7")
    release_and_sign(model_dir, signing_key_paths()[0], holdout_metrics={"holdout_accuracy": 0.9})
    uri = publish_model_dir(store_env, model_dir, MODEL, "v7").uri
    monkeypatch.setenv("MLOPS_MIN_ACCURACY", "0.95")
    with pytest.raises(VerificationError, match="0.9000 .*below.*minimum 0.9500"):
        deploy_action(MODEL, uri, "v7", "full", 0, "local", NS, "")
    assert desired.read_state(store_env, MODEL) is None
    # A policy below the model's own threshold (0.8) does not lower it; 0.9 passes both.
    monkeypatch.setenv("MLOPS_MIN_ACCURACY", "0.5")
    assert deploy_action(MODEL, uri, "v7", "full", 0, "local", NS, "")["state"]["stable"] == "v7"


def test_local_deploy_canary_promote_rollback(store_env, published):
    summary = deploy_action(MODEL, published["v1"], "v1", "full", 0, "local", NS, "")
    assert summary["deployed"] and summary["state"] == {
        "stable": "v1",
        "canary": None,
        "canary_percent": 0,
        "strategy": "canary",
    }
    summary = deploy_action(MODEL, published["v2"], "", "canary", 20, "local", NS, "")
    assert summary["version"] == "v2"
    assert summary["state"] == {
        "stable": "v1",
        "canary": "v2",
        "canary_percent": 20,
        "strategy": "canary",
    }

    assert promote_action(MODEL, "local", NS)["state"]["stable"] == "v2"
    with pytest.raises(UsageError, match="no canary"):
        promote_action(MODEL, "local", NS)
    # no canary: a local rollback returns to the previous stable release
    assert rollback_action(MODEL, "local", NS)["state"]["stable"] == "v1"
    state = desired.read_state(store_env, MODEL)
    assert state.stable.model_uri == published["v1"]


def test_mode_none_changes_nothing(store_env, published):
    summary = deploy_action(MODEL, published["v1"], "v1", "none", 0, "local", NS, "")
    assert summary["deployed"] is False
    assert desired.read_state(store_env, MODEL) is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "blue-green"}, "mode must be one of"),
        ({"target": "k8s"}, "target must be one of"),
        ({"mode": "canary", "canary_percent": 0}, "between 1 and 99"),
        ({"mode": "canary", "canary_percent": 100}, "between 1 and 99"),
        ({"model_version": "v2"}, "is version 'v1'"),
    ],
)
def test_bad_arguments_are_usage_errors(store_env, published, kwargs, match):
    args = {
        "model_name": MODEL,
        "model_uri": published["v1"],
        "model_version": "v1",
        "mode": "full",
        "canary_percent": 10,
        "target": "local",
        "namespace": NS,
        "image": "",
    }
    args.update(kwargs)
    with pytest.raises(UsageError, match=match):
        deploy_action(**args)


def test_unpublished_or_foreign_uri_is_refused(store_env, published):
    missing = published["v1"].replace("/v1", "/v9")
    with pytest.raises(UsageError, match="not a complete published"):
        deploy_action(MODEL, missing, "", "full", 0, "local", NS, "")
    with pytest.raises(UsageError, match="is for model"):
        deploy_action("other", published["v1"], "", "full", 0, "local", NS, "")


def test_kserve_target_applies_and_records_state(store_env, published, monkeypatch):
    monkeypatch.delenv("MLOPS_KSERVE_CRD", raising=False)
    fake = FakeKServe()
    summary = deploy_action(
        MODEL,
        published["v1"],
        "v1",
        "full",
        0,
        "kserve",
        NS,
        "",
        store=store_env,
        client=fake,
        deployment_mode="Standard",
        **WAIT,
    )
    assert summary["schema_validated"] is False
    assert summary["deployment_mode"] == "Standard"
    assert summary["url"] == f"http://{MODEL}.{NS}"
    # the live object's mode is kept when none is given
    summary = deploy_action(
        MODEL,
        published["v2"],
        "v2",
        "canary",
        20,
        "kserve",
        NS,
        "",
        store=store_env,
        client=fake,
        **WAIT,
    )
    assert summary["deployment_mode"] == "Standard"
    assert fake.live()["spec"]["canary"][0]["trafficPercent"] == 20
    assert summary["state"] == {
        "stable": "v1",
        "canary": "v2",
        "canary_percent": 20,
        "strategy": "canary",
    }

    rolled = rollback_action(MODEL, "kserve", NS, store=store_env, client=fake, **WAIT)
    assert rolled["state"]["canary"] is None and "canary" not in fake.live()["spec"]
    with pytest.raises(UsageError, match="no canary to roll back on KServe"):
        rollback_action(MODEL, "kserve", NS, store=store_env, client=fake, **WAIT)

    deploy_action(
        MODEL,
        published["v3"],
        "v3",
        "canary",
        50,
        "kserve",
        NS,
        "",
        store=store_env,
        client=fake,
        **WAIT,
    )
    promoted = promote_action(MODEL, "kserve", NS, store=store_env, client=fake, **WAIT)
    assert promoted["state"]["stable"] == "v3"
    assert "canary" not in fake.live()["spec"]


def test_kserve_failure_leaves_state_untouched(store_env, published, monkeypatch):
    monkeypatch.delenv("MLOPS_KSERVE_CRD", raising=False)
    fake = FakeKServe(ready=lambda obj: "Unknown")
    with pytest.raises(MlopsError, match="not Ready"):
        deploy_action(
            MODEL,
            published["v1"],
            "v1",
            "full",
            0,
            "kserve",
            NS,
            "",
            store=store_env,
            client=fake,
            **WAIT,
        )
    assert fake.live() is None
    assert desired.read_state(store_env, MODEL) is None


def test_kserve_target_validates_with_crd_when_configured(store_env, published, monkeypatch):
    from tests.conftest import shared_path

    crd = shared_path("schemas", "kserve", "serving.kserve.io_inferenceservices.yaml")
    monkeypatch.setenv("MLOPS_KSERVE_CRD", str(crd))
    fake = FakeKServe()
    summary = deploy_action(
        MODEL,
        published["v1"],
        "v1",
        "full",
        0,
        "kserve",
        NS,
        "",
        store=store_env,
        client=fake,
        **WAIT,
    )
    assert summary["schema_validated"] is True


def test_deploy_component_then_rollback_and_promote(store_env, published):
    from components.deploy_model import deploy_model

    out = json.loads(
        deploy_model.python_func(
            model_name=MODEL,
            model_uri=published["v1"],
            model_version="v1",
            mode="full",
            canary_percent=0,
            target="local",
            namespace=NS,
            image="",
        )
    )
    assert out["state"]["stable"] == "v1"
    deploy_model.python_func(
        model_name=MODEL,
        model_uri=published["v2"],
        model_version="v2",
        mode="canary",
        canary_percent=10,
        target="local",
        namespace=NS,
        image="",
    )
    out = json.loads(json.dumps(rollback_action(MODEL, "local", NS), sort_keys=True))
    assert out["state"] == {
        "stable": "v1",
        "canary": None,
        "canary_percent": 0,
        "strategy": "canary",
    }
    deploy_model.python_func(
        model_name=MODEL,
        model_uri=published["v2"],
        model_version="v2",
        mode="canary",
        canary_percent=10,
        target="local",
        namespace=NS,
        image="",
    )
    out = json.loads(json.dumps(promote_action(MODEL, "local", NS), sort_keys=True))
    assert out["state"]["stable"] == "v2"


def test_deploy_component_compiles_with_the_runtime_image():
    from components.deploy_model import deploy_model
    from mlops.runtime import RUNTIME_IMAGE

    container = deploy_model.component_spec.implementation.container
    assert container.image == RUNTIME_IMAGE
    assert "pip install" not in " ".join(container.command)
    inputs = deploy_model.component_spec.inputs
    assert inputs["canary_percent"].type == "Integer"
    assert set(inputs) == {
        "model_name",
        "model_uri",
        "model_version",
        "mode",
        "canary_percent",
        "target",
        "namespace",
        "image",
    }


def test_kserve_mode_cannot_switch_on_a_live_service(store_env, published, monkeypatch):
    monkeypatch.delenv("MLOPS_KSERVE_CRD", raising=False)
    fake = FakeKServe()
    deploy_action(
        MODEL,
        published["v1"],
        "v1",
        "full",
        0,
        "kserve",
        NS,
        "",
        store=store_env,
        client=fake,
        **WAIT,
    )  # Serverless by default
    monkeypatch.setenv("MLOPS_KSERVE_DEPLOYMENT_MODE", "RawDeployment")
    with pytest.raises(UsageError, match="cannot switch"):
        deploy_action(
            MODEL,
            published["v2"],
            "v2",
            "full",
            0,
            "kserve",
            NS,
            "",
            store=store_env,
            client=fake,
            **WAIT,
        )


def test_dockerfile_builds_the_two_images_runtime_names():
    from mlops.runtime import PYTHON_BASE_IMAGE, RUNTIME_IMAGE, SERVING_IMAGE
    from tests.conftest import REPO_ROOT

    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = {}
    for line in text.splitlines():
        if line.startswith("FROM "):
            source, _, name = line[len("FROM ") :].partition(" AS ")
            stages[name.strip()] = source.strip()
    assert set(stages) == {"wheel", "serving-venv", "pipeline-venv", "base", "pipeline", "serving"}
    assert list(stages)[-1] == "serving", "a plain `docker build` makes the predictor image"
    assert stages["pipeline"] == stages["serving"] == "base"
    assert {source for name, source in stages.items() if name not in ("pipeline", "serving")} == {
        "${PYTHON_BASE_IMAGE}"
    }
    assert f"ARG PYTHON_BASE_IMAGE={PYTHON_BASE_IMAGE}" in text
    assert (
        f"--target serving  -t {SERVING_IMAGE}" in text
        and f"--target pipeline -t {RUNTIME_IMAGE}" in text
    )
    serving = text[text.index("AS serving-venv") : text.index("AS pipeline-venv")]
    assert "COPY requirements-serving.lock" in serving and "--no-deps" in serving
    assert "COPY requirements.lock" in text[text.index("AS pipeline-venv") : text.index("AS base")]
    assert text.count("USER 10001:10001") == 2
    assert text.rstrip().endswith('ENTRYPOINT ["python", "-m", "serving"]')


def test_dockerignore_lets_in_everything_the_dockerfile_copies():
    from tests.conftest import REPO_ROOT

    allowed = {
        line[1:].rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = set()
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(part.rstrip("/") for part in line.split()[1:-1])
    assert copied and copied <= allowed, copied - allowed
    assert all((REPO_ROOT / path).exists() for path in copied)
