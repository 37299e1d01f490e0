"""Cluster-facing CLI paths: submitting runs and scheduling recurring runs.

The Kubeflow Pipelines API server is mocked because no KFP API runs here; the
fake records what kfp.Client would have sent, and the pipeline package it gets
is the real compiled YAML.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from mlops import cli
from mlops.cli.schedule import parse_cron, schedule_pipeline
from mlops.core.errors import UsageError


class FakeKfpClient:
    """Stands in for kfp.Client (no KFP API server here)."""

    instances: list[FakeKfpClient] = []

    def __init__(self, host=None, namespace=None, **_):
        self.host, self.namespace = host, namespace
        self.calls: list[tuple[str, dict]] = []
        FakeKfpClient.instances.append(self)

    def create_experiment(self, name, **_):
        self.calls.append(("create_experiment", {"name": name}))
        return SimpleNamespace(experiment_id="exp-1")

    def create_recurring_run(self, **kwargs):
        with open(kwargs["pipeline_package_path"]) as handle:
            kwargs["package"] = list(yaml.safe_load_all(handle))
        self.calls.append(("create_recurring_run", kwargs))
        return SimpleNamespace(recurring_run_id="rr-1")

    def create_run_from_pipeline_func(self, pipeline, arguments, **kwargs):
        self.calls.append(
            ("create_run", {"pipeline": pipeline.name, "arguments": arguments, **kwargs})
        )
        return SimpleNamespace(run_id="run-1")


@pytest.fixture
def fake_kfp(monkeypatch):
    import kfp

    FakeKfpClient.instances.clear()
    monkeypatch.setattr(kfp, "Client", FakeKfpClient)
    return FakeKfpClient


def test_cron_needs_six_fields():
    assert parse_cron("0 0 * * * *") == "0 0 * * * *"
    with pytest.raises(UsageError, match="did you mean '0 0 \\* \\* \\* \\*'"):
        parse_cron("0 * * * *")


def test_schedule_creates_recurring_run_with_compiled_monitoring_pipeline(fake_kfp):
    client = FakeKfpClient()
    run_id = schedule_pipeline(
        client,
        "monitoring",
        "0 0 3 * * *",
        {"model_name": "m", "retrain_data_uri": "s3://b/d.csv", "holdout_uri": "s3://b/h.csv"},
        "mlops",
    )
    assert run_id == "rr-1"
    name, kwargs = client.calls[-1]
    assert name == "create_recurring_run" and kwargs["cron_expression"] == "0 0 3 * * *"
    assert kwargs["experiment_id"] == "exp-1" and kwargs["enable_caching"] is False
    assert kwargs["package"][0]["pipelineInfo"]["name"] == "monitoring"


def test_schedule_cli_rejects_five_field_cron(fake_kfp, capsys):
    code = cli.main(
        [
            "schedule",
            "monitoring",
            "--host",
            "http://kfp.invalid",
            "--cron",
            "0 * * * *",
            "-p",
            "model_name=m",
            "-p",
            "retrain_data_uri=x",
            "-p",
            "holdout_uri=y",
        ]
    )
    assert code == 2 and "KFP needs 6" in capsys.readouterr().err
    assert not fake_kfp.instances


def test_schedule_cli_json(fake_kfp, capsys):
    code = cli.main(
        [
            "schedule",
            "monitoring",
            "--host",
            "http://kfp.invalid",
            "--cron",
            "0 0 * * * *",
            "-p",
            "model_name=m",
            "-p",
            "retrain_data_uri=x",
            "-p",
            "holdout_uri=y",
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "status": "scheduled",
        "recurring_run_id": "rr-1",
        "cron": "0 0 * * * *",
        "pipeline": "monitoring",
    }


def test_run_with_host_submits_instead_of_running(fake_kfp, capsys, monkeypatch):
    monkeypatch.delenv("MLOPS_S3_ENDPOINT", raising=False)
    code = cli.main(
        [
            "run",
            "training",
            "--host",
            "http://kfp.invalid",
            "--json",
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
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "run-1"
    ((name, call),) = fake_kfp.instances[-1].calls
    assert call["pipeline"] == "training" and call["arguments"]["min_accuracy"] == 0.9
    assert call["enable_caching"] is False
