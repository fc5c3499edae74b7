"""Fail-fast rollbacks on the KWOK tier: KWOK Stages (hack/kwokstages.py) make the pods of two
images fail as real ones do. An update to either is shown Degraded, then rolled back by
spec.rollout.failureThreshold, long before the 600 s progress deadline."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import Operator, app, apply, get, wait_for
from .test_operator import condition, wait_healthy

pytestmark = pytest.mark.usefixtures("kwok")
CRASHLOOP = "appkeeper.test/crashloop:1"
PULLFAIL = "appkeeper.test/pullfail:1"


def reason(name: str, ns: str) -> str:
    c = condition(name, ns, "Degraded")
    return str(c.get("reason")) if c.get("status") == "True" else ""


def back_on(name: str, ns: str, image: str) -> bool:
    d: dict[str, Any] = get("deployment", name, ns) or {}
    st = d.get("status") or {}
    return bool(d["spec"]["template"]["spec"]["containers"][0]["image"] == image
                and st.get("observedGeneration") == d["metadata"]["generation"]
                and st.get("updatedReplicas") == st.get("readyReplicas") == st.get("replicas") == 1)


def roll_out(operator: Operator, ns: str, name: str, image: str, **spec: Any) -> tuple[float, float]:
    """A healthy App updated to `image`: seconds until Degraded was shown, and until RolledBack."""
    apply(app(name, replicas=1, **spec), ns)
    wait_healthy(name, ns)
    apply(app(name, replicas=1, image=image, **spec), ns)
    t0 = time.monotonic()
    wait_for("Degraded", lambda: reason(name, ns) != "", timeout=60)
    shown = time.monotonic() - t0
    wait_for("RolledBack", lambda: reason(name, ns) == "RolledBack", timeout=120)
    rolled = time.monotonic() - t0
    wait_for("the healthy revision ready again", lambda: back_on(name, ns, "nginx:1.27"), timeout=60)
    return shown, rolled


def test_a_crash_looping_update_is_rolled_back_with_the_defaults(operator: Operator, namespace: str) -> None:
    shown, rolled = roll_out(operator, namespace, "crashy", CRASHLOOP)
    because = get("app", "crashy", namespace)["status"]["rolledBackBecause"]  # type: ignore[index]
    print(f"KWOK crash loop: Degraded {shown:.1f}s, rolled back {rolled:.1f}s after the update: {because}")
    assert because == ('container crashy: CrashLoopBackOff, exit code 1 (Error): "listen tcp :8080: bind: '
                       'address already in use" (3 restarts, threshold 3)')
    assert shown < 10
    assert rolled < 30


def test_a_failing_pull_is_rolled_back_once_it_has_failed_for_the_threshold(operator: Operator,
                                                                             namespace: str) -> None:
    spec = {"rollout": {"failureThreshold": {"imagePullSeconds": 10}}}
    shown, rolled = roll_out(operator, namespace, "pully", PULLFAIL, **spec)
    because = get("app", "pully", namespace)["status"]["rolledBackBecause"]  # type: ignore[index]
    print(f"KWOK pull failure: Degraded {shown:.1f}s, rolled back {rolled:.1f}s after the update "
          f"(threshold 10s): {because}")
    assert because.startswith("container pully: ImagePullBackOff: ")
    assert because.endswith("threshold 10s)")
    assert shown < 10
    assert 9 <= rolled < 30  # pod times are whole seconds: the threshold holds to within one
