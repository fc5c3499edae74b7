"""The idiomatic kopf operator a user writes in an afternoon: the benchmark's fair baseline.

It follows kopf's documented style (kopf.on.create / kopf.on.update, the official client, kopf.adopt
for ownerReferences, handler return values stored in status by kopf, kopf's defaults otherwise) and
makes the same two children appkeeper makes for an App with one port: a Deployment and a Service.
It repairs nothing: a deleted child stays deleted until the App changes.

    kopf run --standalone --namespace NS bench/peers/kopf_peer.py
"""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "appkeeper.dev", "v1alpha1", "apps"


@kopf.on.startup()
def configure(**_: Any) -> None:
    kubernetes.config.load_kube_config()


def children(name: str, spec: kopf.Spec) -> tuple[Any, Any]:
    labels = {"app.kubernetes.io/name": name}
    ports: list[Any] = list(spec.get("ports") or [])
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": spec.get("replicas", 1), "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                     "name": name, "image": spec["image"],
                     "ports": [{"name": p["name"], "containerPort": p["containerPort"]} for p in ports]}]}}},
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": p["name"], "port": p.get("servicePort", p["containerPort"]),
                                                "targetPort": p["containerPort"]} for p in ports]},
    }
    return deployment, service


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_fn(name: str, namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    assert namespace is not None  # Apps are namespaced
    deployment, service = children(name, spec)
    kopf.adopt([deployment, service])
    kubernetes.client.AppsV1Api().create_namespaced_deployment(namespace, deployment)
    if service["spec"]["ports"]:
        kubernetes.client.CoreV1Api().create_namespaced_service(namespace, service)
    return {"children": [f"Deployment/{name}", f"Service/{name}"]}


@kopf.on.update(GROUP, VERSION, PLURAL)
def update_fn(name: str, namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    assert namespace is not None
    deployment, _service = children(name, spec)
    kopf.adopt(deployment)
    kubernetes.client.AppsV1Api().patch_namespaced_deployment(name, namespace, deployment)
    return {"updated": True}
