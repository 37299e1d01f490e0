"""Gate results: what each release check decided, and the overall decision.

Gates travel between pipeline tasks as JSON strings (KFP parameters), and the
overall decision as a typed bool, because ``dsl.If`` compares parameters only.
A gate that could not check reports ``passed: false``: everything fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

#: The static gates: they read the repository and run none of its code, so they come first.
STATIC_GATES = ("code_quality", "dependency_audit", "repository_scan")
#: The gates on the trained candidate. Signing is not a gate: it follows a passed decision.
CANDIDATE_GATES = ("model_scan", "holdout_accuracy", "no_regression")
GATE_ORDER = STATIC_GATES + CANDIDATE_GATES


@dataclass
class GateResult:
    """What one release check decided.

    Attributes:
        name: Gate name (see :data:`GATE_ORDER`).
        passed: True only when the check ran and its verdict was positive.
        detail: Human-readable explanation, shown in the decision's reason.
        metrics: Numbers worth recording with the release (e.g. holdout accuracy).
    """

    name: str
    passed: bool
    detail: str
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        """Returns the result as a JSON string (a KFP parameter)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GateResult:
        """Parses a string written by :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            data["name"], bool(data["passed"]), str(data["detail"]), dict(data.get("metrics", {}))
        )


@dataclass
class Decision:
    """The release decision over all gates.

    Attributes:
        passed: True when every required gate ran and passed.
        reason: ``"all gates passed"`` or every failure, ``"; "``-separated.
        gates: ``{name: {"passed", "detail"}}`` in :data:`GATE_ORDER` order.
        metrics: The gates' metrics merged.
    """

    passed: bool
    reason: str
    gates: dict[str, dict[str, Any]]
    metrics: dict[str, float]

    def gates_json(self) -> str:
        """Returns gates, metrics and reason as one JSON string."""
        return json.dumps(
            {"gates": self.gates, "metrics": self.metrics, "reason": self.reason}, sort_keys=True
        )


def decide(results: Iterable[GateResult], required: Iterable[str] = GATE_ORDER) -> Decision:
    """All required gates must be present and passed; the reason names every failure.

    Args:
        results: The gates that ran, in any order.
        required: Gate names that must be among ``results``; a missing one fails.

    Returns:
        The decision.
    """
    by_name: dict[str, GateResult] = {}
    for result in results:
        # Two results under one name: a failing one wins, so a duplicate cannot mask a failure.
        known = by_name.get(result.name)
        if known is None or (known.passed and not result.passed):
            by_name[result.name] = result
    failures = [f"{name}: {by_name[name].detail}" for name in by_name if not by_name[name].passed]
    failures += [f"{name}: gate did not run" for name in required if name not in by_name]
    metrics: dict[str, float] = {}
    for result in by_name.values():
        metrics.update(result.metrics)
    ordered = sorted(by_name, key=lambda n: (GATE_ORDER.index(n) if n in GATE_ORDER else 99, n))
    gates = {n: {"passed": by_name[n].passed, "detail": by_name[n].detail} for n in ordered}
    for name in required:
        gates.setdefault(name, {"passed": False, "detail": "gate did not run"})
    reason = "; ".join(failures) if failures else "all gates passed"
    return Decision(not failures, reason, gates, metrics)


def gates_from_json(decision_json: str) -> list[GateResult]:
    """The gate results inside a :meth:`Decision.gates_json` string (metrics kept once, on the first)."""
    data = json.loads(decision_json)
    results = [
        GateResult(name, bool(gate["passed"]), str(gate["detail"]))
        for name, gate in data["gates"].items()
    ]
    if results:
        results[0].metrics = dict(data.get("metrics", {}))
    return results
