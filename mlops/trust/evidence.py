"""Release evidence (``release.json``) and the release policy checked before a model runs.

A signature proves who signed a folder, not that the folder passed. The flow
writes ``release.json`` (every gate's result, the holdout metrics, the champion
comparison, thresholds, the repository commit, data fingerprints) after the
release decision and signs the folder only then, so a signed folder carries its
own proof of release. :func:`check_release` is the policy deploy, ``mlops verify``
and the model server apply after the signature verified: evidence present, for
this model and this version, every gate passed, holdout accuracy at or above the
model's threshold and, when set, ``MLOPS_MIN_ACCURACY``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mlops.core import settings
from mlops.core.errors import VerificationError

RELEASE_FILE = "release.json"
EVIDENCE_SCHEMA = 1


def read_evidence(model_dir: Path) -> dict[str, Any]:
    """The parsed ``release.json`` of a model folder.

    Raises:
        VerificationError: there is none (signed but never released), or it does not parse.
    """
    path = Path(model_dir) / RELEASE_FILE
    if not path.is_file():
        raise VerificationError(
            f"{model_dir} is signed but has no {RELEASE_FILE}: it was never released "
            "(a candidate is signed only after every gate passed)"
        )
    try:
        evidence = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VerificationError(f"{RELEASE_FILE} of {model_dir} is unreadable: {exc}") from exc
    if not isinstance(evidence, dict):
        raise VerificationError(f"{RELEASE_FILE} of {model_dir} is not a JSON object")
    return evidence


def policy_min_accuracy(evidence: dict[str, Any], floor: float | None = None) -> float:
    """The accuracy the policy asks of this release: its own threshold, raised by ``floor``.

    ``floor`` defaults to ``MLOPS_MIN_ACCURACY`` (unset: no raise).
    """
    if floor is None:
        floor = settings.get(settings.MIN_ACCURACY_VAR)
    own = (evidence.get("thresholds") or {}).get("min_accuracy")
    own_value = float(own) if isinstance(own, int | float) else 0.0
    return max(own_value, floor if floor is not None else 0.0)


def check_release(
    model_dir: Path, model_name: str, version: str, floor: float | None = None
) -> dict[str, Any]:
    """Applies the release policy to an already verified folder; returns its evidence.

    Call it after the signature verified, so the ``release.json`` read here is the
    signed one.

    Args:
        model_dir: The verified model folder.
        model_name: The name it is published (or served, deployed) under.
        version: The version it is published under.
        floor: A policy minimum accuracy (default ``MLOPS_MIN_ACCURACY``).

    Raises:
        VerificationError: no evidence; evidence for another model or version;
            a gate that did not pass; holdout accuracy below the policy minimum.
    """
    evidence = read_evidence(model_dir)
    recorded = (evidence.get("model_name"), evidence.get("version"))
    if recorded != (model_name, version):
        raise VerificationError(
            f"{RELEASE_FILE} is the evidence of {recorded[0]!r} version {recorded[1]!r}, "
            f"not of {model_name!r} version {version!r} (a released folder copied under "
            "another name?)"
        )
    gates = evidence.get("gates")
    if not isinstance(gates, dict) or not gates:
        raise VerificationError(f"{RELEASE_FILE} of {model_name} {version} records no gates")
    # Only a literal true passes: a string "false" or a malformed entry fails closed.
    failed = sorted(
        name
        for name, gate in gates.items()
        if not isinstance(gate, dict) or gate.get("passed") is not True
    )
    if failed:
        raise VerificationError(
            f"{RELEASE_FILE} of {model_name} {version} records failed gate(s): "
            + "; ".join(
                f"{name}: {gates[name].get('detail', '') if isinstance(gates[name], dict) else ''}"
                for name in failed
            )
        )
    if evidence.get("released") is not True:
        raise VerificationError(
            f"{RELEASE_FILE} of {model_name} {version} records a rejected decision: "
            f"{evidence.get('reason', '')}"
        )
    accuracy = (evidence.get("holdout_metrics") or {}).get("holdout_accuracy")
    if not isinstance(accuracy, int | float) or not math.isfinite(accuracy):
        raise VerificationError(
            f"{RELEASE_FILE} of {model_name} {version} records no holdout accuracy"
        )
    required = policy_min_accuracy(evidence, floor)
    if accuracy < required:
        raise VerificationError(
            f"holdout accuracy {accuracy:.4f} of {model_name} {version} is below the release "
            f"policy's minimum {required:.4f}"
        )
    return evidence
