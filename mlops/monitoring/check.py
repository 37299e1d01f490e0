"""The drift check of the monitoring loop: which model, which data, what verdict.

Reference: the training sample stored with the deployed (stable) model, or any
table. Current: the model's inference logs of the last ``window_hours``, or any
table. Only the model's feature columns are compared; production data carries
no target.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.core import settings
from mlops.core.data import read_table
from mlops.core.errors import DataError, UsageError
from mlops.core.rules import check_fraction
from mlops.core.store import ObjectStore
from mlops.model.schema import FeatureSchema

if TYPE_CHECKING:  # pragma: no cover - mlops.monitoring.drift (scipy) is imported when a check runs
    from mlops.monitoring.drift import DriftResult

logger = logging.getLogger(__name__)

REPORTS_PREFIX = "reports/drift"


@dataclass
class DeployedModel:
    """The model the check is about: its metadata and drift reference."""

    name: str
    version: str
    uri: str
    metadata: dict[str, Any]
    reference: pd.DataFrame

    def recipe(self) -> dict[str, str]:
        """How it was trained, for retraining the same way.

        ``categorical_columns`` is '' for models published before the parameter existed.
        """
        params = self.metadata.get("params") or {}
        return {
            "target_column": self.metadata["target_column"],
            "drop_columns": ",".join(self.metadata.get("drop_columns", [])),
            "categorical_columns": ",".join(params.get("categorical_columns", [])),
            "recipe_uri": self.recipe_uri(),
        }

    def recipe_uri(self) -> str:
        """The repository the model was built from, pinned (git at its recorded commit).

        Models published before repositories were recorded were trained by a built-in
        estimator: the built-in recipe of that name rebuilds them.
        """
        repository = self.metadata.get("repository") or {}
        if repository.get("uri"):
            return str(repository["uri"])
        return f"builtin:{self.metadata.get('estimator', 'logistic_regression')}"

    @property
    def schema(self) -> FeatureSchema:
        """Its feature schema: the columns drift compares and their kinds, from ``metadata.json``."""
        return FeatureSchema.from_metadata(self.metadata)


def load_deployed_model(store: ObjectStore, model_name: str) -> DeployedModel:
    """The stable deployed version, else the latest published one.

    Raises:
        UsageError: the model has never been published.
    """
    from mlops.deployment.state import read_state
    from mlops.model.packaging import METADATA_FILE, REFERENCE_FILE
    from mlops.model.registry import resolve, version_prefix

    state = read_state(store, model_name)
    if state is not None and state.stable is not None:
        version = state.stable.version
    else:
        version = resolve(store, model_name).version
    prefix = version_prefix(model_name, version)
    metadata = json.loads(store.get_bytes(f"{prefix}/{METADATA_FILE}"))
    reference = pd.read_parquet(io.BytesIO(store.get_bytes(f"{prefix}/{REFERENCE_FILE}")))
    return DeployedModel(model_name, version, store.uri(prefix), metadata, reference)


def current_data(
    store: ObjectStore,
    model_name: str,
    current_uri: str = "",
    window_hours: float = 24.0,
    now: datetime | None = None,
) -> tuple[pd.DataFrame, str]:
    """Production data: ``current_uri`` when given, else the inference logs of the window.

    Raises:
        DataError: the window holds no logged requests.
    """
    if current_uri:
        return read_table(current_uri), current_uri
    from mlops.monitoring.inference_log import read_inference_logs

    if window_hours <= 0:
        raise UsageError(f"window_hours must be positive, got {window_hours}")
    since = (now or datetime.now(UTC)) - timedelta(hours=window_hours)
    frame = read_inference_logs(store, model_name, since=since)
    source = f"inference logs of {model_name} since {since.isoformat(timespec='seconds')}"
    if frame.empty:
        raise DataError(f"no production data: the {source} are empty (window_hours={window_hours})")
    return frame, source


def drift_payload(result: DriftResult) -> dict[str, Any]:
    """The verdict of ``result`` as JSON: share, row counts and per-column drifted/score/method.

    Args:
        result: A drift check result.

    Returns:
        ``drift_detected``, ``drift_share``, ``columns``, ``n_reference`` and ``n_current``.
    """
    data = result.to_dict()
    return {
        "drift_detected": data["drift_detected"],
        "drift_share": data["drift_share"],
        "columns": {
            name: {k: c[k] for k in ("drifted", "score", "method", "threshold")}
            for name, c in data["columns"].items()
        },
        "n_reference": data["n_reference"],
        "n_current": data["n_current"],
    }


@dataclass
class DriftCheck:
    """One finished drift check of a deployed model and where its outputs were stored."""

    model: DeployedModel
    result: DriftResult
    current_source: str
    report_uri: str
    result_uri: str

    def summary(self) -> dict[str, Any]:
        """The JSON written next to the report (``result.json``)."""
        return {
            "model_name": self.model.name,
            "model_version": self.model.version,
            **drift_payload(self.result),
            "share_threshold": self.result.share_threshold,
            "drifted_columns": list(self.result.drifted_columns),
            "current_source": self.current_source,
            "report_uri": self.report_uri,
            "result_uri": self.result_uri,
        }


def check_drift(
    store: ObjectStore,
    model_name: str,
    *,
    reference_uri: str = "",
    current_uri: str = "",
    window_hours: float = 24.0,
    drift_share_threshold: float = 0.5,
    html_out: Path | None = None,
    min_rows: int = 30,
) -> DriftCheck:
    """Compares reference and production data, writes the HTML report and JSON result to the store.

    Raises:
        DataError: too few current rows, no overlap of columns, or an empty window.
        UsageError: a threshold outside (0, 1].
    """
    from mlops.monitoring.drift import compute_drift
    from mlops.monitoring.report import render_report_html

    check_fraction("drift_share_threshold", drift_share_threshold, allow_one=True)
    model = load_deployed_model(store, model_name)
    reference = read_table(reference_uri) if reference_uri else model.reference
    current, source = current_data(store, model_name, current_uri, window_hours)
    schema = model.schema
    result = compute_drift(
        reference,
        current,
        schema=schema,
        drift_share_threshold=drift_share_threshold,
        min_rows=min_rows,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"{REPORTS_PREFIX}/{model_name}/{stamp}"
    with tempfile.TemporaryDirectory() as work:
        html_path = Path(html_out) if html_out else Path(work) / "report.html"
        render_report_html(
            reference,
            current,
            html_path,
            schema=schema.select(result.columns),
            verdict=result,
            drift_share_threshold=drift_share_threshold,
        )
        report_uri = store.put_file(f"{prefix}/report.html", html_path)
    check = DriftCheck(model, result, source, report_uri, store.uri(f"{prefix}/result.json"))
    store.put_json(f"{prefix}/result.json", check.summary())
    gateway = settings.get(settings.PUSHGATEWAY_VAR)
    if gateway:
        from mlops.monitoring.push import push_drift_metrics

        push_drift_metrics(gateway, model_name, result)
    logger.info(
        "drift check %s: detected=%s share=%.2f",
        model_name,
        result.drift_detected,
        result.drift_share,
    )
    return check
