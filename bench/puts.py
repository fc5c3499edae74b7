#!/usr/bin/env python3
"""What the store's copies cost in a burst: how many objects `appkeeper run` hands its store per
App, by kind, and the CPU spent slimming and compacting them (the thread's CPU time around each
`store.slim`).

    .venv/bin/python bench/puts.py --apps 200        # prints JSON; writes bench/puts.json

The operator runs as bench/compare.py runs it, with one addition: a `sitecustomize` module on its
PYTHONPATH (written to a temporary directory) that wraps `appkeeper.store.slim` to count and time,
and writes its tally when the operator gets SIGUSR1. The Apps are bench/compare.py's (0 replicas,
one port). The tally is taken once every child has been seen and the requests have settled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "operator")]

from tests.e2e.conftest import start_operator, stop_operator, wait_for  # noqa: E402

import compare  # noqa: E402
from appkeeper.kube import Kube, load_configuration  # noqa: E402

HOOK = '''
import collections, json, os, signal, time
from appkeeper import store
_tally = collections.Counter()
_slim = store.slim
def slim(obj, *rest):
    kind = obj.get("kind", "?")
    t0 = time.thread_time()
    out = _slim(obj, *rest)
    spent = time.thread_time() - t0
    first = not rest or rest[0] is None
    _tally["puts " + kind] += 1
    _tally["cpu_s " + kind] += spent
    _tally["firsts " + kind] += first
    _tally["cpu_s_firsts " + kind] += spent if first else 0.0
    return out
store.slim = slim
def _dump(*_):  # written whole, then renamed: the reader never sees half of it
    out = os.environ["APPKEEPER_PUTS_OUT"]
    with open(out + ".part", "w") as f:
        json.dump(_tally, f)
    os.replace(out + ".part", out)
signal.signal(signal.SIGUSR1, _dump)
'''


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--out", default=str(HERE / "puts.json"))
    args = ap.parse_args()
    kube = Kube(load_configuration(), pool_size=40)
    compare.install_crds(kube)
    ns = f"puts-{uuid.uuid4().hex[:4]}"
    kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    with tempfile.TemporaryDirectory() as tmp:
        hook = Path(tmp) / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HOOK)
        tally_file = Path(tmp) / "tally.json"
        env = {"PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]),
               "APPKEEPER_PUTS_OUT": str(tally_file)}
        op = start_operator(Path(tmp), f"--namespace={ns}", "--log-level=warning", "--resync-seconds=3600", env=env)
        try:
            burst = compare.measure_burst(kube, ns, args.apps, [op.proc.pid],
                                          lambda: compare.create_apps(kube, ns, args.apps))
            os.kill(op.proc.pid, signal.SIGUSR1)
            wait_for("the tally", tally_file.exists, timeout=10, interval=0.1)
            tally = json.loads(tally_file.read_text())
        finally:
            stop_operator(op)
            compare.delete_namespace(kube, ns)
    kinds = sorted(k.split(" ", 1)[1] for k in tally if k.startswith("puts "))
    result = {"command": f"bench/puts.py --apps {args.apps}", "apps": args.apps, "seconds": burst["seconds"],
              "operator_cpu_ms_per_app": round(burst["cpu_s"] * 1000 / args.apps, 2),
              "puts_per_app": {k: round(tally[f"puts {k}"] / args.apps, 2) for k in kinds},
              "slim_cpu_ms_per_app": {k: round(tally[f"cpu_s {k}"] * 1000 / args.apps, 3) for k in kinds},
              "first_versions_per_app": {k: round(tally.get(f"firsts {k}", 0) / args.apps, 2) for k in kinds},
              "slim_cpu_ms_per_app_first_versions": {k: round(tally.get(f"cpu_s_firsts {k}", 0) * 1000 / args.apps, 3)
                                                     for k in kinds},
              "slim_cpu_ms_per_app_total": round(sum(tally[f"cpu_s {k}"] for k in kinds) * 1000 / args.apps, 3)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
