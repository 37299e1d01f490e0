"""Adaptive micro-batching: concurrent requests for one model version scored in one model call.

scikit-learn spends most of a small request's time on per-call overhead
(DataFrame handling, ``ColumnTransformer``, input checks): scoring 100 rows costs
about what scoring one does. :class:`MicroBatcher` gathers the requests that are
waiting for the same model version into one call and hands each its own rows of
the answer.

How a batch forms (MLServer's "adaptive batching", without its fixed wait):

* Requests are validated one by one on the event loop *before* they are queued,
  so a malformed request gets its own 4xx and never enters a batch.
* One worker thread per batcher runs the model, off the event loop: while it
  computes, the loop keeps reading requests, and they queue for the next batch.
* When the worker is free it takes the queue at once, unless requests for the
  same model are being parsed and validated on the loop right now
  (:class:`Arrivals`: the HTTP layer counts a request from the moment its whole
  body is in until it is queued or answered). Then it waits for them, but never
  longer than ``max_wait`` after the oldest queued request was queued
  (``MLOPS_MAX_BATCH_WAIT_MS``). An idle server, or one client, never waits; a
  slow client, whose body is still on its way, is not waited for at all.
* A batch holds at most ``max_rows`` rows (``MLOPS_MAX_BATCH_ROWS``); a request
  with more rows than that is scored alone.

The batcher knows nothing about models: its ``score`` function turns a list of
parts (one per request) into a list of results or exceptions, one per part, and
is responsible for a bad part never failing the others
(:class:`serving.predictor.SklearnPredictor` scores the parts one by one when the
joined call fails).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlops.core.settings import ServingSettings
from serving import metrics

logger = logging.getLogger(__name__)

#: What a batcher's ``score`` returns per part: its result, or the exception it raises.
Score = Callable[[Sequence[Any]], Sequence[Any]]

#: A model whose one-row call is faster than this (timed at load) is scored on the event
#: loop, unbatched: a round trip to the batch worker thread costs 20-60 us on one core,
#: about what the project's FastPath takes for a row, so batching it would only add latency.
INLINE_CALL_SECONDS = 100e-6


@dataclass(frozen=True)
class BatchPolicy:
    """The bounds of a batch.

    Attributes:
        max_rows: Most rows one model call scores (1: every request alone).
        max_wait_seconds: Longest a queued request waits for others still being read.
        inline_below_seconds: Models whose one-row call is faster are not batched
            (:data:`INLINE_CALL_SECONDS`; 0 batches every model).
    """

    max_rows: int = ServingSettings.max_batch_rows
    max_wait_seconds: float = ServingSettings.max_batch_wait_ms / 1000.0
    inline_below_seconds: float = INLINE_CALL_SECONDS

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> BatchPolicy:
        """The policy of ``MLOPS_MAX_BATCH_ROWS`` and ``MLOPS_MAX_BATCH_WAIT_MS``."""
        return cls(settings.max_batch_rows, settings.max_batch_wait_ms / 1000.0)


class Ticket:
    """One inference request's place in :class:`Arrivals` (shared by the tasks serving it)."""

    __slots__ = ("counted", "model")

    def __init__(self, model: str) -> None:
        self.model = model
        self.counted = False


class Arrivals:
    """Inference requests per model name whose body is in but that are not queued yet.

    The HTTP layer opens a :class:`Ticket` per request (:meth:`begin`), counts it
    once the whole body has arrived (:meth:`arrived`) and closes it when the
    request is answered (:meth:`end`); the predictor settles it when the request
    is queued or scored (:meth:`settle`). Such a request is being parsed and
    validated on the event loop, microseconds to milliseconds from joining a
    batch: a batcher waits only while its model has some, which makes the
    batching adaptive (one client, no wait) and leaves slow clients out of it
    (a body still on its way is not counted, so it holds nobody up).
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()
        # The current request's ticket. A mutable object, so every task serving the
        # request (they copy the context) sees it counted or settled.
        self._current: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
            "mlops_arrival", default=None
        )

    def begin(self, model: str) -> tuple[Ticket, contextvars.Token]:
        """Opens the current request's ticket (not counted yet); :meth:`end` closes it."""
        ticket = Ticket(model)
        return ticket, self._current.set(ticket)

    def arrived(self, ticket: Ticket) -> None:
        """The request's body is in: count it until it is queued or answered."""
        if ticket.counted:
            return
        ticket.counted = True
        with self._lock:
            self._counts[ticket.model] = self._counts.get(ticket.model, 0) + 1

    def settle(self, ticket: Ticket | None = None) -> None:
        """The (current) request has been queued or answered: no batch waits for it."""
        ticket = ticket if ticket is not None else self._current.get()
        if ticket is None or not ticket.counted:
            return
        ticket.counted = False
        with self._lock:
            count = self._counts.get(ticket.model, 1) - 1
            if count > 0:
                self._counts[ticket.model] = count
                return
            self._counts.pop(ticket.model, None)
            listeners = list(self._listeners.get(ticket.model, ()))
        for wake in listeners:  # a batcher waiting for this model can go now
            wake()

    def end(self, ticket: Ticket, token: contextvars.Token) -> None:
        """Closes what :meth:`begin` opened (settling the request if nothing did)."""
        self.settle(ticket)
        self._current.reset(token)

    def arriving(self, model: str) -> int:
        """Requests for ``model`` in, not yet queued."""
        return self._counts.get(model, 0)

    def listen(self, model: str, wake: Callable[[], None]) -> None:
        """Calls ``wake`` whenever the last arriving request for ``model`` settles."""
        with self._lock:
            self._listeners.setdefault(model, []).append(wake)

    def unlisten(self, model: str, wake: Callable[[], None]) -> None:
        """Stops calling ``wake``."""
        with self._lock:
            listeners = self._listeners.get(model, [])
            if wake in listeners:
                listeners.remove(wake)
            if not listeners:
                self._listeners.pop(model, None)


#: The server's arrivals (the request guard of :mod:`serving.rest` counts into it).
ARRIVALS = Arrivals()


@dataclass(eq=False)
class _Job:
    part: Any
    rows: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued: float


def _deliver(jobs: Sequence[_Job], results: Sequence[Any]) -> None:
    """Sets each job's future (on its event loop); a cancelled one is skipped."""
    for job, result in zip(jobs, results, strict=True):
        if job.future.done():
            continue
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)


class MicroBatcher:
    """Scores the parts of concurrent requests together, on one worker thread.

    Args:
        score: Parts -> one result (or exception) per part; runs on the worker thread.
        policy: The batch bounds.
        model: The model name whose :class:`Arrivals` a batch waits for.
        arrivals: Where arriving requests are counted (default: :data:`ARRIVALS`).
    """

    def __init__(
        self,
        score: Score,
        policy: BatchPolicy,
        model: str,
        arrivals: Arrivals | None = None,
    ) -> None:
        self.score = score
        self.policy = policy
        self.model = model
        self.arrivals = arrivals if arrivals is not None else ARRIVALS
        self.batches = 0  # model calls made (a test and the bench read it)
        self.largest = 0  # most requests in one call
        self._jobs: deque[_Job] = deque()
        self._rows = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._size_metric = metrics.BATCH_REQUESTS.labels(model)
        self.arrivals.listen(model, self._wake)

    async def submit(self, part: Any, rows: int) -> Any:
        """Queues one request's part and returns its result (or raises its exception).

        The current request stops counting as arriving once it is queued.
        """
        loop = asyncio.get_running_loop()
        job = _Job(part, rows, loop.create_future(), loop, time.monotonic())
        with self._cond:
            closed = self._closed
            if not closed:
                self._jobs.append(job)
                self._rows += rows
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=f"mlops-batch-{self.model}", daemon=True
                    )
                    self._thread.start()
                self._cond.notify()
        self.arrivals.settle()
        if closed:  # stopped while this request was on its way: score it alone, still off the loop
            (result,) = await asyncio.to_thread(self.score, [part])
            if isinstance(result, BaseException):
                raise result
            return result
        return await job.future

    def close(self) -> None:
        """Takes no more requests; the worker scores what is queued, then ends."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.arrivals.unlisten(self.model, self._wake)

    @property
    def queued_rows(self) -> int:
        """Rows waiting for the worker."""
        return self._rows

    # -- the worker thread ---------------------------------------------------------
    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    if self._closed:
                        return
                    self._cond.wait()
                self._wait_for_arrivals_locked()
                jobs = self._take_locked()
            if jobs:
                self._execute(jobs)

    def _wait_for_arrivals_locked(self) -> None:
        """Waits while requests for the model are still being read, within the bound."""
        deadline = self._jobs[0].queued + self.policy.max_wait_seconds
        while (
            self._rows < self.policy.max_rows
            and not self._closed
            and self.arrivals.arriving(self.model) > 0
        ):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _take_locked(self) -> list[_Job]:
        """The oldest jobs up to ``max_rows`` rows (the first always, however many rows it has)."""
        jobs: list[_Job] = []
        rows = 0
        while self._jobs:
            job = self._jobs[0]
            if jobs and rows + job.rows > self.policy.max_rows:
                break
            self._jobs.popleft()
            self._rows -= job.rows
            if job.future.cancelled():  # the client went away while it waited
                continue
            jobs.append(job)
            rows += job.rows
        return jobs

    def _execute(self, jobs: list[_Job]) -> None:
        try:
            results = list(self.score([job.part for job in jobs]))
            if len(results) != len(jobs):
                raise RuntimeError(f"score returned {len(results)} results for {len(jobs)} parts")
        except Exception as exc:  # a scorer bug: every request of the batch gets the error
            logger.exception("batch of %d requests for %s failed", len(jobs), self.model)
            results = [exc] * len(jobs)
        self.batches += 1
        self.largest = max(self.largest, len(jobs))
        self._size_metric.observe(len(jobs))
        by_loop: dict[asyncio.AbstractEventLoop, tuple[list[_Job], list[Any]]] = {}
        for job, result in zip(jobs, results, strict=True):
            mine = by_loop.setdefault(job.loop, ([], []))
            mine[0].append(job)
            mine[1].append(result)
        for loop, (mine_jobs, mine_results) in by_loop.items():
            try:  # one wake-up of the event loop per batch, not per request
                loop.call_soon_threadsafe(_deliver, mine_jobs, mine_results)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass
