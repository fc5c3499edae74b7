"""The store tells the truth: what the watches hold is checked against fresh lists from the API,
the way an informer's relist replaces its store. Objects that vanished while a watch was away (a
partition, an API server restart, a 410 Gone) are dropped and their Apps reconciled, so a child
deleted during an outage is recreated, and status never reports an object that does not exist.

Run every resync period, and at once when the API server answers again after it did not."""

from __future__ import annotations

import logging

from .api import Json
from .kinds import BY_KIND, WATCHED, Kind
from .kube import ApiError, Kube
from .names import LABEL_APP
from .store import AppKey, Store

log = logging.getLogger("appkeeper.verify")
PAGE = 200  # Apps per page of the periodic list


def verify(kube: Kube, store: Store, namespaces: list[str] | None = None,
           kinds: tuple[Kind, ...] = WATCHED) -> set[AppKey]:
    """Lists the Apps and `kinds` (default: every watched kind) in each of `namespaces` ("": all of
    them; default: each namespace the store knows); returns the Apps to reconcile because what the
    store held was not what the API holds. Raises ApiError.

    The informers keep the children and pods true on their own (a relist after a 410); kopf's App
    watch does not drop an App deleted while it was away, so the periodic check lists only the
    Apps, and everything after an outage."""
    stale: set[AppKey] = set()
    app = BY_KIND["App"]
    for namespace in sorted(store.namespaces() if namespaces is None else namespaces):
        gone = store.replace_apps(namespace, typed(kube.list(app.api_version, "App", namespace, "", page=PAGE), "App",
                                                   app.api_version))
        for kind in kinds:
            stale |= store.replace(kind.kind, namespace, list_kind(kube, kind, namespace, LABEL_APP) or [])
        if gone:
            log.info("Apps gone while unwatched: %s", ", ".join(f"{ns}/{n}" for ns, n in sorted(gone)))
    stale = {k for k in stale if store.app(k) is not None}
    if stale:
        log.info("the store was behind the API for %d App(s); reconciling them", len(stale))
    return stale


def not_served(kind: Kind, error: ApiError) -> bool:
    """A 404 on a list of an optional kind: its API is not served (a CRD not installed)."""
    return kind.optional and error.status == 404


def list_kind(kube: Kube, kind: Kind, namespace: str, selector: str) -> list[Json] | None:
    """The objects of `kind` in `namespace` ("": all) that match `selector`; None: an optional kind
    the API server does not serve. Whether it is served is the informer's to record (and to queue
    every App when that changes): only it watches for the change."""
    try:
        items = kube.list(kind.api_version, kind.kind, namespace, selector)
    except ApiError as e:
        if not_served(kind, e):
            return None
        raise
    return typed(items, kind.kind, kind.api_version)


def typed(items: list[Json], kind: str, api_version: str) -> list[Json]:
    """A list's items carry no kind or apiVersion; the store's keys need the kind."""
    for item in items:
        item.setdefault("kind", kind)
        item.setdefault("apiVersion", api_version)
    return items


def api_answers(kube: Kube) -> bool:
    """The API server's /readyz (readable by any identity): a cheap sign it is reachable again."""
    try:
        kube.request("GET", "/readyz")
    except Exception:
        return False
    return True


def fill(kube: Kube, store: Store, namespaces: list[str]) -> list[AppKey]:
    """After taking shards: relist `namespaces` ([]: all) into the store, which keeps only what it
    accepts (our watches ignored the new shards' objects until now). Returns every App held, to be
    reconciled; the ones already settled are answered from memory. Raises ApiError."""
    verify(kube, store, namespaces or [""])
    return store.app_keys()


def fill_app(kube: Kube, store: Store, key: AppKey) -> None:
    """An App that appeared after some of its objects (the store kept only their names): list
    those kinds of it into the store, once. Raises ApiError (they are listed next time)."""
    kinds = store.unfilled(key)
    try:
        for name in sorted(kinds):
            for obj in list_kind(kube, BY_KIND[name], key[0], f"{LABEL_APP}={key[1]}") or []:
                (store.put_pod if name == "Pod" else store.put_child)(obj)
    except ApiError:
        store.refill(key, kinds)
        raise

