"""A fake of the API calls kube.py makes, for fast tests of the real Reconciler.

It keeps objects in memory and implements just enough: server-side apply by field manager (with
managedFields, a list of maps keyed by `name` and other lists atomic), resourceVersion and
generation, uid preconditions, 404/409/422 and injected failures, JSON merge patch, and garbage
collection through ownerReferences on delete. It is not the API server: the e2e suite is the judge
of what the API server does; this only makes the reconciler's own logic fast to test."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from appkeeper.api import Json
from appkeeper.fields import created_entry_patch
from appkeeper.kube import ApiError
from appkeeper.names import LABEL_APP, MANAGER
from appkeeper.store import Store

Key = tuple[str, str, str]  # kind, namespace, name


def clone(obj: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), as the API server would send it
    anew: several times faster than copy.deepcopy, which the whole unit suite pays for."""
    if isinstance(obj, dict):
        return {k: clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clone(v) for v in obj]
    return obj


def fields_of(obj: Any) -> Json:
    """The fieldsV1 tree of an applied configuration."""
    tree: Json = {}
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            tree[f"f:{k}"] = {".": {}, **fields_of(v)}
        elif isinstance(v, list) and v and all(isinstance(i, dict) and "name" in i for i in v):
            tree[f"f:{k}"] = {".": {}, **{f'k:{json.dumps({"name": i["name"]})}': {".": {}, **fields_of(i)}
                                          for i in v}}
        else:
            tree[f"f:{k}"] = {}
    return tree


def drop_path(tree: Json, path: list[str]) -> None:
    for part in path[:-1]:
        tree = tree.get(part, {})
    tree.pop(path[-1], None)


def merge(dst: Json, src: Json) -> None:
    """JSON merge patch (RFC 7386): None deletes."""
    for k, v in src.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = clone(v)


@dataclass
class Failure:
    verb: str
    kind: str
    status: int
    times: int
    message: str


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[Key, Json] = {}
        self.calls: list[tuple[str, str, str]] = []  # (verb, kind, name): the writes and reads made
        self.failures: list[Failure] = []
        self._rv = itertools.count(1)

    # --- test helpers ---------------------------------------------------------------------------

    def fail(self, verb: str, kind: str, status: int, times: int = 1, message: str = "injected") -> None:
        self.failures.append(Failure(verb, kind, status, times, message))

    def writes(self) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] in ("create", "apply", "replace", "delete", "merge_patch", "json_patch")]

    def obj(self, kind: str, namespace: str, name: str) -> Json | None:
        return self.objects.get((kind, namespace, name))

    def add(self, obj: Json, manager: str = "kubectl") -> Json:
        """An object someone else created (a user, another controller); `manager` appkeeper: ours."""
        obj = clone(obj)
        meta = obj.setdefault("metadata", {})
        key = (obj["kind"], meta.get("namespace", ""), meta["name"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f"{key} already exists")
        entry = {**self._entry(obj), "manager": manager, "operation": "Update"}  # what the request set
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._rv)), generation=1)
        meta.setdefault("managedFields", [entry])
        self.objects[key] = obj
        return clone(obj)

    def edit(self, kind: str, namespace: str, name: str, path: list[str], value: Any, manager: str = "kubectl") -> None:
        """Another manager sets `path` (dict keys) to `value`, taking the field from whoever owned it."""
        obj = self.objects[(kind, namespace, name)]
        target = obj
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
        for entry in obj["metadata"].get("managedFields") or []:
            drop_path(entry["fieldsV1"], [f"f:{p}" for p in path])
        obj["metadata"]["managedFields"].append({"manager": manager, "operation": "Update", "fieldsV1": {}})
        self._bump(obj, spec_changed=path[0] == "spec")

    def remove(self, kind: str, namespace: str, name: str) -> None:
        """Someone deletes an object (garbage collection follows)."""
        self._delete((kind, namespace, name))

    def sync(self, store: Store) -> None:
        """What the watches would tell the store now: every App, labelled child and pod; and that
        the ones gone are gone."""
        for (kind, _, _), obj in self.objects.items():
            if kind == "App":
                store.put_app(clone(obj))
        for (kind, _, _), obj in self.objects.items():
            if kind == "App":
                continue
            if kind == "Pod":
                store.put_pod(clone(obj))
            elif LABEL_APP in (obj["metadata"].get("labels") or {}):
                store.put_child(clone(obj))
        for app_key in store.app_keys():
            for (kind, name), child in store.children(app_key).items():
                if (kind, app_key[0], name) not in self.objects:
                    store.drop_child(child)
            if ("App", *app_key) not in self.objects:
                store.drop_app(app_key)

    # --- what kube.Kube offers --------------------------------------------------------------------

    def create(self, obj: Json) -> Json:
        self._locate("create", obj)
        return self.add(obj, manager=MANAGER)

    def own_created_fields(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._call("json_patch", kind, name)
        held = self.objects.get((kind, namespace, name))
        for op in created_entry_patch((held or {}).get("metadata", {}).get("managedFields") or []):
            if op["op"] == "replace":
                assert held is not None
                held["metadata"]["managedFields"][int(op["path"].split("/")[3])]["operation"] = op["value"]

    def apply(self, obj: Json) -> Json:
        key, held = self._locate("apply", obj)
        if held is None:
            created = clone(obj)
            created["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._rv)), generation=1,
                                       managedFields=[self._entry(obj)])
            self.objects[key] = created
            return clone(created)
        before = clone(held)
        mine = next((e for e in held["metadata"]["managedFields"] if e["manager"] == MANAGER
                     and e["operation"] == "Apply"), None)
        for k, v in obj.items():
            if k == "metadata":
                merge(held["metadata"], {mk: mv for mk, mv in v.items() if mk not in ("name", "namespace")})
            elif k not in ("apiVersion", "kind"):
                held[k] = clone(v) if not isinstance(v, dict) or not isinstance(held.get(k), dict) \
                    else self._overlay(held[k], v)
        # What we applied before and declare no more goes (ownerReferences, labels, annotations).
        previous = (mine or {}).get("fieldsV1", {}).get("f:metadata", {})
        for name in [k[2:] for k in previous if k.startswith("f:")]:
            if name not in obj["metadata"]:
                held["metadata"].pop(name, None)
        held["metadata"]["managedFields"] = [e for e in held["metadata"]["managedFields"] if e is not mine]
        held["metadata"]["managedFields"].append(self._entry(obj))
        if held != before:
            self._bump(held, spec_changed=held.get("spec") != before.get("spec"))
        return clone(held)

    def replace(self, obj: Json) -> Json:
        key, held = self._locate("replace", obj)
        meta = obj["metadata"]
        if held is None:
            raise ApiError(404, "NotFound", f"{obj['kind']} {meta['name']} not found")
        if meta.get("resourceVersion") and meta["resourceVersion"] != held["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        new = clone(obj)
        new["metadata"]["managedFields"] = held["metadata"]["managedFields"]
        self.objects[key] = new
        self._bump(new, spec_changed=True)
        return clone(new)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        self._call("get", kind, name)
        obj = self.objects.get((kind, namespace, name))
        return clone(obj) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str, page: int = 0) -> list[Json]:
        self._call("list", kind, "")
        key, eq, value = label_selector.partition("=")

        def selected(labels: dict[str, str]) -> bool:
            return not key or (labels.get(key) == value if eq else key in labels)

        return [clone(o) for (k, ns, _), o in self.objects.items()
                if k == kind and ns == namespace and selected(o["metadata"].get("labels") or {})]

    def events_about(self, namespace: str, kind: str, name: str, reason: str) -> list[Json]:
        self._call("list", "Event", name)
        return [clone(o) for (k, ns, _), o in self.objects.items() if k == "Event" and ns == namespace
                and o.get("reason") == reason and (o.get("involvedObject") or {}).get("name") == name]

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        self._call("delete", kind, name)
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            return False
        if uid and obj["metadata"]["uid"] != uid:
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition does not match")
        self._delete((kind, namespace, name))
        return True

    def merge_patch(self, api_version: str, kind: str, namespace: str, name: str, patch: Json,
                    subresource: str | None = None) -> Json:
        self._call("merge_patch", kind, name)
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f"{kind} {name} not found")
        rv = (patch.get("metadata") or {}).get("resourceVersion")
        if rv and rv != obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        patch = clone(patch)
        (patch.get("metadata") or {}).pop("resourceVersion", None)
        if subresource == "status":
            patch = {"status": patch.get("status")}
        merge(obj, patch)
        self._bump(obj, spec_changed=False)
        if kind == "App" and obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            self._delete((kind, namespace, name))
        return clone(obj)

    def patch_app_status(self, namespace: str, name: str, status: Json) -> Json:
        return self.merge_patch("appkeeper.dev/v1alpha1", "App", namespace, name, {"status": status}, "status")

    def create_event(self, event: Json) -> None:
        self._call("create_event", "Event", event["metadata"]["name"])
        self.add(event)

    # --- inside -------------------------------------------------------------------------------------

    def _locate(self, verb: str, obj: Json) -> tuple[Key, Json | None]:
        meta = obj["metadata"]
        self._call(verb, obj["kind"], meta["name"])
        key = (obj["kind"], meta.get("namespace", ""), meta["name"])
        return key, self.objects.get(key)

    def _call(self, verb: str, kind: str, name: str) -> None:
        self.calls.append((verb, kind, name))
        for f in self.failures:
            if f.times > 0 and f.verb == verb and f.kind == kind:
                f.times -= 1
                raise ApiError(f.status, {409: "Conflict", 422: "Invalid", 403: "Forbidden"}.get(f.status,
                                                                                                   "InternalError"),
                               f.message)

    @staticmethod
    def _entry(obj: Json) -> Json:
        applied = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        applied["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in ("name", "namespace")}
        return {"manager": MANAGER, "operation": "Apply", "fieldsV1": fields_of(applied)}

    @staticmethod
    def _overlay(held: Json, applied: Json) -> Json:
        out = clone(held)
        for k, v in applied.items():
            out[k] = FakeKube._overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
                else clone(v)
        return out

    def _bump(self, obj: Json, spec_changed: bool) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        if spec_changed:
            obj["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1

    def _delete(self, key: Key) -> None:
        obj = self.objects.pop(key, None)
        if obj is None:
            return
        uid = obj["metadata"]["uid"]
        for other_key, other in list(self.objects.items()):
            if any(r.get("uid") == uid for r in other["metadata"].get("ownerReferences") or []):
                self._delete(other_key)
