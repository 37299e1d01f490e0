"""Ground-truth labels over HTTP: ``POST /v1/models/NAME/feedback``, checked and stored off the request path.

The body is ``{"labels": [{"id": "<row id>", "label": <value>}, ...]}``: at most
:data:`MAX_LABELS` labels in at most ``MLOPS_MAX_BODY_BYTES``, each id checked with
:func:`mlops.monitoring.feedback.check_request_id` and each label turned into
text with :func:`mlops.monitoring.feedback.label_text` (labels are client data:
stored as given, escaped by whatever shows them). Of an id given twice, the last
label wins. Ids the server has not logged (not among its inference logger's
recent ids, nor in the store's inference log of the last :data:`LOOKBACK`) are
counted and the first :data:`SHOWN_UNKNOWN` returned; their labels are stored
all the same (another replica may have answered them). The store's log is read
at most once per :attr:`FeedbackReceiver.CACHE_SECONDS` per model.

:class:`FeedbackWriter` stores accepted labels the way the inference logger
stores predictions: a bounded in-memory buffer (a lock and a deque append on
the request path) written by a background thread with
:func:`mlops.monitoring.feedback.write_feedback` to
``feedback/<model>/<date>/``; a failed write is retried, and rows beyond the bound
are refused up front (503, so the client retries) rather than dropped silently.

The endpoint changes state, so it is off unless the server runs with
``MLOPS_FEEDBACK_API=true`` and ``MLOPS_FEEDBACK_TOKEN``; then it needs
``Authorization: Bearer <token>`` (:mod:`serving.rest`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from mlops.core.errors import UsageError
from mlops.monitoring.feedback import check_request_id, label_text
from serving import metrics

logger = logging.getLogger(__name__)

#: Most labels one request may carry.
MAX_LABELS = 10_000
#: How many unknown ids an answer lists (all are counted).
SHOWN_UNKNOWN = 20
#: How far back the store's inference log is searched for ids the server does not remember.
LOOKBACK = timedelta(days=7)


def parse_labels(body: Any) -> dict[str, str]:
    """The labels of a feedback body, id -> label text, in order (a repeated id: the last wins).

    Raises:
        UsageError: not ``{"labels": [...]}``, more than :data:`MAX_LABELS` labels, an
            entry that is not ``{"id", "label"}``, an invalid id or label (named by position).
    """
    if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
        raise UsageError('the body must be {"labels": [{"id": ..., "label": ...}, ...]}')
    unknown = sorted(set(body) - {"labels"})
    if unknown:
        raise UsageError(f"unknown field(s) {', '.join(map(repr, unknown))[:200]}: only labels")
    entries = body["labels"]
    if len(entries) > MAX_LABELS:
        raise UsageError(f"{len(entries)} labels, more than the limit of {MAX_LABELS} per request")
    labels: dict[str, str] = {}
    for n, entry in enumerate(entries):
        where = f"labels[{n}]"
        if not isinstance(entry, dict) or set(entry) != {"id", "label"}:
            raise UsageError(f'{where}: each label must be {{"id": ..., "label": ...}}')
        request_id = check_request_id(entry["id"], f"{where}.id")
        text = label_text(entry["label"], f"{where}.label")
        labels.pop(request_id, None)  # the last one wins, in its position
        labels[request_id] = text
    return labels


@dataclass(eq=False)
class _Batch:
    model: str
    frame: pd.DataFrame
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = len(self.frame)


class FeedbackWriter:
    """Writes accepted labels to the store from a background thread, within a bound.

    Args:
        store: The project's store.
        max_buffer_rows: Most labels waiting; :meth:`submit` refuses a batch beyond it.
        retry_seconds: Pause after a failed write before the next attempt.
    """

    def __init__(self, store: Any, max_buffer_rows: int = 100_000, retry_seconds: float = 2.0):
        self.store = store
        self.max_buffer_rows = int(max_buffer_rows)
        self.retry_seconds = float(retry_seconds)
        self.written_rows = 0
        self.written_keys: list[str] = []
        self._batches: deque[_Batch] = deque()
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlops-feedback", daemon=True)
        self._thread.start()

    def submit(self, model: str, labels: dict[str, str]) -> bool:
        """Queues labels of ``model`` (received now); False when they do not fit the buffer."""
        if not labels:
            return True
        frame = pd.DataFrame(
            {
                "request_id": pd.Series(list(labels), dtype=object),
                "label": pd.Series(list(labels.values()), dtype=object),
                "received_at": pd.Series(
                    [pd.Timestamp(datetime.now(UTC))] * len(labels), dtype="datetime64[us, UTC]"
                ),
            }
        )
        with self._lock:
            if self._closing.is_set() or self._rows + len(frame) > self.max_buffer_rows:
                metrics.FEEDBACK_LABELS.labels(model, "refused").inc(len(frame))
                return False
            self._batches.append(_Batch(model, frame))
            self._rows += len(frame)
        self._wake.set()
        return True

    @property
    def buffered_rows(self) -> int:
        """Labels waiting to be written."""
        return self._rows

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait()
            self._wake.clear()
            if not self.flush():
                self._closing.wait(self.retry_seconds)

    def flush(self) -> bool:
        """Writes what is buffered; False when a write failed (those labels stay queued)."""
        from mlops.monitoring.feedback import write_feedback

        with self._lock:
            batches = list(self._batches)
        by_model: dict[str, list[_Batch]] = {}
        for batch in batches:
            by_model.setdefault(batch.model, []).append(batch)
        for model, group in by_model.items():
            frame = pd.concat([b.frame for b in group], ignore_index=True)
            try:
                keys = write_feedback(self.store, model, frame)
            except Exception as exc:  # store down: keep them for the next attempt
                logger.warning(
                    "feedback for %s: write failed (%d labels kept for retry): %s",
                    model,
                    len(frame),
                    exc,
                )
                return False
            with self._lock:
                for batch in group:
                    self._batches.remove(batch)
                    self._rows -= batch.rows
            self.written_rows += len(frame)
            self.written_keys.extend(keys)
            metrics.FEEDBACK_LABELS.labels(model, "written").inc(len(frame))
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Stops the thread and makes a last write attempt; returns whether everything was written."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        ok = self.flush()
        if not ok:
            logger.warning("feedback: %d labels lost at shutdown (store unreachable)", self._rows)
        return ok


class FeedbackReceiver:
    """What the feedback endpoint needs: which ids are known, and where labels go.

    Args:
        store: The project's store (its inference log is searched for ids the
            server does not remember).
        writer: Where accepted labels are queued.
        recent: ``(model, ids) -> the ids the server's inference logger remembers``.
    """

    def __init__(
        self,
        store: Any,
        writer: FeedbackWriter,
        recent: Callable[[str, Sequence[str]], set[str]],
    ) -> None:
        self.store = store
        self.writer = writer
        self.recent = recent
        # model -> (monotonic time read, ids the store's log held then): one read of the
        # log per CACHE_SECONDS at most, however many feedback requests come in.
        self._logged: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    #: How long ids read from the store's inference log are reused.
    CACHE_SECONDS = 30.0

    def unknown_ids(self, model: str, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` no inference log of ``model`` knows (blocking: call off the loop)."""
        known = self.recent(model, ids)
        missing = [i for i in ids if i not in known]
        if missing and self.store is not None:
            logged = self._logged_ids(model)
            missing = [i for i in missing if i not in logged]
        return missing

    def _logged_ids(self, model: str) -> set[str]:
        from mlops.monitoring.inference_log import known_request_ids

        with self._lock:
            cached = self._logged.get(model)
            if cached is not None and time.monotonic() - cached[0] < self.CACHE_SECONDS:
                return cached[1]
            try:
                logged = known_request_ids(self.store, model, since=datetime.now(UTC) - LOOKBACK)
            except Exception as exc:  # the labels are still stored; only the count is rougher
                logger.warning("feedback for %s: cannot read the inference log: %s", model, exc)
                return set()
            self._logged[model] = (time.monotonic(), logged)
            return logged
