"""Pure: has the new revision failed badly enough to roll back now, without waiting for the
progress deadline? `spec.rollout.failureThreshold` says how bad: a new pod's container restarted
N times, an image pull failing for N seconds, a pod unschedulable for N seconds."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .api import FailureThreshold, Json
from .podhealth import container_problem, first_line, termination
from .reasons import PULL_FAILURES, UNSCHEDULABLE

STABLE_SECONDS = 10.0  # how long a revision's containers must keep running before it counts as healthy
TIMED_FAILURES = (*PULL_FAILURES, UNSCHEDULABLE)  # crossed by time passing, not by an event
TEMPLATE_HASH = "pod-template-hash"


def parse_time(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def seconds_since(stamp: str | None, now: datetime) -> float:
    then = parse_time(stamp)
    return 0.0 if then is None else (now - then).total_seconds()


def restarting(cs: Json) -> str:
    """A container just started again after a failure: what the last run ended with."""
    last = (cs.get("lastState") or {}).get("terminated")
    name = cs.get("name", "?")
    return f"container {name}: restarting, last {termination(last)}" if last else f"container {name} is not ready"


def container_failure(cs: Json, pod_age: float, threshold: FailureThreshold) -> str | None:
    restarts = int(cs.get("restartCount") or 0)
    problem = container_problem(cs)
    if restarts >= threshold.restarts and (problem is not None or not cs.get("ready")):
        return f"{problem.message if problem else restarting(cs)} ({restarts} restarts, threshold {threshold.restarts})"
    waiting = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
    if waiting in PULL_FAILURES and pod_age >= threshold.image_pull_seconds and problem is not None:
        return f"{problem.message} (for {pod_age:.0f}s, threshold {threshold.image_pull_seconds}s)"
    return None


def pod_failure(pod: Json, threshold: FailureThreshold, now: datetime) -> str | None:
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                and cond.get("reason") == UNSCHEDULABLE:
            stuck = seconds_since(cond.get("lastTransitionTime"), now)
            if stuck >= threshold.unschedulable_seconds:
                return (f"pod {pod['metadata'].get('name')} unschedulable for {stuck:.0f}s "
                        f"(threshold {threshold.unschedulable_seconds}s): {first_line(cond.get('message'))}")
    age = seconds_since(status.get("startTime") or pod["metadata"].get("creationTimestamp"), now)
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        failure = container_failure(cs, age, threshold)
        if failure is not None:
            return failure
    return None


def rollout_failure(pods: Iterable[Json], healthy_hash: str | None, threshold: FailureThreshold,
                    now: datetime) -> str | None:
    """Why the pods not of the healthy revision crossed the threshold (the first, in name order),
    or None. Pods of the healthy revision (its pod-template-hash) and pods going away do not count."""
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or (healthy_hash and (meta.get("labels") or {}).get(TEMPLATE_HASH)
                                             == healthy_hash):
            continue
        failure = pod_failure(pod, threshold, now)
        if failure is not None:
            return failure
    return None


def stable_in(pods: Iterable[Json], now: datetime, window: float = STABLE_SECONDS) -> float:
    """Seconds until every container of `pods` has been running for `window` (0: already; inf: a
    container is not running, so only a pod event can change that)."""
    wait = 0.0
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            running = (cs.get("state") or {}).get("running")
            if running is None:
                return float("inf")
            wait = max(wait, window - seconds_since(running.get("startedAt"), now))
    return max(0.0, wait)
