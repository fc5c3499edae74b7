#!/usr/bin/env python3
"""Sharding on this machine: how throughput and memory per replica change with 1, 2 and 3 replicas.

    .venv/bin/python bench/shards.py --apps 1000 --runs 3          # make bench-shards

Each phase gets a fresh namespace and R replicas of `appkeeper run --namespace NS --leader-elect
--shards 6`; once the six shard Leases are shared out (each replica at most ceil(6 / R)), the
benchmark creates N Apps (as bench/compare.py: nginx:1.27, 0 replicas, one port) and times until a
watch of its own has seen every Deployment and Service. Per phase: seconds, the replicas' CPU
summed per App, requests per App, and each replica's RSS. The order of R is rotated from run to
run. Writes bench/shards.json; bench/results.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "operator")]

from tests.e2e.conftest import Operator, start_operator, stop_operator  # noqa: E402

from appkeeper.kube import Kube, load_configuration  # noqa: E402
from compare import (  # noqa: E402
    ROOT,
    create_apps,
    delete_namespace,
    measure_burst,
)

SHARDS = 6


def shared_out(kube: Kube, ns: str, replicas: int) -> bool:
    leases = kube.list("coordination.k8s.io/v1", "Lease", ns, "appkeeper.dev/lease-role=shard")
    holders = [lease["spec"].get("holderIdentity") for lease in leases]
    counts = {h: holders.count(h) for h in holders if h}
    return sum(counts.values()) == SHARDS and len(counts) == replicas \
        and max(counts.values()) <= math.ceil(SHARDS / replicas)


def phase(kube: Kube, replicas: int, n: int, run: int, tmp: Path) -> dict[str, Any]:
    ns = f"shards-{replicas}-{run}-{uuid.uuid4().hex[:4]}"
    kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    ops: list[Operator] = []
    try:
        for i in range(replicas):
            ops.append(start_operator(tmp, f"--namespace={ns}", "--log-level=warning", "--resync-seconds=3600",
                                      "--leader-elect", f"--leader-election-namespace={ns}", f"--shards={SHARDS}",
                                      env={"POD_NAME": f"r{i}"}))
        deadline = time.monotonic() + 120
        while not shared_out(kube, ns, replicas):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{replicas} replicas did not share {SHARDS} shards out in 120 s")
            time.sleep(0.5)
        m = measure_burst(kube, ns, n, [op.proc.pid for op in ops], lambda: create_apps(kube, ns, n))
        row = {"replicas": replicas, "run": run, "apps": n, "seconds": m["seconds"],
               "cpu_ms_per_app": round(m["cpu_s"] * 1000 / n, 2),
               "requests_per_app": round((m["requests"] - n) / n, 2), "requests_by": m["requests_by"],
               "rss_mib_before": m["rss_mib_before"], "rss_mib_after": m["rss_mib_after"]}
        print(json.dumps(row), flush=True)
        return row
    finally:
        for op in ops:
            stop_operator(op)
        delete_namespace(kube, ns)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in sorted({row["replicas"] for row in rows}):
        mine = [row for row in rows if row["replicas"] == r]
        stats: dict[str, Any] = {}
        for key, values in (("seconds", [m["seconds"] for m in mine]),
                            ("cpu_ms_per_app", [m["cpu_ms_per_app"] for m in mine]),
                            ("requests_per_app", [m["requests_per_app"] for m in mine]),
                            ("rss_mib_per_replica", [x for m in mine for x in m["rss_mib_after"]])):
            stats[key] = {"min": min(values), "median": round(statistics.median(values), 2), "max": max(values)}
        out[str(r)] = stats
    return out


def render(result: dict[str, Any]) -> str:
    rows, s = result["rows"], result["summary"]
    lines = [f"Command: `{result['command']}` — {rows[0]['apps']} Apps, {SHARDS} shards, "
             f"{len({r['run'] for r in rows})} runs, replica counts in rotated order; 2 cores shared by the "
             "cluster and every replica.", "",
             "| replicas | seconds to all children | CPU ms per App (all replicas) | requests per App "
             "| RSS MiB per replica after |", "|---|---|---|---|---|"]
    for r, stats in s.items():
        lines.append(f"| {r} | " + " | ".join(
            f"{stats[k]['median']} ({stats[k]['min']}-{stats[k]['max']})"
            for k in ("seconds", "cpu_ms_per_app", "requests_per_app", "rss_mib_per_replica")) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    from compare import write_results

    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--replicas", default="1,2,3")
    ap.add_argument("--out", default=str(ROOT / "bench" / "shards.json"))
    args = ap.parse_args()
    kube = Kube(load_configuration(), pool_size=40)
    counts = [int(r) for r in args.replicas.split(",")]
    tmp = Path(f"/tmp/appkeeper-shards-{uuid.uuid4().hex[:6]}")
    tmp.mkdir()
    rows = []
    for run in range(args.runs):
        for replicas in counts[run % len(counts):] + counts[:run % len(counts)]:
            rows.append(phase(kube, replicas, args.apps, run, tmp))
    result = {"command": " ".join(["bench/shards.py", *sys.argv[1:]]), "rows": rows, "summary": summary(rows)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    write_results({**result, "out": args.out}, ROOT / "bench" / "results.md", render(result))
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
