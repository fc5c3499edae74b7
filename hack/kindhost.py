#!/usr/bin/env python3
"""A Docker engine for kind on this machine, started and stopped by the project (issue 22).

    python3 hack/kindhost.py up      # install Debian's docker.io if missing, start our dockerd
    python3 hack/kindhost.py env     # DOCKER_HOST for the docker CLI and kind
    python3 hack/kindhost.py down    # stop it; the host as it was

Our own dockerd, not the system's: its own data root (~/.cache/appkeeper/docker), exec root and
socket under /run/appkeeper-docker, and on its own terms:
- no iptables rules of its own, no IP forwarding, no masquerading, no default bridge: containers
  reach nothing but the machine itself;
- `--dns 127.0.0.1`: Docker's embedded DNS forwards names it does not know to an address inside
  each container's own network namespace, where nothing answers; never to the machine's resolver;
- the network kind puts its nodes on, made here first (kind uses one named "kind" that exists):
  bridge akkind0, 10.250.0.0/16; a guard table drops anything from that range that would leave
  by an interface other than that bridge or loopback;
- runtime `capshim` (hack/capshim.py) by default: runc, minus the capabilities this host's
  bounding set lacks, so that `--privileged` (kind's nodes) starts.
The package's own service is never started (a policy-rc.d denies it during the install), so the
system dockerd with its NAT rules never runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("APPKEEPER_CACHE", Path.home() / ".cache" / "appkeeper"))
DATA_ROOT = CACHE / "docker"
RUN = Path("/run/appkeeper-docker")
SOCKET = RUN / "docker.sock"
PIDFILE = RUN / "dockerd.pid"
LOG = CACHE / "docker.log"
POLICY_RC = Path("/usr/sbin/policy-rc.d")
CAPSHIM = ROOT / "hack" / "capshim.py"
NETWORK, BRIDGE, SUBNET = "kind", "akkind0", "10.250.0.0/16"  # kind uses a network named "kind" if one exists
# The kind cluster's pod and Service ranges (hack/kind/config.yaml): the host routes them to the node
# (hack/kindcluster.py), and the guard keeps them on the machine like the network's own range.
POD_SUBNET, SERVICE_SUBNET = "10.251.0.0/16", "10.252.0.0/16"
GUARD_TABLE = "appkeeper_kind_guard"
# dockerd's own containerd makes this (its "opt" plugin's folder); down removes it if up made it.
CONTAINERD_OPT = Path("/opt/containerd")
MADE_OPT = CACHE / "docker-made-opt"


def log(msg: str) -> None:
    print(f"[kindhost {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dockerd_path() -> str | None:
    return shutil.which("dockerd")


def install() -> None:
    """Debian's docker.io, its service kept from starting."""
    if dockerd_path():
        return
    had_policy = POLICY_RC.exists()
    if not had_policy:
        POLICY_RC.write_text("#!/bin/sh\n# appkeeper: no service starts while docker.io installs\nexit 101\n")
        POLICY_RC.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for attempt in (1, 2):  # a fresh machine may have no package lists yet
            if attempt == 2:
                subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            proc = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"],
                                  env=env, capture_output=True, text=True)
            if proc.returncode == 0:
                break
        else:
            raise SystemExit(f"apt-get install docker.io failed: {proc.stderr.strip()[-1500:]}")
    finally:
        if not had_policy:
            POLICY_RC.unlink()


def dockerd_argv() -> list[str]:
    path = dockerd_path()
    if path is None:
        raise SystemExit("dockerd is not installed")
    return [path, "--data-root", str(DATA_ROOT), "--exec-root", str(RUN / "exec"), "--pidfile", str(PIDFILE),
            "--host", f"unix://{SOCKET}", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
            "--ip-masq=false", "--bridge=none", "--dns", "127.0.0.1",
            "--add-runtime", f"capshim={CAPSHIM}", "--default-runtime", "capshim"]


def running() -> int | None:
    try:
        pid = int(PIDFILE.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def up() -> None:
    install()
    if running():
        log(f"dockerd already running (pid {running()})")
        return
    RUN.mkdir(parents=True, exist_ok=True)
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    if not CONTAINERD_OPT.exists():
        MADE_OPT.touch()
    CAPSHIM.chmod(0o755)
    with LOG.open("ab") as out:
        subprocess.Popen(dockerd_argv(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while docker("info", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"dockerd did not answer in 60 s; see {LOG}")
        time.sleep(0.5)
    install_guard()
    if docker("network", "inspect", NETWORK, check=False).returncode != 0:
        docker("network", "create", "--driver", "bridge", "--subnet", SUBNET, "--opt",
               f"com.docker.network.bridge.name={BRIDGE}", NETWORK)
    log(f"dockerd up (socket {SOCKET}, data {DATA_ROOT}, log {LOG}); network {NETWORK} on {BRIDGE} {SUBNET}")


def install_guard() -> None:
    keep = f'oifname {{ "lo", "{BRIDGE}" }}'
    rules = "".join(
        f'\n    ip {way} {cidr} {keep} accept\n    ip {way} {cidr} counter drop comment "kind: {what} stay here"'
        for cidr, what in ((SUBNET, "nodes"), (POD_SUBNET, "pods"), (SERVICE_SUBNET, "Services"))
        for way in ("saddr", "daddr"))
    # Made anew each time (`table` then `delete table`: no error if it was not there).
    subprocess.run(["nft", "-f", "-"], check=True, text=True, input=f"""
table inet {GUARD_TABLE}
delete table inet {GUARD_TABLE}
table inet {GUARD_TABLE} {{
  chain postrouting {{
    type filter hook postrouting priority -300; policy accept;{rules}
  }}
}}
""")


def guard_rules() -> str:
    return subprocess.run(["nft", "list", "table", "inet", GUARD_TABLE], capture_output=True, text=True).stdout


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "--host", f"unix://{SOCKET}", *args], capture_output=True, text=True,
                          check=check)


def down() -> None:
    pid = running()
    if pid is not None:
        for cid in docker("ps", "-aq", check=False).stdout.split():
            docker("rm", "-f", cid, check=False)
        docker("network", "rm", NETWORK, check=False)
        wait_containers_gone()
        engine = engine_processes()  # now, while their command lines are readable (a zombie's is not)
        os.kill(pid, signal.SIGTERM)
        if not gone(pid, 30):
            os.kill(pid, signal.SIGKILL)
            gone(pid, 10)
        # Its containerd and the containers' shims exit a moment after it, and are reaped by init.
        for left in engine:
            if not gone(left, 10):
                with contextlib.suppress(OSError):
                    os.kill(left, signal.SIGKILL)
        log("dockerd stopped")
    left = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout.split()
    for target in sorted((t for t in left if t.startswith((str(RUN), str(DATA_ROOT)))), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False)
    shutil.rmtree(RUN, ignore_errors=True)
    subprocess.run(["nft", "delete", "table", "inet", GUARD_TABLE], capture_output=True, check=False)
    if MADE_OPT.exists() and running() is None:
        shutil.rmtree(CONTAINERD_OPT, ignore_errors=True)
        MADE_OPT.unlink()


def gone(pid: int, timeout: float) -> bool:
    """Waits until `pid` has exited and been reaped (its pidfile goes a moment before it exits). A
    dockerd this process started (`up` then `down` in one test run) is its child: reaped here, it
    leaves no zombie behind; another's is reaped by init."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False


def processes_with(file: str, mark: bytes) -> list[int]:
    """The pids whose /proc/<pid>/<file> holds `mark` (this process left out)."""
    found = []
    for path in Path("/proc").glob(f"[0-9]*/{file}"):
        try:
            if mark in path.read_bytes():
                found.append(int(path.parent.name))
        except (OSError, ValueError):
            continue
    return [pid for pid in found if pid != os.getpid()]


def engine_processes() -> list[int]:
    """dockerd's containerd and the shims: their command lines name our exec root."""
    return processes_with("cmdline", str(RUN).encode())


def container_processes() -> list[int]:
    """Processes still in a container's cgroup (Docker's cgroup parent is /docker)."""
    return processes_with("cgroup", b":/docker/")


def wait_containers_gone(timeout: float = 30) -> None:
    """A removed container's processes (a kind node's systemd, kubelet, pods) die a moment after
    `docker rm` returns: down returns once they have."""
    deadline = time.monotonic() + timeout
    while container_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    if left := container_processes():
        log(f"{len(left)} container processes outlived their containers: killing them")
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "up"
    if what == "up":
        up()
    elif what == "down":
        down()
    elif what == "env":
        print(f"export DOCKER_HOST=unix://{SOCKET}")
    elif what == "argv":
        print(json.dumps(dockerd_argv()))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
