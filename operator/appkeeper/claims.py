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
from .deps import Deps, TransientError
from .desired import ANN_RETAIN, ANN_RETAINED_FROM, LABEL_APP, replica_claim_volume
from .drift import owned_by
from .kube import ApiError

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
        raise TransientError(str(e)) from e


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
            raise TransientError(str(e)) from e
    # Unlabelled, it leaves our label-filtered watch without a DELETED event.
    deps.store.drop_child(claim)
    deps.applied.pop(((app.namespace, app.name), ("PersistentVolumeClaim", name)), None)
    deps.recorder.post(app.ref, "Normal", "Retained", f"kept PersistentVolumeClaim {name} (retain: true)")


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
                raise TransientError(str(e)) from e
            continue
        deps.store.put_child(result)
