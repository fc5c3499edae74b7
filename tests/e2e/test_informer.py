"""The children's informer against a real API server: it lists, follows a watch, asks for a relist
when the server says 410 Gone, and stops when told."""

from __future__ import annotations

import json
import threading
from typing import Any

from appkeeper.informer import RELIST, Informer, handle
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
    queued: list[tuple[str, str]] = []
    informer = Informer(kube, store, CONFIGMAP, namespace, queued.append, watch_seconds=30)
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        assert informer.synced.wait(30)
        assert ("ConfigMap", "before") in store.children((namespace, "shop"))  # from the list
        kubectl("apply", "-n", namespace, "-f", "-", stdin=configmap("after", "cart"))
        wait_for("the watch to bring the new ConfigMap",
                 lambda: ("ConfigMap", "after") in store.children((namespace, "cart")), timeout=30)
        kubectl("delete", "configmap", "before", "-n", namespace)
        wait_for("the watch to take the deleted one away",
                 lambda: ("ConfigMap", "before") not in store.children((namespace, "shop")), timeout=30)
        assert {(namespace, "shop"), (namespace, "cart")} <= set(queued)
    finally:
        informer.stop()
        thread.join(10)
    assert not thread.is_alive(), "stop() must end a watch that is waiting for events"


def test_a_watch_from_a_compacted_version_asks_for_a_relist(cluster: Cluster, namespace: str) -> None:
    """The API server answers a watch from a version older than it keeps with a 410 ERROR event."""
    kube = Kube(load_configuration(cluster.kubeconfig))
    stream = kube.watch("v1", "ConfigMap", namespace, "appkeeper.dev/app", "1", timeout_seconds=5)
    events: list[dict[str, Any]] = []
    for event in stream:
        events.append(event)
        break
    stream.close()
    assert events, "the watch from resourceVersion 1 ended without a word"
    assert handle(Store(), CONFIGMAP, events[0]) == (None, RELIST), events[0]
