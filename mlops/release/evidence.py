"""Writing the release evidence: what a release passed, recorded in the folder before it is signed.

The decision comes first, the signature second: :func:`sign_release` runs only
after every gate passed, writes ``release.json`` into a copy of the candidate and
signs that copy, so the signature covers the evidence with the model files. A
rejected candidate is never signed; its rejection record carries the same
evidence, unsigned (:func:`build_evidence` serves both).
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.core.errors import VerificationError
from mlops.model.packaging import SIGNATURE_FILE, read_metadata
from mlops.trust.evidence import EVIDENCE_SCHEMA, RELEASE_FILE

logger = logging.getLogger(__name__)


def build_evidence(
    metadata: dict[str, Any],
    decision_json: str,
    *,
    holdout_fingerprint: str = "",
    max_regression: float | None = None,
    run_id: str = "",
    serving_image: str = "",
    trigger: str = "",
) -> dict[str, Any]:
    """The evidence of one decision about one candidate.

    Args:
        metadata: The candidate's ``metadata.json`` (name, version, repository, fingerprints).
        decision_json: The decision (``Decision.gates_json``): gates, metrics, reason.
        holdout_fingerprint: Fingerprint of the holdout table the gates scored.
        max_regression: The champion gate's allowance, when it ran.
        run_id: The pipeline run that decided.
        serving_image: The predictor image the release is deployed with ('' = the default).
        trigger: JSON of why the run happened (the monitoring loop's drift, live
            accuracy and data windows), or ''.
    """
    decision = json.loads(decision_json)
    metrics: dict[str, float] = decision.get("metrics", {})
    thresholds: dict[str, float] = {}
    if "min_accuracy" in metrics:
        thresholds["min_accuracy"] = metrics["min_accuracy"]
    if max_regression is not None:
        thresholds["max_regression"] = max_regression
    return {
        "schema": EVIDENCE_SCHEMA,
        "model_name": metadata["model_name"],
        "version": metadata["version"],
        "decided_at": datetime.now(UTC).isoformat(),
        "released": all(g["passed"] for g in decision["gates"].values()),
        "reason": decision.get("reason", ""),
        "repository": metadata.get("repository") or {},
        "data_fingerprints": {
            **(metadata.get("data_fingerprints") or {}),
            **({"holdout": holdout_fingerprint} if holdout_fingerprint else {}),
        },
        "gates": decision["gates"],
        "holdout_metrics": {k: v for k, v in metrics.items() if k.startswith("holdout_")},
        "test_metrics": metadata.get("metrics") or {},
        "champion": {
            k: v
            for k, v in metrics.items()
            if k.startswith(("champion_", "candidate_")) or k == "mcnemar_p_value"
        },
        "thresholds": thresholds,
        "pipeline_run_id": run_id,
        "trigger": _trigger_summary(trigger),
        "images": {"serving": serving_image or None},
    }


def _trigger_summary(trigger: str) -> dict[str, Any] | None:
    """What started the run, briefly: the reasons, drift share, live accuracy and data windows."""
    if not trigger:
        return None
    record = json.loads(trigger)
    retraining = record.get("retraining") or {}
    return {
        "reasons": record.get("reasons")
        or (["dataset_drift"] if record.get("drift_detected") else []),
        "drift_share": record.get("drift_share"),
        "quality": record.get("quality"),
        "windows": retraining.get("windows"),
        "counts": retraining.get("counts"),
    }


def sign_release(model_dir: Path, signed_dir: Path, evidence: dict[str, Any]) -> Path:
    """Copies the candidate to ``signed_dir``, writes ``release.json``, signs and verifies it.

    Raises:
        UsageError: a key is missing or unusable.
        VerificationError: the fresh signature does not verify with the public key
            serving will use (a key pair mismatch); nothing is left signed then.
    """
    from mlops.core.settings import signing_key_paths
    from mlops.trust.signing import sign_model_dir, verify_model_dir

    if evidence.get("released") is not True:
        raise VerificationError(
            f"refusing to sign {evidence.get('model_name')} {evidence.get('version')}: "
            f"the decision did not pass ({evidence.get('reason', '')})"
        )
    private_key, public_key = signing_key_paths()
    signed_dir = Path(signed_dir)
    if signed_dir.exists():
        shutil.rmtree(signed_dir)
    shutil.copytree(model_dir, signed_dir)
    (signed_dir / SIGNATURE_FILE).unlink(missing_ok=True)
    (signed_dir / RELEASE_FILE).write_text(json.dumps(evidence, indent=2, sort_keys=True))
    try:
        sign_model_dir(signed_dir, private_key, SIGNATURE_FILE)
        verify_model_dir(signed_dir, public_key, SIGNATURE_FILE)
    except Exception:
        shutil.rmtree(signed_dir, ignore_errors=True)
        raise
    logger.info("signed release %s %s", evidence["model_name"], evidence["version"])
    return signed_dir


def evidence_markdown(evidence: dict[str, Any]) -> str:
    """The evidence as Markdown for the Kubeflow UI (every value escaped)."""
    from mlops.core.markdown import escape_markdown

    repository = evidence.get("repository") or {}
    lines = [
        f"### Release evidence: {escape_markdown(evidence['model_name'])} "
        f"{escape_markdown(evidence['version'])}",
        "",
        f"- repository: {escape_markdown(str(repository.get('uri', '-')))} "
        f"(commit {escape_markdown(str(repository.get('commit') or '-'))}, "
        f"tree {escape_markdown(str(repository.get('tree_digest', '-')))})",
        f"- pipeline run: {escape_markdown(evidence.get('pipeline_run_id') or '-')}",
        f"- thresholds: {escape_markdown(json.dumps(evidence.get('thresholds', {})))}",
        "",
        "| Gate | Result | Detail |",
        "|---|---|---|",
    ]
    for name, gate in ordered_gates(evidence["gates"]):
        lines.append(
            f"| {escape_markdown(name)} | {'passed' if gate['passed'] else 'FAILED'} | "
            f"{escape_markdown(str(gate['detail']))} |"
        )
    return "\n".join(lines) + "\n"


def ordered_gates(gates: dict[str, Any]) -> list[tuple[str, Any]]:
    """The gates in :data:`~mlops.release.decision.GATE_ORDER` (JSON keeps them sorted by name)."""
    from mlops.release.decision import GATE_ORDER

    rank = {name: i for i, name in enumerate(GATE_ORDER)}
    return sorted(gates.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def candidate_evidence(model_dir: Path, decision_json: str, **kwargs: Any) -> dict[str, Any]:
    """:func:`build_evidence` for a candidate folder (reads its ``metadata.json``)."""
    return build_evidence(read_metadata(model_dir), decision_json, **kwargs)
