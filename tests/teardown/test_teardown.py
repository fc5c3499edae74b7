"""`make cluster-down` leaves the host as `make cluster-up` found it, with the real node and a running
pod on it: no process, mount, cgroup, link, nftables table, host path or changed sysctl left.

Runs on its own (after the e2e suite has stopped its cluster): the real node's bridge, containerd and
sysctls are machine-wide, so no other cluster may run meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import localcluster  # noqa: E402
import realnode  # noqa: E402

LOCALCLUSTER = ROOT / "hack" / "localcluster.py"


def test_real_node_teardown_leaves_the_host_as_it_was(tmp_path: Path) -> None:
    if localcluster.pids():
        pytest.skip(f"a local cluster runs (or left state) in {localcluster.STATE}; run this after `make cluster-down`")
    reason = realnode.unavailable_reason()
    if reason is not None:
        if os.environ.get("APPKEEPER_REQUIRE_REAL_NODE") == "1":
            pytest.fail(f"the real node cannot run here ({reason}) and APPKEEPER_REQUIRE_REAL_NODE=1 requires it")
        pytest.skip(f"no real node here: {reason}")
    env = {**os.environ, "APPKEEPER_CLUSTER_DIR": str(tmp_path / "state")}
    env.pop("KUBECONFIG", None)
    before = realnode.host_snapshot()
    up = subprocess.run([sys.executable, str(LOCALCLUSTER), "up"], env=env, capture_output=True, text=True,
                        timeout=600)
    try:
        assert up.returncode == 0, up.stderr
        assert f"real node {realnode.NODE_NAME} Ready" in up.stderr
        during = realnode.host_snapshot()
        assert realnode.BRIDGE in during["links"]
        assert f"table inet {realnode.GUARD_TABLE}" in during["nft_tables"]
        assert {"containerd", "kubelet", "kube-proxy", "coredns"} <= set(during["processes"])
        # A running pod: a veth, a network namespace, overlay and tmpfs mounts, cgroups, CNI state.
        kubectl = [str(localcluster.bin_dir() / "kubectl"), "--kubeconfig", str(tmp_path / "state" / "kubeconfig")]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "left", "namespace": "default"},
               "spec": {"nodeSelector": {realnode.LABEL: "true"},
                        "tolerations": [{"key": realnode.LABEL, "operator": "Exists"}],
                        "containers": [{"name": "web", "image": "appkeeper.local/web:1", "imagePullPolicy": "Never"}]}}
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(pod), text=True, check=True,
                       capture_output=True)
        ready = '--for=jsonpath={.status.conditions[?(@.type=="Ready")].status}=True'  # waits while none is set
        subprocess.run([*kubectl, "wait", ready, "pod/left", "--timeout=120s"], check=True, capture_output=True)
        running = realnode.host_snapshot()
        assert any(link.startswith("veth") for link in running["links"])
        assert any("/run/netns/cni-" in m for m in running["mounts"])
    finally:
        down = subprocess.run([sys.executable, str(LOCALCLUSTER), "down"], env=env, capture_output=True, text=True,
                              timeout=300)
    assert down.returncode == 0, down.stderr
    after = realnode.host_snapshot()
    assert realnode.snapshot_diff(before, after) == {}, down.stderr
    assert not (tmp_path / "state").exists()
