"""What the chaos tests share: a burst of Apps, convergence, a hard kill."""

from __future__ import annotations

import json
import signal
from typing import Any

from ..conftest import Operator, app, items, kubectl

CHILDREN = {("Deployment", "app"), ("Service", "app")}
SPEC: dict[str, Any] = {"ports": [{"name": "http", "containerPort": 80}]}


def apply_many(namespace: str, names: list[str], **spec: Any) -> None:
    body = {"apiVersion": "v1", "kind": "List", "items": [app(n, **spec) for n in names]}
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))


def converged(namespace: str, expected: int) -> list[dict[str, Any]] | None:
    apps = items("apps", namespace)
    done = [a for a in apps if (a.get("status") or {}).get("phase") == "Ready"
            and a["status"].get("observedGeneration") == a["metadata"]["generation"]]
    return apps if len(done) == expected == len(apps) else None


def kill(op: Operator) -> None:
    op.proc.send_signal(signal.SIGKILL)
    op.proc.wait()
