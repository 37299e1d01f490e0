"""Prometheus rules and example configs of deploy/monitoring.

Runs ``promtool check rules`` / ``promtool test rules`` / ``promtool check config`` and
``amtool check-config``; those tests skip when the tool is not installed locally and fail
when ``CI`` is set. The structural checks need only PyYAML; the metric names they allow
are ``tests.monitoring_assets.KNOWN_METRICS``, checked here against the model server's
registered metrics (the pushed ones are checked in test_metrics_push.py).
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests import monitoring_assets as assets
from tests.monitoring_stack import require_binary

EXPECTED_ALERTS = {
    "MlopsDatasetDrift",
    "MlopsServingErrorRate",
    "MlopsHighP99Latency",
    "MlopsNoPredictions",
    "MlopsStaleDriftCheck",
    "MlopsRetrainingRejected",
    "MlopsModelFallback",
    "MlopsModelAccuracyLow",
}

# Sample names of each metric type (``_created`` is left out: no rule or panel uses it).
_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


def load_rules() -> list[dict]:
    groups = yaml.safe_load(assets.rules_path().read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in load_rules() if "alert" in rule]


# --- promtool ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tool, args, path",
    [
        ("promtool", ("check", "rules"), assets.rules_path),
        ("promtool", ("test", "rules"), assets.rules_test_path),
        ("promtool", ("check", "config"), assets.prometheus_config_path),
        ("amtool", ("check-config",), assets.alertmanager_config_path),
    ],
    ids=["check-rules", "rule-unit-tests", "check-prometheus-config", "check-alertmanager-config"],
)
def test_official_tool_accepts(tool, args, path):
    result = run(require_binary(tool), *args, str(path()))
    assert result.returncode == 0, result.stdout + result.stderr


# --- structure (no external tools) ------------------------------------------------------


def test_expected_alerts_are_defined():
    assert {rule["alert"] for rule in alerts()} == EXPECTED_ALERTS


def test_alerts_have_for_severity_and_model_annotations():
    for rule in alerts():
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), (
            f"{name}: needs a `for:` duration"
        )
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        for key in ("summary", "description"):
            assert "{{ $labels.model }}" in rule["annotations"][key], (
                f"{name}: {key} must name the model"
            )
        per_model = ("by (model)", "by (model,", "model:")
        assert any(marker in rule["expr"] for marker in per_model), f"{name}: must be per model"


def test_rules_only_use_known_metrics():
    rules = load_rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    for rule in rules:
        for name in re.findall(r"\b[a-z_:]*mlops_[a-z0-9_:]+", rule["expr"]):
            assert name in assets.KNOWN_METRICS | recorded, (
                f"unknown metric {name!r} in {rule['expr']!r}"
            )


def test_rules_on_request_series_leave_shadow_copies_out():
    """A shadow's copies share the request series under ``role="shadow"``; no client saw them.

    Every rule here is about client traffic, so each selector of those series must carry
    ``role!="shadow"`` (the promtool case "a failing, slow shadow alerts nobody" shows the effect).
    """
    seen = 0
    for rule in load_rules():
        for metric, matchers in assets.selectors(rule["expr"]):
            seen += 1
            assert 'role!="shadow"' in matchers, (
                f"{rule.get('record') or rule.get('alert')}: {metric}{{{matchers}}} counts shadow copies"
            )
    assert seen >= 5, "the serving rules select the request series"


def test_every_alert_has_firing_and_quiet_unit_tests():
    doc = yaml.safe_load(assets.rules_test_path().read_text(encoding="utf-8"))
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test") or []:
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert fired == EXPECTED_ALERTS
    assert quiet, "at least one case where no alert fires"


def test_serving_metrics_match_what_the_model_server_registers():
    from prometheus_client.metrics import MetricWrapperBase

    import serving.metrics

    registered = {
        family.name + suffix
        for collector in vars(serving.metrics).values()
        if isinstance(collector, MetricWrapperBase)
        for family in collector.describe()
        for suffix in _SAMPLE_SUFFIXES[family.type]
    }
    assert registered == assets.SERVING_METRICS
