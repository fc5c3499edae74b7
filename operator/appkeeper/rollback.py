"""Automatic rollback: when a rollout fails and `autoRollback` is on, the workload goes back to the
pod template of `status.lastHealthyRevision` (read from its ReplicaSet) until the spec changes
again. A rollout fails when a pod of the new revision crosses `spec.rollout.failureThreshold`
(failfast.py: restarts, a failing image pull, unschedulable, for so long) or, as the backstop, when
the Deployment misses its progress deadline."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from .api import App, Json
from .deps import Deps
from .desired import selector_string
from .failfast import TEMPLATE_HASH, rollout_failure
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
        if not (app.spec.rollout.auto_rollback and healthy and workload_revision(workload) != healthy):
            return None
        failed = self._failure(deps, app, str(healthy), workload, now)
        if failed is None:
            return None
        cause, replicaset = failed
        return self._keep(key, app, Rollback(pod_template(replicaset), str(healthy), cause, app.generation))

    @staticmethod
    def _failure(deps: Deps, app: App, healthy: str, workload: Json, now: datetime) -> tuple[str, Json] | None:
        """Why the rollout failed, with the healthy revision's ReplicaSet; None while it has not.
        The ReplicaSets are listed only once the pods say something crossed the threshold."""
        pods = workload_pods(app.name, deps.store.pods((app.namespace, app.name)))
        threshold = app.spec.rollout.failure_threshold
        late = deadline_exceeded(workload)
        if not late and rollout_failure(pods, None, threshold, now) is None:
            return None
        replicaset = healthy_replicaset(deps, app, healthy, str(workload["metadata"].get("uid")))
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


def healthy_replicaset(deps: Deps, app: App, revision: str, deployment_uid: str) -> Json | None:
    """The ReplicaSet of `revision` that the App's Deployment controls (one merely labelled for the
    App, made by anyone who may create ReplicaSets, must not choose what a rollback runs)."""
    for rs in deps.kube.list("apps/v1", "ReplicaSet", app.namespace, selector_string(app.name)):
        controlled = any(r.get("uid") == deployment_uid and r.get("controller")
                         for r in rs["metadata"].get("ownerReferences") or [])
        if controlled and rs["metadata"].get("annotations", {}).get(DEPLOYMENT_REVISION) == revision:
            return rs
    return None


def pod_template(replicaset: Json) -> Json:
    template: Json = copy.deepcopy(replicaset["spec"]["template"])
    template["metadata"].get("labels", {}).pop(TEMPLATE_HASH, None)
    template["metadata"].pop("creationTimestamp", None)
    return template
