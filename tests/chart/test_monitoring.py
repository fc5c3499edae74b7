"""The chart's monitoring: the alert rules pass `promtool test rules` (Debian's prometheus package;
the local cluster installs it), the PrometheusRule carries exactly files/alerts.yaml, and the
dashboard is a Grafana dashboard whose every panel has a query. The e2e suite runs each of those
queries against a real Prometheus scraping the operator (tests/e2e/test_prometheus.py)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import yaml

from .test_chart import CHART, docs_of, on_path

ROOT = CHART.parents[1]


def promtool() -> str:
    return on_path("promtool", "`make test-chart` installs Debian's prometheus first",
                   "`make prometheus` (apt-get install prometheus)")


def test_the_alert_rules_pass_their_promtool_tests() -> None:
    proc = subprocess.run([promtool(), "test", "rules", "alerts_test.yaml"], cwd=ROOT / "tests" / "chart",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_the_prometheus_rule_and_the_dashboard_are_rendered_only_when_asked() -> None:
    kinds = {d["kind"] for d in docs_of()}
    assert "PrometheusRule" not in kinds
    assert "ServiceMonitor" not in kinds
    docs = docs_of("--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.release=kp",
                    "--set", "metrics.dashboard.enabled=true", "--set", "metrics.serviceMonitor.enabled=true",
                    "--set", "metrics.serviceMonitor.namespace=monitoring",
                    "--set", "metrics.serviceMonitor.labels.release=kp")
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["metadata"]["labels"]["release"] == "kp"
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kp"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert monitor["spec"]["endpoints"][0]["scrapeTimeout"] == "10s"
    [dashboard] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["appkeeper.json"]) == dashboard_json()


def dashboard_json() -> dict[str, Any]:
    return dict(json.loads((CHART / "files" / "dashboard.json").read_text()))


def test_the_dashboard_is_a_grafana_dashboard_with_a_query_in_every_panel() -> None:
    board = dashboard_json()
    assert isinstance(board["title"], str)
    assert isinstance(board["schemaVersion"], int)
    assert board["uid"] == "appkeeper"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["type"] in ("stat", "table", "timeseries")
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
    assert {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"} in \
        board["templating"]["list"]
