"""``mlops deploy|promote|rollback`` against the real store (local target)."""

from __future__ import annotations

import json

import pytest

from mlops.cli import main
from mlops.deployment.state import read_state
from tests.serving_helpers import build_model_dir, publish
from tests.training_helpers import use_signing_keys


@pytest.fixture
def published(store_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    private, _ = use_signing_keys(monkeypatch, tmp_path / "keys")
    for version in ("v1", "v2"):
        model_dir, _, _ = build_model_dir(
            tmp_path / version, private, model_name="iris", version=version
        )
        publish(store_env, model_dir, "iris", version)
    return store_env


def run(capsys, *argv: str) -> tuple[int, dict | str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in argv and out else out), err


def test_deploy_canary_promote_rollback(published, capsys):
    code, summary, _ = run(capsys, "deploy", "iris", "--version", "v1", "--json")
    assert code == 0 and summary["state"] == {
        "stable": "v1",
        "canary": None,
        "canary_percent": 0,
        "strategy": "canary",
    }
    code, summary, _ = run(capsys, "deploy", "iris", "--canary-percent", "25", "--json")
    assert code == 0 and summary["state"] == {
        "stable": "v1",
        "canary": "v2",
        "canary_percent": 25,
        "strategy": "canary",
    }
    code, _, _ = run(capsys, "rollback", "iris")
    assert code == 0 and read_state(published, "iris").canary is None
    run(capsys, "deploy", "iris", "--canary-percent", "25")
    code, text, _ = run(capsys, "promote", "iris")
    assert code == 0 and "stable v2" in text
    state = read_state(published, "iris")
    assert state.stable.version == "v2" and [r.version for r in state.history] == ["v1"]
    code, _, _ = run(capsys, "rollback", "iris")  # no canary: back to the previous stable
    assert code == 0 and read_state(published, "iris").stable.version == "v1"


def test_deploy_with_each_strategy(published, capsys):
    run(capsys, "deploy", "iris", "--version", "v1")
    code, text, _ = run(capsys, "deploy", "iris", "--strategy", "sticky", "--canary-percent", "30")
    assert code == 0 and "sticky v2 at 30%" in text
    code, summary, _ = run(
        capsys,
        "deploy",
        "iris",
        "--strategy",
        "cohort",
        "--cohort-header",
        "X-Tier",
        "--cohort-values",
        "beta,staff",
        "--json",
    )
    assert code == 0 and summary["mode"] == "cohort"
    assert summary["state"]["strategy"] == "cohort" and summary["state"]["canary"] == "v2"
    state = read_state(published, "iris")
    assert state.routing["cohort_header"] == "x-tier"
    assert state.routing["cohort_values"] == ["beta", "staff"]
    code, text, _ = run(capsys, "deploy", "iris", "--strategy", "shadow", "--shadow-percent", "50")
    assert code == 0 and text.strip().endswith("shadow v2")
    assert read_state(published, "iris").routing["shadow_percent"] == 50
    code, text, _ = run(capsys, "promote", "iris")
    assert code == 0 and read_state(published, "iris").strategy == "canary"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--strategy", "sticky"), "--strategy sticky needs --canary-percent"),
        (("--strategy", "canary"), "--strategy canary needs --canary-percent"),
        (("--strategy", "cohort", "--canary-percent", "10"), "drop --canary-percent"),
        (("--strategy", "shadow", "--shadow-percent", "0"), "shadow_percent must be between"),
        (("--strategy", "cohort", "--cohort-header", "a b"), "HTTP header name"),
    ],
)
def test_strategy_refusals_exit_2(published, capsys, argv, message):
    run(capsys, "deploy", "iris", "--version", "v1")
    code, _, err = run(capsys, "deploy", "iris", *argv)
    assert code == 2 and message in err
    assert read_state(published, "iris").canary is None


def copy_version(store, model_name: str, source: str, target: str) -> str:
    """Copies every object of a published version, marker included, under another version."""
    prefix = f"models/{model_name}/"
    for key in list(store.list(f"{prefix}{source}/")):
        store.put_bytes(prefix + target + key[len(prefix + source) :], store.get_bytes(key))
    return store.uri(f"{prefix}{target}")


def test_a_signed_version_copied_under_another_name_is_refused(published, capsys):
    # Issue 9, finding 6: v1 copied to v3 kept a valid signature, passed verify and
    # deploy, and became "latest" because "v3" sorts after "v2".
    from mlops.core.settings import signing_key_paths
    from mlops.model.registry import latest_version

    copy = copy_version(published, "iris", "v1", "v3")
    public_key = str(signing_key_paths()[1])
    code, _, err = run(capsys, "verify", copy, "--public-key", public_key)
    assert code == 4 and "says model 'iris' version 'v1'" in err and "version 'v3'" in err
    code, _, err = run(capsys, "deploy", "iris", "--version", "v3")
    assert code == 4 and "says model 'iris' version 'v1'" in err
    assert read_state(published, "iris") is None
    # The copy carries v1's completion marker: it is not the newest publish.
    assert latest_version(published, "iris") == "v2"
    code, summary, _ = run(capsys, "deploy", "iris", "--json")
    assert code == 0 and summary["version"] == "v2"
    code, _, _ = run(capsys, "verify", published.uri("models/iris/v2"), "--public-key", public_key)
    assert code == 0


def test_refusals_exit_2_and_name_the_problem(published, capsys):
    code, _, err = run(capsys, "promote", "iris")
    assert code == 2 and "no canary to promote" in err
    code, _, err = run(capsys, "deploy", "iris", "--version", "v9")
    assert code == 2 and "no published version 'v9'" in err
    code, _, err = run(capsys, "deploy", "Not_A_Name")
    assert code == 2 and "model_name 'Not_A_Name' is invalid" in err


def test_deploy_refuses_a_model_signed_with_another_key(published, capsys, tmp_path, monkeypatch):
    from tests.training_helpers import make_keypair

    _, other_public = make_keypair(tmp_path / "other-keys")
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEY", str(other_public))
    code, _, err = run(capsys, "deploy", "iris", "--version", "v1")
    assert code == 4 and "wrong key" in err
    assert read_state(published, "iris") is None


def test_deploy_to_kserve_runs_the_serving_image_or_the_one_given(published, capsys, monkeypatch):
    # No Kubernetes API runs here: FakeKServe stands in for KServeClient (the store is real).
    from mlops.runtime import SERVING_IMAGE
    from tests.unit.test_kube_apply import FakeKServe

    fake = FakeKServe()
    monkeypatch.setattr("mlops.deployment.kube.default_client", lambda: fake)
    monkeypatch.delenv("MLOPS_KSERVE_CRD", raising=False)

    def image() -> str:
        return fake.objects[("kubeflow-user", "iris")]["spec"]["predictor"]["containers"][0][
            "image"
        ]

    code, summary, _ = run(
        capsys, "deploy", "iris", "--version", "v1", "--target", "kserve", "--json"
    )
    assert code == 0 and summary["deployed"] and image() == SERVING_IMAGE
    code, summary, _ = run(
        capsys,
        "deploy",
        "iris",
        "--version",
        "v2",
        "--target",
        "kserve",
        "--image",
        "registry.example/mlops-serving:1",
        "--json",
    )
    assert code == 0 and image() == "registry.example/mlops-serving:1"
    assert read_state(published, "iris").stable.version == "v2"
