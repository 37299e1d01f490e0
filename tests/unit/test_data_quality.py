"""One bad cell must not change a feature's type or size (issue 9, finding 4).

A single ``abc`` in a numeric column of the training CSV once made the column
categorical with 310 categories, and a single 1 GB cell made a released model of
1.07 GB. Now both are data errors (exit 2) naming the column, where the data is
read; a column the recipe declares categorical (``categorical_columns``) is
typed categorical and kept in the recipe, so retraining keeps it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops.core.data import MAX_CELL_CHARS, MAX_ROW_CHARS, check_text_sizes, read_table, shown
from mlops.core.errors import EXIT_USAGE, DataError
from mlops.model.candidate import train_candidate
from mlops.model.feature_quality import (
    MAX_CATEGORIES,
    MAX_CATEGORY_CHARS,
    check_categories,
    check_features,
)
from mlops.model.schema import CATEGORICAL, NUMERIC
from mlops.model.training import split_dataset, train
from mlops.monitoring.check import DeployedModel
from mlops.repository.source import fetch_repository
from tests.training_helpers import TARGET, breast_cancer


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return breast_cancer()


def as_read(frame: pd.DataFrame, tmp_path, name: str = "training.csv") -> pd.DataFrame:
    """``frame`` written to CSV and read back the way a run reads its data."""
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return read_table(str(path))


def with_grade(frame: pd.DataFrame, stray: str | None = "x") -> pd.DataFrame:
    """``frame`` plus a column of grades 1-3, one of them ``stray`` (text codes, really categorical)."""
    grades = pd.Series(np.arange(len(frame)) % 3 + 1, dtype=object)
    if stray is not None:
        grades.iloc[7] = stray
    return frame.assign(grade=grades.to_numpy())


# -- a numeric-looking column with a few values that are not numbers ----------------------------
def test_one_stray_word_in_a_numeric_column_is_a_data_error(cancer, tmp_path):
    broken = cancer.astype({"mean_radius": object})
    broken.loc[17, "mean_radius"] = "abc"
    frame = as_read(broken, tmp_path)
    assert frame["mean_radius"].dtype == object  # what once became 310 categories
    with pytest.raises(DataError) as info:
        split_dataset(frame, TARGET, source="training.csv")
    message = str(info.value)
    assert info.value.exit_code == EXIT_USAGE
    assert "column 'mean_radius' in training.csv looks numeric" in message
    assert f"{len(frame) - 1:,} of {len(frame):,} values are numbers" in message
    assert "1 value(s) are not: 'abc'" in message
    assert "categorical_columns=mean_radius" in message


def test_at_most_three_examples_escaped_and_truncated(cancer, tmp_path):
    broken = cancer.astype({"mean_texture": object})
    strays = ["?", "n.a.", "line\nbreak <b>", "y" * 500, "?"]
    for row, value in zip((3, 9, 27, 81, 243), strays, strict=True):
        broken.loc[row, "mean_texture"] = value
    with pytest.raises(DataError) as info:
        split_dataset(broken, TARGET)
    message = str(info.value)
    assert "5 value(s) are not: '?', 'n.a.', 'line\\nbreak <b>'" in message
    assert "y" * 41 not in message and "\n" not in message


def test_a_mostly_text_column_stays_categorical(cancer):
    codes = np.where(np.arange(len(cancer)) % 4 == 0, "7", "seven")  # 25% numbers: text codes
    train_frame, _ = split_dataset(cancer.assign(code=codes), TARGET)
    _, schema = train(train_frame, TARGET, "logistic_regression")
    assert schema.feature("code").kind == CATEGORICAL


def test_declared_categorical_column_is_accepted_and_typed_categorical(cancer, tmp_path):
    frame = as_read(with_grade(cancer), tmp_path)
    with pytest.raises(DataError, match="column 'grade' .* looks numeric.*: 'x'"):
        split_dataset(frame, TARGET)
    train_frame, test_frame = split_dataset(frame, TARGET, categorical_columns="grade")
    assert set(train_frame["grade"]) | set(test_frame["grade"]) == {"1", "2", "3", "x"}
    _, schema = train(train_frame, TARGET, "logistic_regression", categorical_columns=["grade"])
    grade = schema.feature("grade")
    assert grade.kind == CATEGORICAL and grade.categories == set(train_frame["grade"])
    assert schema.feature("mean_radius").kind == NUMERIC


def test_declared_numeric_dtype_column_becomes_categorical(cancer):
    train_frame, _ = split_dataset(with_grade(cancer, stray=None).astype({"grade": int}), TARGET)
    _, schema = train(train_frame, TARGET, "random_forest", categorical_columns="grade")
    assert schema.feature("grade").kind == CATEGORICAL
    assert schema.feature("grade").categories == {"1", "2", "3"}


@pytest.mark.parametrize(
    "declared,match",
    [
        ("no_such", "categorical_columns not found in data .*: no_such"),
        (TARGET, "cannot be in categorical_columns"),
        ("mean_radius,worst_area", "categorical_columns not found .*: worst_area"),
    ],
)
def test_declared_columns_must_be_features(cancer, declared, match):
    with pytest.raises(DataError, match=match):
        split_dataset(
            cancer,
            TARGET,
            drop_columns="worst_area",
            categorical_columns=declared,
        )


# -- categoricals that are identifiers or free text ---------------------------------------------
def test_declaring_a_continuous_column_categorical_hits_the_category_bound(cancer):
    with pytest.raises(DataError) as info:
        split_dataset(cancer, TARGET, categorical_columns="mean_radius")
    message = str(info.value)
    distinct = cancer["mean_radius"].nunique()
    assert f"categorical column 'mean_radius' in data has {distinct:,} distinct values" in message
    assert f"{len(cancer):,} rows" in message and f"{MAX_CATEGORIES:,} and half the rows" in message
    assert "drop_columns=mean_radius" in message


def test_identifier_column_is_a_data_error(cancer):
    ids = [f"patient-{i:05d}" for i in range(len(cancer))]
    with pytest.raises(DataError, match="'patient_id' .* looks like an identifier"):
        split_dataset(cancer.assign(patient_id=ids), TARGET)
    # Dropped, it is fine.
    split_dataset(cancer.assign(patient_id=ids), TARGET, drop_columns="patient_id")


def test_small_tables_are_not_judged_by_the_share_of_distinct_values():
    column = pd.Series([f"c{i}" for i in range(40)])  # 40 distinct in 40 rows, under the floor
    check_categories(column, "c", "tiny")


def test_more_than_max_categories_is_a_data_error():
    column = pd.Series([f"c{i % (MAX_CATEGORIES + 1)}" for i in range(4 * MAX_CATEGORIES)])
    with pytest.raises(DataError, match=f"{MAX_CATEGORIES + 1:,} distinct values"):
        check_categories(column, "c", "big")


def test_categories_over_the_total_size_are_a_data_error():
    long_labels = pd.Series([f"{i}-" + "z" * 40_000 for i in range(30)] * 3)
    assert long_labels.str.len().sum() / 3 > MAX_CATEGORY_CHARS
    with pytest.raises(DataError, match=f"the limit is {MAX_CATEGORY_CHARS:,}"):
        check_features(pd.DataFrame({"note": long_labels}), "notes")


# -- cell and row sizes, where any table is read ------------------------------------------------
def test_a_huge_cell_is_refused_when_read(cancer, tmp_path):
    broken = cancer.astype({"mean_area": object})
    broken.loc[5, "mean_area"] = "9" * (MAX_CELL_CHARS + 1)
    path = tmp_path / "huge.csv"
    broken.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        read_table(str(path))
    message = str(info.value)
    assert f"column 'mean_area' in data at {str(path)!r} has a cell of" in message
    assert f"{MAX_CELL_CHARS + 1:,} characters (data row 6, 1 such cell(s))" in message
    assert f"the limit is {MAX_CELL_CHARS:,} characters per cell" in message
    assert len(message) < 500  # the cell itself is not in the message


def test_a_huge_row_is_refused(tmp_path):
    wide = pd.DataFrame({f"text_{i}": ["a", "b" * (MAX_CELL_CHARS - 1)] for i in range(17)})
    path = tmp_path / "wide.parquet"
    wide.to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"data row 2 of .* holds 1,114,095 characters") as info:
        read_table(str(path))
    assert f"the limit is {MAX_ROW_CHARS:,} characters per row" in str(info.value)


def test_text_sizes_ignore_numbers_and_mixed_objects():
    frame = pd.DataFrame(
        {
            "x": np.arange(3.0),
            "flag": [True, False, True],
            "mixed": [1, None, "ok"],
            "lists": [[1] * 10, [2], None],
        }
    )
    check_text_sizes(frame, "mixed", max_cell_chars=10, max_row_chars=12)
    with pytest.raises(DataError, match="column 'mixed' .* cell of 2 characters"):
        check_text_sizes(frame.assign(lists=None), "mixed", max_cell_chars=1)


def test_hostile_column_names_are_shown_escaped():
    name = "</script>\n" + "n" * 100
    assert "\n" not in shown(name) and "(110 characters)" in shown(name)
    frame = pd.DataFrame({name: ["a" * 20]})
    with pytest.raises(DataError) as info:
        check_text_sizes(frame, "t", max_cell_chars=10)
    assert "\n" not in str(info.value) and "n" * 41 not in str(info.value)


# -- the recipe keeps the declaration -----------------------------------------------------------
def test_candidate_records_categorical_columns_and_the_recipe_returns_them(cancer, tmp_path):
    train_frame, test_frame = split_dataset(
        with_grade(cancer), TARGET, seed=1, categorical_columns="grade"
    )
    train_frame.to_parquet(tmp_path / "train.parquet", index=False)
    test_frame.to_parquet(tmp_path / "test.parquet", index=False)
    fetched = fetch_repository("builtin:logistic_regression", tmp_path / "repository")
    candidate = train_candidate(
        tmp_path / "train.parquet",
        tmp_path / "test.parquet",
        tmp_path / "model",
        fetched.path,
        target_column=TARGET,
        model_name="graded",
        categorical_columns="grade",
        seed=1,
        repository={"uri": fetched.source.pinned_uri(), "tree_digest": fetched.tree_digest},
    )
    metadata = json.loads((candidate.model_dir / "metadata.json").read_text())
    assert metadata["params"] == {"seed": 1, "categorical_columns": ["grade"]}
    grade = next(f for f in metadata["features"] if f["name"] == "grade")
    assert grade == {"name": "grade", "kind": "categorical", "categories": ["1", "2", "3", "x"]}
    deployed = DeployedModel("graded", candidate.version, "s3://x", metadata, train_frame)
    assert deployed.recipe() == {
        "target_column": TARGET,
        "drop_columns": "",
        "categorical_columns": "grade",
        "recipe_uri": "builtin:logistic_regression",
    }
    # A model published before the parameter and repositories existed recorded the
    # built-in estimator by name: it retrains with that recipe and none declared.
    older = {k: v for k, v in metadata.items() if k not in ("params", "recipe", "repository")}
    older["estimator"] = "logistic_regression"
    assert DeployedModel("graded", "1", "s3://x", older, train_frame).recipe() == {
        "target_column": TARGET,
        "drop_columns": "",
        "categorical_columns": "",
        "recipe_uri": "builtin:logistic_regression",
    }
