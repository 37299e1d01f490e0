"""The ``monitoring`` pipeline (recurring): drift check, then retrain and release only past the gates."""

from kfp import dsl

from components.check_drift import check_drift
from components.record_no_drift import record_no_drift
from pipelines._cluster import live, uses_store
from pipelines.training import training


@dsl.pipeline(
    name="monitoring",
    description="Check production data for drift against the deployed model's training sample; on "
    "drift, retrain with the model's recipe, run every gate, and release as a canary only "
    "when all pass. Production stays untouched otherwise.",
)
def monitoring(
    model_name: str,
    retrain_data_uri: str,
    holdout_uri: str,
    current_uri: str = "",
    window_hours: float = 24.0,
    drift_share_threshold: float = 0.5,
    min_accuracy: float = -1.0,
    max_regression: float = 0.0,
    champion_metric: str = "accuracy",
    test_size: float = 0.2,
    seed: int = 42,
    advisory_db_uri: str = "",
    allow_unknown_audit: bool = False,
    canary_percent: int = 10,
    deploy_target: str = "kserve",
    namespace: str = "kubeflow-user",
    serving_image: str = "",
) -> str:
    """Returns the outcome JSON: status no_drift, released or rejected, with the drift summary.

    Args:
        model_name: The deployed model to watch (registry name, lowercase letters,
            digits and '-'); its training sample is the drift reference.
        retrain_data_uri: Training table for retraining on drift: CSV or Parquet, a
            path, file:// or s3://bucket/key.
        holdout_uri: Independent labelled holdout table the retrained candidate must pass:
            CSV or Parquet, a path, file:// or s3://bucket/key.
        current_uri: Production table to check ('' = the model's inference logs of
            the last window_hours).
        window_hours: Hours of inference logs checked when current_uri is '', > 0.
        drift_share_threshold: Share of drifted feature columns that means drift, in (0, 1].
        min_accuracy: Holdout accuracy threshold of the retrained model in [0, 1]
            (-1 = the repository's mlops.yaml, else 0.8).
        max_regression: How far below the deployed stable version's score on the same
            holdout the retrained model may be, in [0, 1] (0.0: never worse than production).
        champion_metric: What the champion is compared on: accuracy or f1_macro.
        test_size: Fraction of rows in the retraining test split, in (0, 1).
        seed: Random seed of the retraining split and of the entry point.
        advisory_db_uri: Offline advisory database for the dependency audit ('' = none).
        allow_unknown_audit: Let an audit that could not check pass (never a vulnerable one).
        canary_percent: Canary share of traffic in percent for the retrained model, 1-99.
        deploy_target: kserve (an InferenceService) or local (mlops serve).
        namespace: Kubernetes namespace of the InferenceService.
        serving_image: Predictor image of the InferenceService ('' = the project's).
    """
    drift = live(
        uses_store(
            check_drift(
                model_name=model_name,
                current_uri=current_uri,
                window_hours=window_hours,
                drift_share_threshold=drift_share_threshold,
            )
        )
    )
    drift.set_display_name("Check production data for drift")
    with dsl.If(drift.outputs["drift_detected"] == True, name="drift-detected"):  # noqa: E712
        retrained = training(
            data_uri=retrain_data_uri,
            target_column=drift.outputs["target_column"],
            holdout_uri=holdout_uri,
            model_name=model_name,
            min_accuracy=min_accuracy,
            max_regression=max_regression,
            champion_metric=champion_metric,
            drop_columns=drift.outputs["drop_columns"],
            categorical_columns=drift.outputs["categorical_columns"],
            recipe_uri=drift.outputs["recipe_uri"],
            # Retraining always runs the repository's entry point on the new data.
            use_checked_in_model=False,
            test_size=test_size,
            seed=seed,
            advisory_db_uri=advisory_db_uri,
            allow_unknown_audit=allow_unknown_audit,
            deploy="canary",
            canary_percent=canary_percent,
            deploy_target=deploy_target,
            namespace=namespace,
            serving_image=serving_image,
            trigger=drift.outputs["summary"],
        )
        retrained.set_display_name("Retrain the deployed model's repository, gate, canary")
    with dsl.Else(name="no-drift"):
        unchanged = live(uses_store(record_no_drift(drift_summary=drift.outputs["summary"])))
        unchanged.set_display_name("Record: no drift, production unchanged")
    return dsl.OneOf(retrained.output, unchanged.output)
