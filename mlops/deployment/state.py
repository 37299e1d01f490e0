"""Desired deployment state per model, kept in the object store.

``deployments/<model_name>/state.json`` records which published version is
stable, which (if any) is the candidate (``canary``), how traffic reaches it
(``strategy``: one of :data:`~mlops.core.rules.ROUTING_STRATEGIES`, with its
``routing`` options and, for the weighted ones, ``canary_percent``), and a
history used by rollback. ``mlops serve`` reconciles towards it; on a cluster
the deployment components write it alongside the manifests they apply.

A state written before strategies existed has neither ``strategy`` nor
``routing`` and reads as a weighted ``canary`` with the default options.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops.core.errors import StoreError, UsageError, WriteConflict
from mlops.core.rules import (
    WEIGHTED_STRATEGIES,
    check_canary_percent,
    check_routing_strategy,
)
from mlops.core.store import ObjectStore

logger = logging.getLogger(__name__)

DEPLOYMENTS_PREFIX = "deployments"
# Concurrent writers (a scheduled retraining deploying a canary while someone
# promotes) each retry on a fresh read; this many lost races in a row is an error.
_UPDATE_ATTEMPTS = 8

#: The routing options and their defaults: the header a ``sticky`` split hashes, the
#: header and values that put a request in the ``cohort``, and the share of requests
#: a ``shadow`` candidate receives a copy of.
DEFAULT_ROUTING: dict[str, Any] = {
    "client_header": "x-client-id",
    "cohort_header": "x-mlops-cohort",
    "cohort_values": ["beta"],
    "shadow_percent": 100,
}
# An HTTP field name (RFC 9110 token); stored lowercase since names are case-insensitive.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")


def default_routing() -> dict[str, Any]:
    """A fresh copy of :data:`DEFAULT_ROUTING`."""
    return {**DEFAULT_ROUTING, "cohort_values": list(DEFAULT_ROUTING["cohort_values"])}


def check_routing(routing: Mapping[str, Any] | None) -> dict[str, Any]:
    """Routing options merged over :data:`DEFAULT_ROUTING`, checked and normalised.

    Args:
        routing: Some or all of ``client_header``, ``cohort_header``, ``cohort_values``
            (a list of strings, or one comma-separated string), ``shadow_percent`` (1-100).

    Returns:
        Every option, header names lowercased.

    Raises:
        UsageError: an unknown option, a header name that is not an HTTP token, no
            cohort value, or a shadow percent outside 1-100.
    """
    merged = default_routing()
    unknown = sorted(set(routing or {}) - set(DEFAULT_ROUTING))
    if unknown:
        raise UsageError(
            f"unknown routing option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(DEFAULT_ROUTING))}"
        )
    merged.update(routing or {})
    for key in ("client_header", "cohort_header"):
        value = merged[key]
        if not isinstance(value, str) or not _HEADER_NAME.match(value.strip().lower()):
            raise UsageError(f"routing {key} must be an HTTP header name, got {value!r}")
        merged[key] = value.strip().lower()
    values = merged["cohort_values"]
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise UsageError(f"routing cohort_values must be a list of strings, got {values!r}")
    values = [v.strip() for v in values if v.strip()]
    if not values:
        raise UsageError("routing cohort_values must name at least one header value")
    merged["cohort_values"] = values
    merged["shadow_percent"] = check_canary_percent(
        merged["shadow_percent"], allow_bounds=True, name="routing shadow_percent"
    )
    if merged["shadow_percent"] == 0:
        raise UsageError("routing shadow_percent must be between 1 and 100, got 0")
    return merged


@dataclass
class Release:
    """One published model version as the deployment state records it.

    Attributes:
        version: The published version.
        model_uri: ``s3://<bucket>/models/<name>/<version>``.
    """

    version: str
    model_uri: str


@dataclass
class DeploymentState:
    """Desired state of one model's serving.

    Attributes:
        model_name: The model.
        stable: Version taking the traffic the candidate does not.
        canary: The candidate under trial (whatever the strategy), or None.
        canary_percent: Share of requests (0-100) routed to the candidate by the
            weighted strategies (``canary``, ``sticky``); 0 for ``cohort`` and ``shadow``.
        history: Previous stable releases, newest last (rollback pops from it).
        updated_at: ISO timestamp of the last change.
        strategy: How requests reach the candidate (:data:`~mlops.core.rules.ROUTING_STRATEGIES`);
            ``canary`` whenever there is no candidate.
        routing: The strategy's options (:data:`DEFAULT_ROUTING` keys).
    """

    model_name: str
    stable: Release | None = None
    canary: Release | None = None
    canary_percent: int = 0
    history: list[Release] = field(default_factory=list)
    updated_at: str = ""
    strategy: str = "canary"
    routing: dict[str, Any] = field(default_factory=default_routing)

    def to_dict(self) -> dict:
        """The JSON form written to ``state.json``."""
        return asdict(self)

    def summary(self) -> dict:
        """Versions only: what a person (or the CLI's JSON) needs to see."""
        return {
            "stable": self.stable.version if self.stable else None,
            "canary": self.canary.version if self.canary else None,
            "canary_percent": self.canary_percent,
            "strategy": self.strategy,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DeploymentState:
        """Reads the form :meth:`to_dict` writes."""

        def release(value):
            return Release(**value) if value else None

        return cls(
            model_name=data["model_name"],
            stable=release(data.get("stable")),
            canary=release(data.get("canary")),
            canary_percent=int(data.get("canary_percent", 0)),
            history=[Release(**r) for r in data.get("history", [])],
            updated_at=data.get("updated_at", ""),
            strategy=check_routing_strategy(data.get("strategy") or "canary"),
            routing=check_routing(data.get("routing")),
        )

    def drop_candidate(self) -> None:
        """No candidate any more: all traffic to stable, the strategy back to ``canary``."""
        self.canary, self.canary_percent = None, 0
        self.strategy, self.routing = "canary", default_routing()


def state_key(model_name: str) -> str:
    """Where the model's state lives in the store."""
    return f"{DEPLOYMENTS_PREFIX}/{model_name}/state.json"


def read_state(store: ObjectStore, model_name: str) -> DeploymentState | None:
    """The recorded state, or None for a model never deployed."""
    return _parse(store.get_versioned(state_key(model_name)))


def _parse(current: tuple[bytes, str] | None) -> DeploymentState | None:
    return DeploymentState.from_dict(json.loads(current[0])) if current else None


def update_state(
    store: ObjectStore, model_name: str, change: Callable[[DeploymentState | None], DeploymentState]
) -> DeploymentState:
    """Applies ``change`` to the current state and writes it back atomically.

    The write is conditional on the state not having changed since it was read;
    when another writer got there first, ``change`` runs again on the fresh
    state, so no update is lost.

    Raises:
        UsageError: raised by ``change`` (nothing is written).
        StoreError: the store failed, or the state kept changing underneath.
    """
    key = state_key(model_name)
    for attempt in range(_UPDATE_ATTEMPTS):
        current = store.get_versioned(key)
        state = change(_parse(current))
        state.updated_at = datetime.now(UTC).isoformat()
        data = json.dumps(state.to_dict(), indent=2, sort_keys=True).encode()
        try:
            store.put_if_unchanged(key, data, current[1] if current else None)
            return state
        except WriteConflict:
            logger.info("deployment state of %s changed meanwhile; retrying", model_name)
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter only
    raise StoreError(
        f"deployment state of {model_name!r} kept changing; gave up after "
        f"{_UPDATE_ATTEMPTS} attempts"
    )


def list_deployments(store: ObjectStore) -> list[str]:
    """Names of every model with a recorded state, sorted."""
    names = set()
    for key in store.list(f"{DEPLOYMENTS_PREFIX}/", recursive=True):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "state.json":
            names.add(parts[1])
    return sorted(names)


def deploy(
    store: ObjectStore,
    model_name: str,
    release: Release,
    canary_percent: int | None = None,
    *,
    strategy: str = "canary",
    routing: Mapping[str, Any] | None = None,
) -> DeploymentState:
    """Records a new desired release.

    The release becomes the candidate next to the current stable when there is a
    stable release and either the strategy is weighted (``canary``, ``sticky``)
    with ``canary_percent`` 1-99, or it is ``cohort`` or ``shadow`` (which take no
    percent). Otherwise -- a weighted strategy without a percent or with 100, or
    nothing stable yet -- it becomes the stable release at once.

    Args:
        store: The object store.
        model_name: The model.
        release: The published version.
        canary_percent: The candidate's share for the weighted strategies (0-100).
        strategy: One of :data:`~mlops.core.rules.ROUTING_STRATEGIES`.
        routing: Options over :data:`DEFAULT_ROUTING` (see :func:`check_routing`).

    Raises:
        UsageError: an unknown strategy, a percent outside 0-100, bad routing options.
    """
    check_routing_strategy(strategy)
    options = check_routing(routing)
    percent = (
        None
        if canary_percent is None
        else check_canary_percent(canary_percent, allow_bounds=True, name="canary percent")
    )
    wants_candidate = strategy not in WEIGHTED_STRATEGIES or (
        percent is not None and 0 < percent < 100
    )

    def change(current: DeploymentState | None) -> DeploymentState:
        state = current or DeploymentState(model_name)
        if wants_candidate and state.stable is not None:
            state.canary = release
            state.canary_percent = (percent or 0) if strategy in WEIGHTED_STRATEGIES else 0
            state.strategy, state.routing = strategy, options
        else:
            if state.stable is not None and state.stable.version != release.version:
                state.history.append(state.stable)
            state.stable = release
            state.drop_candidate()
        return state

    state = update_state(store, model_name, change)
    logger.info(
        "deployment %s: stable=%s candidate=%s (%s, %d%%)",
        model_name,
        state.stable and state.stable.version,
        state.canary and state.canary.version,
        state.strategy,
        state.canary_percent,
    )
    return state


def check_candidate(state: DeploymentState, model_name: str, expected: str | None) -> None:
    """Refuses a change meant for candidate ``expected`` when another one is deployed now.

    Raises:
        UsageError: ``expected`` is given and is not the state's candidate.
    """
    if expected is not None and (state.canary is None or state.canary.version != expected):
        now = state.canary.version if state.canary else "none"
        raise UsageError(
            f"model {model_name!r}: the candidate is now {now}, not {expected}; nothing changed"
        )


def promote(
    store: ObjectStore, model_name: str, *, expected_candidate: str | None = None
) -> DeploymentState:
    """Makes the candidate (of any strategy) the stable release and sends it all traffic.

    Args:
        store: The object store.
        model_name: The model.
        expected_candidate: Promote only if this version is still the candidate (an
            automated verdict must not promote a candidate deployed after it was reached).

    Raises:
        UsageError: no candidate, or another candidate than ``expected_candidate``.
    """

    def change(state: DeploymentState | None) -> DeploymentState:
        if state is None or state.canary is None:
            raise UsageError(f"model {model_name!r} has no canary to promote")
        check_candidate(state, model_name, expected_candidate)
        if state.stable is not None:
            state.history.append(state.stable)
        state.stable = state.canary
        state.drop_candidate()
        return state

    return update_state(store, model_name, change)


def rollback(
    store: ObjectStore, model_name: str, *, expected_candidate: str | None = None
) -> DeploymentState:
    """Drops the candidate (of any strategy); with none, returns to the previous stable release.

    Args:
        store: The object store.
        model_name: The model.
        expected_candidate: Drop the candidate only if it is still this version.

    Raises:
        UsageError: nothing to roll back, or another candidate than ``expected_candidate``.
    """

    def change(state: DeploymentState | None) -> DeploymentState:
        if state is None or state.stable is None:
            raise UsageError(f"model {model_name!r} is not deployed")
        check_candidate(state, model_name, expected_candidate)
        if state.canary is not None:
            state.drop_candidate()
        elif state.history:
            state.stable = state.history.pop()
        else:
            raise UsageError(
                f"model {model_name!r} has no canary and no previous release to roll back to"
            )
        return state

    return update_state(store, model_name, change)
