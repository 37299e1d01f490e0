"""Issue 9 finding 3: bounds on rows, work and response size, refused before any value is parsed.

The regression: a 1,000-class model and a big ``:predict`` with probabilities
returned 949 MB and stalled the server. Here the same model (trained in-process)
refuses such requests in milliseconds with a 413 naming the bound and the setting
that raises it, and still answers small ones exactly like scikit-learn.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from starlette.exceptions import HTTPException

from mlops.core.errors import UsageError
from mlops.core.settings import ServingSettings
from serving.limits import RequestLimits, RequestTooLarge
from serving.predictor import SklearnPredictor
from tests.model_builders import WIDE_FEATURES, many_class_model_dir, wide_rows
from tests.serving_helpers import make_keypair

CLASSES = 1000
#: Refusals must not parse, score or serialise anything: far below this.
FAST_SECONDS = 0.2


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return make_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def wide(tmp_path_factory, keys):
    """(predictor with the default limits, fitted 1,000-class pipeline)."""
    model_dir, model = many_class_model_dir(tmp_path_factory.mktemp("wide") / "m", keys[0])
    predictor = SklearnPredictor("wide", model_dir, keys[1], limits=RequestLimits())
    assert predictor.load(), predictor.not_ready_reason
    assert len(predictor.classes) == CLASSES
    return predictor, model


def _refused(call, *settings: str) -> str:
    started = time.perf_counter()
    with pytest.raises(RequestTooLarge) as caught:
        call()
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert elapsed < FAST_SECONDS, f"refused after {elapsed:.3f} s: {message}"
    assert caught.value.status_code == 413
    for setting in settings:
        assert setting in message, message
    return message


def _matrix(rows: list[list[float]], **kwargs) -> InferRequest:
    flat = [v for row in rows for v in row]
    tensor = InferInput(name="x", shape=[len(rows), len(WIDE_FEATURES)], datatype="FP64", data=flat)
    return InferRequest(model_name="wide", infer_inputs=[tensor], **kwargs)


# -- the bounds themselves ----------------------------------------------------------------------


def test_a_refusal_is_a_413_and_an_invalid_input_naming_its_setting():
    limits = RequestLimits(
        max_rows=10, max_explain_rows=2, max_response_values=50, max_scored_values=60
    )
    with pytest.raises(RequestTooLarge) as caught:
        limits.check_predict(11, 2)
    error = caught.value
    assert isinstance(error, HTTPException) and isinstance(error, InvalidInput)
    assert error.status_code == 413 and error.detail == str(error)
    assert str(error) == (
        "request has 11 rows; at most 10 rows per request (MLOPS_MAX_ROWS): "
        "send fewer rows per request"
    )
    with pytest.raises(
        RequestTooLarge, match=r"needs 70 class scores .*MLOPS_MAX_SCORED_VALUES.*6 rows"
    ):
        limits.check_predict(7, 10)
    with pytest.raises(
        RequestTooLarge,
        match=r"carry 60 values \(10 rows x \(1 prediction \+ 5 probabilities\)\).*"
        r"MLOPS_MAX_RESPONSE_VALUES.*8 rows.*without probabilities",
    ):
        limits.check_predict(10, 5, probabilities=True)
    limits.check_predict(10, 5)  # the same rows without probabilities fit
    limits.check_predict(10, 5, predictions=False, probabilities=False)
    with pytest.raises(
        RequestTooLarge, match=r"explain takes at most 2 rows .*MLOPS_MAX_EXPLAIN_ROWS"
    ):
        limits.check_explain(3, 2, 4)
    with pytest.raises(RequestTooLarge, match="MLOPS_MAX_SCORED_VALUES"):
        limits.check_explain(2, 10, 4)  # 2 rows x (4 + 1) x 10 classes = 100 scores


def test_the_bounds_are_settings():
    defaults = RequestLimits.from_settings(ServingSettings.from_env({}))
    assert defaults == RequestLimits()
    assert (defaults.max_rows, defaults.max_explain_rows) == (10_000, 100)
    assert (defaults.max_response_values, defaults.max_scored_values) == (1_000_000, 2_000_000)
    env = {
        "MLOPS_MAX_ROWS": "5",
        "MLOPS_MAX_EXPLAIN_ROWS": "1",
        "MLOPS_MAX_RESPONSE_VALUES": "7",
        "MLOPS_MAX_SCORED_VALUES": "9",
    }
    assert RequestLimits.from_settings(ServingSettings.from_env(env)) == RequestLimits(5, 1, 7, 9)
    for name in env:
        with pytest.raises(UsageError, match=name):
            ServingSettings.from_env({name: "0"})


def test_the_predictor_reads_its_bounds_from_the_settings(monkeypatch, wide, keys):
    monkeypatch.setenv("MLOPS_MAX_ROWS", "3")
    predictor = SklearnPredictor("wide", wide[0].model_uri, keys[1])
    assert predictor.limits.max_rows == 3


# -- the 1,000-class regression -----------------------------------------------------------------


def test_a_big_predict_with_probabilities_is_refused_fast(wide):
    predictor, _ = wide
    # Issue 9: 42,799 rows with probabilities (949 MB of response).
    rows = wide_rows(42_799)
    message = _refused(
        lambda: predictor.predict({"instances": rows, "parameters": {"probabilities": True}}),
        "MLOPS_MAX_ROWS",
    )
    assert "42799 rows" in message
    # Within the rows bound, the response would be 1,500 x 1,001 values: past 1,000,000.
    rows = wide_rows(1_500)
    rows[-1][0] = "abc"  # never parsed: the refusal comes before any value is read
    message = _refused(
        lambda: predictor.predict({"instances": rows, "parameters": {"probabilities": True}}),
        "MLOPS_MAX_RESPONSE_VALUES",
    )
    assert "1501500 values" in message and "999 rows" in message
    # Past the work bound even without probabilities: 3,000 rows x 1,000 classes.
    rows = wide_rows(3_000)
    _refused(lambda: predictor.predict({"instances": rows}), "MLOPS_MAX_SCORED_VALUES")


def test_v2_counts_the_probabilities_it_returns_by_default(wide):
    predictor, _ = wide
    rows = wide_rows(1_500)
    # No outputs named: both outputs, so the probabilities count.
    request = _matrix(rows)
    _refused(lambda: predictor.predict(request), "MLOPS_MAX_RESPONSE_VALUES")
    # Only the labels: 1,500 values, 1,500,000 scores; both fit.
    response = predictor.predict(_matrix(rows, request_outputs=[RequestedOutput("predict")]))
    assert [o.name for o in response.outputs] == ["predict"] and response.outputs[0].shape == [
        1_500
    ]


def test_small_requests_still_match_sklearn(wide):
    import pandas as pd

    predictor, model = wide
    rows = wide_rows(5)
    frame = pd.DataFrame(rows, columns=WIDE_FEATURES)
    answer = predictor.predict({"instances": rows, "parameters": {"probabilities": True}})
    assert answer["predictions"] == model.predict(frame).tolist()
    assert len(answer["classes"]) == CLASSES
    np.testing.assert_allclose(answer["probabilities"], model.predict_proba(frame), rtol=1e-9)
    response = predictor.predict(_matrix(rows))
    outputs = {o.name: o for o in response.outputs}
    assert outputs["probabilities"].shape == [5, CLASSES]
    assert outputs["predict"].data.tolist() == model.predict(frame).tolist()
    explained = predictor.explain({"instances": rows[:2]})
    assert [e["prediction"] for e in explained["explanations"]] == model.predict(frame[:2]).tolist()


def test_explain_is_bounded_by_its_own_setting(wide):
    predictor, _ = wide
    rows = wide_rows(101)
    _refused(lambda: predictor.explain({"instances": rows}), "MLOPS_MAX_EXPLAIN_ROWS")
    # 100 rows x (4 features + 1) x 1,000 classes = 500,000 scores: within the work bound.
    tight = SklearnPredictor(
        "wide",
        predictor.model_uri,
        predictor.public_key,
        limits=RequestLimits(max_scored_values=10_000),
    )
    assert tight.load()
    rows = wide_rows(3)
    _refused(lambda: tight.explain({"instances": rows}), "MLOPS_MAX_SCORED_VALUES")
    request = _matrix(rows)
    _refused(lambda: tight.explain(request), "MLOPS_MAX_SCORED_VALUES")
