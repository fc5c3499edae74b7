"""Carrying out drift.decide's Actions on the App's children, and pruning those the spec no
longer asks for. Every write is a server-side apply with field manager `appkeeper`."""

from __future__ import annotations

import logging

from . import metrics, reasons
from .api import App, Json
from .claims import release_claim, replica_claim_conflict, retained
from .config import LABEL_SNAPSHOT_OF
from .deps import Deps
from .desired import child_key, keep_live_claim_templates, replica_claim_volume
from .drift import Action, Applied, Apply, Conflict, Create, Owner, Repair, Skip, decide, owned_by
from .errors import Retry
from .fields import created_not_applied, owned_fields, restore_lists, uncovered_lists
from .kinds import CHILD_KINDS
from .kube import ApiError
from .names import ANN_HASH
from .outcome import Outcome
from .quiet import Repeats, about
from .status import Observed, Problem
from .store import ChildKey, compact

log = logging.getLogger("appkeeper.reconcile")
REJECTED_RETRY = 30.0  # seconds until a child the API server refused is tried again
REPEATS = Repeats()


def converge(deps: Deps, app: App, obj: Json, seen: Json | None, obs: Observed, outcome: Outcome) -> None:
    kind, name = child_key(obj)
    mem_key = ((app.namespace, app.name), (kind, name))
    listed = {"kind": kind, "name": name} in (app.status.get("children") or [])
    if seen is None and listed and not deps.store.seen_deleted((app.namespace, app.name), (kind, name)):
        # The watch may not have listed it yet: ask before calling it deleted (unless it said so).
        seen = deps.kube.get(obj["apiVersion"], kind, app.namespace, name)
        if seen is not None:
            deps.store.put_child(seen)
    obj = keep_live_claim_templates(obj, seen)
    action = decide(obj, seen, deps.memory.get(mem_key), Owner(app.name, app.uid), listed)
    if isinstance(action, Skip):
        if action.remember is not None:
            deps.memory[mem_key] = action.remember
        return
    if isinstance(action, Conflict):
        conflict(deps, app, obs, f"{kind} {name} exists and is not owned by this App (owner: {action.owner}); "
                 "not changing it")
        return
    taken = replica_claim_conflict(deps, app, obj, seen) if kind == "StatefulSet" else None
    if taken is not None:
        conflict(deps, app, obs, f"{taken}; not writing StatefulSet {name}")
        return
    try:
        result = write(deps, obj, seen, action, obs)
    except NameTaken:
        # Someone else's object (or ours, not yet seen by the watch) has the name: judge it.
        found = deps.kube.get(obj["apiVersion"], kind, app.namespace, name)
        if found is None:
            raise Retry(f"{kind} {name} existed a moment ago and is gone; trying again") from None
        deps.store.put_child(found)
        converge(deps, app, obj, found, obs, outcome)
        return
    if result is None:
        return
    owner = deps.store.put_child(result)
    held = deps.store.child(owner, (kind, name)) if owner is not None else None
    # The fields as the store holds them (the same version, mostly): shared, not a second copy.
    fields = compact(owned_fields(result) or {}, owned_fields(held) if held is not None else None, leaf=True)
    deps.memory[mem_key] = Applied(obj["metadata"]["annotations"][ANN_HASH], fields)
    record(deps, app, kind, name, action, outcome)


def conflict(deps: Deps, app: App, obs: Observed, message: str) -> None:
    obs.problems.append(Problem(reasons.CHILD_CONFLICT, message))
    deps.recorder.post(app.ref, "Warning", reasons.CHILD_CONFLICT, message)


class NameTaken(Exception):
    """A create found the name taken (409 AlreadyExists)."""


def write(deps: Deps, obj: Json, seen: Json | None, action: Action, obs: Observed) -> Json | None:
    """Applies `obj`; None (and a problem for status) when the API server refuses it for good."""
    kind, name = child_key(obj)
    try:
        try:
            if isinstance(action, Create) and seen is None:
                # A child the App never had: one create, which fails rather than write over a
                # name that is taken (no GET first; the status and the watch say it never existed).
                return deps.kube.create(obj)
            if seen is not None and created_not_applied(seen):
                deps.kube.own_created_fields(obj["apiVersion"], kind, seen["metadata"]["namespace"], name)
            return deps.kube.apply(obj)
        except ApiError as e:
            if e.status == 409 and e.reason == "AlreadyExists" and isinstance(action, Create):
                raise NameTaken(name) from e
            if not (e.status == 422 and seen is not None and isinstance(action, Repair)):
                raise
            # A list entry someone else re-keyed (a Service port renumbered) cannot be taken
            # back by apply alone: put our value of those lists back first, then apply.
            deps.kube.replace(restore_lists(seen, obj, action.lost or uncovered_lists(seen, obj)))
            return deps.kube.apply(obj)
    except ApiError as e:
        metrics.APPLY_ERRORS.labels(kind).inc()
        if not e.terminal:
            raise
        obs.problems.append(Problem(reasons.rejected(kind), f"the API server rejected {kind} {name}: {e.message}",
                                    retry_in=REJECTED_RETRY))
        return None


def record(deps: Deps, app: App, kind: str, name: str, action: Action, outcome: Outcome) -> None:
    metrics.APPLIES.labels(kind).inc()
    where = f"{app.namespace}/{app.name}"
    if isinstance(action, Repair):
        outcome.repairs.append(action.reason)
        metrics.REPAIRS.labels(action.reason).inc()
        deps.recorder.post(app.ref, "Warning", reasons.REPAIRED, action.detail)
        said = f"repaired {where}: {action.detail}"
    elif isinstance(action, Create):
        outcome.created.append(f"{kind} {name}")
        said = f"reconciled {where}: created {kind} {name}"
    elif isinstance(action, Apply) and action.reason == "Adopted":
        deps.recorder.post(app.ref, "Normal", reasons.ADOPTED, f"adopted {kind} {name} (it asked to be)")
        said = f"reconciled {where}: adopted {kind} {name}"
    else:
        said = f"reconciled {where}: applied {kind} {name}"
    # A child fought over is written again and again: one line per child and cause a while, with a count.
    REPEATS.log(log, logging.INFO, (where, kind, name, type(action).__name__, getattr(action, "reason", "")), "%s",
                said, extra=about(app.namespace, app.name))


def announce_created(deps: Deps, app: App, outcome: Outcome) -> None:
    """One Created Event per reconcile, naming every child it created (not one per child)."""
    if outcome.created:
        deps.recorder.post(app.ref, "Normal", reasons.CREATED, "created " + ", ".join(outcome.created))
        outcome.created.clear()


def prune(deps: Deps, app: App, observed: dict[ChildKey, Json], wanted: set[ChildKey]) -> None:
    for (kind, name), obj in observed.items():
        if (kind, name) in wanted or kind not in CHILD_KINDS \
                or LABEL_SNAPSHOT_OF in (obj["metadata"].get("labels") or {}):
            continue  # older config snapshots stay for rollbacks (snapshots.py prunes them)
        if retained(kind, obj):
            release_claim(deps, app, obj)  # the spec dropped the volume; the data stays
            continue
        if kind == "PersistentVolumeClaim" and replica_claim_volume(app, name) is not None:
            continue  # a pod's claim, made by the StatefulSet controller (claims.tie_replica_claims)
        if not owned_by(obj, app.uid):
            continue
        try:
            deps.kube.delete(CHILD_KINDS[kind], kind, app.namespace, name, uid=obj["metadata"].get("uid"))
        except ApiError as e:
            if e.status != 409:  # 409: a precondition on a newer incarnation; the watch will tell
                raise
        deps.memory.pop(((app.namespace, app.name), (kind, name)), None)
        deps.recorder.post(app.ref, "Normal", reasons.DELETED, f"deleted {kind} {name}: the spec no longer asks for it")
