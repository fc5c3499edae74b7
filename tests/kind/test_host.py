"""The container engine kind runs on here (hack/kindhost.py), against the real thing: our own
dockerd starts a privileged container through hack/capshim.py, on the kind network, with the
guard in place and no resolver behind Docker's DNS; `down` leaves the host as it found it.
Run by CI after the teardown check (`.ci/run`); needs root."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))

import kindhost  # noqa: E402

IMAGE = "appkeeper.local/busybox:kindhost"


def host_state() -> dict[str, object]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout.split()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    procs = subprocess.run(["pgrep", "-af", str(kindhost.RUN)], capture_output=True, text=True).stdout
    return {"bridge": kindhost.BRIDGE in links, "mounts": [m for m in mounts if m.startswith(str(kindhost.RUN))],
            "guard": kindhost.GUARD_TABLE in tables, "processes": procs.strip(), "run": kindhost.RUN.exists(),
            "opt": kindhost.CONTAINERD_OPT.exists()}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.fail("the kind host needs root (CI runs as root)")
    before = host_state()
    kindhost.up()
    rootfs = tmp_path_factory.mktemp("busybox")
    (rootfs / "bin").mkdir()
    (rootfs / "bin" / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (rootfs / "bin" / "busybox").chmod(0o755)
    for applet in ("sh", "grep", "cat", "ip", "nslookup"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    archive = rootfs.parent / "busybox.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    kindhost.docker("import", str(archive), IMAGE)
    yield
    kindhost.down()
    after = host_state()
    assert after == {**before, "bridge": False, "guard": False, "mounts": [], "processes": "", "run": False}


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return kindhost.docker("run", "--rm", "--privileged", "--network", kindhost.NETWORK, IMAGE, *command, check=False)


def test_a_privileged_container_starts_without_what_the_host_cannot_grant(engine: None) -> None:
    out = run("grep", "CapBnd", "/proc/self/status")
    assert out.returncode == 0, out.stderr
    granted, host = int(out.stdout.split()[1], 16), host_bounding()
    assert granted & ~host == 0  # nothing the host cannot grant (CAP_SYS_RESOURCE here)...
    assert granted >> 21 & 1  # ...and all a privileged container has: CAP_SYS_ADMIN among them
    assert bin(granted).count("1") >= 30


def host_bounding() -> int:
    import capshim

    return int(capshim.host_bounding_set())


def test_containers_live_on_the_guarded_kind_network(engine: None) -> None:
    out = run("ip", "-4", "-o", "addr", "show", "eth0")
    assert " 10.250." in out.stdout, out.stdout + out.stderr
    rules = kindhost.guard_rules()
    assert f"ip saddr {kindhost.SUBNET}" in rules
    assert "drop" in rules
    argv = kindhost.dockerd_argv()
    for flag in ("--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none"):
        assert flag in argv


def test_names_outside_the_machine_are_answered_by_nothing(engine: None) -> None:
    """Docker's DNS forwards what it does not know to 127.0.0.1 inside the container: no answer."""
    out = run("nslookup", "appkeeper-test.invalid")
    assert out.returncode != 0
    assert kindhost.dockerd_argv()[kindhost.dockerd_argv().index("--dns") + 1] == "127.0.0.1"
