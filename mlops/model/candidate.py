"""A release candidate: one trained, scored and packaged (unsigned) model directory.

:func:`train_candidate` is the whole training step of the pipeline in one call,
so the ``train_model`` component only hands over its artifact paths. The model
comes from the data scientist's repository (see :mod:`mlops.repository.config`):
either its entry point builds an estimator, which a child process without the
project's secrets fits on the training split (:mod:`mlops.model.fit_recipe`), or
``mlops.yaml`` names a checked-in ``.skops`` model, which is loaded with the
trusted-type allow-list and checked against the data; no repository code runs then.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.core.data import fingerprint, parse_columns
from mlops.core.errors import DataError
from mlops.model.packaging import MODEL_FILE, write_model_dir
from mlops.model.registry import new_version, validate_model_name
from mlops.model.schema import FeatureSchema

logger = logging.getLogger(__name__)

FRAMEWORK = "scikit-learn"
FIT_MODULE = "mlops.model.fit_recipe"


@dataclass(frozen=True)
class Candidate:
    """A model directory written by :func:`train_candidate`, not yet gated or signed.

    Attributes:
        model_dir: The directory holding the model files.
        model_name: Registry name of the model.
        version: Version id the candidate would be published under.
        estimator: What was fitted (``Pipeline[HistGradientBoostingClassifier]``).
        metrics: Test-split scores (``test_accuracy``, ``test_f1_macro``, ...).
        retrained: False when the repository's checked-in model was used as is.
    """

    model_dir: Path
    model_name: str
    version: str
    estimator: str
    metrics: dict[str, float] = field(default_factory=dict)
    retrained: bool = True

    def summary(self) -> dict[str, str]:
        """Name, version, estimator and framework: what a pipeline shows next to the model."""
        return {
            "model_name": self.model_name,
            "version": self.version,
            "estimator": self.estimator,
            "framework": FRAMEWORK,
            "source": "trained by the entry point" if self.retrained else "checked-in model",
        }


@dataclass(frozen=True)
class _Fitted:
    """What training produced: the saved model file, its classes, test scores and name."""

    model_file: Path
    classes: list[Any]
    metrics: dict[str, float]
    estimator: str
    schema: FeatureSchema


def train_candidate(
    train_path: str | Path,
    test_path: str | Path,
    model_dir: str | Path,
    repo_dir: str | Path,
    *,
    target_column: str,
    model_name: str,
    drop_columns: str = "",
    categorical_columns: str = "",
    data_fingerprint: str = "",
    seed: int = 42,
    repository: dict[str, Any] | None = None,
    use_checked_in_model: bool = True,
) -> Candidate:
    """Trains (or adopts) the repository's model, scores it on the test split, writes the model directory.

    Args:
        train_path: Training split (Parquet).
        test_path: Test split (Parquet).
        model_dir: Where the model directory goes (created if missing).
        repo_dir: The fetched model repository (``mlops.yaml`` at its root).
        target_column: Label column.
        model_name: Registry name of the model.
        drop_columns: Comma-separated columns dropped before training (kept in the recipe).
        categorical_columns: Comma-separated columns that are categorical whatever
            their values look like (kept in the recipe, so retraining types them the same way).
        data_fingerprint: Fingerprint of the full dataset (kept in the metadata).
        seed: Random seed of the reference sample; passed to the entry point as
            ``params["seed"]`` unless ``mlops.yaml`` sets one.
        repository: Where the repository came from (URL, commit, tree digest), recorded.
        use_checked_in_model: Use the model ``mlops.yaml`` names, when it names one;
            False always trains with the entry point (retraining does).

    Returns:
        The candidate.

    Raises:
        UsageError: The model name or ``mlops.yaml`` is invalid, or the repository's
            code failed (its module or function is missing, it raised, it returned
            something that is not a classifier).
        DataError: The splits lack the target or a feature, or a checked-in model's
            features do not match the data.
    """
    from mlops.repository.config import load_config, model_path

    validate_model_name(model_name)
    repo_dir = Path(repo_dir)
    config = load_config(repo_dir)  # a bad mlops.yaml fails before any data is read
    train_frame = pd.read_parquet(train_path)
    declared = parse_columns(categorical_columns)
    features = train_frame.drop(columns=[target_column])
    checked_in = model_path(repo_dir, config) if use_checked_in_model else None
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if checked_in is not None:
        test_frame = pd.read_parquet(test_path)  # read once: facts and the adoption check
        facts = _split_facts(train_frame, test_frame, target_column)
        fitted = _adopt(checked_in, features, declared, test_frame, target_column, model_dir)
        params: dict[str, Any] = {}
    else:
        schema = FeatureSchema.from_frame(features, categorical=declared)
        params = {"seed": seed, **config.params}
        with _FitInChild(
            repo_dir, config.entry_point, params, schema, train_path, test_path, target_column
        ) as fitting:
            # The child spends seconds importing, reading and fitting: the facts about
            # the splits are worked out meanwhile, on the other core.
            facts = _split_facts(train_frame, pd.read_parquet(test_path), target_column)
            fitted = fitting.result(model_dir)
    version = new_version()
    write_model_dir(
        model_dir,
        None,
        model_file=fitted.model_file,
        classes=fitted.classes,
        model_name=model_name,
        version=version,
        schema=fitted.schema,
        target_column=target_column,
        estimator=fitted.estimator,
        drop_columns=parse_columns(drop_columns),
        metrics=fitted.metrics,
        fingerprints={"data": data_fingerprint, **facts["fingerprints"]},
        train_features=features[list(fitted.schema.names)],
        params={"seed": seed, "categorical_columns": declared},
        seed=seed,
        recipe={
            "entry_point": config.entry_point,
            "params": params,
            "checked_in_model": config.model if checked_in is not None else None,
        },
        repository=repository or {},
        label_counts=facts["label_counts"],
    )
    logger.info("candidate %s %s: %s", model_name, version, fitted.metrics)
    return Candidate(
        model_dir, model_name, version, fitted.estimator, fitted.metrics, checked_in is None
    )


def _counts(labels: pd.Series) -> dict[str, int]:
    """Rows per class, keyed by the label as text (JSON keys are text)."""
    return {str(label): int(count) for label, count in labels.value_counts().items()}


def _split_facts(train: pd.DataFrame, test: pd.DataFrame, target_column: str) -> dict[str, Any]:
    """Fingerprints and rows per class of both splits, as the metadata records them."""
    return {
        "fingerprints": {"train": fingerprint(train), "test": fingerprint(test)},
        "label_counts": {
            "train": _counts(train[target_column]),
            "test": _counts(test[target_column]),
        },
    }


class _FitInChild:
    """The entry point fitted in a clean child process (:mod:`mlops.model.fit_recipe`).

    Entering starts the child; :meth:`result` waits for it; leaving ends it if it
    still runs (the parent failed meanwhile) and removes its working folder.
    """

    def __init__(
        self,
        repo_dir: Path,
        entry_point: str,
        params: dict[str, Any],
        schema: FeatureSchema,
        train_path: str | Path,
        test_path: str | Path,
        target_column: str,
    ) -> None:
        self._request = {
            "repo_dir": str(repo_dir.resolve()),
            "entry_point": entry_point,
            "params": params,
            "target_column": target_column,
            "schema": schema.to_metadata(),
        }
        self._schema = schema
        self._paths = (Path(train_path), Path(test_path))
        self._work: tempfile.TemporaryDirectory[str] | None = None
        self._child: Any = None

    def __enter__(self) -> _FitInChild:
        from mlops.model.sandbox import start_child

        self._work = tempfile.TemporaryDirectory(prefix="mlops-fit-")
        work_dir = Path(self._work.name)
        # The child sees a copy of the splits in its own folder, not the task's artifact
        # paths (a hard link would let it change them).
        train, test = work_dir / "train.parquet", work_dir / "test.parquet"
        shutil.copyfile(self._paths[0], train)
        shutil.copyfile(self._paths[1], test)
        request = {
            **self._request,
            "train_path": str(train),
            "test_path": str(test),
            "model_path": str(work_dir / MODEL_FILE),
        }
        self._child = start_child(FIT_MODULE, request, work_dir)
        return self

    def result(self, model_dir: Path) -> _Fitted:
        """Waits for the child; the fitted model moved into ``model_dir``."""
        assert self._child is not None and self._work is not None, "use it in a with block"
        result = self._child.result()
        model_file = model_dir / MODEL_FILE
        shutil.move(Path(self._work.name) / MODEL_FILE, model_file)
        return _Fitted(
            model_file, result["classes"], result["metrics"], result["estimator"], self._schema
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._child is not None:
            self._child.stop()
        if self._work is not None:
            self._work.cleanup()


def _adopt(
    checked_in: Path,
    features: pd.DataFrame,
    declared: list[str],
    test_frame: pd.DataFrame,
    target_column: str,
    model_dir: Path,
) -> _Fitted:
    """Loads the repository's checked-in model (trusted types only) and checks it fits the data.

    Raises:
        DataError: it records no feature names, expects features the data lacks, or
            does not know every class of the test split.
        VerificationError: the file holds types outside the allow-list.
    """
    from mlops.model.fit_recipe import describe
    from mlops.model.modelio import load_model
    from mlops.model.training import evaluate

    model = load_model(checked_in)
    names = [str(n) for n in getattr(model, "feature_names_in_", [])]
    if not names:
        raise DataError(
            f"checked-in model {checked_in.name} does not record its feature names "
            "(fit it on a pandas DataFrame)"
        )
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise DataError(
            f"checked-in model {checked_in.name} expects feature(s) the training data "
            f"lacks: {', '.join(missing)}"
        )
    schema = FeatureSchema.from_frame(
        features[names], categorical=[n for n in declared if n in names]
    )
    unknown = sorted(set(test_frame[target_column].unique()) - set(model.classes_), key=str)
    if unknown:
        raise DataError(
            f"checked-in model {checked_in.name} does not know class(es) of the data: "
            f"{', '.join(map(repr, unknown))}"
        )
    evaluation = evaluate(model, test_frame, target_column, schema, source="test split")
    model_file = model_dir / MODEL_FILE
    shutil.copyfile(checked_in, model_file)  # the reviewed file itself, not a re-dump
    classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    return _Fitted(model_file, classes, evaluation.metrics("test"), describe(model), schema)
