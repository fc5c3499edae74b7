"""Chaos, bounded: operator kills during a burst, leader failover, retained claims across deletions
with the operator stopped, namespace deletion with the operator stopped. Each prints its figures
(recorded in bench/chaos.md with the command that produced them)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from ..conftest import get, items, kubectl, start_operator, stop_operator, wait_for
from .common import CHILDREN, SPEC, apply_many, converged, kill


def test_a_burst_survives_sigkill_every_five_seconds(ns: str, tmp_path: Path) -> None:
    names = [f"a{i:03d}" for i in range(200)]
    op = start_operator(tmp_path, f"--namespace={ns}", "--workers=8")
    apply_many(ns, names, **SPEC)
    kills = 0
    try:
        for _ in range(6):  # 30 s of a SIGKILL every 5 s, each followed by a restart
            time.sleep(5)
            kill(op)
            kills += 1
            op = start_operator(tmp_path, f"--namespace={ns}", "--workers=8")
        t0 = time.monotonic()
        apps = wait_for("200 Apps Ready", lambda: converged(ns, 200), timeout=240, interval=1)
        print(f"chaos(a): {kills} SIGKILLs; all 200 Apps Ready {time.monotonic() - t0:.1f}s after the last restart")
        repaired = {a["metadata"]["name"]: a["status"]["repairs"]["count"] for a in apps
                    if a["status"].get("repairs", {}).get("count")}
        assert repaired == {}, "restarts counted as repairs"
        for a in apps:
            assert {(c["kind"], c["name"]) for c in a["status"]["children"]} == \
                {(k, a["metadata"]["name"]) for k, _ in CHILDREN}
        deployments = items("deployments", ns)
        assert sorted(d["metadata"]["name"] for d in deployments) == names
    finally:
        stop_operator(op)
    kubectl("delete", "apps", "--all", "-n", ns, "--timeout=120s")
    wait_for("no orphans", lambda: not items("deployments", ns) and not items("services", ns), timeout=120)


def lease_holder(namespace: str) -> str:
    lease = get("lease", "chaos-leader", namespace) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_the_standby_takes_over_a_burst_when_the_leader_dies(ns: str, tmp_path: Path) -> None:
    args = [f"--namespace={ns}", "--leader-elect", f"--leader-election-namespace={ns}",
            "--leader-election-id=chaos-leader"]
    ops = {name: start_operator(tmp_path, *args, env={"POD_NAME": name}) for name in ("one", "two")}
    try:
        holder = wait_for("a leader", lambda: lease_holder(ns), timeout=30)
        leader = holder.rpartition("_")[0]
        standby = next(n for n in ops if n != leader)
        assert ops[standby].metrics()["appkeeper_leader"] == 0.0
        apply_many(ns, [f"b{i:02d}" for i in range(60)], **SPEC)
        time.sleep(2)
        t0 = time.monotonic()
        kill(ops[leader])  # no clean hand-over: the standby waits out the lease
        wait_for("the standby leads", lambda: lease_holder(ns).startswith(f"{standby}_"), timeout=40)
        failover = time.monotonic() - t0
        wait_for("60 Apps Ready", lambda: converged(ns, 60), timeout=120, interval=1)
        print(f"chaos(b): failover {failover:.1f}s after SIGKILL of the leader (lease 15s); "
              f"all Ready {time.monotonic() - t0:.1f}s after it")
        assert failover < 30
        assert ops[standby].metrics()["appkeeper_leader"] == 1.0
    finally:
        for op in ops.values():
            if op.proc.poll() is None:
                stop_operator(op)


def claims_kept(ns: str, names: list[str]) -> int:
    kept = 0
    for claim in items("pvc", ns):
        meta = claim["metadata"]
        if meta["name"].removesuffix("-data") in names and not meta.get("deletionTimestamp") \
                and meta.get("annotations", {}).get("appkeeper.dev/retained-from") == meta["name"][:-5]:
            kept += 1
    return kept


def test_retained_claims_survive_apps_deleted_while_the_operator_is_stopped(ns: str, tmp_path: Path) -> None:
    volume = {"volumes": [{"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi"}}]}
    total = 0
    for round_ in range(5):
        names = [f"r{round_}x{i:02d}" for i in range(40)]
        op = start_operator(tmp_path, f"--namespace={ns}")
        apply_many(ns, names, **volume)
        wait_for("40 claims", lambda n=names: claims_kept(ns, n) == 40, timeout=120, interval=1)
        stop_operator(op)
        kubectl("delete", "apps", "--all", "-n", ns, "--timeout=60s")  # completes with no operator
        op = start_operator(tmp_path, f"--namespace={ns}")
        time.sleep(3)
        total += claims_kept(ns, names)
        stop_operator(op)
    print(f"chaos(e): {total}/200 retained claims kept and annotated over 5 rounds")
    assert total == 200


def test_a_namespace_goes_with_the_operator_stopped(tmp_path: Path, cluster: Any, crd: str) -> None:
    name = f"chaos-ns-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    op = start_operator(tmp_path, f"--namespace={name}")
    volume = {"volumes": [{"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi"}}]}
    apply_many(name, [f"n{i}" for i in range(10)], **volume)
    wait_for("10 claims", lambda: len(items("pvc", name)) == 10, timeout=60)
    stop_operator(op)
    t0 = time.monotonic()
    kubectl("delete", "namespace", name, "--wait=false")
    wait_for("the namespace gone", lambda: kubectl("get", "namespace", name, check=False).returncode != 0,
             timeout=60, interval=1)
    print(f"chaos(d): namespace with 10 Apps and retained claims deleted in {time.monotonic() - t0:.1f}s, "
          "operator stopped")


def test_k_a_child_fought_over_is_repaired_every_time_and_said_once(ns: str, cluster: Any, tmp_path: Path) -> None:
    """A client deletes an App's Service as fast as it can for 20 s: the operator puts it back every
    time, yet says so in one aggregated Event and about one log line per 30 s, not one per repair."""
    from appkeeper.kube import Kube, load_configuration

    op = start_operator(tmp_path, f"--namespace={ns}")
    try:
        apply_many(ns, ["k0"], **SPEC)
        wait_for("the App Ready", lambda: converged(ns, 1), timeout=60)
        kube = Kube(load_configuration(cluster.kubeconfig))

        def service_uid() -> str | None:
            found = kube.get("v1", "Service", ns, "k0")
            return None if found is None else str(found["metadata"]["uid"])

        lines, deletions, t0 = len(op.log_text().splitlines()), 0, time.monotonic()
        last = service_uid()
        while time.monotonic() - t0 < 20:  # delete it each time it is back, as soon as it is
            if kube.delete("v1", "Service", ns, "k0"):
                deletions += 1
            last = wait_for("the Service back", lambda gone=last: (u := service_uid()) not in (None, gone) and u,
                            timeout=10, interval=0.02)
        elapsed = time.monotonic() - t0
        logged = len(op.log_text().splitlines()) - lines
        # Most deletions are counted as repairs; one that lands before the status listed the new
        # Service is a create (the status says what it saw).
        app = wait_for("the repairs counted", lambda: (a := get("app", "k0", ns)) and
                       a["status"]["repairs"]["count"] >= deletions // 2 and a, timeout=30)
        events = [e for e in items("events", ns) if e["reason"] == "Repaired"]
        print(f"chaos(k): a Service deleted {deletions} times in {elapsed:.0f}s: {app['status']['repairs']['count']} "
              f"repairs, {len(events)} Repaired Event(s) (count {sum(e.get('count', 1) for e in events)}), "
              f"{logged} log lines ({logged / elapsed:.2f}/s)")
        assert deletions >= 20
        assert len(events) == 1
        assert logged / elapsed <= 1.0, "\n".join(op.log_text().splitlines()[lines:lines + 30])
    finally:
        stop_operator(op)
