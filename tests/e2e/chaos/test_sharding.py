"""Chaos (h): three replicas share six shards; one is killed mid-burst. Its shards are taken once
their Leases expire, every App converges, and the API server's audit log shows that no App was
written by two replicas at once: each write falls inside its writer's tenure of the App's shard
(from the replicas' logs), and tenures of one shard never overlap."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import localcluster
from appkeeper.shards import shard_of

from ..conftest import Cluster, Operator, items, start_operator, stop_operator, wait_for
from .common import SPEC, apply_many, converged, kill

SHARDS = 6
LEASE_SECONDS, RETRY_SECONDS = 15, 2  # appkeeper's defaults


def holders(namespace: str) -> Counter[str]:
    """Replica name -> shards whose Lease it holds."""
    leases = items("leases", namespace, "appkeeper.dev/lease-role=shard")
    return Counter(str(lease["spec"].get("holderIdentity") or "").rpartition("_")[0] for lease in leases
                   if lease["spec"].get("holderIdentity"))


@dataclass
class Tenure:
    identity: str
    shard: int
    start: float
    end: float


def tenures(ops: dict[str, Operator], ended: dict[str, float]) -> list[Tenure]:
    """From each replica's log: `holds` opens a tenure of a shard, `gave up` closes it (a replica
    stopped says it once its last reconcile is done, before it frees the Leases); the rest end when
    the replica was killed."""
    out: list[Tenure] = []
    for name, op in ops.items():
        open_: dict[int, Tenure] = {}
        for line in op.log_text().splitlines():
            if '"shard_event"' not in line:
                continue
            rec = json.loads(line)
            for shard in rec["shards"]:
                if rec["shard_event"] == "holds":
                    open_[shard] = Tenure(rec["identity"], shard, rec["at"], float("inf"))
                else:  # the whole tenure, from its `holds` to this `gave up`
                    ended_here = open_.pop(shard)
                    ended_here.end = rec["at"]
                    out.append(ended_here)
        for tenure in open_.values():
            tenure.end = ended[name]
            out.append(tenure)
    return out


def audited_writes(namespace: str) -> list[tuple[str, str, float, float]]:
    """(replica identity, object name, received, completed) of every write our replicas made in the namespace."""
    out = []
    for line in localcluster.AUDIT_LOG.read_text().splitlines():
        if f'"namespace":"{namespace}"' not in line:
            continue
        event = json.loads(line)
        agent = event.get("userAgent", "")
        if not agent.startswith("appkeeper/") or "(" not in agent:
            continue
        out.append((agent[agent.index("(") + 1:-1], event["objectRef"]["name"],
                    _time(event["requestReceivedTimestamp"]), _time(event["stageTimestamp"])))
    return out


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_three_replicas_share_six_shards_and_take_over_a_killed_ones(ns: str, tmp_path: Path,
                                                                     cluster: Cluster) -> None:
    args = [f"--namespace={ns}", "--leader-elect", f"--leader-election-namespace={ns}",
            "--leader-election-id=chaos-shards", f"--shards={SHARDS}"]
    ops = {name: start_operator(tmp_path, *args, env={"POD_NAME": name}) for name in ("one", "two", "three")}
    ended: dict[str, float] = {}
    names = [f"s{i:03d}" for i in range(300)]
    try:
        wait_for("two shards each", lambda: holders(ns) == {"one": 2, "two": 2, "three": 2}, timeout=90, interval=1)
        apply_many(ns, names, **SPEC)
        time.sleep(3)  # mid-burst
        theirs = [lease["metadata"]["name"] for lease in items("leases", ns, "appkeeper.dev/lease-role=shard")
                  if lease["spec"]["holderIdentity"].startswith("two_")]
        kill(ops["two"])  # no hand-over: the others wait out its Leases
        ended["two"] = time.time()
        t0 = time.monotonic()
        wait_for("its shards taken", lambda: holders(ns) == {"one": 3, "three": 3}, timeout=60, interval=0.5)
        taken = {lease["metadata"]["name"]: _time(lease["spec"]["acquireTime"])
                 for lease in items("leases", ns, "appkeeper.dev/lease-role=shard")}
        takeover = max(taken[name] for name in theirs) - ended["two"]  # from the Leases: no polling lag
        wait_for("300 Apps Ready", lambda: converged(ns, 300), timeout=240, interval=1)
        print(f"chaos(h): 3 replicas, {SHARDS} shards, one SIGKILLed mid-burst: its shards taken {takeover:.1f}s "
              f"after, by the Leases' acquireTime (lease {LEASE_SECONDS}s, retry {RETRY_SECONDS}s); all 300 Ready "
              f"{time.monotonic() - t0:.1f}s after the kill")
        assert takeover <= LEASE_SECONDS + 2 * RETRY_SECONDS  # expiry is judged from when a survivor saw it renewed
        for name in ("one", "three"):
            assert ops[name].metrics()["appkeeper_shards_held"] == 3.0
    finally:
        for name, op in ops.items():
            if op.proc.poll() is None:
                stop_operator(op)
                ended[name] = time.time()
    if not cluster.local:
        return  # the audit log is the local cluster's
    held = tenures(ops, ended)
    for a in held:
        for b in held:
            assert a is b or a.shard != b.shard or a.end <= b.start or b.end <= a.start, (a, b)
    writes = audited_writes(ns)
    writers: dict[str, set[str]] = {}
    for identity, name, received, completed in writes:
        shard = shard_of((ns, name), SHARDS)
        mine = [t for t in held if t.identity == identity and t.shard == shard and t.start <= received <= t.end]
        assert mine, f"{identity} wrote {name} (shard {shard}) at {received} outside its tenure"
        others = [t for t in held if t.identity != identity and t.shard == shard
                  and t.start < completed and received < t.end]
        assert not others, f"{identity}'s write of {name} overlaps {others}"
        writers.setdefault(name, set()).add(identity)
    assert {n for n in names if n in writers} == set(names)  # every App's writes were checked
    print(f"chaos(h): {len(writes)} writes by the replicas checked against {len(held)} shard tenures; "
          f"{sum(len(w) > 1 for w in writers.values())} Apps written by two replicas one after the other, "
          "none at once")
