"""Splitting, training and scoring: the plain functions behind the training components.

The feature schema (kinds, ranges, categories) is decided here, once, from the
training split (:meth:`mlops.model.schema.FeatureSchema.from_frame`), and the model
is fitted and scored on :func:`mlops.model.schema.coerce` output, the same model
input serving, explanations and drift use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.data import parse_columns
from mlops.core.errors import DataError, UsageError
from mlops.core.rules import check_fraction
from mlops.model.data_checks import check_finite
from mlops.model.feature_quality import check_features
from mlops.model.schema import (
    CATEGORICAL,
    Feature,
    FeatureSchema,
    coerce,
    coerce_column,
    infer_kind,
)

logger = logging.getLogger(__name__)

ESTIMATORS = ("logistic_regression", "random_forest", "gradient_boosting")
MIN_ROWS_PER_CLASS = 2
#: Most points of the ROC curve an evaluation keeps (for the Kubeflow UI; the AUC uses every score).
MAX_ROC_POINTS = 1000


def check_estimator(estimator: str) -> str:
    """Returns ``estimator`` when it is one of :data:`ESTIMATORS`; else a UsageError listing them."""
    if estimator not in ESTIMATORS:
        raise UsageError(
            f"estimator {estimator!r} is unknown; choose one of {', '.join(ESTIMATORS)}"
        )
    return estimator


def check_categorical_columns(
    frame: pd.DataFrame,
    target_column: str,
    categorical_columns: str | list[str],
    source: str = "data",
) -> list[str]:
    """The declared categorical columns, each a feature column of ``frame``.

    Args:
        frame: The table, dropped columns already gone.
        target_column: Its label column (not a feature).
        categorical_columns: Comma-separated names, or a list.
        source: The table, for messages.

    Returns:
        The names, parsed.

    Raises:
        DataError: a name is not a column of ``frame``, or is the target.
    """
    declared = parse_columns(categorical_columns)
    missing = [c for c in declared if c not in frame.columns]
    if missing:
        raise DataError(
            f"categorical_columns not found in {source} (or dropped): {', '.join(missing)}"
        )
    if target_column in declared:
        raise DataError(
            f"target column {target_column!r} cannot be in categorical_columns: "
            "it is the label, not a feature"
        )
    return declared


def prepare_frame(
    frame: pd.DataFrame,
    target_column: str,
    drop_columns: str | list[str] = "",
    source: str = "data",
    categorical_columns: str | list[str] = "",
) -> pd.DataFrame:
    """Checks the target, dropped and feature columns; returns the frame without the dropped ones.

    The feature columns go through :func:`mlops.model.feature_quality.check_features`:
    a numeric column with a few text values, or a categorical one that is really an
    identifier, is refused here rather than trained on.

    Args:
        frame: The table as read.
        target_column: Label column.
        drop_columns: Columns dropped before training (comma-separated or a list).
        source: The table, for messages.
        categorical_columns: Columns the recipe declares categorical (comma-separated or a list).

    Raises:
        DataError: the target, a dropped or a declared column is missing, the target
            has missing values or fewer than two classes, or a feature column fails
            a data quality check.
    """
    if target_column not in frame.columns:
        raise DataError(
            f"target column {target_column!r} not found in {source}; "
            f"columns are: {', '.join(map(str, frame.columns))}"
        )
    drop = parse_columns(drop_columns)
    missing = [c for c in drop if c not in frame.columns]
    if missing:
        raise DataError(f"drop_columns not found in {source}: {', '.join(missing)}")
    if target_column in drop:
        raise DataError(f"target column {target_column!r} cannot be dropped")
    if drop:  # drop() copies every column, even when it drops none
        frame = frame.drop(columns=drop)
    declared = check_categorical_columns(frame, target_column, categorical_columns, source)
    if frame[target_column].isna().any():
        raise DataError(
            f"target column {target_column!r} in {source} has "
            f"{int(frame[target_column].isna().sum())} missing values"
        )
    classes = frame[target_column].nunique()
    if classes < 2:
        raise DataError(
            f"target column {target_column!r} in {source} has a single class "
            f"({frame[target_column].iloc[0]!r}); a classifier needs at least two"
        )
    if frame.shape[1] < 2:
        raise DataError(f"{source} has no feature columns besides the target {target_column!r}")
    # Only declared and categorical-to-be columns have anything to check; handing
    # check_features those alone spares a copy of every numeric column.
    checked = [
        position
        for position, name in enumerate(frame.columns)
        if name != target_column
        and (name in declared or infer_kind(frame.iloc[:, position]) == CATEGORICAL)
    ]
    if checked:
        check_features(frame.iloc[:, checked], source, declared)
    return _categories_as_text(frame, target_column, declared)


def _categories_as_text(
    frame: pd.DataFrame, target_column: str, declared: list[str]
) -> pd.DataFrame:
    """Declared categorical and text (object) feature columns in their model-input form: ``str``.

    A large CSV can come back with ints in one chunk of a column and text in
    another; Parquet (the split's format) refuses such a column, and the model
    would see 1 and "1" as two categories. As ``str`` they are one, as at serving.
    """
    names = [
        name
        for name in frame.columns
        if name != target_column and (name in declared or frame[name].dtype == object)
    ]
    if not names:
        return frame
    out = frame.copy(deep=False)  # whole columns are replaced below, never written into
    for name in names:
        out[name] = coerce_column(Feature(str(name), CATEGORICAL), frame[name])
    return out


def _split_positions(
    frame: pd.DataFrame, target_column: str, test_size: float, seed: int, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the stratified train/test split of a prepared frame.

    The split is decided on positions alone (scikit-learn's split depends only on the
    row count, the labels and the seed), so checking that a table can be split
    copies no rows, and splitting it copies each row once.

    Raises:
        DataError: an infinite cell, or a class too rare to stratify.
    """
    from sklearn.model_selection import train_test_split

    # Here, not only in preflight: on a cluster nothing checks before the task runs.
    check_finite(frame, source, [c for c in frame.columns if c != target_column])
    counts = frame[target_column].value_counts()
    rare = counts[counts < MIN_ROWS_PER_CLASS]
    if not rare.empty:
        raise DataError(
            f"class(es) {', '.join(map(repr, rare.index.tolist()))} of {target_column!r} have "
            f"fewer than {MIN_ROWS_PER_CLASS} rows; cannot stratify the split"
        )
    try:
        train, test = train_test_split(
            np.arange(len(frame)),
            test_size=test_size,
            random_state=seed,
            stratify=frame[target_column],
        )
    except ValueError as exc:
        raise DataError(f"cannot split {source}: {exc}") from exc
    return train, test


def check_split(
    frame: pd.DataFrame,
    target_column: str,
    test_size: float = 0.2,
    seed: int = 42,
    drop_columns: str | list[str] = "",
    source: str = "data",
    categorical_columns: str | list[str] = "",
) -> list[str]:
    """Everything :func:`split_dataset` checks, without making the split; returns the feature columns.

    For checks before a run: what would fail in the ``load-split`` task fails
    here, and no copy of the table is made.

    Raises:
        DataError: see :func:`split_dataset`.
        UsageError: ``test_size`` outside (0, 1).
    """
    test_size = check_fraction("test_size", test_size)
    frame = prepare_frame(frame, target_column, drop_columns, source, categorical_columns)
    _split_positions(frame, target_column, test_size, seed, source)
    return [c for c in frame.columns if c != target_column]


def split_dataset(
    frame: pd.DataFrame,
    target_column: str,
    test_size: float = 0.2,
    seed: int = 42,
    drop_columns: str | list[str] = "",
    source: str = "data",
    categorical_columns: str | list[str] = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split after dropping columns.

    ``categorical_columns`` are the columns the recipe declares categorical
    (see :func:`prepare_frame`). Both parts have a fresh ``RangeIndex``.

    Raises:
        DataError: see :func:`prepare_frame`, an infinite cell, or a class too rare to stratify.
        UsageError: ``test_size`` outside (0, 1).
    """
    test_size = check_fraction("test_size", test_size)
    frame = prepare_frame(frame, target_column, drop_columns, source, categorical_columns)
    train_rows, test_rows = _split_positions(frame, target_column, test_size, seed, source)
    parts = []
    for rows in (train_rows, test_rows):
        part = frame.take(rows)  # a new frame: its index is ours to replace (no copy)
        part.index = pd.RangeIndex(len(part))
        parts.append(part)
    return parts[0], parts[1]


def build_pipeline(schema: FeatureSchema, estimator: str, seed: int = 42):
    """scikit-learn Pipeline: impute + scale numerics, impute + one-hot categoricals."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    check_estimator(estimator)
    numeric = schema.numeric_names
    categorical = schema.categorical_names
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            )
        )
    return Pipeline(
        [("preprocess", ColumnTransformer(transformers)), ("model", _estimator(estimator, seed))]
    )


def _estimator(estimator: str, seed: int) -> Any:
    """The unfitted estimator; only its own module is imported (sklearn.ensemble is slow to load)."""
    if estimator == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
    if estimator == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000)


@dataclass
class Evaluation:
    """Scores of a model on one labelled dataset."""

    accuracy: float
    f1_macro: float
    rows: int
    labels: list[Any]
    confusion_matrix: list[list[int]]
    roc_curve: dict[str, list[float]] | None = None
    roc_auc: float | None = None

    def metrics(self, prefix: str) -> dict[str, float]:
        """The scores as ``<prefix>_accuracy``, ``<prefix>_f1_macro``, ... (ROC AUC when binary)."""
        out = {
            f"{prefix}_accuracy": self.accuracy,
            f"{prefix}_f1_macro": self.f1_macro,
            f"{prefix}_rows": float(self.rows),
        }
        if self.roc_auc is not None:
            out[f"{prefix}_roc_auc"] = self.roc_auc
        return out


def evaluate(
    model,
    frame: pd.DataFrame,
    target_column: str,
    schema: FeatureSchema,
    source: str = "data",
) -> Evaluation:
    """Scores ``model`` on a labelled frame whose features follow ``schema``.

    Raises:
        DataError: the frame lacks the target or any feature the model needs, or
            a numeric feature holds non-numbers.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score, roc_curve

    if target_column not in frame.columns:
        raise DataError(f"target column {target_column!r} not found in {source}")
    features = coerce(frame, schema, source=source)
    truth = frame[target_column]
    predicted = model.predict(features)
    labels = list(model.classes_)
    evaluation = Evaluation(
        accuracy=float(accuracy_score(truth, predicted)),
        f1_macro=float(f1_score(truth, predicted, average="macro", labels=labels, zero_division=0)),
        rows=len(frame),
        labels=[_plain(v) for v in labels],
        confusion_matrix=confusion_matrix(truth, predicted, labels=labels).tolist(),
    )
    if len(labels) == 2 and truth.nunique() == 2:
        scores = model.predict_proba(features)[:, 1]
        fpr, tpr, thresholds = roc_curve(truth, scores, pos_label=labels[1])
        finite = np.isfinite(thresholds)
        kept = _curve_points(int(finite.sum()))
        evaluation.roc_curve = {
            "fpr": fpr[finite][kept].tolist(),
            "tpr": tpr[finite][kept].tolist(),
            "thresholds": thresholds[finite][kept].tolist(),
        }
        evaluation.roc_auc = float(roc_auc_score(truth == labels[1], scores))
    return evaluation


def _curve_points(count: int) -> np.ndarray:
    """Positions of at most :data:`MAX_ROC_POINTS` of a curve's ``count`` points, ends included.

    A ROC curve has a point per distinct score: ~40,000 for 200,000 holdout rows,
    2.6 MB of JSON in the task's output and the run's metadata, for a picture
    that 1,000 evenly spaced points draw the same.
    """
    if count <= MAX_ROC_POINTS:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, MAX_ROC_POINTS).round().astype(np.intp))


def _plain(value: Any) -> Any:
    """Numpy scalars as JSON-able Python values."""
    return value.item() if hasattr(value, "item") else value


def train(
    train_frame: pd.DataFrame,
    target_column: str,
    estimator: str,
    seed: int = 42,
    categorical_columns: str | list[str] = "",
) -> tuple[Any, FeatureSchema]:
    """Decides the feature schema from the training split and fits the pipeline on it.

    Args:
        train_frame: The training split (checked by :func:`prepare_frame`).
        target_column: Label column.
        estimator: One of :data:`ESTIMATORS`.
        seed: Random seed of the estimator.
        categorical_columns: Columns categorical whatever their dtype (the recipe's).

    Returns:
        (fitted pipeline, feature schema).

    Raises:
        DataError: a declared categorical column is not a feature of ``train_frame``.
    """
    declared = check_categorical_columns(
        train_frame, target_column, categorical_columns, "training data"
    )
    # The features-only copy lives only while the kinds are decided; coerce() picks
    # the schema's columns out of the whole split.
    schema = FeatureSchema.from_frame(
        train_frame.drop(columns=[target_column]), categorical=declared
    )
    model = build_pipeline(schema, estimator, seed)
    model.fit(coerce(train_frame, schema, source="training data"), train_frame[target_column])
    logger.info("trained %s on %d rows, %d features", estimator, len(train_frame), len(schema))
    return model, schema
