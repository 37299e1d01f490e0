"""Prometheus rules and example configs of deploy/monitoring.

Runs ``promtool check rules`` / ``promtool test rules`` / ``promtool check config`` and
``amtool check-config``; those tests skip when the tool is not installed locally and fail
when ``CI`` is set. The structural checks need only PyYAML.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from mlops import monitoring_assets as assets

EXPECTED_ALERTS = {
    "MlopsDatasetDrift",
    "MlopsServingErrorRate",
    "MlopsHighP99Latency",
    "MlopsNoPredictions",
    "MlopsStaleDriftCheck",
    "MlopsRetrainingRejected",
}

# Metric names exposed by the model server and pushed by mlops/metrics_push.py.
KNOWN_METRICS = {
    "mlops_requests_total",
    "mlops_request_errors_total",
    "mlops_predictions_total",
    "mlops_input_out_of_range_total",
    "mlops_model_info",
    "mlops_inference_log_records_total",
    "mlops_request_duration_seconds_bucket",
    "mlops_request_duration_seconds_sum",
    "mlops_request_duration_seconds_count",
    "mlops_drift_share",
    "mlops_drift_detected",
    "mlops_drifted_columns",
    "mlops_feature_drift_score",
    "mlops_drift_last_check_timestamp_seconds",
    "mlops_release_decision",
    "mlops_release_decision_timestamp_seconds",
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI but not installed")
        pytest.skip(f"{name} not installed")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


def load_rules() -> list[dict]:
    groups = yaml.safe_load(assets.rules_path().read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in load_rules() if "alert" in rule]


# --- promtool ---------------------------------------------------------------------------


def test_promtool_check_rules():
    promtool = require_tool("promtool")
    result = run(promtool, "check", "rules", str(assets.rules_path()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests():
    promtool = require_tool("promtool")
    result = run(promtool, "test", "rules", str(assets.rules_test_path()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_example_prometheus_config():
    promtool = require_tool("promtool")
    result = run(promtool, "check", "config", str(assets.prometheus_config_path()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_example_alertmanager_config():
    amtool = require_tool("amtool")
    result = run(amtool, "check-config", str(assets.alertmanager_config_path()))
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
        assert "by (model)" in rule["expr"] or "model:" in rule["expr"], (
            f"{name}: must be per model"
        )


def test_rules_only_use_known_metrics():
    recorded = {rule["record"] for rule in load_rules() if "record" in rule}
    for rule in load_rules():
        for name in re.findall(r"\b[a-z_:]*mlops_[a-z0-9_:]+", rule["expr"]):
            assert name in KNOWN_METRICS | recorded, f"unknown metric {name!r} in {rule['expr']!r}"


def test_every_alert_has_firing_and_quiet_unit_tests():
    doc = yaml.safe_load(assets.rules_test_path().read_text(encoding="utf-8"))
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test") or []:
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert fired == EXPECTED_ALERTS
    assert quiet, "at least one case where no alert fires"
