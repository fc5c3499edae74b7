"""Optional children against a real API server: an App asks for a ServiceMonitor before the
monitoring.coreos.com CRD exists. The rest of its children are made, it says NotServed, the
operator neither warns in a loop nor stalls; once the CRD is installed the ServiceMonitor appears
without a restart, and is watched (repaired) like any child. Its NetworkPolicy, a built-in optional
kind, is made from the start."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    Cluster,
    Operator,
    app,
    apply,
    get,
    kubectl,
    start_operator,
    stop_operator,
    wait_condition,
    wait_for,
)

CRD_NAME = "servicemonitors.monitoring.coreos.com"
# The smallest CRD that serves the kind (the Prometheus Operator's has the full schema).
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor",
                       "listKind": "ServiceMonitorList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}
POLL = 2  # seconds: --optional-kinds-poll-seconds


@pytest.fixture(scope="module")
def operator(crd: str, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true")
    op = start_operator(tmp_path_factory.mktemp("optional"), f"--optional-kinds-poll-seconds={POLL}")
    yield op
    stop_operator(op)
    kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true")


def degraded(namespace: str) -> dict[str, str]:
    body = get("app", "web", namespace) or {}
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "Degraded"), {})


def monitor_lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "ServiceMonitor" in line]


def test_an_optional_child_waits_for_its_api_then_is_made_without_a_restart(operator: Operator, namespace: str,
                                                                            tmp_path: Path) -> None:
    spec = {"ports": [{"name": "http", "containerPort": 8080}], "metrics": {"port": "http"},
            "networkPolicy": {"ingressFrom": [{"app": "frontend"}]}}
    apply(app("web", **spec), namespace)
    wait_for("Degraded NotServed", lambda: degraded(namespace).get("reason") == "NotServed", timeout=60)
    assert "ServiceMonitor web" in degraded(namespace)["message"]
    for kind in ("deployment", "service", "networkpolicy"):
        assert get(kind, "web", namespace) is not None, kind
    # Quiet while the API is missing: several polls pass, yet the log says so once.
    before = operator.metrics().get('appkeeper_api_requests_total{code="404",verb="GET"}', 0.0)
    wait_for("three more polls", lambda: operator.metrics().get(
        'appkeeper_api_requests_total{code="404",verb="GET"}', 0.0) >= before + 3, timeout=10 * POLL)
    lines = monitor_lines(operator.log)
    assert len(lines) == 1, lines
    assert '"level": "info"' in lines[0]
    assert "not served" in lines[0]

    # `appkeeper diff` says the same, and fails on nothing else.
    manifest = tmp_path / "web.yaml"
    manifest.write_text(json.dumps(app("web", **spec)))
    said = subprocess.run([sys.executable, "-m", "appkeeper", "diff", "-f", str(manifest), "-n", namespace],
                          capture_output=True, text=True, timeout=60)
    assert (said.returncode, said.stderr) == (1, ""), said.stderr
    assert said.stdout.startswith(f"# ServiceMonitor {namespace}/web: not served by the API server"), said.stdout

    kubectl("apply", "-f", "-", stdin=json.dumps(SERVICE_MONITOR_CRD))
    wait_condition(f"crd/{CRD_NAME}", "Established")
    monitor = wait_for("the ServiceMonitor", lambda: get("servicemonitor", "web", namespace), timeout=10 * POLL + 30)
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert [r["name"] for r in monitor["metadata"]["ownerReferences"]] == ["web"]
    wait_for("Degraded False", lambda: degraded(namespace).get("status") == "False", timeout=30)
    uid = monitor["metadata"]["uid"]
    kubectl("delete", "servicemonitor", "web", "-n", namespace)
    wait_for("the ServiceMonitor repaired", lambda: (get("servicemonitor", "web", namespace) or {}).get(
        "metadata", {}).get("uid") not in (None, uid), timeout=30)
    assert not [line for line in monitor_lines(operator.log) if '"level": "warning"' in line
                or '"level": "error"' in line]
