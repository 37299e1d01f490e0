"""Issue 9 findings 5 and 7, issue 17's response parts: what the predictor refuses and returns.

* Malformed V2 tensors that reach the predictor (ragged ``data``, a shape whose
  product overflows 64 bits, a value past its declared float type, parameters that
  are not objects) are ``InvalidInput`` (400) naming the problem, never an
  unexpected exception (500).
* Values beyond what the model's arithmetic holds (``1e306`` x 30 through the
  breast-cancer scaling, float32 overflow in tree ensembles, probabilities that
  overflow) are a 400 naming the feature and value on ``:predict``, ``:explain``
  and V2 ``infer``: never a 200 with ``null``, never a 500.
* V2 answers carry no ``parameters: null``, and every advertised output when the
  request names none, exactly the named ones otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from serving.predictor import SklearnPredictor
from serving.scoring import PipelineScorer
from tests.model_builders import breast_cancer_model_dir
from tests.serving_helpers import (
    FEATURES,
    build_model_dir,
    make_keypair,
    sample_rows,
    v1_list_rows,
)

ROW = [5.1, 3.5, 1.4, 0.2, "red"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return make_keypair(tmp_path_factory.mktemp("keys"))


def _load(model_dir: Path, public_key: Path, name: str = "m") -> SklearnPredictor:
    predictor = SklearnPredictor(name, model_dir, public_key)
    assert predictor.load(), predictor.not_ready_reason
    return predictor


@pytest.fixture(scope="module")
def iris(tmp_path_factory, keys) -> SklearnPredictor:
    return _load(build_model_dir(tmp_path_factory.mktemp("lr") / "m", keys[0])[0], keys[1], "iris")


@pytest.fixture(scope="module")
def cancer(tmp_path_factory, keys) -> dict[str, tuple[SklearnPredictor, object]]:
    """The 30-feature model, per estimator: (predictor, fitted pipeline)."""
    loaded = {}
    for estimator in ("logistic_regression", "random_forest"):
        model_dir, model = breast_cancer_model_dir(
            tmp_path_factory.mktemp(estimator) / "m", keys[0], estimator
        )
        loaded[estimator] = (_load(model_dir, keys[1], "cancer"), model)
    return loaded


def _request(*inputs: InferInput, **kwargs) -> InferRequest:
    return InferRequest(model_name="iris", infer_inputs=list(inputs), **kwargs)


def _matrix(rows: list[list], datatype: str = "BYTES", **kwargs) -> InferRequest:
    data = [str(v) if datatype == "BYTES" else v for row in rows for v in row]
    return _request(InferInput("x", [len(rows), len(rows[0])], datatype, data), **kwargs)


# -- malformed V2 tensors -----------------------------------------------------------------------

MALFORMED = [
    ("ragged data", InferInput("x", [1, 5], "FP64", [[1, 2], 3]), "'data' is ragged"),
    ("ragged BYTES", InferInput("x", [1, 5], "BYTES", [["1", "2"], "3"]), "needs 5 values, got 2"),
    (
        "shape product overflows",
        InferInput("x", [4294967296, 4294967296], "BYTES", [str(v) for v in ROW]),
        "needs 18446744073709551616 values, got 5",
    ),
    (
        "shape product overflows, no data",
        InferInput("x", [4294967296, 4294967296], "FP64", []),
        "needs 18446744073709551616 values, got 0",
    ),
    ("negative dimension", InferInput("x", [-1, 5], "BYTES", ["1"] * 5), "invalid shape"),
    ("shape not a list", InferInput("x", "1,5", "BYTES", ["1"] * 5), "invalid shape"),
    ("boolean dimension", InferInput("x", [True, 5], "BYTES", ["1"] * 5), "invalid shape"),
    ("data not a list", InferInput("x", [1, 5], "FP64", {"a": 1}), "'data' must be a list"),
    ("null in FP64", InferInput("x", [1, 5], "FP64", [1, None, 3, 4, 5]), "holds null"),
    ("text in FP64", InferInput("x", [1, 5], "FP64", [1, 2, "a", 4, 5]), "holds string 'a'"),
    (
        "float32 overflow in FP32",
        InferInput("x", [1, 5], "FP32", [1e39, 1, 1, 1, 1]),
        "value 1e+39 does not fit FP32",
    ),
    (
        "float16 overflow in FP16 text",
        InferInput("x", [1, 5], "FP16", [70000, 1, 1, 1, 1]),
        "value 70000 does not fit FP16",
    ),
    ("unknown datatype", InferInput("x", [1, 5], "FP128", [1] * 5), "unsupported datatype"),
]


@pytest.mark.parametrize(
    "tensor,message", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_tensors_are_invalid_input(iris, tensor, message):
    for call in (iris.predict, iris.explain):
        with pytest.raises(InvalidInput) as caught:
            call(_request(tensor))
        assert message in str(caught.value)


def test_malformed_envelopes_are_invalid_input(iris):
    rows = [ROW, ROW]
    cases = [
        (_matrix(rows, parameters=[1]), "request 'parameters' must be an object"),
        (_matrix(rows, request_id=5), "request 'id' must be a string, got int 5"),
        (
            _matrix(rows, request_outputs=[RequestedOutput("predict", parameters=["x"])]),
            "output 'predict' 'parameters' must be an object",
        ),
        (
            _matrix(rows, request_outputs=[RequestedOutput("predict"), RequestedOutput("predict")]),
            "output 'predict' is requested twice",
        ),
        (
            _matrix(rows, request_outputs=[RequestedOutput("proba")]),
            "unknown requested output(s) 'proba'; available: 'predict', 'probabilities'",
        ),
    ]
    for request, message in cases:
        with pytest.raises(InvalidInput) as caught:
            iris.predict(request)
        assert message in str(caught.value)


def test_numbers_past_float_range_in_v1_are_invalid_input(iris):
    with pytest.raises(InvalidInput, match="'sepal_length' row 0: .* beyond float range"):
        iris.predict({"instances": [[10**400, 3.5, 1.4, 0.2, "red"]]})


# -- values beyond what the model's arithmetic holds --------------------------------------------


def _everywhere(predictor: SklearnPredictor, row: list) -> list[str]:
    """The 400 messages of ``row`` on V1 predict (with probabilities), explain and V2 infer."""
    calls = [
        lambda: predictor.predict({"instances": [row], "parameters": {"probabilities": True}}),
        lambda: predictor.explain({"instances": [row]}),
        lambda: predictor.predict(_matrix([row])),
    ]
    messages = []
    for call in calls:
        with pytest.raises(InvalidInput) as caught:
            call()
        messages.append(str(caught.value))
    return messages


def test_1e306_times_30_is_a_400_on_every_endpoint(cancer):
    # Issue 9: 200 with null probabilities on :predict, 500 on :explain.
    predictor, _ = cancer["logistic_regression"]
    for message in _everywhere(predictor, [1e306] * 30):
        assert "row 0: value 1e+306 overflows to infinity (not finite)" in message
        assert message.startswith("feature '")


def test_float32_overflow_in_a_forest_is_a_400_on_every_endpoint(cancer):
    predictor, _ = cancer["random_forest"]
    assert predictor.fast_path is not None and predictor.fast_path.float32
    row = [1.0] * 30
    row[3] = 1e42  # finite in float64, even scaled; infinite in the float32 trees compute in
    for message in _everywhere(predictor, row):
        assert f"feature {predictor.schema.names[3]!r} row 0: value 1e+42" in message
        assert "float32" in message
    for message in _everywhere(predictor, [1e306] * 30):
        assert "float32" in message


def test_probabilities_that_overflow_are_a_400(iris):
    # Scaled values are finite, but their weighted sum overflows: softmax gives NaN.
    row = [1e308, 1.0, 1e308, 1e308, "red"]
    for message in _everywhere(iris, row):
        assert "row 0: the model's probabilities are not finite" in message
        assert "feature 'sepal_length' = 1e+308" in message


def test_the_pipeline_path_checks_the_transformed_matrix_too(cancer):
    predictor, model = cancer["logistic_regression"]
    scorer = PipelineScorer(model)
    frame = pd.DataFrame([[1e306] * 30], columns=predictor.schema.names)
    with pytest.raises(InvalidInput, match=r"feature '\w+' row 0: value 1e\+306 overflows"):
        scorer.predict_proba(frame)
    fine = pd.DataFrame([[10.0] * 30], columns=predictor.schema.names)
    np.testing.assert_allclose(scorer.predict_proba(fine), model.predict_proba(fine))
    forest = PipelineScorer(cancer["random_forest"][1])
    fine.iloc[0, 0] = 1e42
    with pytest.raises(InvalidInput, match="float32"):
        forest.predict_proba(fine)


def test_a_predictor_without_a_fast_path_checks_the_same(cancer, keys, monkeypatch):
    from serving.fast_path import FastPath

    monkeypatch.setattr(FastPath, "build", classmethod(lambda cls, *args: None))
    predictor, _ = cancer["logistic_regression"]
    slow = _load(Path(predictor.model_uri), keys[1], "cancer")
    assert slow.fast_path is None and isinstance(slow.loaded.scorer, PipelineScorer)
    for message in _everywhere(slow, [1e306] * 30):
        assert "overflows to infinity (not finite)" in message


def test_large_but_representable_values_still_answer(cancer):
    for predictor, model in cancer.values():
        row = [1e30] * 30
        answer = predictor.predict({"instances": [row], "parameters": {"probabilities": True}})
        frame = pd.DataFrame([row], columns=predictor.schema.names)
        assert answer["predictions"] == model.predict(frame).tolist()
        assert np.isfinite(answer["probabilities"]).all()
        explained = predictor.explain({"instances": [row]})
        assert all(
            np.isfinite(a["attribution"]) for a in explained["explanations"][0]["attributions"]
        )


# -- what V2 answers carry ----------------------------------------------------------------------


def test_v2_answers_carry_no_null_parameters_and_every_advertised_output(iris):
    rows = v1_list_rows(sample_rows(3))
    advertised = [o["name"] for o in iris.get_output_types()]
    assert advertised == ["predict", "probabilities"]
    for request, expected in (
        (_matrix(rows), advertised),
        (_matrix(rows, parameters={"probabilities": False}), advertised),
        (_matrix(rows, request_outputs=[RequestedOutput("predict")]), ["predict"]),
        (_matrix(rows, request_outputs=[RequestedOutput("probabilities")]), ["probabilities"]),
    ):
        body, json_length = iris.predict(request).to_rest()
        assert json_length is None  # plain JSON
        assert [o["name"] for o in body["outputs"]] == expected
        # Response parameters are OIP scalars (role, row ids); the outputs carry none.
        assert body["parameters"] == {
            "role": "stable",
            "row_ids": ",".join(f"{body['id']}-{i}" for i in range(3)),
        }
        assert body["model_version"] == "v1"
        assert all("parameters" not in o for o in body["outputs"])
        assert None not in body.values()


def test_binary_outputs_still_work(iris):
    rows = v1_list_rows(sample_rows(2))
    request = _matrix(
        rows, request_outputs=[RequestedOutput("probabilities", parameters={"binary_data": True})]
    )
    body, json_length = iris.predict(request).to_rest()
    assert isinstance(body, bytes) and json_length is not None
    assert b'"binary_data_size":48' in body[:json_length]  # 2 rows x 3 classes x 8 bytes


def test_per_feature_inputs_with_the_feature_names_still_work(iris):
    frame = sample_rows(4)
    inputs = [
        InferInput(name, [4], "BYTES" if name == "color" else "FP32", frame[name].tolist())
        for name in FEATURES
    ]
    response = iris.predict(_request(*inputs))
    assert [o.name for o in response.outputs] == ["predict", "probabilities"]
