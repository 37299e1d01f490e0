"""Publishing a release or recording its rejection; both return the run's outcome."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.core import settings
from mlops.core.store import ObjectStore
from mlops.model.packaging import SIGNATURE_FILE, read_metadata
from mlops.model.registry import publish_model_dir, validate_model_name

logger = logging.getLogger(__name__)

REJECTIONS_PREFIX = "rejections"


def _push_decision(model_name: str, decision: str) -> None:
    """Reports the release decision to the Pushgateway named by MLOPS_PUSHGATEWAY, if any."""
    gateway = settings.get(settings.PUSHGATEWAY_VAR)
    if gateway:
        from mlops.monitoring.push import push_release_decision

        push_release_decision(gateway, model_name, decision)


def _outcome(
    status: str, metadata: dict[str, Any], gates_json: str, model_uri: str = "", trigger: str = ""
) -> dict[str, Any]:
    """The run's outcome record: model, metrics (training's, then the gates'), gates and reason."""
    decision = json.loads(gates_json)
    metrics = {**metadata.get("metrics", {}), **decision.get("metrics", {})}
    return {
        "status": status,
        "model_name": metadata["model_name"],
        "model_version": metadata["version"] if status == "released" else None,
        "candidate_version": metadata["version"],
        "model_uri": model_uri or None,
        "metrics": metrics,
        "gates": decision["gates"],
        "reason": decision["reason"],
        # Why this run happened (e.g. the drift check that started a retraining).
        "trigger": json.loads(trigger) if trigger else None,
        # What was built: the repository, its commit and tree, and where each value came from.
        "repository": metadata.get("repository") or None,
    }


def publish_release(
    signed_dir: Path, gates_json: str, trigger: str = "", store: ObjectStore | None = None
) -> dict[str, Any]:
    """Verifies the signed model once more, then publishes it atomically.

    The second verification guards the hop between the signing task and this
    one (a different pod on a cluster): what is published is what was signed.

    Args:
        signed_dir: The signed model directory.
        gates_json: Decision JSON from :meth:`mlops.release.decision.Decision.gates_json`.
        trigger: JSON saying why this run happened, or empty.
        store: The object store (default: from the environment).

    Returns:
        The ``released`` outcome.

    Raises:
        VerificationError: The signature does not verify; nothing is published.
    """
    from mlops.trust.evidence import check_release
    from mlops.trust.signing import verify_model_dir

    store = store or ObjectStore.from_env()
    metadata = read_metadata(signed_dir)
    validate_model_name(metadata["model_name"])
    verify_model_dir(Path(signed_dir), settings.signing_key_paths()[1], SIGNATURE_FILE)
    # The same policy deploy and serving apply: never publish what they would refuse.
    check_release(Path(signed_dir), metadata["model_name"], metadata["version"])
    store.ensure_bucket()
    ref = publish_model_dir(store, Path(signed_dir), metadata["model_name"], metadata["version"])
    _push_decision(metadata["model_name"], "released")
    return _outcome("released", metadata, gates_json, ref.uri, trigger)


def record_rejection(
    model_dir: Path, gates_json: str, trigger: str = "", store: ObjectStore | None = None
) -> dict[str, Any]:
    """Writes ``rejections/<model>/<version>.json`` (status and reason); publishes nothing.

    Args:
        model_dir: The rejected candidate's model directory.
        gates_json: Decision JSON from :meth:`mlops.release.decision.Decision.gates_json`.
        trigger: JSON saying why this run happened, or empty.
        store: The object store (default: from the environment).

    Returns:
        The ``rejected`` outcome, with ``rejected_at`` and ``record_uri``.
    """
    return _record(read_metadata(model_dir), gates_json, trigger, store)


def record_static_rejection(
    model_name: str,
    gates_json: str,
    repository_json: str,
    trigger: str = "",
    store: ObjectStore | None = None,
) -> dict[str, Any]:
    """Records a run whose static gates failed: no candidate exists, the repository's code never ran.

    Args:
        model_name: The model the run was for.
        gates_json: Decision JSON of the static gates.
        repository_json: The repository record (URL, commit, tree digest) of the fetch step.
        trigger: JSON saying why this run happened, or empty.
        store: The object store (default: from the environment).

    Returns:
        The ``rejected`` outcome; its ``candidate_version`` names the record only.
    """
    from mlops.model.registry import new_version

    metadata = {
        "model_name": model_name,
        "version": new_version(),
        "metrics": {},
        "repository": json.loads(repository_json) if repository_json else {},
    }
    return _record(metadata, gates_json, trigger, store)


def _record(
    metadata: dict[str, Any], gates_json: str, trigger: str, store: ObjectStore | None
) -> dict[str, Any]:
    """Writes the rejection record of a candidate described by ``metadata``; returns the outcome."""
    store = store or ObjectStore.from_env()
    validate_model_name(metadata["model_name"])  # it becomes part of the record's key
    from mlops.release.evidence import build_evidence

    outcome = _outcome("rejected", metadata, gates_json, trigger=trigger)
    # The evidence a release would have carried, kept with the rejection, never signed.
    outcome["evidence"] = build_evidence(metadata, gates_json)
    outcome["rejected_at"] = datetime.now(UTC).isoformat()
    store.ensure_bucket()
    key = f"{REJECTIONS_PREFIX}/{metadata['model_name']}/{metadata['version']}.json"
    outcome["record_uri"] = store.put_json(key, outcome)
    logger.warning(
        "release of %s %s rejected: %s",
        metadata["model_name"],
        metadata["version"],
        outcome["reason"],
    )
    _push_decision(metadata["model_name"], "rejected")
    return outcome


def no_drift_outcome(trigger: dict[str, Any]) -> dict[str, Any]:
    """The outcome of a monitoring pass that changed nothing in production.

    ``no_drift`` when no trigger fired; ``not_enough_ground_truth`` when one did
    but too few labelled production rows came back to retrain on (``trigger``
    then carries the retraining data summary).
    """
    from mlops.monitoring.triggers import unchanged_reason

    retraining = trigger.get("retraining") or {}
    if retraining and not retraining.get("enough", True):
        status, reason = "not_enough_ground_truth", retraining["reason"]
    else:
        status, reason = "no_drift", unchanged_reason(trigger)
    _push_decision(trigger["model_name"], status)
    return {
        "status": status,
        "model_name": trigger["model_name"],
        "model_version": trigger["model_version"],
        "trigger": trigger,
        "reason": reason,
    }


def outcome_markdown(outcome: dict[str, Any]) -> str:
    """The run's summary for the Kubeflow UI: decision, version, gates, metrics and where things are.

    Every value is escaped: gate details and reasons can carry text from the
    repository or the data.
    """
    from mlops.core.markdown import escape_markdown as esc
    from mlops.release.evidence import ordered_gates

    if outcome["status"] == "released":
        lines = [
            f"### Released {esc(outcome['model_name'])} {esc(outcome['model_version'])}",
            "",
            f"- model folder: {esc(outcome['model_uri'])}",
        ]
    else:
        lines = [
            f"### Rejected {esc(outcome['model_name'])} candidate "
            f"{esc(outcome['candidate_version'])}",
            "",
            f"- reason: {esc(outcome['reason'])}",
        ]
        if outcome.get("record_uri"):
            lines.append(f"- rejection record: {esc(outcome['record_uri'])}")
    repository = outcome.get("repository") or {}
    if repository.get("uri"):
        lines.append(f"- repository: {esc(repository['uri'])}")
    report = (outcome.get("trigger") or {}).get("report_uri")
    if report:
        lines.append(f"- drift report: {esc(report)}")
    lines += ["", "| Gate | Result | Detail |", "|---|---|---|"]
    lines += [
        f"| {esc(name)} | {'passed' if g['passed'] else 'FAILED'} | {esc(g['detail'])} |"
        for name, g in ordered_gates(outcome["gates"])
    ]
    metrics = outcome.get("metrics") or {}
    if metrics:
        lines += ["", "| Metric | Value |", "|---|---|"]
        lines += [f"| {esc(name)} | {value:.4f} |" for name, value in sorted(metrics.items())]
    return "\n".join(lines) + "\n"
