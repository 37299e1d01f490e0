"""Shared helpers for the serving tests: a tiny signed model directory trained in-process.

The directory follows the project's model contract: ``model.skops`` (sklearn
Pipeline: ColumnTransformer(numeric impute+scale, categorical impute+one-hot) +
classifier), ``metadata.json``, ``reference.parquet`` and ``model.sig``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.training_helpers import make_keypair  # noqa: F401 - re-exported for serving tests

NUMERIC = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CATEGORICAL = ["color"]
FEATURES = NUMERIC + CATEGORICAL


def iris_frame(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Iris with one categorical column (loosely tied to the class) added; labels are ints."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.data.copy()
    frame.columns = NUMERIC
    rng = np.random.default_rng(seed)
    palette = np.array(["red", "green", "blue"], dtype=object)
    target = data.target.to_numpy()
    pick = np.where(rng.random(len(frame)) < 0.6, target, rng.integers(0, 3, len(frame)))
    frame["color"] = palette[pick]
    return frame, pd.Series(target, name="species")


def build_pipeline(estimator: str = "logistic_regression", seed: int = 0):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([
        ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")),
                              ("scale", StandardScaler())]), NUMERIC),
        ("categorical", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                  ("onehot", OneHotEncoder(handle_unknown="ignore"))]), CATEGORICAL),
    ])
    models = {
        "logistic_regression": lambda: LogisticRegression(max_iter=1000),
        "random_forest": lambda: RandomForestClassifier(n_estimators=20, random_state=seed, n_jobs=1),
    }
    return Pipeline([("preprocess", pre), ("model", models[estimator]())])


def build_model_dir(dest: Path, private_key: Path, *, model_name: str = "iris", version: str = "v1",
                    estimator: str = "logistic_regression", seed: int = 0):
    """Trains, saves (skops), describes and signs a model directory.

    Returns:
        (model_dir, fitted pipeline, feature frame used for training)
    """
    from mlops.trust.modelio import save_model
    from mlops.trust.signing import sign_model_dir

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    features, target = iris_frame(seed)
    model = build_pipeline(estimator, seed).fit(features, target)
    save_model(model, dest / "model.skops")
    schema = []
    for name in FEATURES:
        if name in NUMERIC:
            schema.append({"name": name, "kind": "numeric", "min": float(features[name].min()),
                           "max": float(features[name].max())})
        else:
            schema.append({"name": name, "kind": "categorical",
                           "categories": sorted(features[name].unique().tolist())})
    metadata = {
        "model_name": model_name, "version": version, "target_column": "species",
        "estimator": estimator, "feature_names": FEATURES, "features": schema,
        "classes": [int(c) for c in model.classes_],
        "metrics": {"train_accuracy": float((model.predict(features) == target).mean())},
    }
    (dest / "metadata.json").write_text(json.dumps(metadata, indent=2))
    features.sample(60, random_state=seed).reset_index(drop=True).to_parquet(dest / "reference.parquet")
    sign_model_dir(dest, private_key)
    return dest, model, features


def publish(store, model_dir: Path, model_name: str, version: str):
    from mlops.registry import publish_model_dir

    return publish_model_dir(store, model_dir, model_name, version)


def sample_rows(n: int = 10, seed: int = 1) -> pd.DataFrame:
    features, _ = iris_frame()
    return features.sample(n, random_state=seed).reset_index(drop=True)


def v1_list_rows(frame: pd.DataFrame) -> list[list]:
    return [[row[name] for name in FEATURES] for row in frame.to_dict("records")]


def v1_object_rows(frame: pd.DataFrame) -> list[dict]:
    return [{name: row[name] for name in FEATURES} for row in frame.to_dict("records")]


def flip_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(Path(path).read_bytes())
    data[min(offset, len(data) - 1)] ^= 0xFF
    Path(path).write_bytes(bytes(data))
