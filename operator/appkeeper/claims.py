"""Retained claims: a `retain: true` claim outlives its App. It never has an ownerReference to the
App (desired.build_claim), so nothing about an App's deletion — its timing, the operator being
down, a namespace going — can have the garbage collector take it; it carries
`appkeeper.dev/retained-from=<app>` from birth. When the spec drops the volume, the claim is
released: our labels go, the annotation stays.

Apps from before carried a finalizer and claims with an ownerReference: the first reconcile applies
the claims without it (server-side apply removes what we no longer declare), then drops the
finalizer; an App deleted meanwhile has its claims released before the finalizer goes."""

from __future__ import annotations

from .api import API_VERSION, KIND, App, Json
from .deps import Deps
from .desired import replica_claim_volume
from .drift import ANN_ADOPT, owned_by
from .kube import ApiError
from .names import ANN_RETAIN, ANN_RETAINED_FROM, LABEL_APP
from .reasons import RETAINED

FINALIZER = "appkeeper.dev/retain-volumes"


def retained(kind: str, obj: Json) -> bool:
    """A claim created with `retain: true` (recorded on it, since the spec may no longer say so)."""
    return kind == "PersistentVolumeClaim" and obj["metadata"].get("annotations", {}).get(ANN_RETAIN) == "true"


def drop_old_finalizer(deps: Deps, app: App, body: Json) -> None:
    """Once no retained claim of the App holds an ownerReference to it, its old finalizer goes."""
    finalizers = list(body["metadata"].get("finalizers") or [])
    if FINALIZER not in finalizers:
        return
    for (kind, _), obj in deps.store.children((app.namespace, app.name)).items():
        if retained(kind, obj) and owned_by(obj, app.uid):
            if not app.deleting:
                return
            release_claim(deps, app, obj)
    finalizers = [f for f in finalizers if f != FINALIZER]
    patch = {"metadata": {"finalizers": finalizers, "resourceVersion": body["metadata"]["resourceVersion"]}}
    try:
        deps.kube.merge_patch(API_VERSION, KIND, app.namespace, app.name, patch)
    except ApiError as e:
        if e.status == 404:
            return
        # 409: the App changed meanwhile; its new version is on its way through the watch.
        raise


def release_claim(deps: Deps, app: App, claim: Json) -> None:
    """Untie the claim from the App: no ownerReference (older claims had one), none of our labels;
    the annotation says where it came from."""
    meta = claim["metadata"]
    refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != app.uid]
    had_ref = len(refs) != len(meta.get("ownerReferences") or [])
    if not had_ref and (meta.get("labels") or {}).get(LABEL_APP) != app.name:
        return
    name = meta["name"]
    patch: Json = {"annotations": {ANN_RETAINED_FROM: app.name},
                   "labels": {LABEL_APP: None, "app.kubernetes.io/managed-by": None}}
    if had_ref:
        patch["ownerReferences"] = refs or None
    try:
        deps.kube.merge_patch("v1", "PersistentVolumeClaim", app.namespace, name, {"metadata": patch})
    except ApiError as e:
        if e.status != 404:
            raise
    # Unlabelled, it leaves our label-filtered watch without a DELETED event.
    deps.store.drop_child(claim)
    deps.memory.pop(((app.namespace, app.name), ("PersistentVolumeClaim", name)), None)
    deps.recorder.post(app.ref, "Normal", RETAINED, f"kept PersistentVolumeClaim {name} (retain: true)")


def tie_replica_claims(deps: Deps, app: App) -> None:
    """A perReplica volume's claims are made by the StatefulSet controller, which never deletes one
    here (its retention policy is Retain). Those of a `retain: false` volume get an ownerReference
    to the App, so the garbage collector deletes them with it, operator or not."""
    for (kind, name), claim in deps.store.children((app.namespace, app.name)).items():
        if kind != "PersistentVolumeClaim" or owned_by(claim, app.uid):
            continue
        volume = replica_claim_volume(app, name)
        if volume is None or volume.persistent is None or volume.persistent.retain:
            continue
        meta = claim["metadata"]
        ref = {"apiVersion": API_VERSION, "kind": KIND, "name": app.name, "uid": app.uid}
        patch = {"metadata": {"ownerReferences": [*(meta.get("ownerReferences") or []), ref],
                              "resourceVersion": meta.get("resourceVersion")}}
        try:
            result = deps.kube.merge_patch("v1", "PersistentVolumeClaim", app.namespace, name, patch)
        except ApiError as e:
            if e.status != 404:  # 409: it changed meanwhile; the watch brings the new version
                raise
            continue
        deps.store.put_child(result)


def replica_claim_conflict(deps: Deps, app: App, desired: Json, seen: Json | None) -> str | None:
    """Before a StatefulSet is created or scaled up: a claim a new pod would mount (`<volume>-<app>-<n>`)
    that exists and is not this App's (another App's claim can bear that name: App `data` with volume
    `a-b-0`). The StatefulSet controller would mount it without asking; say so instead. None: none."""
    want = int(desired["spec"].get("replicas") or 0)
    have = int(((seen or {}).get("spec") or {}).get("replicas") or 0) if seen is not None else 0
    if want <= have or not app.spec.per_replica_volumes:
        return None
    try:
        listed = deps.kube.list("v1", "PersistentVolumeClaim", app.namespace, "")
    except ApiError:
        raise
    for claim in sorted(listed, key=lambda c: str(c["metadata"]["name"])):
        name = claim["metadata"]["name"]
        ordinal = name.rsplit("-", 1)[1]
        if replica_claim_volume(app, name) is None or int(ordinal) >= want or may_mount(app, claim):
            continue
        holder = (claim["metadata"].get("labels") or {}).get(LABEL_APP)
        whose = f"App {holder}" if holder else "no App"
        return (f"PersistentVolumeClaim {name} exists and is not this App's ({whose}); "
                f"pod {app.name}-{ordinal} would mount it")
    return None


def may_mount(app: App, claim: Json) -> bool:
    """A claim named like one of `app`'s pods' claims is the App's: labelled for it, owned by it,
    released by it (no owner, retained from it), or asking to be adopted by it."""
    meta = claim["metadata"]
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    holder = labels.get(LABEL_APP)
    released = holder is None and annotations.get(ANN_RETAINED_FROM) == app.name and not meta.get("ownerReferences")
    return holder == app.name or owned_by(claim, app.uid) or annotations.get(ANN_ADOPT) == app.name or released
