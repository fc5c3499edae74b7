"""appkeeper's own informers for the children and pods: list, then watch from the list's
resourceVersion, into the store, as client-go's reflector does. kopf still watches the Apps; these
kinds only feed the store and queue their App, so kopf's per-event handler machinery (causes,
kwargs, handler invocation) is not paid on the busiest streams.

A watch the server ends is opened again from the last resourceVersion seen (bookmarks keep it
fresh); a 410 Gone, or a watch that cannot resume, relists and replaces what the store holds of
the kind, dropping what vanished meanwhile. Failures back off exponentially (to 10 s), so an
API server that is away is not hammered.

An optional kind (kinds.Kind.optional) the API server does not serve is looked for every
OPTIONAL_POLL seconds, quietly; when it appears (or goes), every App is queued, and those that ask
for one get it."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from .api import Json
from .kinds import Kind
from .kube import ApiError, Kube, WatchStream
from .names import LABEL_APP
from .quiet import Repeats
from .store import AppKey, Store, drifted, owner_of
from .verify import not_served, typed
from .workqueue import retry_delay

log = logging.getLogger("appkeeper.informer")
MAX_BACKOFF = 10.0  # the store is checked by verify() as soon as the API server answers again
RELIST = ""  # the resourceVersion that means "list again"
UNSERVED = None  # relist's answer when an optional kind is not served
REPEATS = Repeats()
OPTIONAL_POLL = 30.0  # seconds between looks for an optional kind that is not served


def handle(store: Store, kind: Kind, event: Json) -> tuple[AppKey | None, str, bool]:
    """One watch event into the store: (the App it concerns, if any; the resourceVersion to resume
    from, RELIST after a 410 Gone; whether a repair is due: a child held was deleted or drifted).
    Raises ApiError for any other ERROR event."""
    obj: Json = event.get("object") or {}
    if event.get("type") == "ERROR":
        if obj.get("code") == 410:
            return None, RELIST, False
        raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or "WatchError"),
                       str(obj.get("message") or "the watch returned an error"))
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    if event.get("type") == "BOOKMARK":
        return None, rv, False
    obj.setdefault("kind", kind.kind)
    obj.setdefault("apiVersion", kind.api_version)
    deleted = event.get("type") == "DELETED"
    if kind.kind == "Pod":
        return store.drop_pod(obj) if deleted else store.put_pod(obj), rv, False
    was = owner_of(obj)
    held = store.child(was, (kind.kind, obj["metadata"]["name"])) if was is not None else None
    owner = store.drop_child(obj) if deleted else store.put_child(obj)
    return owner, rv, held is not None and (deleted or drifted(held, obj))


class Informer:
    """One kind in one namespace ("": all), labelled with an App. `run()` in a thread of its own
    until `stop()`; every App whose objects changed goes to `notify(key, urgent)` (called from that
    thread; urgent: a repair is due)."""

    def __init__(self, kube: Kube, store: Store, kind: Kind, namespace: str,
                 notify: Callable[[AppKey, bool], None], watch_seconds: int = 300,
                 optional_poll: float = OPTIONAL_POLL) -> None:
        self.kube, self.store, self.kind, self.namespace = kube, store, kind, namespace
        self.notify = notify
        self.watch_seconds = watch_seconds
        self.optional_poll = optional_poll
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.kind.kind} in {self.namespace or 'all namespaces'}"

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()

    def run(self) -> None:
        rv, failures = RELIST, 0
        while not self._stop.is_set():
            try:
                if rv == RELIST:
                    listed = self.relist()
                    if listed is UNSERVED:
                        self._stop.wait(self.optional_poll)
                        continue
                    rv = listed
                rv = self.watch(rv)
                failures = 0
            except ApiError as e:
                failures += 1
                delay = retry_delay(failures, e.retry_after, MAX_BACKOFF, random.uniform(-0.2, 0.2))
                if e.status not in (0, 429, 500, 503, 504):
                    rv = RELIST  # e.g. 410 on open, 401 after a rotation, 403 until RBAC lands: start over
                # Every watch fails alike when the API server is away: one line per answer a while.
                REPEATS.log(log, logging.WARNING if failures == 1 or e.status not in (0, 503) else logging.DEBUG,
                            (e.status, e.reason), "watch of %s failed (%s); again in %.1fs", self.name, e, delay)
                self._stop.wait(delay)
            except Exception:  # one bad event must not end the watch of a kind for good
                failures += 1
                log.exception("watch of %s failed", self.name)
                rv = RELIST
                self._stop.wait(retry_delay(failures, None, MAX_BACKOFF))

    def relist(self) -> str | None:
        """A fresh list replaces what the store holds of the kind here; its Apps are queued.
        UNSERVED: an optional kind the API server does not serve (the store holds none of it)."""
        rv: str | None
        try:
            items, rv = self.kube.list_at(self.kind.api_version, self.kind.kind, self.namespace, LABEL_APP)
        except ApiError as e:
            if not not_served(self.kind, e):
                raise
            items, rv = [], UNSERVED
        for owner in self.store.replace(self.kind.kind, self.namespace, typed(items, self.kind.kind,
                                                                             self.kind.api_version)):
            self.notify(owner, False)
        if self.kind.optional and self.store.served(self.kind.kind, rv is not UNSERVED):
            log.info("%s (%s) %s", self.kind.kind, self.kind.api_version,
                     f"is not served by the API server: looking for it every {self.optional_poll:.0f}s"
                     if rv is UNSERVED else "is served now: watching it")
            for key in self.store.app_keys():  # those that ask for one get it now (or say they wait)
                self.notify(key, False)
        return rv

    def watch(self, rv: str) -> str:
        """Follows one watch until the server ends it; returns where to resume (RELIST: list again)."""
        stream = self.kube.watch(self.kind.api_version, self.kind.kind, self.namespace, LABEL_APP, rv,
                                 int(self.watch_seconds * random.uniform(1.0, 1.2)))
        with self._lock:
            if self._stop.is_set():
                stream.close()
                return rv
            self._stream = stream
        try:
            for event in stream:
                owner, rv, urgent = handle(self.store, self.kind, event)
                if owner is not None:
                    self.notify(owner, urgent)
                if rv == RELIST or self._stop.is_set():
                    break
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return rv


def start(kube: Kube, store: Store, kinds: tuple[Kind, ...], namespaces: list[str],
          notify: Callable[[AppKey, bool], None], optional_poll: float = OPTIONAL_POLL) -> list[Informer]:
    """An informer per kind and namespace ([]: one per kind, cluster-wide), each in a daemon thread."""
    informers = [Informer(kube, store, kind, ns, notify, optional_poll=optional_poll)
                 for kind in kinds for ns in namespaces or [""]]
    for informer in informers:
        threading.Thread(target=informer.run, name=f"watch-{informer.kind.plural}-{informer.namespace or 'all'}",
                         daemon=True).start()
    return informers
