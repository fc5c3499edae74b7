"""Network safety of the real node, checked while it runs: pod and Service addresses cannot leave the
machine, nothing listens on the external interface, pods resolve cluster names only."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import uuid

import pytest

from ..conftest import kubectl, wait_condition, wait_for
from .conftest import ON_REAL_NODE, WEB_IMAGE, local_node_only, on_kind, realnode

# Every process the local cluster starts.
CLUSTER_PROCESSES = {"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kwok", "metrics-server",
                     "containerd", "kubelet", "kube-proxy", "coredns"}


def test_guards_drop_cluster_ranges_off_the_machine(real_node: str) -> None:
    local_node_only(real_node)
    rules = subprocess.run(["nft", "list", "table", "inet", realnode.GUARD_TABLE], capture_output=True, text=True,
                           check=True).stdout
    assert "hook postrouting" in rules
    keep = f'oifname {{ "lo", "{realnode.BRIDGE}" }}'
    cidrs = f"({re.escape(realnode.CLUSTER_CIDR)}|{re.escape(realnode.SERVICE_CIDR)})"
    ranges = rf"\{{ {cidrs}, {cidrs} \}}"
    # To the pod or Service ranges: only through loopback or the cluster's bridge; else dropped.
    assert re.search(rf"ip daddr {ranges} {re.escape(keep)} accept\n\s*ip daddr {ranges} counter packets \d+ "
                     r"bytes \d+ drop", rules), rules
    assert {realnode.CLUSTER_CIDR, realnode.SERVICE_CIDR} <= set(re.findall(r"ip daddr \{ ([^,]+),", rules)
                                                                  + re.findall(r"ip daddr \{ [^,]+, ([^ ]+) \}", rules))
    # From the pod range: likewise.
    assert re.search(rf"ip saddr {re.escape(realnode.CLUSTER_CIDR)} {re.escape(keep)} accept\n\s*"
                     rf"ip saddr {re.escape(realnode.CLUSTER_CIDR)} counter packets \d+ bytes \d+ drop", rules), rules
    # The bridge does not masquerade pod traffic out of the machine.
    import localcluster  # hack/ is on sys.path (conftest): the running cluster's state folder

    conf = json.loads(next((localcluster.STATE / "realnode" / "cni").glob("*.conflist")).read_text())
    assert conf["plugins"][0]["ipMasq"] is False


def test_nothing_listens_on_the_external_interface(real_node: str) -> None:
    local_node_only(real_node)
    out = subprocess.run(["ss", "-H", "-l", "-n", "-t", "-u", "-p"], capture_output=True, text=True,
                         check=True).stdout
    allowed = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address(realnode.BRIDGE_IP)}
    seen, wrong = 0, []
    for line in out.splitlines():
        procs = set(re.findall(r'\(\("([^"]+)"', line))
        if not procs & CLUSTER_PROCESSES:
            continue
        seen += 1
        local = line.split()[4]
        host = local.rsplit(":", 1)[0].strip("[]").split("%")[0]
        if host == "*" or ipaddress.ip_address(host) not in allowed:
            wrong.append(line)
    assert seen >= 10, out  # the API server, kubelet, CoreDNS, etcd, ... were found
    assert wrong == [], "\n".join(wrong)


@pytest.fixture
def probe_pod(real_node: str, namespace: str) -> str:
    name = f"probe-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {**ON_REAL_NODE, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "web", "image": WEB_IMAGE, "imagePullPolicy": "Never"}]}}))
    wait_condition(f"pod/{name}", "Ready", namespace, timeout=90)
    return name


def test_pods_resolve_cluster_names_and_nothing_else(probe_pod: str, namespace: str) -> None:
    resolv = kubectl("exec", "-n", namespace, probe_pod, "--", "cat", "/etc/resolv.conf").stdout
    dns = realnode.BRIDGE_IP if not on_kind() else service_ip("kube-system", "kube-dns")
    assert f"nameserver {dns}" in resolv
    assert f"search {namespace}.svc.cluster.local" in resolv
    found = kubectl("exec", "-n", namespace, probe_pod, "--", "nslookup", "kubernetes.default.svc.cluster.local")
    assert service_ip("default", "kubernetes") in found.stdout
    outside = kubectl("exec", "-n", namespace, probe_pod, "--", "nslookup", "example.com", check=False)
    # Not resolved: NXDOMAIN from CoreDNS's catch-all (or, on a loaded machine, busybox giving up
    # on the search-path queries first); never an answer.
    assert outside.returncode != 0
    assert "Name:" not in outside.stdout, outside.stdout


def test_dns_policy_default_goes_nowhere(real_node: str, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostdns"},
        "spec": {**ON_REAL_NODE, "dnsPolicy": "Default", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "web", "image": WEB_IMAGE, "imagePullPolicy": "Never"}]}}))
    wait_condition("pod/hostdns", "Ready", namespace, timeout=90)
    resolv = kubectl("exec", "-n", namespace, "hostdns", "--", "cat", "/etc/resolv.conf").stdout
    servers = re.findall(r"^nameserver\s+(\S+)", resolv, re.M)
    if not on_kind():
        assert servers == ["127.0.0.1"], resolv  # inside the pod's own network namespace: nothing there
    else:  # the kind node's own address, where nothing answers on port 53 (hack/kind/entrypoint)
        node = json.loads(kubectl("get", "node", real_node, "-o", "json").stdout)
        assert servers == [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"], resolv
    outside = kubectl("exec", "-n", namespace, "hostdns", "--", "nslookup", "example.com", check=False)
    assert outside.returncode != 0
    assert "Name:" not in outside.stdout, outside.stdout


def service_ip(namespace: str, name: str) -> str:
    return str(json.loads(kubectl("get", "service", name, "-n", namespace, "-o", "json").stdout)["spec"]["clusterIP"])


def test_the_real_node_takes_only_pods_that_ask(real_node: str, namespace: str) -> None:
    local_node_only(real_node)
    node = json.loads(kubectl("get", "node", real_node, "-o", "json").stdout)
    assert {"key": realnode.LABEL, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert node["metadata"]["labels"][realnode.LABEL] == "true"
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": realnode.BRIDGE_IP}
    kubectl("run", "anywhere", "-n", namespace, "--image=nginx:1.27", "--restart=Never")
    placed = wait_for("pod scheduled", lambda: json.loads(kubectl(
        "get", "pod", "anywhere", "-n", namespace, "-o", "json").stdout)["spec"].get("nodeName"))
    assert placed.startswith("kwok-node-")
