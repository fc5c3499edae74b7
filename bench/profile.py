#!/usr/bin/env python3
"""Where the operator's CPU goes during a burst: py-spy (`record --gil`) on `appkeeper run` while
N Apps are created, then the top frames by self and inclusive share.

    .venv/bin/pip install py-spy && .venv/bin/python bench/profile.py --apps 500
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.e2e.conftest import start_operator, stop_operator  # noqa: E402

import compare  # noqa: E402
from appkeeper.kube import Kube, load_configuration  # noqa: E402


def frame(f: str) -> str:
    """`function (file:line)` without the line: one entry per function."""
    name, _, where = f.partition(" (")
    return f"{name} ({where.split(':')[0]})" if where else name


def top(raw: Path, n: int = 25) -> None:
    own, incl, total = Counter[str](), Counter[str](), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples, frames = int(count), stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for f in {frame(f) for f in frames}:
            incl[f] += samples
    print(f"{total} samples\n--- self")
    for f, c in own.most_common(n):
        print(f"{100 * c / total:5.1f}% {f[:140]}")
    print("--- inclusive")
    for f, c in incl.most_common(2 * n):
        print(f"{100 * c / total:5.1f}% {f[:140]}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=500)
    ap.add_argument("--out", default="/tmp/appkeeper-profile.txt")
    args = ap.parse_args()
    kube = Kube(load_configuration(), pool_size=40)
    compare.install_crds(kube)
    ns = f"prof-{uuid.uuid4().hex[:4]}"
    kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    tmp = Path(f"/tmp/appkeeper-{ns}")
    tmp.mkdir()
    op = start_operator(tmp, f"--namespace={ns}", "--log-level=warning", "--resync-seconds=3600")
    try:
        seen = [compare.Watcher(kube, "apps/v1", "Deployment", ns), compare.Watcher(kube, "v1", "Service", ns)]
        time.sleep(1)
        spy = subprocess.Popen([str(ROOT / ".venv" / "bin" / "py-spy"), "record", "-p", str(op.proc.pid), "--gil",
                                "-r", "200", "-f", "raw", "-o", args.out, "-d", "600"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        cpu0, t0 = compare.cpu_seconds(op.proc.pid), time.monotonic()
        compare.create_apps(kube, ns, args.apps)
        done = max(s.wait_names(args.apps, 600) for s in seen)
        time.sleep(3)
        print(f"{args.apps} Apps to children in {done - t0:.1f} s, "
              f"{(compare.cpu_seconds(op.proc.pid) - cpu0) * 1000 / args.apps:.1f} ms CPU per App, "
              f"RSS {compare.rss_mib(op.proc.pid):.0f} MiB")
        spy.send_signal(2)
        spy.wait(30)
    finally:
        stop_operator(op)
        compare.delete_namespace(kube, ns)
    top(Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
