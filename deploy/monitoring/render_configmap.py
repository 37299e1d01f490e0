#!/usr/bin/env python3
"""Render the generated Kubernetes manifests of deploy/monitoring from their sources.

    grafana/mlops-dashboard.json  ->  grafana/dashboard-configmap.yaml   (ConfigMap, grafana_dashboard: "1")
    alerts.yaml                   ->  k8s/prometheusrule.yaml            (PrometheusRule, same groups)

Usage:
    python deploy/monitoring/render_configmap.py          # (re)write both files
    python deploy/monitoring/render_configmap.py --check  # exit 1 when a file is out of date

Only needs PyYAML. Edit the sources, never the generated files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "grafana" / "mlops-dashboard.json"
CONFIGMAP = HERE / "grafana" / "dashboard-configmap.yaml"
RULES = HERE / "alerts.yaml"
PROMETHEUSRULE = HERE / "k8s" / "prometheusrule.yaml"

COMMON_LABELS = {
    "app.kubernetes.io/name": "kfp-mlops-monitoring",
    "app.kubernetes.io/part-of": "kfp-mlops",
}


class _Dumper(yaml.SafeDumper):
    """SafeDumper writing multi-line strings as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def _dump(header: str, document: dict) -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)
    return header + body


def _header(source: Path) -> str:
    rel = source.relative_to(HERE).as_posix()
    return (
        f"# GENERATED from deploy/monitoring/{rel} by deploy/monitoring/render_configmap.py - do not edit.\n"
        "# Namespace is left to `kubectl apply -n <namespace>`.\n"
    )


def render_configmap(dashboard_text: str | None = None) -> str:
    """The dashboard ConfigMap for the Grafana dashboard sidecar, embedding the JSON verbatim."""
    text = DASHBOARD.read_text(encoding="utf-8") if dashboard_text is None else dashboard_text
    json.loads(text)  # refuse to embed invalid JSON
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "kfp-mlops-dashboard",
            "labels": {**COMMON_LABELS, "grafana_dashboard": "1"},
            "annotations": {"grafana_folder": "MLOps"},
        },
        "data": {DASHBOARD.name: text},
    }
    return _dump(_header(DASHBOARD), document)


def render_prometheusrule(rules_text: str | None = None) -> str:
    """A PrometheusRule whose ``spec.groups`` are the groups of alerts.yaml."""
    text = RULES.read_text(encoding="utf-8") if rules_text is None else rules_text
    groups = yaml.safe_load(text)["groups"]
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "kfp-mlops-alerts",
            # `release` matches the default ruleSelector of the kube-prometheus-stack chart
            # installed as release "kube-prometheus-stack"; adapt it to your Prometheus.
            "labels": {**COMMON_LABELS, "release": "kube-prometheus-stack", "role": "alert-rules"},
        },
        "spec": {"groups": groups},
    }
    return _dump(_header(RULES), document)


def render_all() -> dict[Path, str]:
    """Generated file -> its expected content."""
    return {CONFIGMAP: render_configmap(), PROMETHEUSRULE: render_prometheusrule()}


def main(argv: list[str] | None = None) -> int:
    """Writes (or with ``--check`` compares) the dashboard ConfigMap; returns the exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 when a file is out of date"
    )
    args = parser.parse_args(argv)
    stale = []
    for path, content in render_all().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE.parents[1])}")
    if stale:
        for path in stale:
            print(f"out of date: {path.relative_to(HERE.parents[1])}", file=sys.stderr)
        print("run: python deploy/monitoring/render_configmap.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
