from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from appkeeper.api import parse_spec
from appkeeper.desired import Replicas
from appkeeper.status import Observed, Problem, compute_status, set_condition, status_changed

from .conftest import NOW


def deployment(want: int, ready: int, updated: int | None = None, gen: int = 1, observed: int = 1,
               revision: str = "1", conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    updated = ready if updated is None else updated
    return {"kind": "Deployment",
            "metadata": {"generation": gen, "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"template": {"spec": {"containers": [{"name": "shop", "image": "nginx:1.27"}]}}},
            "status": {"observedGeneration": observed, "replicas": want, "readyReplicas": ready,
                       "updatedReplicas": updated, "availableReplicas": ready, "conditions": conditions or []}}


def observe(spec: dict[str, Any] | None = None, old: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    s = parse_spec({"image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 8080, "servicePort": 80}],
                    **(spec or {})})
    return compute_status(Observed(name="shop", namespace="demo", generation=kw.pop("generation", 1),
                                   old_status=old or {}, now=kw.pop("now", NOW), spec=s,
                                   replicas=kw.pop("replicas", Replicas(s.replicas, "Spec")), **kw))


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_ready_when_all_replicas_ready() -> None:
    st = observe({"replicas": 2}, workload=deployment(2, 2), children=[("Deployment", "shop"), ("Service", "shop")])
    assert st["phase"] == "Ready"
    assert cond(st, "Ready")["status"] == "True"
    assert cond(st, "Ready")["reason"] == "AllReplicasReady"
    assert cond(st, "Ready")["message"] == "2/2 replicas ready, running nginx:1.27"
    assert cond(st, "Progressing")["status"] == "False"
    assert cond(st, "Degraded")["status"] == "False"
    assert st["observedGeneration"] == 1
    assert st["selector"] == "appkeeper.dev/app=shop"
    assert st["url"] == "http://shop.demo.svc.cluster.local:80"
    assert st["image"] == "nginx:1.27"
    assert st["lastHealthyRevision"] == "1"
    assert st["children"] == [{"kind": "Deployment", "name": "shop"}, {"kind": "Service", "name": "shop"}]


def test_pending_then_progressing() -> None:
    assert observe({"replicas": 2})["phase"] == "Pending"
    assert observe({"replicas": 2}, workload=deployment(2, 0))["phase"] == "Pending"
    st = observe({"replicas": 2}, old={"lastHealthyRevision": "1"}, workload=deployment(2, 1, updated=1))
    assert st["phase"] == "Progressing"
    assert cond(st, "Progressing")["status"] == "True"
    # A workload whose controller has not seen the new generation is not settled.
    assert observe({"replicas": 2}, workload=deployment(2, 2, gen=2, observed=1))["phase"] != "Ready"


def test_problems_and_invalid_spec() -> None:
    st = observe(workload=deployment(1, 1), problems=[Problem("IngressRejected", "spec.rules: bad")])
    assert st["phase"] == "Degraded"
    assert cond(st, "Degraded")["reason"] == "IngressRejected"
    invalid = compute_status(Observed(name="shop", namespace="demo", generation=3, old_status={}, now=NOW,
                                      problems=[Problem("InvalidSpec", "spec.ingress.port: names no port")]))
    assert invalid["phase"] == "Failed"
    assert cond(invalid, "Ready")["message"] == "spec.ingress.port: names no port"
    assert invalid["observedGeneration"] == 3


def test_deadline_exceeded_degrades() -> None:
    failed = deployment(2, 1, updated=1, revision="2", conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}])
    st = observe({"replicas": 2}, old={"lastHealthyRevision": "1"}, workload=failed)
    assert st["phase"] == "Degraded"
    assert cond(st, "Degraded")["reason"] == "ProgressDeadlineExceeded"
    rolled = observe({"replicas": 2}, old={"lastHealthyRevision": "1"}, workload=failed, rolled_back_to="1")
    assert rolled["phase"] == "Degraded"
    assert cond(rolled, "Degraded")["reason"] == "RolledBack"
    assert rolled["lastHealthyRevision"] == "1"


def test_suspended_and_paused() -> None:
    st = observe({"suspend": True}, workload=deployment(0, 0), replicas=Replicas(0, "Suspended"))
    assert st["phase"] == "Suspended"
    st = observe({"paused": True}, workload=deployment(1, 1))
    assert st["phase"] == "Paused"
    assert "paused" in cond(st, "Ready")["message"]


def test_repairs_accumulate() -> None:
    st = observe(workload=deployment(1, 1), old={"repairs": {"count": 2}}, repairs=["DeploymentDeleted"])
    assert st["repairs"] == {"count": 3, "lastTime": "2026-11-23T12:00:00Z", "lastReason": "DeploymentDeleted"}


def test_transition_time_moves_only_on_flip() -> None:
    conds = set_condition([], "Ready", True, "A", "a", 1, NOW)
    later = NOW + timedelta(minutes=5)
    same = set_condition(conds, "Ready", True, "B", "b", 2, later)
    assert same[0]["lastTransitionTime"] == "2026-11-23T12:00:00Z"
    assert same[0]["observedGeneration"] == 2
    flipped = set_condition(same, "Ready", False, "C", "c", 2, later)
    assert flipped[0]["lastTransitionTime"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_steady_state_status_is_stable() -> None:
    first = observe(workload=deployment(1, 1))
    again = observe(workload=deployment(1, 1), old=first, now=datetime(2027, 1, 1, tzinfo=NOW.tzinfo))
    assert not status_changed(first, again)
