from __future__ import annotations

import copy

from appkeeper.store import Store


def obj(kind: str, rv: str, uid: str = "u1", app: str = "shop") -> dict[str, object]:
    return {"kind": kind, "metadata": {"name": "shop", "namespace": "ns", "uid": uid, "resourceVersion": rv,
                                       "labels": {"appkeeper.dev/app": app}}}


def test_an_older_event_never_replaces_a_newer_object() -> None:
    s = Store()
    s.put_app(obj("App", "10"))
    s.put_app(obj("App", "9"))
    assert s.app(("ns", "shop"))["metadata"]["resourceVersion"] == "10"  # type: ignore[index]
    assert s.put_child(obj("Deployment", "5")) == ("ns", "shop")
    s.put_child(obj("Deployment", "4"))
    assert s.child(("ns", "shop"), ("Deployment", "shop"))["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    s.put_child(obj("Deployment", "1", uid="u2"))  # recreated: a new incarnation wins
    assert s.child(("ns", "shop"), ("Deployment", "shop"))["metadata"]["uid"] == "u2"  # type: ignore[index]


def test_delete_of_an_old_incarnation_keeps_the_new_one() -> None:
    s = Store()
    s.put_app(obj("App", "1"))
    s.put_child(obj("Service", "7", uid="new"))
    s.drop_child(obj("Service", "6", uid="old"))
    assert s.child(("ns", "shop"), ("Service", "shop")) is not None
    s.drop_child(obj("Service", "8", uid="new"))
    assert s.child(("ns", "shop"), ("Service", "shop")) is None
    assert s.put_child({"kind": "Service", "metadata": {"name": "x", "labels": {}}}) is None


def test_our_write_answered_after_the_watch_saw_it_deleted_does_not_bring_it_back() -> None:
    """A repair's create returns, another client deletes the new object, and the watch says so
    before the reconcile puts its write's answer: the store must not hold the deleted object
    (the next reconcile would see it there and not repair it)."""
    s = Store()
    s.put_app(obj("App", "1"))
    s.put_child(obj("Service", "5", uid="a"))
    s.drop_child(obj("Service", "6", uid="a"))
    assert s.seen_deleted(("ns", "shop"), ("Service", "shop"))
    s.drop_child(obj("Service", "8", uid="b"))  # the watch: b was made and deleted ...
    assert s.put_child(obj("Service", "7", uid="b")) == ("ns", "shop")  # ... then our create's answer
    assert s.child(("ns", "shop"), ("Service", "shop")) is None
    assert s.seen_deleted(("ns", "shop"), ("Service", "shop"))
    s.put_child(obj("Service", "9", uid="c"))
    assert s.child(("ns", "shop"), ("Service", "shop"))["metadata"]["uid"] == "c"  # type: ignore[index]
    assert not s.seen_deleted(("ns", "shop"), ("Service", "shop"))


def test_a_relist_drops_what_vanished_and_names_the_apps() -> None:
    from appkeeper.store import Store

    def child(kind: str, name: str, app: str, rv: str, uid: str = "") -> dict[str, object]:
        return {"kind": kind, "metadata": {"name": name, "namespace": "ns", "uid": uid or name, "resourceVersion": rv,
                                           "labels": {"appkeeper.dev/app": app}}}

    store = Store()
    for name in ("a", "b"):
        store.put_app({"kind": "App", "metadata": {"name": name, "namespace": "ns", "uid": name,
                                                   "resourceVersion": "1"}})
    store.put_child(child("Deployment", "a", "a", "1"))
    store.put_child(child("Service", "a", "a", "1"))
    store.put_child(child("Deployment", "b", "b", "1"))
    # The Deployment "a" was deleted while the watch was away; "b" did not change.
    assert store.replace("Deployment", "ns", [child("Deployment", "b", "b", "1")]) == {("ns", "a")}
    assert set(store.children(("ns", "a"))) == {("Service", "a")}  # other kinds untouched
    assert store.replace("Deployment", "ns", [child("Deployment", "b", "b", "1")]) == set()
    # A newer version from the list replaces the held one; an older one does not.
    assert store.replace("Deployment", "ns", [child("Deployment", "b", "b", "5")]) == {("ns", "b")}
    assert store.replace("Deployment", "other", []) == set()  # another namespace is left alone
    assert store.children(("ns", "b"))[("Deployment", "b")]["metadata"]["resourceVersion"] == "5"


def test_verify_puts_back_the_truth_after_an_outage() -> None:
    from appkeeper.verify import verify

    from .test_reconcile import NS, WEB, World

    w = World()
    w.put_app(**WEB)
    w.reconcile()
    store = w.store
    # During an outage, the Service is deleted and nobody tells the store.
    w.kube.objects.pop(("Service", NS, "shop"))
    assert ("Service", "shop") in store.children((NS, "shop"))
    assert verify(w.kube, store, kinds=()) == set()  # type: ignore[arg-type]  # the Apps only: not seen
    assert verify(w.kube, store) == {(NS, "shop")}  # type: ignore[arg-type]
    assert ("Service", "shop") not in store.children((NS, "shop"))
    w.reconciler.reconcile((NS, "shop"))
    assert w.kube.obj("Service", NS, "shop") is not None
    assert w.status()["repairs"]["lastReason"] == "ServiceDeleted"
    # An App deleted meanwhile leaves the store too.
    w.kube.objects.pop(("App", NS, "shop"))
    verify(w.kube, store)  # type: ignore[arg-type]
    assert store.app((NS, "shop")) is None


def test_the_store_keeps_our_managed_fields_only_and_no_last_applied_copy() -> None:
    from appkeeper.store import LAST_APPLIED

    obj = {"kind": "Deployment", "metadata": {
        "name": "shop", "namespace": "demo", "uid": "u1", "resourceVersion": "5",
        "labels": {"appkeeper.dev/app": "shop"},
        "annotations": {LAST_APPLIED: "{...the whole object...}", "keep": "me"},
        "managedFields": [{"manager": "appkeeper", "operation": "Apply", "fieldsV1": {"f:spec": {}}},
                          {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                           "fieldsV1": {"f:status": {}}},
                          {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {}}}]},
        "spec": {"replicas": 1}}
    store = Store()
    store.put_app({"kind": "App", "metadata": {"name": "shop", "namespace": "demo", "uid": "a",
                                               "resourceVersion": "1"}})
    store.put_child(obj)
    held = store.child(("demo", "shop"), ("Deployment", "shop"))
    assert held is not None
    assert held["metadata"]["managedFields"] == [obj["metadata"]["managedFields"][0]]  # type: ignore[index]
    assert held["metadata"]["annotations"] == {"keep": "me"}
    assert held["spec"] == {"replicas": 1}
    assert len(obj["metadata"]["managedFields"]) == 3  # type: ignore[arg-type]  # the watch's copy is left whole


def test_a_relist_of_all_namespaces_replaces_across_them() -> None:
    """A shard just taken is listed cluster-wide ("" for the namespace): what vanished anywhere goes."""
    def child(ns: str, name: str) -> dict[str, object]:
        return {"kind": "Service", "metadata": {"name": name, "namespace": ns, "uid": name, "resourceVersion": "1",
                                                "labels": {"appkeeper.dev/app": name}}}

    def app(ns: str, name: str) -> dict[str, object]:
        return {"kind": "App", "metadata": {"name": name, "namespace": ns, "uid": name, "resourceVersion": "1"}}

    store = Store()
    for ns in ("a", "b"):
        store.put_app(app(ns, "x"))
        store.put_child(child(ns, "x"))
    assert store.replace("Service", "", [child("a", "x")]) == {("b", "x")}
    assert store.children(("b", "x")) == {}
    assert store.replace_apps("", [app("b", "x")]) == {("a", "x")}
    assert store.app_keys() == [("b", "x")]


def test_the_store_keeps_a_slim_compact_copy_and_leaves_the_watched_object_whole() -> None:
    import json

    from appkeeper.store import LEAF, slim

    def decoded() -> dict[str, object]:  # as from a watch: every key a string of its own
        return dict(json.loads(json.dumps({
            "kind": "Service", "metadata": {
                "name": "web", "uid": "1234-abcd", "resourceVersion": "77",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "blue",
                                "long": "x" * 65},
                "managedFields": [{"manager": "appkeeper",
                                   "fieldsV1": {"f:spec": {"f:type": {}, "f:selector": {"f:app": {}}}}},
                                  {"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}]},
            "spec": {"type": "ClusterIP", "selector": {},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})))

    watched, other = decoded(), decoded()
    before = json.dumps(watched)
    kept, kept2 = slim(watched), slim(other)
    assert json.dumps(watched) == before  # the watch's object is not changed
    assert kept["metadata"]["annotations"] == {"team": "blue", "long": "x" * 65}  # type: ignore[index]
    assert [e["manager"] for e in kept["metadata"]["managedFields"]] == ["appkeeper"]  # type: ignore[index]
    assert kept["spec"] == other["spec"]
    # Two objects share one string per key and per short value without digits; the rest are their own.
    k1 = next(iter(kept["spec"]["ports"][0]))  # type: ignore[index]
    k2 = next(iter(kept2["spec"]["ports"][0]))  # type: ignore[index]
    assert k1 is k2
    assert next(iter(watched["spec"]["ports"][0])) is not next(iter(other["spec"]["ports"][0]))  # type: ignore[index]
    assert kept["spec"]["type"] is kept2["spec"]["type"]  # type: ignore[index]
    assert kept["metadata"]["uid"] is not kept2["metadata"]["uid"]  # type: ignore[index]
    assert kept["metadata"]["annotations"]["long"] is not kept2["metadata"]["annotations"]["long"]  # type: ignore[index]
    # Every empty leaf of a kept fieldsV1 tree is the one shared LEAF; other empty dicts stay their own.
    tree = kept["metadata"]["managedFields"][0]["fieldsV1"]  # type: ignore[index]
    assert tree["f:spec"]["f:type"] is LEAF
    assert tree["f:spec"]["f:selector"]["f:app"] is LEAF
    assert kept["spec"]["selector"] == {}  # type: ignore[index]
    assert kept["spec"]["selector"] is not LEAF  # type: ignore[index]
    assert LEAF == {}


def test_a_new_version_reuses_the_unchanged_parts_of_the_one_held() -> None:
    import copy

    from appkeeper.store import compact

    def deployment(rv: str, ready: int, ports: list[int]) -> dict[str, object]:
        return {"kind": "Deployment", "metadata": {"name": "shop", "namespace": "ns", "uid": "u1",
                                                   "resourceVersion": rv, "labels": {"appkeeper.dev/app": "shop"}},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [
                    {"name": "web", "ports": [{"containerPort": p} for p in ports]}]}}},
                "status": {"readyReplicas": ready, "conditions": [{"type": "Available", "status": "True"}]}}

    s = Store()
    s.put_app(obj("App", "1"))
    s.put_child(deployment("5", 1, [80]))
    held = s.child(("ns", "shop"), ("Deployment", "shop"))
    assert held is not None
    new = deployment("6", 2, [80])
    s.put_child(new)
    now = s.child(("ns", "shop"), ("Deployment", "shop"))
    assert now == new
    assert now is not held
    assert now["spec"] is held["spec"]  # unchanged: the same dict, no copy
    assert now["status"] is not held["status"]
    assert now["status"]["conditions"] is held["status"]["conditions"]
    assert held["status"]["readyReplicas"] == 1  # the version held before is not changed
    # An older or equal version is not copied at all; a list that changed length is copied whole.
    s.put_child(deployment("4", 0, [80]))
    assert s.child(("ns", "shop"), ("Deployment", "shop")) is now
    s.put_child(deployment("6", 2, [80]))  # the watch's copy of what our write returned
    assert s.child(("ns", "shop"), ("Deployment", "shop")) is now
    changed = compact(deployment("7", 2, [80, 81]), now)
    assert changed["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80},
                                                                             {"containerPort": 81}]
    assert changed["metadata"]["labels"] is now["metadata"]["labels"]
    # `like` of another shape is ignored, and the value's own containers are never kept.
    value = {"a": [1, {"b": "c"}]}
    out = compact(value, {"a": {"b": 1}})
    assert out == copy.deepcopy(value)
    assert out["a"] is not value["a"]
    assert out["a"][1] is not value["a"][1]



def test_objects_labelled_for_an_app_that_does_not_exist_are_not_kept() -> None:
    """Finding 2: anyone may label anything for any App; only the names are remembered."""
    s = Store()
    big = {"kind": "ConfigMap", "metadata": {"name": "junk", "namespace": "ns", "uid": "j", "resourceVersion": "3",
                                             "labels": {"appkeeper.dev/app": "nobody"}}, "data": {"x": "y" * 900_000}}
    assert s.put_child(big) is None
    assert s.children(("ns", "nobody")) == {}
    assert s.replace("ConfigMap", "ns", [big]) == set()  # a relist keeps nothing of it either
    s.put_app(obj("App", "1", app="nobody") | {"metadata": {"name": "nobody", "namespace": "ns", "uid": "a",
                                                            "resourceVersion": "1"}})
    assert s.unfilled(("ns", "nobody")) == {"ConfigMap"}  # it exists now: that kind is listed once
    assert s.unfilled(("ns", "nobody")) == set()
    # A deleted App's objects go with it, remembered by name; the same name back lists them again.
    assert s.put_child(big) == ("ns", "nobody")
    assert "data" not in s.children(("ns", "nobody"))[("ConfigMap", "junk")]  # a snapshot's data is not held
    s.drop_app(("ns", "nobody"))
    assert s.children(("ns", "nobody")) == {}
    s.drop_child(big)  # its deletion forgets the name too
    s.put_app({"kind": "App", "metadata": {"name": "nobody", "namespace": "ns", "uid": "b", "resourceVersion": "2"}})
    assert s.unfilled(("ns", "nobody")) == set()


def test_a_pod_is_held_without_its_spec() -> None:
    s = Store()
    s.put_app(obj("App", "1"))
    pod = {"kind": "Pod", "metadata": {"name": "shop-1", "namespace": "ns", "uid": "p", "resourceVersion": "4",
                                       "labels": {"appkeeper.dev/app": "shop"}, "annotations": {"a": "b" * 1000},
                                       "ownerReferences": [{"uid": "rs"}]},
           "spec": {"containers": [{"name": "c", "env": [{"name": "BIG", "value": "x" * 100_000}]}]},
           "status": {"phase": "Running"}}
    s.put_pod(pod)
    held = s.pods(("ns", "shop"))[0]
    assert "spec" not in held
    assert held["status"] == {"phase": "Running"}
    assert held["metadata"]["ownerReferences"] == [{"uid": "rs"}]
    assert "annotations" not in held["metadata"]


def test_an_app_seen_after_its_objects_lists_them_at_its_first_reconcile() -> None:
    from .test_reconcile import NS, World

    w = World()
    w.put_app("shop", ports=[{"name": "http", "containerPort": 80}])
    w.reconcile()
    store = Store()  # a new process whose watches saw the children before kopf saw the App
    for (kind, _, _), o in w.kube.objects.items():
        if kind != "App":
            store.put_child(copy.deepcopy(o))
    store.put_app(copy.deepcopy(w.app()))
    w.store = store
    w.restart()
    w.kube.calls.clear()
    w.reconciler.reconcile((NS, "shop"))
    listed = [c for c in w.kube.calls if c[0] == "list"]
    assert sorted(c[1] for c in listed) == ["Deployment", "Service"]
    assert not [c for c in w.kube.calls if c[0] in ("create", "apply")]  # it knew them: nothing written


def test_drift_is_a_change_of_what_we_declare_not_of_status() -> None:
    from appkeeper.store import drifted

    held = {"kind": "Service", "metadata": {"name": "s", "labels": {"a": "1"}, "annotations": {"x": "1"},
                                            "resourceVersion": "1"}, "spec": {"ports": [80]}, "status": {}}
    assert not drifted(None, held)
    assert not drifted(held, {**held, "metadata": {**held["metadata"], "resourceVersion": "2"},
                              "status": {"loadBalancer": {}}})
    assert drifted(held, {**held, "spec": {"ports": [81]}})
    assert drifted(held, {**held, "metadata": {**held["metadata"], "labels": {}}})
    assert drifted(held, {**held, "metadata": {**held["metadata"], "annotations": {"x": "2"}}})
    assert not drifted(held, {**held, "metadata": {**held["metadata"], "annotations": {
        "x": "1", "kubectl.kubernetes.io/last-applied-configuration": "{}"}}})
    snapshot = {"kind": "ConfigMap", "metadata": {"name": "c"}}  # the store drops a snapshot's data
    assert not drifted(snapshot, {**snapshot, "data": {"k": "v"}})
