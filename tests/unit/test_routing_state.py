"""Routing strategies in the deployment state and the shared routing rule (issue 13)."""

from __future__ import annotations

import json
import random

import pytest

from mlops.core.errors import UsageError
from mlops.core.rules import DEPLOY_MODES, ROUTING_STRATEGIES, check_routing_strategy
from mlops.deployment import state as desired
from mlops.deployment.routing import (
    RoutingPolicy,
    mirrors_to_shadow,
    policy_of,
    routes_to_candidate,
    sticky_bucket,
)


def _release(version: str) -> desired.Release:
    return desired.Release(version, f"s3://models/iris/{version}")


def _state(strategy: str, percent: int = 0, **routing) -> desired.DeploymentState:
    return desired.DeploymentState(
        "iris",
        stable=_release("v1"),
        canary=_release("v2"),
        canary_percent=percent,
        strategy=strategy,
        routing=desired.check_routing(routing),
    )


def test_modes_and_strategies():
    assert ROUTING_STRATEGIES == ("canary", "sticky", "cohort", "shadow")
    assert DEPLOY_MODES == ("none", "full", "canary", "sticky", "cohort", "shadow")
    assert check_routing_strategy("cohort") == "cohort"
    with pytest.raises(UsageError, match="--strategy must be one of canary, sticky"):
        check_routing_strategy("blue-green", name="--strategy")


def test_sticky_bucket_is_the_documented_hash():
    import hashlib

    key = "client-42"
    expected = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    assert sticky_bucket(key) == expected
    assert all(0 <= sticky_bucket(f"c{i}") < 100 for i in range(500))


def test_a_sticky_split_keeps_each_client_on_one_version_within_tolerance_of_the_weight():
    state = _state("sticky", 30)
    policy = policy_of(state)
    seen: dict[str, set[bool]] = {}
    for _ in range(5):
        for i in range(200):
            client = f"client-{i}"
            # The header name is matched whatever its case.
            headers = {"X-Client-ID": client} if i % 2 else {"x-client-id": client}
            seen.setdefault(client, set()).add(bool(routes_to_candidate(policy, headers)))
    assert all(len(choices) == 1 for choices in seen.values()), "a client changed version"
    share = sum(True in choices for choices in seen.values()) / len(seen)
    # 200 clients, p = 0.3: the standard deviation is about 0.032; 3 sigma is 0.1.
    assert abs(share - 0.30) < 0.10, share


def test_requests_without_the_client_key_go_to_stable():
    state = _state("sticky", 99, client_header="X-User")
    assert state.routing["client_header"] == "x-user"
    assert routes_to_candidate(state, {}) is False
    assert routes_to_candidate(state, {"x-user": ""}) is False
    assert routes_to_candidate(state, {"x-client-id": "someone"}) is False, "another header"
    hits = sum(bool(routes_to_candidate(state, {"X-User": f"u{i}"})) for i in range(100))
    assert hits > 90


def test_a_cohort_header_reaches_the_candidate_and_no_other_request_does():
    state = _state("cohort", cohort_header="X-MLOps-Cohort", cohort_values="beta, internal")
    assert state.routing["cohort_values"] == ["beta", "internal"]
    assert routes_to_candidate(state, {"X-MLOPS-COHORT": "beta"}) is True
    assert routes_to_candidate(state, {"x-mlops-cohort": "internal"}) is True
    for headers in ({}, {"x-mlops-cohort": "Beta"}, {"x-mlops-cohort": "beta2"}, {"x-beta": "1"}):
        assert routes_to_candidate(state, headers) is False, headers


def test_weighted_canary_draws_and_shadow_leaves_the_answer_to_stable():
    state = _state("canary", 25)
    assert routes_to_candidate(state, {}, draw=lambda: 0.2) is True
    assert routes_to_candidate(state, {}, draw=lambda: 0.3) is False
    rng = random.Random(7)
    hits = sum(bool(routes_to_candidate(state, {}, draw=rng.random)) for _ in range(4000))
    assert abs(hits / 4000 - 0.25) < 0.03
    shadow = _state("shadow", shadow_percent=40)
    assert routes_to_candidate(shadow, {"x-mlops-cohort": "beta"}) is None
    assert mirrors_to_shadow(shadow, draw=lambda: 0.39) is True
    assert mirrors_to_shadow(shadow, draw=lambda: 0.41) is False
    assert mirrors_to_shadow(_state("shadow"), draw=lambda: 0.999) is True
    assert mirrors_to_shadow(state) is False, "only a shadow candidate gets copies"
    no_candidate = desired.DeploymentState("iris", stable=_release("v1"))
    assert routes_to_candidate(no_candidate, {"x-mlops-cohort": "beta"}) is False
    assert policy_of(no_candidate) == RoutingPolicy()


def test_an_old_state_file_reads_as_a_weighted_canary(store):
    old = {
        "model_name": "iris",
        "stable": {"version": "v1", "model_uri": "s3://models/iris/v1"},
        "canary": {"version": "v2", "model_uri": "s3://models/iris/v2"},
        "canary_percent": 20,
        "history": [],
        "updated_at": "2024-01-01T00:00:00+00:00",
    }
    store.put_bytes(desired.state_key("iris"), json.dumps(old).encode())
    state = desired.read_state(store, "iris")
    assert state.strategy == "canary" and state.routing == desired.DEFAULT_ROUTING
    assert state.summary() == {
        "stable": "v1",
        "canary": "v2",
        "canary_percent": 20,
        "strategy": "canary",
    }
    assert routes_to_candidate(state, {}, draw=lambda: 0.1) is True


@pytest.mark.parametrize("strategy", ROUTING_STRATEGIES)
def test_every_strategy_deploys_promotes_and_rolls_back(store, strategy):
    percent = 30 if strategy in ("canary", "sticky") else None
    desired.deploy(store, "iris", _release("v1"))
    state = desired.deploy(
        store,
        "iris",
        _release("v2"),
        percent,
        strategy=strategy,
        routing={"cohort_values": ["qa"], "shadow_percent": 50},
    )
    stored = desired.read_state(store, "iris")
    assert stored.summary() == state.summary()
    assert stored.canary.version == "v2" and stored.strategy == strategy
    assert stored.canary_percent == (percent or 0)
    assert stored.routing["cohort_values"] == ["qa"] and stored.routing["shadow_percent"] == 50
    rolled = desired.rollback(store, "iris")
    assert (rolled.canary, rolled.strategy, rolled.stable.version) == (None, "canary", "v1")
    assert rolled.routing == desired.DEFAULT_ROUTING
    desired.deploy(store, "iris", _release("v2"), percent, strategy=strategy)
    promoted = desired.promote(store, "iris")
    assert promoted.summary() == {
        "stable": "v2",
        "canary": None,
        "canary_percent": 0,
        "strategy": "canary",
    }
    assert [r.version for r in promoted.history] == ["v1"]


def test_a_first_release_is_stable_whatever_the_strategy(store):
    state = desired.deploy(store, "iris", _release("v1"), strategy="cohort")
    assert state.summary() == {
        "stable": "v1",
        "canary": None,
        "canary_percent": 0,
        "strategy": "canary",
    }


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"client_header": "x client"}, "client_header must be an HTTP header name"),
        ({"cohort_values": []}, "at least one"),
        ({"cohort_values": " , "}, "at least one"),
        ({"cohort_values": [1]}, "list of strings"),
        ({"shadow_percent": 0}, "between 1 and 100"),
        ({"shadow_percent": 101}, "between 0 and 100"),
        ({"sticky_header": "x"}, "unknown routing option"),
    ],
)
def test_bad_routing_options_are_refused_and_nothing_is_written(store, routing, message):
    desired.deploy(store, "iris", _release("v1"))
    before = store.get_versioned(desired.state_key("iris"))
    with pytest.raises(UsageError, match=message):
        desired.deploy(store, "iris", _release("v2"), strategy="cohort", routing=routing)
    assert store.get_versioned(desired.state_key("iris")) == before
