"""The ``monitoring`` pipeline (recurring): drift and live quality, then retrain on current labelled data.

Triggers: dataset drift, or the stable version's live accuracy (inference logs
joined with feedback labels) below the model's threshold, either one. Retraining
uses what is current: the labelled production rows of a window, the newest slice
of them as the holdout, and releases only past every gate (the champion gate
included) as a canary. Too few labels is its own outcome; production stays as is.
"""

from kfp import dsl

from components.build_retraining_data import build_retraining_data
from components.check_drift import check_drift
from components.check_quality import check_quality
from components.decide_retraining import decide_retraining
from components.record_no_drift import record_no_drift
from pipelines._cluster import live, uses_store
from pipelines.training import training


@dsl.pipeline(
    name="retrain-on-current-data",
    description="Build the retraining set from labelled production rows and, when there is enough "
    "ground truth, run the training pipeline on it.",
)
def retrain_on_current_data(
    model_name: str,
    trigger: str,
    target_column: str,
    drop_columns: str,
    categorical_columns: str,
    recipe_uri: str,
    retrain_window_hours: float = 168.0,
    holdout_hours: float = 24.0,
    retrain_data_uri: str = "",
    holdout_uri: str = "",
    min_train_rows: int = 100,
    min_holdout_rows: int = 30,
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
    """Retrains on the labelled window, or records that there was not enough ground truth.

    Args:
        model_name: The deployed model (registry name: lowercase letters, digits and '-').
        trigger: JSON of why retraining was decided.
        target_column: The deployed model's label column.
        drop_columns: The deployed model's dropped columns (comma-separated).
        categorical_columns: The deployed model's declared categorical columns (comma-separated).
        recipe_uri: The deployed model's repository at its recorded commit
            (git+https://...@SHA, git+file://, a folder, s3:// prefix or builtin:NAME).
        retrain_window_hours: Hours of labelled production rows to train on, > 0.
        holdout_hours: The newest hours of the window that form the holdout, > 0.
        retrain_data_uri: Base table unioned with the labelled rows ('' = none): CSV or
            Parquet, a path, file:// or s3://bucket/key.
        holdout_uri: Fixed holdout table ('' = the newest labelled slice): a path,
            file:// or s3://bucket/key.
        min_train_rows: Fewest labelled training rows worth retraining (0 = base data may do).
        min_holdout_rows: Fewest holdout rows worth a verdict.
        min_accuracy: Holdout accuracy threshold in [0, 1] (-1 = mlops.yaml's, else 0.8).
        max_regression: How far below production's score the candidate may be, in [0, 1].
        champion_metric: What the champion is compared on: accuracy or f1_macro.
        test_size: Fraction of rows in the test split, in (0, 1).
        seed: Random seed.
        advisory_db_uri: Offline advisory database ('' = none).
        allow_unknown_audit: Let an audit that could not check pass.
        canary_percent: Canary share of traffic in percent, 1-99.
        deploy_target: kserve or local.
        namespace: Kubernetes namespace of the InferenceService.
        serving_image: Predictor image ('' = the project's).
    """
    data = live(
        uses_store(
            build_retraining_data(
                model_name=model_name,
                trigger=trigger,
                retrain_window_hours=retrain_window_hours,
                holdout_hours=holdout_hours,
                base_data_uri=retrain_data_uri,
                holdout_uri=holdout_uri,
                min_train_rows=min_train_rows,
                min_holdout_rows=min_holdout_rows,
            )
        )
    )
    data.set_display_name("Build the retraining set from labelled production rows")
    with dsl.If(data.outputs["enough"] == True, name="enough-ground-truth"):  # noqa: E712
        retrained = training(
            data_uri=data.outputs["train_uri"],
            target_column=target_column,
            holdout_uri=data.outputs["holdout_uri"],
            model_name=model_name,
            min_accuracy=min_accuracy,
            max_regression=max_regression,
            champion_metric=champion_metric,
            drop_columns=drop_columns,
            categorical_columns=categorical_columns,
            recipe_uri=recipe_uri,
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
            trigger=data.outputs["trigger"],
        )
        retrained.set_display_name("Retrain the deployed model's repository, gate, canary")
    with dsl.Else(name="not-enough-ground-truth"):
        short = live(uses_store(record_no_drift(trigger=data.outputs["trigger"])))
        short.set_display_name("Record: not enough ground truth, production unchanged")
    return dsl.OneOf(retrained.output, short.output)


@dsl.pipeline(
    name="monitoring",
    description="Check production data for drift against the deployed model's training sample and "
    "its live accuracy on labelled feedback; on either, retrain on current labelled data with "
    "the model's repository, run every gate, and release as a canary only when all pass. "
    "Production stays untouched otherwise.",
)
def monitoring(
    model_name: str,
    retrain_data_uri: str = "",
    holdout_uri: str = "",
    current_uri: str = "",
    window_hours: float = 24.0,
    drift_share_threshold: float = 0.5,
    quality_window_hours: float = 24.0,
    min_labelled_rows: int = 50,
    retrain_window_hours: float = 168.0,
    holdout_hours: float = 24.0,
    min_train_rows: int = 100,
    min_holdout_rows: int = 30,
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
    """Returns the outcome JSON: no_drift, not_enough_ground_truth, released or rejected, with the trigger.

    Args:
        model_name: The deployed model to watch (registry name, lowercase letters,
            digits and '-'); its training sample is the drift reference.
        retrain_data_uri: Base table unioned with the labelled production rows when
            retraining ('' = none): CSV or Parquet, a path, file:// or s3://bucket/key.
        holdout_uri: Fixed labelled holdout table the retrained candidate must pass
            ('' = the newest holdout_hours of labelled production rows): CSV or Parquet,
            a path, file:// or s3://bucket/key.
        current_uri: Production table to check for drift ('' = the model's inference
            logs of the last window_hours).
        window_hours: Hours of inference logs checked for drift when current_uri is '', > 0.
        drift_share_threshold: Share of drifted feature columns that means drift, in (0, 1].
        quality_window_hours: Hours of labelled predictions scored for live accuracy, > 0.
        min_labelled_rows: Labelled rows the stable version needs before its live
            accuracy can trigger retraining.
        retrain_window_hours: Hours of labelled production rows retraining uses, > 0.
        holdout_hours: The newest hours of that window that form the holdout, > 0.
        min_train_rows: Fewest labelled training rows worth retraining; fewer is the
            "not enough ground truth" outcome (0 = the base table alone may do).
        min_holdout_rows: Fewest labelled holdout rows worth a verdict.
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
    quality = live(
        uses_store(
            check_quality(
                model_name=model_name,
                window_hours=quality_window_hours,
                min_rows=min_labelled_rows,
            )
        )
    )
    quality.set_display_name("Live accuracy on labelled feedback")
    decision = live(
        decide_retraining(
            drift_summary=drift.outputs["summary"], quality_summary=quality.outputs["summary"]
        )
    )
    decision.set_display_name("Decide: drift or accuracy below threshold?")
    with dsl.If(decision.outputs["retrain"] == True, name="retraining-triggered"):  # noqa: E712
        retrained = retrain_on_current_data(
            model_name=model_name,
            trigger=decision.outputs["trigger"],
            target_column=drift.outputs["target_column"],
            drop_columns=drift.outputs["drop_columns"],
            categorical_columns=drift.outputs["categorical_columns"],
            recipe_uri=drift.outputs["recipe_uri"],
            retrain_window_hours=retrain_window_hours,
            holdout_hours=holdout_hours,
            retrain_data_uri=retrain_data_uri,
            holdout_uri=holdout_uri,
            min_train_rows=min_train_rows,
            min_holdout_rows=min_holdout_rows,
            min_accuracy=min_accuracy,
            max_regression=max_regression,
            champion_metric=champion_metric,
            test_size=test_size,
            seed=seed,
            advisory_db_uri=advisory_db_uri,
            allow_unknown_audit=allow_unknown_audit,
            canary_percent=canary_percent,
            deploy_target=deploy_target,
            namespace=namespace,
            serving_image=serving_image,
        )
        retrained.set_display_name("Retrain on current labelled data")
    with dsl.Else(name="no-trigger"):
        unchanged = live(uses_store(record_no_drift(trigger=decision.outputs["trigger"])))
        unchanged.set_display_name("Record: no drift, production unchanged")
    return dsl.OneOf(retrained.output, unchanged.output)
