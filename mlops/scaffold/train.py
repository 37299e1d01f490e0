"""The model recipe kfp-mlops trains (``entry_point: train:build_model`` in ``mlops.yaml``).

The training flow calls :func:`build_model` with ``params`` from ``mlops.yaml`` (plus
the run's ``seed``) and fits the returned pipeline on its training split, whose
features arrive as a pandas DataFrame: numeric columns float64, categorical columns
``str`` with missing values as NaN or None.

The fitted model is saved with skops and loaded back with an allow-list of
scikit-learn, NumPy and SciPy types: build it from scikit-learn classes only, never
from a class or function defined here.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def build_model(params: dict[str, Any]) -> Pipeline:
    """The unfitted pipeline: impute + scale numerics, impute + one-hot categoricals, classify.

    Args:
        params: Keyword arguments of ``LogisticRegression``; ``seed`` becomes its
            ``random_state``.

    Returns:
        An unfitted scikit-learn Pipeline.
    """
    options = dict(params)
    seed = options.pop("seed", 42)
    options.setdefault("max_iter", 2000)
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
    model = LogisticRegression(random_state=seed, **options)
    return Pipeline([("preprocess", preprocess), ("model", model)])
