"""Kubernetes manifests and Grafana dashboard of deploy/monitoring.

The prometheus-operator manifests are validated against the real CRDs in
../shared/schemas/prometheus-operator/ (skipped when absent, failing when ``CI`` is set).
Generated files must match their sources, and every dashboard query must parse
(``promtool check rules`` on the queries written as recording rules).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from tests import monitoring_assets as assets
from tests.conftest import shared_path
from tests.monitoring_stack import require_binary

CRD_FILES = {
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
}

# Histogram parts the dashboard may use but need not (it shows quantiles from _bucket).
OPTIONAL_DASHBOARD_METRICS = {
    "mlops_request_duration_seconds_sum",
    "mlops_request_duration_seconds_count",
}


# Panels about what clients were answered: a shadow's copies must stay out of them.
CLIENT_TRAFFIC_PANELS = {
    "Request rate by model/version",
    "Latency p50 / p90 / p99",
    "Error rate",
    "Errors by status code",
    "Predictions by class",
    "Out-of-range inputs by feature",
}

# The row for watching a rollout: each figure of the canary analysis per (version, role).
ROLLOUT_ROW = "Rollout: candidate vs stable"
ROLLOUT_PANELS = {
    "Rollout: p99 latency by version/role": "p99_latency",
    "Rollout: error ratio by version/role": "error_ratio",
    "Rollout: predicted class share by version/role": "prediction_distribution",
    "Rollout: out-of-range inputs per predicted row by version/role": "out_of_range_share",
    "Rollout: requests in the window by version/role": "traffic",
}
CLIENT_TRAFFIC_PANELS |= set(ROLLOUT_PANELS)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- CRD schema validation --------------------------------------------------------------


def to_jsonschema(node):
    """A Kubernetes structural schema as plain JSON schema.

    ``x-kubernetes-*`` keys are annotations, except that ``x-kubernetes-int-or-string``
    becomes ``anyOf: [integer, string]``; RE2 inline flags are moved where Python accepts
    them. Objects with ``properties`` and neither ``additionalProperties`` nor
    ``x-kubernetes-preserve-unknown-fields`` reject unknown fields, because the API server
    would silently prune them.
    """
    if isinstance(node, list):
        return [to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: to_jsonschema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-")
    }
    if isinstance(out.get("pattern"), str) and "(?i)" in out["pattern"]:
        # Go RE2 accepts `^(?i)...`; Python wants global flags first.
        out["pattern"] = "(?i)" + out["pattern"].replace("(?i)", "")
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("anyOf", None)
        pattern = out.pop("pattern", None)
        string = {"type": "string", **({"pattern": pattern} if pattern else {})}
        out["anyOf"] = [{"type": "integer"}, string]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(kind: str, api_version: str) -> Draft7Validator:
    crd = load_yaml(shared_path("schemas", "prometheus-operator", CRD_FILES[kind]))
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            assert entry.get("served", True), f"{kind} {version} is not served"
            schema = to_jsonschema(copy.deepcopy(entry["schema"]["openAPIV3Schema"]))
            Draft7Validator.check_schema(schema)
            return Draft7Validator(schema)
    pytest.fail(f"{kind} CRD has no version {version}")


def assert_valid(doc: dict) -> None:
    validator = crd_validator(doc["kind"], doc["apiVersion"])
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


MANIFESTS = {
    "prometheusrule": assets.prometheusrule_path,
    "podmonitor": assets.podmonitor_path,
    "pushgateway-servicemonitor": assets.pushgateway_monitor_path,
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_matches_crd_schema(name):
    assert_valid(load_yaml(MANIFESTS[name]()))


def test_schema_conversion_rejects_unknown_fields_and_handles_int_or_string():
    """Guards the converter itself, so a typo in a manifest cannot pass silently."""
    doc = load_yaml(assets.podmonitor_path())
    validator = crd_validator("PodMonitor", doc["apiVersion"])
    typo = copy.deepcopy(doc)
    typo["spec"]["podMetricsEndpoints"][0]["honourLabels"] = True
    assert list(validator.iter_errors(typo))
    for target_port in (8080, "http"):
        ok = copy.deepcopy(doc)
        endpoint = ok["spec"]["podMetricsEndpoints"][0]
        endpoint.pop("portNumber", None)
        endpoint["targetPort"] = target_port
        assert not list(validator.iter_errors(ok)), target_port
    bad = copy.deepcopy(doc)
    bad["spec"]["podMetricsEndpoints"][0]["targetPort"] = 1.5
    assert list(validator.iter_errors(bad))


# --- content checks (no ../shared needed) -----------------------------------------------


def test_prometheusrule_groups_equal_alerts_yaml():
    rule = load_yaml(assets.prometheusrule_path())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == load_yaml(assets.rules_path())["groups"]


def test_configmap_embeds_dashboard_json():
    cm = load_yaml(assets.dashboard_configmap_path())
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = assets.dashboard_path().read_text(encoding="utf-8")
    assert cm["data"] == {assets.dashboard_path().name: text}
    assert json.loads(cm["data"][assets.dashboard_path().name]) == assets.load_dashboard()


def test_generated_files_are_up_to_date():
    script = assets.monitoring_dir() / "render_configmap.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_podmonitor_selects_predictor_pods_on_8080():
    pm = load_yaml(assets.podmonitor_path())
    selector = pm["spec"]["selector"]
    keys = set(selector.get("matchLabels", {}))
    keys |= {
        e["key"] for e in selector.get("matchExpressions", []) if e["operator"] in ("Exists", "In")
    }
    assert "mlops.kfp/model" in keys
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert 8080 in (endpoint.get("portNumber"), endpoint.get("targetPort")) or endpoint.get("port")


def test_pushgateway_monitor_honors_labels():
    sm = load_yaml(assets.pushgateway_monitor_path())
    assert sm["spec"]["endpoints"] and all(e.get("honorLabels") for e in sm["spec"]["endpoints"])


def test_local_prometheus_config_scrapes_serving_and_pushgateway():
    config = load_yaml(assets.prometheus_config_path())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for job in jobs.values() for sc in job["static_configs"] for t in sc["targets"]}
    assert {"127.0.0.1:8080", "127.0.0.1:9091"} <= targets
    (push_job,) = [
        j for j in jobs.values() if "127.0.0.1:9091" in j["static_configs"][0]["targets"]
    ]
    assert push_job.get("honor_labels") is True
    assert config["rule_files"] == [assets.rules_path().name]


# --- dashboard --------------------------------------------------------------------------


def test_dashboard_structure():
    dash = assets.load_dashboard()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(assets.iter_panels(dash["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_dashboard_queries_cover_every_metric():
    queries = assets.dashboard_queries()
    raw = assets.dashboard_queries(render=False)
    targets = [
        t
        for p in assets.iter_panels(assets.load_dashboard()["panels"])
        for t in p.get("targets", [])
    ]
    assert len(queries) == len(raw) == len(targets)
    for query in queries:
        assert "$" not in query and "[[" not in query, f"unrendered Grafana variable in {query!r}"
    used = {name for q in queries for name in re.findall(r"\bmlops_[a-z0-9_]+", q)}
    required = assets.KNOWN_METRICS - OPTIONAL_DASHBOARD_METRICS
    assert required <= used, required - used
    assert used <= assets.KNOWN_METRICS, used - assets.KNOWN_METRICS


def test_dashboard_queries_parse_with_promtool(tmp_path):
    promtool = require_binary("promtool")
    rules = [
        {"record": f"dashboard:query_{i}", "expr": q}
        for i, q in enumerate(assets.dashboard_queries())
    ]
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _request_selectors(panel: dict) -> list[tuple[str, str]]:
    """``(metric, matchers)`` of every selector of ``assets.REQUEST_SERIES`` in the panel's queries."""
    return [
        (m.group(1), m.group(2) or "")
        for target in panel.get("targets", [])
        for m in assets.REQUEST_SELECTOR.finditer(target.get("expr", ""))
    ]


def test_client_traffic_panels_leave_shadow_copies_out():
    panels = {p["title"]: p for p in assets.iter_panels(assets.load_dashboard()["panels"])}
    assert CLIENT_TRAFFIC_PANELS <= set(panels), CLIENT_TRAFFIC_PANELS - set(panels)
    for title in CLIENT_TRAFFIC_PANELS:
        found = _request_selectors(panels[title])
        assert found, title
        for metric, matchers in found:
            assert 'role!="shadow"' in matchers, f"{title}: {metric}{{{matchers}}}"


def test_every_request_series_query_says_which_roles_it_counts():
    """A new panel on the request series must choose: clients' traffic, or a shadow's copies."""
    for panel in assets.iter_panels(assets.load_dashboard()["panels"]):
        for metric, matchers in _request_selectors(panel):
            assert re.search(r'role(!="shadow"|="(shadow|stable|canary)")', matchers), (
                f"{panel['title']}: {metric}{{{matchers}}} mixes shadow copies with client traffic"
            )


def test_a_shadow_candidate_has_its_request_error_and_p99_series():
    shadow = [
        (target["expr"], metric)
        for panel in assets.iter_panels(assets.load_dashboard()["panels"])
        for target in panel.get("targets", [])
        for metric, matchers in assets.REQUEST_SELECTOR.findall(target.get("expr", ""))
        if 'role="shadow"' in matchers
    ]
    metrics = {metric for _, metric in shadow}
    assert {
        "mlops_requests_total",
        "mlops_request_errors_total",
        "mlops_request_duration_seconds_bucket",
    } <= metrics, metrics
    assert any(
        expr.startswith("histogram_quantile(0.99,") and "by (model, version, le)" in expr
        for expr, metric in shadow
        if metric == "mlops_request_duration_seconds_bucket"
    ), shadow


# --- the rollout row ----------------------------------------------------------------------


def _rollout_panels() -> dict[str, dict]:
    """The panels of the rollout row: those after it up to the next row (it is not collapsed)."""
    panels = assets.load_dashboard()["panels"]
    (start,) = [i for i, p in enumerate(panels) if p["title"] == ROLLOUT_ROW]
    assert panels[start]["type"] == "row" and not panels[start].get("collapsed"), panels[start]
    found: dict[str, dict] = {}
    for panel in panels[start + 1 :]:
        if panel["type"] == "row":
            break
        found[panel["title"]] = panel
    return found


def _rollout_expr(title: str) -> str:
    (target,) = _rollout_panels()[title]["targets"]
    return target["expr"]


def test_rollout_row_has_a_panel_per_canary_analysis_figure():
    panels = _rollout_panels()
    assert set(panels) == set(ROLLOUT_PANELS), set(panels) ^ set(ROLLOUT_PANELS)
    for title, check in ROLLOUT_PANELS.items():
        # each description names the analysis figure it shows
        assert check in panels[title]["description"], title
        assert 'role!="shadow"' in panels[title]["description"], title


def test_rollout_panels_are_client_traffic_grouped_by_version_and_role():
    for title in ROLLOUT_PANELS:
        expr = _rollout_expr(title)
        found = _request_selectors(_rollout_panels()[title])
        assert found, title
        for metric, matchers in found:
            assert 'role!="shadow"' in matchers and 'model=~"$model"' in matchers, (
                f"{title}: {metric}{{{matchers}}}"
            )
        groupings = re.findall(r"\bby \(([^)]*)\)", expr)
        assert groupings, title
        for grouping in groupings:
            labels = {label.strip() for label in grouping.split(",")}
            assert {"model", "version", "role"} <= labels, f"{title}: by ({grouping})"
        # the analysis' window and rate function: increase() over the window variable
        assert "[$canary_window]" in expr and "$__rate_interval" not in expr, title
        assert "rate(" not in expr.replace("increase(", ""), title


def test_rollout_queries_match_the_canary_analysis():
    from mlops.monitoring.canary import ERROR_CODES

    p99 = _rollout_expr("Rollout: p99 latency by version/role")
    assert p99.startswith("histogram_quantile(0.99, sum by (model, version, role, le) (increase(")
    assert "mlops_request_duration_seconds_bucket{" in p99
    assert 'endpoint=~"predict|infer"' in p99

    errors = _rollout_expr("Rollout: error ratio by version/role")
    assert f'code=~"{ERROR_CODES}"' in errors
    # the same error codes the model-level Error rate panel counts
    panels = {p["title"]: p for p in assets.iter_panels(assets.load_dashboard()["panels"])}
    (error_rate,) = panels["Error rate"]["targets"]
    assert f'code=~"{ERROR_CODES}"' in error_rate["expr"]
    numerator, denominator = errors.rsplit(" / ", 1)
    assert "mlops_request_errors_total" in numerator and "mlops_requests_total" in denominator

    shares = _rollout_expr("Rollout: predicted class share by version/role")
    assert "sum by (model, version, role, class)" in shares
    assert "group_left" in shares and shares.count("mlops_predictions_total") == 2

    # canary.py: out-of-range values per predicted row (VersionFigures.out_of_range_share)
    out_of_range = _rollout_expr("Rollout: out-of-range inputs per predicted row by version/role")
    numerator, denominator = out_of_range.rsplit(" / ", 1)
    assert "mlops_input_out_of_range_total" in numerator
    assert "mlops_predictions_total" in denominator and "mlops_requests_total" not in out_of_range


def test_rollout_window_defaults_to_the_canary_analysis_window():
    import inspect

    from mlops.monitoring.canary import analyze_canary

    variables = {v["name"]: v for v in assets.load_dashboard()["templating"]["list"]}
    window = variables["canary_window"]
    assert window["type"] == "interval" and not window.get("auto")
    default = inspect.signature(analyze_canary).parameters["window_minutes"].default
    assert (
        window["current"]["value"] == f"{default:g}m" == assets.GRAFANA_VARIABLES["canary_window"]
    )
    values = [option["value"] for option in window["options"]]
    assert values == window["query"].split(",") and window["current"]["value"] in values
    assert [o["value"] for o in window["options"] if o["selected"]] == [window["current"]["value"]]
