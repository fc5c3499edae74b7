"""Chaos (i): the leader is frozen (SIGSTOP) for 20 s in the middle of a burst. The standby takes the
Lease once it expires; when the old leader wakes, the fence refuses every write it was about to make,
and it exits. The API server's audit log proves it: no write of the old identity was received after
the new holder's acquire time."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ..conftest import get, items, start_operator, stop_operator, wait_for
from .common import SPEC, apply_many, converged
from .test_sharding import _time, audited_writes

STOPPED = 20.0  # seconds the leader is frozen: longer than the lease (15 s)


def lease(namespace: str) -> dict[str, str]:
    return dict(((get("lease", "chaos-fence", namespace) or {}).get("spec")) or {})


def test_a_frozen_leader_writes_nothing_after_its_lease_is_taken(ns: str, tmp_path: Path) -> None:
    args = [f"--namespace={ns}", "--leader-elect", f"--leader-election-namespace={ns}",
            "--leader-election-id=chaos-fence"]
    ops = {name: start_operator(tmp_path, *args, env={"POD_NAME": name}) for name in ("one", "two")}
    try:
        old = wait_for("a leader", lambda: lease(ns).get("holderIdentity"), timeout=30)
        leader = old.rpartition("_")[0]
        standby = next(n for n in ops if n != leader)
        apply_many(ns, [f"f{i:02d}" for i in range(80)], **SPEC)
        wait_for("the burst under way", lambda: len(items("deployments", ns)) >= 10 or None, timeout=60,
                 interval=0.05)
        os.kill(ops[leader].proc.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        taken = wait_for("the standby holds the Lease", lambda: (spec := lease(ns)).get(
            "holderIdentity", "").startswith(f"{standby}_") and spec, timeout=40)
        acquired = _time(taken["acquireTime"])
        wait_for(f"{STOPPED:.0f}s frozen", lambda: time.monotonic() - frozen >= STOPPED or None, timeout=STOPPED + 5)
        os.kill(ops[leader].proc.pid, signal.SIGCONT)
        wait_for("80 Apps Ready", lambda: converged(ns, 80), timeout=180, interval=1)
        [code] = wait_for("the old leader exits on its own",
                          lambda: (c := ops[leader].proc.poll()) is not None and [c], timeout=60)
        writes = [w for w in audited_writes(ns) if w[0] == old]
        late = [w for w in writes if w[2] >= acquired]
        print(f"chaos(i): {len(writes)} writes of the frozen leader before the takeover, {len(late)} after it; "
              f"it exited with {code} after waking")
        assert writes, "the frozen leader wrote nothing at all: the burst did not reach it"
        assert late == []
        log = ops[leader].log_text()  # fenced writes, or the election's own verdict, whichever came first
        assert "no longer provably holds lease" in log or "lost the lease" in log
    finally:
        for op in ops.values():
            if op.proc.poll() is None:
                os.kill(op.proc.pid, signal.SIGCONT)
                stop_operator(op)
