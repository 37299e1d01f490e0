"""Splitting, training and scoring: the plain functions behind the training components."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.data import parse_columns
from mlops.core.errors import DataError, UsageError

logger = logging.getLogger(__name__)

ESTIMATORS = ("logistic_regression", "random_forest", "gradient_boosting")
MIN_ROWS_PER_CLASS = 2


def check_fraction(name: str, value: float, inclusive: bool = False) -> float:
    """Requires ``0 < value < 1`` (``0 <= value <= 1`` when inclusive); names the parameter."""
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} must be a number, got {value!r}") from exc
    inside = 0.0 <= value <= 1.0 if inclusive else 0.0 < value < 1.0
    if not inside:
        bounds = "[0, 1]" if inclusive else "(0, 1)"
        raise UsageError(f"{name} must be in {bounds}, got {value}")
    return value


def check_estimator(estimator: str) -> str:
    if estimator not in ESTIMATORS:
        raise UsageError(
            f"estimator {estimator!r} is unknown; choose one of {', '.join(ESTIMATORS)}"
        )
    return estimator


def prepare_frame(
    frame: pd.DataFrame,
    target_column: str,
    drop_columns: str | list[str] = "",
    source: str = "data",
) -> pd.DataFrame:
    """Checks the target and dropped columns and returns the frame without the dropped ones.

    Raises:
        DataError: the target or a dropped column is missing, the target has
            missing values, or fewer than two classes.
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
    frame = frame.drop(columns=drop)
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
    return frame


def split_dataset(
    frame: pd.DataFrame,
    target_column: str,
    test_size: float = 0.2,
    seed: int = 42,
    drop_columns: str | list[str] = "",
    source: str = "data",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split after dropping columns.

    Raises:
        DataError: see :func:`prepare_frame`, or a class too rare to stratify.
        UsageError: ``test_size`` outside (0, 1).
    """
    from sklearn.model_selection import train_test_split

    test_size = check_fraction("test_size", test_size)
    frame = prepare_frame(frame, target_column, drop_columns, source)
    counts = frame[target_column].value_counts()
    rare = counts[counts < MIN_ROWS_PER_CLASS]
    if not rare.empty:
        raise DataError(
            f"class(es) {', '.join(map(repr, rare.index.tolist()))} of {target_column!r} have "
            f"fewer than {MIN_ROWS_PER_CLASS} rows; cannot stratify the split"
        )
    try:
        train, test = train_test_split(
            frame, test_size=test_size, random_state=seed, stratify=frame[target_column]
        )
    except ValueError as exc:
        raise DataError(f"cannot split {source}: {exc}") from exc
    return train.reset_index(drop=True), test.reset_index(drop=True)


def feature_schema(features: pd.DataFrame) -> list[dict[str, Any]]:
    """Kind, range and categories of each feature, in column order."""
    schema = []
    for name in features.columns:
        column = features[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            categories = sorted(map(str, column.dropna().unique()))
            schema.append({"name": str(name), "kind": "categorical", "categories": categories})
        else:
            finite = column[np.isfinite(column.astype(float))]
            schema.append(
                {
                    "name": str(name),
                    "kind": "numeric",
                    "min": float(finite.min()) if len(finite) else None,
                    "max": float(finite.max()) if len(finite) else None,
                }
            )
    return schema


def coerce_features(features: pd.DataFrame, schema: list[dict[str, Any]]) -> pd.DataFrame:
    """Orders columns by the schema and gives categoricals string values (as in training)."""
    frame = features[[f["name"] for f in schema]].copy()
    for feature in schema:
        if feature["kind"] == "categorical":
            column = frame[feature["name"]]
            frame[feature["name"]] = column.where(column.isna(), column.astype(str)).astype(object)
    return frame


def build_pipeline(schema: list[dict[str, Any]], estimator: str, seed: int = 42):
    """scikit-learn Pipeline: impute + scale numerics, impute + one-hot categoricals."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    check_estimator(estimator)
    numeric = [f["name"] for f in schema if f["kind"] == "numeric"]
    categorical = [f["name"] for f in schema if f["kind"] == "categorical"]
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
    models = {
        "logistic_regression": lambda: LogisticRegression(max_iter=2000),
        "random_forest": lambda: RandomForestClassifier(
            n_estimators=200, random_state=seed, n_jobs=1
        ),
        "gradient_boosting": lambda: GradientBoostingClassifier(random_state=seed),
    }
    return Pipeline(
        [("preprocess", ColumnTransformer(transformers)), ("model", models[estimator]())]
    )


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
    schema: list[dict[str, Any]],
    source: str = "data",
) -> Evaluation:
    """Scores ``model`` on a labelled frame whose features follow ``schema``.

    Raises:
        DataError: the frame lacks the target or any feature the model needs.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score, roc_curve

    if target_column not in frame.columns:
        raise DataError(f"target column {target_column!r} not found in {source}")
    missing = [f["name"] for f in schema if f["name"] not in frame.columns]
    if missing:
        raise DataError(f"{source} lacks feature column(s) the model needs: {', '.join(missing)}")
    features = coerce_features(frame, schema)
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
        evaluation.roc_curve = {
            "fpr": fpr[finite].tolist(),
            "tpr": tpr[finite].tolist(),
            "thresholds": thresholds[finite].tolist(),
        }
        evaluation.roc_auc = float(roc_auc_score(truth == labels[1], scores))
    return evaluation


def _plain(value: Any) -> Any:
    """numpy scalars to JSON-able Python values."""
    return value.item() if hasattr(value, "item") else value


def train(train_frame: pd.DataFrame, target_column: str, estimator: str, seed: int = 42):
    """Fits the pipeline; returns (model, feature schema)."""
    features = train_frame.drop(columns=[target_column])
    schema = feature_schema(features)
    model = build_pipeline(schema, estimator, seed)
    model.fit(coerce_features(features, schema), train_frame[target_column])
    logger.info("trained %s on %d rows, %d features", estimator, len(train_frame), len(schema))
    return model, schema
