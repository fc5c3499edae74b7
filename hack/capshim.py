#!/usr/bin/env python3
"""runc, for a container engine on a host whose bounding set lacks some capabilities.

A privileged container's OCI spec asks for every capability; where root's bounding set lacks one
(CAP_SYS_RESOURCE on these machines), runc fails with `unable to apply caps: operation not
permitted`. Registered with the engine as its runtime (dockerd `--add-runtime`), this removes from
the spec only the capabilities the host cannot grant, then execs runc with the same arguments:
in the bundle's config.json on `create`/`run`, and in the process file on `exec --process FILE`
(kind drives its nodes with `docker exec`). Nothing else in the spec changes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

RUNC = os.environ.get("CAPSHIM_RUNC", "/usr/sbin/runc")
# Linux capability numbers (include/uapi/linux/capability.h), in order.
CAPS = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
# runc's global flags that take a value (the subcommand is the first word that is not one of these).
VALUED = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def grantable(capbnd: int) -> set[str]:
    """The capabilities in a bounding set (the CapBnd mask of /proc/self/status)."""
    return {f"CAP_{name}" for bit, name in enumerate(CAPS) if capbnd >> bit & 1}


def host_bounding_set(status: str | None = None) -> int:
    text = status if status is not None else Path("/proc/self/status").read_text()
    line = next(line for line in text.splitlines() if line.startswith("CapBnd:"))
    return int(line.split()[1], 16)


def limit(process: dict[str, Any], allowed: set[str]) -> list[str]:
    """Removes from `process`' capability sets what is not `allowed`; returns what was removed."""
    removed: set[str] = set()
    caps = process.get("capabilities") or {}
    for name in SETS:
        if isinstance(caps.get(name), list):
            removed |= {c for c in caps[name] if c not in allowed}
            caps[name] = [c for c in caps[name] if c in allowed]
    return sorted(removed)


def command(argv: list[str]) -> tuple[str | None, list[str]]:
    """runc's subcommand and the arguments after it."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in VALUED:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return arg, argv[i + 1:]
    return None, []


def option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def rewrite(path: Path, allowed: set[str], key: str | None) -> None:
    spec = json.loads(path.read_text())
    target = spec.get(key) if key else spec
    if isinstance(target, dict) and limit(target, allowed):
        path.write_text(json.dumps(spec))


def main(argv: list[str]) -> int:
    sub, rest = command(argv)
    allowed = grantable(host_bounding_set())
    if sub in ("create", "run"):
        bundle = Path(option(rest, "--bundle", "-b") or ".")
        if (bundle / "config.json").exists():
            rewrite(bundle / "config.json", allowed, "process")
    elif sub == "exec":
        process = option(rest, "--process", "-p")
        if process:
            rewrite(Path(process), allowed, None)
    os.execv(RUNC, [RUNC, *argv])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
