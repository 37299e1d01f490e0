"""The one feature schema: its metadata.json format, its coercion, and every consumer reading kinds from it."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import DataError
from mlops.model.schema import (
    CATEGORICAL,
    NUMERIC,
    Feature,
    FeatureSchema,
    coerce,
    coerce_column,
    infer_kind,
)
from tests.serving_helpers import FEATURES, build_model_dir, make_keypair, publish, sample_rows

# metadata.json entries exactly as every published model so far carries them.
LEGACY_METADATA = {
    "feature_names": ["age", "colour", "flag", "empty"],
    "features": [
        {"name": "age", "kind": "numeric", "min": 18.0, "max": 90.0},
        {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]},
        {"name": "flag", "kind": "categorical", "categories": ["False", "True"]},
        {"name": "empty", "kind": "numeric", "min": None, "max": None},
    ],
}


# -- metadata.json ------------------------------------------------------------------------------
def test_legacy_metadata_loads_and_writes_back_byte_for_byte():
    schema = FeatureSchema.from_metadata(LEGACY_METADATA)
    assert schema.names == ("age", "colour", "flag", "empty")
    assert schema.feature("age") == Feature("age", NUMERIC, 18.0, 90.0)
    assert schema.feature("colour").categories == frozenset({"blue", "red"})
    assert schema.numeric_names == ["age", "empty"]
    assert schema.categorical_names == ["colour", "flag"]
    assert json.dumps(schema.to_metadata(), sort_keys=True) == json.dumps(
        LEGACY_METADATA, sort_keys=True
    )


def test_round_trip_from_a_training_frame():
    frame = pd.DataFrame(
        {
            "size": [1.0, 2.5, np.inf, np.nan, -3.0],
            "count": [1, 2, 3, 4, 5],
            "flag": [True, False, True, True, False],
            "color": ["red", "blue", None, "red", "green"],
        }
    )
    schema = FeatureSchema.from_frame(frame)
    on_disk = json.loads(json.dumps({"version": "v1", **schema.to_metadata()}))
    again = FeatureSchema.from_metadata(on_disk)
    assert again == schema and again.names == tuple(frame.columns)
    assert [f.kind for f in again.features] == [NUMERIC, NUMERIC, CATEGORICAL, CATEGORICAL]


def test_feature_names_order_the_features_and_must_agree():
    reordered = {**LEGACY_METADATA, "feature_names": ["flag", "age", "empty", "colour"]}
    assert FeatureSchema.from_metadata(reordered).names == ("flag", "age", "empty", "colour")
    assert FeatureSchema.from_metadata({"features": LEGACY_METADATA["features"]}).names == (
        "age",
        "colour",
        "flag",
        "empty",
    )
    with pytest.raises(ValueError, match="disagree"):
        FeatureSchema.from_metadata({**LEGACY_METADATA, "feature_names": ["age"]})
    with pytest.raises(ValueError, match="no 'features'"):
        FeatureSchema.from_metadata({"feature_names": ["age"]})
    bad_kind = [{"name": "x", "kind": "text"}]
    with pytest.raises(ValueError, match="unknown kind 'text'"):
        FeatureSchema.from_metadata({"features": bad_kind})
    with pytest.raises(ValueError, match="duplicate"):
        FeatureSchema([Feature("a", NUMERIC), Feature("a", CATEGORICAL)])


def test_schema_is_immutable():
    schema = FeatureSchema.from_metadata(LEGACY_METADATA)
    with pytest.raises(dataclasses.FrozenInstanceError):
        schema.features = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        schema.features[0].kind = CATEGORICAL  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        schema.numeric_min[0] = 0.0
    with pytest.raises(TypeError):
        schema.index["age"] = 3  # type: ignore[index]
    assert hash(schema) == hash(FeatureSchema.from_metadata(LEGACY_METADATA))


def test_infer_kind_decides_once_from_the_dtype():
    assert infer_kind(pd.Series([1, 2])) == NUMERIC
    assert infer_kind(pd.Series([1.5, np.nan])) == NUMERIC
    assert infer_kind(pd.Series([True, False])) == CATEGORICAL
    assert infer_kind(pd.Series(["a", "b"])) == CATEGORICAL
    assert infer_kind(pd.Series(["a"], dtype="category")) == CATEGORICAL
    declared = FeatureSchema.from_frame(pd.DataFrame({"code": [1, 2, 3]}), categorical=["code"])
    assert declared.feature("code") == Feature("code", CATEGORICAL, categories={"1", "2", "3"})


# -- the one coercion ---------------------------------------------------------------------------
def test_coerce_column_numeric_and_categorical():
    number, category = Feature("x", NUMERIC), Feature("c", CATEGORICAL)
    np.testing.assert_array_equal(coerce_column(number, [1, None, 2.5]), [1.0, np.nan, 2.5])
    np.testing.assert_array_equal(
        coerce_column(number, pd.Series(["3.5", None])), np.array([3.5, np.nan])
    )
    nullable = coerce_column(number, pd.Series([1, None], dtype="Int64"))
    assert nullable.dtype == np.float64 and np.isnan(nullable[1])
    floats = np.array([1.0, 2.0])
    assert coerce_column(number, floats) is floats  # the request path copies nothing
    text = coerce_column(category, pd.Series([True, None, 3, "y", np.nan, pd.NA], dtype=object))
    assert text.dtype == object and text[[0, 2, 3]].tolist() == ["True", "3", "y"]
    assert all(isinstance(v, float) and np.isnan(v) for v in text[[1, 4, 5]])
    with pytest.raises(ValueError):
        coerce_column(number, pd.Series(["abc"]))


def test_coerce_orders_columns_keeps_the_index_and_names_bad_columns():
    schema = FeatureSchema.from_metadata(LEGACY_METADATA)
    frame = pd.DataFrame(
        {
            "flag": [True, None],
            "extra": [0, 0],
            "empty": [None, None],
            "colour": ["red", None],
            "age": [30, 40],
        },
        index=[7, 9],
    )
    model_input = coerce(frame, schema)
    assert list(model_input.columns) == list(schema.names) and list(model_input.index) == [7, 9]
    assert model_input["age"].dtype == np.float64 and model_input["empty"].isna().all()
    assert model_input["flag"].tolist()[0] == "True" and pd.isna(model_input["flag"].iloc[1])
    assert pd.isna(model_input["colour"].iloc[1])  # None -> NaN: imputed, as in serving
    with pytest.raises(DataError, match="holdout lacks feature column.*age"):
        coerce(frame.drop(columns=["age"]), schema, source="holdout")
    with pytest.raises(DataError, match="column 'age' in holdout is not numeric"):
        coerce(frame.assign(age=["old", "young"]), schema, source="holdout")


def test_training_imputes_missing_categories_like_serving():
    """A missing category read from Parquet (None) is imputed at training, as null is at serving."""
    from mlops.model.training import train
    from tests.training_helpers import iris_with_color

    frame = iris_with_color()
    frame["color"] = frame["color"].astype(object)
    frame.loc[frame.index[::7], "color"] = None
    model, schema = train(frame, "species", "logistic_regression")
    encoder = model.named_steps["preprocess"].named_transformers_["categorical"][-1]
    assert [c.tolist() for c in encoder.categories_] == [["blue", "green", "red"]]
    assert schema.feature("color").categories == frozenset({"blue", "green", "red"})


# -- every consumer takes the kinds from metadata.json -----------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keypair(tmp_path_factory.mktemp("schema-keys"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, keys):
    return build_model_dir(tmp_path_factory.mktemp("schema-model") / "model", keys[0])[0]


def _metadata(directory) -> dict:
    return json.loads((directory / "metadata.json").read_text())


def test_the_predictor_validator_explainer_and_fast_path_share_the_metadata_schema(model_dir, keys):
    from serving.predictor import SklearnPredictor

    predictor = SklearnPredictor("iris", model_dir, keys[1])
    assert predictor.load(), predictor.not_ready_reason
    loaded = predictor.loaded
    assert loaded is not None and dataclasses.is_dataclass(loaded)
    assert loaded.schema == FeatureSchema.from_metadata(_metadata(model_dir))
    assert loaded.explainer.schema is loaded.schema
    assert loaded.fast_path is not None and loaded.fast_path.schema is loaded.schema
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.version = "v9"  # type: ignore[misc]
    types = {t["name"]: t["datatype"] for t in predictor.get_input_types()}
    assert types == {name: ("BYTES" if name == "color" else "FP64") for name in FEATURES}


def test_validation_follows_the_kinds_in_metadata():
    from kserve.errors import InvalidInput

    from serving.validation import parse_v1

    # "code" holds digits, but metadata.json says categorical: numbers become their text.
    schema = FeatureSchema.from_metadata(
        {
            "features": [
                {"name": "code", "kind": "categorical", "categories": ["1", "2"]},
                {"name": "x", "kind": "numeric", "min": 0.0, "max": 1.0},
            ]
        }
    )
    frame, _ = parse_v1({"instances": [[1, 0.5], ["2", None]]}, schema)
    assert frame["code"].tolist() == ["1", "2"] and frame["x"].dtype == np.float64
    pd.testing.assert_frame_equal(frame, coerce(frame, schema))  # already model input
    with pytest.raises(InvalidInput, match="feature 'x' row 0: expected a number"):
        parse_v1({"instances": [[1, "0.5"]]}, schema)


def test_compute_drift_takes_kinds_from_the_schema_and_compares_model_input():
    from mlops.monitoring.drift import CHI_SQUARE, KS, Z_TEST, ColumnDrift, compute_drift

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"code": rng.integers(0, 40, 500), "flag": [True, False] * 250})
    # Production logs hold model input: the booleans arrive as "True"/"False".
    current = pd.DataFrame({"code": rng.integers(0, 40, 400), "flag": ["True", "False"] * 200})
    inferred = compute_drift(reference, current)
    assert inferred.columns["code"].method == KS
    # True and "True" are one category: two values (Z-test), same shares, no drift.
    assert inferred.columns["flag"] == ColumnDrift("flag", False, 1.0, Z_TEST, 0.05)
    declared = FeatureSchema(
        (Feature("code", CATEGORICAL), Feature("flag", CATEGORICAL, categories={"False", "True"}))
    )
    result = compute_drift(reference, current, schema=declared)
    assert result.columns["code"].method == CHI_SQUARE  # metadata says categorical: not re-inferred
    with pytest.raises(ValueError, match="not both"):
        compute_drift(reference, current, schema=declared, categorical=["code"])


def test_drift_step_reads_kinds_from_the_published_metadata(store, model_dir, tmp_path):
    import warnings

    from mlops.core.store import ObjectStore
    from mlops.monitoring.check import check_drift
    from mlops.monitoring.drift import CHI_SQUARE, KS

    # The same model published twice; the second metadata.json declares sepal_length categorical.
    relabelled = tmp_path / "relabelled"
    shutil.copytree(model_dir, relabelled)
    metadata = _metadata(relabelled)
    for entry in metadata["features"]:
        if entry["name"] == "sepal_length":
            entry.clear()
            entry.update(name="sepal_length", kind="categorical", categories=[])
    (relabelled / "metadata.json").write_text(json.dumps(metadata))
    current = tmp_path / "current.csv"
    sample_rows(120, seed=4).to_csv(current, index=False)

    methods = {}
    for version, directory in (("v1", model_dir), ("v2", relabelled)):
        publish(store, directory, "iris", version)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check = check_drift(store, "iris", current_uri=str(current))
        assert isinstance(store, ObjectStore) and check.model.version == version
        assert check.model.schema == FeatureSchema.from_metadata(_metadata(directory))
        methods[version] = {name: c.method for name, c in check.result.columns.items()}
    assert list(methods["v1"]) == FEATURES
    assert methods["v1"]["sepal_length"] == KS
    assert methods["v2"]["sepal_length"] == CHI_SQUARE
    assert methods["v1"]["color"] == methods["v2"]["color"] == CHI_SQUARE


def test_drift_cli_between_tables_infers_kinds_once_from_the_reference(tmp_path, capsys):
    from mlops.cli import main

    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.normal(size=300), "flag": rng.random(300) < 0.5})
    current = pd.DataFrame(
        {"x": rng.normal(size=300), "flag": np.where(rng.random(300) < 0.5, "True", "False")}
    )
    reference.to_parquet(tmp_path / "ref.parquet")
    current.to_csv(tmp_path / "cur.csv", index=False)
    code = main(
        [
            "drift",
            "--reference",
            str(tmp_path / "ref.parquet"),
            "--current",
            str(tmp_path / "cur.csv"),
            "--json",
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and set(payload["columns"]) == {"x", "flag"}
    assert payload["columns"]["flag"]["method"] == "Z-test p_value"
    assert payload["columns"]["flag"]["drifted"] is False
