"""The operator against a real API server: children, status, changes, repair, rollback, bad input."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Operator, app, apply, get, items, kubectl, wait_condition, wait_for

LABELS = {"app.kubernetes.io/managed-by": "appkeeper"}

FULL = {
    "replicas": 2,
    "ports": [{"name": "http", "containerPort": 8080, "servicePort": 80}],
    "env": [{"name": "MODE", "value": "prod"}],
    "volumes": [{"name": "data", "mountPath": "/var/lib/shop", "persistent": {"size": "1Gi"}}],
    "ingress": {"host": "shop.example.com"},
    "disruption": {"minAvailable": 1},
}


def status(name: str, ns: str) -> dict[str, Any]:
    return dict((get("app", name, ns) or {}).get("status") or {})


def condition(name: str, ns: str, type_: str) -> dict[str, Any]:
    return next((c for c in status(name, ns).get("conditions", []) if c["type"] == type_), {})


def wait_phase(name: str, ns: str, phase: str, timeout: float = 60) -> dict[str, Any]:
    """The App once its status, for its current generation, says `phase` (read in one GET)."""
    def current() -> dict[str, Any] | None:
        body = get("app", name, ns) or {}
        st = body.get("status") or {}
        if st.get("phase") == phase and st.get("observedGeneration") == body["metadata"]["generation"]:
            return body
        return None

    return dict(wait_for(f"app/{name} phase {phase}", current, timeout=timeout))


def wait_ready(name: str, ns: str, timeout: float = 60) -> dict[str, Any]:
    return wait_phase(name, ns, "Ready", timeout)


def wait_healthy(name: str, ns: str, timeout: float = 60, after: str | None = None) -> dict[str, Any]:
    """Ready, and its revision recorded healthy (its pods kept running ~10 s): only then can a bad
    update be rolled back to it. `after`: a revision newer than this one."""
    def healthy() -> dict[str, Any] | None:
        body = get("app", name, ns) or {}
        st = body.get("status") or {}
        ok = st.get("phase") == "Ready" and st.get("lastHealthyRevision") not in (None, after)
        return body if ok else None
    return dict(wait_for(f"{name} Ready with a healthy revision", healthy, timeout=timeout))


def events(ns: str, name: str) -> list[dict[str, Any]]:
    return [e for e in items("events", ns) if e["involvedObject"].get("kind") == "App"
            and e["involvedObject"]["name"] == name]


def test_full_app_creates_every_child_and_becomes_ready(operator: Operator, namespace: str) -> None:
    apply(app("shop", **FULL), namespace)
    wait_condition("app/shop", "Ready", namespace)
    body = wait_ready("shop", namespace)
    uid = body["metadata"]["uid"]
    for kind, name in [("deployment", "shop"), ("service", "shop"), ("pvc", "shop-data"),
                       ("ingress", "shop"), ("pdb", "shop")]:
        child = get(kind, name, namespace)
        assert child is not None, f"{kind}/{name} missing"
        labels = child["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "shop"
        assert labels["app.kubernetes.io/instance"] == "shop"
        assert labels["app.kubernetes.io/managed-by"] == "appkeeper"
        assert labels["appkeeper.dev/app"] == "shop"
        if kind == "pvc":  # retain: true (the default): never garbage-collected with the App
            assert "ownerReferences" not in child["metadata"]
            assert child["metadata"]["annotations"]["appkeeper.dev/retained-from"] == "shop"
            continue
        [ref] = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("App", "shop", uid, True)
    st = body["status"]
    assert st["readyReplicas"] == 2
    assert st["selector"] == "appkeeper.dev/app=shop"
    assert st["url"] == "http://shop.example.com/"
    assert st["image"] == "nginx:1.27"
    assert {"kind": "PersistentVolumeClaim", "name": "shop-data"} in st["children"]
    assert [c["status"] for c in st["conditions"] if c["type"] == "Ready"] == ["True"]
    pods = items("pods", namespace, "appkeeper.dev/app=shop")
    assert len(pods) == 2
    assert pods[0]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "prod"}]
    assert pods[0]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "shop-data"
    deployment = get("deployment", "shop", namespace)
    assert deployment is not None
    # Its spec is ours alone: created by the operator (a create, then server-side applies), the
    # Deployment controller writing only its revision annotation and status.
    writers = {m["manager"] for m in deployment["metadata"]["managedFields"] if not m.get("subresource")}
    assert writers - {"kube-controller-manager"} == {"appkeeper"}
    assert get("pvc", "shop-data", namespace)["status"]["phase"] == "Bound"  # type: ignore[index]
    table = kubectl("get", "app", "shop", "-n", namespace).stdout.split("\n")
    assert table[0].split()[:6] == ["NAME", "IMAGE", "DESIRED", "READY", "PHASE", "REASON"]
    assert table[1].split()[4:6] == ["Ready", "Healthy"]


def test_changes_converge_and_removed_children_go(operator: Operator, namespace: str) -> None:
    spec = dict(FULL, volumes=FULL["volumes"] + [  # type: ignore[operator]
        {"name": "cache", "mountPath": "/cache", "persistent": {"size": "1Gi", "retain": False}}])
    apply(app("shop", **spec), namespace)
    wait_ready("shop", namespace)
    changed = dict(spec, image="nginx:1.28", replicas=3, env=[{"name": "MODE", "value": "staging"}],
                   ports=[{"name": "http", "containerPort": 9090, "servicePort": 8080}])
    del changed["ingress"]
    changed["volumes"] = []
    apply(app("shop", **changed), namespace)
    body = wait_ready("shop", namespace)
    assert body["status"]["readyReplicas"] == 3
    dep = get("deployment", "shop", namespace)
    assert dep is not None
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.28"
    assert container["env"] == [{"name": "MODE", "value": "staging"}]
    assert container["ports"][0]["containerPort"] == 9090
    assert "volumeMounts" not in container
    svc = get("service", "shop", namespace)
    assert svc is not None
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8080, "http")]
    wait_for("the ingress to be deleted", lambda: get("ingress", "shop", namespace) is None)
    # retain: false goes; retain: true is released, not deleted.
    wait_for("the cache claim to be deleted", lambda: (get("pvc", "shop-cache", namespace) or {})
             .get("metadata", {}).get("deletionTimestamp") or get("pvc", "shop-cache", namespace) is None)
    kept = wait_for("shop-data released", lambda: (get("pvc", "shop-data", namespace) or {})
                    .get("metadata", {}).get("annotations", {}).get("appkeeper.dev/retained-from") == "shop"
                    and get("pvc", "shop-data", namespace))
    assert not kept["metadata"].get("ownerReferences")
    assert body["status"]["image"] == "nginx:1.28"
    assert {"kind": "Ingress", "name": "shop"} not in body["status"]["children"]


def test_retained_claim_outlives_the_app(operator: Operator, namespace: str) -> None:
    apply(app("keep", volumes=[
        {"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi"}},
        {"name": "scratch", "mountPath": "/s", "persistent": {"size": "1Gi", "retain": False}}]), namespace)
    wait_ready("keep", namespace)
    # Deletion never waits on the operator: no finalizer; the retained claim has no ownerReference
    # the garbage collector could follow, and says where it belongs from birth.
    assert not get("app", "keep", namespace)["metadata"].get("finalizers")  # type: ignore[index]
    born = get("pvc", "keep-data", namespace)
    assert born is not None
    assert not born["metadata"].get("ownerReferences")
    assert born["metadata"]["annotations"]["appkeeper.dev/retained-from"] == "keep"
    kubectl("delete", "app", "keep", "-n", namespace, "--timeout=60s")
    assert get("app", "keep", namespace) is None
    claim = get("pvc", "keep-data", namespace)
    assert claim is not None
    assert claim["metadata"]["annotations"]["appkeeper.dev/retained-from"] == "keep"
    assert not claim["metadata"].get("ownerReferences")
    wait_for("the unretained claim to go with the App", lambda: (get("pvc", "keep-scratch", namespace) or {})
             .get("metadata", {}).get("deletionTimestamp") or get("pvc", "keep-scratch", namespace) is None)


def repairs(name: str, ns: str) -> int:
    return int(status(name, ns).get("repairs", {}).get("count", 0))


def test_deleted_children_are_put_back(operator: Operator, namespace: str) -> None:
    # replicas 0: no pod uses the claim, so deleting it by hand really deletes it.
    apply(app("fix", replicas=0, ports=[{"name": "http", "containerPort": 80}], ingress={},
              volumes=[{"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi"}}]), namespace)
    wait_ready("fix", namespace)
    for kind, name in [("deployment", "fix"), ("service", "fix"), ("pvc", "fix-data"), ("ingress", "fix")]:
        before = get(kind, name, namespace)
        assert before is not None
        count = repairs("fix", namespace)
        kubectl("delete", kind, name, "-n", namespace, "--wait=true", "--timeout=30s")
        wait_for(f"{kind}/{name} recreated", lambda k=kind, n=name, b=before: (get(k, n, namespace) or {})
                 .get("metadata", {}).get("uid") not in (None, b["metadata"]["uid"]), timeout=30)
        try:
            wait_for("status.repairs to count it", lambda c=count: repairs("fix", namespace) == c + 1)
        except AssertionError as e:  # say what was counted instead
            raise AssertionError(f"{e}; {kind}/{name} deleted with {count} repairs counted before; status.repairs "
                                 f"now {status('fix', namespace).get('repairs')}; Repaired Events: "
                                 f"{[(x['message'], x.get('count')) for x in events(namespace, 'fix')]}") from None
        reason = status("fix", namespace)["repairs"]["lastReason"]
        assert reason == f"{before['kind']}Deleted"
    messages = [e["message"] for e in events(namespace, "fix") if e["reason"] == "Repaired"]
    assert "Deployment fix was deleted; recreated it" in messages
    assert "PersistentVolumeClaim fix-data was deleted; recreated it" in messages


def test_edits_are_reverted_but_foreign_fields_survive(operator: Operator, namespace: str) -> None:
    apply(app("edit", replicas=2, ports=[{"name": "http", "containerPort": 8080, "servicePort": 80}]), namespace)
    wait_ready("edit", namespace)
    kubectl("annotate", "deployment", "edit", "mesh.example.com/injected=true", "-n", namespace)
    kubectl("set", "image", "deployment/edit", "edit=nginx:evil", "-n", namespace)
    wait_for("image put back", lambda: get("deployment", "edit", namespace)["spec"]["template"]["spec"]  # type: ignore[index]
             ["containers"][0]["image"] == "nginx:1.27")
    kubectl("scale", "deployment", "edit", "--replicas=7", "-n", namespace)
    wait_for("replicas put back", lambda: get("deployment", "edit", namespace)["spec"]["replicas"] == 2)  # type: ignore[index]
    kubectl("patch", "service", "edit", "-n", namespace, "--type=json",
            "-p", json.dumps([{"op": "replace", "path": "/spec/ports/0/port", "value": 81}]))
    wait_for("service port put back", lambda: [p["port"] for p in get("service", "edit", namespace)  # type: ignore[index]
                                               ["spec"]["ports"]] == [80])
    dep = get("deployment", "edit", namespace)
    assert dep is not None
    assert dep["metadata"]["annotations"]["mesh.example.com/injected"] == "true"
    wait_for("three repairs counted", lambda: repairs("edit", namespace) >= 3)
    reasons = [e["message"] for e in events(namespace, "edit") if e["reason"] == "Repaired"]
    assert any("spec.template.spec.containers[name=edit].image" in m for m in reasons)
    assert any("spec.replicas" in m for m in reasons)
    assert any(m.startswith("Service edit was changed") for m in reasons)
    wait_ready("edit", namespace)


def test_paused_app_is_left_alone_and_says_so(operator: Operator, namespace: str) -> None:
    apply(app("quiet", ports=[{"name": "http", "containerPort": 80}]), namespace)
    wait_ready("quiet", namespace)
    apply(app("quiet", paused=True, ports=[{"name": "http", "containerPort": 80}]), namespace)
    wait_phase("quiet", namespace, "Paused")
    kubectl("delete", "service", "quiet", "-n", namespace)
    kubectl("wait", "--for=jsonpath={.status.phase}=Paused", "app/quiet", "-n", namespace, "--timeout=10s")
    assert get("service", "quiet", namespace) is None
    assert "paused" in condition("quiet", namespace, "Ready")["message"]
    apply(app("quiet", paused=False, ports=[{"name": "http", "containerPort": 80}]), namespace)
    wait_for("service back after unpause", lambda: get("service", "quiet", namespace) is not None)
    wait_ready("quiet", namespace)


def test_failed_rollout_is_rolled_back(operator: Operator, namespace: str) -> None:
    base = {"replicas": 2, "rollout": {"progressDeadlineSeconds": 5, "maxUnavailable": 0}}
    apply(app("roll", **base), namespace)
    healthy = wait_healthy("roll", namespace)["status"]["lastHealthyRevision"]
    # New pods that can never be scheduled: the rollout cannot make progress.
    apply(app("roll", image="nginx:1.29", pod={"nodeSelector": {"no-such-node": "x"}}, **base), namespace)
    # Degraded at once (the new pods are Unschedulable), then RolledBack past the deadline.
    wait_for("RolledBack", lambda: condition("roll", namespace, "Degraded").get("reason") == "RolledBack",
             timeout=90)
    body = wait_phase("roll", namespace, "Degraded", timeout=30)
    degraded = condition("roll", namespace, "Degraded")
    assert degraded["reason"] == "RolledBack"
    assert healthy in degraded["message"]
    assert body["status"]["rolledBackGeneration"] == body["metadata"]["generation"]
    dep = wait_for("deployment back on the healthy template", lambda: (
        (d := get("deployment", "roll", namespace)) and d["spec"]["template"]["spec"]["containers"][0]["image"]
        == "nginx:1.27" and "nodeSelector" not in d["spec"]["template"]["spec"] and d), timeout=30)
    assert dep["spec"]["replicas"] == 2
    wait_for("old pods ready again", lambda: status("roll", namespace).get("readyReplicas") == 2, timeout=60)
    assert any(e["reason"] == "RolledBack" for e in events(namespace, "roll"))
    # A new spec rolls out again.
    apply(app("roll", image="nginx:1.29", **base), namespace)
    wait_for("the fixed rollout to finish", lambda: status("roll", namespace).get("image") == "nginx:1.29"
             and status("roll", namespace).get("phase") == "Ready", timeout=60)


def test_stateful_app_gets_a_statefulset_with_claims_per_pod(operator: Operator, namespace: str) -> None:
    apply(app("db", replicas=2, ports=[{"name": "pg", "containerPort": 5432}], service={"type": "Headless"},
              volumes=[{"name": "data", "mountPath": "/data", "persistent": {"size": "1Gi", "perReplica": True}}]),
          namespace)
    wait_ready("db", namespace)
    sts = get("statefulset", "db", namespace)
    assert sts is not None
    assert sts["spec"]["serviceName"] == "db"
    assert get("service", "db", namespace)["spec"]["clusterIP"] == "None"  # type: ignore[index]
    claims = wait_for("a bound claim per pod", lambda: sorted(
        c["metadata"]["name"] for c in items("pvc", namespace) if c["status"].get("phase") == "Bound") or None)
    assert claims == ["data-db-0", "data-db-1"]
    # retain (the default): like the App's other kept claims, each says where it came from.
    assert [(get("pvc", c, namespace) or {})["metadata"].get("annotations", {}).get("appkeeper.dev/retained-from")
            for c in claims] == ["db", "db"]


def test_retained_replica_claims_survive_every_deletion_order(operator: Operator, namespace: str) -> None:
    """Finding 3: `retain: true` per-replica claims stay whatever the other volumes say and whatever
    goes first (the App, or its StatefulSet and then the App); `retain: false` ones go with the App."""
    volumes = [{"name": "data", "mountPath": "/data", "persistent": {"size": "1Gi", "perReplica": True}},
               {"name": "cache", "mountPath": "/cache", "persistent": {"size": "1Gi", "perReplica": True,
                                                                      "retain": False}}]
    for name in ("db1", "db2"):
        apply(app(name, volumes=volumes), namespace)
    for name in ("db1", "db2"):
        wait_ready(name, namespace)
        uid = get("app", name, namespace)["metadata"]["uid"]  # type: ignore[index]
        wait_for(f"cache-{name}-0 tied to its App", lambda n=name, u=uid: u in [
            r["uid"] for r in (get("pvc", f"cache-{n}-0", namespace) or {}).get("metadata", {})
            .get("ownerReferences") or []] or None)
        assert not (get("pvc", f"data-{name}-0", namespace) or {})["metadata"].get("ownerReferences")
    kubectl("delete", "app", "db1", "-n", namespace, "--timeout=60s")
    kubectl("delete", "statefulset", "db2", "-n", namespace, "--timeout=60s")
    kubectl("delete", "app", "db2", "-n", namespace, "--timeout=60s")
    for name in ("db1", "db2"):
        wait_for(f"cache-{name}-0 deleted with its App", lambda n=name: (
            get("pvc", f"cache-{n}-0", namespace) is None
            or (get("pvc", f"cache-{n}-0", namespace) or {}).get("metadata", {}).get("deletionTimestamp")) or None)
        wait_for(f"statefulset {name} gone", lambda n=name: get("statefulset", n, namespace) is None or None)
        kept = get("pvc", f"data-{name}-0", namespace)
        assert kept is not None, name
        assert not kept["metadata"].get("deletionTimestamp"), name
        assert kept["metadata"]["annotations"]["appkeeper.dev/retained-from"] == name


def test_refused_child_degrades_only_its_app(operator: Operator, namespace: str) -> None:
    # The schema accepts it; the API server refuses the Deployment (requests above limits).
    apply(app("refused", resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}), namespace)
    # The operator's own checks catch what the schema cannot (an unknown time zone).
    apply(app("badzone", schedules=[{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "replicas": 1,
                                     "timeZone": "Mars/Olympus"}]), namespace)
    apply(app("fine"), namespace)
    wait_ready("fine", namespace)
    wait_phase("refused", namespace, "Degraded")
    degraded = condition("refused", namespace, "Degraded")
    assert degraded["reason"] == "DeploymentRejected"
    assert "spec.template.spec.containers[0].resources.requests" in degraded["message"]
    wait_phase("badzone", namespace, "Failed")
    failed = condition("badzone", namespace, "Ready")
    assert failed["reason"] == "InvalidSpec"
    assert "spec.schedules[0].timeZone" in failed["message"]
    assert operator.proc.poll() is None
    # Fixing the spec recovers.
    apply(app("refused", resources={"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}), namespace)
    wait_ready("refused", namespace)


def test_kubectl_explain_documents_the_fields(crd: str) -> None:
    volumes = kubectl("explain", "app.spec.volumes").stdout
    assert "exactly one source" in volumes
    assert "persistent" in volumes
    replicas = kubectl("explain", "app.spec.replicas").stdout
    assert "kubectl scale" in replicas
    canary = kubectl("explain", "app.spec.rollout.canary").stdout
    assert "<app>-canary" in canary
    assert "appkeeper.dev/canary=promote|abort" in canary
    assert "httpGet" in kubectl("explain", "app.spec.rollout.canary.analysis").stdout
