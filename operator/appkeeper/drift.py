"""Pure: what to do with one child, given what the App declares, what the cluster holds and what
this process last applied. Every decision the reconciler makes about a child is here, as an
Action; the reconciler only carries it out.

    Create     it does not exist, and never did as far as status knows
    Apply      it exists and is ours (or consents to adoption); the declared content changed
    Repair     someone else deleted it or took fields we own; put it back (counted, an Event)
    Conflict   it exists and is not ours: never written; the App says who owns it
    Skip       nothing to do (optionally: remember what an earlier run of the operator applied)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .api import Json
from .fields import covers, lost_fields, owned_fields
from .names import ANN_HASH, ANN_RETAIN, ANN_RETAINED_FROM, LABEL_APP
from .store import DROPPED

ANN_ADOPT = "appkeeper.dev/adopt"


@dataclass(frozen=True)
class Applied:
    """What our last apply of a child left: its input hash and the fields we then owned."""

    hash: str
    fields: Json


@dataclass(frozen=True)
class Create:
    pass


@dataclass(frozen=True)
class Apply:
    reason: str  # Changed | Adopted


@dataclass(frozen=True)
class Repair:
    reason: str  # <Kind>Deleted | <Kind>Drift
    detail: str  # for a person: what happened, what we did
    lost: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Conflict:
    owner: str  # "Deployment web (controller)", "no owner", ...


@dataclass(frozen=True)
class Skip:
    remember: Applied | None = None  # adopt the record of an earlier operator run


Action = Create | Apply | Repair | Conflict | Skip


@dataclass(frozen=True)
class Owner:
    """The App a child belongs to."""

    name: str
    uid: str


def owned_by(obj: Json, uid: str) -> bool:
    """An ownerReference names this uid: the object is that App's (the garbage collector's view)."""
    return any(r.get("uid") == uid for r in obj.get("metadata", {}).get("ownerReferences") or [])


def ours(observed: Json, app: Owner) -> bool:
    """Owned by this App: its ownerReference (by uid), or a retained claim it labelled as its own."""
    meta = observed.get("metadata", {})
    if owned_by(observed, app.uid):
        return True
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    return (not meta.get("ownerReferences") and annotations.get(ANN_RETAIN) == "true"
            and annotations.get(ANN_RETAINED_FROM) == app.name and labels.get(LABEL_APP) == app.name)


def ownership(observed: Json, app: Owner, retain: bool = True) -> str | None:
    """None when `app` may write `observed`; otherwise who holds it, for the message. `retain`: the
    App declares it a retained claim; only then does a claim it released come home (a foreign
    object's `retained-from` annotation must not let a `retain: false` App adopt, then delete it)."""
    meta = observed.get("metadata", {})
    refs = meta.get("ownerReferences") or []
    if ours(observed, app):
        return None
    if refs:
        ref = next((r for r in refs if r.get("controller")), refs[0])
        role = "controller" if ref.get("controller") else "owner"
        return f"{ref.get('kind')} {ref.get('name')} ({role}, uid {ref.get('uid')})"
    annotations = meta.get("annotations") or {}
    # Whoever may write the object consents to adoption; a claim we released comes home.
    released = (observed.get("kind") == "PersistentVolumeClaim" and annotations.get(ANN_RETAIN) == "true"
                and annotations.get(ANN_RETAINED_FROM) == app.name)
    if annotations.get(ANN_ADOPT) == app.name or (released and retain):
        return None
    return "no owner"


def decide(desired: Json, observed: Json | None, applied: Applied | None, app: Owner, listed: bool) -> Action:
    """`listed`: status.children names this child, so its absence means someone deleted it."""
    kind, name = desired["kind"], desired["metadata"]["name"]
    want = desired["metadata"]["annotations"][ANN_HASH]
    if observed is None:
        if listed:
            return Repair(f"{kind}Deleted", f"{kind} {name} was deleted; recreated it")
        return Create()
    holder = ownership(observed, app, desired["metadata"]["annotations"].get(ANN_RETAIN) == "true")
    if holder is not None:
        return Conflict(holder)
    if not ours(observed, app):
        return Apply("Adopted")
    if applied is not None and applied.hash == want:
        lost = lost_fields(applied.fields, owned_fields(observed))
        if not lost:
            return Skip()
        return Repair(f"{kind}Drift", f"{kind} {name} was changed by someone else ({', '.join(lost[:5])}); "
                                      "put it back", lost)
    if observed["metadata"].get("annotations", {}).get(ANN_HASH) == want:
        # Applied by an earlier run of the operator: take over its record if it still holds what
        # we declare; else someone changed it meanwhile.
        mine = owned_fields(observed)
        # What the store does not hold of a kind (a snapshot's immutable data) is not compared.
        compared = {k: v for k, v in desired.items() if k not in DROPPED.get(kind, ())}
        if mine is not None and covers(observed, compared):
            return Skip(Applied(want, mine))
        return Repair(f"{kind}Drift", f"{kind} {name} was changed by someone else; put it back")
    return Apply("Changed")
