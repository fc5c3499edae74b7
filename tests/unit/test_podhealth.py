"""The pod-state classifier over pod statuses as the kubelet and scheduler report them."""

from __future__ import annotations

from typing import Any

import pytest

from appkeeper.podhealth import pod_problem, pods_problem


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
