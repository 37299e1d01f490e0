"""The public Python API: run, submit and schedule the pipelines from Python or Jupyter.

``mlops run``, ``mlops schedule`` and the notebooks all call these functions::

    from mlops import Cluster, run_pipeline

    outcome = run_pipeline("training", data_uri="train.csv", holdout_uri="holdout.csv",
                           target_column="diagnosis", model_name="breast-cancer")
    outcome            # a table in Jupyter: status, model, gates, metrics
    outcome.metrics["holdout_accuracy"], outcome.model_uri

    cluster = Cluster("http://localhost:8080", namespace="kubeflow-user-example-com",
                      service_account="mlops-pipeline", image="REGISTRY/kfp-mlops@sha256:...")
    run_pipeline("training", cluster=cluster, wait=True, data_uri="s3://...", ...)

Errors are the project's typed exceptions (:mod:`mlops.core.errors`) with the
CLI's messages: ``UsageError`` for bad input (nothing ran), ``TaskFailed`` for a
failed local step, ``MlopsError`` for an unreachable cluster.
"""

from mlops.api.cluster import Cluster
from mlops.api.compiling import compile_pipeline
from mlops.api.outcome import HoldoutEvaluation, Outcome
from mlops.api.runs import pipeline_named, run_pipeline, schedule_pipeline
from mlops.api.schedules import (
    Schedule,
    delete_schedule,
    list_schedules,
    parse_cron,
    pause_schedule,
    resume_schedule,
)

__all__ = [
    "Cluster",
    "HoldoutEvaluation",
    "Outcome",
    "Schedule",
    "compile_pipeline",
    "delete_schedule",
    "list_schedules",
    "parse_cron",
    "pause_schedule",
    "pipeline_named",
    "resume_schedule",
    "run_pipeline",
    "schedule_pipeline",
]
