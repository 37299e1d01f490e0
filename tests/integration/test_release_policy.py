"""Signed release evidence enforced where it matters: ``mlops verify``, deploy and the model server.

Folders are trained in-process and signed with a real key; the store is the
session's SeaweedFS; the server is ``python -m serving.server``; the champion
test runs the real pipeline twice through the CLI. Nothing is mocked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from mlops.core.errors import VerificationError
from mlops.deployment.actions import deploy_action
from mlops.deployment.state import Release, deploy, read_state
from mlops.model.registry import list_versions
from mlops.trust.evidence import RELEASE_FILE
from mlops.trust.signing import sign_model_dir, verify_version_dir
from tests.release_helpers import passed_decision_json, write_release
from tests.serving_helpers import build_model_dir, publish, serving_process
from tests.training_helpers import (
    cli_command,
    cli_env,
    demo_data,
    make_keypair,
    run_cli,
    single_json,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def keys(tmp_path) -> tuple[Path, Path]:
    return make_keypair(tmp_path / "keys")


def unreleased(tmp_path: Path, keys, version: str, **evidence) -> Path:
    """A signed iris folder whose release.json is changed by ``evidence`` (or absent with None)."""
    model_dir, _, _ = build_model_dir(tmp_path / version, keys[0], version=version)
    (model_dir / "model.sig").unlink()
    if evidence.get("absent"):
        (model_dir / RELEASE_FILE).unlink()
    else:
        write_release(model_dir, **evidence)
    sign_model_dir(model_dir, keys[0])
    return model_dir


def failed_gate_evidence() -> dict:
    decision = json.loads(passed_decision_json())
    decision["gates"]["model_scan"] = {"passed": False, "detail": "unsafe: pickle opcodes"}
    return {"gates": decision["gates"]}


def verify_cli(target: str, public_key: Path, home: Path, store=None, **env: str):
    return run_cli(
        ["verify", target, "--public-key", str(public_key)], cli_env(home, store, **env), timeout=60
    )


@pytest.mark.parametrize(
    ("evidence", "reason"),
    [
        ({"absent": True}, "has no release.json"),
        (failed_gate_evidence(), "failed gate(s): model_scan: unsafe: pickle opcodes"),
        (
            {"thresholds": {"min_accuracy": 0.9}, "holdout_metrics": {"holdout_accuracy": 0.5}},
            "below the release policy's minimum 0.9000",
        ),
    ],
    ids=["no-evidence", "failed-gate", "below-threshold"],
)
def test_verify_and_deploy_refuse_signed_folders_that_were_not_released(
    tmp_path, keys, store, evidence, reason
):
    model_dir = unreleased(tmp_path, keys, "v2", **evidence)
    result = verify_cli(str(model_dir), keys[1], tmp_path / "home")
    assert result.returncode == 4, result.stdout + result.stderr
    assert reason in result.stderr
    ref = publish(store, model_dir, "iris", "v2")
    with pytest.raises(VerificationError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        deploy_action("iris", ref.uri, store=store, public_key=keys[1])
    assert read_state(store, "iris") is None


def test_a_server_side_policy_minimum_raises_the_bar(tmp_path, keys, store):
    model_dir = unreleased(tmp_path, keys, "v1", holdout_metrics={"holdout_accuracy": 0.95})
    ok = verify_cli(str(model_dir), keys[1], tmp_path / "home")
    assert ok.returncode == 0, ok.stderr
    assert "holdout_accuracy: 0.9500" in ok.stdout and "[pass] no_regression" in ok.stdout
    strict = verify_cli(str(model_dir), keys[1], tmp_path / "home", MLOPS_MIN_ACCURACY="0.99")
    assert strict.returncode == 4 and "minimum 0.9900" in strict.stderr


def test_a_released_folder_copied_under_another_version_is_refused_everywhere(
    tmp_path, keys, store
):
    v1, _, _ = build_model_dir(
        tmp_path / "v20261201-120000-aaaa", keys[0], version="v20261201-120000-aaaa"
    )
    good = verify_cli(str(v1), keys[1], tmp_path / "home")
    assert good.returncode == 0, good.stderr
    copy = tmp_path / "copy" / "v20261201-130000-bbbb"
    shutil.copytree(v1, copy)
    result = verify_cli(str(copy), keys[1], tmp_path / "home")
    assert result.returncode == 4 and "copied under another" in result.stderr, result.stderr
    ref = publish(store, copy, "iris", "v20261201-130000-bbbb")
    with pytest.raises(VerificationError, match="copied under another"):
        deploy_action("iris", ref.uri, store=store, public_key=keys[1])
    published = verify_cli(ref.uri, keys[1], tmp_path / "home", store)
    assert published.returncode == 4 and "copied under another" in published.stderr


def test_the_server_never_loads_an_unreleased_or_copied_version(tmp_path, keys, store):
    good, _, _ = build_model_dir(tmp_path / "v1", keys[0], version="v1")
    publish(store, good, "iris", "v1")
    failed = unreleased(tmp_path, keys, "v2", **failed_gate_evidence())
    publish(store, failed, "iris", "v2")
    copy = tmp_path / "v3"
    shutil.copytree(good, copy)
    publish(store, copy, "iris", "v3")
    bucket = store.settings.bucket
    # The state is written directly (as a compromised deploy step could): serving must still refuse.
    deploy(store, "iris", Release("v2", f"s3://{bucket}/models/iris/v2"))
    (tmp_path / "serve").mkdir()
    with serving_process(store, keys[1], tmp_path / "serve", ready=()) as server:
        status = _wait_reason(server.base, "v2")
        assert "failed gate(s): model_scan" in status["not_ready_reason"], status
        assert status["ready"] is False
        deploy(store, "iris", Release("v3", f"s3://{bucket}/models/iris/v3"))
        status = _wait_reason(server.base, "v3")
        assert "v3" in status["not_ready_reason"], status
        deploy(store, "iris", Release("v1", f"s3://{bucket}/models/iris/v1"))
        deadline = time.monotonic() + 30
        while requests.get(f"{server.base}/v2/models/iris/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the released version never became ready"
            time.sleep(0.3)


def _wait_reason(base: str, version: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    status: dict = {}
    while True:
        try:
            status = requests.get(f"{base}/v1/models/iris", timeout=5).json()
        except requests.ConnectionError:  # the server is still starting
            status = {}
        reason = status.get("not_ready_reason") or ""
        # The desired state can change before the server retries: wait for the reason that
        # names this version, not a left-over one about the version before.
        if status.get("desired", {}).get("stable") == version and f"version {version} " in reason:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.3)


def test_a_worse_retrained_candidate_is_rejected_and_production_stays(tmp_path, store):
    """Champion/challenger through the real pipeline: logistic regression, then a worse recipe."""
    training_csv, holdout_csv = demo_data(tmp_path / "data")
    private, public = make_keypair(tmp_path / "keys")
    env = cli_env(
        tmp_path / "home",
        store,
        MLOPS_SIGNING_KEY=str(private),
        MLOPS_SIGNING_PUBLIC_KEY=str(public),
    )
    worse = tmp_path / "worse"
    worse.mkdir()
    (worse / "mlops.yaml").write_text("entry_point: train:build_model\n")
    (worse / "train.py").write_text(
        '"""A deliberately weak model: two leaves."""\n\n'
        "from sklearn.tree import DecisionTreeClassifier\n\n\n"
        "def build_model(params):\n"
        '    """A stump."""\n'
        "    return DecisionTreeClassifier(max_depth=1, random_state=params['seed'])\n"
    )
    common = [
        "-p", f"data_uri={training_csv}", "-p", f"holdout_uri={holdout_csv}",
        "-p", "target_column=diagnosis", "-p", "model_name=cancer", "-p", "allow_unknown_audit=true",
        "-p", "deploy=full", "-p", "min_accuracy=0.8",
    ]  # fmt: skip
    first = subprocess.run(
        cli_command("run", "training", "--json", *common),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    released = single_json(first.stdout)
    assert first.returncode == 0, first.stderr[-2000:]
    assert released["gates"]["no_regression"]["detail"].startswith("first release")
    champion = read_state(store, "cancer").stable.version
    second = subprocess.run(
        cli_command("run", "training", "--json", *common, "-p", f"recipe_uri={worse}"),
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    rejected = single_json(second.stdout)
    assert second.returncode == 3, second.stderr[-2000:]
    detail = rejected["gates"]["no_regression"]["detail"]
    assert rejected["gates"]["no_regression"]["passed"] is False
    assert rejected["gates"]["holdout_accuracy"]["passed"] is True, "it clears min_accuracy alone"
    assert f"champion {champion}" in detail and "McNemar" in detail
    candidate = rejected["metrics"]["candidate_accuracy"]
    assert candidate < rejected["metrics"]["champion_accuracy"]
    assert f"{candidate:.4f}" in detail
    assert read_state(store, "cancer").stable.version == champion
    assert list_versions(store, "cancer") == [champion]
    # Never signed: no signature in the store, none in the run's artifacts.
    assert not [
        k for k in store.list("", recursive=True) if k.endswith("model.sig") and champion not in k
    ]
    run_dir = Path(rejected["run_dir"])
    assert not list(run_dir.rglob("model.sig")), "a rejected candidate was signed"
    assert rejected["evidence"]["gates"]["no_regression"]["passed"] is False
    # The released version carries its signed evidence.
    verify_version_dir_published(store, champion, public, tmp_path)


def verify_version_dir_published(store, version: str, public: Path, work: Path) -> None:
    from mlops.model.registry import fetch_model

    folder = fetch_model(
        store, f"s3://{store.settings.bucket}/models/cancer/{version}", work / "fetched"
    )
    assert (folder / RELEASE_FILE).is_file()
    evidence = verify_version_dir(folder, public, "cancer", version)
    assert (
        evidence["released"] is True
        and evidence["repository"]["uri"] == "builtin:logistic_regression"
    )
    assert evidence["data_fingerprints"]["holdout"] and evidence["pipeline_run_id"]
