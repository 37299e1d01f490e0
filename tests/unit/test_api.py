"""The public Python API (``mlops.api``, re-exported by ``mlops``): arguments, outcome, cluster.

Runs on kfp.local through the API are exercised by the notebooks
(``tests/integration/test_notebooks.py``); cluster submission against a fake KFP
API server by ``tests/unit/test_cli_cluster.py``. Here: what needs neither.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mlops
from mlops.api import Cluster, HoldoutEvaluation, Outcome, compile_pipeline
from mlops.api.cluster import deciding_tasks, status_of_run
from mlops.api.compiling import compile_documents
from mlops.api.runs import pipeline_arguments, pipeline_named
from mlops.core.errors import EXIT_REJECTED, MlopsError, UsageError
from pipelines import PIPELINES
from tests.training_helpers import REPO_ROOT

REQUIRED = {"data_uri": "d.csv", "holdout_uri": "h.csv"}


def test_mlops_exports_the_api_lazily():
    assert mlops.run_pipeline is mlops.api.run_pipeline
    assert mlops.Outcome is Outcome
    with pytest.raises(AttributeError):
        _ = mlops.no_such_name
    probe = "import sys, mlops, mlops.runtime; print('mlops.api' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_arguments_are_typed_and_checked():
    training = pipeline_named("training")
    arguments = pipeline_arguments(
        training, {**REQUIRED, "min_accuracy": "0.9", "seed": 7, "use_checked_in_model": "false"}
    )
    assert arguments["min_accuracy"] == 0.9 and arguments["seed"] == 7
    assert arguments["use_checked_in_model"] is False
    assert pipeline_arguments(training, {**REQUIRED, "min_accuracy": 1})["min_accuracy"] == 1.0
    with pytest.raises(UsageError, match="unknown parameter 'min_acuracy'; parameters are: .*"):
        pipeline_arguments(training, {**REQUIRED, "min_acuracy": 0.9})
    with pytest.raises(UsageError, match="missing required parameter.*holdout_uri"):
        pipeline_arguments(training, {"data_uri": "d.csv"})
    with pytest.raises(UsageError, match="seed='seven' is not a valid integer"):
        pipeline_arguments(training, {**REQUIRED, "seed": "seven"})
    with pytest.raises(UsageError, match="seed=True is not a valid integer"):
        pipeline_arguments(training, {**REQUIRED, "seed": True})


def test_run_pipeline_refuses_bad_input_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    with pytest.raises(UsageError, match="unknown pipeline 'trainig'; pipelines are: training"):
        mlops.run_pipeline("trainig", **REQUIRED)
    with pytest.raises(UsageError, match="unknown parameter 'dat_uri'"):
        mlops.run_pipeline("training", dat_uri="d.csv", holdout_uri="h.csv")
    with pytest.raises(UsageError, match="must be an http:// or https:// URL"):
        mlops.run_pipeline("training", host="kfp.example:8080", **REQUIRED)
    with pytest.raises(UsageError, match="a schedule needs a cluster"):
        mlops.schedule_pipeline("monitoring", cron="0 0 3 * * *", model_name="m")
    assert not list(tmp_path.iterdir()), "nothing may start (no store, no keys) on bad input"


def test_cluster_checks_its_options_and_hides_the_token(tmp_path):
    cluster = Cluster("http://kfp.example", token="secret-token-value")
    assert "secret-token-value" not in repr(cluster)
    with pytest.raises(UsageError, match="give one credential"):
        Cluster("http://kfp.example", token="t", in_cluster_token=True)
    with pytest.raises(UsageError, match="token file .* does not exist"):
        Cluster("http://kfp.example", token_file=tmp_path / "missing")
    with pytest.raises(UsageError, match="differs from the cluster"):
        mlops.run_pipeline("training", host="http://other", cluster=cluster, **REQUIRED)


def test_outcome_fields_and_exit_codes():
    outcome = Outcome.from_dict(
        "training",
        {
            "status": "rejected",
            "candidate_version": "v1",
            "model_name": "m",
            "metrics": {"holdout_accuracy": 0.5},
            "gates": {"holdout_accuracy": {"passed": False, "detail": "0.5 < 0.9"}},
            "repository": {"uri": "builtin:logistic_regression", "tree_digest": "sha256:ab"},
        },
    )
    assert outcome.status == "rejected" and not outcome.released
    assert outcome.exit_code == EXIT_REJECTED and outcome.model_version == "v1"
    assert outcome.metrics == {"holdout_accuracy": 0.5} and outcome.model_uri is None
    assert outcome.repository["uri"] == "builtin:logistic_regression"
    assert outcome.holdout_evaluation() is None  # no run folder
    assert Outcome.from_dict("training", {}).exit_code == 1  # unknown is a failure
    assert Outcome.from_dict("training", {"status": "submitted"}).exit_code == 0
    assert json.loads(json.dumps(outcome.to_dict())) == outcome.data


def test_outcome_html_escapes_every_value():
    hostile = "<script>alert(1)</script>"
    outcome = Outcome.from_dict(
        "training",
        {
            "status": "rejected",
            "model_name": hostile,
            "reason": f"gate {hostile}",
            "metrics": {hostile: 0.5},
            "gates": {hostile: {"passed": False, "detail": hostile}},
            "repository": {"uri": f"git+https://x/{hostile}", "tree_digest": hostile},
        },
    )
    page = outcome._repr_html_()
    assert "<script>" not in page and page.count("&lt;script&gt;") >= 5
    assert "<table>" in page and "FAIL" in page


def test_holdout_evaluation_is_read_from_the_local_run_folder(tmp_path):
    task = tmp_path / "validate-holdout"
    task.mkdir()
    metadata = {
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": "benign"}, {"displayName": "malignant"}],
            "rows": [{"row": [90, 0]}, {"row": [2, 51]}],
        },
        "confidenceMetrics": [
            {"confidenceThreshold": 0.9, "recall": 0.5, "falsePositiveRate": 0.0},
            {"confidenceThreshold": 0.1, "recall": 1.0, "falsePositiveRate": 0.2},
        ],
    }
    (task / "executor_output.json").write_text(
        json.dumps({"artifacts": {"classification": {"artifacts": [{"metadata": metadata}]}}})
    )
    outcome = Outcome.from_dict("training", {"status": "released", "run_dir": str(tmp_path)})
    evaluation = outcome.holdout_evaluation()
    assert evaluation == HoldoutEvaluation(
        labels=["benign", "malignant"],
        confusion_matrix=[[90, 0], [2, 51]],
        false_positive_rate=[0.0, 0.2],
        true_positive_rate=[0.5, 1.0],
        thresholds=[0.9, 0.1],
    )


def test_compile_pipeline_sets_every_image_and_the_serving_default(tmp_path):
    image = "registry.example/kfp-mlops@sha256:" + "0" * 64
    path = compile_pipeline(
        PIPELINES["monitoring"], tmp_path / "m.yaml", image=image, serving_image="reg/serve:1"
    )
    import yaml

    document = next(yaml.safe_load_all(path.read_text()))
    images = {e["container"]["image"] for e in document["deploymentSpec"]["executors"].values()}
    assert images == {image}
    serving = document["root"]["inputDefinitions"]["parameters"]["serving_image"]
    assert serving["defaultValue"] == "reg/serve:1"


@pytest.mark.parametrize("pipeline", ["training", "monitoring"])
def test_deciding_tasks_are_found_in_the_compiled_spec(pipeline):
    deciding = deciding_tasks(compile_documents(PIPELINES[pipeline])[0])
    assert deciding["publish-model"] == "released"
    assert deciding["Publish the signed model"] == "released"
    assert deciding["Record the rejection"] == "rejected"
    assert deciding["record-static-rejection"] == "rejected"
    if pipeline == "monitoring":
        assert deciding["record-no-drift"] == "no_drift"


def test_status_of_a_finished_run_comes_from_its_deciding_step():
    from types import SimpleNamespace as Run

    deciding = {"Publish the signed model": "released", "Record the rejection": "rejected"}

    def run(state, *tasks):
        details = [Run(display_name=name, state=task_state) for name, task_state in tasks]
        return Run(state=state, run_details=Run(task_details=details))

    assert status_of_run(run("SUCCEEDED", ("Publish the signed model", "SUCCEEDED")), deciding) == (
        "released"
    )
    skipped = run(
        "SUCCEEDED", ("Publish the signed model", "SKIPPED"), ("Record the rejection", "SUCCEEDED")
    )
    assert status_of_run(skipped, deciding) == "rejected"
    assert status_of_run(run("FAILED", ("Publish the signed model", "SUCCEEDED")), deciding) == (
        "failed"
    )
    assert status_of_run(run("SUCCEEDED"), deciding) == "unknown"


def test_unreachable_cluster_is_a_typed_error():
    cluster = Cluster("http://127.0.0.1:9", namespace="team-a")
    with pytest.raises(MlopsError, match="cannot reach the KFP API at http://127.0.0.1:9"):
        mlops.list_schedules(cluster)
