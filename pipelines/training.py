"""The ``training`` pipeline: split, train, gate, sign, publish, deploy."""

from kfp import dsl

from components.audit_dependencies import audit_dependencies
from components.check_code_quality import check_code_quality
from components.decide_release import decide_release
from components.deploy_model import deploy_model
from components.load_split import load_split
from components.publish_model import publish_model
from components.record_rejection import record_rejection
from components.scan_model import scan_model
from components.sign_model import sign_model
from components.train_model import train_model
from components.validate_holdout import validate_holdout
from pipelines._cluster import live, uses_private_key, uses_public_key, uses_store


@dsl.pipeline(
    name="training",
    description="Train a scikit-learn model, validate it on an independent holdout, run the "
    "trust gates, and publish (and optionally deploy) it only when every gate passes.",
)
def training(
    data_uri: str,
    target_column: str,
    holdout_uri: str,
    model_name: str,
    min_accuracy: float = 0.8,
    drop_columns: str = "",
    categorical_columns: str = "",
    estimator: str = "logistic_regression",
    test_size: float = 0.2,
    seed: int = 42,
    advisory_db_uri: str = "",
    allow_unknown_audit: bool = False,
    quality_paths: str = "components,serving",
    quality_fail_on: str = "medium",
    deploy: str = "none",
    canary_percent: int = 10,
    deploy_target: str = "kserve",
    namespace: str = "kubeflow-user",
    serving_image: str = "",
    trigger: str = "",
) -> str:
    """Returns the outcome JSON (status released or rejected, gates, metrics).

    ``categorical_columns`` (comma-separated) are features that are categorical
    whatever their values look like; any other column whose values are mostly
    numbers must be all numbers (a stray ``abc`` is a data error, not a new type).

    ``serving_image`` is the predictor image of the InferenceService ('' = the
    project's serving image, ``mlops.runtime.SERVING_IMAGE``).

    ``trigger`` is kept in the outcome: the monitoring pipeline passes its drift
    summary, so every retrained release records why it happened.
    """
    split = live(
        uses_store(
            load_split(
                data_uri=data_uri,
                target_column=target_column,
                drop_columns=drop_columns,
                categorical_columns=categorical_columns,
                test_size=test_size,
                seed=seed,
            )
        )
    )
    trained = live(
        train_model(
            train_data=split.outputs["train_data"],
            test_data=split.outputs["test_data"],
            target_column=target_column,
            model_name=model_name,
            estimator=estimator,
            drop_columns=drop_columns,
            categorical_columns=categorical_columns,
            data_fingerprint=split.outputs["data_fingerprint"],
            seed=seed,
        )
    )
    holdout = live(
        uses_store(
            validate_holdout(
                model=trained.outputs["model"],
                train_data=split.outputs["train_data"],
                holdout_uri=holdout_uri,
                min_accuracy=min_accuracy,
            )
        )
    )
    audit = live(
        uses_store(
            audit_dependencies(
                model=trained.outputs["model"],
                advisory_db_uri=advisory_db_uri,
                allow_unknown_audit=allow_unknown_audit,
            )
        )
    )
    scan = live(scan_model(model=trained.outputs["model"]))
    quality = live(check_code_quality(paths=quality_paths, fail_on=quality_fail_on))
    signed = live(uses_public_key(uses_private_key(sign_model(model=trained.outputs["model"]))))
    decision = live(
        decide_release(
            holdout_gate=holdout.outputs["gate"],
            audit_gate=audit.outputs["gate"],
            scan_gate=scan.outputs["gate"],
            quality_gate=quality.outputs["gate"],
            signature_gate=signed.outputs["gate"],
        )
    )

    with dsl.If(decision.outputs["passed"] == True, name="all-gates-passed"):  # noqa: E712
        published = live(
            uses_public_key(
                uses_store(
                    publish_model(
                        signed_model=signed.outputs["signed_model"],
                        gates=decision.outputs["gates"],
                        trigger=trigger,
                    )
                )
            )
        )
        with dsl.If(deploy != "none", name="deploy-requested"):
            live(
                uses_public_key(
                    uses_store(
                        deploy_model(
                            model_name=model_name,
                            model_uri=published.outputs["model_uri"],
                            model_version=published.outputs["model_version"],
                            mode=deploy,
                            canary_percent=canary_percent,
                            target=deploy_target,
                            namespace=namespace,
                            image=serving_image,
                        )
                    )
                )
            )
    with dsl.Else(name="gate-failed"):
        rejected = live(
            uses_store(
                record_rejection(
                    model=trained.outputs["model"], gates=decision.outputs["gates"], trigger=trigger
                )
            )
        )
    return dsl.OneOf(published.outputs["outcome"], rejected.outputs["Output"])
