"""Reconcile one App: build what it implies, apply what changed or drifted, prune what it no
longer asks for, roll back a failed rollout, and patch status once. Level-based: the same call
answers create, update, a child's deletion or edit, and the periodic resync.

The flow, in numbered steps: gather everything the reconcile reads (the store, and the few reads
that must hit the API: a ConfigMap not yet seen, the namespace's Pod Security level, a failed
rollout's ReplicaSets, a StatefulSet's FailedCreate Events); plan what the App implies (pure:
kinds.build_children); act (children.py: drift.py decides about each child, children.py writes;
claims.py, snapshots.py prune); judge (status.py, podhealth.py: pure) and write status once; and
say when to come back, all reasons in one place (`_come_back`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from . import claims, metrics, reasons
from .analysis import http_analysis, prometheus_analysis
from .api import API_VERSION, DRAIN_SECONDS, KIND, App, Json, SpecError, parse_app
from .canary import CanaryPlan, after_analysis, canary_pods, decide
from .children import announce_created, converge, prune
from .config import ConfigPlan
from .deps import Deps
from .desired import build_workload, canary_name, child_key, workload_replicas
from .errors import OperatorError
from .events import Recorder
from .failfast import TIMED_FAILURES, stable_in
from .kinds import build_children
from .kube import ApiError, Kube
from .names import ANN_CANARY
from .outcome import Outcome
from .podhealth import creating_pods, failed_create, pods_problem, workload_pods, workload_problem
from .rollback import Rollback, Rollbacks
from .schedules import next_change, scheduled_minimum
from .security import Profiles
from .served import served, served_recheck, slice_selector, slice_versions
from .snapshots import ConfigRead, plan_config, prune_snapshots
from .status import Observed, Problem, compute_status, failed_reconcile_status, status_changed, workload_settled
from .store import AppKey, ChildKey, Store
from .verify import fill_app

__all__ = ["Outcome", "Reconciler"]
log = logging.getLogger("appkeeper.reconcile")
FAILURE_RECHECK = 5.0  # seconds between looks at a failure that becomes a rollback after a while
CREATE_RECHECK = 3.0  # seconds between looks at a StatefulSet short of pods (no watch tells why)


@dataclass
class Gathered:
    """What one reconcile reads, all read before anything is written."""

    children: dict[ChildKey, Json]
    config: ConfigRead
    profile: str
    rollback: Rollback | None
    canary: CanaryPlan  # spec.rollout.canary: what runs while a new template is tried (canary.py)
    failed_create: Problem | None  # a StatefulSet short of pods: why, from its Events
    creating: bool  # a StatefulSet short of pods: look again soon
    unserved: frozenset[str]  # optional kinds the API server does not serve


class Reconciler:
    def __init__(self, kube: Kube, store: Store, clock: Callable[[], datetime] | None = None,
                 drain_seconds: int = DRAIN_SECONDS, secrets: bool = False, prometheus_url: str | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.drain_seconds = drain_seconds  # the default drain of every pod (spec.rollout.drainSeconds unset)
        self.secrets = secrets  # --config-secrets: the Secrets the pods use are snapshotted too
        self.prometheus_url = prometheus_url  # --prometheus-url: where canary analyses ask their queries
        self.deps = Deps(kube, store, Recorder(kube, self.clock))
        self.memory = self.deps.memory  # per App (memory.py), shared with children.py and the rollbacks
        self.rollbacks = Rollbacks(self.memory)
        self.profiles = Profiles()

    def forget(self, key: AppKey) -> None:
        self.memory.forget(key)
        metrics.forget_app(*key)
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
        # 3. Gather, plan, act (unless paused); judge the pods; write status once.
        obs = _observe(app, now)
        outcome = Outcome()
        seen: Gathered | None = None
        if app.spec.paused:
            observed = self.deps.store.children((app.namespace, app.name))
            obs.workload, obs.children = _workload(observed, app.name), sorted(observed)
        else:
            seen = self._gather(app, now)
            override = seen.canary.stable_template or (seen.rollback.template if seen.rollback else None)
            desired = build_children(app, now, override, seen.config.plan, seen.profile, self.drain_seconds,
                                     seen.canary.replicas)
            desired, waiting = _served(desired, seen.unserved)
            obs.problems += waiting
            self._act(app, seen, desired, obs, outcome)
            self._judge(app, seen, obs, now)
        obs.repairs = outcome.repairs
        claims.drop_old_finalizer(self.deps, app, body)
        self._write_status(app.namespace, app.name, app.status, compute_status(obs))
        # 4. Come back when time alone changes something (no event will say so).
        outcome.within(_come_back(app, now, obs, seen))
        return outcome

    def _gather(self, app: App, now: datetime) -> Gathered:
        """3a. The reads: the children the store holds, the ConfigMaps the pods use (snapshots), the
        namespace's Pod Security level, a failed rollout's healthy template, a StatefulSet's FailedCreate."""
        children = self.deps.store.children((app.namespace, app.name))
        workload = _workload(children, app.name)
        creating = creating_pods(workload)
        config = plan_config(self.deps, app, self.secrets)
        profile = self.profiles.profile(self.deps.kube, app)
        canary = self._canary(app, children, config.plan, profile, now)
        trying = canary.stable_template is not None  # a canary holds the stable template: no rollback
        rollback = None if trying else self.rollbacks.template(self.deps, app, children, now)
        return Gathered(children=children, config=config, profile=profile, rollback=rollback, canary=canary,
                        failed_create=_failed_create(self.deps.kube, workload) if creating else None,
                        creating=creating, unserved=self.deps.store.unserved())

    def _canary(self, app: App, children: dict[ChildKey, Json], config: ConfigPlan | None, profile: str,
                now: datetime) -> CanaryPlan:
        """What runs while a new pod template is tried (canary.py decides; a due httpGet analysis
        is the one read here)."""
        if app.spec.is_stateful:
            return CanaryPlan()
        template = build_workload(app, 0, None, config, profile, self.drain_seconds)["spec"]["template"]
        pods = canary_pods(app.name, self.deps.store.pods((app.namespace, app.name)))
        plan = decide(app.spec, template, app.status, children.get(("Deployment", app.name)),
                      children.get(("Deployment", canary_name(app.name))), pods, app.annotations.get(ANN_CANARY), now)
        wanted = app.spec.rollout.canary
        if plan.analyze and wanted is not None:
            found = []
            if wanted.http is not None:
                found.append(http_analysis(wanted.http, app.spec.ports, pods))
            if wanted.prometheus is not None:
                found.append(prometheus_analysis(wanted.prometheus, self.prometheus_url))
            failure = next((f for f, _ in found if f is not None), None)
            plan = after_analysis(app.spec, plan, failure, "; ".join(e for _, e in found), now)
        return plan

    def _act(self, app: App, seen: Gathered, desired: list[Json], obs: Observed, outcome: Outcome) -> None:
        """3b. Each child: decide (drift.py), then write; what the App no longer implies goes
        (retained claims are released instead)."""
        key = (app.namespace, app.name)
        obs.problems += seen.config.problems
        self._announce_canary(app, seen.canary, obs)
        if seen.rollback is not None and seen.rollback.cause is not None:
            obs.rolled_back_to, obs.rollback_cause = seen.rollback.revision, seen.rollback.cause
            self.deps.recorder.post(app.ref, "Warning", reasons.ROLLED_BACK, seen.rollback.event)
            metrics.ROLLBACKS.inc()
            outcome.rolled_back = True
        try:
            for obj in desired:
                converge(self.deps, app, obj, seen.children.get(child_key(obj)), obs, outcome)
        finally:
            announce_created(self.deps, app, outcome)
        wanted = {child_key(o) for o in desired}
        prune(self.deps, app, seen.children, wanted)
        claims.tie_replica_claims(self.deps, app)
        prune_snapshots(self.deps, app, seen.children, seen.config.plan)
        current = self.deps.store.children(key)
        obs.children = sorted(k for k in wanted if k in current)
        obs.workload = _workload({k: v for k, v in current.items() if k in wanted}, app.name)

    def _announce_canary(self, app: App, plan: CanaryPlan, obs: Observed) -> None:
        """A canary's step, promotion or failure: in status, an Event; an annotation acted on goes."""
        obs.canary, obs.canary_progress, obs.template_hash = plan.state, plan.progress, plan.template_hash
        if plan.problem is not None:
            obs.problems.append(plan.problem)
        if plan.event is not None:
            self.deps.recorder.post(app.ref, *plan.event)
        if plan.consumed:
            self.deps.kube.merge_patch(API_VERSION, KIND, app.namespace, app.name,
                                       {"metadata": {"annotations": {ANN_CANARY: None}}})

    def _judge(self, app: App, seen: Gathered, obs: Observed, now: datetime) -> None:
        """3c. Pods that cannot run say why; pods that have not run long are not yet proof of health."""
        pods = workload_pods(app.name, self.deps.store.pods((app.namespace, app.name)))
        problem = workload_problem(obs.workload) or pods_problem(pods) or seen.failed_create
        if problem is not None:
            obs.problems.append(problem)
        obs.stable_in = stable_in(pods, now)
        want = obs.replicas.count if obs.replicas else app.spec.replicas
        if want > 0 and ("Service", app.name) in obs.children and workload_settled(obs.workload, want):
            # Ready means served: asked only when the pods alone would say Ready.
            slices = self.deps.kube.list("discovery.k8s.io/v1", "EndpointSlice", app.namespace,
                                         slice_selector(app.name))
            seen_at = self.memory.slices_seen((app.namespace, app.name), slice_versions(slices), now)
            obs.unserved, obs.routed_in = served(app.name, want, pods, slices, now, seen_at)

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
        except OperatorError as e:
            log.warning("could not write the failure of %s/%s to its status: %s", *key, e)

    def _invalid(self, body: Json, err: SpecError, now: datetime) -> Outcome:
        meta = body["metadata"]
        old = dict(body.get("status") or {})
        obs = Observed(name=meta["name"], namespace=meta["namespace"], generation=int(meta.get("generation", 0)),
                       old_status=old, now=now, problems=[Problem(reasons.INVALID_SPEC, f"{err.field}: {err.message}")],
                       children=[(c["kind"], c["name"]) for c in old.get("children") or []])
        new = compute_status(obs)
        if old.get("phase") != "Failed" or old.get("observedGeneration") != new["observedGeneration"]:
            self.deps.recorder.post(meta, "Warning", reasons.INVALID_SPEC, f"{err.field}: {err.message}")
        self._write_status(meta["namespace"], meta["name"], old, new)
        return Outcome()

    def _write_status(self, namespace: str, name: str, old: Json, new: Json) -> None:
        metrics.app_conditions(namespace, name, new.get("conditions") or [])
        if not status_changed(old, new):
            return
        try:
            result = self.deps.kube.patch_app_status(namespace, name, merge_patch(old, new))
        except ApiError as e:
            if e.status == 404:
                return
            raise
        metrics.STATUS_PATCHES.inc()
        self.deps.store.put_app(result)


def merge_patch(old: Json, new: Json) -> Json:
    """The JSON merge patch that turns `old` into `new`: a key gone is null at any depth (a merge
    patch keeps what it does not name, so a nested key left out would stay)."""
    patch = dict(new)
    for k, was in old.items():
        if k not in new:
            patch[k] = None
        elif isinstance(was, dict) and isinstance(new[k], dict):
            patch[k] = merge_patch(was, new[k])
    return patch


def _observe(app: App, now: datetime) -> Observed:
    _, window = scheduled_minimum(app.spec, now)
    return Observed(name=app.name, namespace=app.namespace, generation=app.generation,
                    old_status=app.status, now=now, spec=app.spec, replicas=workload_replicas(app.spec, now),
                    active_schedule=window.name if window else None)


def _served(desired: list[Json], unserved: frozenset[str]) -> tuple[list[Json], list[Problem]]:
    """The children whose API is served, and a problem for each that waits for its API."""
    waiting = [o for o in desired if o["kind"] in unserved]
    return [o for o in desired if o["kind"] not in unserved], [
        Problem(reasons.NOT_SERVED, f"{o['kind']} {o['metadata']['name']}: the API server does not serve "
                                    f"{o['apiVersion']} {o['kind']}; it is created once it does") for o in waiting]


def _failed_create(kube: Kube, workload: Json | None) -> Problem | None:
    """A StatefulSet short of pods: its Events say why (no condition does)."""
    if workload is None:
        return None
    meta = workload["metadata"]
    try:
        events = kube.events_about(meta["namespace"], "StatefulSet", meta["name"], "FailedCreate")
        return failed_create(workload, events)
    except ApiError as e:
        log.info("could not read the Events of StatefulSet %s/%s: %s", meta["namespace"], meta["name"], e)
        return None


def _workload(children: dict[ChildKey, Json], name: str) -> Json | None:
    """The App's own Deployment or StatefulSet (a canary's Deployment is not it)."""
    return children.get(("Deployment", name)) or children.get(("StatefulSet", name))


def _come_back(app: App, now: datetime, obs: Observed, seen: Gathered | None) -> float | None:
    """When to reconcile again though no event may come, the earliest of: a schedule window opens
    or closes; a debounced ConfigMap change is due; a problem asks to be looked at again (a child
    the API server refused: a quota or RBAC fix heals without waiting for the resync); a failing
    pull or an unschedulable pod nears the threshold that rolls back; pods near the time that makes
    their revision healthy; a StatefulSet short of pods."""
    out = Outcome()
    change = next_change(app.spec, now)
    if change is not None:
        out.within(max(1.0, (change - now).total_seconds() + 0.5))
    for p in obs.problems:
        out.within(p.retry_in)
    if app.spec.rollout.auto_rollback and any(p.reason in TIMED_FAILURES for p in obs.problems):
        out.within(FAILURE_RECHECK)
    if 0 < obs.stable_in < float("inf"):
        out.within(obs.stable_in + 0.5)
    if obs.unserved:
        out.within(obs.routed_in or served_recheck(obs.old_status, now))
    if seen is not None:
        out.within(seen.config.recheck)
        out.within(seen.canary.recheck)
        if seen.creating:
            out.within(CREATE_RECHECK)
    return out.requeue_after
