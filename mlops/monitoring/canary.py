"""Automated canary analysis: compare the candidate with the stable release, then promote or roll back.

The candidate is the deployment state's ``canary`` whatever its strategy
(weighted, sticky, cohort or shadow). Over a window, each of the two versions
gets its figures from the model server's metrics (the series the Grafana
dashboard plots, selected by ``model``, ``version`` and ``role``):

* **error ratio**: ``mlops_request_errors_total{code=~"[45].."}`` over
  ``mlops_requests_total``;
* **p99 latency**: ``histogram_quantile(0.99, ...)`` of
  ``mlops_request_duration_seconds_bucket`` (Prometheus' interpolation);
* **prediction classes**: ``mlops_predictions_total`` per ``class``, compared
  with the Jensen-Shannon distance (base 2: 0 identical, 1 disjoint);
* **out-of-range input share**: ``mlops_input_out_of_range_total`` per predicted row;
* **accuracy** on labelled feedback (:func:`mlops.monitoring.quality.live_quality`)
  when both versions have enough labelled rows.

Which series count depends on the strategy. Under ``canary``, ``sticky`` and
``cohort`` each version's figures are the requests it answered (every role but
``shadow``). Under ``shadow`` the candidate answers nobody: its figures are the
copies it scored off the request path, the series with ``role="shadow"`` that
:class:`serving.router.ShadowMirror` counts (requests, errors with the status the
error would have answered with, scoring latency, predicted classes, out-of-range
inputs; accuracy on its logged ``shadow`` rows, which carry the request ids of the
stable answers the labels name), against stable's answered requests. Two things
differ from a canary: the shadow only gets copies of requests stable answered
without error, so stable's error ratio (client errors included) is a lenient
baseline; and its latency is the model call alone, without the HTTP and batching
time stable's includes. A version's ``shadow`` series never count as answered
traffic, so a promoted shadow is judged on what it answered since.

A verdict on a shadow acts as on any candidate: ``promote`` makes it the stable
release (all traffic), ``rollback`` removes it (stable keeps answering; no copies
any more).

The figures come from a real Prometheus (``increase(...[<window>m])``, queried
over its HTTP API) when a URL is given, else from the server's own ``/metrics``
text (parsed with ``prometheus_client``), whose counters run since the server
started: there the window is the server's lifetime, and the result says so.

The verdict is ``rollback`` when any check fails, ``wait`` when a check cannot
decide yet (too little traffic, or no labels while labels are required), else
``promote``. A clear failure rolls back even before the traffic minimum: a
candidate answering errors should not keep its users until the sample is large.
:func:`analyze_canary` applies the verdict through
:func:`mlops.deployment.actions.promote_action` / ``rollback_action`` and records
the figures in the store (``reports/canary/<model>/<stamp>.json``).
"""

from __future__ import annotations

import json
import logging
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.core.errors import DataError, MlopsError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from mlops.core.store import ObjectStore

__all__ = [
    "REPORTS_PREFIX",
    "VERDICTS",
    "CanaryAnalysis",
    "CanaryCheck",
    "CanaryThresholds",
    "VersionFigures",
    "analyze_canary",
    "compare",
    "figures_from_metrics_text",
    "figures_from_prometheus",
    "histogram_quantile",
    "jensen_shannon_distance",
]

logger = logging.getLogger(__name__)

REPORTS_PREFIX = "reports/canary"
VERDICTS = ("promote", "rollback", "wait")
#: The role of a shadow candidate's copies in the server's series (``serving.request_ids.SHADOW``).
SHADOW = "shadow"
#: The status codes counted as errors, as the dashboard's error-rate panel counts them.
ERROR_CODES = r"[45].."
_HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class CanaryThresholds:
    """When the candidate is worse enough to roll back, and how much traffic a verdict needs.

    Attributes:
        min_requests: Requests each version needs in the window before it can be promoted.
        max_error_increase: Largest allowed candidate error ratio above the stable one.
        early_rollback_errors: Candidate errors that roll back before ``min_requests``
            (when the error ratio check fails too).
        max_latency_ratio: Largest allowed candidate p99 / stable p99 ...
        min_latency_increase_seconds: ... once the p99s also differ by more than this
            (so a 1 ms -> 2 ms wobble inside one histogram bucket is not a regression).
        max_js_distance: Largest allowed Jensen-Shannon distance of the predicted classes.
        min_predictions: Predicted rows each version needs for the class comparison.
        max_out_of_range_increase: Largest allowed out-of-range values per predicted
            row above the stable share.
        min_labels: Labelled rows each version needs for the accuracy comparison.
        max_accuracy_drop: Largest allowed candidate accuracy below the stable one.
        require_labels: Wait until both versions have ``min_labels`` labelled rows
            (otherwise accuracy is compared only when they have).
    """

    min_requests: int = 100
    max_error_increase: float = 0.01
    early_rollback_errors: int = 10
    max_latency_ratio: float = 1.5
    min_latency_increase_seconds: float = 0.05
    max_js_distance: float = 0.2
    min_predictions: int = 100
    max_out_of_range_increase: float = 0.05
    min_labels: int = 50
    max_accuracy_drop: float = 0.02
    require_labels: bool = False

    def checked(self) -> CanaryThresholds:
        """Itself, after checking every threshold is in range.

        Raises:
            UsageError: a negative count, a ratio below 1, or a share/distance outside [0, 1].
        """
        for name in ("min_requests", "early_rollback_errors", "min_predictions", "min_labels"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_error_increase", "max_js_distance", "max_out_of_range_increase"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"{name} must be in [0, 1], got {value}")
        if not 0.0 <= float(self.max_accuracy_drop) <= 1.0:
            raise UsageError(f"max_accuracy_drop must be in [0, 1], got {self.max_accuracy_drop}")
        if not float(self.max_latency_ratio) >= 1.0:
            raise UsageError(f"max_latency_ratio must be at least 1, got {self.max_latency_ratio}")
        if not float(self.min_latency_increase_seconds) >= 0.0:
            raise UsageError(
                "min_latency_increase_seconds must not be negative, "
                f"got {self.min_latency_increase_seconds}"
            )
        return self


@dataclass
class VersionFigures:
    """What the window shows of one version.

    Attributes:
        version: The model version.
        requests: Requests it answered.
        errors: Of those, answered with a 4xx/5xx status.
        latency_buckets: Cumulative request counts per histogram upper bound (seconds).
        predictions: Predicted rows per class.
        out_of_range: Input values outside the training range or unseen categories.
        labelled_rows: Logged rows with a feedback label (None: not looked up).
        accuracy: Accuracy on them (None: no labelled row).
    """

    version: str
    requests: float = 0.0
    errors: float = 0.0
    latency_buckets: dict[float, float] = field(default_factory=dict)
    predictions: dict[str, float] = field(default_factory=dict)
    out_of_range: float = 0.0
    labelled_rows: int | None = None
    accuracy: float | None = None

    @property
    def error_ratio(self) -> float | None:
        """Errors per request (None without requests)."""
        return self.errors / self.requests if self.requests > 0 else None

    @property
    def p99_seconds(self) -> float | None:
        """The 99th percentile of the request latency (None without observations)."""
        return histogram_quantile(0.99, self.latency_buckets)

    @property
    def predicted_rows(self) -> float:
        """Predicted rows over every class."""
        return float(sum(self.predictions.values()))

    @property
    def out_of_range_share(self) -> float | None:
        """Out-of-range input values per predicted row (None without predictions)."""
        rows = self.predicted_rows
        return self.out_of_range / rows if rows > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data, with the derived figures."""
        return {
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "error_ratio": self.error_ratio,
            "p99_seconds": self.p99_seconds,
            "predictions": dict(sorted(self.predictions.items())),
            "out_of_range": self.out_of_range,
            "out_of_range_share": self.out_of_range_share,
            "labelled_rows": self.labelled_rows,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class CanaryCheck:
    """One comparison.

    Attributes:
        name: ``traffic``, ``error_ratio``, ``p99_latency``, ``prediction_distribution``,
            ``out_of_range_share`` or ``accuracy``.
        outcome: ``pass``, ``fail`` or ``wait`` (cannot decide yet); ``skip`` when it
            does not apply (accuracy without labels when labels are not required).
        detail: The figures and the threshold, in words.
        value: The compared figure (None when there is none).
    """

    name: str
    outcome: str
    detail: str
    value: float | None = None


@dataclass
class CanaryAnalysis:
    """The analysis of one candidate, its verdict and what was done about it.

    Attributes:
        model_name: The model.
        strategy: How the candidate got traffic.
        source: Where the figures came from (a Prometheus URL or a ``/metrics`` URL).
        window_minutes: The window (None: the server's lifetime, for ``/metrics``).
        stable: The stable version's figures.
        candidate: The candidate's figures.
        checks: Every comparison.
        verdict: ``promote``, ``rollback`` or ``wait``.
        reasons: Why: the failed checks for a rollback, the undecided ones for a wait.
        thresholds: The thresholds used.
        candidate_role: Whose series are the candidate's: ``shadow`` (its copies, under
            the shadow strategy) or ``canary`` (the requests it answered).
        applied: Whether the verdict was carried out (``promote``/``rollback`` only).
        action: The promote/rollback summary, when applied.
        analysed_at: When (UTC, ISO).
        record_key: Where the record is in the store ('' until recorded).
    """

    model_name: str
    strategy: str
    source: str
    window_minutes: float | None
    stable: VersionFigures
    candidate: VersionFigures
    checks: list[CanaryCheck]
    verdict: str
    reasons: list[str]
    thresholds: CanaryThresholds
    candidate_role: str = "canary"
    applied: bool = False
    action: dict[str, Any] | None = None
    analysed_at: str = ""
    record_key: str = ""

    @property
    def outcome(self) -> str:
        """What happened: ``promoted``, ``rolled_back``, ``waiting``, or ``analysed`` (not applied)."""
        if self.verdict == "wait":
            return "waiting"
        if not self.applied:
            return "analysed"
        return "promoted" if self.verdict == "promote" else "rolled_back"

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data (what is recorded and what ``--json`` prints)."""
        return {
            "outcome": self.outcome,
            "model_name": self.model_name,
            "strategy": self.strategy,
            "candidate_role": self.candidate_role,
            "source": self.source,
            "window_minutes": self.window_minutes,
            "stable": self.stable.to_dict(),
            "candidate": self.candidate.to_dict(),
            "checks": [asdict(check) for check in self.checks],
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "thresholds": asdict(self.thresholds),
            "applied": self.applied,
            "action": self.action,
            "analysed_at": self.analysed_at,
            "record_key": self.record_key,
        }


# --------------------------------------------------------------------------- statistics


def histogram_quantile(quantile: float, buckets: Mapping[float, float]) -> float | None:
    """The quantile of a cumulative histogram, interpolated as Prometheus' ``histogram_quantile``.

    Args:
        quantile: In [0, 1].
        buckets: Cumulative counts per upper bound (``+Inf`` included).

    Returns:
        The estimate in seconds; the highest finite bound when it falls in the ``+Inf``
        bucket; None without observations.
    """
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]):
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                finite = [b for b in bounds if not math.isinf(b)]
                return finite[-1] if finite else None
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return None  # pragma: no cover - the +Inf bucket holds every observation


def jensen_shannon_distance(first: Mapping[str, float], second: Mapping[str, float]) -> float:
    """The Jensen-Shannon distance (base 2, in [0, 1]) of two class-count mappings.

    Raises:
        DataError: one of the two has no counts.
    """
    classes = sorted(set(first) | set(second))
    p = [max(float(first.get(c, 0.0)), 0.0) for c in classes]
    q = [max(float(second.get(c, 0.0)), 0.0) for c in classes]
    if sum(p) <= 0 or sum(q) <= 0:
        raise DataError("the Jensen-Shannon distance needs counts on both sides")
    p = [v / sum(p) for v in p]
    q = [v / sum(q) for v in q]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(x: list[float]) -> float:
        return sum(a * math.log2(a / b) for a, b in zip(x, m, strict=True) if a > 0)

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


# --------------------------------------------------------------------------- reading figures


def _labels_match(labels: Mapping[str, str], model_name: str) -> bool:
    return labels.get("model") == model_name


def _selected(
    figures: Mapping[str, VersionFigures], version: str, role: str, shadow_version: str | None
) -> VersionFigures | None:
    """The figures a series of ``version`` in ``role`` adds to, None when it is not compared.

    ``shadow_version`` (a shadow candidate) is its copies (``role="shadow"``) alone;
    every other version is what it answered, so its ``shadow`` series (copies scored
    before it was promoted) are left out.
    """
    target = figures.get(version)
    if target is None:
        return None
    return target if (role == SHADOW) == (version == shadow_version) else None


_ERRORS = re.compile(ERROR_CODES)
#: The endpoints whose latency the p99 check reads (as the dashboard's latency panels).
_SCORING_ENDPOINTS = ("predict", "infer")
_SCORING_ENDPOINTS_RE = "|".join(_SCORING_ENDPOINTS)


def _add_sample(target: VersionFigures, name: str, labels: Mapping[str, str], value: float) -> None:
    """Adds one ``/metrics`` sample to the figures it belongs to (others are ignored)."""
    if name == "mlops_requests_total":
        target.requests += value
    elif name == "mlops_request_errors_total":
        if _ERRORS.fullmatch(labels.get("code", "")):
            target.errors += value
    elif name == "mlops_request_duration_seconds_bucket":
        if labels.get("endpoint") not in _SCORING_ENDPOINTS:
            return  # an explanation's latency is not the model's: the dashboard leaves it out
        bound = float(labels["le"])
        target.latency_buckets[bound] = target.latency_buckets.get(bound, 0.0) + value
    elif name == "mlops_predictions_total":
        label = labels.get("class", "")
        target.predictions[label] = target.predictions.get(label, 0.0) + value
    elif name == "mlops_input_out_of_range_total":
        target.out_of_range += value


def figures_from_metrics_text(
    text: str, model_name: str, versions: tuple[str, str], *, shadow: bool = False
) -> dict[str, VersionFigures]:
    """The two versions' figures from a ``/metrics`` page (counters since the server started).

    Args:
        text: The Prometheus text exposition.
        model_name: The model.
        versions: (stable, candidate) versions.
        shadow: The candidate is a shadow: its figures are its ``role="shadow"`` series.

    Returns:
        Figures per version (zeros for a version without series).

    Raises:
        DataError: the text is not a Prometheus exposition.
    """
    from prometheus_client.parser import text_string_to_metric_families

    figures = {version: VersionFigures(version) for version in versions}
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except (ValueError, TypeError, IndexError) as exc:
        raise DataError(f"the metrics page is not Prometheus text: {exc}") from exc
    shadow_version = versions[1] if shadow else None
    for sample in samples:
        labels = sample.labels
        if not _labels_match(labels, model_name):
            continue
        target = _selected(
            figures, labels.get("version", ""), labels.get("role", ""), shadow_version
        )
        if target is not None:
            _add_sample(target, sample.name, labels, sample.value)
    return figures


def _promql(url: str, query: str) -> list[dict[str, Any]]:
    """The result vector of an instant query (``/api/v1/query``).

    Raises:
        MlopsError: Prometheus cannot be reached or refuses the query.
    """
    endpoint = url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    if not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--prometheus must be an http(s) URL, got {url!r}")
    try:
        with urllib.request.urlopen(endpoint, timeout=_HTTP_TIMEOUT) as response:  # noqa: S310 - scheme checked
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MlopsError(f"cannot query Prometheus at {url}: {exc}") from exc
    if body.get("status") != "success":
        raise MlopsError(f"Prometheus at {url} refused {query!r}: {body.get('error')}")
    return list((body.get("data") or {}).get("result") or [])


def _quote(value: str) -> str:
    return json.dumps(value)  # a PromQL string literal: double quotes, backslash escapes


def figures_from_prometheus(
    url: str,
    model_name: str,
    versions: tuple[str, str],
    window_minutes: float,
    *,
    shadow: bool = False,
) -> dict[str, VersionFigures]:
    """The two versions' figures over the last ``window_minutes`` from a Prometheus server.

    The queries are the dashboard's, with ``increase`` over the window instead of a
    rate, kept apart by ``role`` as well, so the series of a shadow's copies are
    chosen as in :func:`figures_from_metrics_text`.

    Args:
        url: The Prometheus server.
        model_name: The model.
        versions: (stable, candidate) versions.
        window_minutes: The window (rounded to whole minutes, at least 1).
        shadow: The candidate is a shadow: its figures are its ``role="shadow"`` series.

    Raises:
        MlopsError: Prometheus cannot be reached or refuses a query.
    """
    figures = {version: VersionFigures(version) for version in versions}
    window = f"{max(1, round(window_minutes))}m"
    selector = f"model={_quote(model_name)}"
    shadow_version = versions[1] if shadow else None

    def each(query: str):
        for item in _promql(url, query):
            metric = item.get("metric") or {}
            value = float((item.get("value") or [0, "0"])[1])
            target = _selected(
                figures, metric.get("version", ""), metric.get("role", ""), shadow_version
            )
            if target is not None and not math.isnan(value):
                yield target, metric, value

    # Several roles of one version add up (a canary's pinned requests and its routed ones).
    for target, _, value in each(
        f"sum by (version, role) (increase(mlops_requests_total{{{selector}}}[{window}]))"
    ):
        target.requests += value
    for target, _, value in each(
        "sum by (version, role) (increase(mlops_request_errors_total"
        f'{{{selector}, code=~"{ERROR_CODES}"}}[{window}]))'
    ):
        target.errors += value
    for target, metric, value in each(
        "sum by (version, role, le) (increase(mlops_request_duration_seconds_bucket"
        f'{{{selector}, endpoint=~"{_SCORING_ENDPOINTS_RE}"}}[{window}]))'
    ):
        bound = float(metric["le"])
        target.latency_buckets[bound] = target.latency_buckets.get(bound, 0.0) + value
    for target, metric, value in each(
        f"sum by (version, role, class) (increase(mlops_predictions_total{{{selector}}}[{window}]))"
    ):
        label = metric.get("class", "")
        target.predictions[label] = target.predictions.get(label, 0.0) + value
    for target, _, value in each(
        f"sum by (version, role) (increase(mlops_input_out_of_range_total{{{selector}}}[{window}]))"
    ):
        target.out_of_range += value
    return figures


def fetch_metrics_text(url: str) -> str:
    """The model server's ``/metrics`` page.

    Raises:
        UsageError: not an http(s) URL. MlopsError: the server cannot be reached.
    """
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--metrics-url must be an http(s) URL, got {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT) as response:  # noqa: S310 - scheme checked
            return response.read().decode("utf-8")
    except (urllib.error.URLError, OSError) as exc:
        raise MlopsError(f"cannot read the model server's metrics at {url}: {exc}") from exc


def add_accuracy(
    store: ObjectStore,
    model_name: str,
    figures: Mapping[str, VersionFigures],
    window_minutes: float,
    min_labels: int,
    *,
    shadow_version: str | None = None,
) -> None:
    """Fills ``labelled_rows``/``accuracy`` of each version from the inference logs and feedback.

    A window without logged traffic leaves every version at 0 labelled rows. The
    logged rows are chosen by role as the metric series are: ``shadow_version``'s
    (a shadow candidate's) ``shadow`` rows alone (the labels reach them through the
    request ids of the stable answers they copy), every other version's rows but
    ``shadow`` ones.
    """
    from mlops.monitoring.quality import live_quality

    for each in figures.values():
        each.labelled_rows, each.accuracy = 0, None
    try:
        quality = live_quality(
            store, model_name, window_hours=window_minutes / 60.0, min_rows=max(1, min_labels)
        )
    except DataError as exc:
        logger.info("no labelled traffic for the canary analysis: %s", exc)
        return
    for group in quality.groups:
        target = _selected(figures, group.model_version, group.role, shadow_version)
        if target is None or group.labelled_rows <= (target.labelled_rows or 0):
            continue  # of several roles of one version, the best-labelled one
        target.labelled_rows, target.accuracy = group.labelled_rows, group.accuracy


# --------------------------------------------------------------------------- the comparison


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def compare(
    stable: VersionFigures, candidate: VersionFigures, thresholds: CanaryThresholds
) -> tuple[list[CanaryCheck], str, list[str]]:
    """Every check of the candidate against stable, and the verdict.

    Returns:
        (checks, verdict, reasons): ``rollback`` when a check failed (its details are
        the reasons), else ``wait`` when one could not decide, else ``promote``.
    """
    t = thresholds.checked()
    checks: list[CanaryCheck] = []
    enough = stable.requests >= t.min_requests and candidate.requests >= t.min_requests
    checks.append(
        CanaryCheck(
            "traffic",
            "pass" if enough else "wait",
            f"requests: stable {stable.requests:g}, candidate {candidate.requests:g} "
            f"(each needs {t.min_requests})",
            candidate.requests,
        )
    )
    checks.append(_error_check(stable, candidate, t, enough))
    if enough:
        checks.append(_latency_check(stable, candidate, t))
        checks.append(_distribution_check(stable, candidate, t))
        checks.append(_out_of_range_check(stable, candidate, t))
    checks.append(_accuracy_check(stable, candidate, t))
    failed = [c.detail for c in checks if c.outcome == "fail"]
    waiting = [c.detail for c in checks if c.outcome == "wait"]
    if failed:
        return checks, "rollback", failed
    if waiting:
        return checks, "wait", waiting
    return checks, "promote", []


def _error_check(
    stable: VersionFigures, candidate: VersionFigures, t: CanaryThresholds, enough: bool
) -> CanaryCheck:
    base, ratio = stable.error_ratio or 0.0, candidate.error_ratio
    if ratio is None:
        return CanaryCheck("error_ratio", "wait", "error ratio: the candidate has no requests")
    worse = ratio - base > t.max_error_increase
    detail = (
        f"error ratio: candidate {ratio:.2%} ({candidate.errors:g} of {candidate.requests:g}), "
        f"stable {base:.2%}; allowed +{t.max_error_increase:.2%}"
    )
    if worse and (enough or candidate.errors >= t.early_rollback_errors):
        return CanaryCheck("error_ratio", "fail", detail, ratio)
    # Too few requests for a verdict either way: the traffic check already says wait.
    return CanaryCheck("error_ratio", "pass" if enough or not worse else "wait", detail, ratio)


def _latency_check(
    stable: VersionFigures, candidate: VersionFigures, t: CanaryThresholds
) -> CanaryCheck:
    base, p99 = stable.p99_seconds, candidate.p99_seconds
    if base is None or p99 is None:
        return CanaryCheck("p99_latency", "wait", "p99 latency: no latency observations yet")
    slower = p99 > base * t.max_latency_ratio and p99 - base > t.min_latency_increase_seconds
    detail = (
        f"p99 latency: candidate {p99 * 1000:.1f} ms, stable {base * 1000:.1f} ms; allowed "
        f"x{t.max_latency_ratio:g} or +{t.min_latency_increase_seconds * 1000:.0f} ms"
    )
    return CanaryCheck("p99_latency", "fail" if slower else "pass", detail, p99)


def _distribution_check(
    stable: VersionFigures, candidate: VersionFigures, t: CanaryThresholds
) -> CanaryCheck:
    rows = (stable.predicted_rows, candidate.predicted_rows)
    if min(rows) < t.min_predictions:
        return CanaryCheck(
            "prediction_distribution",
            "wait",
            f"prediction classes: {rows[0]:g} stable and {rows[1]:g} candidate rows "
            f"(each needs {t.min_predictions})",
        )
    distance = jensen_shannon_distance(stable.predictions, candidate.predictions)
    detail = (
        f"prediction classes: Jensen-Shannon distance {distance:.3f} "
        f"(allowed {t.max_js_distance:g}); candidate {_shares(candidate.predictions)}, "
        f"stable {_shares(stable.predictions)}"
    )
    outcome = "fail" if distance > t.max_js_distance else "pass"
    return CanaryCheck("prediction_distribution", outcome, detail, distance)


def _shares(counts: Mapping[str, float]) -> str:
    total = sum(counts.values()) or 1.0
    return ", ".join(f"{label} {value / total:.0%}" for label, value in sorted(counts.items()))


def _out_of_range_check(
    stable: VersionFigures, candidate: VersionFigures, t: CanaryThresholds
) -> CanaryCheck:
    base, share = stable.out_of_range_share, candidate.out_of_range_share
    if share is None:
        return CanaryCheck("out_of_range_share", "wait", "out-of-range inputs: no predictions")
    detail = (
        f"out-of-range inputs per row: candidate {share:.3f}, stable {_fmt(base, 3)}; "
        f"allowed +{t.max_out_of_range_increase:g}"
    )
    worse = share - (base or 0.0) > t.max_out_of_range_increase
    return CanaryCheck("out_of_range_share", "fail" if worse else "pass", detail, share)


def _accuracy_check(
    stable: VersionFigures, candidate: VersionFigures, t: CanaryThresholds
) -> CanaryCheck:
    rows = (stable.labelled_rows or 0, candidate.labelled_rows or 0)
    if min(rows) < t.min_labels or stable.accuracy is None or candidate.accuracy is None:
        detail = (
            f"accuracy: {rows[0]} stable and {rows[1]} candidate labelled rows "
            f"(each needs {t.min_labels})"
        )
        return CanaryCheck("accuracy", "wait" if t.require_labels else "skip", detail)
    drop = stable.accuracy - candidate.accuracy
    detail = (
        f"accuracy: candidate {candidate.accuracy:.3f} on {rows[1]} labelled rows, stable "
        f"{stable.accuracy:.3f} on {rows[0]}; allowed -{t.max_accuracy_drop:g}"
    )
    return CanaryCheck(
        "accuracy", "fail" if drop > t.max_accuracy_drop else "pass", detail, candidate.accuracy
    )


# --------------------------------------------------------------------------- the whole analysis


def analyze_canary(
    store: ObjectStore,
    model_name: str,
    *,
    prometheus_url: str = "",
    metrics_url: str = "",
    metrics_text: str | None = None,
    window_minutes: float = 30.0,
    thresholds: CanaryThresholds | None = None,
    apply: bool = True,
    target: str = "local",
    namespace: str = "kubeflow-user",
    client=None,
) -> CanaryAnalysis:
    """Analyses the model's candidate, applies the verdict and records it.

    Args:
        store: The project's store (deployment state, logs, feedback, the record).
        model_name: The model.
        prometheus_url: A Prometheus server to query ('' = read the server's metrics).
        metrics_url: The model server's ``/metrics`` (used without ``prometheus_url``).
        metrics_text: That page's text itself (instead of ``metrics_url``).
        window_minutes: The window, > 0 (Prometheus, and the labelled feedback).
        thresholds: The thresholds (default :class:`CanaryThresholds`).
        apply: Carry out ``promote``/``rollback`` (False: only record the verdict).
        target: ``local`` or ``kserve``, for the promote/rollback.
        namespace: The InferenceService's namespace (``kserve``).
        client: A ``KServeClient`` for ``kserve`` (default from the kube config).

    Returns:
        The analysis, with ``applied``, ``action`` and ``record_key`` set.

    Raises:
        UsageError: no candidate deployed, no metrics source, or a bad threshold/window.
        MlopsError: a metrics source cannot be read, or the promote/rollback failed.
    """
    from mlops.deployment.actions import promote_action, rollback_action
    from mlops.deployment.state import read_state

    if not window_minutes > 0:
        raise UsageError(f"window must be a positive number of minutes, got {window_minutes}")
    thresholds = (thresholds or CanaryThresholds()).checked()
    state = read_state(store, model_name)
    if state is None or state.stable is None or state.canary is None:
        raise UsageError(f"model {model_name!r} has no candidate to analyse (deploy one first)")
    versions = (state.stable.version, state.canary.version)
    shadow = state.strategy == "shadow"  # the strategy whose candidate only gets copies
    window: float | None = float(window_minutes)
    if prometheus_url:
        figures = figures_from_prometheus(
            prometheus_url, model_name, versions, window_minutes, shadow=shadow
        )
        source = f"prometheus {prometheus_url}"
    elif metrics_text is not None or metrics_url:
        text = metrics_text if metrics_text is not None else fetch_metrics_text(metrics_url)
        figures = figures_from_metrics_text(text, model_name, versions, shadow=shadow)
        source = f"metrics {metrics_url or '(text)'}"
        window = None  # the server's counters run since it started
    else:
        raise UsageError("name a metrics source: --prometheus URL or --metrics-url URL")
    add_accuracy(
        store,
        model_name,
        figures,
        window_minutes,
        thresholds.min_labels,
        shadow_version=versions[1] if shadow else None,
    )
    stable, candidate = figures[versions[0]], figures[versions[1]]
    checks, verdict, reasons = compare(stable, candidate, thresholds)
    analysis = CanaryAnalysis(
        model_name=model_name,
        strategy=state.strategy,
        source=source,
        window_minutes=window,
        stable=stable,
        candidate=candidate,
        checks=checks,
        verdict=verdict,
        reasons=reasons,
        thresholds=thresholds,
        candidate_role=SHADOW if shadow else "canary",
        analysed_at=datetime.now(UTC).isoformat(),
    )
    logger.info(
        "canary analysis of %s: %s (candidate %s vs stable %s) %s",
        model_name,
        verdict,
        versions[1],
        versions[0],
        "; ".join(reasons),
    )
    if apply and verdict in ("promote", "rollback"):
        act = promote_action if verdict == "promote" else rollback_action
        analysis.action = act(
            model_name,
            target,
            namespace,
            store=store,
            client=client,
            expected_candidate=versions[1],  # never act on a candidate deployed meanwhile
        )
        analysis.applied = True
    analysis.record_key = _record(store, analysis)
    return analysis


def _record(store: ObjectStore, analysis: CanaryAnalysis) -> str:
    """Writes the analysis to ``reports/canary/<model>/<stamp>-<candidate>.json``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{REPORTS_PREFIX}/{analysis.model_name}/{stamp}-{analysis.candidate.version}.json"
    analysis.record_key = key
    store.put_json(key, analysis.to_dict())
    return key
