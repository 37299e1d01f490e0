"""Breast-cancer diagnosis: the recipe kfp-mlops trains (``entry_point: train:build_model``).

The training flow calls :func:`build_model` with ``params`` from ``mlops.yaml`` (plus
the run's ``seed``) and fits the returned pipeline on its training split. The split's
features arrive as a pandas DataFrame already coerced to the project's feature schema:
numeric columns float64, categorical columns ``str`` with missing values as NaN or None.

The model is saved with skops and loaded back with an allow-list of scikit-learn,
NumPy and SciPy types, so the pipeline is made of scikit-learn classes only: no class
or function of this repository may end up inside it.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

DEFAULT_SEED = 42


def build_model(params: dict[str, Any]) -> Pipeline:
    """The unfitted pipeline: impute, encode categories, then histogram gradient boosting.

    Columns are chosen by dtype, so new measurements need no change here. Categories
    unseen in training are encoded as -1 rather than refused.

    Args:
        params: Keyword arguments of ``HistGradientBoostingClassifier``; ``seed``
            becomes its ``random_state``.

    Returns:
        An unfitted scikit-learn Pipeline.
    """
    options = dict(params)
    seed = options.pop("seed", DEFAULT_SEED)
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                SimpleImputer(strategy="median"),
                make_column_selector(dtype_include="number"),
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        (
                            "encode",
                            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                        ),
                    ]
                ),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )
    model = HistGradientBoostingClassifier(random_state=seed, **options)
    return Pipeline([("preprocess", preprocess), ("model", model)])
