"""Safe beside other controllers: an object that is not the App's is never written, adoption happens
only when the object asks for it, and a fight over a field leaves a handful of Events, not one per
round."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import Operator, app, apply, bind_claim, get, items, kubectl, wait_for
from .test_operator import condition

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"},
           "spec": {"selector": {"app": "theirs"}, "ports": [{"name": "web", "port": 8080}]}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "theirs"}},
                       "template": {"metadata": {"labels": {"app": "theirs"}},
                                    "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}
CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shop-data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}}
SPEC: dict[str, Any] = {"ports": [{"name": "http", "containerPort": 80, "servicePort": 80}],
                        "volumes": [{"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi"}}]}


def conflict_message(ns: str) -> str:
    c = condition("shop", ns, "Degraded")
    return str(c.get("message", "")) if c.get("reason") == "ChildConflict" else ""


@pytest.mark.parametrize("existing", [SERVICE, DEPLOYMENT, CLAIM], ids=lambda o: o["kind"])
def test_an_object_the_app_does_not_own_is_left_byte_for_byte(operator: Operator, namespace: str,
                                                               existing: dict[str, Any]) -> None:
    apply(existing, namespace)
    kind, name = existing["kind"], existing["metadata"]["name"]
    # Let its own controllers finish with it (a Deployment's status, a claim's binding) first.
    settled = {"Deployment": lambda o: (o.get("status") or {}).get("readyReplicas") == 1,
               "PersistentVolumeClaim": lambda o: bool(bind_claim(o["metadata"]["name"], namespace))}
    before = wait_for(f"{kind} {name} settled", lambda: (o := get(kind, name, namespace))
                      and settled.get(kind, lambda _: True)(o) and o)
    time.sleep(1)
    before = get(kind, name, namespace)
    assert before is not None
    apply(app("shop", **SPEC), namespace)
    message = wait_for("ChildConflict", lambda: conflict_message(namespace), timeout=30)
    assert message == (f"{existing['kind']} {existing['metadata']['name']} exists and is not owned by this App "
                       "(owner: no owner); not changing it")
    time.sleep(2)  # a few more reconciles (the other children's events) must not touch it either
    after = get(existing["kind"], existing["metadata"]["name"], namespace)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"] == before["spec"]
    assert "appkeeper" not in {m["manager"] for m in after["metadata"]["managedFields"]}
    warnings = [e for e in items("events", namespace) if e["reason"] == "ChildConflict"]
    assert warnings
    assert warnings[0]["type"] == "Warning"
    # The rest of the App still converges.
    others = {"Service", "Deployment", "PersistentVolumeClaim"} - {existing["kind"]}
    for kind in others:
        name = "shop-data" if kind == "PersistentVolumeClaim" else "shop"
        wait_for(f"{kind} {name}", lambda k=kind, n=name: get(k, n, namespace))


def test_an_object_owned_by_another_controller_is_named(operator: Operator, namespace: str) -> None:
    apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace)
    owner_uid = get("configmap", "owner", namespace)["metadata"]["uid"]  # type: ignore[index]
    svc = json.loads(json.dumps(SERVICE))
    svc["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                           "uid": owner_uid, "controller": True}]
    apply(svc, namespace)
    apply(app("shop", ports=SPEC["ports"]), namespace)
    message = wait_for("ChildConflict", lambda: conflict_message(namespace), timeout=30)
    assert f"owner: ConfigMap owner (controller, uid {owner_uid})" in message


def test_an_object_that_asks_to_be_adopted_is(operator: Operator, namespace: str) -> None:
    svc = json.loads(json.dumps(SERVICE))
    svc["metadata"]["annotations"] = {"appkeeper.dev/adopt": "shop"}
    apply(svc, namespace)
    apply(app("shop", ports=SPEC["ports"]), namespace)
    uid = wait_for("the App's uid", lambda: (get("app", "shop", namespace) or {}).get("metadata", {}).get("uid"))

    def adopted() -> bool:
        obj = get("service", "shop", namespace) or {}
        return [r["uid"] for r in obj.get("metadata", {}).get("ownerReferences") or []] == [uid]

    wait_for("the Service adopted", adopted, timeout=30)
    assert get("service", "shop", namespace)["spec"]["selector"] == {"appkeeper.dev/app": "shop"}  # type: ignore[index]
    wait_for("no conflict", lambda: condition("shop", namespace, "Degraded").get("status") == "False")


def test_a_fight_over_replicas_leaves_a_handful_of_events(operator: Operator, namespace: str) -> None:
    apply(app("shop", replicas=2), namespace)
    wait_for("the Deployment", lambda: get("deployment", "shop", namespace))
    deadline = time.monotonic() + 60
    rounds = 0
    while time.monotonic() < deadline:
        kubectl("scale", "deployment/shop", "-n", namespace, "--replicas=5")
        rounds += 1
        time.sleep(1)
    repaired = [e for e in items("events", namespace) if e["reason"] == "Repaired"]
    print(f"{rounds} rounds of the fight -> {len(repaired)} Event objects, counts "
          f"{[e.get('count') for e in repaired]}")
    assert 1 <= len(repaired) <= 5
    assert sum(int(e.get("count") or 1) for e in repaired) >= 10  # the count says it kept happening
