"""Splitting, schema, pipeline building, training and scoring on real datasets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import DataError, UsageError
from mlops.model.schema import FeatureSchema, coerce
from mlops.model.training import (
    ESTIMATORS,
    MAX_ROC_POINTS,
    build_pipeline,
    check_estimator,
    check_fraction,
    check_split,
    evaluate,
    prepare_frame,
    split_dataset,
    train,
)
from tests.training_helpers import breast_cancer, iris_with_color


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return iris_with_color()


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return breast_cancer()


# -- split_dataset ------------------------------------------------------------------------------
def test_split_is_stratified_and_disjoint(iris):
    train_frame, test_frame = split_dataset(iris, "species", test_size=0.2, seed=1)
    assert len(train_frame) == 120 and len(test_frame) == 30
    assert test_frame["species"].value_counts().to_dict() == {
        "setosa": 10,
        "versicolor": 10,
        "virginica": 10,
    }
    assert list(train_frame.index) == list(range(len(train_frame)))
    assert list(train_frame.columns) == list(iris.columns)
    # Same seed, same split; another seed, another split.
    again, _ = split_dataset(iris, "species", test_size=0.2, seed=1)
    pd.testing.assert_frame_equal(train_frame, again)
    other, _ = split_dataset(iris, "species", test_size=0.2, seed=2)
    assert not train_frame.equals(other)


def test_split_binary_keeps_class_shares(cancer):
    train_frame, test_frame = split_dataset(cancer, "diagnosis", test_size=0.25)
    share = cancer["diagnosis"].value_counts(normalize=True)
    for part in (train_frame, test_frame):
        got = part["diagnosis"].value_counts(normalize=True)
        assert abs(got["benign"] - share["benign"]) < 0.01


def test_split_drops_columns(iris):
    train_frame, test_frame = split_dataset(iris, "species", drop_columns="color, petal_width")
    assert "color" not in train_frame and "petal_width" not in test_frame
    train_list, _ = split_dataset(iris, "species", drop_columns=["color"])
    assert "color" not in train_list


def test_missing_target_names_the_column_and_lists_columns(iris):
    with pytest.raises(DataError, match="'label' not found in training.csv") as info:
        split_dataset(iris, "label", source="training.csv")
    assert "species" in str(info.value)


def test_missing_drop_column_is_named(iris):
    with pytest.raises(DataError, match="drop_columns not found in data: nope"):
        split_dataset(iris, "species", drop_columns="color,nope")


def test_target_cannot_be_dropped(iris):
    with pytest.raises(DataError, match="cannot be dropped"):
        split_dataset(iris, "species", drop_columns="species")


def test_single_class_is_rejected(iris):
    one = iris[iris["species"] == "setosa"]
    with pytest.raises(DataError, match="single class") as info:
        split_dataset(one, "species")
    assert "'setosa'" in str(info.value)


def test_missing_target_values_are_counted(iris):
    holes = iris.copy()
    holes.loc[[0, 5, 9], "species"] = None
    with pytest.raises(DataError, match="3 missing values"):
        split_dataset(holes, "species")


def test_no_feature_columns(iris):
    with pytest.raises(DataError, match="no feature columns"):
        prepare_frame(iris[["species"]], "species")


def test_rare_class_cannot_be_stratified(iris):
    rare = pd.concat([iris, iris.iloc[[0]].assign(species="unicorn")], ignore_index=True)
    with pytest.raises(DataError, match="'unicorn'.*fewer than 2 rows"):
        split_dataset(rare, "species")


def test_too_small_test_split_is_a_data_error(iris):
    # 1% of 150 rows is 2 rows: fewer than the 3 classes stratification needs.
    with pytest.raises(DataError, match="cannot split"):
        split_dataset(iris, "species", test_size=0.01)


def test_check_split_checks_what_split_dataset_checks_and_copies_nothing(iris):
    assert check_split(iris, "species", drop_columns="color") == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    rare = pd.concat([iris, iris.iloc[[0]].assign(species="unicorn")], ignore_index=True)
    with pytest.raises(DataError, match="'unicorn'.*fewer than 2 rows"):
        check_split(rare, "species")
    with pytest.raises(DataError, match="cannot split"):
        check_split(iris, "species", test_size=0.01)
    with pytest.raises(DataError, match="infinite"):
        check_split(iris.assign(sepal_width=np.inf), "species")
    with pytest.raises(UsageError, match="test_size"):
        check_split(iris, "species", test_size=1)


def test_split_is_the_split_of_the_whole_frame(cancer):
    # Splitting row positions gives exactly scikit-learn's split of the frame itself.
    from sklearn.model_selection import train_test_split

    train_frame, test_frame = split_dataset(cancer, "diagnosis", test_size=0.3, seed=7)
    expected = train_test_split(cancer, test_size=0.3, random_state=7, stratify=cancer["diagnosis"])
    for got, want in zip((train_frame, test_frame), expected, strict=True):
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True))


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.2, "abc", None])
def test_bad_test_size_is_named(iris, value):
    with pytest.raises(UsageError, match="test_size") as info:
        split_dataset(iris, "species", test_size=value)
    assert not isinstance(info.value, DataError)


def test_check_fraction_bounds():
    assert check_fraction("x", "0.5") == 0.5
    assert check_fraction("min_accuracy", 0, inclusive=True) == 0.0
    assert check_fraction("min_accuracy", 1, inclusive=True) == 1.0
    with pytest.raises(UsageError, match=r"min_accuracy must be in \[0, 1\], got 1.5"):
        check_fraction("min_accuracy", 1.5, inclusive=True)
    with pytest.raises(UsageError, match=r"test_size must be in \(0, 1\), got 1.0"):
        check_fraction("test_size", 1)


def test_check_estimator_lists_choices():
    for name in ESTIMATORS:
        assert check_estimator(name) == name
    with pytest.raises(UsageError, match="'svm' is unknown; choose one of logistic_regression"):
        check_estimator("svm")


# -- FeatureSchema.from_frame / coerce (the metadata.json format) ------------------------------
def test_feature_schema_kinds_ranges_and_categories():
    frame = pd.DataFrame(
        {
            "size": [1.0, 2.5, np.inf, np.nan, -3.0],
            "count": [1, 2, 3, 4, 5],
            "flag": [True, False, True, True, False],
            "color": ["red", "blue", None, "red", "green"],
            "empty": [np.nan] * 5,
        }
    )
    entries = FeatureSchema.from_frame(frame).to_metadata()["features"]
    schema = {f["name"]: f for f in entries}
    assert [f["name"] for f in entries] == list(frame.columns)
    assert schema["size"] == {"name": "size", "kind": "numeric", "min": -3.0, "max": 2.5}
    assert schema["count"] == {"name": "count", "kind": "numeric", "min": 1.0, "max": 5.0}
    assert schema["flag"] == {
        "name": "flag",
        "kind": "categorical",
        "categories": ["False", "True"],
    }
    assert schema["color"]["categories"] == ["blue", "green", "red"]
    assert schema["empty"] == {"name": "empty", "kind": "numeric", "min": None, "max": None}


def test_coerce_features_orders_columns_and_stringifies_categoricals():
    train_frame = pd.DataFrame({"a": [1.0, 2.0], "code": ["x", "y"], "flag": [True, False]})
    schema = FeatureSchema.from_frame(train_frame)
    request = pd.DataFrame({"flag": [True, None], "extra": [0, 0], "code": [3, "y"], "a": [5, 6]})
    coerced = coerce(request, schema)
    assert list(coerced.columns) == ["a", "code", "flag"]
    assert coerced["code"].tolist() == ["3", "y"]
    assert coerced["flag"].iloc[0] == "True" and pd.isna(coerced["flag"].iloc[1])
    assert coerced["code"].dtype == object
    assert coerced["a"].dtype == np.float64 and coerced["a"].tolist() == [5.0, 6.0]
    with pytest.raises(DataError, match="lacks feature column.*: a$"):
        coerce(request.drop(columns=["a"]), schema)


# -- build_pipeline / train / evaluate ----------------------------------------------------------
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_trains_and_ignores_unseen_categories(iris, estimator):
    train_frame, test_frame = split_dataset(iris, "species", seed=3)
    model, schema = train(train_frame, "species", estimator, seed=3)
    assert [f.kind for f in schema.features] == ["numeric"] * 4 + ["categorical"]
    expected = {
        "logistic_regression": "LogisticRegression",
        "random_forest": "RandomForestClassifier",
        "gradient_boosting": "GradientBoostingClassifier",
    }[estimator]
    assert type(model.named_steps["model"]).__name__ == expected
    assert sorted(model.classes_) == ["setosa", "versicolor", "virginica"]
    result = evaluate(model, test_frame, "species", schema)
    assert result.accuracy >= 0.8
    unseen = test_frame.drop(columns=["species"]).assign(color="purple")
    predicted = model.predict(coerce(unseen, schema))
    assert set(predicted) <= set(model.classes_)
    # Missing numeric values are imputed, not fatal.
    holes = unseen.copy()
    holes.loc[holes.index[:3], "petal_length"] = np.nan
    assert len(model.predict(coerce(holes, schema))) == len(holes)


def test_build_pipeline_numeric_only_and_unknown_estimator(cancer):
    schema = FeatureSchema.from_frame(cancer.drop(columns=["diagnosis"]))
    pipeline = build_pipeline(schema, "logistic_regression")
    names = [name for name, _, _ in pipeline.named_steps["preprocess"].transformers]
    assert names == ["numeric"]
    with pytest.raises(UsageError, match="estimator 'xgboost' is unknown"):
        build_pipeline(schema, "xgboost")


def test_evaluate_binary_has_roc(cancer):
    train_frame, test_frame = split_dataset(cancer, "diagnosis", seed=0)
    model, schema = train(train_frame, "diagnosis", "logistic_regression")
    result = evaluate(model, test_frame, "diagnosis", schema)
    assert result.accuracy > 0.9 and result.rows == len(test_frame)
    assert result.labels == ["benign", "malignant"]
    assert sum(map(sum, result.confusion_matrix)) == len(test_frame)
    assert 0.9 < result.roc_auc <= 1.0
    roc = result.roc_curve
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) > 2
    assert all(math.isfinite(t) for t in roc["thresholds"])
    metrics = result.metrics("test")
    assert set(metrics) == {"test_accuracy", "test_f1_macro", "test_rows", "test_roc_auc"}
    assert all(isinstance(v, float) for v in metrics.values())


def test_roc_curve_of_a_large_holdout_is_bounded():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20_000, 3)), columns=["a", "b", "c"])
    frame["y"] = (frame["a"] + rng.normal(size=len(frame)) > 0).astype(int)
    model, schema = train(frame, "y", "logistic_regression")
    result = evaluate(model, frame, "y", schema)
    roc = result.roc_curve
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) == MAX_ROC_POINTS
    assert roc["fpr"][-1] == roc["tpr"][-1] == 1.0 and roc["fpr"] == sorted(roc["fpr"])
    assert roc["thresholds"] == sorted(roc["thresholds"], reverse=True)
    assert 0.5 < result.roc_auc < 1.0


def test_evaluate_multiclass_has_no_roc(iris):
    train_frame, test_frame = split_dataset(iris, "species")
    model, schema = train(train_frame, "species", "logistic_regression")
    result = evaluate(model, test_frame, "species", schema)
    assert result.roc_curve is None and result.roc_auc is None
    assert len(result.confusion_matrix) == 3
    assert "holdout_roc_auc" not in result.metrics("holdout")
    assert all(isinstance(label, str) for label in result.labels)


def test_evaluate_names_missing_columns(iris):
    train_frame, test_frame = split_dataset(iris, "species")
    model, schema = train(train_frame, "species", "logistic_regression")
    with pytest.raises(DataError, match="'species' not found in holdout"):
        evaluate(model, test_frame.drop(columns=["species"]), "species", schema, source="holdout")
    with pytest.raises(DataError, match="lacks feature column.*color"):
        evaluate(model, test_frame.drop(columns=["color"]), "species", schema, source="holdout")


def test_evaluate_integer_labels_are_plain_python(iris):
    numbered = iris.assign(
        species=iris["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2})
    )
    train_frame, test_frame = split_dataset(numbered, "species")
    model, schema = train(train_frame, "species", "logistic_regression")
    result = evaluate(model, test_frame, "species", schema)
    assert result.labels == [0, 1, 2] and all(type(v) is int for v in result.labels)
