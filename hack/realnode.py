"""The local cluster's real node: containerd + runc (Debian's), the bridge CNI, a kubelet, kube-proxy
and CoreDNS, as processes on this machine, so pods really run.

localcluster.py drives it: `prepare_host` before the control plane starts (the API server listens
on the bridge's address, which must exist first), the `*_argv` builders to start the processes,
`stop_pods` and `restore_host` on the way down. Everything it changes on the host is recorded
before it changes it, and put back: mounts, cgroups, links, nftables tables, sysctls, files.

Network safety: pod (10.244.0.0/16) and Service (10.96.0.0/16) addresses never leave the machine.
A guard table drops, in POSTROUTING, anything to those ranges or from the pod range that would leave
by an interface other than the cluster's bridge or loopback. Nothing listens on the external
interface: the API server, kubelet and CoreDNS bind the bridge address, the rest loopback. Pods with
`dnsPolicy: Default` get a resolver that answers nothing (127.0.0.1 in their own network namespace).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

NODE_NAME = "realnode-0"
BRIDGE = "akbr0"
BRIDGE_IP = "10.244.100.1"
POD_SUBNET = "10.244.100.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
LABEL = "appkeeper.dev/real-node"  # label and NoSchedule taint: only pods that ask land here
PAUSE_IMAGE = "appkeeper.local/pause:3.10"
GUARD_TABLE = "appkeeper_guard"
CGROUP_PARENT = "appkeeper"  # kubelet's cgroupRoot: every pod's cgroup lives under it
# containerd's state and socket, the kubelet's root: a short path (unix sockets live under it).
RUN_DIR = Path("/run/appkeeper-realnode")
PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns")
# Debian packages the real node needs, by the command that shows each is installed.
PACKAGES = {"containerd": "containerd", "runc": "runc", "/usr/lib/cni/bridge": "containernetworking-plugins",
            "iptables": "iptables", "nft": "nftables", "conntrack": "conntrack", "debootstrap": "debootstrap",
            "promtool": "prometheus",  # not the node's: the chart's alert tests and the e2e Prometheus
            "/bin/busybox": "busybox-static", "cc": "gcc", "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev"}
# Host settings the kubelet, the bridge plugin and kube-proxy change: saved before, restored after.
SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
           "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward",
           "net.ipv6.conf.all.forwarding", "net.bridge.bridge-nf-call-iptables",
           "net.bridge.bridge-nf-call-ip6tables", "net.ipv4.conf.all.route_localnet",
           "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_established",
           "net.netfilter.nf_conntrack_tcp_timeout_close_wait", "net.netfilter.nf_conntrack_tcp_be_liberal")
# Paths the kubelet or the CNI plugins create outside the state folder, whatever they are told.
HOST_PATHS = (Path("/var/log/pods"), Path("/var/log/containers"), Path("/var/lib/cni"), Path("/run/netns"),
              Path("/var/run/netns"), Path("/etc/cni"), Path("/opt/cni"))


class NodeError(RuntimeError):
    pass


def containerd_socket() -> Path:
    return RUN_DIR / "containerd.sock"


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, input=stdin)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def missing_packages() -> list[str]:
    return sorted({pkg for probe, pkg in PACKAGES.items()
                   if not (Path(probe).exists() if probe.startswith("/") else shutil.which(probe))})


def install_packages(log: object) -> None:
    """apt-get installs what is missing (a fresh machine); quiet when all is there."""
    missing = missing_packages()
    if not missing:
        return
    log(f"installing Debian packages for the real node: {' '.join(missing)}")  # type: ignore[operator]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in (1, 2):
        if attempt == 2 or not Path("/var/lib/apt/lists").glob("*Packages*"):
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        proc = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env,
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return
    raise NodeError(f"apt-get install {' '.join(missing)} failed: {proc.stderr.strip()[-1500:]}")


def unavailable_reason() -> str | None:
    """Why this machine cannot run the real node, or None when it can."""
    if os.environ.get("APPKEEPER_REAL_NODE", "1") == "0":
        return "APPKEEPER_REAL_NODE=0"
    if os.geteuid() != 0:
        return "not root: the real node needs root (network namespaces, mounts, cgroups)"
    if not shutil.which("apt-get") and missing_packages():
        return f"missing {', '.join(missing_packages())} and no apt-get to install them"
    if not Path("/sys/fs/cgroup/memory").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "no usable cgroup hierarchy"
    return None


# --- what the host looks like, so teardown can put it back and a test can prove it did ---------------

VOLATILE_SYSCTL = re.compile(
    r"^(kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|fs\.(dentry-state|file-nr|inode-|quota)|"
    r"net\.netfilter\.nf_conntrack_count|net\.ipv[46]\.(conf|neigh)\.(veth|akbr|cni)|kernel\.sched_domain|"
    r"net\.ipv4\.tcp_mem|net\.ipv4\.udp_mem|vm\.stat|kernel\.tainted|fs\.aio-nr|kernel\.perf|"
    r"net\.netfilter\.nf_conntrack_(buckets|expect_max))")


def host_snapshot() -> dict[str, list[str]]:
    """What the real node could leave behind: mounts, links, nftables tables, our cgroups, the
    processes of its binaries, the sysctls, and the host paths the kubelet and CNI create."""
    mounts = sorted({line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()})
    links = sorted(re.sub(r"@.*", "", line.split(":")[1].strip())
                   for line in sh("ip", "-o", "link", "show").splitlines())
    tables = sorted(sh("nft", "list", "tables", check=False).splitlines()) if shutil.which("nft") else []
    cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}"))
    names = {"containerd", "containerd-shim", "containerd-shim-runc-v2", "kubelet", "kube-proxy", "coredns", "pause"}
    procs = []
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            comm = stat.read_text().strip()
            # A zombie has exited: it waits for init (here a lazy reaper) to collect it, not a leftover.
            zombie = (stat.parent / "stat").read_text().rpartition(")")[2].split()[0] == "Z"
        except (OSError, IndexError):
            continue
        if comm in names and not zombie:
            procs.append(comm)
    sysctls = []
    for line in sh("sysctl", "-a", check=False).splitlines():
        key = line.split(" = ")[0]
        if not VOLATILE_SYSCTL.match(key):
            sysctls.append(line)
    paths = sorted(f"{p}: {sorted(os.listdir(p)) if p.is_dir() else 'file'}" for p in HOST_PATHS if p.exists())
    return {"mounts": mounts, "links": links, "nft_tables": tables, "cgroups": cgroups, "processes": sorted(procs),
            "sysctls": sysctls, "paths": paths}


def snapshot_diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    out = {}
    for key in before.keys() | after.keys():
        b, a = set(before.get(key, [])), set(after.get(key, []))
        if a != b:
            out[key] = {"added": sorted(a - b), "removed": sorted(b - a)}
    return out


# --- bringing the host up --------------------------------------------------------------------------

def prepare_host(state: Path, log: object) -> None:
    """Records what teardown restores, then creates the bridge and the network guards."""
    node = state / "realnode"
    node.mkdir(parents=True, exist_ok=True)
    saved = {k: sh("sysctl", "-n", k, check=False).strip() for k in SYSCTLS}
    (node / "host-before.json").write_text(json.dumps({
        "sysctls": {k: v for k, v in saved.items() if v},
        "nft_tables": sh("nft", "list", "tables").splitlines(),
        "links": host_snapshot()["links"],
        "paths": [str(p) for p in HOST_PATHS if p.exists()],
    }, indent=1))
    if BRIDGE in host_snapshot()["links"]:
        raise NodeError(f"a link named {BRIDGE} already exists: another cluster runs, or a teardown failed "
                        f"(`ip link del {BRIDGE}` if nothing uses it)")
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    install_guards()
    for ctl in Path("/sys/fs/cgroup").iterdir():
        if ctl.is_dir() and not ctl.is_symlink() and (ctl / "cgroup.procs").exists():
            (ctl / CGROUP_PARENT).mkdir(exist_ok=True)
            for f in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset child starts empty
                if (ctl / f).exists():
                    (ctl / CGROUP_PARENT / f).write_text((ctl / f).read_text())
    log(f"bridge {BRIDGE} {BRIDGE_IP}/24 and network guards in place")  # type: ignore[operator]


def install_guards() -> None:
    keep = f'oifname {{ "lo", "{BRIDGE}" }}'
    sh("nft", "-f", "-", stdin=f"""
table inet {GUARD_TABLE} {{
  chain postrouting {{
    type filter hook postrouting priority -300; policy accept;
    ip daddr {{ {CLUSTER_CIDR}, {SERVICE_CIDR} }} {keep} accept
    ip daddr {{ {CLUSTER_CIDR}, {SERVICE_CIDR} }} counter drop comment "pod/service range off the machine"
    ip saddr {CLUSTER_CIDR} {keep} accept
    ip saddr {CLUSTER_CIDR} counter drop comment "pod source off the machine"
  }}
}}
""")


def guard_rules() -> str:
    return sh("nft", "list", "table", "inet", GUARD_TABLE, check=False)


def make_certs(leaf: object, pki: Path) -> None:
    for name, subject in (("kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}"),
                          ("kube-proxy", "/CN=system:kube-proxy"),
                          ("coredns", "/O=system:masters/CN=coredns")):
        leaf(name, subject, "ca", pki, "extendedKeyUsage=clientAuth")  # type: ignore[operator]


def write_configs(state: Path, pki: Path, containerd_root: Path, ports: dict[str, int]) -> None:
    node = state / "realnode"
    (node / "cni").mkdir(parents=True, exist_ok=True)
    (node / "resolv.conf").write_text(
        "# dnsPolicy: Default resolves through nothing: pods never ask the machine's resolver.\n"
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    (node / "containerd.toml").write_text(f"""version = 2
root = "{containerd_root}"
state = "{RUN_DIR}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{containerd_socket()}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{containerd_root}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This machine's root lacks CAP_SYS_RESOURCE: a negative oom_score_adj cannot be set.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{node / 'cni'}"
""")
    (node / "cni" / "10-appkeeper.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "appkeeper",
        "plugins": [{
            "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": str(node / "ipam"),
                     "ranges": [[{"subnet": POD_SUBNET, "gateway": BRIDGE_IP}]],
                     "routes": [{"dst": "0.0.0.0/0"}]},
        }],
    }, indent=1))
    (node / "kubelet.yaml").write_text(json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": BRIDGE_IP, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": ports["kubelet_healthz"],
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        # cgroups v1 here, and no systemd as PID 1.
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "cgroupRoot": f"/{CGROUP_PARENT}",
        "clusterDNS": [BRIDGE_IP], "clusterDomain": "cluster.local", "resolvConf": str(node / "resolv.conf"),
        "containerRuntimeEndpoint": f"unix://{containerd_socket()}",
        "podLogsDir": str(node / "pod-logs"),
        # Images imported locally cannot be pulled back: never garbage-collect them.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "failSwapOn": False, "maxPods": 40, "serializeImagePulls": False,
        "registerWithTaints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}],
        "rotateCertificates": False, "serverTLSBootstrap": False,
        "syncFrequency": "10s", "nodeStatusUpdateFrequency": "5s", "fileCheckFrequency": "20s",
        "shutdownGracePeriod": "0s",
        # Test-node timing (KEP-5593, beta in 1.35): a crash-looping container restarts every 5 s
        # at most, not 10 s doubling to 5 min, so restart-count thresholds are met in seconds.
        "crashLoopBackOff": {"maxContainerRestartPeriod": "5s"},
    }, indent=1))
    (node / "kube-proxy.yaml").write_text(json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(state / "kube-proxy.kubeconfig")},
        "mode": "nftables", "clusterCIDR": CLUSTER_CIDR, "hostnameOverride": NODE_NAME,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{ports['kube_proxy_healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['kube_proxy_metrics']}",
        # NodePorts answer on the bridge address only, never on the external interface.
        "nodePortAddresses": [f"{BRIDGE_IP}/32"],
        # Leave the machine's conntrack sysctls alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }, indent=1))
    (node / "Corefile").write_text(f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {BRIDGE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {state / 'coredns.kubeconfig'} appkeeper-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
.:53 {{
    bind {BRIDGE_IP}
    # No upstream: names outside the cluster do not exist here.
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
""")


def containerd_argv(state: Path) -> list[str]:
    return ["containerd", "--config", str(state / "realnode" / "containerd.toml"), "--log-level", "warn"]


def kubelet_argv(bins: Path, state: Path) -> list[str]:
    return [str(bins / "kubelet"), f"--config={state / 'realnode' / 'kubelet.yaml'}",
            f"--kubeconfig={state / 'kubelet.kubeconfig'}", f"--root-dir={RUN_DIR / 'kubelet'}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={BRIDGE_IP}",
            f"--node-labels={LABEL}=true", "--v=1"]


def kube_proxy_argv(bins: Path, state: Path) -> list[str]:
    return [str(bins / "kube-proxy"), f"--config={state / 'realnode' / 'kube-proxy.yaml'}", "--v=1"]


def coredns_argv(bins: Path, state: Path) -> list[str]:
    return [str(bins / "coredns"), "-conf", str(state / "realnode" / "Corefile")]


def crictl(bins: Path, *args: str, check: bool = True) -> str:
    return sh(str(bins / "crictl"), "--runtime-endpoint", f"unix://{containerd_socket()}", "--timeout", "20s",
              *args, check=check)


def wait_socket(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not containerd_socket().exists():
        if time.monotonic() > deadline:
            raise NodeError(f"containerd did not create {containerd_socket()} within {timeout:.0f}s")
        time.sleep(0.1)


# --- and down again --------------------------------------------------------------------------------

def stop_pods(bins: Path, log: object) -> None:
    """With the kubelet stopped: every pod sandbox stopped (CNI DEL: veth and address released) and
    removed (its mounts gone), through the CRI, as the kubelet itself would."""
    if not containerd_socket().exists():
        return
    out = crictl(bins, "rmp", "--all", "--force", check=False)
    n = len([line for line in out.splitlines() if line.startswith("Removed sandbox")])
    if n:
        log(f"removed {n} pod sandbox(es) on {NODE_NAME}")  # type: ignore[operator]


def restore_host(state: Path, log: object) -> list[str]:
    """After every process stopped: puts back what prepare_host recorded. Returns what it did."""
    before_file = state / "realnode" / "host-before.json"
    before = json.loads(before_file.read_text()) if before_file.exists() else {}
    done: list[str] = []
    done += kill_leftovers()
    done += unmount_ours(state)
    done += remove_cgroups()
    for link in set(host_snapshot()["links"]) - set(before.get("links", [])):
        if link == BRIDGE or (link.startswith("veth") and not foreign(link)):
            sh("ip", "link", "del", link, check=False)
            done.append(f"link {link}")
    for table in set(sh("nft", "list", "tables", check=False).splitlines()) - set(before.get("nft_tables", [])):
        family_name = table.split()[1:]
        if family_name[-1] in FOREIGN_TABLES:
            continue
        sh("nft", "delete", "table", *family_name, check=False)
        done.append(f"nft {table}")
    for key, value in before.get("sysctls", {}).items():
        if sh("sysctl", "-n", key, check=False).strip() != value:
            sh("sysctl", "-q", "-w", f"{key}={value}", check=False)
            done.append(f"sysctl {key}={value}")
    existed = set(before.get("paths", []))
    for path in HOST_PATHS:
        if path.exists() and str(path) not in existed and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path}")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    if done:
        log(f"host restored: {', '.join(done)}")  # type: ignore[operator]
    return done


# What the kind host (hack/kindhost.py) makes while the local cluster may be up: not ours to remove.
FOREIGN_TABLES = {"appkeeper_kind_guard"}
FOREIGN_BRIDGES = {"akkind0"}


def foreign(link: str) -> bool:
    """A container's veth on the kind host's bridge (Docker's, not the kubelet's)."""
    shown = sh("ip", "-o", "link", "show", "dev", link, check=False)
    return any(f"master {bridge} " in shown for bridge in FOREIGN_BRIDGES)


def kill_leftovers() -> list[str]:
    """Shims and container processes that outlived containerd (an unclean stop)."""
    killed = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(RUN_DIR.as_posix().encode() in a for a in argv[1:]):
            pid = int(cmdline.parent.name)
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(f"pid {pid}")
            except ProcessLookupError:
                pass
    for procs in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}/**/cgroup.procs"):
        for pid in procs.read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(f"pid {pid}")
            except ProcessLookupError:
                pass
    if killed:
        time.sleep(0.5)
    return killed


def unmount_ours(state: Path) -> list[str]:
    prefixes = (str(state), str(RUN_DIR), "/run/netns/cni-", "/var/run/netns/cni-")
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    done = []
    for point in sorted((p for p in points if p.startswith(prefixes)), key=len, reverse=True):
        if subprocess.run(["umount", "-l", point], capture_output=True).returncode == 0:
            done.append(f"umount {point}")
    return done


def remove_cgroups() -> list[str]:
    done = []
    for top in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}"):
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            d.rmdir()
        top.rmdir()
        done.append(f"cgroup {top}")
    return done
