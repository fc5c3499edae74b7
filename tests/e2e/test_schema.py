"""The embedded core/v1 schemas are the API server's own: regenerating them from this cluster's
OpenAPI v3 changes nothing, and `kubectl explain` shows their real fields."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT, Cluster, kubectl


def test_regenerating_the_core_schemas_from_the_api_server_changes_nothing(cluster: Cluster) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "hack" / "gen_crd.py"), "fetch", "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_kubectl_explain_shows_the_real_probe_fields(crd: str) -> None:
    liveness = kubectl("explain", "app.spec.probes.liveness").stdout
    for name in ("httpGet", "tcpSocket", "exec", "grpc", "periodSeconds", "failureThreshold"):
        assert name in liveness, liveness
    http = kubectl("explain", "app.spec.probes.liveness.httpGet").stdout
    assert "port" in http
    assert "-required-" in http
    affinity = kubectl("explain", "app.spec.pod.affinity.nodeAffinity").stdout
    assert "requiredDuringSchedulingIgnoredDuringExecution" in affinity
