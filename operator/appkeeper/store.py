"""What the watches delivered: Apps and the children labelled with their App, by key.
Reads for reconcile come from here, not from the API."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .api import Json
from .names import LABEL_APP, MANAGER

AppKey = tuple[str, str]  # namespace, name
ChildKey = tuple[str, str]  # kind, name
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(obj: Json, like: Json | None = None) -> Json:
    """What decisions read of a watched object: our own managedFields entries only (what we own,
    and so what someone took from us; other managers' entries are often most of an object), and no
    client-side apply copy of the whole object in an annotation. A new, compact copy (see
    `compact`; `like`: the version held before, whose unchanged parts it reuses): the watch's stays
    whole."""
    meta = dict(obj.get("metadata") or {})
    fields = meta.get("managedFields")
    if fields is not None:
        mine = [e for e in fields if e.get("manager") == MANAGER]
        if mine:
            meta["managedFields"] = mine
        else:
            del meta["managedFields"]
    annotations = meta.get("annotations") or {}
    if LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    kind = obj.get("kind")
    if kind == "Pod":  # podhealth and failfast read who it is and its status, never its spec
        slimmed: Json = compact({"apiVersion": obj.get("apiVersion"), "kind": kind, "status": obj.get("status") or {},
                                 "metadata": {k: v for k, v in meta.items() if k in POD_METADATA}}, like)
        return slimmed
    body = {k: v for k, v in obj.items() if k not in DROPPED.get(str(kind), ())}
    slimmed = compact({**body, "metadata": meta}, like)
    return slimmed


def drifted(held: Json | None, new: Json) -> bool:
    """Whether `new` changes what the operator declares of the child it holds as `held` (its spec or
    data, its labels, annotations or owners), beyond its status: a repair is due, ahead of routine work."""
    if held is None:
        return False
    dropped = DROPPED.get(str(new.get("kind")), ())
    if any(held.get(k) != v for k, v in new.items() if k not in ("status", "metadata") and k not in dropped):
        return True
    old_meta, meta = held.get("metadata") or {}, new.get("metadata") or {}
    if old_meta.get("labels") != meta.get("labels") or old_meta.get("ownerReferences") != meta.get("ownerReferences"):
        return True
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    return bool((old_meta.get("annotations") or {}) != annotations)


# What the store does not keep of a kind, because no decision reads it: a snapshot's data is
# immutable and named by its hash (drift.py compares the rest).
DROPPED: dict[str, tuple[str, ...]] = {"ConfigMap": ("data", "binaryData")}
POD_METADATA = frozenset({"name", "namespace", "uid", "resourceVersion", "labels", "ownerReferences",
                          "creationTimestamp", "deletionTimestamp", "generateName"})
GONE_MAX = 10_000  # children (and uids) remembered as deleted; the oldest is forgotten first (it is then asked about)
ORPHANS_MAX = 100_000  # labelled objects of Apps not held that are remembered by name (not kept)


LEAF: Json = {}  # the one empty leaf that every kept fieldsV1 tree shares: nothing may write to it
_WORDS = re.compile(r"[^\d]{1,32}")


def compact(value: Any, like: Any = None, leaf: bool = False) -> Any:
    """A copy whose keys, and short values without digits ("True", "TCP", "ClusterIP", a container
    name), are interned strings: JSON decoding makes a new string for every key of every object, so
    a thousand Deployments held their own copies of the same few hundred names. Uids,
    resourceVersions and times (they carry digits) are left alone: interning them too cost CPU in
    an A/B (bench/ab-intern.json, where the change below, alone free, bench/ab-leaves.json, came
    with it) and, on early CPython 3.12, memory for good. The empty leaves of a fieldsV1 tree (a
    managedFields entry: one `{}` per field) are all `LEAF` (`leaf`: inside such a tree).
    bench/compact.py, an App's Deployment and Service kept for 200 Apps: 14.5 KB held per object
    uncompacted, 7.6 KB compacted, for 43-44 us of CPU per object.

    `like`: an earlier compact copy of the same object (the version the store holds). Its parts
    equal to the new ones are reused as they are, found by a comparison that runs in C, so a new
    version of an object costs a fraction of the first one (bench/compact.py: "update"). Nothing
    may change a held object in place: versions share parts."""
    kind = type(value)
    if kind is dict:
        if leaf and not value:
            return LEAF
        if type(like) is not dict:  # a first version: nothing to look up (the common case, and the dear one)
            return {sys.intern(k): compact(v, None, leaf or k == "fieldsV1") for k, v in value.items()}
        if value == like:
            return like
        return {sys.intern(k): compact(v, like.get(k), leaf or k == "fieldsV1") for k, v in value.items()}
    if kind is list:
        if type(like) is list:
            if value == like:
                return like
            if len(value) == len(like):
                return [compact(v, w, leaf) for v, w in zip(value, like, strict=True)]
        return [compact(v, None, leaf) for v in value]
    if kind is str and _WORDS.fullmatch(value):
        return sys.intern(value)
    return value


def _rv(obj: Json) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _newer(obj: Json, old: Json | None) -> bool:
    """Whether `obj` should replace `old`: a new incarnation (uid), or a later resourceVersion."""
    if old is None or old["metadata"].get("uid") != obj["metadata"].get("uid"):
        return True
    return _rv(obj) >= _rv(old)


def _remember(table: dict[Any, None], key: Any) -> None:
    """Adds `key` to a bounded record; the oldest is forgotten first."""
    table[key] = None
    if len(table) > GONE_MAX:
        del table[next(iter(table))]


def app_key(obj: Json) -> AppKey:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def owner_of(child: Json) -> AppKey | None:
    """The App a child belongs to, by its label."""
    meta = child.get("metadata", {})
    name = (meta.get("labels") or {}).get(LABEL_APP)
    return (meta.get("namespace", ""), name) if name else None


class ConfigSources:
    """The ConfigMaps Apps' pods reference (config.py), kept only while some App references them:
    a watch of every ConfigMap must not fill memory with the ones nobody uses. `None`: read, and
    it does not exist; absent: never read (the reconcile reads it once).

    A change is debounced: it becomes what reconciles see `debounce` seconds after the last edit
    of a burst, or `max_wait` after its first, so a burst of edits rolls the pods once or twice."""

    def __init__(self, debounce: float = 3.0, max_wait: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.debounce, self.max_wait, self.clock = debounce, max_wait, clock
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], Json | None] = {}
        self._pending: dict[tuple[str, str], tuple[Json | None, float, float]] = {}  # obj, first, last
        self._users: dict[tuple[str, str], set[AppKey]] = {}
        self._uses: dict[AppKey, set[str]] = {}

    def use(self, app: AppKey, names: set[str]) -> None:
        """`app` references exactly `names` now; what nobody references any more is forgotten."""
        with self._lock:
            for name in self._uses.pop(app, set()) - names:
                users = self._users.get((app[0], name), set())
                users.discard(app)
                if not users:
                    self._users.pop((app[0], name), None)
                    self._objects.pop((app[0], name), None)
                    self._pending.pop((app[0], name), None)
            for name in names:
                self._users.setdefault((app[0], name), set()).add(app)
            if names:
                self._uses[app] = set(names)

    def state(self, app: AppKey) -> tuple[tuple[str, int | None, bool], ...]:
        """What `app`'s reconcile reads of its ConfigMaps: (name, resourceVersion, a change pending)."""
        with self._lock:
            return tuple((name, None if (obj := self._objects.get((app[0], name))) is None else _rv(obj),
                          (app[0], name) in self._pending) for name in sorted(self._uses.get(app, ())))

    def known(self, namespace: str, name: str) -> tuple[bool, Json | None, float | None]:
        """(read before, the object, seconds until a pending change takes effect)."""
        key, now = (namespace, name), self.clock()
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                due = min(pending[2] + self.debounce, pending[1] + self.max_wait)
                if now < due:
                    return True, self._objects.get(key), due - now
                self._objects[key] = pending[0]
                del self._pending[key]
            return key in self._objects, self._objects.get(key), None

    def read(self, namespace: str, name: str, obj: Json | None) -> None:
        """What a reconcile read from the API, for a name it had not seen: it counts at once."""
        with self._lock:
            if (namespace, name) in self._users:
                self._objects[(namespace, name)] = obj

    def put(self, namespace: str, name: str, obj: Json | None) -> set[AppKey]:
        """A watch event (None: deleted): pending until debounced; the Apps that reference it."""
        key, now = (namespace, name), self.clock()
        with self._lock:
            users = set(self._users.get(key, set()))
            if not users:
                return users
            if key not in self._objects:
                self._objects[key] = obj  # first sight: nothing to debounce against
            elif self._objects[key] != obj or key in self._pending:
                first = self._pending[key][1] if key in self._pending else now
                self._pending[key] = (obj, first, now)
            return users


def _keep(lock: threading.Lock, held: Callable[[], dict[Any, Json]], key: Any, obj: Json) -> None:
    """Holds the newer of `obj` and what `held()` has at `key`. Slimmed outside the lock, against the
    version held (its unchanged parts are reused); one no newer than that is not slimmed at all."""
    with lock:
        old = held().get(key)
    if not _newer(obj, old):
        return
    obj = slim(obj, old)
    with lock:
        table = held()
        if _newer(obj, table.get(key)):
            table[key] = obj


def _everything(_: AppKey) -> bool:
    return True


class Store:
    def __init__(self, accepts: Callable[[AppKey], bool] = _everything) -> None:
        self._lock = threading.Lock()
        # Which Apps this process keeps (sharding: its shards' only); the others' events are ignored.
        self.accepts = accepts
        self.configs = ConfigSources()
        self._apps: dict[AppKey, Json] = {}
        self._children: dict[AppKey, dict[ChildKey, Json]] = {}
        self._pods: dict[AppKey, dict[str, Json]] = {}
        # Objects labelled for an App this process does not hold (it does not exist, or not yet):
        # only their names. Anyone may label anything; only an App that exists has its objects kept.
        self._orphans: dict[AppKey, set[ChildKey]] = {}
        self._orphan_count = 0
        # Apps that appeared after some of their objects: those kinds are listed once (`unfilled`).
        self._unfilled: dict[AppKey, set[str]] = {}
        # Children the watch said were deleted (a repair creates at once, with no GET first).
        self._gone: dict[tuple[AppKey, ChildKey], None] = {}
        # The uids the watch said were deleted: our own write's answer, put after the watch's
        # DELETED of that very object, must not bring it back (a repair would then see it there).
        self._dead: dict[str, None] = {}
        # Optional kinds (kinds.Kind.optional) the API server was last seen not to serve.
        self._unserved: frozenset[str] = frozenset()

    # Optional kinds
    def served(self, kind: str, served: bool) -> bool:
        """Records whether the API server serves `kind`; True if that changed."""
        with self._lock:
            before = self._unserved
            self._unserved = before - {kind} if served else before | {kind}
            return before != self._unserved

    def unserved(self) -> frozenset[str]:
        with self._lock:
            return self._unserved

    # Apps
    def put_app(self, body: Json) -> bool:
        """Keeps the newer of what we have and `body` (our own status patch may be ahead of the watch).
        False: not one of this process's Apps."""
        key = app_key(body)
        if not self.accepts(key):
            return False
        _keep(self._lock, lambda: self._apps, key, body)
        with self._lock:
            orphans = self._orphans.pop(key, None)
            if orphans and key in self._apps:
                self._orphan_count -= len(orphans)
                self._unfilled.setdefault(key, set()).update(kind for kind, _ in orphans)
            elif orphans:
                self._orphans[key] = orphans
        return True

    def drop_app(self, key: AppKey) -> None:
        """The App is gone: so is what the store held for it (its objects that remain, a retained
        claim, are remembered by name only)."""
        self.configs.use(key, set())
        with self._lock:
            self._apps.pop(key, None)
            self._unfilled.pop(key, None)
            held = [*self._children.pop(key, {}), *(("Pod", name) for name in self._pods.pop(key, {}))]
            for child in held:
                self._orphan(key, child)

    def _orphan(self, owner: AppKey, key: ChildKey) -> None:
        """Remembers (lock held) that `owner`, not held, has an object `key`."""
        names = self._orphans.setdefault(owner, set())
        if key not in names and self._orphan_count < ORPHANS_MAX:
            names.add(key)
            self._orphan_count += 1

    def unfilled(self, key: AppKey) -> set[str]:
        """The kinds of which `key` had objects before it appeared: to be listed into the store once."""
        with self._lock:
            return self._unfilled.pop(key, set())

    def refill(self, key: AppKey, kinds: set[str]) -> None:
        """Listing them failed: list them next time."""
        with self._lock:
            if key in self._apps:
                self._unfilled.setdefault(key, set()).update(kinds)

    def app(self, key: AppKey) -> Json | None:
        with self._lock:
            return self._apps.get(key)

    def app_keys(self) -> list[AppKey]:
        with self._lock:
            return list(self._apps)

    # Children (and pods, read only: their states explain why an App cannot run), by owner label
    def put_child(self, obj: Json) -> AppKey | None:
        """Keeps the newer of what we have and `obj` (a watch event may trail our own write), if its
        App is held; returns that App (None: no App of ours)."""
        return self._put(self._children, (obj["kind"], obj["metadata"]["name"]), obj)

    def drop_child(self, obj: Json) -> AppKey | None:
        return self._drop(self._children, (obj["kind"], obj["metadata"]["name"]), obj)

    def put_pod(self, pod: Json) -> AppKey | None:
        return self._put(self._pods, pod["metadata"]["name"], pod)

    def drop_pod(self, pod: Json) -> AppKey | None:
        return self._drop(self._pods, pod["metadata"]["name"], pod)

    def _put(self, table: dict[AppKey, dict[Any, Json]], key: Any, obj: Json) -> AppKey | None:
        owner = owner_of(obj)
        if owner is None or not self.accepts(owner) or not self._held(owner, obj):
            return None
        if self._dead and obj["metadata"].get("uid") in self._dead:
            return owner  # deleted already; the watch's DELETED queued its App
        _keep(self._lock, lambda: table.setdefault(owner, {}), key, obj)
        if table is self._children and self._gone:
            with self._lock:
                self._gone.pop((owner, key), None)
        return owner

    def _held(self, owner: AppKey, obj: Json) -> bool:
        """Whether `owner` is held; if not, `obj` is remembered by name only."""
        with self._lock:
            if owner in self._apps:
                return True
            self._orphan(owner, (str(obj.get("kind")), obj["metadata"]["name"]))
            return False

    def _drop(self, table: dict[AppKey, dict[Any, Json]], key: Any, obj: Json) -> AppKey | None:
        owner = owner_of(obj)
        if owner is None:
            return None
        with self._lock:
            names, name = self._orphans.get(owner), (str(obj.get("kind")), obj["metadata"]["name"])
            if names is not None and name in names:
                names.discard(name)
                self._orphan_count -= 1
                if not names:
                    del self._orphans[owner]
            held, uid = table.get(owner, {}), obj["metadata"].get("uid")
            old = held.get(key)
            if uid:
                _remember(self._dead, uid)
            if old is None or old["metadata"].get("uid") == uid:
                if old is not None:
                    del held[key]
                    if not held:
                        del table[owner]
                if table is self._children:  # seen to go: a repair need not ask the API first
                    _remember(self._gone, (owner, key))
        return owner if owner in self._apps else None

    def seen_deleted(self, owner: AppKey, key: ChildKey) -> bool:
        """Whether the watch said this child was deleted, and has not said it is back since."""
        with self._lock:
            return (owner, key) in self._gone

    def replace(self, kind: str, namespace: str, listed: list[Json]) -> set[AppKey]:
        """An informer's Replace: after a fresh list of `kind` in `namespace` ("": all), hold exactly that;
        objects that vanished while a watch was away are dropped. Returns the Apps whose objects of
        `kind` appeared, changed or went."""
        pods = kind == "Pod"
        table: dict[AppKey, dict[Any, Json]] = self._pods if pods else self._children
        fresh: dict[AppKey, dict[Any, Json]] = {}
        for obj in listed:
            owner = owner_of(obj)
            if owner is not None and self.accepts(owner) and self._held(owner, obj):
                name = obj["metadata"]["name"]
                key = name if pods else (kind, name)
                with self._lock:
                    old = table.get(owner, {}).get(key)
                fresh.setdefault(owner, {})[key] = slim(obj, old)
        changed: set[AppKey] = set()
        with self._lock:
            for owner in {o for o in table.keys() | fresh.keys() if not namespace or o[0] == namespace}:
                held, new = table.setdefault(owner, {}), fresh.get(owner, {})
                for key in [k for k in held if (pods or k[0] == kind) and k not in new]:
                    del held[key]
                    changed.add(owner)
                for key, obj in new.items():
                    if held.get(key) is None or (_newer(obj, held[key]) and _rv(obj) != _rv(held[key])):
                        held[key] = obj
                        changed.add(owner)
        return changed

    def replace_apps(self, namespace: str, listed: list[Json]) -> set[AppKey]:
        """The same for Apps: those gone from a fresh list of `namespace` are dropped (returned)."""
        names = {app_key(o) for o in listed}
        for obj in listed:
            self.put_app(obj)  # what this process does not keep is not put
        with self._lock:
            gone = {k for k in self._apps if (not namespace or k[0] == namespace) and k not in names}
        for key in gone:
            self.drop_app(key)
        return gone

    def keep_only(self, keep: Callable[[AppKey], bool]) -> list[AppKey]:
        """Forgets every App (and its children and pods) `keep` rejects, e.g. a shard handed over;
        returns the Apps forgotten."""
        with self._lock:
            gone = [k for k in self._apps if not keep(k)]
            for key in gone:
                del self._apps[key]
            for table in (self._children, self._pods, self._orphans, self._unfilled):
                for key in [k for k in table if not keep(k)]:
                    del table[key]
            self._orphan_count = sum(map(len, self._orphans.values()))
        for key in gone:
            self.configs.use(key, set())
        return gone

    def inputs(self, key: AppKey) -> tuple[object, ...] | None:
        """Everything of the store a reconcile of `key` reads, by resourceVersion: equal inputs, equal
        decisions. None: the App is not here."""
        with self._lock:
            app = self._apps.get(key)
            if app is None:
                return None
            children = tuple(sorted((k, _rv(o)) for k, o in self._children.get(key, {}).items()))
            pods = tuple(sorted((k, _rv(o)) for k, o in self._pods.get(key, {}).items()))
            stamp = (app["metadata"].get("uid"), _rv(app))
            unserved = self._unserved
        return stamp, children, pods, self.configs.state(key), unserved

    def namespaces(self) -> set[str]:
        with self._lock:
            return {k[0] for k in self._apps} | {k[0] for k in self._children if self._children[k]}

    def children(self, owner: AppKey) -> dict[ChildKey, Json]:
        with self._lock:
            return dict(self._children.get(owner, {}))

    def child(self, owner: AppKey, key: ChildKey) -> Json | None:
        with self._lock:
            return self._children.get(owner, {}).get(key)

    def pods(self, owner: AppKey) -> list[Json]:
        with self._lock:
            return list(self._pods.get(owner, {}).values())
