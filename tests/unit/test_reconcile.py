"""The real Reconciler, driven against the in-memory fake API (fakekube.py): create, change, repair,
prune, retention, pause, rollback, conflict, adoption, restart, retries. The fake stands in for the
API server only here; the e2e suite is the judge of what the API server does."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import pytest

from appkeeper.api import Json
from appkeeper.errors import OperatorError
from appkeeper.fields import created_entry_patch
from appkeeper.kube import ApiError
from appkeeper.reconcile import Reconciler
from appkeeper.store import Store

from .conftest import NOW, app_body
from .fakekube import FakeKube

NS = "demo"
WEB = {"replicas": 2, "ports": [{"name": "http", "containerPort": 8080, "servicePort": 80}]}


class World:
    """The fake API, the store its 'watches' fill, and the Reconciler under test."""

    def __init__(self) -> None:
        self.kube = FakeKube()
        self.store = Store()
        self.now = NOW
        self.reconciler = self.restart()

    def restart(self) -> Reconciler:
        """A new operator process: same cluster, nothing remembered."""
        self.reconciler = Reconciler(self.kube, self.store, clock=lambda: self.now)  # type: ignore[arg-type]
        return self.reconciler

    def put_app(self, name: str = "shop", **spec: Any) -> Json:
        body = app_body(name, NS, **spec)
        held = self.kube.obj("App", NS, name)
        if held is None:
            del body["metadata"]["uid"], body["metadata"]["resourceVersion"]
            return self.kube.add(body)
        self.kube.edit("App", NS, name, ["spec"], body["spec"])  # a new resourceVersion and generation
        return held

    def reconcile(self, name: str = "shop", watch_before: bool = True, watch_after: bool = True) -> Any:
        """`watch_*=False`: the watches have not delivered yet (the store lags the API)."""
        if watch_before:
            self.kube.sync(self.store)
        self.kube.calls.clear()
        outcome = self.reconciler.reconcile((NS, name))
        if watch_after:
            self.kube.sync(self.store)
        return outcome

    def app(self, name: str = "shop") -> Json:
        obj = self.kube.obj("App", NS, name)
        assert obj is not None
        return obj

    def status(self, name: str = "shop") -> Json:
        return dict(self.app(name).get("status") or {})

    def condition(self, type_: str, name: str = "shop") -> Json:
        return next(c for c in self.status(name)["conditions"] if c["type"] == type_)

    def child(self, kind: str, name: str = "shop") -> Json:
        obj = self.kube.obj(kind, NS, name)
        assert obj is not None, f"{kind} {name} missing"
        return obj

    def events(self) -> list[tuple[str, str]]:
        return [(o["reason"], o["message"]) for (k, _, _), o in self.kube.objects.items() if k == "Event"]


@pytest.fixture
def w() -> World:
    return World()


def test_create_builds_every_child_owned_by_the_app(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    uid = w.app()["metadata"]["uid"]
    for kind in ("Deployment", "Service"):
        refs = w.child(kind)["metadata"]["ownerReferences"]
        assert [r["uid"] for r in refs] == [uid]
    assert w.status()["children"] == [{"kind": "Deployment", "name": "shop"}, {"kind": "Service", "name": "shop"}]
    assert w.status()["phase"] == "Pending"
    # One Event names every child the reconcile created (not one Event per child).
    assert [e for e in w.events() if e[0] == "Created"] == [("Created", "created Deployment shop, Service shop")]


def test_a_resync_with_nothing_changed_writes_nothing(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.reconcile()
    assert w.kube.writes() == []


def test_a_spec_change_is_applied_and_is_not_a_repair(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.put_app(**dict(WEB, image="nginx:1.28", replicas=3))
    w.reconcile()
    spec = w.child("Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert w.status()["repairs"]["count"] == 0
    assert w.status()["observedGeneration"] == w.app()["metadata"]["generation"]


def test_a_deleted_child_is_recreated_and_counted(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.kube.remove("Service", NS, "shop")
    w.reconcile()
    assert w.child("Service")
    assert w.status()["repairs"]["count"] == 1
    assert w.status()["repairs"]["lastReason"] == "ServiceDeleted"


def test_a_field_taken_by_someone_else_is_put_back(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.kube.edit("Deployment", NS, "shop", ["spec", "replicas"], 7)
    w.reconcile()
    assert w.child("Deployment")["spec"]["replicas"] == 2
    assert w.status()["repairs"]["lastReason"] == "DeploymentDrift"
    assert any(r == "Repaired" and "spec.replicas" in m for r, m in w.events())


def test_what_the_spec_no_longer_asks_for_is_pruned(w: World) -> None:
    w.put_app(**dict(WEB, disruption={"minAvailable": 1}))
    w.reconcile()
    assert w.child("PodDisruptionBudget")
    w.put_app(**WEB)
    w.reconcile()
    assert w.kube.obj("PodDisruptionBudget", NS, "shop") is None
    assert ("delete", "PodDisruptionBudget", "shop") in w.kube.writes()


VOLUME = {"volumes": [{"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi"}}]}


def test_a_retained_claim_outlives_the_app_whatever_the_timing(w: World) -> None:
    w.put_app(**VOLUME)
    w.reconcile()
    claim = w.child("PersistentVolumeClaim", "shop-data")
    # From birth: nothing the garbage collector could follow, and where it belongs.
    assert "ownerReferences" not in claim["metadata"]
    assert claim["metadata"]["annotations"]["appkeeper.dev/retained-from"] == "shop"
    assert not w.app()["metadata"].get("finalizers")  # deletion never waits on the operator
    w.reconcile()
    assert w.kube.writes() == []  # ours, unchanged: not re-applied, not "adopted"
    w.kube.remove("App", NS, "shop")  # with the operator not even looking
    assert w.kube.obj("Deployment", NS, "shop") is None  # garbage-collected with it
    assert w.child("PersistentVolumeClaim", "shop-data")


def test_a_released_claim_comes_home_to_a_new_app_of_that_name(w: World) -> None:
    test_a_retained_claim_outlives_the_app_whatever_the_timing(w)
    w.put_app(**VOLUME)
    w.reconcile()
    assert w.status()["children"] == [{"kind": "Deployment", "name": "shop"},
                                      {"kind": "PersistentVolumeClaim", "name": "shop-data"}]
    assert not [e for e in w.events() if e[0] == "ChildConflict"]


def test_a_volume_dropped_from_the_spec_is_released_not_deleted(w: World) -> None:
    w.put_app(**VOLUME)
    w.reconcile()
    w.put_app()
    w.reconcile()
    claim = w.child("PersistentVolumeClaim", "shop-data")
    assert "appkeeper.dev/app" not in claim["metadata"]["labels"]
    assert claim["metadata"]["annotations"]["appkeeper.dev/retained-from"] == "shop"
    assert ("Retained", "kept PersistentVolumeClaim shop-data (retain: true)") in w.events()


def old_style(w: World) -> None:
    """An App and claim as an earlier version left them: a finalizer, a claim owned by the App."""
    w.put_app(**VOLUME)
    w.reconcile()
    app = w.app()
    app["metadata"]["finalizers"] = ["appkeeper.dev/retain-volumes"]
    claim = w.child("PersistentVolumeClaim", "shop-data")
    claim["metadata"]["ownerReferences"] = [{"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App",
                                             "name": "shop", "uid": app["metadata"]["uid"], "controller": True}]
    claim["metadata"]["annotations"] = {"appkeeper.dev/retain": "true", "appkeeper.dev/input-hash": "old"}
    for entry in claim["metadata"]["managedFields"]:
        entry["fieldsV1"]["f:metadata"]["f:ownerReferences"] = {}
    w.restart()  # the new version of the operator starts


def test_old_apps_are_migrated_claims_first_then_the_finalizer(w: World) -> None:
    old_style(w)
    w.reconcile()
    claim = w.child("PersistentVolumeClaim", "shop-data")
    assert not claim["metadata"].get("ownerReferences")
    assert claim["metadata"]["annotations"]["appkeeper.dev/retained-from"] == "shop"
    assert not w.app()["metadata"].get("finalizers")


def test_an_old_app_being_deleted_releases_its_claims_before_it_goes(w: World) -> None:
    old_style(w)
    w.app()["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    w.reconcile()
    assert w.kube.obj("App", NS, "shop") is None  # the finalizer went, so did the App
    claim = w.child("PersistentVolumeClaim", "shop-data")
    assert not claim["metadata"].get("ownerReferences")
    assert claim["metadata"]["annotations"]["appkeeper.dev/retained-from"] == "shop"


def test_paused_changes_nothing_and_says_so(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.kube.edit("Deployment", NS, "shop", ["spec", "replicas"], 7)
    w.put_app(**dict(WEB, paused=True))
    w.reconcile()
    assert [c for c in w.kube.writes() if c[1] != "App"] == []
    assert w.child("Deployment")["spec"]["replicas"] == 7
    assert w.status()["phase"] == "Paused"


def controlled_by(w: World) -> list[Json]:
    """A ReplicaSet's ownerReferences: the App's Deployment controls it."""
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop", "controller": True,
             "uid": w.child("Deployment")["metadata"]["uid"]}]


def made_by(template_hash: str) -> dict[str, Any]:
    """A pod's labels and ownerReferences: made by the ReplicaSet of `template_hash`."""
    return {"labels": {"appkeeper.dev/app": "shop", "pod-template-hash": template_hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"shop-{template_hash}",
                                 "uid": f"rs-{template_hash}", "controller": True}]}


def ready(w: World, revision: str) -> None:
    """The Deployment controller's view: fully rolled out at `revision`."""
    d = w.child("Deployment")
    d["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = revision
    d["status"] = {"observedGeneration": d["metadata"]["generation"], "replicas": 2, "readyReplicas": 2,
                   "updatedReplicas": 2, "availableReplicas": 2}


def test_a_rollout_past_its_deadline_goes_back_to_the_healthy_revision(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    ready(w, "1")
    good = copy.deepcopy(w.child("Deployment")["spec"]["template"])
    w.kube.add({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": {"name": "shop-1", "namespace": NS, "labels": {"appkeeper.dev/app": "shop"},
                                "annotations": {"deployment.kubernetes.io/revision": "1"},
                                "ownerReferences": controlled_by(w)},
                   "spec": {"template": good}})
    w.reconcile()
    assert w.status()["lastHealthyRevision"] == "1"
    w.put_app(**dict(WEB, image="nginx:broken"))
    w.reconcile()
    d = w.child("Deployment")
    d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "2"
    d["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    w.reconcile()
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert w.condition("Degraded")["reason"] == "RolledBack"
    assert any(r == "RolledBack" for r, _ in w.events())


def healthy_then_updated(w: World, **update: Any) -> None:
    """Revision 1 healthy (its ReplicaSet, pods hashed h1), then the spec changed: revision 2 rolling."""
    w.put_app(**WEB)
    w.reconcile()
    ready(w, "1")
    good = copy.deepcopy(w.child("Deployment")["spec"]["template"])
    good["metadata"].setdefault("labels", {})["pod-template-hash"] = "h1"
    w.kube.add({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": {"name": "shop-h1", "namespace": NS, "labels": {"appkeeper.dev/app": "shop",
                                                                              "pod-template-hash": "h1"},
                                "annotations": {"deployment.kubernetes.io/revision": "1"},
                                "ownerReferences": controlled_by(w)},
                   "spec": {"template": good}})
    w.reconcile()
    w.put_app(**dict(WEB, **update))
    w.reconcile()
    w.child("Deployment")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "2"


def new_pod(w: World, restarts: int) -> None:
    w.kube.objects.pop(("Pod", NS, "shop-h2-x"), None)
    w.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "shop-h2-x", "namespace": NS, **made_by("h2")},
        "status": {"startTime": "2026-11-23T11:59:00Z", "containerStatuses": [{
            "name": "shop", "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}})


def test_a_new_revision_that_crosses_the_failure_threshold_is_rolled_back_at_once(w: World) -> None:
    healthy_then_updated(w, image="nginx:broken")
    new_pod(w, restarts=2)
    w.reconcile()
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:broken"
    assert w.condition("Degraded")["reason"] == "CrashLoopBackOff"  # seen, not yet past the threshold
    new_pod(w, restarts=3)
    w.reconcile()  # no progress deadline anywhere: the threshold alone decides
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    degraded = w.condition("Degraded")
    assert degraded["reason"] == "RolledBack"
    assert "failed: container shop: CrashLoopBackOff, exit code 1 (Error) (3 restarts, threshold 3)" \
        in degraded["message"]
    assert w.status()["rolledBackBecause"].startswith("container shop: CrashLoopBackOff")
    assert [m for r, m in w.events() if r == "RolledBack"] == [
        "rollout of generation 2 failed: container shop: CrashLoopBackOff, exit code 1 (Error) "
        "(3 restarts, threshold 3); rolled back to revision 1 (nginx:1.27)"]
    w.restart()  # a new process keeps the rollback, and its reason
    w.reconcile()
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert w.status()["rolledBackBecause"].startswith("container shop: CrashLoopBackOff")


def test_a_failing_pull_is_rolled_back_once_it_has_failed_for_the_threshold(w: World) -> None:
    healthy_then_updated(w, image="127.0.0.1:5999/missing:1", rollout={"failureThreshold": {"imagePullSeconds": 20}})
    started = w.now
    w.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "shop-h2-y", "namespace": NS, **made_by("h2")},
        "status": {"startTime": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "containerStatuses": [{
            "name": "shop", "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "connection refused"}}}]}})
    w.now = started + timedelta(seconds=12)
    outcome = w.reconcile()
    assert w.condition("Degraded")["reason"] == "ImagePullBackOff"
    assert outcome.requeue_after is not None
    assert outcome.requeue_after <= 5  # time, not an event, crosses this threshold
    w.now = started + timedelta(seconds=21)
    w.reconcile()
    assert w.condition("Degraded")["reason"] == "RolledBack"
    assert "(for 21s, threshold 20s)" in w.status()["rolledBackBecause"]


def running_pod(w: World, name: str, started: datetime) -> None:
    w.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, **made_by("h1")},
                "status": {"containerStatuses": [{"name": "shop", "ready": True, "restartCount": 0, "state": {
                    "running": {"startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ")}}}]}})


def serve(w: World, ready: dict[str, bool], name: str = "shop-abcde") -> None:
    """The EndpointSlice controller lists these pods as endpoints of the App's Service."""
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": "shop"}}
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": meta,
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": r},
                           "targetRef": {"kind": "Pod", "name": pod, "namespace": NS}} for pod, r in ready.items()]}
    w.kube.objects.pop(("EndpointSlice", NS, name), None)
    w.kube.add(body)


def test_a_revision_is_healthy_only_after_its_pods_kept_running(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    ready(w, "1")
    started = w.now
    for name in ("shop-1-a", "shop-1-b"):
        running_pod(w, name, started)
    serve(w, {"shop-1-a": True, "shop-1-b": True})
    w.reconcile()  # the Service's slices seen: routed 2 s later
    w.now = started + timedelta(seconds=3)
    outcome = w.reconcile()
    assert "lastHealthyRevision" not in w.status()  # ready, but it may be about to crash
    assert outcome.requeue_after == pytest.approx(7.5)
    w.now = started + timedelta(seconds=11)
    w.reconcile()
    assert w.status()["lastHealthyRevision"] == "1"


def rolled_out(w: World) -> None:
    """The App's Deployment fully rolled out, its two pods running a minute: Ready but for the Service."""
    w.put_app(**WEB)
    w.reconcile()
    ready(w, "1")
    for name in ("shop-1-a", "shop-1-b"):
        running_pod(w, name, w.now - timedelta(seconds=60))


def test_ready_waits_until_the_service_routes_to_the_pods(w: World) -> None:
    """Pods ready is not enough: Ready=True once the Service's slices list them as ready endpoints;
    until then Progressing, reason EndpointsPending, and a look again soon (no watch says when)."""
    rolled_out(w)
    serve(w, {"shop-1-a": True, "shop-1-b": False})
    outcome = w.reconcile()
    assert w.condition("Ready")["status"] == "False"
    assert w.condition("Ready")["reason"] == "EndpointsPending"
    assert w.condition("Progressing")["message"] == (
        "1/2 ready pods are endpoints of Service shop: traffic does not reach the others yet")
    assert w.status()["phase"] == "Progressing"
    assert outcome.requeue_after == pytest.approx(1.0)
    w.now += timedelta(seconds=40)  # still not routed: asked less often the longer it lags
    assert w.reconcile().requeue_after == pytest.approx(20.0)
    serve(w, {"shop-1-a": True, "shop-1-b": True, "stranger": True})
    w.reconcile()
    w.now += timedelta(seconds=2)  # kube-proxy's time to apply what the slices now say
    w.reconcile()
    assert w.condition("Ready")["status"] == "True"
    assert w.condition("Ready")["reason"] == "AllReplicasReady"


def test_ready_waits_for_kube_proxy_to_apply_the_last_endpoint_change(w: World) -> None:
    rolled_out(w)
    serve(w, {"shop-1-a": True, "shop-1-b": True})
    first = w.now
    outcome = w.reconcile()  # the slices as they are, seen for the first time
    assert w.condition("Ready")["reason"] == "EndpointsPending"
    assert "kube-proxy is routing to them" in w.condition("Progressing")["message"]
    assert outcome.requeue_after == pytest.approx(2.0)
    w.now = first + timedelta(seconds=1.5)
    assert w.reconcile().requeue_after == pytest.approx(0.5)  # counted from the first sight, not reset
    serve(w, {"shop-1-a": True, "shop-1-b": True, "shop-1-c": False})  # the slices changed again
    w.reconcile()
    w.now = first + timedelta(seconds=2)
    w.reconcile()
    assert w.condition("Ready")["reason"] == "EndpointsPending"  # 2 s from the last change's sight
    w.now = first + timedelta(seconds=3.5)
    w.reconcile()
    assert w.condition("Ready")["status"] == "True"


def test_a_terminating_pods_endpoint_does_not_count() -> None:
    from appkeeper.served import endpoints_pending

    pods = [{"metadata": {"name": "a"}}, {"metadata": {"name": "b", "deletionTimestamp": "2026-01-01T00:00:00Z"}}]
    slices = [{"endpoints": [{"targetRef": {"kind": "Pod", "name": "a"}},  # ready unset: ready
                             {"targetRef": {"kind": "Pod", "name": "b"}, "conditions": {"ready": True}}]}]
    assert endpoints_pending("shop", 1, pods, slices) is None
    assert endpoints_pending("shop", 2, pods, slices) == (
        "1/2 ready pods are endpoints of Service shop: traffic does not reach the others yet")


def test_without_auto_rollback_a_failing_revision_stays_and_says_why(w: World) -> None:
    healthy_then_updated(w, image="nginx:broken", rollout={"autoRollback": False})
    new_pod(w, restarts=5)
    w.reconcile()
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:broken"
    assert w.condition("Degraded")["reason"] == "CrashLoopBackOff"
    assert not [r for r, _ in w.events() if r == "RolledBack"]


@pytest.mark.parametrize(("owner_refs", "owner"), [
    ([], "no owner"),
    ([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "theirs", "uid": "u-9", "controller": True}],
     "Deployment theirs (controller, uid u-9)"),
])
def test_an_object_not_ours_is_never_written(w: World, owner_refs: list[Json], owner: str) -> None:
    theirs = w.kube.add({"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": "shop", "namespace": NS, "ownerReferences": owner_refs},
                            "spec": {"selector": {"app": "theirs"}, "ports": [{"name": "x", "port": 1}]}})
    w.put_app(**WEB)
    w.reconcile()
    assert w.child("Service") == theirs  # byte for byte: same resourceVersion, same content
    assert w.child("Deployment")  # the rest of the App still converges
    degraded = w.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ChildConflict")
    assert degraded["message"] == f"Service shop exists and is not owned by this App (owner: {owner}); not changing it"
    assert ("ChildConflict", degraded["message"]) in w.events()


def test_a_new_app_costs_one_create_per_child_and_no_read(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    # No GET for a child the App never had (the status and the watch say so): one POST each.
    assert [c for c in w.kube.calls if c[1] in ("Deployment", "Service")] == [
        ("create", "Deployment", "shop"), ("create", "Service", "shop")]
    entry = w.child("Deployment")["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"]) == ("appkeeper", "Update")
    # The first change after it: our create's entry becomes our Apply entry, then the apply; once.
    w.put_app(**dict(WEB, replicas=3))
    w.reconcile()
    assert [c[0] for c in w.kube.writes() if c[1] == "Deployment"] == ["json_patch", "apply"]
    assert [(e["manager"], e["operation"]) for e in w.child("Deployment")["metadata"]["managedFields"]] == [
        ("appkeeper", "Apply")]
    w.put_app(**dict(WEB, replicas=4))
    w.reconcile()
    assert [c[0] for c in w.kube.writes() if c[1] == "Deployment"] == ["apply"]


def test_a_taken_name_is_read_after_the_create_fails_and_left_alone(w: World) -> None:
    w.kube.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop", "namespace": NS},
                   "spec": {"ports": [{"name": "x", "port": 1}]}})
    w.put_app(**WEB)
    w.reconcile()
    assert [c for c in w.kube.calls if c[1] == "Service"] == [("create", "Service", "shop"), ("get", "Service", "shop")]
    assert w.condition("Degraded")["reason"] == "ChildConflict"


@pytest.mark.parametrize(("entries", "patched"), [
    ([], None),
    ([{"manager": "appkeeper", "operation": "Update"}], 0),
    ([{"manager": "kubectl", "operation": "Update"}, {"manager": "appkeeper", "operation": "Update"}], 1),
    ([{"manager": "appkeeper", "operation": "Update"}, {"manager": "appkeeper", "operation": "Apply"}], None),
    ([{"manager": "appkeeper", "operation": "Update", "subresource": "status"}], None),
])
def test_only_our_creates_entry_is_turned_into_our_apply_entry(entries: list[Json], patched: int | None) -> None:
    ops = created_entry_patch(entries)
    if patched is None:
        assert ops == []
        return
    at = f"/metadata/managedFields/{patched}"
    assert ops == [{"op": "test", "path": f"{at}/manager", "value": "appkeeper"},
                   {"op": "test", "path": f"{at}/operation", "value": "Update"},
                   {"op": "replace", "path": f"{at}/operation", "value": "Apply"}]


def test_an_object_that_asks_to_be_adopted_is(w: World) -> None:
    w.kube.add({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "shop", "namespace": NS, "annotations": {"appkeeper.dev/adopt": "shop"}},
                   "spec": {"ports": [{"name": "x", "port": 1}]}})
    w.put_app(**WEB)
    w.reconcile()
    svc = w.child("Service")
    assert [r["uid"] for r in svc["metadata"]["ownerReferences"]] == [w.app()["metadata"]["uid"]]
    assert svc["spec"]["selector"] == {"appkeeper.dev/app": "shop"}
    assert ("Adopted", "adopted Service shop (it asked to be)") in w.events()


def test_a_restarted_operator_adopts_its_own_children_without_writing(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.restart()
    w.reconcile()
    assert w.kube.writes() == []
    assert w.status()["repairs"]["count"] == 0
    # And drift after the restart is still seen: the record was taken over.
    w.kube.edit("Service", NS, "shop", ["spec", "selector"], {"app": "other"})
    w.reconcile()
    assert w.status()["repairs"]["lastReason"] == "ServiceDrift"


def test_a_rekeyed_list_entry_is_put_back_with_an_update_first(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.kube.edit("Service", NS, "shop", ["spec", "ports"], [{"name": "http", "port": 81, "targetPort": "http"}])
    # The API server refuses an apply that would duplicate a re-keyed port: 422.
    w.kube.fail("apply", "Service", 422, message="spec.ports[1]: Duplicate value")
    w.reconcile()
    # json_patch: the first write after our create makes its managedFields entry our Apply entry.
    assert [c[0] for c in w.kube.writes() if c[1] == "Service"] == ["json_patch", "apply", "replace", "apply"]
    assert w.child("Service")["spec"]["ports"][0]["port"] == 80
    assert w.status()["repairs"]["lastReason"] == "ServiceDrift"


@pytest.mark.parametrize("status", [500, 503, 429, 409])
def test_a_transient_failure_is_retried_not_reported(w: World, status: int) -> None:
    w.put_app(**WEB)
    w.kube.fail("create", "Deployment", status)
    with pytest.raises(OperatorError):
        w.reconcile()
    w.reconcile()
    assert w.child("Deployment")
    assert w.condition("Degraded")["status"] == "False"


def test_a_refused_child_degrades_its_app_with_the_api_servers_words(w: World) -> None:
    w.put_app(**WEB)
    w.kube.fail("create", "Service", 422, message='spec.ports[0].port: Invalid value: 0')
    w.reconcile()
    degraded = w.condition("Degraded")
    assert degraded["reason"] == "ServiceRejected"
    assert "spec.ports[0].port: Invalid value: 0" in degraded["message"]
    assert w.child("Deployment")


def test_an_invalid_spec_fails_naming_the_field(w: World) -> None:
    w.put_app(schedules=[{"name": "x", "start": "0 8 * * *", "end": "0 18 * * *", "timeZone": "Mars/Base",
                          "replicas": 1}])
    w.reconcile()
    assert w.status()["phase"] == "Failed"
    assert "spec.schedules[0].timeZone" in w.condition("Degraded")["message"]
    assert [c for c in w.kube.writes() if c[1] not in ("App", "Event")] == []


def test_pods_that_cannot_run_degrade_the_app(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.kube.add({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "shop-abc", "namespace": NS, **made_by("abc")},
                   "status": {"containerStatuses": [{"name": "shop", "state": {"waiting": {
                       "reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}})
    w.reconcile()
    degraded = w.condition("Degraded")
    assert (degraded["reason"], degraded["message"]) == ("ImagePullBackOff",
                                                         "container shop: ImagePullBackOff: Back-off pulling image")


def test_status_is_written_only_when_it_changes(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.now = datetime(2026, 11, 23, 12, 5, tzinfo=NOW.tzinfo)
    w.reconcile()
    assert ("merge_patch", "App", "shop") not in w.kube.writes()


def test_a_refused_child_is_tried_again_within_a_minute(w: World) -> None:
    w.put_app(**WEB)
    w.kube.fail("create", "Service", 403, message='services "shop" is forbidden: exceeded quota')
    outcome = w.reconcile()
    assert w.condition("Degraded")["reason"] == "ServiceRejected"
    assert outcome.requeue_after is not None
    assert outcome.requeue_after <= 60
    w.reconcile()  # the quota was raised meanwhile
    assert w.child("Service")
    assert w.condition("Degraded")["status"] == "False"


def test_a_restart_before_the_child_watches_listed_is_not_a_repair(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.put_app(**dict(WEB, image="nginx:1.28"))
    w.reconcile(watch_after=False)  # applied; the process dies before any watch event arrives
    # The new process: the App watch has listed, the child watches not yet.
    w.store = Store()
    w.store.put_app(copy.deepcopy(w.app()))
    w.restart()
    w.reconcile(watch_before=False)
    assert [c for c in w.kube.writes() if c[1] != "App"] == []  # it asked (GET) instead of recreating
    assert ("get", "Deployment", "shop") in w.kube.calls
    w.reconcile()
    assert w.status()["repairs"]["count"] == 0
    assert not [e for e in w.events() if e[0] == "Repaired"]


@pytest.mark.parametrize("error", [KeyError("spec"), ValueError("bad"), TypeError("None"), ZeroDivisionError(),
                                   RuntimeError("boom"), ApiError(500, "InternalError", "etcd timeout")],
                         ids=lambda e: type(e).__name__)
def test_every_failure_ends_in_a_status_that_says_what_failed(w: World, monkeypatch: pytest.MonkeyPatch,
                                                              error: Exception) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.put_app(**dict(WEB, replicas=3))  # generation 2, never reconciled

    def fail(*_: Any) -> None:
        raise error

    monkeypatch.setattr(w.reconciler, "_act", fail)
    w.kube.sync(w.store)
    with pytest.raises(type(error)):
        w.reconciler.reconcile((NS, "shop"))
    w.reconciler.report_failure((NS, "shop"), "InternalError", f"{type(error).__name__}: {error}")
    st = w.status()
    assert (st["observedGeneration"], st["phase"]) == (2, "Degraded")
    degraded = w.condition("Degraded")
    assert (degraded["status"], degraded["reason"], degraded["observedGeneration"]) == ("True", "InternalError", 2)
    assert type(error).__name__ in degraded["message"]
    assert ("InternalError", f"{type(error).__name__}: {error}") in w.events()


def test_a_workload_that_cannot_create_pods_says_why(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    d = w.child("Deployment")
    d["status"] = {"observedGeneration": d["metadata"]["generation"], "replicas": 0, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": 'pods "shop-6d4f-x" is forbidden: exceeded quota: compute, requested: cpu=2, limited: cpu=1'}]}
    w.reconcile()
    degraded = w.condition("Degraded")
    assert (degraded["reason"], degraded["message"]) == ("ReplicaFailure", (
        'Deployment shop cannot create pods: pods "shop-6d4f-x" is forbidden: exceeded quota: compute, '
        "requested: cpu=2, limited: cpu=1"))
    assert w.status()["phase"] == "Degraded"


def restricted_namespace(w: World) -> None:
    w.kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": NS, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})


def test_a_restricted_namespace_gets_pods_that_meet_the_standard(w: World) -> None:
    restricted_namespace(w)
    w.put_app(**dict(WEB, pod={"securityContext": {"runAsUser": 65532}}))
    w.reconcile()
    spec = w.child("Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
                                       "runAsUser": 65532}  # the user's fields merged over the standard's
    assert spec["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False,
                                                        "capabilities": {"drop": ["ALL"]}}


def test_the_profile_can_be_chosen_and_a_refusal_is_named(w: World) -> None:
    restricted_namespace(w)
    w.put_app(**dict(WEB, pod={"securityProfile": "baseline"}))
    w.reconcile()
    d = w.child("Deployment")
    assert "runAsNonRoot" not in d["spec"]["template"]["spec"]["securityContext"]
    d["status"] = {"observedGeneration": d["metadata"]["generation"], "conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message":
         'pods "shop-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true'}]}
    w.reconcile()
    assert w.condition("Degraded")["reason"] == "PodSecurity"
    assert 'violates PodSecurity "restricted:latest"' in w.condition("Degraded")["message"]


def test_without_a_label_the_pods_are_built_for_baseline(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    spec = w.child("Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_the_same_inputs_again_are_answered_without_rebuilding(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import appkeeper.reconcile as reconcile

    builds: list[str] = []
    real = reconcile.build_children
    monkeypatch.setattr(reconcile, "build_children", lambda app, *a: builds.append(app.name) or real(app, *a))
    w.put_app(**WEB)
    w.reconcile()
    w.reconcile()  # sees its own writes through the watch: nothing to do, nothing timed
    assert w.reconciler.memory.settled((NS, "shop")) is not None
    built = len(builds)
    for _ in range(3):  # resyncs
        w.reconcile()
    assert len(builds) == built
    assert w.kube.calls == []
    w.kube.remove("Service", NS, "shop")  # new inputs: a whole reconcile, and the repair
    w.reconcile()
    assert len(builds) == built + 1
    assert w.kube.obj("Service", NS, "shop") is not None
    w.put_app(**dict(WEB, replicas=3))  # so is a spec change
    w.reconcile()
    assert w.child("Deployment")["spec"]["replicas"] == 3


def test_an_app_that_asked_to_come_back_is_never_answered_from_memory(w: World) -> None:
    w.put_app(**dict(WEB, schedules=[{"name": "day", "start": "0 8 * * *", "end": "0 18 * * *", "replicas": 5}]))
    for _ in range(3):
        assert w.reconcile().requeue_after is not None
    assert w.reconciler.memory.settled((NS, "shop")) is None


def test_replica_claims_are_kept_or_tied_to_the_app_per_volume() -> None:
    """Finding 3: the StatefulSet controller never deletes a claim (one policy for every template);
    a `retain: false` volume's claims get an ownerReference to the App, a `retain: true` one's never."""
    w = World()
    w.put_app("db", replicas=0, volumes=[
        {"name": "data", "mountPath": "/data", "persistent": {"size": "1Gi", "perReplica": True}},
        {"name": "cache", "mountPath": "/cache", "persistent": {"size": "1Gi", "perReplica": True, "retain": False}}])
    w.reconcile("db")
    sts = w.child("StatefulSet", "db")
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    for name in ("data-db-0", "cache-db-0", "cache-db-x"):  # what the StatefulSet controller makes (and a stranger)
        w.kube.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name, "namespace": NS, "labels": {"appkeeper.dev/app": "db"}}},
                   manager="kube-controller-manager")
    w.reconcile("db")
    uid = w.app("db")["metadata"]["uid"]
    owners = {n: [r["uid"] for r in w.child("PersistentVolumeClaim", n)["metadata"].get("ownerReferences") or []]
              for n in ("data-db-0", "cache-db-0", "cache-db-x")}
    assert owners == {"data-db-0": [], "cache-db-0": [uid], "cache-db-x": []}
    w.reconcile("db")  # tied once; nothing pruned
    assert not [c for c in w.kube.calls if c[0] in ("merge_patch", "delete")]


def test_no_two_apps_share_a_claim_name_in_either_order() -> None:
    """Finding 4: App `data` with volume `a-b-0` names claim `data-a-b-0`, which is also pod 0's
    claim of App `a-b` with a perReplica volume `data`. Whichever comes second is refused, named."""
    replica = [{"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi", "perReplica": True}}]
    plain = [{"name": "a-b-0", "mountPath": "/d", "persistent": {"size": "1Gi"}}]
    w = World()
    w.put_app("data", replicas=0, volumes=plain)
    w.reconcile("data")
    assert w.kube.obj("PersistentVolumeClaim", NS, "data-a-b-0") is not None
    w.put_app("a-b", replicas=1, volumes=replica)
    w.reconcile("a-b")
    assert w.kube.obj("StatefulSet", NS, "a-b") is None  # no pod may mount App data's claim
    degraded = w.condition("Degraded", "a-b")
    assert degraded["reason"] == "ChildConflict"
    assert "PersistentVolumeClaim data-a-b-0 exists and is not this App's (App data)" in degraded["message"]
    w = World()  # the other order: the StatefulSet controller made the claim first
    w.put_app("a-b", replicas=0, volumes=replica)
    w.reconcile("a-b")
    w.kube.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
        "name": "data-a-b-0", "namespace": NS, "labels": {"appkeeper.dev/app": "a-b"},
        "annotations": {"appkeeper.dev/retained-from": "a-b"}}}, manager="kube-controller-manager")
    w.put_app("data", replicas=0, volumes=plain)
    w.reconcile("data")
    assert w.condition("Degraded", "data")["reason"] == "ChildConflict"
    assert w.child("PersistentVolumeClaim", "data-a-b-0")["metadata"]["labels"] == {"appkeeper.dev/app": "a-b"}
    w.put_app("a-b", replicas=1, volumes=replica)  # its own claim: no conflict scaling up
    w.reconcile("a-b")
    assert w.child("StatefulSet", "a-b")["spec"]["replicas"] == 1


def test_a_strangers_pod_or_replicaset_labelled_for_the_app_steers_nothing(w: World) -> None:
    """Finding 8: only the pods the App's workload made are judged, and a rollback runs only the
    template of a ReplicaSet its Deployment controls."""
    healthy_then_updated(w, image="nginx:broken")
    for name, refs in (("stranger", []), ("forged", [{"kind": "ReplicaSet", "name": "other-h2", "uid": "x",
                                                      "controller": True}])):
        w.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": NS, "labels": {"appkeeper.dev/app": "shop", "pod-template-hash": "h2"},
            "ownerReferences": refs},
            "status": {"containerStatuses": [{"name": "shop", "ready": False, "restartCount": 9,
                                              "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})
    w.reconcile()
    assert w.condition("Degraded")["reason"] != "CrashLoopBackOff"
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:broken"
    # A ReplicaSet labelled for the App at the healthy revision, not controlled by its Deployment:
    evil = copy.deepcopy(w.child("ReplicaSet", "shop-h1"))
    evil["metadata"].update(name="shop-evil", ownerReferences=[])
    evil["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    w.kube.objects.pop(("ReplicaSet", NS, "shop-h1"))
    w.kube.add(evil)
    new_pod(w, restarts=3)
    w.reconcile()
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:broken"


def test_forget_is_safe_while_other_reconciles_record_their_writes() -> None:
    """Finding 7: a shard handed over forgets its Apps while pool threads record writes of others;
    iterating the old dict raised there and ended the shard loop with its Leases lapsing."""
    import threading

    from appkeeper.drift import Applied

    w = World()
    stop = threading.Event()
    errors: list[BaseException] = []

    def record(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            w.reconciler.deps.memory[((NS, f"app-{i}-{n % 500}"), ("Service", str(n)))] = Applied("h", {})

    threads = [threading.Thread(target=record, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for n in range(3000):
            w.reconciler.forget((NS, f"app-0-{n % 500}"))
    except BaseException as e:  # reported below, after the threads stop
        errors.append(e)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []


POLICY = dict(WEB, networkPolicy={"ingressFrom": [{"app": "frontend"}]})


def test_a_network_policy_is_a_child_like_any_other(w: World) -> None:
    w.put_app(**POLICY)
    w.reconcile()
    policy = w.child("NetworkPolicy")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"appkeeper.dev/app": "shop"}}
    assert {"podSelector": {"matchLabels": {"appkeeper.dev/app": "frontend"}}} in policy["spec"]["ingress"][0]["from"]
    w.kube.remove("NetworkPolicy", NS, "shop")
    w.reconcile()
    assert w.child("NetworkPolicy")  # repaired
    w.put_app(**WEB)  # the spec drops it: it goes
    w.reconcile()
    assert w.kube.obj("NetworkPolicy", NS, "shop") is None


def test_an_optional_kind_not_served_waits_without_a_write_then_is_created(w: World) -> None:
    w.put_app(**POLICY)
    w.store.served("NetworkPolicy", False)  # the informer found its API missing
    outcome = w.reconcile()
    assert not [c for c in w.kube.writes() if c[1] == "NetworkPolicy"]
    assert w.child("Deployment")  # the rest goes on
    degraded = w.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "NotServed")
    assert "NetworkPolicy shop" in degraded["message"]
    assert outcome.requeue_after is None  # no polling per App: the informer queues it when the API appears
    w.reconcile()  # nothing changed: settled
    assert w.kube.writes() == []
    w.store.served("NetworkPolicy", True)  # the API appears; the informer queues every App
    w.reconcile()
    assert w.child("NetworkPolicy")
    assert w.condition("Degraded")["status"] == "False"


def test_verify_lists_an_optional_kind_not_served_as_empty(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from appkeeper.kinds import WATCHED
    from appkeeper.verify import verify

    w.put_app(**POLICY)
    w.reconcile()
    real = w.kube.list

    def missing(api_version: str, kind: str, namespace: str, selector: str, page: int = 0) -> list[Json]:
        if kind == "NetworkPolicy":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return real(api_version, kind, namespace, selector, page)

    monkeypatch.setattr(w.kube, "list", missing)
    stale = verify(w.kube, w.store, [NS], kinds=WATCHED)  # type: ignore[arg-type]
    assert stale == {(NS, "shop")}  # the store held one: the App is reconciled
    assert ("NetworkPolicy", "shop") not in w.store.children((NS, "shop"))
    # Whether the kind is served is the informer's to record: it alone watches for the change and
    # queues every App when it comes (a change recorded here would have it queue none).
    assert w.store.unserved() == frozenset()
    def required_missing(api_version: str, kind: str, namespace: str, selector: str, page: int = 0) -> list[Json]:
        if kind == "Deployment":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return missing(api_version, kind, namespace, selector, page)

    monkeypatch.setattr(w.kube, "list", required_missing)
    with pytest.raises(ApiError):  # a required kind's 404 is an error
        verify(w.kube, w.store, [NS], kinds=WATCHED)  # type: ignore[arg-type]


def test_a_deletion_the_watch_saw_is_repaired_without_asking_first(w: World) -> None:
    w.put_app(**WEB)
    w.reconcile()
    w.reconcile()
    w.kube.remove("Deployment", NS, "shop")
    w.reconcile()  # the watch delivered the deletion
    assert ("get", "Deployment", "shop") not in w.kube.calls
    assert w.child("Deployment")
    assert w.status()["repairs"]["count"] == 1


def test_each_condition_is_a_metric_until_the_app_goes(w: World) -> None:
    from appkeeper import metrics

    def series() -> dict[tuple[str, str], float]:
        return {(s.labels["type"], s.labels["status"]): s.value for m in metrics.AppConditions().collect()
                for s in m.samples if s.labels["namespace"] == NS and s.labels["name"] == "shop"}

    w.put_app(**WEB)
    w.reconcile()
    got = series()
    assert got[("Degraded", "False")] == 1
    assert got[("Degraded", "True")] == 0
    assert sum(v for (t, _), v in got.items() if t == "Ready") == 1  # one status per condition
    w.kube.remove("App", NS, "shop")
    w.reconcile()
    assert series() == {}


def updated_before_recorded_healthy(w: World, old_pod_started: datetime) -> None:
    """Revision 1 rolled out but its pod (started `old_pod_started`) had not run long enough to be
    recorded healthy when the image changed to one whose pull fails (revision 2)."""
    w.put_app(**dict(WEB, rollout={"failureThreshold": {"imagePullSeconds": 20}}))
    w.reconcile()
    ready(w, "1")
    w.kube.add({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "shop-h1", "namespace": NS, "labels": {"appkeeper.dev/app": "shop",
                                                                           "pod-template-hash": "h1"},
                             "annotations": {"deployment.kubernetes.io/revision": "1"},
                             "ownerReferences": controlled_by(w)},
                "spec": {"template": copy.deepcopy(w.child("Deployment")["spec"]["template"])}})
    running_pod(w, "shop-h1-a", old_pod_started)
    w.reconcile()
    assert "lastHealthyRevision" not in w.status()
    w.put_app(**dict(WEB, image="127.0.0.1:5999/missing:1", rollout={"failureThreshold": {"imagePullSeconds": 20}}))
    w.reconcile()
    w.child("Deployment")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "2"
    w.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "shop-h2-y", "namespace": NS, **made_by("h2")},
        "status": {"startTime": w.now.strftime("%Y-%m-%dT%H:%M:%SZ"), "containerStatuses": [{
            "name": "shop", "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "connection refused"}}}]}})
    w.now += timedelta(seconds=21)
    w.reconcile()


def test_a_revision_serving_beside_the_failing_one_is_gone_back_to_though_never_recorded_healthy(w: World) -> None:
    updated_before_recorded_healthy(w, w.now - timedelta(seconds=2))  # ready 2 s before the change
    assert w.condition("Degraded")["reason"] == "RolledBack"
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert w.status()["lastHealthyRevision"] == "1"
    assert "rolled back to revision 1" in w.condition("Degraded")["message"]


def test_without_a_revision_that_proved_itself_a_failing_one_stays(w: World) -> None:
    later = w.now + timedelta(seconds=19)  # the old pod restarted: it has run 2 s when the pull fails for 21
    updated_before_recorded_healthy(w, later)
    assert w.condition("Degraded")["reason"] == "ImagePullBackOff"
    assert w.child("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "127.0.0.1:5999/missing:1"
