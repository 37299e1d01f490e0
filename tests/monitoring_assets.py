"""Paths of the monitoring assets in ``deploy/monitoring/`` and the PromQL of the dashboard.

The assets live in the source checkout, not in the installed package. Their folder is
``$MLOPS_MONITORING_DIR`` when set, otherwise ``deploy/monitoring`` next to this package
(an editable install or a checkout).

``dashboard_queries()`` returns every PromQL ``expr`` of the Grafana dashboard with the
Grafana variables replaced by concrete values (see ``GRAFANA_VARIABLES``), so the
queries can be sent to a real Prometheus or checked with ``promtool``.

``SERVING_METRICS`` / ``PUSHED_METRICS`` name every ``mlops_*`` series the rules and the
dashboard may use; the tests check them against what ``serving/metrics.py`` registers
and what ``mlops.monitoring.push`` really pushes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ENV_DIR = "MLOPS_MONITORING_DIR"

#: Series (sample names) the model server exposes on ``/metrics`` (``serving/metrics.py``).
SERVING_METRICS: frozenset[str] = frozenset(
    {
        "mlops_requests_total",
        "mlops_request_errors_total",
        "mlops_feedback_labels_total",
        "mlops_shadow_requests_total",
        "mlops_predictions_total",
        "mlops_input_out_of_range_total",
        "mlops_model_info",
        "mlops_model_fallback",
        "mlops_request_timeouts_total",
        "mlops_inference_log_records_total",
        "mlops_request_duration_seconds_bucket",
        "mlops_request_duration_seconds_sum",
        "mlops_request_duration_seconds_count",
        "mlops_batch_requests_bucket",
        "mlops_batch_requests_sum",
        "mlops_batch_requests_count",
    }
)

#: Series pushed to the Pushgateway by ``mlops.monitoring.push``.
PUSHED_METRICS: frozenset[str] = frozenset(
    {
        "mlops_drift_share",
        "mlops_drift_detected",
        "mlops_drifted_columns",
        "mlops_feature_drift_score",
        "mlops_drift_last_check_timestamp_seconds",
        "mlops_release_decision",
        "mlops_release_decision_timestamp_seconds",
        "mlops_model_accuracy",
        "mlops_model_f1_macro",
        "mlops_model_labelled_rows",
        "mlops_model_min_accuracy",
        "mlops_quality_last_check_timestamp_seconds",
    }
)

#: Every ``mlops_*`` series Prometheus can have (besides recording rules).
KNOWN_METRICS: frozenset[str] = SERVING_METRICS | PUSHED_METRICS

#: Values substituted for Grafana variables by ``dashboard_queries(render=True)``.
GRAFANA_VARIABLES: dict[str, str] = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "model": ".*",
    # the Rollout panels' window: the canary analysis' default (``mlops canary analyze --window``)
    "canary_window": "30m",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def monitoring_dir() -> Path:
    """The ``deploy/monitoring`` folder (``$MLOPS_MONITORING_DIR`` overrides it)."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "deploy" / "monitoring"


def rules_path() -> Path:
    """Prometheus rule file (alerting + recording rules): ``alerts.yaml``."""
    return monitoring_dir() / "alerts.yaml"


def rules_test_path() -> Path:
    """``promtool test rules`` unit tests for ``rules_path()``."""
    return monitoring_dir() / "tests" / "alerts_test.yaml"


def dashboard_path() -> Path:
    """Grafana dashboard JSON."""
    return monitoring_dir() / "grafana" / "mlops-dashboard.json"


def dashboard_configmap_path() -> Path:
    """ConfigMap (label ``grafana_dashboard: "1"``) embedding ``dashboard_path()``."""
    return monitoring_dir() / "grafana" / "dashboard-configmap.yaml"


def prometheusrule_path() -> Path:
    """prometheus-operator PrometheusRule embedding the groups of ``rules_path()``."""
    return monitoring_dir() / "k8s" / "prometheusrule.yaml"


def podmonitor_path() -> Path:
    """PodMonitor for the KServe predictor pods."""
    return monitoring_dir() / "k8s" / "podmonitor.yaml"


def pushgateway_monitor_path() -> Path:
    """ServiceMonitor for the Pushgateway (honorLabels)."""
    return monitoring_dir() / "k8s" / "pushgateway-servicemonitor.yaml"


def prometheus_config_path() -> Path:
    """Example ``prometheus.yml`` for local use."""
    return monitoring_dir() / "prometheus.yml"


def alertmanager_config_path() -> Path:
    """Example ``alertmanager.yml`` for local use."""
    return monitoring_dir() / "alertmanager.yml"


def load_dashboard(path: Path | None = None) -> dict[str, Any]:
    """The dashboard JSON as a dict."""
    return json.loads((path or dashboard_path()).read_text(encoding="utf-8"))


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including panels nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels") or [])


def render_grafana_variables(expr: str, values: Mapping[str, str] | None = None) -> str:
    """``expr`` with ``$var``, ``${var}`` / ``${var:fmt}`` and ``[[var]]`` replaced from ``values``.

    Unknown variables are left as they are.
    """
    table = GRAFANA_VARIABLES if values is None else values

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return table.get(name, match.group(0))

    return _VARIABLE.sub(sub, expr)


def dashboard_queries(
    path: Path | None = None,
    render: bool = True,
    values: Mapping[str, str] | None = None,
) -> list[str]:
    """Every PromQL ``expr`` of the dashboard's panel targets, in panel order.

    With ``render`` (the default) Grafana variables are replaced (``GRAFANA_VARIABLES``
    or ``values``), so each query is plain PromQL. Template-variable queries
    (``label_values(...)``) are not PromQL and are not included.
    """
    queries: list[str] = []
    for panel in iter_panels(load_dashboard(path).get("panels") or []):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip():
                queries.append(render_grafana_variables(expr, values) if render else expr)
    return queries


# The series a shadow candidate's copies are counted in too, under role="shadow"
# (serving.metrics.count_shadow_copy; predictions and out-of-range inputs by role as well).
REQUEST_SERIES = (
    "mlops_requests_total",
    "mlops_request_errors_total",
    "mlops_request_duration_seconds_bucket",
    "mlops_predictions_total",
    "mlops_input_out_of_range_total",
)
REQUEST_SELECTOR = re.compile(rf"\b({'|'.join(REQUEST_SERIES)})\b(?:\{{([^}}]*)\}})?")


def selectors(expr: str) -> list[tuple[str, str]]:
    """``(metric, matchers)`` of every selector of ``REQUEST_SERIES`` in ``expr``."""
    return [(m.group(1), m.group(2) or "") for m in REQUEST_SELECTOR.finditer(expr)]
