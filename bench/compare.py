#!/usr/bin/env python3
"""Side by side on one cluster, in one run: how fast N Apps become their children.

    .venv/bin/python bench/compare.py --apps 1000 --runs 3        # make bench-compare
    .venv/bin/python bench/compare.py --apps 10000 --runs 1 --parties appkeeper   # --scale

Parties, each in a fresh namespace, in an order rotated from run to run:
  ceiling    the API server's raw ceiling: this client, 32 connections, does per App what appkeeper's
             floor is (create the App, server-side apply its Deployment and Service, patch its status),
             with the very bodies appkeeper builds;
  appkeeper  `appkeeper run --namespace NS` (the image's command), the client creates the N Apps;
  peer       bench/peers/kopf_peer.py under `kopf run` (kopf's defaults), the same N Apps;
  kcm        kube-controller-manager's Deployment controller: the client creates N Deployments,
             done when N ReplicaSets exist.
Each App: the image nginx:1.27, 0 replicas (no pods: the cluster's other controllers stay out of the
measurement), one port. "Done" is when a watch opened by this client has seen every child.
For each party: seconds to children, CPU seconds of its process per App, requests per App (from
the API server's apiserver_request_total on the resources the party touches, minus this client's
own), its RSS after the burst. Writes bench/compare.json; bench/results.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import free_port, start_operator, stop_operator  # noqa: E402
from tests.e2e.conftest import rss_mib as rss_mib  # noqa: E402  (re-exported: the other bench scripts use it)

from appkeeper.api import parse_app  # noqa: E402
from appkeeper.kinds import build_children  # noqa: E402
from appkeeper.kube import ApiError, Kube, load_configuration, path_for  # noqa: E402

APPS = "appkeeper.dev/v1alpha1"
PARTIES = ("ceiling", "appkeeper", "peer", "kcm")
# The resources whose requests are counted for a party; deployments' status and PUTs are the
# controller-manager's (its Deployment controller), never appkeeper's or the peer's in a burst.
COUNTED = {"apps", "deployments", "services", "events"}
LINE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def spec() -> dict[str, Any]:
    return {"image": "nginx:1.27", "replicas": 0, "ports": [{"name": "http", "containerPort": 80}]}


def app_body(name: str) -> dict[str, Any]:
    return {"apiVersion": APPS, "kind": "App", "metadata": {"name": name}, "spec": spec()}


def requests_by_party(kube: Kube) -> dict[tuple[str, str, str, str], float]:
    """apiserver_request_total by (group, resource, subresource, verb)."""
    text = kube.pool.request("GET", kube.host + "/metrics", headers=kube._headers()).data.decode()
    out: dict[tuple[str, str, str, str], float] = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        key = (labels.get("group", ""), labels.get("resource", ""), labels.get("subresource", ""), labels["verb"])
        out[key] = out.get(key, 0.0) + float(m["value"])
    return out


def counted(before: dict[tuple[str, str, str, str], float], after: dict[tuple[str, str, str, str], float]) -> float:
    return sum(breakdown(before, after).values())


def breakdown(before: dict[tuple[str, str, str, str], float],
              after: dict[tuple[str, str, str, str], float]) -> dict[str, float]:
    """The counted requests by "VERB resource[/subresource]"."""
    out: dict[str, float] = {}
    for key, value in after.items():
        group, resource, sub, verb = key
        if resource not in COUNTED or (resource == "events" and group != ""):
            continue  # events.k8s.io: the controllers' recorder; appkeeper and kopf post core/v1 Events
        if resource == "deployments" and (sub == "status" or verb == "PUT"):
            continue
        if verb in ("WATCH", "LIST"):
            continue  # opened before the burst; a relist inside it would be the party's too, but is rare
        if value - before.get(key, 0.0):
            name = f"{verb} {resource}" + (f"/{sub}" if sub else "")
            out[name] = out.get(name, 0.0) + value - before.get(key, 0.0)
    return out


def settled(kube: Kube, before: dict[tuple[str, str, str, str], float]) -> dict[tuple[str, str, str, str], float]:
    """The counts once two seconds in a row added no counted request (at most 60 s)."""
    now = requests_by_party(kube)
    last, quiet, deadline = counted(before, now), 0, time.monotonic() + 60
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(1.0)
        now = requests_by_party(kube)
        total = counted(before, now)
        quiet = quiet + 1 if total == last else 0
        last = total
    return now


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_of(process: str) -> int:
    out = subprocess.run(["pgrep", "-o", "-f", process], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else 0


def watch_events(kube: Kube, api_version: str, kind: str, namespace: str) -> Iterator[dict[str, Any]]:
    """The events of one watch (an hour at most) from now, decoded line by line as they arrive. A
    watch refused while the API server is still starting a resource's storage (429, e.g. just
    after the CRD was applied) is opened again, for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            stream = kube.watch(api_version, kind, namespace, "", "", 3600)
            break
        except ApiError as e:
            if e.status not in (0, 429, 503) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for event in stream:
        if event.get("type") != "BOOKMARK":
            yield event


class Watcher:
    """Streams watch events of one resource in one namespace: when each name was first seen per
    uid, the names seen, the latest of each object; waiters are woken on every event."""

    def __init__(self, kube: Kube, api_version: str, kind: str, namespace: str,
                 on_deleted: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.kube, self.what = kube, (api_version, kind, namespace)
        self.on_deleted = on_deleted  # called in the watch's thread, before waiters are woken
        self.seen: dict[tuple[str, str], float] = {}  # (name, uid) -> first seen
        self.names: set[str] = set()
        self.latest: dict[str, dict[str, Any]] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for event in watch_events(self.kube, *self.what):
            obj = event["object"]
            now = time.monotonic()
            name, uid = obj["metadata"]["name"], obj["metadata"].get("uid", "")
            if event["type"] == "DELETED" and self.on_deleted is not None:
                self.on_deleted(obj)
            with self.cond:
                self.seen.setdefault((name, uid), now)
                self.names.add(name)
                if event["type"] == "DELETED":
                    self.latest.pop(name, None)
                else:
                    self.latest[name] = obj
                self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self.cond:
            return bool(self.cond.wait_for(predicate, timeout))

    def wait_names(self, count: int, timeout: float) -> float:
        """The monotonic time once `count` distinct names have been seen; TimeoutError after `timeout`."""
        if not self.wait(lambda: len(self.names) >= count, timeout):
            raise TimeoutError(f"{self.what}: {len(self.names)} of {count} after {timeout}s")
        return time.monotonic()


def install_crds(kube: Kube, timeout: float = 30) -> None:
    """The App CRD applied, and served: a cluster just made has none."""
    subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")], check=True,
                   capture_output=True)
    deadline = time.monotonic() + timeout
    while not kube.serves(APPS, "apps"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the App CRD is not served {timeout:.0f}s after it was applied")
        time.sleep(0.2)


def create_apps(kube: Kube, ns: str, n: int) -> None:
    in_parallel(n, lambda i: kube.request("POST", path_for(APPS, "App", ns), app_body(f"a{i}")))


def measure_burst(kube: Kube, ns: str, n: int, pids: list[int], burst: Callable[[], None],
                  kinds: tuple[tuple[str, str], ...] = (("apps/v1", "Deployment"), ("v1", "Service")),
                  timeout: float = 1800) -> dict[str, Any]:
    """One burst, measured the same way by every benchmark: watches of `kinds` in `ns` opened
    first; `burst()` run; seconds until the watches have seen n of each; the requests it caused
    once they settle (trailing status patches and Events belong to the burst); the CPU of `pids`
    over it, and their RSS before and after. `requests` still counts this client's own."""
    watches = [Watcher(kube, v, k, ns) for v, k in kinds]
    time.sleep(1.0)
    rss_before = [round(rss_mib(p), 1) for p in pids]
    before, cpu0 = requests_by_party(kube), sum(cpu_seconds(p) for p in pids)
    t0 = time.monotonic()
    burst()
    elapsed = max(w.wait_names(n, timeout) for w in watches) - t0
    after = settled(kube, before)
    cpu1 = sum(cpu_seconds(p) for p in pids)
    return {"seconds": round(elapsed, 2), "cpu_s": cpu1 - cpu0, "requests": counted(before, after),
            "requests_by": {k: round(v / n, 2) for k, v in sorted(breakdown(before, after).items())},
            "rss_mib_before": rss_before, "rss_mib_after": [round(rss_mib(p), 1) for p in pids]}


def in_parallel(n: int, fn: Callable[[int], Any]) -> None:
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(fn, range(n)))


def children(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What appkeeper builds for the App `body` (as stored: name, namespace, uid)."""
    return build_children(parse_app(body), datetime.now(UTC), None, None, "baseline")


def ceiling(kube: Kube, ns: str, n: int) -> None:
    def one(i: int) -> None:
        body = kube.request("POST", path_for(APPS, "App", ns), app_body(f"a{i}"))
        for child in children(body):
            kube.apply(child)
        kube.patch_app_status(ns, f"a{i}", {"observedGeneration": 1, "phase": "Pending"})

    in_parallel(n, one)


def bare_deployment(ns: str, name: str) -> dict[str, Any]:
    """The Deployment appkeeper would build for App `name`, without the App (no ownerReference)."""
    app = {**app_body(name), "metadata": {"name": name, "namespace": ns, "uid": "none", "generation": 1}}
    body: dict[str, Any] = next(c for c in children(app) if c["kind"] == "Deployment")
    body["metadata"].pop("ownerReferences", None)
    return body


def deployments(kube: Kube, ns: str, n: int) -> None:
    """The Deployment appkeeper would build for each App, without the App (no ownerReference)."""
    def one(i: int) -> None:
        kube.request("POST", path_for("apps/v1", "Deployment", ns), bare_deployment(ns, f"d{i}"))

    in_parallel(n, one)


def start_peer(ns: str, log: Path) -> subprocess.Popen[bytes]:
    port = free_port()
    peer = str(ROOT / "bench" / "peers" / "kopf_peer.py")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={ns}",
                             f"--liveness=http://127.0.0.1:{port}/healthz", peer],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the peer did not start: {log.read_text()[-2000:]}")


def repairs(kube: Kube, ns: str, n: int, ceiling: bool = False) -> dict[str, Any]:
    """With every App there: delete n Deployments one at a time, and time each until a watch of
    ours sees a new one (another uid) by that name. p50/p99/max in ms. `ceiling`: no operator; this
    watch itself creates the Deployment again the moment it sees it deleted (one POST of the body
    built before), which is as fast as any operator could repair through this API server."""
    built = {f"a{i}": bare_deployment(ns, f"a{i}") for i in range(n)} if ceiling else {}

    def recreate(gone: dict[str, Any]) -> None:
        body = built.get(gone["metadata"]["name"])
        if body is not None:  # not one of the n (the namespace's deletion at the end takes them all)
            kube.request("POST", path_for("apps/v1", "Deployment", ns), body)

    deployments = Watcher(kube, "apps/v1", "Deployment", ns, on_deleted=recreate if ceiling else None)
    if not deployments.wait(lambda: len(deployments.latest) >= n, 60):
        raise TimeoutError(f"the watch did not list {n} Deployments in 60 s")
    took = []
    for i in range(n):
        name = f"a{i}"
        old = deployments.latest[name]["metadata"]["uid"]
        t0 = time.monotonic()
        kube.delete("apps/v1", "Deployment", ns, name)
        if not deployments.wait(lambda nm=name, u=old: nm in deployments.latest
                                and deployments.latest[nm]["metadata"]["uid"] != u, 30):
            raise TimeoutError(f"Deployment {name} was not put back in 30 s")
        took.append((time.monotonic() - t0) * 1000)
    took.sort()
    return {"repairs": n, "repair_ms_p50": round(statistics.median(took), 1),
            "repair_ms_p99": round(took[min(n - 1, round(0.99 * (n - 1)))], 1), "repair_ms_max": round(took[-1], 1),
            "repair_ms": [round(t, 1) for t in took]}  # every sample, sorted: bench/plots.py draws their CDF


def bucket_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile q (as Prometheus' histogram_quantile
    bounds it), in ms."""
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return None
    return next((le * 1000 for le, n in sorted(buckets.items()) if n >= q * total), None)


def operator_share(metrics: dict[str, float]) -> dict[str, Any]:
    """The operator's own part of a repair (appkeeper_repair_latency_seconds: from the watch event to
    the end of the reconcile that put the child back), by its histogram's bucket bounds."""
    prefix = "appkeeper_repair_latency_seconds_bucket{le=\""
    buckets = {float(k[len(prefix):].split('"')[0]): v for k, v in metrics.items() if k.startswith(prefix)}
    return {"operator_repair_ms_p50_le": bucket_quantile(buckets, 0.5),
            "operator_repair_ms_p99_le": bucket_quantile(buckets, 0.99),
            "operator_repairs_timed": buckets.get(float("inf"), 0.0)}


def phase(kube: Kube, party: str, n: int, run: int, tmp: Path, steady: int = 0, resync: int = 3600,
          repair: int = 0, extra: tuple[str, ...] = (), keep: bool = False) -> dict[str, Any]:
    ns = f"cmp-{party}-{run}-{uuid.uuid4().hex[:4]}"
    kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    proc: Any = None
    pid = 0
    try:
        if party == "appkeeper":
            op = start_operator(tmp, f"--namespace={ns}", "--log-level=warning", f"--resync-seconds={resync}", *extra)
            proc, pid = op, op.proc.pid
        elif party == "peer":
            proc = start_peer(ns, tmp / f"peer-{run}.log")
            pid = proc.pid
        elif party == "kcm":
            pid = pid_of("kube-controller-manager")
        kinds = (("apps/v1", "ReplicaSet"),) if party == "kcm" else (("apps/v1", "Deployment"), ("v1", "Service"))
        burst = {"ceiling": ceiling, "kcm": deployments}.get(party, create_apps)
        m = measure_burst(kube, ns, n, [pid] if pid else [], lambda: burst(kube, ns, n), kinds)
        client = n if party in ("appkeeper", "peer", "kcm") else 0  # this client's own creates
        quiet = idle(kube, pid, steady) if steady and party == "appkeeper" else {}
        if repair and party in ("appkeeper", "ceiling"):
            quiet.update(repairs(kube, ns, repair, ceiling=party == "ceiling"))
            if party == "appkeeper":
                quiet.update(operator_share(op.metrics()))
        row = {**quiet, "party": party, "run": run, "apps": n, "seconds": m["seconds"],
               "ms_per_app": round(m["seconds"] * 1000 / n, 2),
               "cpu_s_per_app_ms": round(m["cpu_s"] * 1000 / n, 2) if pid else None,
               "requests_per_app": round((m["requests"] - client) / n, 2) if party != "kcm" else None,
               "requests_by": m["requests_by"],
               "rss_mib_before": m["rss_mib_before"][0] if pid else 0.0,
               "rss_mib_after": m["rss_mib_after"][0] if pid else None}
        print(json.dumps(row), flush=True)  # before the namespace's deletion, which can take minutes
        return row
    finally:
        if party == "appkeeper" and proc is not None:
            stop_operator(proc)
        elif party == "peer" and proc is not None:
            proc.terminate()
            proc.wait(30)
        if not keep:
            delete_namespace(kube, ns)


def idle(kube: Kube, pid: int, seconds: int) -> dict[str, Any]:
    """Nothing changing for `seconds` (a resync period, so it includes one full resync): the
    party's CPU as a share of one core, and its writes per minute."""
    before, cpu0 = requests_by_party(kube), cpu_seconds(pid)
    time.sleep(seconds)
    after, cpu1 = requests_by_party(kube), cpu_seconds(pid)
    writes = sum(v for k, v in breakdown(before, after).items() if not k.startswith("GET"))
    return {"steady_seconds": seconds, "steady_cpu_percent_of_core": round(100 * (cpu1 - cpu0) / seconds, 2),
            "steady_writes_per_minute": round(writes * 60 / seconds, 1),
            "steady_requests": dict(breakdown(before, after)),
            "rss_mib_steady": round(rss_mib(pid), 1)}


def delete_namespace(kube: Kube, ns: str) -> None:
    """Gone before the next party starts, so its garbage collection is not measured with it."""
    try:
        kube.request("DELETE", f"/api/v1/namespaces/{ns}")
    except ApiError:
        return
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            kube.request("GET", f"/api/v1/namespaces/{ns}")
        except ApiError as e:
            if e.status == 404:
                return
        time.sleep(1.0)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for party in PARTIES:
        mine = [r for r in rows if r["party"] == party]
        if not mine:
            continue
        out[party] = {}
        for key in ("seconds", "cpu_s_per_app_ms", "requests_per_app", "rss_mib_after"):
            values = [r[key] for r in mine if r[key] is not None]
            if values:
                out[party][key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    ratios: dict[str, list[float]] = {}
    for run in {r["run"] for r in rows}:
        by = {r["party"]: r["seconds"] for r in rows if r["run"] == run}
        for other in ("ceiling", "peer", "kcm"):
            if "appkeeper" in by and other in by:
                ratios.setdefault(f"appkeeper/{other}", []).append(round(by["appkeeper"] / by[other], 3))
    out["ratios"] = {k: {"min": min(v), "median": statistics.median(v), "max": max(v), "each": v}
                     for k, v in ratios.items()}
    return out


def cell(stats: dict[str, Any] | None, unit: str = "") -> str:
    if not stats:
        return "—"
    return f"{stats['median']}{unit} ({stats['min']}-{stats['max']})"


def render(result: dict[str, Any]) -> str:
    """The side-by-side table for bench/results.md: medians, with min-max, over the runs."""
    s, n = result["summary"], result["rows"][0]["apps"]
    runs = len({r["run"] for r in result["rows"]})
    lines = [f"Command: `{result['command']}` — {n} Apps, {runs} runs, parties in rotated order; "
             f"{result['cores']} cores shared by the whole cluster and the parties.", "",
             "| party | seconds to all children | CPU ms per App | requests per App | RSS MiB after "
             "| client rate limit |",
             "|---|---|---|---|---|---|"]
    for party in PARTIES:
        if party in s:
            row = s[party]
            lines.append(f"| {party} | {cell(row.get('seconds'), ' s')} | {cell(row.get('cpu_s_per_app_ms'))} | "
                         f"{cell(row.get('requests_per_app'))} | {cell(row.get('rss_mib_after'))} | "
                         f"{result['rate_limits'][party]} |")
    for r in result["rows"]:
        if "steady_seconds" in r:
            lines += ["", f"Then {r['steady_seconds']} s with nothing changing and one resync of all {r['apps']} Apps "
                          f"inside (run {r['run']}): appkeeper used {r['steady_cpu_percent_of_core']} % of a core, "
                          f"wrote {r['steady_writes_per_minute']} requests per minute, RSS {r['rss_mib_steady']} MiB; "
                          f"requests: {r['steady_requests'] or 'none'}."]
    for party in PARTIES:
        repaired = [r for r in result["rows"] if "repairs" in r and r["party"] == party]
        if not repaired:
            continue
        values = {k: [r[k] for r in repaired] for k in ("repair_ms_p50", "repair_ms_p99", "repair_ms_max")}
        spread = {k: f"{statistics.median(v)} ({min(v)}-{max(v)})" for k, v in values.items()}
        who = "the benchmark's own watch recreating each at once (no operator)" if party == "ceiling" else party
        lines += ["", f"Repair by {who}, with all {repaired[0]['apps']} Apps there: {repaired[0]['repairs']} "
                      "Deployments deleted one at a time, each timed until the benchmark's watch saw the new one; "
                      f"over {len(repaired)} runs, median (min-max) of each run's p50 {spread['repair_ms_p50']} ms, "
                      f"p99 {spread['repair_ms_p99']} ms, max {spread['repair_ms_max']} ms."]
        shares = [(r["operator_repair_ms_p50_le"], r["operator_repair_ms_p99_le"]) for r in repaired
                  if r.get("operator_repair_ms_p50_le") is not None]
        if shares:
            lines[-1] += (" The operator's own part (appkeeper_repair_latency_seconds, from its watch event to the end "
                          "of the reconcile, status and Event included), by bucket bound, per run: "
                          + ", ".join(f"p50 ≤ {a:g} ms, p99 ≤ {b:g} ms" for a, b in shares) + ".")
    lines += ["", "| ratio (time to children) | median (min-max) |", "|---|---|"]
    lines += [f"| {k} | {cell(v)} |" for k, v in s["ratios"].items()]
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], path: Path, table: str | None = None) -> None:
    """Replaces the block between the markers in bench/results.md (named after the --out file) with
    `table` (default: this benchmark's)."""
    begin, end = f"<!-- {Path(result['out']).name}:begin -->", f"<!-- {Path(result['out']).name}:end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{table or render(result)}{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--parties", default=",".join(PARTIES))
    ap.add_argument("--out", default=str(ROOT / "bench" / "compare.json"))
    ap.add_argument("--steady-seconds", type=int, default=0,
                    help="appkeeper: then measure CPU and writes with nothing changing (a whole resync period)")
    ap.add_argument("--resync-seconds", type=int, default=3600, help="appkeeper's --resync-seconds")
    ap.add_argument("--repairs", type=int, default=0,
                    help="appkeeper: then delete this many Deployments one at a time, every App still there, "
                         "and time each repair")
    ap.add_argument("--operator-arg", action="append", default=[],
                    help="appkeeper: one more argument of `appkeeper run`, e.g. --operator-arg=--workers=32")
    ap.add_argument("--keep-namespace", action="store_true",
                    help="leave each party's namespace (10,000 Apps take long to delete; cluster-down removes it)")
    ap.add_argument("--render", action="store_true", help="only write the table of --out into bench/results.md")
    args = ap.parse_args()
    if args.render:
        write_results({**json.loads(Path(args.out).read_text()), "out": args.out}, ROOT / "bench" / "results.md")
        return 0
    kube = Kube(load_configuration(), pool_size=40)
    install_crds(kube)
    parties = [p for p in args.parties.split(",") if p]
    tmp = Path(f"/tmp/appkeeper-compare-{uuid.uuid4().hex[:6]}")
    tmp.mkdir()
    rows = []
    for run in range(args.runs):
        order = parties[run % len(parties):] + parties[:run % len(parties)]
        for party in order:
            rows.append(phase(kube, party, args.apps, run, tmp, args.steady_seconds, args.resync_seconds,
                              args.repairs, tuple(args.operator_arg), args.keep_namespace))
    result = {"command": " ".join(["bench/compare.py", *sys.argv[1:]]), "cores": os.cpu_count(),
              "rate_limits": {"appkeeper": "none (its own client and watches; kopf watches the Apps)",
                              "peer": "none (kopf, the official client)",
                              "kcm": "--kube-api-qps=200 --kube-api-burst=400 (hack/localcluster.py)",
                              "ceiling": "none, 32 connections"},
              "rows": rows, "summary": summary(rows)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    write_results({**result, "out": args.out}, ROOT / "bench" / "results.md")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
