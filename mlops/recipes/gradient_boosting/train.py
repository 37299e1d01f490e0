"""Built-in recipe ``gradient_boosting``: scaled numerics and one-hot categoricals, then gradient boosting.

The flow calls :func:`build_model` and fits what it returns on the training split,
whose numeric features are float64 and categorical ones ``str`` (missing as NaN).
The columns are chosen by dtype, so the recipe fits any table.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def build_model(params: dict[str, Any]) -> Pipeline:
    """The unfitted pipeline: impute + scale numerics, impute + one-hot categoricals, classify.

    Args:
        params: The recipe's parameters: ``seed`` (default 42) seeds the boosting.

    Returns:
        An unfitted scikit-learn Pipeline.
    """
    seed = int(params.get("seed", 42))
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                make_column_selector(dtype_include="number"),
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )
    return Pipeline(
        [("preprocess", preprocess), ("model", GradientBoostingClassifier(random_state=seed))]
    )
