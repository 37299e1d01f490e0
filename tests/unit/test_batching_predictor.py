"""Batched predictions of SklearnPredictor: the same answers as unbatched, errors per request.

Real signed model folders (the project's pipeline, and a model-repository pipeline
the fast path does not cover: HistGradientBoosting after a ColumnTransformer with
numeric and categorical columns), concurrent requests on a real event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from pathlib import Path

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from prometheus_client import REGISTRY

from serving.batching import ARRIVALS, BatchPolicy
from serving.predictor import SklearnPredictor
from tests.serving_helpers import (
    CATEGORICAL,
    FEATURES,
    NUMERIC,
    build_model_dir,
    iris_frame,
    make_keypair,
    sample_rows,
    v1_list_rows,
    v1_object_rows,
    v2_per_feature,
)

#: Batch every model (also the fast path's), wait long enough that batches form.
BATCH_ALL = BatchPolicy(max_rows=256, max_wait_seconds=0.05, inline_below_seconds=0.0)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return make_keypair(tmp_path_factory.mktemp("keys"))


def hist_gradient_boosting_dir(dest: Path, private_key: Path) -> Path:
    """A signed folder of a pipeline from outside the project's recipes."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlops.model.packaging import write_model_dir
    from mlops.model.schema import FeatureSchema, coerce
    from tests.release_helpers import release_and_sign

    features, target = iris_frame()
    schema = FeatureSchema.from_frame(features)
    columns = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    model = Pipeline(
        [("columns", columns), ("model", HistGradientBoostingClassifier(max_iter=30))]
    ).fit(coerce(features, schema), target)
    write_model_dir(
        dest,
        model,
        model_name="iris",
        version="v1",
        schema=schema,
        target_column="species",
        estimator="hist_gradient_boosting",
        drop_columns=[],
        metrics={},
        fingerprints={},
        train_features=features,
        params={},
    )
    release_and_sign(dest, private_key)
    return dest


@pytest.fixture(scope="module", params=["hist_gradient_boosting", "logistic_regression"])
def predictor(request, tmp_path_factory, keys) -> SklearnPredictor:
    dest = tmp_path_factory.mktemp(request.param) / "model"
    if request.param == "hist_gradient_boosting":
        model_dir = hist_gradient_boosting_dir(dest, keys[0])
    else:
        model_dir, _, _ = build_model_dir(dest, keys[0])
    p = SklearnPredictor("iris", model_dir, keys[1], version="v1", batching=BATCH_ALL)
    assert p.load(), p.not_ready_reason
    yield p
    p.stop()


def v2_features(frame, outputs=None) -> InferRequest:
    requested = [RequestedOutput(name=o) for o in outputs] if outputs else None
    return v2_per_feature(frame, request_id="r1", request_outputs=requested)


def v2_matrix(frame) -> InferRequest:
    rows = v1_list_rows(frame)
    data = [str(v) for row in rows for v in row]
    inputs = [InferInput(name="x", shape=[len(rows), len(FEATURES)], datatype="BYTES", data=data)]
    return InferRequest(model_name="iris", infer_inputs=inputs, request_id="r2")


def mixed_requests() -> list:
    """V1 (list and object rows, with and without probabilities) and V2 (both layouts)."""
    frames = [sample_rows(n, seed=s) for s, n in enumerate((1, 3, 1, 7, 2, 1, 5, 1), start=1)]
    return [
        {"instances": v1_list_rows(frames[0])},
        {"instances": v1_object_rows(frames[1]), "parameters": {"probabilities": True}},
        v2_features(frames[2]),
        v2_matrix(frames[3]),
        {"instances": v1_list_rows(frames[4]), "parameters": {"probabilities": True}},
        v2_features(frames[5], outputs=["probabilities"]),
        {"instances": v1_object_rows(frames[6])},
        v2_features(frames[7], outputs=["predict"]),
    ]


def comparable(response):
    """A V1 dict without its generated ids; a V2 InferResponse as (id, version, parameters, outputs).

    A V1 request names no id, so each answer has a fresh one: checked for shape
    here (one id per row, derived from the request id) and left out of the comparison.
    """
    if isinstance(response, dict):
        ids = response["ids"]
        assert len(ids) == len(response["predictions"])
        assert ids == (
            [response["id"]]
            if len(ids) == 1
            else [f"{response['id']}-{i}" for i in range(len(ids))]
        )
        return {k: v for k, v in response.items() if k not in ("id", "ids")}
    return (
        response.id,
        response.model_version,
        response.parameters,
        [(o.name, list(o.shape), np.asarray(o.data).tolist()) for o in response.outputs],
    )


async def concurrently(predictor: SklearnPredictor, payloads: list, rounds: int = 3) -> list:
    """Every payload ``rounds`` times at once, through what KServe awaits (``__call__``).

    As over HTTP, each request counts as arriving from the start (its body is in)
    until it is queued or answered, so the batcher waits for the others (50 ms at most).
    """

    async def one(payload, ticket):
        try:
            response, headers = await predictor(payload, verb=InferenceVerb.PREDICT)
        finally:
            ARRIVALS.settle(ticket)  # what the request guard does when it answers
        assert headers == {}
        return response

    tasks = []
    for payload in payloads * rounds:
        context = contextvars.copy_context()
        ticket, _ = context.run(ARRIVALS.begin, predictor.name)
        ARRIVALS.arrived(ticket)
        tasks.append(context.run(asyncio.ensure_future, one(payload, ticket)))
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_batched_answers_equal_unbatched_ones_for_mixed_v1_and_v2_requests(predictor):
    payloads = mixed_requests()
    expected = [comparable(predictor.predict(p)) for p in payloads]
    calls_before = predictor.batcher.batches
    answers = asyncio.run(concurrently(predictor, payloads))
    assert [comparable(a) for a in answers] == expected * 3  # exact, probabilities included
    assert predictor.batcher.largest > 1  # they really shared model calls
    assert predictor.batcher.batches - calls_before < len(answers)


def test_a_malformed_request_in_a_batch_gets_its_error_and_the_others_their_answers(predictor):
    good = mixed_requests()
    malformed = {"instances": [[5.1, 3.5, "not a number", 0.2, "red"]]}
    too_short = {"instances": [[5.1, 3.5]]}
    payloads = [good[0], malformed, good[2], too_short, good[3]]
    answers = asyncio.run(concurrently(predictor, payloads, rounds=2))
    for payload, answer in zip(payloads * 2, answers, strict=True):
        if payload is malformed or payload is too_short:
            assert isinstance(answer, InvalidInput)
        else:
            assert comparable(answer) == comparable(predictor.predict(payload))
    assert "sepal_width" not in str(answers[1]) and "petal_length" in str(answers[1])


def test_rows_that_break_the_model_call_fail_only_their_own_request(tmp_path, keys):
    # Valid numbers whose weighted sum overflows the linear model (softmax gives NaN):
    # found only when the joined call runs, so the batch falls back to one call per request.
    model_dir, _, _ = build_model_dir(tmp_path / "model", keys[0])
    predictor = SklearnPredictor("iris", model_dir, keys[1], version="v1", batching=BATCH_ALL)
    assert predictor.load()
    good = mixed_requests()
    overflowing = {"instances": [[1e308, 1.0, 1e308, 1e308, "red"]]}
    payloads = [good[0], overflowing, good[1], good[2]]
    answers = asyncio.run(concurrently(predictor, payloads, rounds=2))
    for payload, answer in zip(payloads * 2, answers, strict=True):
        if payload is overflowing:
            assert isinstance(answer, InvalidInput)
            assert "row 0: the model's probabilities are not finite" in str(answer)
        else:
            assert comparable(answer) == comparable(predictor.predict(payload))
    assert predictor.batcher.largest > 1
    predictor.stop()


def test_metrics_and_the_version_count_every_request_of_a_batch(predictor):
    payloads = mixed_requests()
    rows = sum(
        len(p["instances"]) if isinstance(p, dict) else p.inputs[0].shape[0] for p in payloads
    )

    def predicted() -> float:
        return sum(
            REGISTRY.get_sample_value(
                "mlops_predictions_total",
                {"model": "iris", "version": "v1", "role": "stable", "class": str(c)},
            )
            or 0.0
            for c in predictor.classes
        )

    before = predicted()
    asyncio.run(concurrently(predictor, payloads, rounds=1))
    assert predicted() - before == rows


def test_a_fast_model_is_scored_on_the_event_loop_unbatched(tmp_path, keys):
    model_dir, _, _ = build_model_dir(tmp_path / "model", keys[0])
    predictor = SklearnPredictor(
        "iris",
        model_dir,
        keys[1],
        version="v1",
        batching=BatchPolicy(inline_below_seconds=float("inf")),
    )
    assert predictor.load()
    payloads = mixed_requests()
    answers = asyncio.run(concurrently(predictor, payloads, rounds=1))
    assert [comparable(a) for a in answers] == [comparable(predictor.predict(p)) for p in payloads]
    assert predictor.batcher.batches == 0
    predictor.stop()
    assert predictor.batcher is None


def test_a_project_pipeline_with_its_fast_path_is_cheap_enough_to_score_inline(tmp_path, keys):
    model_dir, _, _ = build_model_dir(tmp_path / "model", keys[0])
    predictor = SklearnPredictor("iris", model_dir, keys[1], version="v1")
    assert predictor.load()
    assert predictor.fast_path is not None
    assert 0 < predictor.loaded.call_seconds < math.inf  # timed at load
    predictor.stop()
