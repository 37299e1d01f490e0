"""The ``training`` pipeline: fetch the model repository, static gates, then train, gate, sign, publish.

Shift left: the gates that need no execution (code quality, dependency audit, the
scan of a checked-in model) run on the fetched repository first, as their own
step group; only when all of them pass does any of the repository's code run
(the training step, in a process without the project's secrets). A failed static
gate ends the run with a rejection record and no training step at all.
"""

from typing import NamedTuple

from kfp import dsl

from components.audit_dependencies import audit_dependencies
from components.check_code_quality import check_code_quality
from components.decide_release import decide_release
from components.decide_static import decide_static
from components.deploy_model import deploy_model
from components.fetch_repository import fetch_repository
from components.load_split import load_split
from components.publish_model import publish_model
from components.record_rejection import record_rejection
from components.record_static_rejection import record_static_rejection
from components.scan_model import scan_model
from components.scan_repository import scan_repository
from components.sign_model import sign_model
from components.train_model import train_model
from components.validate_holdout import validate_holdout
from pipelines._cluster import (
    live,
    uses_git_credentials,
    uses_private_key,
    uses_public_key,
    uses_store,
)


class StaticGates(NamedTuple):
    """The static-gates group's outputs: the verdict and the gates' decision JSON."""

    passed: bool
    gates: str


@dsl.pipeline(
    name="static-gates",
    description="Code quality, dependency audit and model-file scan of the repository, "
    "before any of its code runs.",
)
def static_gates(
    repository: dsl.Input[dsl.Artifact],
    advisory_db_uri: str = "",
    allow_unknown_audit: bool = False,
    quality_fail_on: str = "medium",
) -> StaticGates:
    """Runs the gates that read the repository without executing it.

    Args:
        repository: The fetched repository.
        advisory_db_uri: Offline advisory database for the audit ('' = none).
        allow_unknown_audit: Let an audit that could not check pass (never a vulnerable one).
        quality_fail_on: Lowest finding severity that fails code quality: low, medium or high.
    """
    quality = live(check_code_quality(repository=repository, fail_on=quality_fail_on))
    quality.set_display_name("Code quality of the repository (ruff, bandit)")
    audit = live(
        uses_store(
            audit_dependencies(
                repository=repository,
                advisory_db_uri=advisory_db_uri,
                allow_unknown_audit=allow_unknown_audit,
            )
        )
    )
    audit.set_display_name("Audit the repository's requirements with the serving image")
    scan = live(scan_repository(repository=repository))
    scan.set_display_name("Scan a checked-in model file")
    decision = live(
        decide_static(
            quality_gate=quality.outputs["gate"],
            audit_gate=audit.outputs["gate"],
            scan_gate=scan.outputs["gate"],
        )
    )
    decision.set_display_name("Decide: may the repository's code run?")
    return StaticGates(passed=decision.outputs["passed"], gates=decision.outputs["gates"])


@dsl.pipeline(
    name="train-and-release",
    description="Split, train with the repository's entry point, gate the candidate, sign, "
    "publish and deploy it only when every gate passes.",
)
def train_and_release(
    repository: dsl.Input[dsl.Artifact],
    source: str,
    static_gates_json: str,
    data_uri: str,
    target_column: str,
    holdout_uri: str,
    model_name: str,
    min_accuracy: float,
    drop_columns: str = "",
    categorical_columns: str = "",
    use_checked_in_model: bool = True,
    max_regression: float = 0.0,
    champion_metric: str = "accuracy",
    test_size: float = 0.2,
    seed: int = 42,
    deploy: str = "none",
    canary_percent: int = 10,
    deploy_target: str = "kserve",
    namespace: str = "kubeflow-user",
    serving_image: str = "",
    trigger: str = "",
) -> str:
    """Trains, gates and releases the candidate; returns the outcome JSON.

    Args:
        repository: The fetched repository (its static gates passed).
        source: Repository record JSON of the fetch step.
        static_gates_json: Decision JSON of the static gates (kept in the outcome).
        data_uri: Training table: CSV or Parquet, a path, file:// or s3://bucket/key.
        target_column: Label column.
        holdout_uri: Independent labelled holdout table (path, file:// or s3://).
        model_name: Registry name, lowercase letters, digits and '-'.
        min_accuracy: Holdout accuracy threshold in [0, 1].
        drop_columns: Comma-separated columns dropped before training.
        categorical_columns: Comma-separated columns that are categorical.
        use_checked_in_model: Use the model mlops.yaml names, if any.
        max_regression: How far below the production champion's score the candidate may be.
        champion_metric: accuracy or f1_macro, what the champion is compared on.
        test_size: Test split fraction in (0, 1).
        seed: Random seed.
        deploy: none, full, or a candidate routed by canary, sticky, cohort or shadow.
        canary_percent: Canary share of traffic in percent, 1-99.
        deploy_target: kserve or local.
        namespace: Kubernetes namespace of the InferenceService.
        serving_image: Predictor image ('' = the project's serving image).
        trigger: JSON saying why the run happened.
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
    split.set_display_name("Load and split the training data")
    # No store credentials and no key here: this task runs the repository's code.
    trained = live(
        train_model(
            train_data=split.outputs["train_data"],
            test_data=split.outputs["test_data"],
            repository=repository,
            target_column=target_column,
            model_name=model_name,
            drop_columns=drop_columns,
            categorical_columns=categorical_columns,
            data_fingerprint=split.outputs["data_fingerprint"],
            seed=seed,
            source=source,
            use_checked_in_model=use_checked_in_model,
        )
    )
    trained.set_display_name("Train with the repository's entry point")
    scan = live(scan_model(model=trained.outputs["model"]))
    scan.set_display_name("Scan the trained model (trusted types only)")
    holdout = live(
        uses_public_key(
            uses_store(
                validate_holdout(
                    model=trained.outputs["model"],
                    train_data=split.outputs["train_data"],
                    holdout_uri=holdout_uri,
                    min_accuracy=min_accuracy,
                    max_regression=max_regression,
                    champion_metric=champion_metric,
                )
            )
        )
    )
    holdout.set_display_name("Validate on the independent holdout, against the champion")
    decision = live(
        decide_release(
            static_gates=static_gates_json,
            scan_gate=scan.outputs["gate"],
            holdout_gate=holdout.outputs["gate"],
            regression_gate=holdout.outputs["regression_gate"],
        )
    )
    decision.set_display_name("Decide the release")

    with dsl.If(decision.outputs["passed"] == True, name="all-gates-passed"):  # noqa: E712
        # Signed only now: a signature on a folder means it passed, and says so in release.json.
        signed = live(
            uses_public_key(
                uses_private_key(
                    sign_model(
                        model=trained.outputs["model"],
                        gates=decision.outputs["gates"],
                        holdout_fingerprint=holdout.outputs["holdout_fingerprint"],
                        max_regression=max_regression,
                        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                        serving_image=serving_image,
                        trigger=trigger,
                    )
                )
            )
        )
        signed.set_display_name("Write the release evidence and sign")
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
        published.set_display_name("Publish the signed model")
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
            ).set_display_name("Deploy (verify the signature and evidence, roll out)")
    with dsl.Else(name="gate-failed"):
        rejected = live(
            uses_store(
                record_rejection(
                    model=trained.outputs["model"], gates=decision.outputs["gates"], trigger=trigger
                )
            )
        )
        rejected.set_display_name("Record the rejection")
    return dsl.OneOf(published.outputs["outcome"], rejected.outputs["Output"])


@dsl.pipeline(
    name="training",
    description="Validate a data scientist's model repository: static gates on its code and "
    "requirements first, then train it, validate it on an independent holdout, scan and sign "
    "it, and publish (and optionally deploy) it only when every gate passes.",
)
def training(
    data_uri: str,
    holdout_uri: str,
    recipe_uri: str = "",
    target_column: str = "",
    model_name: str = "",
    min_accuracy: float = -1.0,
    drop_columns: str = "",
    categorical_columns: str = "",
    estimator: str = "logistic_regression",
    use_checked_in_model: bool = True,
    max_regression: float = 0.0,
    champion_metric: str = "accuracy",
    test_size: float = 0.2,
    seed: int = 42,
    advisory_db_uri: str = "",
    allow_unknown_audit: bool = False,
    quality_fail_on: str = "medium",
    deploy: str = "none",
    canary_percent: int = 10,
    deploy_target: str = "kserve",
    namespace: str = "kubeflow-user",
    serving_image: str = "",
    trigger: str = "",
) -> str:
    """Returns the outcome JSON (status released or rejected, gates, metrics, repository).

    Args:
        data_uri: Training table: CSV or Parquet, a path, file:// or s3://bucket/key.
        holdout_uri: Independent labelled holdout table the data scientist never used: CSV
            or Parquet, a path, file:// or s3://bucket/key.
        recipe_uri: The model repository: a folder, git+file:///repo.git@REF,
            git+https://host/org/repo.git@REF, s3://bucket/prefix/ or builtin:NAME
            ('' = builtin:<estimator>).
        target_column: Label column ('' = target of the repository's mlops.yaml).
        model_name: Registry name, lowercase letters, digits and '-' ('' = name of mlops.yaml).
        min_accuracy: Holdout accuracy threshold in [0, 1] (-1 = mlops.yaml's, else 0.8).
        drop_columns: Comma-separated columns dropped before training ('' = mlops.yaml's).
        categorical_columns: Comma-separated features that are categorical whatever
            their values look like ('' = mlops.yaml's); any other mostly-numeric column
            must be all numbers.
        estimator: Built-in recipe when recipe_uri is '': logistic_regression,
            random_forest or gradient_boosting.
        use_checked_in_model: Use the pre-trained .skops model mlops.yaml names, if any,
            instead of training (false: always train with the entry point).
        max_regression: Champion/challenger gate: how far below the deployed stable
            version's holdout score (same rows) the candidate may be, in [0, 1] (0.0: at
            least as good); the first release, with no champion, passes.
        champion_metric: What the champion is compared on: accuracy or f1_macro.
        test_size: Fraction of rows in the test split, in (0, 1).
        seed: Random seed of the split and of the entry point (params["seed"]).
        advisory_db_uri: Offline advisory database for the audit ('' = none).
        allow_unknown_audit: Let an audit that could not check pass (never a vulnerable one).
        quality_fail_on: Lowest code-quality finding severity that rejects: low, medium or high.
        deploy: After release: none, full, or a candidate by canary, sticky, cohort or shadow.
        canary_percent: Canary share of traffic in percent, 1-99.
        deploy_target: kserve (an InferenceService) or local (mlops serve).
        namespace: Kubernetes namespace of the InferenceService.
        serving_image: Predictor image of the InferenceService ('' = the project's).
        trigger: Kept in the outcome: the monitoring pipeline passes its drift summary,
            so every retrained release records why it happened.
    """
    repo = live(
        uses_git_credentials(
            uses_store(
                fetch_repository(
                    recipe_uri=recipe_uri,
                    estimator=estimator,
                    target_column=target_column,
                    model_name=model_name,
                    min_accuracy=min_accuracy,
                    drop_columns=drop_columns,
                    categorical_columns=categorical_columns,
                )
            )
        )
    )
    repo.set_display_name("Fetch the model repository (pinned commit)")
    static = static_gates(
        repository=repo.outputs["repository"],
        advisory_db_uri=advisory_db_uri,
        allow_unknown_audit=allow_unknown_audit,
        quality_fail_on=quality_fail_on,
    )
    static.set_display_name("Static gates (no repository code runs)")
    with dsl.If(static.outputs["passed"] == True, name="static-gates-passed"):  # noqa: E712
        released = train_and_release(
            repository=repo.outputs["repository"],
            source=repo.outputs["source"],
            static_gates_json=static.outputs["gates"],
            data_uri=data_uri,
            target_column=repo.outputs["target_column"],
            holdout_uri=holdout_uri,
            model_name=repo.outputs["model_name"],
            min_accuracy=repo.outputs["min_accuracy"],
            drop_columns=repo.outputs["drop_columns"],
            categorical_columns=repo.outputs["categorical_columns"],
            use_checked_in_model=use_checked_in_model,
            max_regression=max_regression,
            champion_metric=champion_metric,
            test_size=test_size,
            seed=seed,
            deploy=deploy,
            canary_percent=canary_percent,
            deploy_target=deploy_target,
            namespace=namespace,
            serving_image=serving_image,
            trigger=trigger,
        )
        released.set_display_name("Train, gate and release")
    with dsl.Else(name="static-gate-failed"):
        refused = live(
            uses_store(
                record_static_rejection(
                    model_name=repo.outputs["model_name"],
                    gates=static.outputs["gates"],
                    source=repo.outputs["source"],
                    trigger=trigger,
                )
            )
        )
        refused.set_display_name("Record the rejection (nothing was trained)")
    return dsl.OneOf(released.outputs["Output"], refused.outputs["Output"])
