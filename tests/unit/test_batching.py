"""serving.batching: how batches form, their bounds, and that the event loop keeps running.

Real threads and a real event loop; the score functions are plain Python so each
test can see exactly which parts went into which call.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from serving.batching import Arrivals, BatchPolicy, MicroBatcher

MODEL = "m"


class Recorder:
    """A score function that records each call's parts and answers part * 10."""

    def __init__(self, delay: float = 0.0, fail_on: object = None) -> None:
        self.calls: list[list] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, parts):
        self.calls.append(list(parts))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        return [ValueError(f"bad part {p}") if p == self.fail_on else p * 10 for p in parts]


def batcher(score, arrivals=None, **policy) -> MicroBatcher:
    return MicroBatcher(score, BatchPolicy(**policy), MODEL, arrivals or Arrivals())


def test_requests_that_wait_together_are_scored_in_one_call():
    score = Recorder(delay=0.05)
    batch = batcher(score, max_rows=100, max_wait_seconds=0.01)

    async def scenario():
        first = asyncio.ensure_future(batch.submit(1, 1))
        await asyncio.sleep(0.01)  # the worker is busy with the first call now
        rest = [asyncio.ensure_future(batch.submit(p, 1)) for p in (2, 3, 4)]
        return await asyncio.gather(first, *rest)

    assert asyncio.run(scenario()) == [10, 20, 30, 40]
    assert score.calls == [[1], [2, 3, 4]]
    assert score.threads == {f"mlops-batch-{MODEL}"}  # never the event loop's thread
    assert batch.largest == 3
    batch.close()


def test_a_batch_holds_at_most_max_rows_and_a_larger_request_goes_alone():
    score = Recorder(delay=0.05)
    batch = batcher(score, max_rows=4, max_wait_seconds=0.01)

    async def scenario():
        first = asyncio.ensure_future(batch.submit(0, 1))
        await asyncio.sleep(0.01)
        sizes = {1: 2, 2: 2, 3: 1, 4: 9, 5: 1}
        rest = [asyncio.ensure_future(batch.submit(p, rows)) for p, rows in sizes.items()]
        await asyncio.gather(first, *rest)
        return sizes

    sizes = {0: 1, **asyncio.run(scenario())}
    assert score.calls == [[0], [1, 2], [3], [4], [5]]
    for call in score.calls:
        assert len(call) == 1 or sum(sizes[p] for p in call) <= 4
    batch.close()


def test_the_event_loop_keeps_running_while_a_batch_is_computed():
    score = Recorder(delay=0.3)
    batch = batcher(score, max_rows=10, max_wait_seconds=0.01)

    async def scenario():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        result = await batch.submit(7, 1)
        task.cancel()
        return result, ticks

    result, ticks = asyncio.run(scenario())
    assert result == 70
    assert ticks >= 10  # ~30 ticks fit in the 0.3 s call; a blocked loop would give 0
    batch.close()


def test_an_idle_server_never_waits():
    score = Recorder()
    batch = batcher(score, max_rows=10, max_wait_seconds=5.0)

    async def scenario():
        started = time.monotonic()
        await batch.submit(1, 1)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2.0  # nothing is arriving: no 5 s wait
    batch.close()


def arriving(arrivals: Arrivals) -> contextvars.Context:
    """A request context in which one request for MODEL is in, not yet queued."""
    context = contextvars.copy_context()
    ticket, _ = context.run(arrivals.begin, MODEL)
    arrivals.arrived(ticket)
    return context


def test_a_batch_waits_for_a_request_being_read_but_never_past_the_bound():
    arrivals = Arrivals()
    score = Recorder()
    batch = batcher(score, arrivals, max_rows=10, max_wait_seconds=0.3)
    stuck = arriving(arrivals)  # in, but never queued (say, a long validation)

    async def scenario():
        started = time.monotonic()
        await batch.submit(1, 1)
        return time.monotonic() - started

    waited = asyncio.run(scenario())
    assert 0.3 <= waited < 2.0
    assert score.calls == [[1]]
    stuck.run(arrivals.settle)
    assert arrivals.arriving(MODEL) == 0
    batch.close()


def test_a_request_that_arrives_joins_the_waiting_batch_at_once():
    arrivals = Arrivals()
    score = Recorder()
    batch = batcher(score, arrivals, max_rows=10, max_wait_seconds=5.0)
    second = arriving(arrivals)

    async def scenario():
        started = time.monotonic()
        first = asyncio.ensure_future(batch.submit(1, 1))
        await asyncio.sleep(0.05)
        # The request being read is queued: it settles itself and the batch goes.
        results = await asyncio.gather(first, second.run(asyncio.ensure_future, batch.submit(2, 1)))
        return results, time.monotonic() - started

    results, elapsed = asyncio.run(scenario())
    assert results == [10, 20]
    assert score.calls == [[1, 2]]
    assert elapsed < 2.0  # far below the 5 s bound
    batch.close()


def test_a_request_that_ends_before_it_is_queued_releases_the_batch():
    arrivals = Arrivals()
    score = Recorder()
    batch = batcher(score, arrivals, max_rows=10, max_wait_seconds=5.0)
    rejected = contextvars.copy_context()
    ticket, token = rejected.run(arrivals.begin, MODEL)
    arrivals.arrived(ticket)

    async def scenario():
        started = time.monotonic()
        first = asyncio.ensure_future(batch.submit(1, 1))
        await asyncio.sleep(0.05)
        rejected.run(arrivals.end, ticket, token)  # e.g. answered 400 by validation
        await first
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2.0
    batch.close()


def test_a_failing_part_fails_only_its_own_request():
    score = Recorder(delay=0.05, fail_on=3)
    batch = batcher(score, max_rows=10, max_wait_seconds=0.01)

    async def scenario():
        first = asyncio.ensure_future(batch.submit(1, 1))
        await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(batch.submit(p, 1)) for p in (2, 3, 4)]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    first, second, third, fourth = asyncio.run(scenario())
    assert (first, second, fourth) == (10, 20, 40)
    assert isinstance(third, ValueError) and "bad part 3" in str(third)
    assert score.calls[1] == [2, 3, 4]
    batch.close()


def test_a_cancelled_request_is_left_out_of_its_batch():
    score = Recorder(delay=0.1)
    batch = batcher(score, max_rows=10, max_wait_seconds=0.01)

    async def scenario():
        first = asyncio.ensure_future(batch.submit(1, 1))
        await asyncio.sleep(0.02)
        gone = asyncio.ensure_future(batch.submit(2, 1))
        kept = asyncio.ensure_future(batch.submit(3, 1))
        await asyncio.sleep(0)
        gone.cancel()
        return await asyncio.gather(first, kept)

    assert asyncio.run(scenario()) == [10, 30]
    assert score.calls == [[1], [3]]
    batch.close()


def test_after_close_queued_requests_are_answered_and_new_ones_scored_alone():
    score = Recorder(delay=0.05)
    batch = batcher(score, max_rows=10, max_wait_seconds=0.01)

    async def scenario():
        first = asyncio.ensure_future(batch.submit(1, 1))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(batch.submit(2, 1))
        await asyncio.sleep(0)
        batch.close()
        late = await batch.submit(3, 1)
        return await first, await queued, late

    assert asyncio.run(scenario()) == (10, 20, 30)
    assert [3] in score.calls


def test_a_scorer_that_raises_fails_its_batch_with_the_error():
    def broken(parts):
        raise RuntimeError("scorer bug")

    batch = batcher(broken, max_rows=10, max_wait_seconds=0.01)
    with pytest.raises(RuntimeError, match="scorer bug"):
        asyncio.run(batch.submit(1, 1))
    batch.close()


def test_the_policy_comes_from_the_settings():
    from mlops.core.settings import ServingSettings

    settings = ServingSettings.from_env(
        {"MLOPS_MAX_BATCH_ROWS": "32", "MLOPS_MAX_BATCH_WAIT_MS": "5"}
    )
    policy = BatchPolicy.from_settings(settings)
    assert (policy.max_rows, policy.max_wait_seconds) == (32, 0.005)
    assert BatchPolicy.from_settings(ServingSettings()) == BatchPolicy()


def test_a_request_counts_as_arriving_from_its_whole_body_until_it_is_queued():
    arrivals = Arrivals()
    context = contextvars.copy_context()
    ticket, token = context.run(arrivals.begin, MODEL)
    assert arrivals.arriving(MODEL) == 0  # headers only: a slow client is not waited for
    arrivals.arrived(ticket)
    arrivals.arrived(ticket)  # counted once
    assert arrivals.arriving(MODEL) == 1
    woken = []
    arrivals.listen(MODEL, lambda: woken.append(True))
    context.run(arrivals.settle)  # queued
    assert arrivals.arriving(MODEL) == 0 and woken == [True]
    context.run(arrivals.end, ticket, token)  # answered: nothing left to settle
    assert arrivals.arriving(MODEL) == 0 and woken == [True]
