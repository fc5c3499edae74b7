"""Reconcile one App: build what it implies, apply what changed or drifted, prune what it no
longer asks for, roll back a failed rollout, and patch status once. Level-based: the same call
answers create, update, a child's deletion or edit, and the periodic resync."""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import metrics
from .api import API_VERSION, KIND, App, Json, SpecError, parse_app
from .desired import (
    ANN_HASH,
    ANN_RETAIN,
    ANN_RETAINED_FROM,
    CHILD_KINDS,
    LABEL_APP,
    build_children,
    child_key,
    selector_string,
    workload_replicas,
)
from .fields import covers, lost_fields, owned_fields, restore_lists, uncovered_lists
from .kube import ApiError, Kube
from .podhealth import pods_problem
from .schedules import next_change, scheduled_minimum
from .status import (
    DEPLOYMENT_REVISION,
    Observed,
    Problem,
    compute_status,
    deadline_exceeded,
    status_changed,
    timestamp,
    workload_revision,
)
from .store import AppKey, ChildKey, Store

FINALIZER = "appkeeper.dev/retain-volumes"
log = logging.getLogger("appkeeper.reconcile")


@dataclass
class Applied:
    """What our last apply of a child left: its input hash and the fields we then owned."""

    hash: str
    fields: Json


@dataclass
class Outcome:
    requeue_after: float | None = None
    repairs: list[str] = field(default_factory=list)


class TransientError(Exception):
    """Worth retrying with backoff (API unavailable, conflict, throttled)."""


def _retained(kind: str, obj: Json) -> bool:
    """A claim created with `retain: true` (recorded on it, since the spec may no longer say so)."""
    return kind == "PersistentVolumeClaim" and obj["metadata"].get("annotations", {}).get(ANN_RETAIN) == "true"


class Reconciler:
    def __init__(self, kube: Kube, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.kube = kube
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.applied: dict[tuple[AppKey, ChildKey], Applied] = {}
        self.rollback_templates: dict[AppKey, tuple[int, Json]] = {}

    def forget(self, key: AppKey) -> None:
        for k in [k for k in self.applied if k[0] == key]:
            del self.applied[k]
        self.rollback_templates.pop(key, None)

    # --- entry point ---------------------------------------------------------------------------

    def reconcile(self, key: AppKey) -> Outcome:
        body = self.store.app(key)
        if body is None:
            self.forget(key)
            return Outcome()
        started = time.monotonic()
        try:
            return self._reconcile(body)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)

    def _reconcile(self, body: Json) -> Outcome:
        now = self.clock()
        meta = body["metadata"]
        key: AppKey = (meta["namespace"], meta["name"])
        try:
            app = parse_app(body)
        except SpecError as e:
            return self._invalid(body, e, now)
        if app.deleting:
            self._release_claims(app)
            self._set_finalizer(app, body, False)
            return Outcome()
        self._set_finalizer(app, body, self._needs_finalizer(app))
        observed_children = self.store.children(key)
        replicas = workload_replicas(app.spec, now)
        _, window = scheduled_minimum(app.spec, now)
        obs = Observed(name=app.name, namespace=app.namespace, generation=app.generation,
                       old_status=app.status, now=now, spec=app.spec, replicas=replicas,
                       active_schedule=window.name if window else None)
        outcome = Outcome()
        if app.spec.paused:
            obs.workload = self._workload(observed_children)
            obs.children = sorted(observed_children)
        else:
            override = self._rollback_template(app, observed_children, obs)
            desired = build_children(app, now, override)
            for obj in desired:
                self._converge_child(app, obj, observed_children.get(child_key(obj)), obs, outcome)
            wanted = {child_key(o) for o in desired}
            self._prune(app, observed_children, wanted)
            current = self.store.children(key)
            obs.children = sorted(k for k in wanted if k in current)
            obs.workload = current.get(child_key(desired[0]))
            pods = pods_problem(self.store.pods(key))
            if pods is not None:
                obs.problems.append(pods)
        obs.repairs = outcome.repairs
        self._write_status(app.namespace, app.name, app.status, compute_status(obs))
        outcome.requeue_after = self._requeue_after(app, now)
        return outcome

    # --- children ------------------------------------------------------------------------------

    def _converge_child(self, app: App, obj: Json, seen: Json | None, obs: Observed, outcome: Outcome) -> None:
        kind, name = child_key(obj)
        mem_key = ((app.namespace, app.name), (kind, name))
        want_hash = obj["metadata"]["annotations"][ANN_HASH]
        if seen is None:
            # The watch may not have listed it yet: ask before calling it deleted.
            seen = self.kube.get(obj["apiVersion"], kind, app.namespace, name)
            if seen is not None:
                self.store.put_child(seen)
        mem = self.applied.get(mem_key)
        repair: str | None = None
        detail = ""
        lost: list[str] = []
        if seen is None:
            if {"kind": kind, "name": name} in (app.status.get("children") or []):
                repair, detail = f"{kind}Deleted", f"{kind} {name} was deleted; recreated it"
        elif mem is not None and mem.hash == want_hash:
            lost = lost_fields(mem.fields, owned_fields(seen))
            if not lost:
                return
            repair = f"{kind}Drift"
            detail = f"{kind} {name} was changed by someone else ({', '.join(lost[:5])}); put it back"
        elif seen["metadata"].get("annotations", {}).get(ANN_HASH) == want_hash:
            # Applied by an earlier operator run: adopt it if it still holds what we declare.
            mine = owned_fields(seen)
            if mine is not None and covers(seen, obj):
                self.applied[mem_key] = Applied(want_hash, mine)
                return
            repair = f"{kind}Drift"
            detail = f"{kind} {name} was changed by someone else; put it back"
        try:
            try:
                result = self.kube.apply(obj)
            except ApiError as e:
                if not (e.status == 422 and seen is not None and repair):
                    raise
                # A list entry someone else re-keyed (a Service port renumbered) cannot be taken
                # back by apply alone: put our value of those lists back first, then apply.
                self.kube.replace(restore_lists(seen, obj, lost or uncovered_lists(seen, obj)))
                result = self.kube.apply(obj)
        except ApiError as e:
            metrics.APPLY_ERRORS.labels(kind).inc()
            if not e.permanent:
                raise TransientError(str(e)) from e
            obs.problems.append(Problem(f"{kind}Rejected", f"the API server rejected {kind} {name}: {e.message}"))
            return
        metrics.APPLIES.labels(kind).inc()
        self.store.put_child(result)
        self.applied[mem_key] = Applied(want_hash, owned_fields(result) or {})
        if repair:
            outcome.repairs.append(repair)
            metrics.REPAIRS.labels(repair).inc()
            self._event(app, "Warning", "Repaired", detail)
            log.info("repaired %s/%s: %s", app.namespace, app.name, detail)
        elif seen is None:
            self._event(app, "Normal", "Created", f"created {kind} {name}")
            log.info("reconciled %s/%s: created %s %s", app.namespace, app.name, kind, name)
        else:
            log.info("reconciled %s/%s: applied %s %s", app.namespace, app.name, kind, name)

    def _prune(self, app: App, observed: dict[ChildKey, Json], wanted: set[ChildKey]) -> None:
        for (kind, name), obj in observed.items():
            if (kind, name) in wanted or kind not in CHILD_KINDS:
                continue
            if not any(ref.get("uid") == app.uid for ref in obj["metadata"].get("ownerReferences") or []):
                continue
            if _retained(kind, obj):
                self._release_claim(app, obj)
                continue
            try:
                self.kube.delete(CHILD_KINDS[kind], kind, app.namespace, name, uid=obj["metadata"].get("uid"))
            except ApiError as e:
                if e.status != 409:  # 409: a precondition on a newer incarnation; the watch will tell
                    raise TransientError(str(e)) from e
            self.applied.pop(((app.namespace, app.name), (kind, name)), None)
            self._event(app, "Normal", "Deleted", f"deleted {kind} {name}: the spec no longer asks for it")

    # --- retained claims -----------------------------------------------------------------------

    @staticmethod
    def _needs_finalizer(app: App) -> bool:
        return any(v.persistent and v.persistent.retain and not v.persistent.per_replica
                   for v in app.spec.volumes)

    def _set_finalizer(self, app: App, body: Json, want: bool) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        if (FINALIZER in finalizers) == want:
            return
        finalizers = [*finalizers, FINALIZER] if want else [f for f in finalizers if f != FINALIZER]
        patch = {"metadata": {"finalizers": finalizers,
                              "resourceVersion": body["metadata"]["resourceVersion"]}}
        try:
            self.kube.merge_patch(API_VERSION, KIND, app.namespace, app.name, patch)
        except ApiError as e:
            if e.status == 404:
                return
            # 409: the App changed meanwhile; its new version is on its way through the watch.
            raise TransientError(str(e)) from e

    def _release_claims(self, app: App) -> None:
        for (kind, _), obj in self.store.children((app.namespace, app.name)).items():
            if _retained(kind, obj):
                self._release_claim(app, obj)

    def _release_claim(self, app: App, claim: Json) -> None:
        """A retained claim outlives the App: drop our ownerReference, say where it came from."""
        refs = [r for r in claim["metadata"].get("ownerReferences") or [] if r.get("uid") != app.uid]
        if len(refs) == len(claim["metadata"].get("ownerReferences") or []):
            return
        name = claim["metadata"]["name"]
        try:
            self.kube.merge_patch("v1", "PersistentVolumeClaim", app.namespace, name, {"metadata": {
                "ownerReferences": refs or None,
                "annotations": {ANN_RETAINED_FROM: app.name},
                "labels": {LABEL_APP: None, "app.kubernetes.io/managed-by": None},
            }})
        except ApiError as e:
            if e.status != 404:
                raise TransientError(str(e)) from e
        # Unlabelled, it leaves our label-filtered watch without a DELETED event.
        self.store.drop_child(claim)
        self.applied.pop(((app.namespace, app.name), ("PersistentVolumeClaim", name)), None)
        self._event(app, "Normal", "Retained", f"kept PersistentVolumeClaim {name} (retain: true)")

    # --- rollback ------------------------------------------------------------------------------

    def _rollback_template(self, app: App, children: dict[ChildKey, Json], obs: Observed) -> Json | None:
        """The pod template to run instead of the spec's, while a failed rollout is rolled back."""
        key = (app.namespace, app.name)
        remembered = self.rollback_templates.get(key)
        if remembered and remembered[0] == app.generation:
            return remembered[1]
        self.rollback_templates.pop(key, None)
        workload = children.get(("Deployment", app.name))
        if workload is None:
            return None
        if app.status.get("rolledBackGeneration") == app.generation:
            # Rolled back before this process started: the Deployment holds the healthy template.
            template: Json = copy.deepcopy(workload["spec"]["template"])
            self.rollback_templates[key] = (app.generation, template)
            return template
        healthy = app.status.get("lastHealthyRevision")
        if not (app.spec.rollout.auto_rollback and healthy and deadline_exceeded(workload)
                and workload_revision(workload) != healthy):
            return None
        for rs in self.kube.list("apps/v1", "ReplicaSet", app.namespace, selector_string(app.name)):
            if rs["metadata"].get("annotations", {}).get(DEPLOYMENT_REVISION) == healthy:
                template = copy.deepcopy(rs["spec"]["template"])
                template["metadata"].get("labels", {}).pop("pod-template-hash", None)
                template["metadata"].pop("creationTimestamp", None)
                self.rollback_templates[key] = (app.generation, template)
                obs.rolled_back_to = healthy
                image = template["spec"]["containers"][0].get("image")
                self._event(app, "Warning", "RolledBack",
                            f"rollout of generation {app.generation} missed its progress deadline; "
                            f"rolled back to revision {healthy} ({image})")
                metrics.ROLLBACKS.inc()
                return template
        return None

    # --- status & events -----------------------------------------------------------------------

    @staticmethod
    def _workload(children: dict[ChildKey, Json]) -> Json | None:
        for kind in ("Deployment", "StatefulSet"):
            for (k, _), obj in children.items():
                if k == kind:
                    return obj
        return None

    def _invalid(self, body: Json, err: SpecError, now: datetime) -> Outcome:
        meta = body["metadata"]
        old = dict(body.get("status") or {})
        obs = Observed(name=meta["name"], namespace=meta["namespace"], generation=int(meta.get("generation", 0)),
                       old_status=old, now=now,
                       problems=[Problem("InvalidSpec", f"{err.field}: {err.message}")],
                       children=[(c["kind"], c["name"]) for c in old.get("children") or []])
        new = compute_status(obs)
        if old.get("phase") != "Failed" or old.get("observedGeneration") != new["observedGeneration"]:
            self._event_raw(meta, "Warning", "InvalidSpec", f"{err.field}: {err.message}")
        self._write_status(meta["namespace"], meta["name"], old, new)
        return Outcome()

    def _write_status(self, namespace: str, name: str, old: Json, new: Json) -> None:
        if not status_changed(old, new):
            return
        patch = dict(new)
        for k in old:
            if k not in new:
                patch[k] = None
        try:
            result = self.kube.patch_app_status(namespace, name, patch)
        except ApiError as e:
            if e.status == 404:
                return
            raise TransientError(str(e)) from e
        metrics.STATUS_PATCHES.inc()
        self.store.put_app(result)

    def _event(self, app: App, type_: str, reason: str, message: str) -> None:
        self._event_raw({"name": app.name, "namespace": app.namespace, "uid": app.uid}, type_, reason, message)

    def _event_raw(self, meta: Json, type_: str, reason: str, message: str) -> None:
        now = timestamp(self.clock())
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid", "")},
            "type": type_, "reason": reason, "message": message[:1024],
            "source": {"component": "appkeeper"}, "reportingComponent": "appkeeper",
            "reportingInstance": "appkeeper", "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            self.kube.create_event(event)
        except ApiError as e:  # an Event is worth less than the reconcile that posts it
            log.warning("could not post event %s for %s/%s: %s", reason, meta["namespace"], meta["name"], e)

    def _requeue_after(self, app: App, now: datetime) -> float | None:
        change = next_change(app.spec, now)
        if change is None:
            return None
        return max(1.0, (change - now).total_seconds() + 0.5)
