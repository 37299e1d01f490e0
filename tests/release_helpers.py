"""Released model folders for tests: ``release.json`` written as the sign step writes it.

The model server, deploy and ``mlops verify`` accept only signed folders whose
signed ``release.json`` records a passed release (:mod:`mlops.trust.evidence`).
Tests that build model folders in-process call :func:`release_and_sign` where the
pipeline would run its gates and sign: the evidence is the real format, built by
:func:`mlops.release.evidence.build_evidence` from a decision whose gates passed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def passed_decision_json(holdout_accuracy: float = 1.0, min_accuracy: float = 0.8) -> str:
    """The decision JSON of a release whose every gate passed (holdout figures as given)."""
    from mlops.release.decision import GATE_ORDER, GateResult, decide

    gates = [GateResult(name, True, "passed (test fixture)") for name in GATE_ORDER]
    holdout = next(g for g in gates if g.name == "holdout_accuracy")
    holdout.metrics = {"holdout_accuracy": holdout_accuracy, "min_accuracy": min_accuracy}
    return decide(gates).gates_json()


def write_release(model_dir: Path, decision_json: str | None = None, **changes: Any) -> dict:
    """Writes ``release.json`` for the folder's metadata; ``changes`` override evidence keys."""
    from mlops.release.evidence import candidate_evidence
    from mlops.trust.evidence import RELEASE_FILE

    evidence = candidate_evidence(Path(model_dir), decision_json or passed_decision_json())
    evidence.update(changes)
    (Path(model_dir) / RELEASE_FILE).write_text(json.dumps(evidence, indent=2, sort_keys=True))
    return evidence


def release_and_sign(model_dir: Path, private_key: Path, **changes: Any) -> Path:
    """:func:`write_release`, then sign the folder (the sign step's order)."""
    from mlops.trust.signing import sign_model_dir

    write_release(model_dir, **changes)
    sign_model_dir(Path(model_dir), private_key)
    return Path(model_dir)
