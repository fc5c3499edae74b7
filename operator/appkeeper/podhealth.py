"""Pure: the App's pods -> why they cannot run, in a person's words (or None).

Read from what the kubelet and the scheduler report in pod status: a container waiting for a
reason that will not fix itself, a container that keeps exiting with an error, a pod that cannot
be scheduled. The message names the container and the cause."""

from __future__ import annotations

from collections.abc import Iterable

from .api import Json
from .reasons import CRASH_LOOP, POD_SECURITY, REPLICA_FAILURE, STUCK_WAITING, UNSCHEDULABLE
from .status import Problem


def first_line(text: str | None, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def termination(terminated: Json) -> str:
    """`exit code 1 (Error): "message"` from a containerStateTerminated."""
    out = f"exit code {terminated.get('exitCode', '?')}"
    if terminated.get("reason"):
        out += f" ({terminated['reason']})"
    if first_line(terminated.get("message")):
        out += f': "{first_line(terminated.get("message"))}"'
    return out


def container_problem(cs: Json) -> Problem | None:
    name = cs.get("name", "?")
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated")
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason")
    if reason == CRASH_LOOP:
        why = termination(last) if last else first_line(waiting.get("message"))
        return Problem(reason, f"container {name}: CrashLoopBackOff, {why}")
    if reason in STUCK_WAITING:
        msg = first_line(waiting.get("message"))
        return Problem(reason, f"container {name}: {reason}" + (f": {msg}" if msg else ""))
    terminated = state.get("terminated")
    # Between a crash and the back-off the kubelet reports: a restarted container that failed again.
    if terminated and terminated.get("exitCode", 0) != 0 and int(cs.get("restartCount") or 0) > 0:
        return Problem(CRASH_LOOP, f"container {name}: CrashLoopBackOff, {termination(terminated)}")
    return None


def pod_problem(pod: Json) -> Problem | None:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                and cond.get("reason") == UNSCHEDULABLE:
            return Problem(UNSCHEDULABLE, f"pod {pod['metadata'].get('name')}: "
                                            f"{first_line(cond.get('message')) or 'cannot be scheduled'}")
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        problem = container_problem(cs)
        if problem is not None:
            return problem
    return None


def pods_problem(pods: Iterable[Json]) -> Problem | None:
    """The first problem among `pods`, in name order (stable from one reconcile to the next)."""
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        problem = pod_problem(pod)
        if problem is not None:
            return problem
    return None


def _cannot_create(kind: str, name: str, message: str) -> Problem:
    reason = POD_SECURITY if "violates PodSecurity" in message else REPLICA_FAILURE
    return Problem(reason, f"{kind} {name} cannot create pods: {first_line(message, 400)}")


def workload_problem(workload: Json | None) -> Problem | None:
    """The workload controller could not create pods at all (quota, a missing ServiceAccount, Pod
    Security, invalid labels): its ReplicaFailure condition, in the cluster's words."""
    if workload is None:
        return None
    for cond in (workload.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return _cannot_create(workload["kind"], workload["metadata"]["name"],
                                  str(cond.get("message") or cond.get("reason")))
    return None


def creating_pods(workload: Json | None) -> bool:
    """A StatefulSet that has fewer pods than it wants. It has no ReplicaFailure condition: why it
    cannot create them is only in its FailedCreate Events (failed_create)."""
    if workload is None or workload.get("kind") != "StatefulSet":
        return False
    status = workload.get("status") or {}
    return int(status.get("replicas") or 0) < int((workload.get("spec") or {}).get("replicas") or 0)


def _event_time(event: Json) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp"))


def failed_create(workload: Json, events: list[Json]) -> Problem | None:
    """The StatefulSet controller's latest FailedCreate Event about `workload` (this incarnation)."""
    uid = workload["metadata"].get("uid")
    mine = [e for e in events if e.get("reason") == "FailedCreate"
            and (e.get("involvedObject") or {}).get("uid") in (None, uid)]
    if not mine:
        return None
    latest = max(mine, key=_event_time)
    return _cannot_create(workload["kind"], workload["metadata"]["name"], str(latest.get("message")))


def workload_pods(app_name: str, pods: Iterable[Json]) -> list[Json]:
    """The pods the App's workload made: controlled by one of its Deployment's ReplicaSets
    (`<app>-<pod-template-hash>`) or by its StatefulSet. Anyone who may create pods can label one
    for the App; only these are judged (a stranger's crashing pod must not steer a rollback)."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        ref = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        if ref is None:
            continue
        template_hash = (meta.get("labels") or {}).get("pod-template-hash")
        if (ref.get("kind") == "ReplicaSet" and template_hash and ref.get("name") == f"{app_name}-{template_hash}") \
                or (ref.get("kind") == "StatefulSet" and ref.get("name") == app_name):
            out.append(pod)
    return out
