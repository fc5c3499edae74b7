"""`make kind-up` then `make kind-down` on this machine (hack/kindcluster.py): a kind cluster on the
node image built here comes up Ready, its API server published on loopback only, its pod and
Service ranges routed to the node and guarded; down leaves the host as it found it.
Run by CI after the kind tier (`.ci/run`); needs root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))

import kindcluster  # noqa: E402
import kindhost  # noqa: E402
import realnode  # noqa: E402


def snapshot() -> dict[str, list[str]]:
    state = realnode.host_snapshot()
    state["opt"] = [str(p) for p in (Path("/opt/containerd"),) if p.exists()]  # dockerd's containerd makes it
    state["routes"] = sorted(subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout.splitlines())
    state["engine"] = sorted(line for line in subprocess.run(["pgrep", "-a", "-f", "dockerd|docker-proxy|kindnode"],
                                                              capture_output=True, text=True).stdout.splitlines()
                             if "pgrep" not in line and "<defunct>" not in line)  # exited, not yet reaped
    return state


def test_kind_up_then_down_leaves_the_host_as_it_was() -> None:
    if os.geteuid() != 0:
        pytest.fail("kind here needs root (CI runs as root)")
    if kindhost.running() is not None:
        kindcluster.down()  # a cluster left by the tier before: the check starts from a clean host
    before = snapshot()
    kindcluster.up()
    try:
        config = kindcluster.KUBECONFIG.read_text()
        assert "server: https://127.0.0.1:" in config  # published on loopback only
        nodes = json.loads(kindcluster.kubectl("get", "nodes", "-o", "json"))["items"]
        assert len(nodes) == 1
        [ready] = [c for c in nodes[0]["status"]["conditions"] if c["type"] == "Ready"]
        assert ready["status"] == "True"
        assert nodes[0]["spec"]["providerID"].startswith("kind://")
        assert nodes[0]["metadata"]["labels"][realnode.LABEL] == "true"
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
        for subnet in (kindhost.POD_SUBNET, kindhost.SERVICE_SUBNET):
            assert f"{subnet} via " in routes
            assert f"ip daddr {subnet}" in kindhost.guard_rules()
        images = kindcluster.kubectl("get", "pods", "-A", "-o", "jsonpath={.items[*].spec.containers[*].image}")
        assert "registry.k8s.io/kube-apiserver" in images
    finally:
        kindcluster.down()
    assert realnode.snapshot_diff(before, snapshot()) == {}
