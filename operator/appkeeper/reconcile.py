"""Reconcile one App: build what it implies, apply what changed or drifted, prune what it no
longer asks for, roll back a failed rollout, and patch status once. Level-based: the same call
answers create, update, a child's deletion or edit, and the periodic resync.

The parts: drift.py decides about each child (pure), children.py carries that out, claims.py keeps
retained claims, rollback.py rolls back, status.py and podhealth.py judge (pure), events.py
posts Events. This file is the flow, in numbered steps."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from . import claims, metrics
from .api import App, Json, SpecError, parse_app
from .children import Outcome, announce_created, converge, prune
from .deps import Deps, TransientError
from .desired import child_key, workload_replicas
from .events import Recorder
from .failfast import TIMED_FAILURES, stable_in
from .kinds import build_children
from .kube import ApiError, Kube
from .podhealth import creating_pods, failed_create, pods_problem, workload_pods, workload_problem
from .rollback import Rollbacks
from .schedules import next_change, scheduled_minimum
from .security import Profiles
from .snapshots import plan_config, prune_snapshots
from .status import Observed, Problem, compute_status, failed_reconcile_status, status_changed
from .store import AppKey, ChildKey, Store
from .verify import fill_app

__all__ = ["Outcome", "Reconciler", "TransientError"]
log = logging.getLogger("appkeeper.reconcile")
FAILURE_RECHECK = 5.0  # seconds between looks at a failure that becomes a rollback after a while
REJECTED_RETRY = 30.0  # seconds until a child the API server refused is tried again


class Reconciler:
    def __init__(self, kube: Kube, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.deps = Deps(kube, store, Recorder(kube, self.clock))
        self.memory = self.deps.memory  # per App (memory.py), shared with children.py and the rollbacks
        self.rollbacks = Rollbacks(self.memory)
        self.profiles = Profiles()

    def forget(self, key: AppKey) -> None:
        self.memory.forget(key)
        self.deps.recorder.forget(*key)

    def reconcile(self, key: AppKey) -> Outcome:
        """The one entry point: reconcile the App at `key` as the store holds it."""
        body = self.deps.store.app(key)
        if body is None:
            self.forget(key)
            return Outcome()
        fill_app(self.deps.kube, self.deps.store, key)
        inputs = self._inputs(key)
        if inputs is not None and self.memory.settled(key) == inputs:
            metrics.RECONCILES_SETTLED.inc()
            return Outcome()
        self.memory.settle(key, None)
        started = time.monotonic()
        try:
            outcome = self._reconcile(body)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
        if outcome.requeue_after is None and inputs is not None and self._inputs(key) == inputs:
            self.memory.settle(key, inputs)  # a fixed point: nothing written, nothing timed
        return outcome

    def _inputs(self, key: AppKey) -> tuple[object, ...] | None:
        held = self.deps.store.inputs(key)  # and the namespace's Pod Security profile, which is not watched
        return None if held is None else (*held, self.profiles.enforced(self.deps.kube, key[0]))

    def _reconcile(self, body: Json) -> Outcome:
        now = self.clock()
        # 1. Parse: an invalid spec is answered in status (Failed, the field named) and left alone.
        try:
            app = parse_app(body)
        except SpecError as e:
            return self._invalid(body, e, now)
        # 2. Deleting: nothing waits on us (retained claims have no ownerReference); an App from
        #    before that still has the old finalizer gets its claims released, then goes.
        if app.deleting:
            claims.drop_old_finalizer(self.deps, app, body)
            return Outcome()
        # 3. Converge the children (unless paused), judge the pods, and write status once.
        obs = _observe(app, now)
        outcome = Outcome()
        if app.spec.paused:
            observed = self.deps.store.children((app.namespace, app.name))
            obs.workload, obs.children = _workload(observed), sorted(observed)
        else:
            self._converge(app, obs, outcome, now)
        obs.repairs = outcome.repairs
        claims.drop_old_finalizer(self.deps, app, body)
        self._write_status(app.namespace, app.name, app.status, compute_status(obs))
        # 4. Come back when a schedule window opens or closes, when a debounced ConfigMap change is
        #    due, soon after a refusal (a quota or RBAC fix heals without waiting for the resync), and
        #    while a failing pull or an unschedulable pod nears its threshold (time crosses it, not
        #    an event).
        outcome.within(_requeue_after(app, now))
        if any(p.reason.endswith("Rejected") for p in obs.problems):
            outcome.within(REJECTED_RETRY)
        if app.spec.rollout.auto_rollback and any(p.reason in TIMED_FAILURES for p in obs.problems):
            outcome.within(FAILURE_RECHECK)
        return outcome

    def report_failure(self, key: AppKey, reason: str, message: str) -> None:
        """A reconcile of `key` failed: say so in its status and one (aggregated) Event, so every
        App gets an answer. Best effort: the API may be what is failing."""
        body = self.deps.store.app(key)
        if body is None:
            return
        meta, old = body["metadata"], dict(body.get("status") or {})
        new = failed_reconcile_status(old, int(meta.get("generation", 0)), reason, message, self.clock())
        self.deps.recorder.post(meta, "Warning", reason, message)
        try:
            self._write_status(key[0], key[1], old, new)
        except (TransientError, ApiError) as e:
            log.warning("could not write the failure of %s/%s to its status: %s", *key, e)

    def _converge(self, app: App, obs: Observed, outcome: Outcome, now: datetime) -> None:
        key = (app.namespace, app.name)
        observed = self.deps.store.children(key)
        # 3a. What the App implies: the ConfigMaps its pods use as snapshots; a rollback swaps in
        #     the last healthy pod template (which names its own snapshots).
        config = plan_config(self.deps, app)
        obs.problems += config.problems
        outcome.within(config.recheck)
        profile = self.profiles.profile(self.deps.kube, app)
        desired = build_children(app, now, self.rollbacks.template(self.deps, app, observed, obs, now), config.plan,
                                 profile)
        # 3b. Each child: decide (drift.py), then act.
        try:
            for obj in desired:
                converge(self.deps, app, obj, observed.get(child_key(obj)), obs, outcome)
        finally:
            announce_created(self.deps, app, outcome)
        # 3c. What it no longer implies goes (retained claims are released instead).
        wanted = {child_key(o) for o in desired}
        prune(self.deps, app, observed, wanted)
        claims.tie_replica_claims(self.deps, app)
        prune_snapshots(self.deps, app, observed, config.plan)
        current = self.deps.store.children(key)
        obs.children = sorted(k for k in wanted if k in current)
        obs.workload = _workload({k: v for k, v in current.items() if k in wanted})
        # 3d. Pods that cannot run say why; pods that have not run long are not yet proof of health.
        pods = workload_pods(app.name, self.deps.store.pods(key))
        problem = (workload_problem(obs.workload) or pods_problem(pods)
                   or _failed_create(self.deps.kube, obs.workload, outcome))
        if problem is not None:
            obs.problems.append(problem)
        obs.stable_in = stable_in(pods, now)
        if 0 < obs.stable_in < float("inf"):
            outcome.within(obs.stable_in + 0.5)

    def _invalid(self, body: Json, err: SpecError, now: datetime) -> Outcome:
        meta = body["metadata"]
        old = dict(body.get("status") or {})
        obs = Observed(name=meta["name"], namespace=meta["namespace"], generation=int(meta.get("generation", 0)),
                       old_status=old, now=now, problems=[Problem("InvalidSpec", f"{err.field}: {err.message}")],
                       children=[(c["kind"], c["name"]) for c in old.get("children") or []])
        new = compute_status(obs)
        if old.get("phase") != "Failed" or old.get("observedGeneration") != new["observedGeneration"]:
            self.deps.recorder.post(meta, "Warning", "InvalidSpec", f"{err.field}: {err.message}")
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
            result = self.deps.kube.patch_app_status(namespace, name, patch)
        except ApiError as e:
            if e.status == 404:
                return
            raise TransientError(str(e)) from e
        metrics.STATUS_PATCHES.inc()
        self.deps.store.put_app(result)


def _observe(app: App, now: datetime) -> Observed:
    _, window = scheduled_minimum(app.spec, now)
    return Observed(name=app.name, namespace=app.namespace, generation=app.generation,
                    old_status=app.status, now=now, spec=app.spec, replicas=workload_replicas(app.spec, now),
                    active_schedule=window.name if window else None)


def _failed_create(kube: Kube, workload: Json | None, outcome: Outcome) -> Problem | None:
    """A StatefulSet short of pods: ask its Events why, and look again soon (no watch tells us)."""
    if workload is None or not creating_pods(workload):
        return None
    outcome.within(3.0)
    meta = workload["metadata"]
    try:
        events = kube.events_about(meta["namespace"], "StatefulSet", meta["name"], "FailedCreate")
        return failed_create(workload, events)
    except ApiError as e:
        log.info("could not read the Events of StatefulSet %s/%s: %s", meta["namespace"], meta["name"], e)
        return None


def _workload(children: dict[ChildKey, Json]) -> Json | None:
    for kind in ("Deployment", "StatefulSet"):
        for (k, _), obj in children.items():
            if k == kind:
                return obj
    return None


def _requeue_after(app: App, now: datetime) -> float | None:
    change = next_change(app.spec, now)
    if change is None:
        return None
    return max(1.0, (change - now).total_seconds() + 0.5)
