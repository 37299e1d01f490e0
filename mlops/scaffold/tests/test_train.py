"""Unit tests of the recipe: an unfitted pipeline that learns from numbers and categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from train import build_model


def training_frame(rows: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    """Features as the flow hands them over: float64 numbers, str categories, NaN for missing."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(100, 20, rows),
            "channel": rng.choice(["web", "shop", "phone"], rows).astype(object),
        }
    )
    label = np.where((frame["amount"] > 100) | (frame["channel"] == "phone"), "yes", "no")
    frame.loc[::11, "amount"] = np.nan
    frame.loc[::13, "channel"] = np.nan
    return frame, label


def test_build_model_returns_an_unfitted_classifier():
    """The flow fits the pipeline itself."""
    model = build_model({})
    assert is_classifier(model)
    assert not hasattr(model, "classes_")


def test_params_and_seed_reach_the_model():
    """mlops.yaml's params are the classifier's arguments; the run's seed is its random_state."""
    classifier = build_model({"C": 0.5, "seed": 3}).named_steps["model"]
    assert (classifier.C, classifier.random_state) == (0.5, 3)


def test_learns_and_predicts_unseen_values():
    """Fits the training frame; a missing number or an unseen category still gets a prediction."""
    frame, label = training_frame()
    model = build_model({"seed": 0}).fit(frame, label)
    assert (model.predict(frame) == label).mean() > 0.8
    unseen = pd.DataFrame({"amount": [np.nan, 130.0], "channel": ["fax", np.nan]})
    probabilities = model.predict_proba(unseen.astype({"channel": object}))
    assert probabilities.shape == (2, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
