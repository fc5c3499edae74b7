#!/usr/bin/env python3
"""Where appkeeper's memory goes after a burst: a tracemalloc heap profile of `appkeeper run`.

    .venv/bin/python bench/memprofile.py --apps 1000         # writes bench/memprofile-1000.json

The driver starts the operator in a child process (this file with --serve) that traces every
allocation (tracemalloc, 12 frames), creates N Apps as bench/compare.py does (0 replicas, one
port), waits until its own watch has seen every Deployment and Service, waits for the status
patches to settle, and then asks for a snapshot. The report: RSS, what tracemalloc holds now and
at its peak, and the biggest holders grouped by source line and by the first frame outside the
standard library. Tracing slows the operator several times; the figures are of memory, not speed.
"""

from __future__ import annotations

import argparse
import json
import linecache
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "operator")]

from tests.e2e.conftest import free_port  # noqa: E402

from appkeeper.kube import Kube, load_configuration  # noqa: E402
from compare import ROOT, create_apps, delete_namespace, install_crds, measure_burst, rss_mib  # noqa: E402

STDLIB = os.path.dirname(os.__file__)


def owner_frame(trace: tracemalloc.Traceback) -> str:
    """The innermost frame that is not the standard library: who asked for the memory."""
    for frame in reversed(trace):  # tracemalloc lists the most recent call last
        if not frame.filename.startswith(STDLIB):
            return f"{frame.filename.split('site-packages/')[-1].split('/operator/')[-1]}:{frame.lineno}"
    return "stdlib"


def report(snapshot: tracemalloc.Snapshot) -> dict[str, Any]:
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    by_line = snapshot.statistics("lineno")[:25]
    owners: dict[str, int] = {}
    for stat in snapshot.statistics("traceback"):
        key = owner_frame(stat.traceback)
        owners[key] = owners.get(key, 0) + stat.size
    by_package: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        package = name.split("site-packages/")[1].split("/")[0] if "site-packages/" in name else \
            "appkeeper" if "/appkeeper/" in name else "stdlib" if name.startswith(STDLIB) else name
        by_package[package] = by_package.get(package, 0) + stat.size
    current, peak = tracemalloc.get_traced_memory()
    mib = 1024 * 1024
    return {
        "rss_mib": round(rss_mib(os.getpid()), 1),
        "traced_mib": round(current / mib, 1), "traced_peak_mib": round(peak / mib, 1),
        "by_package_mib": {k: round(v / mib, 2) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]},
        "by_owner_mib": {k: round(v / mib, 2) for k, v in sorted(owners.items(), key=lambda kv: -kv[1])[:25]},
        "by_line": [{"where": f"{s.traceback[0].filename.split('site-packages/')[-1]}:{s.traceback[0].lineno}",
                     "code": linecache.getline(s.traceback[0].filename, s.traceback[0].lineno).strip()[:100],
                     "mib": round(s.size / mib, 2), "blocks": s.count} for s in by_line],
    }


def serve(namespace: str, out: Path, trigger: Path, metrics_port: int, health_port: int) -> int:
    tracemalloc.start(12)

    def wait_and_snapshot() -> None:
        while not trigger.exists():
            time.sleep(0.5)
        out.write_text(json.dumps(report(tracemalloc.take_snapshot()), indent=2) + "\n")

    threading.Thread(target=wait_and_snapshot, daemon=True).start()
    from appkeeper import cli

    return cli.main(["run", f"--namespace={namespace}", "--log-level=warning", "--resync-seconds=3600",
                     f"--metrics-port={metrics_port}", f"--health-port={health_port}", "--bind-address=127.0.0.1"])


def drive(n: int, out: Path) -> dict[str, Any]:
    kube = Kube(load_configuration(), pool_size=40)
    install_crds(kube)
    ns = f"mem-{uuid.uuid4().hex[:6]}"
    kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    tmp = Path(f"/tmp/appkeeper-mem-{uuid.uuid4().hex[:6]}")
    tmp.mkdir()
    metrics_port, health_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", ns, str(tmp / "report.json"), str(tmp / "go"),
                             str(metrics_port), str(health_port)], stdout=(tmp / "operator.log").open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/readyz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp / "operator.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        burst = measure_burst(kube, ns, n, [proc.pid], lambda: create_apps(kube, ns, n), timeout=3600)
        (tmp / "go").touch()
        while not (tmp / "report.json").exists():
            time.sleep(0.5)
        time.sleep(0.5)
        result: dict[str, Any] = {"apps": n, "rss_mib_idle": burst["rss_mib_before"][0],
                                  **json.loads((tmp / "report.json").read_text())}
        out.write_text(json.dumps(result, indent=2) + "\n")
        return result
    finally:
        proc.terminate()
        proc.wait(30)
        delete_namespace(kube, ns)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=1000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--serve", nargs=5, metavar=("NS", "OUT", "TRIGGER", "METRICS", "HEALTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        ns, out, trigger, metrics_port, health_port = args.serve
        return serve(ns, Path(out), Path(trigger), int(metrics_port), int(health_port))
    result = drive(args.apps, Path(args.out or ROOT / "bench" / f"memprofile-{args.apps}.json"))
    print(json.dumps({k: v for k, v in result.items() if k != "by_line"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
