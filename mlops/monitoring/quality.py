"""Live model quality: logged predictions joined with feedback labels by request id.

For each (model version, role) that answered in the window: how many of its rows
have a label, accuracy and macro-F1 on them, the confusion matrix, and two
distribution checks against the labels the version was trained on:

- **prediction drift**: the classes it predicted (every logged row, labelled or
  not) against the training labels;
- **target drift**: the labels that came back against the training labels.

Both use the drift module's categorical test (:func:`mlops.monitoring.drift.compute_drift`
on one categorical column: Evidently's chi-square / Z-test up to 1000 reference
rows, Jensen-Shannon distance above), so they mean what the data drift check means.
The training label distribution is read from the version's ``metadata.json``
(``label_counts.train``, else ``label_counts.test``); a model published without it
has no drift verdicts (``None``, with the reason in ``drift_note``).

Predictions and labels compare as text (``str(prediction) == label``). A logged
row without a request id (written before ids existed) never matches a label; of
several logged rows with one id (a client reusing its ``x-request-id``) only the
latest is scored, and the duplicates are counted.

:func:`check_quality` runs it for a model, writes Evidently's classification report
(every client value escaped) and the JSON result to the store, and pushes the
metrics when ``MLOPS_PUSHGATEWAY`` is set.
"""

from __future__ import annotations

import html
import json
import logging
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.core.errors import DataError, UsageError
from mlops.monitoring.feedback import read_feedback
from mlops.monitoring.inference_log import read_inference_logs
from mlops.monitoring.report import ReportLayoutError

if TYPE_CHECKING:  # pragma: no cover
    from mlops.core.store import ObjectStore

logger = logging.getLogger(__name__)

REPORTS_PREFIX = "reports/quality"
#: Labelled rows a (version, role) needs before its accuracy counts (also the alert's minimum).
DEFAULT_MIN_ROWS = 50
#: Rows of the joined frame Evidently's report is rendered from (the metrics use every row).
REPORT_MAX_ROWS = 20_000
_CLASS = "class"
#: Most classes a confusion matrix shows; rarer labels are counted together.
MAX_MATRIX_CLASSES = 100
#: The row of the labels a confusion matrix does not show one by one.
OTHER_LABELS = "(other labels)"
#: Most values a drift result lists the counts of (the most frequent ones).
MAX_LISTED_COUNTS = 100


@dataclass(frozen=True)
class LabelDrift:
    """A distribution of classes against the training labels.

    Attributes:
        drifted: The drift test's verdict.
        score: p-value (chi-square, Z-test) or distance (Jensen-Shannon).
        method: The test's Evidently name.
        threshold: What ``score`` is compared with.
        reference_rows: Training labels counted.
        current_rows: Values compared.
        current_counts: Value -> count of the most frequent compared values
            (at most :data:`MAX_LISTED_COUNTS`).
    """

    drifted: bool
    score: float
    method: str
    threshold: float
    reference_rows: int
    current_rows: int
    current_counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data."""
        return {
            "drifted": self.drifted,
            "score": self.score,
            "method": self.method,
            "threshold": self.threshold,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "current_counts": dict(self.current_counts),
        }


@dataclass
class GroupQuality:
    """The quality of one (model version, role) in the window.

    Attributes:
        model_version: The version that answered.
        role: ``stable``, ``canary`` (or ``shadow``).
        predictions: Logged rows of this version and role in the window.
        labelled_rows: Of those, the rows with a label.
        enough_labels: ``labelled_rows >= min_rows``.
        accuracy: Share of labelled rows predicted right (None without labelled rows).
        f1_macro: Macro-F1 over the classes of labels and predictions (None without labelled rows).
        labels: Row/column order of ``confusion_matrix`` (text).
        confusion_matrix: ``[true][predicted]`` counts of the labelled rows.
        prediction_drift: Predicted classes against the training labels (None: not known).
        target_drift: Labels against the training labels (None: not known or no labels).
        drift_note: Why a drift verdict is missing ('' when both are there).
    """

    model_version: str
    role: str
    predictions: int
    labelled_rows: int
    enough_labels: bool
    accuracy: float | None
    f1_macro: float | None
    labels: list[str]
    confusion_matrix: list[list[int]]
    prediction_drift: LabelDrift | None = None
    target_drift: LabelDrift | None = None
    drift_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data."""
        return {
            "model_version": self.model_version,
            "role": self.role,
            "predictions": self.predictions,
            "labelled_rows": self.labelled_rows,
            "enough_labels": self.enough_labels,
            "accuracy": self.accuracy,
            "f1_macro": self.f1_macro,
            "labels": list(self.labels),
            "confusion_matrix": [list(r) for r in self.confusion_matrix],
            "prediction_drift": self.prediction_drift.to_dict() if self.prediction_drift else None,
            "target_drift": self.target_drift.to_dict() if self.target_drift else None,
            "drift_note": self.drift_note,
        }


@dataclass
class LiveQuality:
    """Live quality of one model over a window.

    Attributes:
        model_name: The model.
        window_hours: Length of the window.
        since: Its start (UTC).
        min_rows: Labelled rows a group needs (``enough_labels``).
        min_accuracy: The model's accuracy threshold (its stable release's, see
            :func:`model_min_accuracy`).
        logged_rows: Logged rows in the window.
        feedback_rows: Labels received in the window (one per id).
        labelled_rows: Logged rows that got a label.
        unmatched_feedback: Labels whose id matches no logged row of the window.
        duplicate_log_ids: Logged rows left out because a later row has the same id.
        groups: Per (version, role), stable first.
        joined: The labelled rows: ``request_id``, ``model_version``, ``role``,
            ``timestamp``, ``prediction`` and ``label`` (text).
    """

    model_name: str
    window_hours: float
    since: datetime
    min_rows: int
    min_accuracy: float
    logged_rows: int
    feedback_rows: int
    labelled_rows: int
    unmatched_feedback: int
    duplicate_log_ids: int
    groups: list[GroupQuality]
    joined: pd.DataFrame = field(repr=False)

    def group(self, role: str = "stable") -> GroupQuality | None:
        """The group of ``role`` with the most labelled rows (the latest version on a tie)."""
        found = [g for g in self.groups if g.role == role]
        if not found:
            return None
        return max(reversed(found), key=lambda g: g.labelled_rows)

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data (without the joined rows)."""
        return {
            "model_name": self.model_name,
            "window_hours": self.window_hours,
            "since": self.since.isoformat(),
            "min_rows": self.min_rows,
            "min_accuracy": self.min_accuracy,
            "logged_rows": self.logged_rows,
            "feedback_rows": self.feedback_rows,
            "labelled_rows": self.labelled_rows,
            "unmatched_feedback": self.unmatched_feedback,
            "duplicate_log_ids": self.duplicate_log_ids,
            "groups": [g.to_dict() for g in self.groups],
        }


# --------------------------------------------------------------------------- model metadata


def training_label_counts(metadata: dict[str, Any]) -> tuple[dict[str, int] | None, str]:
    """The class counts a model was trained on, from its ``metadata.json``, and their source.

    Reads ``label_counts.train``, else ``label_counts.test`` (the test split's,
    which a stratified split draws from the same distribution).

    Returns:
        (label text -> count, ``"train"``/``"test"``), or (None, why not).
    """
    stored = metadata.get("label_counts")
    if isinstance(stored, dict):
        for split in ("train", "test"):
            counts = stored.get(split)
            if isinstance(counts, dict) and counts:
                try:
                    return {str(k): int(v) for k, v in counts.items() if int(v) > 0}, split
                except (TypeError, ValueError):
                    break
    return None, "metadata.json records no training label distribution (label_counts)"


def _version_metadata(store: ObjectStore, model_name: str, version: str) -> dict[str, Any] | None:
    from mlops.model.packaging import METADATA_FILE
    from mlops.model.registry import version_prefix

    key = f"{version_prefix(model_name, version)}/{METADATA_FILE}"
    found = store.get_versioned(key)
    if found is None:
        return None
    try:
        data = json.loads(found[0])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def model_min_accuracy(store: ObjectStore, model_name: str) -> float:
    """The accuracy the model must keep: what its stable release was held to.

    The stable version's signed ``release.json`` (``thresholds.min_accuracy``),
    raised to ``MLOPS_MIN_ACCURACY`` when that is set higher; without a release
    record the setting, else the default ``min_accuracy`` (0.8).
    """
    from mlops.core import settings
    from mlops.deployment.state import read_state
    from mlops.model.registry import version_prefix
    from mlops.repository.config import DEFAULT_MIN_ACCURACY
    from mlops.trust.evidence import RELEASE_FILE

    policy = settings.get(settings.MIN_ACCURACY_VAR)
    own: float | None = None
    state = read_state(store, model_name)
    if state is not None and state.stable is not None:
        found = store.get_versioned(
            f"{version_prefix(model_name, state.stable.version)}/{RELEASE_FILE}"
        )
        if found is not None:
            try:
                value = json.loads(found[0]).get("thresholds", {}).get("min_accuracy")
                own = float(value) if value is not None else None
            except (ValueError, TypeError, AttributeError):
                own = None
    if own is None:
        return float(policy) if policy is not None else DEFAULT_MIN_ACCURACY
    return max(own, float(policy)) if policy is not None else own


# --------------------------------------------------------------------------- statistics


def label_drift(reference_counts: dict[str, int], current: Sequence[str]) -> LabelDrift:
    """``current`` classes against the training class counts, with the drift module's categorical test.

    Raises:
        DataError: no reference counts or no current values.
    """
    from mlops.model.schema import CATEGORICAL, Feature, FeatureSchema
    from mlops.monitoring.drift import compute_drift

    names = list(reference_counts)
    reference = pd.DataFrame(
        {_CLASS: np.repeat(np.array(names, dtype=object), [reference_counts[n] for n in names])}
    )
    cur = pd.DataFrame({_CLASS: pd.Series(list(current), dtype=object)})
    schema = FeatureSchema((Feature(_CLASS, CATEGORICAL, categories=frozenset(names)),))
    result = compute_drift(reference, cur, schema=schema, min_rows=1).columns[_CLASS]
    counts = cur[_CLASS].value_counts().head(MAX_LISTED_COUNTS)
    return LabelDrift(
        drifted=result.drifted,
        score=result.score,
        method=result.method,
        threshold=result.threshold,
        reference_rows=len(reference),
        current_rows=len(cur),
        current_counts={str(k): int(v) for k, v in counts.items()},
    )


def _matrix_labels(truth: list[str], predicted: list[str]) -> tuple[list[str], list[str]]:
    """The confusion matrix's classes, and the labels as the matrix counts them.

    Labels come from clients: a flood of distinct ones must not make a matrix of
    their square. Every predicted class is kept, then the most frequent other
    labels up to :data:`MAX_MATRIX_CLASSES`; the rest are counted as :data:`OTHER_LABELS`.
    """
    classes = sorted(set(truth) | set(predicted))
    if len(classes) <= MAX_MATRIX_CLASSES:
        return classes, truth
    kept = set(predicted)
    for label, _ in Counter(t for t in truth if t not in kept).most_common():
        if len(kept) >= MAX_MATRIX_CLASSES - 1:
            break
        kept.add(label)
    return sorted(kept) + [OTHER_LABELS], [t if t in kept else OTHER_LABELS for t in truth]


def _scores(
    truth: list[str], predicted: list[str]
) -> tuple[float, float, list[str], list[list[int]]]:
    """Accuracy, macro-F1 (over the classes of labels and predictions) and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, f1_score

    accuracy = float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)]))
    labels, counted = _matrix_labels(truth, predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "a single label was found": a fine answer on few rows
        f1 = float(f1_score(truth, predicted, average="macro", zero_division=0))
        matrix = confusion_matrix(counted, predicted, labels=labels).tolist()
    return accuracy, f1, labels, matrix


def _group_quality(
    version: str,
    role: str,
    logged: pd.DataFrame,
    labelled: pd.DataFrame,
    min_rows: int,
    reference: tuple[dict[str, int] | None, str],
) -> GroupQuality:
    truth = labelled["label"].tolist()
    predicted = labelled["prediction"].tolist()
    if truth:
        accuracy, f1, labels, matrix = _scores(truth, predicted)
    else:
        accuracy, f1, labels, matrix = None, None, [], []
    counts, source = reference
    group = GroupQuality(
        model_version=version,
        role=role,
        predictions=len(logged),
        labelled_rows=len(labelled),
        enough_labels=len(labelled) >= min_rows,
        accuracy=accuracy,
        f1_macro=f1,
        labels=labels,
        confusion_matrix=matrix,
    )
    if counts is None:
        group.drift_note = source
        return group
    group.prediction_drift = label_drift(counts, logged["prediction"].tolist())
    if truth:
        group.target_drift = label_drift(counts, truth)
    else:
        group.drift_note = "no labels: no target drift"
    if source == "test":
        group.drift_note = "reference: the test split's label counts (no training counts recorded)"
    return group


def _as_text(values: pd.Series) -> pd.Series:
    return pd.Series([str(v) for v in values.tolist()], index=values.index, dtype=object)


def live_quality(
    store: ObjectStore,
    model_name: str,
    window_hours: float = 24.0,
    min_rows: int = DEFAULT_MIN_ROWS,
    *,
    now: datetime | None = None,
    min_accuracy: float | None = None,
) -> LiveQuality:
    """Joins the window's inference logs with feedback by id and scores every version and role.

    Args:
        store: The project's store.
        model_name: The model.
        window_hours: Logged rows of the last ``window_hours`` are scored.
        min_rows: Labelled rows a group needs for ``enough_labels``.
        now: End of the window (default: the clock).
        min_accuracy: The accuracy threshold reported (default: :func:`model_min_accuracy`).

    Returns:
        The quality; groups with no labelled row have no accuracy.

    Raises:
        UsageError: ``window_hours`` not positive or ``min_rows`` below 1.
        DataError: the window holds no logged row.
    """
    if not window_hours > 0:
        raise UsageError(f"window_hours must be positive, got {window_hours}")
    if min_rows < 1:
        raise UsageError(f"min_rows must be at least 1, got {min_rows}")
    since = (now or datetime.now(UTC)) - timedelta(hours=window_hours)
    logs = read_inference_logs(store, model_name, since=since)
    if logs.empty:
        raise DataError(
            f"no production data: no inference logs of {model_name} since "
            f"{since.isoformat(timespec='seconds')} (window_hours={window_hours})"
        )
    logs = logs.assign(
        prediction=_as_text(logs["prediction"]),
        model_version=_as_text(logs["model_version"]),
        role=_as_text(logs["role"]),
    )
    feedback = read_feedback(store, model_name, since=since)
    with_id = logs[logs["request_id"].notna()].assign(
        request_id=lambda f: _as_text(f["request_id"])
    )
    # One answer per request id (a retried request logs twice; logs are oldest first),
    # kept apart for shadow rows: a shadow's copy carries the id of the stable answer it
    # copies, and one label scores both.
    latest = with_id.assign(_shadow=with_id["role"] == "shadow").drop_duplicates(
        ["request_id", "_shadow"], keep="last"
    )
    joined = latest.merge(feedback[["request_id", "label"]], on="request_id", how="inner")
    joined = joined[["request_id", "model_version", "role", "timestamp", "prediction", "label"]]
    matched = set(joined["request_id"])
    groups = []
    references: dict[str, tuple[dict[str, int] | None, str]] = {}
    for (version, role), logged in logs.groupby(["model_version", "role"], sort=False):
        if version not in references:
            metadata = _version_metadata(store, model_name, version)
            references[version] = (
                training_label_counts(metadata)
                if metadata is not None
                else (None, f"no metadata.json for version {version}")
            )
        labelled = joined[(joined["model_version"] == version) & (joined["role"] == role)]
        groups.append(
            _group_quality(version, role, logged, labelled, min_rows, references[version])
        )
    groups.sort(key=lambda g: (g.role != "stable", g.role, g.model_version))
    return LiveQuality(
        model_name=model_name,
        window_hours=float(window_hours),
        since=since,
        min_rows=min_rows,
        min_accuracy=model_min_accuracy(store, model_name)
        if min_accuracy is None
        else min_accuracy,
        logged_rows=len(logs),
        feedback_rows=len(feedback),
        labelled_rows=len(joined),
        unmatched_feedback=int((~feedback["request_id"].isin(matched)).sum()),
        duplicate_log_ids=len(with_id) - len(latest),
        groups=groups,
        joined=joined.reset_index(drop=True),
    )


# --------------------------------------------------------------------------- HTML report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _summary_html(quality: LiveQuality, subject: GroupQuality | None, shown_rows: int) -> str:
    """The per-group table, every value HTML-escaped (versions, roles and labels come from clients)."""
    esc = html.escape

    def drift(d: LabelDrift | None) -> str:
        if d is None:
            return "-"
        verdict = "drift" if d.drifted else "no drift"
        return esc(f"{verdict} ({d.method} {d.score:.4g})")

    rows = "".join(
        f"<tr><td>{esc(g.model_version)}</td><td>{esc(g.role)}</td><td>{g.predictions}</td>"
        f"<td>{g.labelled_rows}</td><td>{_fmt(g.accuracy)}</td><td>{_fmt(g.f1_macro)}</td>"
        f"<td>{drift(g.prediction_drift)}</td><td>{drift(g.target_drift)}</td>"
        f"<td>{esc(g.drift_note)}</td></tr>"
        for g in quality.groups
    )
    about = (
        f"Evidently's report below: version {esc(subject.model_version)} ({esc(subject.role)}), "
        f"{shown_rows:,} of its {subject.labelled_rows:,} labelled rows."
        if subject is not None
        else "No labelled rows in the window: no classification report."
    )
    return (
        '<div id="mlops-quality-summary" style="background:#eef5ff;border:1px solid #9cc2f0;'
        'padding:10px 14px;margin:8px;font-family:sans-serif;font-size:14px">'
        f"<strong>Live quality of {esc(quality.model_name)}</strong> over the last "
        f"{quality.window_hours:g} h (since {esc(quality.since.isoformat(timespec='seconds'))}): "
        f"{quality.logged_rows:,} logged rows, {quality.labelled_rows:,} labelled, "
        f"{quality.unmatched_feedback:,} labels without a logged row; min_accuracy "
        f"{quality.min_accuracy:g}, min_rows {quality.min_rows}.<br>{about}"
        '<table style="margin-top:6px;border-collapse:collapse" border="1" cellpadding="3">'
        "<tr><th>version</th><th>role</th><th>predictions</th><th>labelled</th><th>accuracy</th>"
        "<th>macro-F1</th><th>prediction drift</th><th>target drift</th><th>note</th></tr>"
        f"{rows}</table></div>"
    )


def _insert_after_body(page: str, fragment: str) -> str:
    match = re.search(r"<body[^>]*>", page, flags=re.IGNORECASE)
    if match is None:
        return fragment + page
    return page[: match.end()] + fragment + page[match.end() :]


def _classification_page(frame: pd.DataFrame, positive: str | None) -> str:
    """Evidently's ``ClassificationPreset`` page of ``label``/``prediction`` (text), made safe."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        MulticlassClassification,
        Report,
    )
    from evidently.presets import ClassificationPreset

    from mlops.monitoring.report import escape_script_data

    classes = sorted(set(frame["label"]) | set(frame["prediction"]))
    task: Any
    if len(classes) == 2:
        pos = positive if positive in classes else classes[1]
        task = BinaryClassification(target="label", prediction_labels="prediction", pos_label=pos)
    else:
        task = MulticlassClassification(target="label", prediction_labels="prediction")
    definition = DataDefinition(classification=[task], categorical_columns=["label", "prediction"])
    dataset = Dataset.from_pandas(frame[["label", "prediction"]], data_definition=definition)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ill-defined precision warnings on few rows
        snapshot = Report([ClassificationPreset()]).run(current_data=dataset, reference_data=None)
    # Escaped before anything else reads the page: a label must not be taken for markup.
    return escape_script_data(snapshot.get_html_str(as_iframe=False))


def render_quality_html(
    quality: LiveQuality,
    out_path: Path,
    *,
    max_rows: int = REPORT_MAX_ROWS,
    seed: int = 0,
    positive_label: str | None = None,
) -> Path:
    r"""Writes Evidently's classification report of the stable version's labelled rows, with a summary.

    The subject is the stable group with the most labelled rows (else the group
    with the most); Evidently sees at most ``max_rows`` of its rows. Above the
    report, a table lists every group's scores. Every value from a client (ids,
    labels, predictions, versions) is escaped: HTML-escaped in the table, and
    ``\uXXXX``-escaped inside the report's script data
    (:func:`mlops.monitoring.report.escape_script_data`).

    Returns:
        ``out_path``.

    Raises:
        ReportLayoutError: Evidently's page could not be made safe.
    """
    subject = quality.group("stable")
    if subject is None or subject.labelled_rows == 0:
        subject = max(quality.groups, key=lambda g: g.labelled_rows, default=None)
    if subject is not None and subject.labelled_rows == 0:
        subject = None
    page = '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body></body></html>'
    shown = 0
    if subject is not None:
        rows = quality.joined[
            (quality.joined["model_version"] == subject.model_version)
            & (quality.joined["role"] == subject.role)
        ]
        if len(rows) > max_rows:
            rows = rows.sample(n=max_rows, random_state=seed).sort_index()
        shown = len(rows)
        try:
            page = _classification_page(rows, positive_label)
        except ReportLayoutError:
            raise
        except Exception as exc:  # noqa: BLE001 - the scores above stand without Evidently's charts
            logger.warning("Evidently could not render the classification report: %s", exc)
            shown = 0
    page = _insert_after_body(page, _summary_html(quality, subject, shown))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    return out_path


# --------------------------------------------------------------------------- the check


@dataclass
class QualityCheck:
    """One finished quality check and where its outputs were stored."""

    quality: LiveQuality
    report_uri: str
    result_uri: str
    pushed: bool

    def summary(self) -> dict[str, Any]:
        """The JSON written next to the report (``result.json``)."""
        return {
            **self.quality.to_dict(),
            "report_uri": self.report_uri,
            "result_uri": self.result_uri,
        }


def check_quality(
    store: ObjectStore,
    model_name: str,
    *,
    window_hours: float = 24.0,
    min_rows: int = DEFAULT_MIN_ROWS,
    html_out: Path | None = None,
    now: datetime | None = None,
) -> QualityCheck:
    """Computes the live quality, stores the report and result, pushes the metrics.

    The report goes to ``reports/quality/<model>/<stamp>/report.html`` (and
    ``html_out`` when given), the result to ``result.json`` beside it. With
    ``MLOPS_PUSHGATEWAY`` set, the per-group metrics are pushed
    (:func:`mlops.monitoring.push.push_quality_metrics`); a failed push is logged only.

    Raises:
        UsageError: a bad window or ``min_rows``.
        DataError: no logged rows in the window.
    """
    from mlops.core import settings

    quality = live_quality(store, model_name, window_hours, min_rows, now=now)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"{REPORTS_PREFIX}/{model_name}/{stamp}"
    metadata = None
    stable = quality.group("stable")
    if stable is not None:
        metadata = _version_metadata(store, model_name, stable.model_version)
    classes = [str(c) for c in (metadata or {}).get("classes") or []]
    with tempfile.TemporaryDirectory() as work:
        html_path = Path(html_out) if html_out else Path(work) / "report.html"
        render_quality_html(
            quality, html_path, positive_label=classes[1] if len(classes) == 2 else None
        )
        report_uri = store.put_file(f"{prefix}/report.html", html_path)
    result_uri = store.uri(f"{prefix}/result.json")
    pushed = False
    gateway = settings.get(settings.PUSHGATEWAY_VAR)
    if gateway:
        from mlops.monitoring.push import push_quality_metrics

        pushed = push_quality_metrics(gateway, model_name, quality.groups, quality.min_accuracy)
    check = QualityCheck(quality, report_uri, result_uri, pushed)
    store.put_json(f"{prefix}/result.json", check.summary())
    logger.info(
        "quality check %s: %d labelled of %d logged rows",
        model_name,
        quality.labelled_rows,
        quality.logged_rows,
    )
    return check


__all__ = [
    "DEFAULT_MIN_ROWS",
    "GroupQuality",
    "LabelDrift",
    "LiveQuality",
    "QualityCheck",
    "check_quality",
    "label_drift",
    "live_quality",
    "model_min_accuracy",
    "render_quality_html",
    "training_label_counts",
]
