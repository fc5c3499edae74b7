"""The pod-state classifier over pod statuses as the kubelet and scheduler report them."""

from __future__ import annotations

from typing import Any

import pytest

from appkeeper.podhealth import creating_pods, failed_create, pod_problem, pods_problem, workload_problem


def pod(name: str = "shop-1", *, containers: list[dict[str, Any]] | None = None,
        init: list[dict[str, Any]] | None = None, conditions: list[dict[str, Any]] | None = None,
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"containerStatuses": containers or [],
                                         "initContainerStatuses": init or [], "conditions": conditions or []}}


def waiting(reason: str, message: str = "", name: str = "app", **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}, **extra}


CRASHED = {"terminated": {"exitCode": 1, "reason": "Error", "message": "listen tcp :8080: bind: in use\nmore"}}

CASES = [
    ("pull back-off", pod(containers=[waiting("ImagePullBackOff", 'Back-off pulling image "127.0.0.1:1/x"')]),
     "ImagePullBackOff", 'container app: ImagePullBackOff: Back-off pulling image "127.0.0.1:1/x"'),
    ("pull error", pod(containers=[waiting("ErrImagePull", "dial tcp 127.0.0.1:1: connect: refused\ndetail")]),
     "ErrImagePull", "container app: ErrImagePull: dial tcp 127.0.0.1:1: connect: refused"),
    ("invalid name", pod(containers=[waiting("InvalidImageName", "bad ref")]), "InvalidImageName",
     "container app: InvalidImageName: bad ref"),
    ("crash loop with last termination",
     pod(containers=[waiting("CrashLoopBackOff", "back-off 10s", restartCount=2, lastState=CRASHED)]),
     "CrashLoopBackOff", 'container app: CrashLoopBackOff, exit code 1 (Error): "listen tcp :8080: bind: in use"'),
    ("OOM killed", pod(containers=[waiting("CrashLoopBackOff", restartCount=1,
                                           lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})]),
     "CrashLoopBackOff", "container app: CrashLoopBackOff, exit code 137 (OOMKilled)"),
    ("failed again before the back-off", pod(containers=[{"name": "app", "restartCount": 1, "state": CRASHED}]),
     "CrashLoopBackOff", 'container app: CrashLoopBackOff, exit code 1 (Error): "listen tcp :8080: bind: in use"'),
    ("missing config key", pod(containers=[waiting("CreateContainerConfigError", 'configmap "cfg" not found')]),
     "CreateContainerConfigError", 'container app: CreateContainerConfigError: configmap "cfg" not found'),
    ("init container", pod(init=[waiting("RunContainerError", "exec: not found", name="setup")],
                           containers=[waiting("PodInitializing", name="app")]),
     "RunContainerError", "container setup: RunContainerError: exec: not found"),
    ("second container", pod(containers=[{"name": "a", "state": {"running": {}}},
                                         waiting("ErrImagePull", "nope", name="b")]),
     "ErrImagePull", "container b: ErrImagePull: nope"),
    ("unschedulable", pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                       "message": "0/4 nodes are available: 4 Insufficient cpu."}]),
     "Unschedulable", "pod shop-1: 0/4 nodes are available: 4 Insufficient cpu."),
]


@pytest.mark.parametrize(("case", "body", "reason", "message"), CASES, ids=[c[0] for c in CASES])
def test_classifies(case: str, body: dict[str, Any], reason: str, message: str) -> None:
    problem = pod_problem(body)
    assert problem is not None, case
    assert (problem.reason, problem.message) == (reason, message)


@pytest.mark.parametrize("body", [
    pod(containers=[{"name": "app", "state": {"running": {}}, "ready": True}]),
    pod(containers=[waiting("ContainerCreating")]),
    # Recovered: restarted once, running now.
    pod(containers=[{"name": "app", "restartCount": 1, "state": {"running": {}}, "lastState": CRASHED}]),
    # Exited 0 (a finished container) is not a failure.
    pod(containers=[{"name": "app", "restartCount": 1, "state": {"terminated": {"exitCode": 0}}}]),
    # On its way out: its state no longer speaks for the App.
    pod(containers=[waiting("ImagePullBackOff")], deleting=True),
    {"metadata": {"name": "new"}},
], ids=["running", "creating", "recovered", "completed", "deleting", "no-status"])
def test_healthy_pods_have_no_problem(body: dict[str, Any]) -> None:
    assert pod_problem(body) is None


def test_first_problem_in_name_order_is_stable() -> None:
    pods = [pod("b", containers=[waiting("ErrImagePull", "b")]), pod("a", containers=[waiting("ImagePullBackOff")]),
            pod("c")]
    first = pods_problem(pods)
    assert first is not None
    assert first.reason == "ImagePullBackOff"
    assert pods_problem(reversed(pods)) == first
    assert pods_problem([pod("c")]) is None


def workload(kind: str, want: int, have: int, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "shop", "namespace": "ns", "uid": "u1"}, "spec": {"replicas": want},
            "status": {"replicas": have, "conditions": conditions or []}}


def event(message: str, at: str, uid: str | None = "u1", reason: str = "FailedCreate") -> dict[str, Any]:
    return {"reason": reason, "message": message, "lastTimestamp": at, "metadata": {},
            "involvedObject": {"kind": "StatefulSet", "name": "shop", "uid": uid}}


PSA = 'pods "shop-0" is forbidden: violates PodSecurity "restricted:latest": unrestricted capabilities'


@pytest.mark.parametrize(("case", "obj", "reason", "says"), [
    ("deployment-quota", workload("Deployment", 3, 1, [{"type": "ReplicaFailure", "status": "True",
                                                         "message": "pods \"x\" is forbidden: exceeded quota"}]),
     "ReplicaFailure", "Deployment shop cannot create pods: pods \"x\" is forbidden: exceeded quota"),
    ("deployment-psa", workload("Deployment", 1, 0, [{"type": "ReplicaFailure", "status": "True", "message": PSA}]),
     "PodSecurity", "violates PodSecurity"),
    ("resolved", workload("Deployment", 1, 1, [{"type": "ReplicaFailure", "status": "False", "message": PSA}]),
     None, None),
    ("no-conditions", workload("StatefulSet", 2, 0), None, None),
])
def test_workload_problem(case: str, obj: dict[str, Any], reason: str | None, says: str | None) -> None:
    problem = workload_problem(obj)
    assert (problem.reason if problem else None) == reason
    assert says is None or (problem is not None and says in problem.message)


@pytest.mark.parametrize(("obj", "creating"), [
    (workload("StatefulSet", 2, 0), True),
    (workload("StatefulSet", 2, 1), True),
    (workload("StatefulSet", 2, 2), False),
    (workload("StatefulSet", 0, 0), False),
    (workload("Deployment", 2, 0), False),  # its ReplicaFailure condition says it
    (None, False),
])
def test_only_a_statefulset_short_of_pods_asks_its_events(obj: dict[str, Any] | None, creating: bool) -> None:
    assert creating_pods(obj) is creating


@pytest.mark.parametrize(("events", "reason", "says"), [
    ([], None, None),
    ([event("create Pod shop-0 in StatefulSet shop failed error: " + PSA, "2026-01-01T00:00:01Z")],
     "PodSecurity", "StatefulSet shop cannot create pods: create Pod shop-0"),
    # The latest wins; an older incarnation's (another uid) and other reasons do not count.
    ([event("old: serviceaccount \"a\" not found", "2026-01-01T00:00:01Z"),
      event("new: serviceaccount \"b\" not found", "2026-01-01T00:00:09Z"),
      event("someone else's", "2026-01-01T00:00:10Z", uid="u0"),
      event("created", "2026-01-01T00:00:11Z", reason="SuccessfulCreate")], "ReplicaFailure", "new: serviceaccount"),
])
def test_failed_create_quotes_the_latest_event(events: list[dict[str, Any]], reason: str | None,
                                               says: str | None) -> None:
    problem = failed_create(workload("StatefulSet", 1, 0), events)
    assert (problem.reason if problem else None) == reason
    assert says is None or (problem is not None and says in problem.message)
