"""Which release answers a request: the routing rules the model server and the cluster share.

The model server calls :func:`routes_to_candidate` for every unpinned request;
the cluster manifests (:mod:`mlops.deployment.mesh`) express the same rules
for a mesh. Keeping the rules here means a client is sent to the same version
by every process that routes it:

* ``canary``: a weighted random draw (``canary_percent`` of requests).
* ``sticky``: weighted by :func:`sticky_bucket` of the client header (default
  ``x-client-id``), so one client always gets the same version; a request
  without the header goes to stable.
* ``cohort``: the candidate answers exactly the requests whose cohort header
  (default ``x-mlops-cohort``, name matched case-insensitively) has one of the
  cohort values (default ``beta``, matched exactly).
* ``shadow``: stable answers every request; whether the candidate also gets a
  copy (:func:`mirrors_to_shadow`) and what happens to it is the server's business,
  so :func:`routes_to_candidate` returns ``None``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mlops.deployment.state import DeploymentState, check_routing

__all__ = [
    "RoutingPolicy",
    "header_value",
    "mirrors_to_shadow",
    "policy_of",
    "routes_to_candidate",
    "sticky_bucket",
]

#: Buckets of the sticky split: a client in bucket ``b`` gets the candidate when ``b < percent``.
BUCKETS = 100


@dataclass(frozen=True)
class RoutingPolicy:
    """The routing rule of one deployment state, immutable (a server can swap it whole).

    Attributes:
        strategy: ``canary``, ``sticky``, ``cohort`` or ``shadow``; ``canary`` with
            ``has_candidate`` False routes everything to stable.
        has_candidate: Whether there is a candidate at all.
        canary_percent: The weighted strategies' share (0-100).
        client_header: The header ``sticky`` hashes (lowercase).
        cohort_header: The header ``cohort`` reads (lowercase).
        cohort_values: The values of ``cohort_header`` that select the candidate.
        shadow_percent: The share of requests ``shadow`` copies to the candidate (1-100).
    """

    strategy: str = "canary"
    has_candidate: bool = False
    canary_percent: int = 0
    client_header: str = "x-client-id"
    cohort_header: str = "x-mlops-cohort"
    cohort_values: tuple[str, ...] = ("beta",)
    shadow_percent: int = 100


def policy_of(state: DeploymentState | RoutingPolicy) -> RoutingPolicy:
    """The :class:`RoutingPolicy` of a deployment state (a policy is returned as is)."""
    if isinstance(state, RoutingPolicy):
        return state
    routing = check_routing(state.routing)
    return RoutingPolicy(
        strategy=state.strategy,
        has_candidate=state.canary is not None,
        canary_percent=int(state.canary_percent),
        client_header=routing["client_header"],
        cohort_header=routing["cohort_header"],
        cohort_values=tuple(routing["cohort_values"]),
        shadow_percent=int(routing["shadow_percent"]),
    )


def sticky_bucket(client_key: str) -> int:
    """The client's bucket, 0-99: the first 8 bytes of SHA-256 of the key, big-endian, mod 100.

    Stable across processes, hosts and Python versions (unlike ``hash()``), so the
    server and anything else that splits by client agree.
    """
    digest = hashlib.sha256(client_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (case-insensitive), or None when it is absent."""
    wanted = name.lower()
    direct = headers.get(wanted)
    if direct is not None:
        return direct
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def routes_to_candidate(
    state: DeploymentState | RoutingPolicy,
    headers: Mapping[str, str],
    *,
    draw: Callable[[], float] = random.random,
) -> bool | None:
    """Whether the candidate answers this request.

    Args:
        state: The deployment state (or its :func:`policy_of`, cheaper per request).
        headers: The request's headers (any case).
        draw: A uniform [0, 1) number for the ``canary`` draw (tests pass their own).

    Returns:
        True for the candidate, False for stable, None under ``shadow`` (stable
        answers; the copy is :func:`mirrors_to_shadow`'s decision).
    """
    policy = policy_of(state)
    if not policy.has_candidate:
        return False
    if policy.strategy == "shadow":
        return None
    if policy.strategy == "cohort":
        return header_value(headers, policy.cohort_header) in policy.cohort_values
    if policy.canary_percent <= 0:
        return False
    if policy.strategy == "sticky":
        key = header_value(headers, policy.client_header)
        if not key:
            return False  # no client identity: stable, so nobody flips between versions
        return sticky_bucket(key) < policy.canary_percent
    return draw() * 100.0 < policy.canary_percent


def mirrors_to_shadow(
    state: DeploymentState | RoutingPolicy, *, draw: Callable[[], float] = random.random
) -> bool:
    """Whether a ``shadow`` candidate gets a copy of this request (``shadow_percent`` of them)."""
    policy = policy_of(state)
    if not policy.has_candidate or policy.strategy != "shadow":
        return False
    return policy.shadow_percent >= 100 or draw() * 100.0 < policy.shadow_percent
