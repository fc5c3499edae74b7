"""Automatic rollback: when a rollout misses its progress deadline and `autoRollback` is on, the
workload goes back to the pod template of `status.lastHealthyRevision` (read from its ReplicaSet)
until the spec changes again."""

from __future__ import annotations

import copy

from . import metrics
from .api import App, Json
from .deps import Deps
from .desired import selector_string
from .status import DEPLOYMENT_REVISION, Observed, deadline_exceeded, workload_revision
from .store import AppKey, ChildKey


class Rollbacks:
    def __init__(self) -> None:
        # App -> (generation rolled back, the template it runs instead of the spec's)
        self.templates: dict[AppKey, tuple[int, Json]] = {}

    def forget(self, key: AppKey) -> None:
        self.templates.pop(key, None)

    def template(self, deps: Deps, app: App, children: dict[ChildKey, Json], obs: Observed) -> Json | None:
        """The pod template to run instead of the spec's, while a failed rollout is rolled back."""
        key = (app.namespace, app.name)
        remembered = self.templates.get(key)
        if remembered and remembered[0] == app.generation:
            return remembered[1]
        self.templates.pop(key, None)
        workload = children.get(("Deployment", app.name))
        if workload is None:
            return None
        if app.status.get("rolledBackGeneration") == app.generation:
            # Rolled back before this process started: the Deployment holds the healthy template.
            return self._keep(key, app, copy.deepcopy(workload["spec"]["template"]))
        healthy = app.status.get("lastHealthyRevision")
        if not (app.spec.rollout.auto_rollback and healthy and deadline_exceeded(workload)
                and workload_revision(workload) != healthy):
            return None
        template = healthy_template(deps, app, str(healthy))
        if template is None:
            return None
        obs.rolled_back_to = healthy
        image = template["spec"]["containers"][0].get("image")
        deps.recorder.post(app.ref, "Warning", "RolledBack", f"rollout of generation {app.generation} missed "
                           f"its progress deadline; rolled back to revision {healthy} ({image})")
        metrics.ROLLBACKS.inc()
        return self._keep(key, app, template)

    def _keep(self, key: AppKey, app: App, template: Json) -> Json:
        self.templates[key] = (app.generation, template)
        return template


def healthy_template(deps: Deps, app: App, revision: str) -> Json | None:
    for rs in deps.kube.list("apps/v1", "ReplicaSet", app.namespace, selector_string(app.name)):
        if rs["metadata"].get("annotations", {}).get(DEPLOYMENT_REVISION) == revision:
            template: Json = copy.deepcopy(rs["spec"]["template"])
            template["metadata"].get("labels", {}).pop("pod-template-hash", None)
            template["metadata"].pop("creationTimestamp", None)
            return template
    return None
