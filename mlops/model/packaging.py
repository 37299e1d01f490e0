"""The model directory: the unit that is scanned, signed, published and served.

Files:
    model.skops        the fitted scikit-learn Pipeline (skops format, no pickle)
    metadata.json      feature schema, classes, metrics, fingerprints, versions, recipe
    reference.parquet  a sample of the training features, the drift reference
    requirements.txt   exact pins of the serving environment (audited)
    sbom.cdx.json      CycloneDX SBOM of that environment
    release.json       the release evidence (added by the sign step, after the decision)
    model.sig          OpenSSF model-signing bundle (added by the sign step)
"""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import platform
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing the file-name constants stays cheap
    import pandas as pd

    from mlops.model.schema import FeatureSchema

logger = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "reference.parquet"
REQUIREMENTS_FILE = "requirements.txt"
SIGNATURE_FILE = "model.sig"
REFERENCE_ROWS = 5000
_VERSIONED = ("kfp-mlops", "scikit-learn", "skops", "numpy", "scipy", "pandas", "kserve")


def library_versions() -> dict[str, str]:
    """Returns the Python version and the installed versions of the model's key libraries."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_model_dir(
    out_dir: Path,
    model: Any,
    *,
    model_file: Path | None = None,
    classes: Sequence[Any] | None = None,
    model_name: str,
    version: str,
    schema: FeatureSchema,
    target_column: str,
    estimator: str,
    drop_columns: list[str],
    metrics: dict[str, float],
    fingerprints: dict[str, str],
    train_features: pd.DataFrame,
    params: dict[str, Any],
    seed: int = 42,
    recipe: dict[str, Any] | None = None,
    repository: dict[str, Any] | None = None,
    label_counts: dict[str, dict[str, int]] | None = None,
) -> Path:
    """Writes everything but the signature into ``out_dir``.

    Args:
        out_dir: The model directory (created if missing).
        model: The fitted estimator (must expose ``classes_``); None when
            ``model_file`` is an already saved model (then ``classes`` is required).
        model_file: A saved ``.skops`` model, moved into place when it is elsewhere.
        classes: The model's classes, when ``model`` is None.
        model_name: Registry name.
        version: Version id.
        schema: The model's features (written as ``feature_names`` and ``features``).
        target_column: Label column.
        estimator: Estimator name used for training.
        drop_columns: Columns dropped before training.
        metrics: Test-split scores.
        fingerprints: Data fingerprints (``data``, ``train``, ``test``).
        train_features: Training features; a sample becomes the drift reference.
        params: Training parameters recorded in the recipe.
        seed: Random seed of the reference sample.
        recipe: How the model was built: the repository's entry point and params,
            or the checked-in model it adopted.
        repository: Where the repository came from: kind, URL, commit, tree digest,
            and the pinned URI retraining fetches again.
        label_counts: Rows per class of the training and test splits (``{"train": {label:
            count}, "test": ...}``): the baseline of prediction and target drift.

    Returns:
        ``out_dir``.
    """
    from mlops.core.environment import serving_requirements
    from mlops.core.sbom import SBOM_FILE, write_sbom
    from mlops.model.modelio import save_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        save_model(model, out_dir / MODEL_FILE)
        classes = list(model.classes_)
    elif model_file is None or classes is None:
        raise ValueError("write_model_dir needs a model, or a model_file and its classes")
    elif Path(model_file).resolve() != (out_dir / MODEL_FILE).resolve():
        shutil.move(model_file, out_dir / MODEL_FILE)
    sample = train_features.sample(n=min(REFERENCE_ROWS, len(train_features)), random_state=seed)
    sample.reset_index(drop=True).to_parquet(out_dir / REFERENCE_FILE, index=False)
    (out_dir / REQUIREMENTS_FILE).write_text(serving_requirements())
    # What the model is served with, as a CycloneDX SBOM; the signature covers it too.
    write_sbom(out_dir / SBOM_FILE)
    metadata = {
        "model_name": model_name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "target_column": target_column,
        "estimator": estimator,
        "drop_columns": drop_columns,
        **schema.to_metadata(),
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "metrics": metrics,
        "data_fingerprints": fingerprints,
        "library_versions": library_versions(),
        "reference_sample": {"file": REFERENCE_FILE, "rows": len(sample)},
        "params": params,
        "recipe": recipe or {},
        "repository": repository or {},
        "label_counts": label_counts or {},
    }
    write_metadata(out_dir, metadata)
    return out_dir


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """Returns the parsed ``metadata.json`` of a model directory."""
    return json.loads((Path(model_dir) / METADATA_FILE).read_text())


def write_metadata(model_dir: Path, metadata: dict[str, Any]) -> None:
    """Writes ``metadata.json`` (indented, sorted keys) into a model directory."""
    (Path(model_dir) / METADATA_FILE).write_text(
        json.dumps(metadata, indent=2, sort_keys=True, default=str)
    )
