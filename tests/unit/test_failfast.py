"""failfast.py over recorded pod statuses: when the new revision has failed badly enough."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appkeeper.api import FailureThreshold
from appkeeper.failfast import rollout_failure, stable_in

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DEFAULT = FailureThreshold()
RUNNING: dict[str, Any] = {"name": "shop", "ready": True, "restartCount": 0, "state": {"running": {}}}
INITIALIZING: dict[str, Any] = {"name": "shop", "state": {"waiting": {"reason": "PodInitializing"}}}


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str = "shop-new-1", hash_: str = "new", started: float = 5, deleting: bool = False,
        containers: list[dict[str, Any]] | None = None, init: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"pod-template-hash": hash_}}
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    status: dict[str, Any] = {"startTime": ago(started), "containerStatuses": containers or [],
                              "conditions": conditions or []}
    if init:
        status["initContainerStatuses"] = init
    return {"metadata": meta, "status": status}


def crashing(restarts: int, name: str = "shop") -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "bind: address in use\n..."}}}


def pulling(reason: str = "ImagePullBackOff") -> dict[str, Any]:
    return {"name": "shop", "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": "pull 127.0.0.1:5999/x:1: connection refused"}}}


def unschedulable(since: float) -> dict[str, Any]:
    return {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": ago(since), "message": "0/4 nodes are available: 4 Insufficient cpu."}


@pytest.mark.parametrize(("pods", "expected"), [
    ([pod(containers=[crashing(2)])], None),  # under the threshold
    ([pod(containers=[crashing(3)])],
     'container shop: CrashLoopBackOff, exit code 1 (Error): "bind: address in use" (3 restarts, threshold 3)'),
    ([pod(containers=[RUNNING | {"restartCount": 7}])], None),  # recovered
    ([pod(containers=[RUNNING, crashing(4, "sidecar")])],
     'container sidecar: CrashLoopBackOff, exit code 1 (Error): "bind: address in use" (4 restarts, threshold 3)'),
    ([pod(init=[crashing(3, "migrate")], containers=[INITIALIZING])],
     'container migrate: CrashLoopBackOff, exit code 1 (Error): "bind: address in use" (3 restarts, threshold 3)'),
    ([pod(containers=[{"name": "shop", "ready": False, "restartCount": 3, "state": {"running": {}},
                       "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}])],
     "container shop: restarting, last exit code 2 (Error) (3 restarts, threshold 3)"),  # between two crashes
    ([pod(started=30, containers=[pulling()])], None),  # failing, not yet for 60 s
    ([pod(started=61, containers=[pulling("ErrImagePull")])],
     "container shop: ErrImagePull: pull 127.0.0.1:5999/x:1: connection refused (for 61s, threshold 60s)"),
    ([pod(started=90, containers=[pulling("InvalidImageName")])],
     "container shop: InvalidImageName: pull 127.0.0.1:5999/x:1: connection refused (for 90s, threshold 60s)"),
    ([pod(conditions=[unschedulable(60)])], None),
    ([pod(conditions=[unschedulable(121)])],
     "pod shop-new-1 unschedulable for 121s (threshold 120s): 0/4 nodes are available: 4 Insufficient cpu."),
    ([pod(hash_="healthy", containers=[crashing(9)])], None),  # the healthy revision's pods do not count
    ([pod(deleting=True, containers=[crashing(9)])], None),  # going away
    ([pod("b", containers=[crashing(3, "bee")]), pod("a", containers=[crashing(5, "ant")])],
     'container ant: CrashLoopBackOff, exit code 1 (Error): "bind: address in use" (5 restarts, threshold 3)'),
], ids=["2-restarts", "3-restarts", "recovered", "multi-container", "init-container", "restarting", "pull-30s",
        "pull-61s", "invalid-name", "unschedulable-60s", "unschedulable-121s", "healthy-revision", "deleting",
        "name-order"])
def test_the_threshold(pods: list[dict[str, Any]], expected: str | None) -> None:
    assert rollout_failure(pods, "healthy", DEFAULT, NOW) == expected


def test_a_lower_threshold_is_crossed_sooner() -> None:
    quick = FailureThreshold(restarts=1, image_pull_seconds=10, unschedulable_seconds=5)
    assert rollout_failure([pod(containers=[crashing(1)])], None, quick, NOW) is not None
    assert rollout_failure([pod(started=11, containers=[pulling()])], None, quick, NOW) is not None
    assert rollout_failure([pod(conditions=[unschedulable(6)])], None, quick, NOW) is not None


def running_pod(started: float, name: str = "p") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"containerStatuses": [
        {"name": "shop", "ready": True, "state": {"running": {"startedAt": ago(started)}}}]}}


def test_a_revision_is_proven_only_once_its_containers_kept_running() -> None:
    assert stable_in([], NOW) == 0
    assert stable_in([running_pod(30)], NOW) == 0
    assert stable_in([running_pod(30), running_pod(4, "q")], NOW) == 6
    crashed = pod(containers=[crashing(1)])
    assert stable_in([running_pod(30), crashed], NOW) == float("inf")
    gone = dict(crashed, metadata={"name": "x", "deletionTimestamp": ago(1)})
    assert stable_in([running_pod(30), gone], NOW) == 0
