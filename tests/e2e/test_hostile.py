"""A hostile tenant against the real API server: a pathological quantity, a 1 MiB spec and 60
labelled 900 KB ConfigMaps for an App that does not exist, all at once. Meanwhile a healthy App
becomes Ready in its usual time and the operator's memory barely moves (issue: one tenant must
never take appkeeper down for the others)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .conftest import app, apply, get, kubectl, rss_mib, start_operator, stop_operator, wait_for
from .test_operator import wait_ready

MIB = 1024 * 1024


def configmaps(n: int, size: int, app_label: str) -> str:
    """`n` ConfigMaps of `size` bytes each, labelled for App `app_label`, as one List."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"junk-{i}",
                                                              "labels": {"appkeeper.dev/app": app_label}},
         "data": {"blob": chr(ord("a") + i % 26) * size}} for i in range(n)]})


def test_a_hostile_tenant_stalls_nobody_and_fills_no_memory(crd: str, namespace: str, tmp_path: Path) -> None:
    # An operator of this namespace alone: what other tests leave behind is not in its memory.
    operator = start_operator(tmp_path, f"--namespace={namespace}")
    try:
        attack(operator.proc.pid, namespace)
        assert operator.proc.poll() is None
    finally:
        stop_operator(operator)


def attack(pid: int, namespace: str) -> None:
    apply(app("warm"), namespace)
    wait_ready("warm", namespace)  # the code paths warmed: what follows is measured against this
    before = rss_mib(pid)
    # Finding 1: a quantity the old pattern took minutes to refuse is refused at apply, by the schema.
    slow = app("slow", resources={"requests": {"cpu": "1" * 200_000 + "e1.5"}})
    refused = apply(slow, namespace, check=False)
    assert refused.returncode != 0
    assert "spec.resources.requests.cpu: Too long: may not be more than 64" in refused.stderr
    # A 1 MiB spec the schema allows (40 variables of 26.5 KB), and 60 ConfigMaps of 900 KB labelled
    # for an App nobody made (finding 2); then, at once, a healthy App.
    big = app("big", env=[{"name": f"V{i}", "value": chr(ord("a") + i % 26) * 26_500} for i in range(40)])
    assert len(json.dumps(big)) > MIB
    kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=json.dumps(big))
    kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=configmaps(60, 900_000, "ghost"))
    started = time.monotonic()
    apply(app("fine"), namespace)
    wait_ready("fine", namespace, timeout=30)
    took = time.monotonic() - started
    wait_ready("big", namespace, timeout=60)
    assert get("deployment", "big", namespace) is not None
    # Whatever the operator decoded is gone: its memory grew by the big App's own objects only.
    def settled() -> tuple[bool, float] | None:
        grown = rss_mib(pid) - before
        return (True, grown) if grown < 25 else None

    _, grown = wait_for("the operator's RSS to be within 25 MiB of before", settled, timeout=45)
    print(f"hostile tenant: healthy App Ready in {took:.1f}s; operator RSS {before:.1f} MiB -> "
          f"+{grown:.1f} MiB")
