#!/usr/bin/env python3
"""Operator benchmark against a real API server (the local cluster unless $KUBECONFIG is set).

    make bench        # or: .venv/bin/python bench/operator_bench.py [--apps 100 --burst 500]

Measures, with the operator running as `appkeeper run` (its image's command line):
  1. create -> all children applied: per App, from the create call to the moment the watch
     shows its Deployment and Service (p50/p99 over --apps Apps created one by one);
  2. a burst of --burst Apps created at once -> all phase Ready (seconds);
  3. repair: delete an App's Deployment -> a new one seen by the watch (p50/p99);
  4. operator RSS with all those Apps;
  5. steady state: write requests to App and child resources per minute, from the API server's
     own /metrics (apiserver_request_total), over --steady-seconds with resync every 20 s.
Writes bench/results.json and the table in bench/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import rss_mib, start_operator, stop_operator  # noqa: E402

from appkeeper.kube import Kube, load_configuration, path_for  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from compare import Watcher  # noqa: E402

WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE"}
WATCHED_RESOURCES = {"apps", "deployments", "statefulsets", "services", "persistentvolumeclaims", "ingresses",
                     "horizontalpodautoscalers", "poddisruptionbudgets", "events"}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def app_body(name: str) -> dict[str, Any]:
    return {"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "metadata": {"name": name},
            "spec": {"image": "nginx:1.27", "replicas": 1, "ports": [{"name": "http", "containerPort": 80}]}}


def apiserver_writes(kube: Kube) -> tuple[int, dict[str, int]]:
    text = subprocess.run(["kubectl", "get", "--raw", "/metrics"], capture_output=True, text=True,
                          check=True).stdout
    total, by = 0, dict[str, int]()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in WATCHED_RESOURCES:
            n = int(float(line.rsplit(" ", 1)[1]))
            sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
            key = f"{labels['verb']} {labels['resource']}{sub}"
            by[key] = by.get(key, 0) + n
            total += n
    return total, by


def applies(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items() if k.startswith("appkeeper_child_applies_total"))


def reconciles(scraped: dict[str, float]) -> float:
    """Reconciles that did not fail (controller-runtime's counter: success and requeue_after)."""
    return sum(scraped.get(f'controller_runtime_reconcile_total{{controller="app",result="{r}"}}', 0)
               for r in ("success", "requeue_after"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=100, help="Apps for the create and repair latencies")
    ap.add_argument("--burst", type=int, default=500, help="Apps created at once")
    ap.add_argument("--steady-seconds", type=int, default=60)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = ap.parse_args()

    if not os.environ.get("KUBECONFIG"):
        up = subprocess.run([sys.executable, str(ROOT / "hack" / "localcluster.py"), "up"], stdout=subprocess.PIPE,
                            text=True, check=True)
        for line in up.stdout.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            os.environ[key] = value.replace("$PATH", os.environ["PATH"])
    subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")], check=True,
                   capture_output=True)
    kube = Kube(load_configuration(), pool_size=32)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["kubectl", "create", "namespace", ns], check=True, capture_output=True)
    tmp = Path(f"/tmp/appkeeper-bench-{ns}")
    tmp.mkdir()
    op = start_operator(tmp, f"--workers={args.workers}", "--resync-seconds=20", "--log-level=warning")
    results: dict[str, Any] = {"machine": f"{platform.node()} {os.cpu_count()} cores", "namespace": ns,
                               "workers": args.workers}
    try:
        deployments = Watcher(kube, "apps/v1", "Deployment", ns)
        services = Watcher(kube, "v1", "Service", ns)
        apps = Watcher(kube, "appkeeper.dev/v1alpha1", "App", ns)
        time.sleep(1)

        # 1. create -> children, one App at a time.
        create_ms = []
        for i in range(args.apps):
            name = f"lat-{i}"
            t0 = time.monotonic()
            kube.request("POST", path_for("appkeeper.dev/v1alpha1", "App", ns), app_body(name))
            ok = deployments.wait(lambda n=name: n in deployments.latest, 30) and \
                services.wait(lambda n=name: n in services.latest, 30)
            assert ok, f"children of {name} did not appear"
            done = max(t for (n, _), t in {**deployments.seen, **services.seen}.items() if n == name)
            create_ms.append((done - t0) * 1000)
        results["create_to_children_ms"] = {"n": len(create_ms), "p50": pct(create_ms, 50),
                                            "p99": pct(create_ms, 99), "max": max(create_ms)}
        print("create -> children:", results["create_to_children_ms"], flush=True)

        # 2. burst -> all Ready.
        burst = [f"burst-{i}" for i in range(args.burst)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda n: kube.request("POST", path_for("appkeeper.dev/v1alpha1", "App", ns),
                                                 app_body(n)), burst))
        created = time.monotonic() - t0

        def all_ready() -> bool:
            return all((apps.latest.get(n) or {}).get("status", {}).get("phase") == "Ready" for n in burst)

        assert apps.wait(all_ready, 600), "burst did not become Ready"
        results["burst"] = {"apps": args.burst, "create_calls_s": round(created, 2),
                            "all_ready_s": round(time.monotonic() - t0, 2)}
        print("burst:", results["burst"], flush=True)

        # 3. repair latency.
        repair_ms = []
        for i in range(args.apps):
            name = f"lat-{i}"
            old_uid = deployments.latest[name]["metadata"]["uid"]
            t0 = time.monotonic()
            kube.delete("apps/v1", "Deployment", ns, name)
            assert deployments.wait(lambda n=name, u=old_uid: n in deployments.latest
                                    and deployments.latest[n]["metadata"]["uid"] != u, 30), f"{name} not repaired"
            new_uid = deployments.latest[name]["metadata"]["uid"]
            repair_ms.append((deployments.seen[(name, new_uid)] - t0) * 1000)
        results["repair_ms"] = {"n": len(repair_ms), "p50": pct(repair_ms, 50), "p99": pct(repair_ms, 99),
                                "max": max(repair_ms)}
        print("repair:", results["repair_ms"], flush=True)

        # 4. memory, 5. steady-state writes.
        total_apps = args.apps + args.burst
        assert apps.wait(lambda: sum(1 for a in apps.latest.values()
                                     if a.get("status", {}).get("phase") == "Ready") == total_apps, 120)
        time.sleep(10)  # let the last status updates and events settle
        results["operator_rss_mib"] = {"apps": total_apps, "rss": round(rss_mib(op.proc.pid), 1)}
        before, by_before = apiserver_writes(kube)
        ops_before = op.metrics()
        time.sleep(args.steady_seconds)
        after, by_after = apiserver_writes(kube)
        ops_after = op.metrics()
        per_min = (after - before) * 60 / args.steady_seconds
        delta = {k: v - by_before.get(k, 0) for k, v in by_after.items() if v - by_before.get(k, 0)}
        results["steady_state"] = {
            "seconds": args.steady_seconds, "apps": total_apps,
            "apiserver_writes_per_min": round(per_min, 1), "apiserver_writes_by_kind": delta,
            "operator_reconciles": reconciles(ops_after) - reconciles(ops_before),
            "operator_child_applies": applies(ops_after) - applies(ops_before),
        }
        print("memory:", results["operator_rss_mib"], "steady:", results["steady_state"], flush=True)
    finally:
        stop_operator(op)
        subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], capture_output=True)
    results["median_create_ms"] = statistics.median(create_ms)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
