"""The local cluster is a real Kubernetes: scheduling, controllers, GC, the PV binder, admission
with OpenAPI and CEL validation. Each test would fail against a fake API server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import LOCALCLUSTER, ROOT, Cluster, bind_claim, items, kubectl, wait_condition, wait_for

VERSIONS = dict(
    line.split("=", 1) for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if line and not line.startswith("#")
)


def test_server_version_is_the_pinned_one(cluster: Cluster) -> None:
    if not cluster.local:
        pytest.skip("a cluster from $KUBECONFIG (kind) runs its own version")
    out = json.loads(kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == VERSIONS["KUBERNETES_VERSION"]


def test_deployment_pods_ready_on_kwok_nodes_with_endpoints(namespace: str, kwok: None) -> None:
    kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "-n", namespace)
    kubectl("expose", "deployment", "web", "--port=80", "-n", namespace)

    def ready_pods() -> list[dict[str, object]]:
        pods = items("pods", namespace, "app=web")
        ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in p["status"].get("conditions", []))]
        return ready if len(ready) == 3 else []

    pods = wait_for("3 Ready pods", ready_pods, timeout=60)
    nodes = {p["spec"]["nodeName"] for p in pods}  # type: ignore[index]
    assert all(str(n).startswith("kwok-node-") for n in nodes)

    def addresses() -> list[str]:
        slices = items("endpointslices", namespace, "kubernetes.io/service-name=web")
        found = [a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]
                 if e.get("conditions", {}).get("ready")]
        return found if len(found) == 3 else []

    got = wait_for("an EndpointSlice with 3 ready addresses", addresses, timeout=60)
    assert sorted(got) == sorted(p["status"]["podIP"] for p in pods)  # type: ignore[index]


def test_pvc_is_bound_by_the_real_binder(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    pvc = bind_claim("data", namespace)
    pv = json.loads(kubectl("get", "pv", pvc["spec"]["volumeName"], "-o", "json").stdout)
    assert pv["spec"]["claimRef"]["name"] == "data"
    assert pv["spec"]["storageClassName"] == pvc["spec"]["storageClassName"]


def test_deleting_a_deployment_garbage_collects_replicasets_and_pods(namespace: str) -> None:
    kubectl("create", "deployment", "gc", "--image=nginx:1.27", "--replicas=2", "-n", namespace)
    wait_for("2 pods", lambda: len(items("pods", namespace, "app=gc")) == 2, timeout=60)
    assert len(items("replicasets", namespace, "app=gc")) == 1
    kubectl("delete", "deployment", "gc", "-n", namespace, "--cascade=background")
    wait_for("ReplicaSets and pods gone",
             lambda: not items("replicasets", namespace, "app=gc") and not items("pods", namespace, "app=gc"),
             timeout=60)


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.appkeeper.dev"},
    "spec": {"group": "smoke.appkeeper.dev", "scope": "Namespaced",
             "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object",
                 "properties": {"spec": {
                     "type": "object",
                     "x-kubernetes-validations": [{"rule": "self.min <= self.max",
                                                   "message": "min must not exceed max", "fieldPath": ".min"}],
                     "properties": {"size": {"type": "integer", "maximum": 10},
                                    "min": {"type": "integer"}, "max": {"type": "integer"}}}}}}}]},
}


def test_crd_openapi_and_cel_rules_reject_with_the_field_named(namespace: str) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps(WIDGET_CRD))
    wait_condition("crd/widgets.smoke.appkeeper.dev", "Established", timeout=30)

    def create(spec: dict[str, int]) -> subprocess.CompletedProcess[str]:
        return kubectl("apply", "-n", namespace, "-f", "-", check=False, stdin=json.dumps({
            "apiVersion": "smoke.appkeeper.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}))

    too_big = create({"size": 11, "min": 1, "max": 2})
    assert too_big.returncode != 0
    assert "spec.size" in too_big.stderr
    assert "less than or equal to 10" in too_big.stderr
    crossed = create({"size": 1, "min": 5, "max": 2})
    assert crossed.returncode != 0
    assert "spec.min" in crossed.stderr
    assert "min must not exceed max" in crossed.stderr
    assert create({"size": 1, "min": 1, "max": 2}).returncode == 0


def running(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_second_cluster_starts_and_stops_leaving_nothing_behind(cluster: Cluster, tmp_path: Path) -> None:
    if not cluster.local:
        pytest.skip("needs the local cluster's binaries (not a kind run)")
    # KWOK-only: the real node's bridge and containerd are the main cluster's (tests/teardown covers them).
    env = {**os.environ, "APPKEEPER_CLUSTER_DIR": str(tmp_path / "state"), "APPKEEPER_REAL_NODE": "0"}
    env.pop("KUBECONFIG", None)
    try:
        up = subprocess.run([sys.executable, str(LOCALCLUSTER), "up"], env=env, capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stderr
        assert re.search(r"cluster ready in [0-9.]+s", up.stderr)
        ports = list(json.loads((tmp_path / "state" / "ports.json").read_text()))
        pids = [int(p.read_text()) for p in (tmp_path / "state" / "pids").iterdir() if not p.suffix]
        assert len(pids) == 8  # etcd, kube-apiserver, -controller-manager, -scheduler, 3 KWOK, metrics-server
        assert any(listening(p) for p in ports)
        again = subprocess.run([sys.executable, str(LOCALCLUSTER), "up"], env=env, capture_output=True, text=True)
        assert again.returncode == 0
        assert "reusing the running cluster" in again.stderr
    finally:  # a failed assertion must not leave a second control plane running for the rest of the suite
        down = subprocess.run([sys.executable, str(LOCALCLUSTER), "down"], env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stderr
    assert not [p for p in pids if running(p)]
    assert not [p for p in ports if listening(p)]
    assert not (tmp_path / "state").exists()
