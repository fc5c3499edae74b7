"""Automatic rollback: when a rollout fails and `autoRollback` is on, the workload goes back to the
pod template of `status.lastHealthyRevision` (read from its ReplicaSet) until the spec changes
again; or, when a newer revision has been serving since (its pods ready and running for
failfast.STABLE_SECONDS beside the failing ones, as when changes come faster than a revision can be
recorded healthy), to that one. A rollout fails when a pod of the new revision crosses `spec.rollout.failureThreshold`
(failfast.py: restarts, a failing image pull, unschedulable, for so long) or, as the backstop, when
the Deployment misses its progress deadline."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from .api import App, Json
from .deps import Deps
from .desired import selector_string
from .failfast import TEMPLATE_HASH, rollout_failure, stable_in
from .memory import Memory
from .podhealth import workload_pods
from .status import DEPLOYMENT_REVISION, deadline_exceeded, workload_revision
from .store import AppKey, ChildKey


@dataclass(frozen=True)
class Rollback:
    """The pod template to run instead of the spec's; `cause` is set when the rollback starts in
    this reconcile (the caller says so in status, an Event and the metric)."""

    template: Json
    revision: str | None = None
    cause: str | None = None
    generation: int = 0

    @property
    def event(self) -> str:
        image = self.template["spec"]["containers"][0].get("image")
        return (f"rollout of generation {self.generation} failed: {self.cause}; rolled back to revision "
                f"{self.revision} ({image})")


class Rollbacks:
    def __init__(self, memory: Memory) -> None:
        # Per App (memory.py): (generation rolled back, the template it runs instead of the spec's)
        self.memory = memory

    def template(self, deps: Deps, app: App, children: dict[ChildKey, Json], now: datetime) -> Rollback | None:
        """Reads only (the store; the ReplicaSets once a rollout has failed): the pod template to
        run instead of the spec's, while a failed rollout is rolled back."""
        key = (app.namespace, app.name)
        remembered = self.memory.rollback(key)
        if remembered and remembered[0] == app.generation:
            return Rollback(remembered[1])
        self.memory.roll_back(key, None)
        workload = children.get(("Deployment", app.name))
        if workload is None:
            return None
        if app.status.get("rolledBackGeneration") == app.generation:
            # Rolled back before this process started: the Deployment holds the healthy template.
            return self._keep(key, app, Rollback(copy.deepcopy(workload["spec"]["template"])))
        healthy = app.status.get("lastHealthyRevision")
        if not app.spec.rollout.auto_rollback or workload_revision(workload) in (None, healthy):
            return None
        failed = self._failure(deps, app, str(healthy) if healthy else None, workload, now)
        if failed is None:
            return None
        cause, replicaset = failed
        revision = str(replicaset["metadata"]["annotations"][DEPLOYMENT_REVISION])
        return self._keep(key, app, Rollback(pod_template(replicaset), revision, cause, app.generation))

    @staticmethod
    def _failure(deps: Deps, app: App, healthy: str | None, workload: Json,
                 now: datetime) -> tuple[str, Json] | None:
        """Why the rollout failed, with the ReplicaSet to go back to; None while it has not, or
        when no revision has proved itself. The ReplicaSets are listed only once the pods say
        something crossed the threshold."""
        pods = workload_pods(app.name, deps.store.pods((app.namespace, app.name)))
        threshold = app.spec.rollout.failure_threshold
        late = deadline_exceeded(workload)
        if not late and rollout_failure(pods, None, threshold, now) is None:
            return None
        replicaset = rollback_target(deps, app, healthy, workload, pods, now)
        if replicaset is None:
            return None
        if late:
            return f"missed its progress deadline ({app.spec.rollout.progress_deadline_seconds}s)", replicaset
        pod_hash = (replicaset["metadata"].get("labels") or {}).get(TEMPLATE_HASH)
        cause = rollout_failure(pods, pod_hash, threshold, now)
        return None if cause is None else (cause, replicaset)

    def _keep(self, key: AppKey, app: App, rollback: Rollback) -> Rollback:
        self.memory.roll_back(key, (app.generation, rollback.template))
        return rollback


def rollback_target(deps: Deps, app: App, healthy: str | None, workload: Json, pods: list[Json],
                    now: datetime) -> Json | None:
    """The newest ReplicaSet of the App's Deployment, other than the failing revision's, that is
    either `healthy` (status.lastHealthyRevision) or serving now from pods that proved themselves.
    Only ReplicaSets the Deployment controls count (one merely labelled for the App, made by anyone
    who may create ReplicaSets, must not choose what a rollback runs)."""
    current, uid = workload_revision(workload), workload["metadata"].get("uid")
    serving = {(p["metadata"].get("labels") or {}).get(TEMPLATE_HASH) for p in pods if proven(p, now)}
    candidates = []
    for rs in deps.kube.list("apps/v1", "ReplicaSet", app.namespace, selector_string(app.name)):
        meta = rs["metadata"]
        revision = str((meta.get("annotations") or {}).get(DEPLOYMENT_REVISION) or "")
        controlled = any(r.get("uid") == uid and r.get("controller") for r in meta.get("ownerReferences") or [])
        good = revision == healthy or (meta.get("labels") or {}).get(TEMPLATE_HASH) in serving - {None}
        if controlled and good and revision.isdigit() and revision != current:
            candidates.append((int(revision), rs))
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def proven(pod: Json, now: datetime) -> bool:
    """A pod that is not going away, with every container ready and running for STABLE_SECONDS."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and not (pod.get("metadata") or {}).get("deletionTimestamp") \
        and all(cs.get("ready") for cs in statuses) and stable_in([pod], now) == 0


def pod_template(replicaset: Json) -> Json:
    template: Json = copy.deepcopy(replicaset["spec"]["template"])
    template["metadata"].get("labels", {}).pop(TEMPLATE_HASH, None)
    template["metadata"].pop("creationTimestamp", None)
    return template
