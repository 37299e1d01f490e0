"""Cluster-facing CLI paths: submitting runs, waiting for them, and managing recurring runs.

No Kubeflow Pipelines API server runs here, so ``tests/fake_kfp.py`` fakes one: an
HTTP server on 127.0.0.1 implementing just the v2beta1 endpoints ``kfp.Client``
uses (healthz, experiments, runs create/get, recurring runs create/list/enable/
disable/delete). The real ``kfp.Client`` talks to it, and the tests check what it
received: the image of every executor, the service account, the namespace, the
cron, the credentials.
"""

from __future__ import annotations

import json

import pytest

from mlops import cli
from mlops.api.schedules import parse_cron
from mlops.core.errors import UsageError
from tests.fake_kfp import serve

DIGEST_IMAGE = "registry.example/team/kfp-mlops@sha256:" + "ab" * 32
SERVING_IMAGE = "registry.example/team/kfp-mlops-serving@sha256:" + "cd" * 32
TRAINING_PARAMS = [
    "-p",
    "data_uri=s3://b/d.csv",
    "-p",
    "holdout_uri=s3://b/h.csv",
    "-p",
    "target_column=y",
    "-p",
    "model_name=m",
    "-p",
    "min_accuracy=0.9",
]
MONITORING_PARAMS = [
    "-p",
    "model_name=m",
    "-p",
    "retrain_data_uri=s3://b/d.csv",
    "-p",
    "holdout_uri=s3://b/h.csv",
]


@pytest.fixture
def fake_kfp():
    yield from serve()


def run_cli(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.main(list(argv))
    out = capsys.readouterr().out
    return code, (json.loads(out) if "--json" in argv and out.strip() else {})


def executor_images(spec: dict) -> set[str]:
    executors = spec["pipeline_spec"]["deploymentSpec"]["executors"]
    assert executors
    return {executor["container"]["image"] for executor in executors.values()}


def test_cron_needs_six_fields():
    assert parse_cron("0 0 * * * *") == "0 0 * * * *"
    with pytest.raises(UsageError, match="did you mean '0 0 \\* \\* \\* \\*'"):
        parse_cron("0 * * * *")


def test_run_with_host_submits_instead_of_running(fake_kfp, capsys, monkeypatch):
    monkeypatch.delenv("MLOPS_S3_ENDPOINT", raising=False)
    code, result = run_cli(
        capsys, "run", "training", "--host", fake_kfp.url, "--json", *TRAINING_PARAMS
    )
    assert code == 0 and result["status"] == "submitted"
    ((run_id, run),) = fake_kfp.runs.items()
    assert result["run_id"] == run_id and result["run_url"].endswith(f"/#/runs/details/{run_id}")
    parameters = run["runtime_config"]["parameters"]
    assert parameters["min_accuracy"] == 0.9
    # The recipe is pinned before submission (the built-in one has no commit to resolve).
    assert parameters["recipe_uri"] == "builtin:logistic_regression"
    tasks = run["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert all(task["cachingOptions"].get("enableCache", False) is False for task in tasks.values())


def test_run_submits_the_images_service_account_namespace_and_token(fake_kfp, capsys, tmp_path):
    token = tmp_path / "token"
    token.write_text("pipelines-token-123")
    fake_kfp.required_token = "pipelines-token-123"
    code, _ = run_cli(
        capsys,
        "run",
        "training",
        "--host",
        fake_kfp.url,
        "--image",
        DIGEST_IMAGE,
        "--serving-image",
        SERVING_IMAGE,
        "--service-account",
        "mlops-pipeline",
        "--namespace",
        "kubeflow-user-example-com",
        "--token-file",
        str(token),
        "--json",
        *TRAINING_PARAMS,
    )
    assert code == 0
    ((run),) = fake_kfp.runs.values()
    assert executor_images(run["pipeline_spec"]) == {DIGEST_IMAGE}
    root = run["pipeline_spec"]["pipeline_spec"]["root"]["inputDefinitions"]["parameters"]
    assert root["serving_image"]["defaultValue"] == SERVING_IMAGE
    assert run["service_account"] == "mlops-pipeline"
    ((experiment),) = fake_kfp.experiments.values()
    assert experiment["namespace"] == "kubeflow-user-example-com"
    assert run["experiment_id"] == experiment["experiment_id"]
    assert {r.headers.get("authorization") for r in fake_kfp.requests} == {
        "Bearer pipelines-token-123"
    }
    assert "pipelines-token-123" not in json.dumps(run)


@pytest.mark.parametrize(
    ("state", "task", "status", "exit_code"),
    [
        ("SUCCEEDED", "Publish the signed model", "released", 0),
        ("SUCCEEDED", "Record the rejection", "rejected", 3),
        ("SUCCEEDED", "Record the rejection (nothing was trained)", "rejected", 3),
        ("FAILED", "Load and split the training data", "failed", 1),
        ("SUCCEEDED", "Load and split the training data", "unknown", 1),
    ],
)
def test_run_wait_exits_with_the_cluster_outcome(fake_kfp, capsys, state, task, status, exit_code):
    fake_kfp.finish_with = {"state": state, "tasks": [(task, "SUCCEEDED")]}
    code, result = run_cli(
        capsys, "run", "training", "--host", fake_kfp.url, "--wait", "--json", *TRAINING_PARAMS
    )
    assert (code, result["status"], result["state"]) == (exit_code, status, state)
    assert len(fake_kfp.received("GET", f"/runs/{result['run_id']}")) == 2


def test_wait_needs_host(capsys):
    code = cli.main(["run", "training", "--wait", *TRAINING_PARAMS])
    assert code == 2 and "--wait needs --host" in capsys.readouterr().err


def test_refused_token_is_a_usage_error(fake_kfp, capsys, tmp_path):
    token = tmp_path / "token"
    token.write_text("wrong")
    fake_kfp.required_token = "right"
    code = cli.main(
        [
            "run",
            "training",
            "--host",
            fake_kfp.url,
            "--namespace",  # without one, kfp.Client retries healthz for 25 s first
            "team-a",
            "--token-file",
            str(token),
            *TRAINING_PARAMS,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "answered 401" in err and "check the token" in err
    assert "wrong" not in err.replace("wrong token", "")
    assert not fake_kfp.runs


def test_unreachable_host_is_a_system_error(capsys):
    code = cli.main(["run", "training", "--host", "http://127.0.0.1:9", *TRAINING_PARAMS])
    assert code == 1 and "cannot reach the KFP API" in capsys.readouterr().err


def test_schedule_submits_the_image_service_account_and_cron(fake_kfp, capsys):
    code, result = run_cli(
        capsys,
        "schedule",
        "monitoring",
        "--host",
        fake_kfp.url,
        "--cron",
        "0 0 3 * * *",
        "--image",
        DIGEST_IMAGE,
        "--service-account",
        "mlops-pipeline",
        "--namespace",
        "team-a",
        "--json",
        *MONITORING_PARAMS,
    )
    assert code == 0 and result["status"] == "scheduled"
    ((recurring),) = fake_kfp.recurring_runs.values()
    assert result["recurring_run_id"] == recurring["recurring_run_id"]
    assert recurring["display_name"] == result["name"] == "mlops-monitoring"
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert executor_images(recurring["pipeline_spec"]) == {DIGEST_IMAGE}
    assert recurring["service_account"] == "mlops-pipeline"
    assert int(recurring["max_concurrency"]) == 1 and recurring["no_catchup"] is True
    assert recurring["runtime_config"]["parameters"]["model_name"] == "m"
    experiment = fake_kfp.experiments[recurring["experiment_id"]]
    assert experiment["namespace"] == "team-a"


def test_schedule_list_pause_resume_delete_round_trip(fake_kfp, capsys):
    host = ["--host", fake_kfp.url, "--namespace", "team-a", "--json"]
    create = ["schedule", "monitoring", "--cron", "0 0 3 * * *", *host, *MONITORING_PARAMS]
    assert run_cli(capsys, *create, "--name", "breast-cancer")[0] == 0
    assert run_cli(capsys, *create)[0] == 0
    # Someone else's recurring run in the same namespace: never listed, never touched.
    experiment_id = next(iter(fake_kfp.experiments))
    fake_kfp.recurring_runs["foreign"] = {
        "recurring_run_id": "foreign",
        "display_name": "nightly-etl",
        "experiment_id": experiment_id,
        "mode": "ENABLE",
    }

    code, listed = run_cli(capsys, "schedule", "list", *host)
    assert code == 0
    assert [s["name"] for s in listed["schedules"]] == [
        "mlops-breast-cancer",
        "mlops-monitoring",
    ]
    assert all(s["enabled"] and s["pipeline"] == "monitoring" for s in listed["schedules"])

    code, paused = run_cli(capsys, "schedule", "pause", "breast-cancer", *host)
    assert code == 0 and paused["status"] == "paused"
    paused_id = paused["schedule"]["id"]
    assert fake_kfp.recurring_runs[paused_id]["mode"] == "DISABLE"
    states = {
        s["name"]: s["enabled"] for s in run_cli(capsys, "schedule", "list", *host)[1]["schedules"]
    }
    assert states == {"mlops-breast-cancer": False, "mlops-monitoring": True}

    assert run_cli(capsys, "schedule", "resume", paused_id, *host)[0] == 0
    assert fake_kfp.recurring_runs[paused_id]["mode"] == "ENABLE"

    code, deleted = run_cli(capsys, "schedule", "delete", "mlops-breast-cancer", *host)
    assert code == 0 and deleted["status"] == "deleted"
    assert paused_id not in fake_kfp.recurring_runs
    remaining = run_cli(capsys, "schedule", "list", *host)[1]["schedules"]
    assert [s["name"] for s in remaining] == ["mlops-monitoring"]

    code = cli.main(["schedule", "pause", "foreign", "--host", fake_kfp.url])
    assert code == 2 and "no recurring run of this project" in capsys.readouterr().err
    assert fake_kfp.recurring_runs["foreign"]["mode"] == "ENABLE"


def test_schedule_refuses_a_taken_name(fake_kfp, capsys):
    create = ["schedule", "monitoring", "--host", fake_kfp.url, "--cron", "0 0 3 * * *"]
    assert cli.main([*create, *MONITORING_PARAMS]) == 0
    capsys.readouterr()
    assert cli.main([*create, *MONITORING_PARAMS]) == 2
    assert "exists" in capsys.readouterr().err and len(fake_kfp.recurring_runs) == 1


def test_schedule_cli_rejects_five_field_cron(fake_kfp, capsys):
    code = cli.main(
        [
            "schedule",
            "monitoring",
            "--host",
            fake_kfp.url,
            "--cron",
            "0 * * * *",
            *MONITORING_PARAMS,
        ]
    )
    assert code == 2 and "KFP needs 6" in capsys.readouterr().err
    assert not fake_kfp.requests


def test_schedule_needs_a_cron_and_an_action_needs_a_name(fake_kfp, capsys):
    assert cli.main(["schedule", "monitoring", "--host", fake_kfp.url, *MONITORING_PARAMS]) == 2
    assert "--cron is required" in capsys.readouterr().err
    assert cli.main(["schedule", "pause", "--host", fake_kfp.url]) == 2
    assert "needs the schedule's name" in capsys.readouterr().err
    assert not fake_kfp.requests
