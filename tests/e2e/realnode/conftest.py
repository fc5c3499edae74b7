"""Fixtures for the real-node tier: pods that really run (kubelet + containerd on this machine), the
operator image built by `make image`, and the operator installed in-cluster by the Helm chart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ..conftest import ROOT, Cluster, get, kubectl

sys.path.insert(0, str(ROOT / "hack"))
import realnode

CHART = ROOT / "charts" / "appkeeper"
LABEL = realnode.LABEL
WEB_IMAGE = "appkeeper.local/web:1"
# What a pod needs to land on the real node (it is labelled and tainted so only such pods do).
ON_REAL_NODE: dict[str, Any] = {
    "nodeSelector": {LABEL: "true"},
    "tolerations": [{"key": LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}


def helm(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}")
    return proc


def labelled_nodes() -> list[dict[str, Any]]:
    out = kubectl("get", "nodes", "-l", f"{LABEL}=true", "-o", "json", check=False)
    return list(json.loads(out.stdout)["items"]) if out.returncode == 0 else []


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> str:
    """The node where pods really run: the local cluster's kubelet, or a kind node (hack/kindcluster.py
    labels it the same way)."""
    nodes = labelled_nodes()
    if not nodes:
        why = "the cluster has no real node (needs root; APPKEEPER_REAL_NODE=0 turns it off)"
        if os.environ.get("APPKEEPER_REQUIRE_REAL_NODE") == "1":
            pytest.fail(why + ", and APPKEEPER_REQUIRE_REAL_NODE=1 (CI) requires it")
        pytest.skip(why)
    return str(nodes[0]["metadata"]["name"])


def on_kind() -> bool:
    """Whether the real node is a kind node (its provider ID says so)."""
    return any(str(n["spec"].get("providerID", "")).startswith("kind://") for n in labelled_nodes())


def local_node_only(real_node: str) -> None:
    """For tests of the local cluster's own node (its bridge, guards, address): skip on kind."""
    if on_kind():
        pytest.skip("checks the local cluster's real node (its bridge, guard table and address); "
                    "kind's network is checked by tests/kind")


@dataclass
class Release:
    namespace: str
    image: str
    build_seconds: float

    def operator_pods(self) -> list[dict[str, Any]]:
        out = kubectl("get", "pods", "-n", self.namespace, "-l", "app.kubernetes.io/name=appkeeper", "-o", "json")
        return [p for p in json.loads(out.stdout)["items"] if not p["metadata"].get("deletionTimestamp")]

    def leader(self) -> str:
        """The pod holding the Lease (its identity is `<pod name>_<random>`)."""
        lease = get("lease", "appkeeper", self.namespace)
        holder = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
        return holder.rpartition("_")[0]

    def logs(self) -> str:
        pod = self.leader()
        return kubectl("logs", "-n", self.namespace, pod, "--tail=-1").stdout if pod else ""


@pytest.fixture(scope="module")
def incluster(real_node: str, crd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """`make image`, then `helm install` of the chart with that image onto the real node, in a
    namespace that enforces the restricted Pod Security Standard."""
    t0 = time.monotonic()
    loader = ["kindcluster.py", "load"] if on_kind() else ["images.py", "import"]
    built = subprocess.run([sys.executable, str(ROOT / "hack" / loader[0]), loader[1], "operator"],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr
    build_seconds = time.monotonic() - t0
    image = json.loads(subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, 'hack'); import images, json; "
         "print(json.dumps(images.operator_image()))"], cwd=ROOT, capture_output=True, text=True).stdout)
    ns = f"appkeeper-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest")
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(json.dumps({"image": {"pullPolicy": "Never"}, "nodeSelector": ON_REAL_NODE["nodeSelector"],
                                  "tolerations": ON_REAL_NODE["tolerations"], "resyncSeconds": 60,
                                  "configRollout": {"secrets": True}}))  # Secrets roll too (a test of its own)
    t1 = time.monotonic()
    helm("install", "appkeeper", str(CHART), "-n", ns, "-f", str(values), "--take-ownership", "--wait",
         "--timeout", "180s")
    print(f"operator image ready in {build_seconds:.1f}s; helm install --wait in {time.monotonic() - t1:.1f}s")
    release = Release(ns, image, build_seconds)
    try:
        yield release
    finally:
        print(f"in-cluster operator log tail:\n{release.logs()[-3000:]}")
        helm("uninstall", "appkeeper", "-n", ns, "--wait", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def real_app(name: str, **spec: Any) -> dict[str, Any]:
    """An App whose pods run on the real node, from the test-web image unless told otherwise."""
    spec.setdefault("image", WEB_IMAGE)
    spec.setdefault("imagePullPolicy", "IfNotPresent")
    spec["pod"] = {**ON_REAL_NODE, **spec.get("pod", {})}
    return {"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "metadata": {"name": name}, "spec": spec}
