"""The feedback endpoint's parts in process: the body's checks and the bounded writer, on the real store."""

from __future__ import annotations

import time

import pytest

from mlops.core.errors import UsageError
from mlops.monitoring.feedback import read_feedback
from serving.feedback import MAX_LABELS, FeedbackReceiver, FeedbackWriter, parse_labels
from serving.inference_log import InferenceLogger
from tests.serving_helpers import sample_rows


def test_labels_are_checked_and_the_last_label_of_an_id_wins():
    labels = parse_labels(
        {
            "labels": [
                {"id": "a", "label": 1},
                {"id": "b", "label": True},
                {"id": "a", "label": "<b>x</b>"},
            ]
        }
    )
    assert labels == {"b": "True", "a": "<b>x</b>"}
    assert list(labels) == ["b", "a"]  # the winner keeps its own position


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "the body must be"),
        ({"labels": {}}, "the body must be"),
        ({"labels": [], "extra": 1}, "unknown field"),
        ({"labels": [{"id": "a"}]}, "labels[0]"),
        ({"labels": [{"id": "a", "label": 1, "more": 2}]}, "labels[0]"),
        ({"labels": [{"id": "a b", "label": 1}]}, "labels[0].id"),
        ({"labels": [{"id": 7, "label": 1}]}, "labels[0].id"),
        ({"labels": [{"id": "a", "label": None}]}, "labels[0].label"),
        ({"labels": [{"id": "a", "label": "x" * 2000}]}, "labels[0].label"),
        ({"labels": [{"id": "a", "label": 1}] * (MAX_LABELS + 1)}, "limit"),
    ],
)
def test_malformed_feedback_is_refused_naming_the_problem(body, problem):
    with pytest.raises(UsageError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_labels(body)


def test_the_writer_stores_labels_and_refuses_what_does_not_fit(store):
    writer = FeedbackWriter(store, max_buffer_rows=3)
    try:
        assert writer.submit("iris", {"r1": "0", "r2": "1"})
        deadline = time.monotonic() + 10
        while writer.written_rows < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        frame = read_feedback(store, "iris")
        assert dict(zip(frame["request_id"], frame["label"], strict=True)) == {"r1": "0", "r2": "1"}
        assert not writer.submit("iris", {f"x{i}": "0" for i in range(4)})  # past the bound
    finally:
        assert writer.close()


def test_unknown_ids_are_those_no_log_knows(store):
    log = InferenceLogger(store, "iris", flush_rows=1, flush_seconds=0.1)
    writer = FeedbackWriter(store)
    try:
        log.record("v1", sample_rows(1), [0], request_ids=["in-store"])
        deadline = time.monotonic() + 10
        while log.written_rows < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        fresh = InferenceLogger(store, "iris")  # a logger that remembers nothing
        try:
            fresh.record("v1", sample_rows(1), [0], request_ids=["in-memory"])
            receiver = FeedbackReceiver(store, writer, lambda model, ids: fresh.known(ids))
            assert receiver.unknown_ids("iris", ["in-memory", "in-store", "never"]) == ["never"]
        finally:
            fresh.close()
    finally:
        log.close()
        writer.close()
