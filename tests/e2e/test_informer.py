"""The children's informer against a real API server: it lists, follows a watch, and stops when
told. (The 410 Gone that makes it relist is in the unit tests: a young API server's watch cache
still serves a watch from version 1, so an e2e case for it depended on what ran before it.)"""

from __future__ import annotations

import json
import threading

from appkeeper.informer import Informer
from appkeeper.kinds import BY_KIND
from appkeeper.kube import Kube, load_configuration
from appkeeper.store import Store

from .conftest import Cluster, kubectl, wait_for

CONFIGMAP = BY_KIND["ConfigMap"]


def configmap(name: str, app: str) -> str:
    labels = {"appkeeper.dev/app": app}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
                       "data": {"k": "v"}})


def test_an_informer_lists_follows_and_stops(cluster: Cluster, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=configmap("before", "shop"))
    kube, store = Kube(load_configuration(cluster.kubeconfig)), Store()
    for name in ("shop", "cart"):  # the store keeps only the objects of Apps it holds
        store.put_app({"kind": "App", "metadata": {"name": name, "namespace": namespace, "uid": name,
                                                   "resourceVersion": "1"}})
    queued: list[tuple[str, str]] = []
    informer = Informer(kube, store, CONFIGMAP, namespace, lambda key, _: queued.append(key), watch_seconds=30)
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        wait_for("the list to bring the ConfigMap made before",
                 lambda: ("ConfigMap", "before") in store.children((namespace, "shop")), timeout=30)
        kubectl("apply", "-n", namespace, "-f", "-", stdin=configmap("stray", "nobody"))
        kubectl("apply", "-n", namespace, "-f", "-", stdin=configmap("after", "cart"))
        wait_for("the watch to bring the new ConfigMap",
                 lambda: ("ConfigMap", "after") in store.children((namespace, "cart")), timeout=30)
        kubectl("delete", "configmap", "before", "-n", namespace)
        wait_for("the watch to take the deleted one away",
                 lambda: ("ConfigMap", "before") not in store.children((namespace, "shop")), timeout=30)
        assert {(namespace, "shop"), (namespace, "cart")} <= set(queued)
        assert store.children((namespace, "nobody")) == {}  # labelled for no App: not kept, not queued
        assert (namespace, "nobody") not in queued
    finally:
        informer.stop()
        thread.join(10)
    assert not thread.is_alive(), "stop() must end a watch that is waiting for events"


def test_a_list_in_pages_returns_every_object_once(cluster: Cluster, namespace: str) -> None:
    for i in range(5):
        kubectl("apply", "-n", namespace, "-f", "-", stdin=configmap(f"paged-{i}", "shop"))
    kube = Kube(load_configuration(cluster.kubeconfig))
    paged = kube.list("v1", "ConfigMap", namespace, "appkeeper.dev/app=shop", page=2)
    assert sorted(o["metadata"]["name"] for o in paged) == [f"paged-{i}" for i in range(5)]
