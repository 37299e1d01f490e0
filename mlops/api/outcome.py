"""The outcome of a pipeline run as an object: what ``mlops run --json`` prints, with accessors.

A local run's outcome is the pipeline's own output (the JSON the last step
returns) plus the run folder; a cluster run's is the run's id and state, and,
once it finished, the status read from which of the deciding steps ran (the
pipeline's output parameter is in the cluster's metadata store, which the KFP
API does not serve).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.core.errors import EXIT_OK, EXIT_REJECTED, EXIT_SYSTEM

logger = logging.getLogger(__name__)

#: Exit code of each outcome status; a status not listed is a failure, never a success.
EXIT_FOR_STATUS = {
    "released": EXIT_OK,
    "no_drift": EXIT_OK,
    "not_enough_ground_truth": EXIT_OK,
    # The canary analysis: every verdict is an outcome, not a failure.
    "promoted": EXIT_OK,
    "rolled_back": EXIT_OK,
    "waiting": EXIT_OK,
    "analysed": EXIT_OK,
    "submitted": EXIT_OK,
    "rejected": EXIT_REJECTED,
}
#: The holdout step of the training pipeline (its task folder in a local run).
HOLDOUT_TASK = "validate-holdout"


def exit_code_for(status: str) -> int:
    """The CLI exit code of an outcome status (unknown statuses are failures: 1)."""
    return EXIT_FOR_STATUS.get(status, EXIT_SYSTEM)


@dataclass(frozen=True)
class HoldoutEvaluation:
    """The candidate's scores on the independent holdout, as the Kubeflow UI shows them.

    Attributes:
        labels: Class labels, in the order of the matrix rows and columns.
        confusion_matrix: ``confusion_matrix[i][j]``: rows of true class ``labels[i]``
            predicted as ``labels[j]``.
        false_positive_rate: ROC curve x values (binary targets; empty otherwise).
        true_positive_rate: ROC curve y values (recall), one per threshold.
        thresholds: The score thresholds of the ROC points.
    """

    labels: list[str]
    confusion_matrix: list[list[int]]
    false_positive_rate: list[float] = field(default_factory=list)
    true_positive_rate: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)

    @classmethod
    def from_artifact_metadata(cls, metadata: Mapping[str, Any]) -> HoldoutEvaluation:
        """Reads KFP ``ClassificationMetrics`` metadata (``confusionMatrix``, ``confidenceMetrics``)."""
        matrix = metadata.get("confusionMatrix") or {}
        labels = [str(spec.get("displayName", "")) for spec in matrix.get("annotationSpecs", [])]
        rows = [[int(v) for v in row.get("row", [])] for row in matrix.get("rows", [])]
        points = metadata.get("confidenceMetrics") or []
        return cls(
            labels=labels,
            confusion_matrix=rows,
            false_positive_rate=[float(p.get("falsePositiveRate", 0.0)) for p in points],
            true_positive_rate=[float(p.get("recall", 0.0)) for p in points],
            thresholds=[float(p.get("confidenceThreshold", 0.0)) for p in points],
        )


@dataclass
class Outcome:
    """A pipeline run's outcome.

    Attributes:
        status: ``released``, ``rejected``, ``no_drift``; ``submitted`` for a cluster run
            not waited for; ``failed`` when a cluster run failed; anything else is unknown.
        pipeline: The pipeline that ran (``training``, ``monitoring``).
        data: The whole outcome object (what ``mlops run --json`` prints).
    """

    status: str
    pipeline: str
    data: dict[str, Any]

    @classmethod
    def from_dict(cls, pipeline: str, data: Mapping[str, Any]) -> Outcome:
        """An outcome from its JSON object (``status`` missing means unknown)."""
        payload = dict(data)
        return cls(status=str(payload.get("status", "unknown")), pipeline=pipeline, data=payload)

    # -- the fields a notebook reads most -------------------------------------------------

    @property
    def released(self) -> bool:
        """Whether a new version was published."""
        return self.status == "released"

    @property
    def exit_code(self) -> int:
        """What ``mlops run`` exits with: 0 released / no drift / submitted, 3 rejected, else 1."""
        return exit_code_for(self.status)

    @property
    def metrics(self) -> dict[str, float]:
        """Test and holdout scores (``holdout_accuracy``, ``test_roc_auc``...); empty on a cluster."""
        return dict(self.data.get("metrics") or {})

    @property
    def gates(self) -> dict[str, dict[str, Any]]:
        """Gate name -> ``{"passed": bool, "detail": str}``; empty on a cluster."""
        return dict(self.data.get("gates") or {})

    @property
    def model_name(self) -> str | None:
        """The registry name."""
        return self.data.get("model_name")

    @property
    def model_version(self) -> str | None:
        """The published version, or the rejected candidate's."""
        return self.data.get("model_version") or self.data.get("candidate_version")

    @property
    def model_uri(self) -> str | None:
        """``s3://bucket/models/<model>/<version>`` of a released model, else None."""
        return self.data.get("model_uri")

    @property
    def report_uri(self) -> str | None:
        """The drift report of a monitoring run (``s3://.../reports/drift/...``), else None."""
        return self.data.get("report_uri")

    @property
    def repository(self) -> dict[str, Any]:
        """The model repository that was trained: URL, commit, tree digest, parameter sources."""
        return dict(self.data.get("repository") or {})

    @property
    def reason(self) -> str | None:
        """Why it was released or rejected."""
        return self.data.get("reason")

    @property
    def drift(self) -> dict[str, Any] | None:
        """A monitoring run's verdict: ``detected``, ``share`` and per-column ``columns``."""
        return self.data.get("drift")

    def drift_columns(self) -> list[dict[str, Any]]:
        """A monitoring run's per-column verdicts, most drifted first.

        Returns:
            One ``{"column", "score", "method", "threshold", "drifted"}`` per checked
            column (``score`` is a p-value for K-S, Z-test and chi-square, drifted
            below the threshold; a distance for Wasserstein and Jensen-Shannon,
            drifted at or above it; ``threshold`` is None when the outcome does not
            carry it); empty for a training run.
        """
        columns = (self.drift or {}).get("columns") or {}
        rows = [
            {
                "column": name,
                "score": float(verdict.get("score", float("nan"))),
                "method": str(verdict.get("method", "")),
                "threshold": verdict.get("threshold"),
                "drifted": bool(verdict.get("drifted")),
            }
            for name, verdict in columns.items()
        ]
        return sorted(rows, key=lambda row: (not row["drifted"], row["column"]))

    @property
    def run_dir(self) -> Path | None:
        """A local run's task outputs (kfp.local's folder)."""
        value = self.data.get("run_dir")
        return Path(value) if value else None

    @property
    def run_id(self) -> str | None:
        """A cluster run's id."""
        return self.data.get("run_id")

    def to_dict(self) -> dict[str, Any]:
        """The outcome object (a copy), as ``--json`` prints it."""
        return json.loads(json.dumps(self.data, default=str))

    # -- what the Kubeflow UI shows as artifacts, read from a local run ------------------

    def holdout_evaluation(self) -> HoldoutEvaluation | None:
        """The confusion matrix and ROC curve on the holdout, when this local run scored one.

        Returns:
            None for a cluster run (the UI shows them), a run stopped before the
            holdout step, or a monitoring run without drift.
        """
        if self.run_dir is None:
            return None
        for output in sorted(self.run_dir.rglob(f"{HOLDOUT_TASK}/executor_output.json")):
            artifacts = json.loads(output.read_text()).get("artifacts", {})
            for artifact in artifacts.get("classification", {}).get("artifacts", []):
                return HoldoutEvaluation.from_artifact_metadata(artifact.get("metadata") or {})
        return None

    # -- notebooks ------------------------------------------------------------------------

    def __repr__(self) -> str:
        version = self.model_version or ""
        return f"Outcome(status={self.status!r}, pipeline={self.pipeline!r}, version={version!r})"

    def _repr_html_(self) -> str:
        """A table for Jupyter; every value is HTML-escaped (they come from data and repositories)."""
        rows = [
            ("status", self.status),
            ("model", f"{self.model_name or ''} {self.model_version or ''}".strip()),
            ("model_uri", self.model_uri),
            ("report_uri", self.report_uri),
            ("reason", self.reason),
            ("run", self.run_id or (str(self.run_dir) if self.run_dir else None)),
        ]
        repository = self.repository
        if repository.get("uri"):
            rows.append(
                ("repository", f"{repository['uri']} (tree {repository.get('tree_digest')})")
            )
        drift = self.drift
        if drift:
            rows.append(("drift", f"detected={drift.get('detected')} share={drift.get('share')}"))
        parts = [
            f"<h4>{_e(self.pipeline)}: {_e(self.status)}</h4>",
            _table(["", ""], [(name, value) for name, value in rows if value]),
        ]
        if self.gates:
            gates = [
                (name, "pass" if gate.get("passed") else "FAIL", gate.get("detail", ""))
                for name, gate in self.gates.items()
            ]
            parts.append(_table(["gate", "", "detail"], gates))
        if self.metrics:
            metrics = [
                (name, f"{value:.4f}" if isinstance(value, float) else value)
                for name, value in sorted(self.metrics.items())
            ]
            parts.append(_table(["metric", "value"], metrics))
        return "\n".join(parts)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: list[str], rows: list[tuple[Any, ...]]) -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
