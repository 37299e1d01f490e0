"""The desired deployment state survives concurrent writers (real SeaweedFS, conditional writes)."""

from __future__ import annotations

import threading

import pytest

from mlops.core.errors import UsageError, WriteConflict
from mlops.deployment import state as desired


def _release(version: str) -> desired.Release:
    return desired.Release(version, f"s3://models/iris/{version}")


def test_conditional_write_refuses_a_stale_etag_and_an_existing_object(store):
    store.put_if_unchanged("k.json", b"1", None)
    first = store.get_versioned("k.json")
    assert first is not None and first[0] == b"1"
    store.put_if_unchanged("k.json", b"2", first[1])
    with pytest.raises(WriteConflict, match="changed while it was being updated"):
        store.put_if_unchanged("k.json", b"3", first[1])
    with pytest.raises(WriteConflict):
        store.put_if_unchanged("k.json", b"4", None)
    assert store.get_bytes("k.json") == b"2"
    assert store.get_versioned("missing.json") is None


def test_an_update_that_lost_the_race_is_applied_to_the_fresh_state(store):
    desired.deploy(store, "iris", _release("v1"))
    calls = []

    def canary_v3(state):
        calls.append(state.stable.version)
        if len(calls) == 1:
            # Another writer lands between this update's read and its write.
            desired.deploy(store, "iris", _release("v2"))
        state.canary, state.canary_percent = _release("v3"), 20
        return state

    result = desired.update_state(store, "iris", canary_v3)
    assert calls == ["v1", "v2"], "the change ran again on the state the other writer left"
    stored = desired.read_state(store, "iris")
    assert (
        stored.summary()
        == result.summary()
        == {"stable": "v2", "canary": "v3", "canary_percent": 20, "strategy": "canary"}
    )
    assert [release.version for release in stored.history] == ["v1"]


def test_concurrent_deploys_lose_no_release(store):
    versions = [f"v{i}" for i in range(6)]
    errors: list[BaseException] = []

    def deploy(version: str) -> None:
        try:
            desired.deploy(store, "iris", _release(version))
        except BaseException as exc:  # reported below; a thread cannot raise into the test
            errors.append(exc)

    threads = [threading.Thread(target=deploy, args=(version,)) for version in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    state = desired.read_state(store, "iris")
    recorded = [release.version for release in state.history] + [state.stable.version]
    assert sorted(recorded) == versions, "every deploy is either stable or in the history"


def test_a_refused_change_writes_nothing(store):
    desired.deploy(store, "iris", _release("v1"))
    before = store.get_versioned(desired.state_key("iris"))
    with pytest.raises(UsageError, match="no canary to promote"):
        desired.promote(store, "iris")
    assert store.get_versioned(desired.state_key("iris")) == before
