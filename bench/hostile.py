#!/usr/bin/env python3
"""A hostile tenant's memory attack, side by side: the operator of this tree and of an earlier
commit (`--before`, run from a git worktree under build/), each alone on the cluster in turn.

    .venv/bin/python bench/hostile.py --foreign 1000 --big 10 --before 5b2a8f6

Per arm: a fresh namespace and operator; one small App made Ready (the baseline RSS); then `--big`
Apps with 1 MiB specs (40 variables of 26.5 KB, server-side applied) and `--foreign` ConfigMaps of
`--size` bytes labelled for Apps that do not exist; then one more small App, timed to Ready. RSS is
read once every App is Ready and the operator has had `--settle` seconds. etcd is compacted between
arms (1,000 ConfigMaps of 900 KB are 900 MB of history). Writes bench/hostile.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from tests.e2e.conftest import start_operator, stop_operator  # noqa: E402

from appkeeper.kube import Kube, load_configuration  # noqa: E402
from compare import delete_namespace, rss_mib  # noqa: E402

APP_API = "/apis/appkeeper.dev/v1alpha1/namespaces/{ns}/apps"


def big_spec(i: int) -> dict[str, Any]:
    return {"image": "nginx:1.27", "replicas": 1,
            "env": [{"name": f"V{j}", "value": chr(ord("a") + (i + j) % 26) * 26_500} for j in range(40)]}


def put(kube: Kube, path: str, obj: dict[str, Any]) -> None:
    kube.request("PATCH", path, obj, query={"fieldManager": "bench", "force": "true"},
                 content_type="application/apply-patch+yaml")


def app(kube: Kube, ns: str, name: str, spec: dict[str, Any]) -> None:
    put(kube, f"{APP_API.format(ns=ns)}/{name}", {"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App",
                                                  "metadata": {"name": name, "namespace": ns}, "spec": spec})


def foreign(kube: Kube, ns: str, i: int, size: int) -> None:
    put(kube, f"/api/v1/namespaces/{ns}/configmaps/junk-{i}", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"junk-{i}", "namespace": ns, "labels": {"appkeeper.dev/app": f"ghost-{i}"}},
        "data": {"blob": chr(ord("a") + i % 26) * size}})


def ready(kube: Kube, ns: str, names: list[str], timeout: float) -> float:
    """Seconds until every App of `names` is Ready (raises past `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        items = kube.request("GET", APP_API.format(ns=ns))["items"]
        phases = {a["metadata"]["name"]: (a.get("status") or {}).get("phase") for a in items}
        if all(phases.get(n) == "Ready" for n in names):
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"not Ready after {timeout}s: {names}")


def arm(kube: Kube, name: str, env: dict[str, str], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    ns = f"hostile-{name}-{uuid.uuid4().hex[:4]}"
    kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    op = start_operator(tmp, f"--namespace={ns}", "--log-level=warning", env=env)
    try:
        app(kube, ns, "warm", {"image": "nginx:1.27"})
        ready(kube, ns, ["warm"], 60)
        time.sleep(args.settle)
        before = rss_mib(op.proc.pid)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: app(kube, ns, f"big-{i}", big_spec(i)), range(args.big)))
            list(pool.map(lambda i: foreign(kube, ns, i, args.size), range(args.foreign)))
        written = time.monotonic() - started
        app(kube, ns, "fine", {"image": "nginx:1.27"})
        fine = ready(kube, ns, ["fine"], 120)
        ready(kube, ns, [f"big-{i}" for i in range(args.big)], 300)
        peak = rss_mib(op.proc.pid)
        time.sleep(args.settle)
        after = rss_mib(op.proc.pid)
        row = {"arm": name, "foreign": args.foreign, "size": args.size, "big": args.big,
               "rss_mib_before": round(before, 1), "rss_mib_peak": round(peak, 1), "rss_mib_after": round(after, 1),
               "rss_growth_mib": round(after - before, 1), "written_seconds": round(written, 1),
               "healthy_app_ready_seconds": round(fine, 2), "alive": op.proc.poll() is None}
        print(json.dumps(row), flush=True)
        return row
    finally:
        stop_operator(op)
        delete_namespace(kube, ns)
        importlib.import_module("localcluster").compact_etcd()  # hack/: the local cluster's etcd


def before_tree(ref: str) -> Path:
    tree = ROOT / "build" / f"before-{ref}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True,
                       capture_output=True)
    return tree


def summary(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [float(r[key]) for r in rows]
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--foreign", type=int, default=1000)
    ap.add_argument("--size", type=int, default=900_000)
    ap.add_argument("--big", type=int, default=10)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--settle", type=float, default=15.0)
    ap.add_argument("--before", default=None, help="a commit to compare with (its operator/ from a worktree)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "hostile.json")
    args = ap.parse_args()
    kube = Kube(load_configuration(), pool_size=16)
    arms: list[tuple[str, dict[str, str]]] = [("appkeeper", {})]
    if args.before:
        arms.append((f"before-{args.before}", {"PYTHONPATH": str(before_tree(args.before) / "operator")}))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for name, env in arms[run % len(arms):] + arms[:run % len(arms)]:
                rows.append({**arm(kube, name, env, args, Path(tmp)), "run": run})
    result: dict[str, Any] = {"command": " ".join(sys.argv), "rows": rows, "summary": {
        name: {k: summary([r for r in rows if r["arm"] == name], k)
               for k in ("rss_growth_mib", "rss_mib_peak", "healthy_app_ready_seconds")} for name, _ in arms}}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

