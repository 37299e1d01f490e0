"""Publishing a release or recording its rejection; both return the run's outcome."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops.packaging import SIGNATURE_FILE, read_metadata
from mlops.registry import publish_model_dir, validate_model_name
from mlops.store import ObjectStore

logger = logging.getLogger(__name__)

REJECTIONS_PREFIX = "rejections"


def _outcome(status: str, metadata: dict[str, Any], gates_json: str, model_uri: str = "") -> dict[str, Any]:
    decision = json.loads(gates_json)
    metrics = {k: v for k, v in metadata.get("metrics", {}).items()}
    metrics.update(decision.get("metrics", {}))
    return {
        "status": status,
        "model_name": metadata["model_name"],
        "model_version": metadata["version"] if status == "released" else None,
        "candidate_version": metadata["version"],
        "model_uri": model_uri or None,
        "metrics": metrics,
        "gates": decision["gates"],
        "reason": decision["reason"],
    }


def publish_release(signed_dir: Path, gates_json: str, store: ObjectStore | None = None) -> dict[str, Any]:
    """Verifies the signed model once more, then publishes it atomically.

    The second verification guards the hop between the signing task and this
    one (a different pod on a cluster): what is published is what was signed.
    """
    from mlops.release_gates import signing_key_paths
    from mlops.trust.signing import verify_model_dir

    store = store or ObjectStore.from_env()
    metadata = read_metadata(signed_dir)
    validate_model_name(metadata["model_name"])
    verify_model_dir(Path(signed_dir), signing_key_paths()[1], SIGNATURE_FILE)
    store.ensure_bucket()
    ref = publish_model_dir(store, Path(signed_dir), metadata["model_name"], metadata["version"])
    return _outcome("released", metadata, gates_json, ref.uri)


def record_rejection(model_dir: Path, gates_json: str, store: ObjectStore | None = None) -> dict[str, Any]:
    """Writes ``rejections/<model>/<version>.json`` (status and reason); publishes nothing."""
    store = store or ObjectStore.from_env()
    metadata = read_metadata(model_dir)
    outcome = _outcome("rejected", metadata, gates_json)
    outcome["rejected_at"] = datetime.now(timezone.utc).isoformat()
    store.ensure_bucket()
    key = f"{REJECTIONS_PREFIX}/{metadata['model_name']}/{metadata['version']}.json"
    outcome["record_uri"] = store.put_json(key, outcome)
    logger.warning("release of %s %s rejected: %s", metadata["model_name"], metadata["version"],
                   outcome["reason"])
    return outcome


def outcome_markdown(outcome: dict[str, Any]) -> str:
    """The outcome as Markdown for the Kubeflow UI: verdict, reason and a gate table."""
    if outcome["status"] == "released":
        title = f"### Released {outcome['model_name']} {outcome['model_version']}\n\n`{outcome['model_uri']}`"
    else:
        title = (f"### Rejected {outcome['model_name']} candidate {outcome['candidate_version']}\n\n"
                 f"{outcome['reason']}")
    rows = "\n".join(f"| {name} | {'passed' if g['passed'] else 'FAILED'} | {g['detail']} |"
                     for name, g in outcome["gates"].items())
    return f"{title}\n\n| Gate | Result | Detail |\n|---|---|---|\n{rows}\n"
