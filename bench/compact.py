#!/usr/bin/env python3
"""What the store's compact copies save: bytes held per object, and the CPU they cost.

    .venv/bin/python bench/compact.py          # writes bench/compact.json

The objects are an App's Deployment and Service as the API server would store them (a server-side
dry-run apply of what appkeeper builds, in the default namespace: defaults and managedFields
included, nothing stored). Each is kept COPIES times, as a thousand Apps' would be: each copy with
its own App name, uid and resourceVersion (what differs from App to App), decoded from its own
JSON. They are kept slimmed as before (`slim` without `compact`), then slimmed and compacted as the
store does now. tracemalloc counts
what stays held; timeit measures json.loads and compact per object: a first version, and an update
(a new resourceVersion and status, as the Deployment controller writes) compacted against the
version held, whose unchanged parts it reuses.
"""

from __future__ import annotations

import json
import statistics
import sys
import timeit
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "operator")]

from appkeeper import fields, store  # noqa: E402
from appkeeper.kube import Kube, load_configuration  # noqa: E402
from compare import app_body, children  # noqa: E402

COPIES = 200


def copies(text: str) -> list[str]:
    """COPIES of an object of the App "shop" with uid "u-1": each of its own App, uid and version."""
    out = []
    for i in range(COPIES):
        obj = json.loads(text.replace('"shop', f'"a{i:04d}').replace("u-1", str(uuid.uuid4())))
        obj["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=str(1000 + i))
        out.append(json.dumps(obj))
    return out


def held_per_object(texts: list[str], keep: Callable[[str], Any]) -> float:
    tracemalloc.start()
    kept = [keep(t) for t in texts]
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / len(kept)


def per_object_us(fn: Callable[[], Any], n: int) -> float:
    return min(timeit.repeat(fn, number=20, repeat=5)) / 20 / n * 1e6


def leaves(tree: Any) -> int:
    """The empty `{}` leaves of a fieldsV1 tree: one per field owned."""
    return sum(leaves(v) if v else 1 for v in tree.values())


def updated(obj: Any) -> Any:
    """The next version of `obj`: a new resourceVersion and a status field changed."""
    obj["metadata"]["resourceVersion"] = str(int(obj["metadata"].get("resourceVersion") or 0) + 1)
    obj.setdefault("status", {})["observedGeneration"] = 2
    return obj


def main() -> int:
    kube = Kube(load_configuration())
    app = {**app_body("shop"), "metadata": {"name": "shop", "namespace": "default", "uid": "u-1", "generation": 1}}
    objs = [kube.apply(child, dry_run=True) for child in children(app) if child["kind"] in ("Deployment", "Service")]
    texts = [json.dumps(o) for o in objs]
    kept = [c for t in texts for c in copies(t)]
    uncompacted = store.compact
    store.compact = lambda value, like=None, leaf=False: value  # slim as it was: the same copy, nothing interned
    try:
        before = held_per_object(kept, lambda t: store.slim(json.loads(t)))
    finally:
        store.compact = uncompacted
    after = held_per_object(kept, lambda t: store.slim(json.loads(t)))
    slimmed = [store.slim(json.loads(t)) for t in texts]
    updates = [updated(json.loads(t)) for t in texts]
    result = {"command": "bench/compact.py", "objects": [o["kind"] for o in objs],
              "fieldsv1_leaves": [leaves(fields.owned_fields(o) or {}) for o in objs],
              "json_bytes_per_object": statistics.mean(len(t) for t in texts),
              "held_bytes_per_object_before": round(before), "held_bytes_per_object_after": round(after),
              "json_loads_us_per_object": round(per_object_us(lambda: [json.loads(t) for t in texts], len(texts)), 1),
              "compact_us_per_object": round(per_object_us(lambda: [store.compact(o) for o in slimmed], len(texts)), 1),
              "compact_update_us_per_object": round(per_object_us(
                  lambda: [store.compact(u, held) for u, held in zip(updates, slimmed, strict=True)], len(texts)), 1)}
    (HERE / "compact.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
