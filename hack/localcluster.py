#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback, without Docker: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and KWOK fake nodes, as local processes.

    python3 hack/localcluster.py up       build-or-reuse the binaries, start, print KUBECONFIG
    python3 hack/localcluster.py down     stop exactly the processes `up` started
    python3 hack/localcluster.py status   say whether a cluster runs, and where
    python3 hack/localcluster.py env      print `export KUBECONFIG=... PATH=...`
    python3 hack/localcluster.py build    build-or-reuse the binaries, print their folder

With root (and unless APPKEEPER_REAL_NODE=0) it adds a real node where pods really run: containerd,
the bridge CNI, a kubelet, kube-proxy and CoreDNS (hack/realnode.py), labelled and tainted
`appkeeper.dev/real-node` so only pods that ask for it land there. The API server then listens on
the node bridge's address (never on the external interface).

The binaries come from hack/build-binaries.sh (pinned in hack/versions.env). State (certificates,
etcd data, logs, pid files, kubeconfig) lives in one folder, $APPKEEPER_CLUSTER_DIR or
~/.cache/appkeeper/cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import images
import kwokstages
import realnode

HACK = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("APPKEEPER_CACHE", Path.home() / ".cache" / "appkeeper"))
STATE = Path(os.environ.get("APPKEEPER_CLUSTER_DIR", CACHE / "cluster"))
NODE_COUNT = int(os.environ.get("APPKEEPER_CLUSTER_NODES", "3"))
# One KWOK process per node: each serves its node's kubelet-style /metrics/resource on the node's
# own port, which is what metrics-server scrapes.
KWOK_PROCESSES = tuple(f"kwok-{i}" for i in range(NODE_COUNT))
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", *KWOK_PROCESSES,
                 "metrics-server")
SERVICE_CIDR = realnode.SERVICE_CIDR
AUDIT_LOG = STATE / "logs" / "audit.log"
# What the API server records of the admin's writes (kubectl, and operators the tests run with the
# admin kubeconfig) to Apps, workloads and Services: who wrote which object when, by User-Agent.
# The sharding chaos test reads it to prove that no App was written by two replicas at once.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: [kubernetes-admin]
    verbs: [create, update, patch, delete]
    resources:
      - {group: appkeeper.dev, resources: [apps, apps/status]}
      - {group: apps, resources: [deployments, statefulsets]}
      - {group: "", resources: [services]}
  - level: None
"""
CONTAINERD_ROOT = CACHE / "realnode" / "containerd"  # kept between runs: imported images stay


def real_node_on() -> bool:
    """Whether the cluster in STATE was started with the real node."""
    return (STATE / "real-node").exists()


def processes() -> tuple[str, ...]:
    return CONTROL_PLANE + (realnode.PROCESSES if real_node_on() else ())


class ClusterError(RuntimeError):
    """A failure a developer can act on; the message says what to do."""


def log(msg: str) -> None:
    print(f"[localcluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    metrics_server: int
    kubelet_healthz: int
    kube_proxy_healthz: int
    kube_proxy_metrics: int
    kwok: list[int]

    @classmethod
    def free(cls) -> Ports:
        socks, ports = [], []
        for _ in range(9 + NODE_COUNT):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
        for s in socks:
            s.close()
        return cls(*ports[:9], kwok=ports[9:])

    def all(self) -> list[int]:
        return [self.etcd_client, self.etcd_peer, self.apiserver, self.controller_manager, self.scheduler,
                self.metrics_server, self.kubelet_healthz, self.kube_proxy_healthz, self.kube_proxy_metrics,
                *self.kwok]


def build_binaries() -> Path:
    if shutil.which("go") is None:
        raise ClusterError("Go is not installed: the local cluster builds Kubernetes from the Go module proxy")
    proc = subprocess.run([str(HACK / "build-binaries.sh")], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ClusterError("building the cluster binaries failed (see the build output above)")
    return Path(proc.stdout.strip().splitlines()[-1])


def bin_dir() -> Path:
    """The bin folder of a running or last-started cluster, else build-or-reuse it."""
    recorded = STATE / "bin-dir"
    if recorded.exists() and Path(recorded.read_text().strip()).is_dir():
        return Path(recorded.read_text().strip())
    return build_binaries()


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(pki: Path, real: bool) -> None:
    """A CA, the apiserver's serving cert, client certs per component, SA signing keys."""
    pki.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "front-proxy-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", f"/CN={ca}",
                "-keyout", str(pki / f"{ca}.key"), "-out", str(pki / f"{ca}.crt"))
    openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    sans = ("DNS:localhost,IP:127.0.0.1,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")
    if real:
        sans += f",IP:{realnode.BRIDGE_IP}"
        realnode.make_certs(leaf, pki)
    leaf("apiserver", "/CN=kube-apiserver", "ca", pki, f"subjectAltName={sans}\nextendedKeyUsage=serverAuth")
    for name, subject in (
        ("admin", "/O=system:masters/CN=kubernetes-admin"),
        ("controller-manager", "/CN=system:kube-controller-manager"),
        ("scheduler", "/CN=system:kube-scheduler"),
        ("kwok", "/O=system:masters/CN=kwok-controller"),
        ("metrics-server", "/O=system:masters/CN=metrics-server"),
        ("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client"),
    ):
        leaf(name, subject, "ca", pki, "extendedKeyUsage=clientAuth")
    leaf("front-proxy-client", "/CN=front-proxy-client", "front-proxy-ca", pki, "extendedKeyUsage=clientAuth")


def leaf(name: str, subject: str, ca: str, pki: Path, ext: str) -> None:
    key, csr, crt, extfile = (pki / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    extfile.write_text(ext + "\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(pki / f"{ca}.crt"), "-CAkey", str(pki / f"{ca}.key"),
            "-CAcreateserial", "-days", "3650", "-extfile", str(extfile), "-out", str(crt))


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "appkeeper-local",
        "clusters": [{"name": "appkeeper-local", "cluster": {
            "server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate": str(pki / f"{user}.crt"), "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": "appkeeper-local", "context": {"cluster": "appkeeper-local", "user": user}}],
    }, indent=2))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat): with the pid, an identity."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def ours(name: str, pid: int) -> bool:
    """Alive and still the process we started (a pid from a stale file may have been reused)."""
    recorded = (STATE / "pids" / f"{name}.start").read_text().strip() \
        if (STATE / "pids" / f"{name}.start").exists() else None
    return alive(pid) and recorded is not None and start_time(pid) == recorded


def pids() -> dict[str, int]:
    found = {}
    for name in CONTROL_PLANE + realnode.PROCESSES:
        f = STATE / "pids" / name
        if f.exists():
            found[name] = int(f.read_text())
    return found


def api_ready(server: str, pki: Path, timeout: float = 2.0) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(f"{server}/readyz", context=ctx, timeout=timeout) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def start(name: str, argv: list[str]) -> int:
    logf = open(STATE / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=STATE)
    (STATE / "pids" / name).write_text(str(proc.pid))
    (STATE / "pids" / f"{name}.start").write_text(start_time(proc.pid) or "")
    (STATE / "pids" / f"{name}.argv").write_text(json.dumps(argv))
    return proc.pid


# --- chaos: one component killed and started again, or frozen and thawed -------------------------

def signal_component(name: str, sig: signal.Signals) -> None:
    """SIGKILL (gone at once, no clean shutdown), SIGSTOP (frozen: connections stay open and nothing
    answers) or SIGCONT, to a component this cluster started."""
    pid = pids().get(name)
    if pid is None or not ours(name, pid):
        raise ClusterError(f"{name} is not running in {STATE}")
    os.killpg(pid, sig)
    if sig == signal.SIGKILL:
        while alive(pid):
            time.sleep(0.05)


def compact_etcd() -> int:
    """Compact etcd's history up to now (through its loopback JSON gateway): a watch that tries to
    resume from an older resourceVersion is told 410 Gone and must list again. Returns the revision."""
    port = json.loads((STATE / "ports.json").read_text())[0]  # Ports.all() order: etcd's client port first

    def call(path: str, body: dict[str, object]) -> dict[str, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return dict(json.loads(r.read()))

    revision = int(call("/v3/kv/range", {"key": "AA==", "limit": 1})["header"]["revision"])
    call("/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision


def restart_component(name: str) -> int:
    """Start a component again with the arguments it was first started with (after SIGKILL)."""
    pid = pids().get(name)
    if pid is not None and ours(name, pid):
        raise ClusterError(f"{name} is still running (pid {pid})")
    argv = json.loads((STATE / "pids" / f"{name}.argv").read_text())
    pid = start(name, argv)
    if name == "kube-apiserver":
        server = json.loads((STATE / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
        wait_for("kube-apiserver /readyz", lambda: api_ready(server, STATE / "pki"), 60, name)
    return pid


def wait_for(what: str, check: object, timeout: float, name: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        if name is not None and not ours(name, pids()[name]):
            tail = (STATE / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            raise ClusterError(f"{name} exited while waiting for {what}; its log ends:\n  " + "\n  ".join(tail))
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what} (logs: {STATE / 'logs'})")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def kubectl(bins: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(bins / "kubectl"), "--kubeconfig", str(STATE / "kubeconfig"), *args],
                          input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def status() -> tuple[bool, str]:
    running = {n: p for n, p in pids().items() if ours(n, p)}
    if not pids():
        return False, "no local cluster is running"
    if len(running) != len(processes()):
        dead = sorted(set(processes()) - set(running))
        return False, f"stale state in {STATE}: {', '.join(dead)} not running (run `make cluster-down`)"
    server = (STATE / "server").read_text().strip()
    if not api_ready(server, STATE / "pki"):
        return False, f"processes run but {server}/readyz does not answer ok"
    node = f" with the real node {realnode.NODE_NAME}" if real_node_on() else " (KWOK nodes only)"
    return True, f"local cluster running at {server}{node}; export KUBECONFIG={STATE / 'kubeconfig'}"


def up() -> None:
    ok, msg = status()
    if ok:
        log(f"reusing the running cluster: {msg}")
        return
    if pids():
        log(f"found {msg}; cleaning it up before starting afresh")
        down()
    bins = build_binaries()
    t0 = time.monotonic()
    if STATE.exists():
        shutil.rmtree(STATE)
    for d in ("logs", "pids", "etcd", "pki"):
        (STATE / d).mkdir(parents=True)
    (STATE / "bin-dir").write_text(str(bins))
    real = want_real_node()
    pki = STATE / "pki"
    make_pki(pki, real)
    ports = Ports.free()
    host = realnode.BRIDGE_IP if real else "127.0.0.1"
    server = f"https://{host}:{ports.apiserver}"
    (STATE / "server").write_text(server)
    (STATE / "ports.json").write_text(json.dumps(ports.all()))
    write_kubeconfig(STATE / "kubeconfig", server, pki, "admin")
    users = ["controller-manager", "scheduler", "kwok", "metrics-server"]
    for user in users + (["kubelet", "kube-proxy", "coredns"] if real else []):
        write_kubeconfig(STATE / f"{user}.kubeconfig", server, pki, user)

    try:
        if real:
            (STATE / "real-node").touch()
            realnode.prepare_host(STATE, log)
        start_processes(bins, ports, pki, server, host)
        wait_for(f"{NODE_COUNT} nodes Ready", lambda: nodes_ready(bins) >= NODE_COUNT, 60, "kwok-0")
        setup_cluster_objects(bins, ports)
        if real:
            start_real_node(bins, ports, pki)
    except BaseException:
        log(f"start failed; stopping what was started (logs kept in {STATE / 'logs'})")
        try:
            down(keep_logs=True)
        except ClusterError as e:
            log(f"while stopping: {e}")
        raise
    log(f"cluster ready in {time.monotonic() - t0:.1f}s (binaries: {bins})")


def want_real_node() -> bool:
    """On by default where the machine allows it; says why not otherwise."""
    reason = realnode.unavailable_reason()
    if reason is None:
        try:
            realnode.install_packages(log)
        except realnode.NodeError as e:
            reason = str(e)
    if reason is not None:
        log(f"no real node ({reason}): KWOK nodes only")
        return False
    return True


def start_real_node(bins: Path, ports: Ports, pki: Path) -> None:
    t0 = time.monotonic()
    realnode.write_configs(STATE, pki, CONTAINERD_ROOT, {
        "kubelet_healthz": ports.kubelet_healthz, "kube_proxy_healthz": ports.kube_proxy_healthz,
        "kube_proxy_metrics": ports.kube_proxy_metrics})
    CONTAINERD_ROOT.mkdir(parents=True, exist_ok=True)
    start("containerd", realnode.containerd_argv(STATE))
    wait_for("containerd's socket", lambda: realnode.containerd_socket().exists(), 30, "containerd")
    for name in ("pause", "web"):
        images.ensure_imported(name)
    start("kubelet", realnode.kubelet_argv(bins, STATE))
    start("kube-proxy", realnode.kube_proxy_argv(bins, STATE))
    start("coredns", realnode.coredns_argv(bins, STATE))
    wait_for(f"node {realnode.NODE_NAME} Ready", lambda: node_ready(bins, realnode.NODE_NAME), 90, "kubelet")
    wait_for("CoreDNS on the bridge", lambda: port_open(53, realnode.BRIDGE_IP), 30, "coredns")
    log(f"real node {realnode.NODE_NAME} Ready in {time.monotonic() - t0:.1f}s")


def node_ready(bins: Path, name: str) -> bool:
    proc = subprocess.run([str(bins / "kubectl"), "--kubeconfig", str(STATE / "kubeconfig"), "get", "node", name,
                           "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
                          capture_output=True, text=True)
    return proc.stdout.strip() == "True"


def audit_policy() -> Path:
    path = STATE / "audit-policy.yaml"
    path.write_text(AUDIT_POLICY)
    return path


def start_processes(bins: Path, ports: Ports, pki: Path, server: str, host: str) -> None:
    for port in ports.all():
        if port_open(port):
            raise ClusterError(f"port {port} is already taken on 127.0.0.1; free it or retry")
    start("etcd", [
        str(bins / "etcd"), "--name=default", f"--data-dir={STATE / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{ports.etcd_client}",
        f"--advertise-client-urls=http://127.0.0.1:{ports.etcd_client}",
        f"--listen-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
        f"--initial-cluster=default=http://127.0.0.1:{ports.etcd_peer}",
        "--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn",
    ])
    wait_for("etcd", lambda: port_open(ports.etcd_client), 30, "etcd")
    start("kube-apiserver", [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        # Loopback only, or the real node's bridge address: never the external interface. Pods reach it
        # through the `kubernetes` Service, whose endpoint is the advertised address.
        f"--bind-address={host}", f"--advertise-address={host}", f"--secure-port={ports.apiserver}",
        f"--endpoint-reconciler-type={'lease' if host != '127.0.0.1' else 'none'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        # Dial kubelets by address: a node's hostname would be looked up in the machine's resolver.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--enable-admission-plugins=NodeRestriction",
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        # Route to Services, not endpoints: the metrics-server Service is an ExternalName for this host.
        "--enable-aggregator-routing=false",
        f"--audit-policy-file={audit_policy()}", f"--audit-log-path={AUDIT_LOG}",
        "--audit-log-maxsize=200", "--audit-log-maxbackup=1", "--audit-log-format=json",
    ])
    wait_for("kube-apiserver /readyz", lambda: api_ready(server, pki), 60, "kube-apiserver")
    start("kube-controller-manager", [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={STATE / 'controller-manager.kubeconfig'}",
        f"--authentication-kubeconfig={STATE / 'controller-manager.kubeconfig'}",
        f"--authorization-kubeconfig={STATE / 'controller-manager.kubeconfig'}",
        "--bind-address=127.0.0.1", f"--secure-port={ports.controller_manager}",
        "--leader-elect=false", "--use-service-account-credentials=true",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--enable-hostpath-provisioner=true",
        # Test-cluster timings, so scaling tests take seconds, not minutes.
        "--horizontal-pod-autoscaler-sync-period=5s",
        "--horizontal-pod-autoscaler-downscale-stabilization=20s",
        "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
        "--concurrent-gc-syncs=30", "--kube-api-qps=200", "--kube-api-burst=400",
    ])
    start("kube-scheduler", [
        str(bins / "kube-scheduler"),
        f"--kubeconfig={STATE / 'scheduler.kubeconfig'}",
        f"--authentication-kubeconfig={STATE / 'scheduler.kubeconfig'}",
        f"--authorization-kubeconfig={STATE / 'scheduler.kubeconfig'}",
        "--bind-address=127.0.0.1", f"--secure-port={ports.scheduler}", "--leader-elect=false",
    ])
    stock = {p.name: p.read_text() for p in sorted((bins.parent / "kwok").glob("*.yaml"))}
    # Failing pods on demand, by image (hack/kwokstages.py): the KWOK tier tests fail-fast rollbacks.
    stock["pod-ready.yaml"] = kwokstages.narrow_pod_ready(stock["pod-ready.yaml"])
    for name in ("node-initialize.yaml", "node-heartbeat-with-lease.yaml"):
        stock[name] = kwokstages.fix_node_addresses(name, stock[name])
    for n, stage in enumerate(kwokstages.stages()):
        stock[f"appkeeper-{n}.yaml"] = stage
    for i, port in enumerate(ports.kwok):
        node = f"kwok-node-{i}"
        # The node-specific copy of KWOK's resource-metrics config, served where a kubelet serves it.
        metric = stock["metrics-resource.yaml"].replace("name: metrics-resource", f"name: {node}") \
            .replace('path: "/metrics/nodes/{nodeName}/metrics/resource"', 'path: "/metrics/resource"')
        docs = [
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n"
            "  enableCRDs: []\n  nodeLeaseDurationSeconds: 40\n  nodeLeaseParallelism: 2\n"
            "  nodePlayStageParallelism: 2\n  podPlayStageParallelism: 4\n  podsOnNodeSyncParallelism: 2\n",
            metric,
            *(text for name, text in stock.items() if name != "metrics-resource.yaml"),
        ]
        config = STATE / f"kwok-{i}.yaml"
        config.write_text("\n---\n".join(docs))
        start(f"kwok-{i}", [
            str(bins / "kwok"), f"--kubeconfig={STATE / 'kwok.kubeconfig'}", f"--config={config}",
            f"--manage-single-node={node}", f"--server-address=127.0.0.1:{port}", f"--node-port={port}",
            "--node-ip=127.0.0.1", f"--cidr=10.244.{i}.0/24",
        ])
    # metrics-server, registered through the aggregation layer. It reaches the "kubelets" (KWOK)
    # on the nodes' status ports; their serving certificates are KWOK's self-signed test ones.
    (STATE / "metrics-server-certs").mkdir()
    start("metrics-server", [
        str(bins / "metrics-server"), f"--kubeconfig={STATE / 'metrics-server.kubeconfig'}",
        f"--authentication-kubeconfig={STATE / 'metrics-server.kubeconfig'}",
        f"--authorization-kubeconfig={STATE / 'metrics-server.kubeconfig'}",
        "--bind-address=127.0.0.1", f"--secure-port={ports.metrics_server}",
        f"--cert-dir={STATE / 'metrics-server-certs'}",
        "--kubelet-use-node-status-port", "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-insecure-tls", "--metric-resolution=10s", "--kubelet-request-timeout=5s",
    ])


def nodes_ready(bins: Path) -> int:
    out = kubectl(bins, "get", "nodes", "-o", "json")
    ready = 0
    for node in json.loads(out)["items"]:
        conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        ready += conds.get("Ready") == "True"
    if ready < NODE_COUNT and not (STATE / "nodes-created").exists():
        kubectl(bins, "apply", "-f", "-", stdin="\n---\n".join(node_manifest(i) for i in range(NODE_COUNT)))
        (STATE / "nodes-created").touch()
    return ready


def node_manifest(i: int) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f"kwok-node-{i}", "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-node-{i}",
                                "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                "topology.kubernetes.io/zone": f"zone-{i % 3}"}},
        "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"}},
    })


def setup_cluster_objects(bins: Path, ports: Ports) -> None:
    # A default StorageClass served by the controller-manager's own hostPath provisioner:
    # claims are provisioned and bound by the real PV controller.
    kubectl(bins, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard",
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/host-path", "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }))
    # The aggregator dials an ExternalName Service's name: metrics-server runs on this host.
    kubectl(bins, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metrics-server", "namespace": "kube-system"},
         "spec": {"type": "ExternalName", "externalName": "localhost",
                  "ports": [{"name": "https", "port": ports.metrics_server}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": "v1beta1.metrics.k8s.io"},
         "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                  "groupPriorityMinimum": 100, "versionPriority": 100,
                  "service": {"name": "metrics-server", "namespace": "kube-system", "port": ports.metrics_server}}},
    ]}))
    # Namespaces get their default ServiceAccount from the controller-manager; wait for it
    # so the first Pod created does not race the ServiceAccount admission.
    wait_for("the default ServiceAccount", lambda: "default" in kubectl(
        bins, "get", "serviceaccounts", "-n", "default", "-o", "name"), 30)


def stop(name: str, pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGCONT)  # a component a chaos test froze must hear the SIGTERM
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        log(f"{name} (pid {pid}) ignored SIGTERM for 20s; killing it")
        os.killpg(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)


def down(keep_logs: bool = False) -> None:
    found = pids()
    if not found:
        log("no local cluster state to stop")
    stopped = []
    # The kubelet first (so it restarts nothing), then the pods through the CRI, then the node's
    # daemons; then the control plane, clients first, etcd last: the API server drains faster with
    # etcd still up.
    order = ["kubelet", "pods", "coredns", "kube-proxy", "containerd", *reversed(CONTROL_PLANE)]
    for name in order:
        if name == "pods":
            if real_node_on():
                realnode.stop_pods(bin_dir(), log)
            continue
        pid = found.get(name)
        if pid is None or not ours(name, pid):
            continue
        stopped.append(name)
        stop(name, pid)
    ports_file = STATE / "ports.json"
    # Only ports of processes we stopped count: after a reboot, others may hold them legitimately.
    if stopped and ports_file.exists():
        hosts = ["127.0.0.1", realnode.BRIDGE_IP] if real_node_on() else ["127.0.0.1"]
        taken = [p for p in json.loads(ports_file.read_text()) for h in hosts if port_open(p, h)]
        if taken:
            raise ClusterError(f"ports still listening after stop: {taken}")
    if real_node_on():
        realnode.restore_host(STATE, log)
    if stopped:
        log(f"stopped {', '.join(stopped)}")
    elif found:
        log(f"cleared stale state in {STATE} (none of its processes was running)")
    if STATE.exists() and not keep_logs:
        shutil.rmtree(STATE)


def print_env() -> None:
    bins = bin_dir()
    print(f"export KUBECONFIG={STATE / 'kubeconfig'}")
    print(f"export PATH={bins}:$PATH")


def main() -> int:
    # `localcluster.py env | head -1` (make demo's hint): a reader that stops early ends us quietly,
    # as it would any Unix tool, not with a BrokenPipeError traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "env", "build", "kubeconfig"])
    args = parser.parse_args()
    try:
        if args.command == "up":
            up()
            print_env()
        elif args.command == "down":
            down()
        elif args.command == "status":
            ok, msg = status()
            print(msg)
            return 0 if ok else 1
        elif args.command == "env":
            print_env()
        elif args.command == "kubeconfig":
            print(STATE / "kubeconfig")
        elif args.command == "build":
            print(build_binaries())
    except ClusterError as e:
        log(f"ERROR: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
