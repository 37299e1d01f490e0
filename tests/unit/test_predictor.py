"""SklearnPredictor: verified loading, V1/V2 prediction, strict validation, explanations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from serving.predictor import SklearnPredictor
from tests.serving_helpers import (
    FEATURES,
    NUMERIC,
    build_model_dir,
    flip_byte,
    make_keypair,
    publish,
    sample_rows,
    v1_list_rows,
    v1_object_rows,
    v2_per_feature,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return make_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def linear(tmp_path_factory, keys):
    model_dir, model, _ = build_model_dir(tmp_path_factory.mktemp("lr") / "model", keys[0])
    return model_dir, model


@pytest.fixture(scope="module")
def forest(tmp_path_factory, keys):
    model_dir, model, _ = build_model_dir(
        tmp_path_factory.mktemp("rf") / "model", keys[0], estimator="random_forest", version="v2"
    )
    return model_dir, model


@pytest.fixture(scope="module")
def predictor(linear, keys) -> SklearnPredictor:
    p = SklearnPredictor("iris", linear[0], keys[1], store=None, version="v1")
    assert p.load(), p.not_ready_reason
    return p


def _v2_matrix(frame, datatype="BYTES") -> InferRequest:
    rows = [[str(v) for v in row] for row in v1_list_rows(frame)]
    flat = [v for row in rows for v in row]
    return InferRequest(
        model_name="iris",
        infer_inputs=[
            InferInput(
                name="input-0", shape=[len(rows), len(FEATURES)], datatype=datatype, data=flat
            )
        ],
    )


# -- loading --------------------------------------------------------------------------


def test_load_verifies_and_becomes_ready(predictor):
    assert predictor.ready and predictor.not_ready_reason is None
    assert predictor.version == "v1"
    assert predictor.explainer.method == "linear"


def test_tampered_model_never_becomes_ready(linear, keys, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(linear[0], tampered)
    flip_byte(tampered / "model.skops")
    p = SklearnPredictor("iris", tampered, keys[1], version="v1")
    assert p.load() is False
    assert p.ready is False
    assert "model.skops" in p.not_ready_reason and "VerificationError" in p.not_ready_reason
    with pytest.raises(Exception, match="not ready"):
        p.predict({"instances": v1_list_rows(sample_rows(1))})


def test_tampered_metadata_and_wrong_key_and_unsigned_are_refused(linear, keys, tmp_path):
    meta = tmp_path / "meta"
    shutil.copytree(linear[0], meta)
    doc = json.loads((meta / "metadata.json").read_text())
    doc["features"][0]["max"] = 1e9
    (meta / "metadata.json").write_text(json.dumps(doc))
    p = SklearnPredictor("iris", meta, keys[1])
    assert not p.load() and "metadata.json" in p.not_ready_reason

    _, other_public = make_keypair(tmp_path / "other")
    p = SklearnPredictor("iris", linear[0], other_public)
    assert not p.load() and "key" in p.not_ready_reason

    unsigned = tmp_path / "unsigned"
    shutil.copytree(linear[0], unsigned)
    (unsigned / "model.sig").unlink()
    p = SklearnPredictor("iris", unsigned, keys[1])
    assert not p.load() and "unsigned" in p.not_ready_reason


def test_load_from_store_uri(store, linear, keys):
    ref = publish(store, linear[0], "iris", "v1")
    p = SklearnPredictor("iris", ref.uri, keys[1], store=store, version="v1")
    assert p.load(), p.not_ready_reason
    rows = sample_rows(5)
    assert (
        p.predict({"instances": v1_list_rows(rows)})["predictions"]
        == linear[1].predict(rows).tolist()
    )


# -- predictions ------------------------------------------------------------------------


def test_v1_list_and_object_rows_match_sklearn(predictor, linear):
    rows = sample_rows(20)
    expected = linear[1].predict(rows).tolist()
    listed = predictor.predict({"instances": v1_list_rows(rows)})
    request_id = listed.pop("id")
    assert listed.pop("ids") == [f"{request_id}-{i}" for i in range(20)]
    assert listed == {"predictions": expected, "model_version": "v1", "role": "stable"}
    objects = predictor.predict(
        {"instances": v1_object_rows(rows), "parameters": {"probabilities": True}}
    )
    assert objects["predictions"] == expected
    assert objects["classes"] == [0, 1, 2]
    np.testing.assert_allclose(objects["probabilities"], linear[1].predict_proba(rows))


def test_v1_null_is_imputed(predictor, linear):
    rows = sample_rows(3)
    payload = v1_list_rows(rows)
    payload[0][0] = None
    payload[1][4] = None
    frame = rows.copy()
    frame.loc[0, "sepal_length"] = np.nan
    frame.loc[1, "color"] = np.nan
    assert (
        predictor.predict({"instances": payload})["predictions"]
        == linear[1].predict(frame).tolist()
    )


def test_v2_per_feature_inputs_match_sklearn(predictor, linear):
    rows = sample_rows(15)
    response = predictor.predict(v2_per_feature(rows, parameters={"probabilities": True}))
    assert response.model_version == "v1"
    outputs = {o.name: o for o in response.outputs}
    assert outputs["predict"].data.tolist() == linear[1].predict(rows).tolist()
    assert outputs["predict"].datatype == "INT64"
    assert outputs["probabilities"].shape == [15, 3]
    np.testing.assert_allclose(outputs["probabilities"].data, linear[1].predict_proba(rows))
    rest, _ = response.to_rest()
    assert rest["model_version"] == "v1"


def test_v2_matrix_input_and_requested_outputs(predictor, linear):
    rows = sample_rows(8)
    response = predictor.predict(_v2_matrix(rows))
    # No outputs named: every output the metadata advertises (issue 17).
    advertised = [o["name"] for o in predictor.get_output_types()]
    assert [o.name for o in response.outputs] == advertised == ["predict", "probabilities"]
    assert response.outputs[0].data.tolist() == linear[1].predict(rows).tolist()
    np.testing.assert_allclose(response.outputs[1].data, linear[1].predict_proba(rows))
    for named in (["probabilities"], ["predict"], ["probabilities", "predict"]):
        request = v2_per_feature(rows, request_outputs=[RequestedOutput(n) for n in named])
        response = predictor.predict(request)
        assert [o.name for o in response.outputs] == named
        rest, _ = response.to_rest()
        assert [o["name"] for o in rest["outputs"]] == named


BAD_V1 = [
    ({}, "no 'instances'"),
    ({"instances": {"a": 1}}, "must be a list"),
    ({"instances": []}, "empty"),
    ({"instances": [5.1, 3.5]}, "row 0"),
    ({"instances": [[5.1, 3.5, 1.4, 0.2]]}, "expected 5 values"),
    (
        {"instances": [[5.1, 3.5, 1.4, 0.2, "red"], [5.1, 3.5, 1.4]]},
        "row 1: expected 5 values (one per feature), got 3",
    ),
    (
        {"instances": [[5.1, "3.5", 1.4, 0.2, "red"]]},
        "feature 'sepal_width' row 0: expected a number, got string '3.5'",
    ),
    ({"instances": [[5.1, "NaN", 1.4, 0.2, "red"]]}, "NaN/infinity is not allowed"),
    ({"instances": [[5.1, "inf", 1.4, 0.2, "red"]]}, "NaN/infinity is not allowed"),
    ({"instances": [[5.1, float("nan"), 1.4, 0.2, "red"]]}, "NaN/infinity is not allowed"),
    ({"instances": [[5.1, float("inf"), 1.4, 0.2, "red"]]}, "NaN/infinity is not allowed"),
    ({"instances": [[5.1, True, 1.4, 0.2, "red"]]}, "expected a number, got boolean"),
    (
        {"instances": [[5.1, 3.5, 1.4, 0.2, ["red"]]]},
        "feature 'color' row 0: expected a string category",
    ),
    (
        {
            "instances": [
                {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "color": "red"}
            ]
        },
        "missing feature(s) 'petal_width'",
    ),
    (
        {
            "instances": [
                {
                    "sepal_length": 5.1,
                    "sepal_width": 3.5,
                    "petal_length": 1.4,
                    "petal_width": 0.2,
                    "color": "red",
                    "weight": 3,
                }
            ]
        },
        "unknown feature(s) 'weight'",
    ),
    ({"instances": [[5.1, 3.5, 1.4, 0.2, "red"], {"sepal_length": 1}]}, "row 1: expected a list"),
    ({"instances": ["abc"]}, "row 0: each instance must be a list"),
    ([1, 2], "JSON object"),
    (b"garbage", "JSON object"),
]


@pytest.mark.parametrize("payload,message", BAD_V1, ids=[m for _, m in BAD_V1])
def test_bad_v1_inputs_name_the_problem(predictor, payload, message):
    with pytest.raises(InvalidInput) as caught:
        predictor.predict(payload)
    assert message in str(caught.value)


def test_bad_v2_inputs_name_the_problem(predictor):
    rows = sample_rows(2)
    missing = v2_per_feature(rows)
    missing.inputs = [i for i in missing.inputs if i.name != "petal_width"]
    with pytest.raises(InvalidInput, match="missing feature input.*'petal_width'"):
        predictor.predict(missing)

    extra = v2_per_feature(rows)
    extra.inputs.append(InferInput(name="weight", shape=[2], datatype="FP64", data=[1.0, 2.0]))
    with pytest.raises(InvalidInput, match="unknown input.*'weight'"):
        predictor.predict(extra)

    ragged = v2_per_feature(rows)
    ragged.inputs[1] = InferInput(name="sepal_width", shape=[1], datatype="FP64", data=[1.0])
    with pytest.raises(InvalidInput, match="'sepal_width' has 1 rows, expected 2"):
        predictor.predict(ragged)

    strings = v2_per_feature(rows)
    strings.inputs[0] = InferInput(name="sepal_length", shape=[2], datatype="FP64", data=["a", "b"])
    with pytest.raises(InvalidInput, match="'sepal_length'.*string"):
        predictor.predict(strings)

    nan = v2_per_feature(rows)
    nan.inputs[0] = InferInput(
        name="sepal_length", shape=[2], datatype="FP64", data=[float("nan"), 1.0]
    )
    with pytest.raises(InvalidInput, match="'sepal_length' row 0: NaN"):
        predictor.predict(nan)

    narrow = InferRequest(
        model_name="iris",
        infer_inputs=[
            InferInput(name="input-0", shape=[1, 4], datatype="BYTES", data=["1", "2", "3", "4"])
        ],
    )
    with pytest.raises(InvalidInput, match="expected 5 columns .*got 4"):
        predictor.predict(narrow)

    word = _v2_matrix(rows)
    word.inputs[0].data[1] = "wide"
    with pytest.raises(
        InvalidInput, match="'sepal_width' row 0: expected a number, got string 'wide'"
    ):
        predictor.predict(word)

    with pytest.raises(InvalidInput, match="no inputs"):
        predictor.predict(InferRequest(model_name="iris", infer_inputs=[]))


# -- explanations -------------------------------------------------------------------------


def test_linear_explanation_is_exact(predictor, linear):
    rows = sample_rows(4)
    result = predictor.explain({"instances": v1_list_rows(rows)})
    assert result["method"] == "linear" and result["model_version"] == "v1"
    decision = linear[1].decision_function(rows)
    for i, explanation in enumerate(result["explanations"]):
        assert [a["feature"] for a in explanation["attributions"]] == FEATURES
        predicted = explanation["prediction"]
        assert predicted == linear[1].predict(rows)[i]
        total = explanation["base_value"] + sum(
            a["attribution"] for a in explanation["attributions"]
        )
        assert total == pytest.approx(decision[i, predicted], abs=1e-8)


def test_tree_explanation_is_exact_tree_shap(forest, keys):
    p = SklearnPredictor("iris", forest[0], keys[1], version="v2")
    assert p.load(), p.not_ready_reason
    rows = sample_rows(3)
    first = p.explain({"instances": v1_object_rows(rows)})
    assert first["method"] == "tree_shap"
    assert first == p.explain({"instances": v1_object_rows(rows)})  # deterministic
    proba = forest[1].predict_proba(rows)
    for i, explanation in enumerate(first["explanations"]):
        assert [a["feature"] for a in explanation["attributions"]] == FEATURES
        assert explanation["probability"] == pytest.approx(proba[i].max())
        # Shapley values add up to the forest's probability of the predicted class.
        total = explanation["base_value"] + sum(
            a["attribution"] for a in explanation["attributions"]
        )
        assert total == pytest.approx(proba[i].max(), abs=1e-6)
    with pytest.raises(InvalidInput, match="at most"):
        p.explain({"instances": v1_list_rows(sample_rows(101, seed=3))})


def test_binary_gradient_boosting_shap_adds_up_to_the_log_odds(tmp_path, keys):
    model_dir, model, _ = build_model_dir(
        tmp_path / "gb", keys[0], estimator="gradient_boosting", version="v3", binary=True
    )
    p = SklearnPredictor("iris", model_dir, keys[1], version="v3")
    assert p.load(), p.not_ready_reason
    rows = sample_rows(4)
    result = p.explain({"instances": v1_object_rows(rows)})
    assert result["method"] == "tree_shap"
    decision = model.decision_function(rows)
    for i, explanation in enumerate(result["explanations"]):
        sign = 1.0 if explanation["prediction"] == model.classes_[1] else -1.0
        total = explanation["base_value"] + sum(
            a["attribution"] for a in explanation["attributions"]
        )
        assert total == pytest.approx(sign * decision[i], abs=1e-6)


def test_other_models_fall_back_to_occlusion(tmp_path, keys):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    from serving.explain import Explainer

    model_dir, model, features = build_model_dir(tmp_path / "knn", keys[0])
    p = SklearnPredictor("iris", model_dir, keys[1], version="v1")
    assert p.load(), p.not_ready_reason
    knn = Pipeline([("preprocess", model[0]), ("model", KNeighborsClassifier(3))])
    knn.fit(features, model.predict(features))
    explainer = Explainer(knn, p.schema, features)
    assert explainer.method == "occlusion"
    result = explainer.explain(features.head(2))
    proba = knn.predict_proba(features.head(2))
    for i, explanation in enumerate(result["explanations"]):
        assert explanation["probability"] == pytest.approx(proba[i].max())
        assert len(explanation["attributions"]) == len(FEATURES)


def test_fast_path_matches_the_pipeline_and_falls_back(predictor, linear, forest, keys, tmp_path):
    binary = build_model_dir(tmp_path / "binary", keys[0], binary=True)[:2]
    rows = sample_rows(40, seed=5)
    payload = v1_list_rows(rows)
    for i in range(0, 40, 3):
        payload[i][i % 5] = None  # missing values, imputed
    payload[1][4] = "purple"  # unseen category
    payload[2][0] = 1e6  # far out of range
    frame = rows.astype({"color": object})
    for i in range(40):
        frame.iloc[i] = [np.nan if v is None else v for v in payload[i]]
    frame = frame.astype({name: float for name in NUMERIC})
    for (directory, model), linear_head in ((linear, True), (binary, True), (forest, False)):
        p = SklearnPredictor("iris", directory, keys[1])
        assert p.load() and p.fast_path is not None
        assert (p.fast_path.linear_head is not None) == linear_head
        np.testing.assert_allclose(
            p.fast_path.predict_proba(frame), model.predict_proba(frame), rtol=1e-9
        )
        assert p.predict({"instances": payload})["predictions"] == model.predict(frame).tolist()
        shuffled = frame[list(reversed(frame.columns))]
        np.testing.assert_allclose(
            p.fast_path.predict_proba(shuffled), model.predict_proba(frame), rtol=1e-9
        )

    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from serving.fast_path import FastPath

    odd = Pipeline([("pre", FunctionTransformer()), ("model", linear[1][-1])])
    assert FastPath.build(odd, predictor.schema, rows) is None


def test_out_of_range_counts_per_feature_ignoring_nulls():
    import pandas as pd

    from mlops.model.schema import CATEGORICAL, Feature, FeatureSchema
    from mlops.model.schema import NUMERIC as NUMBER
    from serving.validation import out_of_range_counts

    schema = FeatureSchema(
        [
            Feature("age", NUMBER, min=18.0, max=90.0, categories=frozenset()),
            Feature(
                "colour", CATEGORICAL, min=None, max=None, categories=frozenset({"red", "blue"})
            ),
            Feature("score", NUMBER, min=None, max=1.0, categories=frozenset()),
            Feature("free", NUMBER, min=None, max=None, categories=frozenset()),
        ]
    )
    frame = pd.DataFrame(
        {
            "age": [17.0, 18.0, 95.0, np.nan],
            "colour": ["red", "green", None, "pink"],
            "score": [-5.0, 1.5, 1.0, 2.0],
            "free": [1e9, -1e9, 0.0, np.nan],
        }
    )
    expected = {"age": 2, "colour": 2, "score": 2}
    assert out_of_range_counts(schema, frame) == expected
    assert out_of_range_counts(schema, frame[list(reversed(schema.names))]) == expected
    assert out_of_range_counts(schema, frame.iloc[[1]]) == {"colour": 1, "score": 1}


def test_linear_head_that_disagrees_is_dropped_but_the_fast_transform_stays(
    predictor, linear, monkeypatch
):
    from serving.fast_path import FastPath

    features = sample_rows(30, seed=2)
    model = linear[1]
    real_head = FastPath._linear_head

    def skewed_head(
        estimator,
    ):  # stands in for a linear model whose probabilities are not a softmax
        weights, intercept = real_head(estimator)
        return weights * 2.0, intercept

    monkeypatch.setattr(FastPath, "_linear_head", staticmethod(skewed_head))
    fast = FastPath.build(model, predictor.schema, features)
    assert fast is not None and fast.linear_head is None
    np.testing.assert_allclose(
        fast.predict_proba(features), model.predict_proba(features), rtol=1e-9
    )


def test_inference_log_flush_frame_of_numeric_requests_equals_the_per_request_frames():
    """A numeric model's records take the flush's one-constructor path: the same frame.

    Column for column what the per-request frames give, concatenated.
    """
    from datetime import UTC, datetime, timedelta

    import pandas as pd

    from serving.inference_log import _batch_frame, _Chunk

    start = datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)
    columns = ["a", "b", "prediction"]  # a feature named like a reserved column is dropped
    chunks = []
    for i in range(50):
        rows = 1 + i % 3
        values = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3) + i
        values[0, 1] = np.nan
        chunks.append(
            _Chunk(
                f"v{i % 2}",
                values,
                np.array([i % 2] * rows),
                start + timedelta(seconds=i),
                rows,
                columns,
                [f"r{i}-{j}" for j in range(rows)] if i % 5 else None,
                "canary" if i % 4 == 0 else "stable",
            )
        )
    batched = _batch_frame(chunks)
    expected = pd.concat([c.frame() for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(
        batched, expected.astype({"timestamp": batched["timestamp"].dtype})
    )
    assert list(batched.columns) == [
        "a",
        "b",
        "prediction",
        "model_version",
        "timestamp",
        "request_id",
        "role",
    ]
    assert str(batched["timestamp"].dtype) == "datetime64[us, UTC]"
