#!/usr/bin/env python3
"""CPU of one reconcile that has nothing to do, in process (no API server: a settled reconcile makes
no request, and a whole one of an unchanged App makes none either): the App of bench/compare.py,
converged against the unit tests' in-memory fake, then reconciled again and again.

    .venv/bin/python bench/noop.py            # prints ms of CPU per reconcile, whole and settled
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from tests.unit.test_reconcile import NS, World  # noqa: E402


def per_call_ms(w: World, n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        w.reconciler.reconcile((NS, "shop"))
    return (time.process_time() - t0) * 1000 / n


def main() -> int:
    w = World()
    w.put_app(replicas=0, ports=[{"name": "http", "containerPort": 80}])
    w.reconcile()
    w.reconcile()
    assert w.reconciler.memory.settled((NS, "shop")) is not None, "the App did not settle"
    w.kube.calls.clear()
    settled = per_call_ms(w, 20000)
    whole = []
    for _ in range(2000):  # forget the settled inputs each time: the whole reconcile runs, and writes nothing
        w.reconciler.memory.settle((NS, "shop"), None)
        t0 = time.process_time()
        w.reconciler.reconcile((NS, "shop"))
        whole.append((time.process_time() - t0) * 1000)
    assert w.kube.writes() == [], "a no-op reconcile wrote"
    print(f"no-op reconcile, whole: {sum(whole) / len(whole):.3f} ms of CPU; answered as settled: {settled:.4f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
