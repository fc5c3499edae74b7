"""Retained claims: a `retain: true` claim outlives its App. On App deletion (and when the spec
drops the volume) it loses our ownerReference, and our labels, and gains
`appkeeper.dev/retained-from=<app>`. A finalizer on the App makes that happen before the garbage
collector could follow the ownerReference."""

from __future__ import annotations

from .api import API_VERSION, KIND, App, Json
from .deps import Deps, TransientError
from .desired import ANN_RETAIN, ANN_RETAINED_FROM, LABEL_APP
from .kube import ApiError

FINALIZER = "appkeeper.dev/retain-volumes"


def retained(kind: str, obj: Json) -> bool:
    """A claim created with `retain: true` (recorded on it, since the spec may no longer say so)."""
    return kind == "PersistentVolumeClaim" and obj["metadata"].get("annotations", {}).get(ANN_RETAIN) == "true"


def needs_finalizer(app: App) -> bool:
    return any(v.persistent and v.persistent.retain and not v.persistent.per_replica for v in app.spec.volumes)


def set_finalizer(deps: Deps, app: App, body: Json, want: bool) -> None:
    finalizers = list(body["metadata"].get("finalizers") or [])
    if (FINALIZER in finalizers) == want:
        return
    finalizers = [*finalizers, FINALIZER] if want else [f for f in finalizers if f != FINALIZER]
    patch = {"metadata": {"finalizers": finalizers, "resourceVersion": body["metadata"]["resourceVersion"]}}
    try:
        deps.kube.merge_patch(API_VERSION, KIND, app.namespace, app.name, patch)
    except ApiError as e:
        if e.status == 404:
            return
        # 409: the App changed meanwhile; its new version is on its way through the watch.
        raise TransientError(str(e)) from e


def release_claims(deps: Deps, app: App) -> None:
    for (kind, _), obj in deps.store.children((app.namespace, app.name)).items():
        if retained(kind, obj):
            release_claim(deps, app, obj)


def release_claim(deps: Deps, app: App, claim: Json) -> None:
    """Drop our ownerReference, say where the claim came from."""
    refs = [r for r in claim["metadata"].get("ownerReferences") or [] if r.get("uid") != app.uid]
    if len(refs) == len(claim["metadata"].get("ownerReferences") or []):
        return
    name = claim["metadata"]["name"]
    try:
        deps.kube.merge_patch("v1", "PersistentVolumeClaim", app.namespace, name, {"metadata": {
            "ownerReferences": refs or None,
            "annotations": {ANN_RETAINED_FROM: app.name},
            "labels": {LABEL_APP: None, "app.kubernetes.io/managed-by": None},
        }})
    except ApiError as e:
        if e.status != 404:
            raise TransientError(str(e)) from e
    # Unlabelled, it leaves our label-filtered watch without a DELETED event.
    deps.store.drop_child(claim)
    deps.applied.pop(((app.namespace, app.name), ("PersistentVolumeClaim", name)), None)
    deps.recorder.post(app.ref, "Normal", "Retained", f"kept PersistentVolumeClaim {name} (retain: true)")
