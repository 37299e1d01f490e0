"""Unit tests of the recipe: it builds an unfitted pipeline that learns the diagnosis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from train import build_model

PARAMS = {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 8, "min_samples_leaf": 10}


@pytest.fixture(scope="module")
def breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    """Features and diagnosis, named as in the training data (spaces as underscores)."""
    bunch = load_breast_cancer(as_frame=True)
    features = bunch.data.rename(columns=lambda c: c.replace(" ", "_"))
    diagnosis = bunch.target.map(dict(enumerate(bunch.target_names))).rename("diagnosis")
    return features, diagnosis


def test_build_model_returns_an_unfitted_classifier():
    """The flow fits the pipeline itself."""
    model = build_model(PARAMS)
    assert is_classifier(model)
    assert not hasattr(model, "classes_")


def test_params_and_seed_reach_the_model():
    """mlops.yaml's params are the booster's arguments; the run's seed is its random_state."""
    booster = build_model({"max_iter": 7, "seed": 3}).named_steps["model"]
    assert (booster.max_iter, booster.random_state) == (7, 3)


def test_learns_the_diagnosis(breast_cancer):
    """Above the 0.9 holdout accuracy mlops.yaml asks for."""
    features, diagnosis = breast_cancer
    x_train, x_test, y_train, y_test = train_test_split(
        features, diagnosis, test_size=0.25, random_state=0, stratify=diagnosis
    )
    model = build_model({**PARAMS, "seed": 0}).fit(x_train, y_train)
    assert accuracy_score(y_test, model.predict(x_test)) > 0.9
    assert set(model.classes_) == {"benign", "malignant"}


def test_handles_missing_values_and_unseen_categories():
    """Categorical columns are str with NaN or None for missing, as the flow hands them over."""
    rng = np.random.default_rng(0)
    rows = 200
    frame = pd.DataFrame(
        {
            "size": rng.normal(10, 2, rows),
            "site": rng.choice(["left", "right"], rows).astype(object),
        }
    )
    label = np.where(frame["size"] > 10, "malignant", "benign")
    frame.loc[::10, "size"] = np.nan
    frame.loc[::13, "site"] = None
    model = build_model({"max_iter": 20}).fit(frame, label)
    unseen = pd.DataFrame({"size": [np.nan, 12.0], "site": ["centre", np.nan]}).astype(
        {"site": object}
    )
    probabilities = model.predict_proba(unseen)
    assert probabilities.shape == (2, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
