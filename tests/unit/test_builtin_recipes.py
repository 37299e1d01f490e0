"""The built-in recipes (``builtin:<name>``, package data in ``mlops/recipes/``).

Each recipe must train exactly today's built-in estimator
(:func:`mlops.model.training.build_pipeline`): the same probabilities on the same
model input, for mixed, numeric-only and categorical-only tables; its fitted model
must load through the skops allow-list, and the model server's fast path must
recognise it.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.model.modelio import load_model, save_model
from mlops.model.schema import FeatureSchema, coerce
from mlops.model.training import ESTIMATORS, build_pipeline
from serving.fast_path import FastPath

RECIPES = Path(str(importlib.resources.files("mlops") / "recipes"))
SEED = 7


def recipe_module(name: str) -> ModuleType:
    """The recipe's ``train.py``, imported under a name of its own (every recipe has a ``train``)."""
    path = RECIPES / name / "train.py"
    spec = importlib.util.spec_from_file_location(f"builtin_recipe_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # No __pycache__ in the shipped folder: the flow digests and copies it as it is.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module


def mixed_frame(rows: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric and categorical features with missing values, and a label that depends on both."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(45, 12, rows),
            "colour": rng.choice(["red", "green", "blue"], rows).astype(object),
            "income": rng.lognormal(10, 1, rows),
            "city": rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], rows).astype(object),
        }
    )
    frame.loc[::17, "age"] = np.nan
    frame.loc[::23, "colour"] = np.nan
    label = np.where((frame["age"].fillna(45) > 45) ^ (frame["colour"] == "red"), "yes", "no")
    return frame, label


def probe_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows the model never saw: unseen categories and missing values in every column."""
    probe = frame.head(20).copy()
    for column in probe.columns:
        if probe[column].dtype == object:
            probe.loc[probe.index[::3], column] = "__unseen__"
        probe.loc[probe.index[1::4], column] = np.nan
    return pd.concat([frame, probe], ignore_index=True)


def fit_both(name: str, frame: pd.DataFrame, label: Any) -> tuple[Any, Any, FeatureSchema]:
    """The recipe's model and today's built-in pipeline, fitted on the same model input."""
    schema = FeatureSchema.from_frame(frame)
    features = coerce(frame, schema, source="training data")
    recipe = recipe_module(name).build_model({"seed": SEED})
    assert not hasattr(recipe, "classes_"), "build_model must return an unfitted estimator"
    recipe.fit(features, label)
    today = build_pipeline(schema, name, SEED).fit(features, label)
    return recipe, today, schema


def breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    from mlops.demo.data import TARGET, breast_cancer_frame

    frame = breast_cancer_frame()
    return frame.drop(columns=[TARGET]), frame[TARGET]


def test_the_builtin_recipes_are_exactly_the_estimators():
    folders = sorted(p.name for p in RECIPES.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(ESTIMATORS)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_recipe_folder_follows_the_contract(name):
    folder = RECIPES / name
    config = yaml.safe_load((folder / "mlops.yaml").read_text())
    assert config == {"entry_point": "train:build_model"}  # name and target come from -p
    requirements = [
        line.strip()
        for line in (folder / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert requirements == ["scikit-learn"]  # names only: checked against the serving lock


@pytest.mark.parametrize("name", ESTIMATORS)
def test_recipe_reproduces_todays_estimator_on_mixed_data(name):
    frame, label = mixed_frame()
    recipe, today, schema = fit_both(name, frame, label)
    probe = coerce(probe_rows(frame), schema)
    np.testing.assert_array_equal(recipe.predict_proba(probe), today.predict_proba(probe))
    assert list(recipe.classes_) == list(today.classes_) == ["no", "yes"]


@pytest.mark.parametrize("name", ESTIMATORS)
def test_recipe_reproduces_todays_estimator_without_categorical_columns(name):
    features, label = breast_cancer()
    recipe, today, schema = fit_both(name, features, label)
    model_input = coerce(features, schema)
    np.testing.assert_array_equal(
        recipe.predict_proba(model_input), today.predict_proba(model_input)
    )
    # make_column_selector found no categorical column: that entry is skipped, not an error.
    preprocess = recipe.named_steps["preprocess"]
    assert dict((n, list(c)) for n, _, c in preprocess.transformers_)["categorical"] == []
    assert preprocess.transform(model_input).shape == (len(features), features.shape[1])


def test_recipe_reproduces_todays_estimator_without_numeric_columns():
    frame, label = mixed_frame()
    frame = frame[["colour", "city"]]
    recipe, today, schema = fit_both("logistic_regression", frame, label)
    probe = coerce(probe_rows(frame), schema)
    np.testing.assert_array_equal(recipe.predict_proba(probe), today.predict_proba(probe))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fitted_recipe_loads_through_the_skops_allow_list(name, tmp_path):
    frame, label = mixed_frame()
    recipe, _, schema = fit_both(name, frame, label)
    save_model(recipe, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops")
    probe = coerce(probe_rows(frame), schema)
    np.testing.assert_array_equal(loaded.predict_proba(probe), recipe.predict_proba(probe))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fast_path_recognises_the_fitted_recipe(name, tmp_path):
    frame, label = mixed_frame()
    recipe, _, schema = fit_both(name, frame, label)
    save_model(recipe, tmp_path / "model.skops")  # as served: after a skops round trip
    loaded = load_model(tmp_path / "model.skops")
    fast = FastPath.build(loaded, schema, frame)
    assert fast is not None
    probe = coerce(probe_rows(frame), schema)
    np.testing.assert_allclose(
        fast.predict_proba(probe), loaded.predict_proba(probe), rtol=1e-9, atol=1e-12
    )


def test_fast_path_recognises_the_fitted_recipe_without_categorical_columns():
    features, label = breast_cancer()
    recipe, today, schema = fit_both("logistic_regression", features, label)
    assert FastPath.build(today, schema, features) is not None  # today's layout: recognised
    assert FastPath.build(recipe, schema, features) is not None
