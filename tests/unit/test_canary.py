"""Canary steps through the real Reconciler (fakekube in place of the API): a template change runs
beside the stable one step by step, promotes, aborts on a failing pod or a failed analysis, obeys
the annotation, and survives a restart. The e2e suite judges what the API server and real pods do."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from appkeeper.analysis import http_analysis
from appkeeper.api import HttpCheck, Port

from .test_reconcile import NS, WEB, World

STEPS = {"steps": [{"replicas": 1, "pause": "10s"}, {"weight": "50%", "pause": "10s"}]}
CANARY = dict(WEB, replicas=4, rollout={"canary": STEPS})


@pytest.fixture
def w() -> World:
    return World()


def image(obj: dict[str, Any]) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def settle(w: World, name: str, replicas: int) -> None:
    """The Deployment controller's view: `name` fully rolled out with `replicas` ready."""
    d = w.child("Deployment", name)
    d["status"] = {"observedGeneration": d["metadata"]["generation"], "replicas": replicas,
                   "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas}


def started(w: World, spec: dict[str, Any] = CANARY) -> None:
    """Revision 1 rolled out, then the image changed: the canary's first step."""
    w.put_app(**spec)
    w.reconcile()
    settle(w, "shop", 4)
    w.reconcile()
    w.put_app(**dict(spec, image="nginx:1.28"))
    w.reconcile()


def canary_pod(w: World, restarts: int) -> None:
    w.kube.objects.pop(("Pod", NS, "shop-canary-h9-x"), None)
    w.kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "shop-canary-h9-x", "namespace": NS, "creationTimestamp": w.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": {"appkeeper.dev/app": "shop", "pod-template-hash": "h9", "appkeeper.dev/track": "canary"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-canary-h9",
                             "uid": "rs-h9", "controller": True}]},
        "status": {"podIP": "10.0.0.9", "startTime": "2026-11-23T11:59:00Z", "containerStatuses": [{
            "name": "shop", "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}})


def test_a_template_change_runs_beside_the_stable_pods_step_by_step_then_promotes(w: World) -> None:
    started(w)
    assert image(w.child("Deployment")) == "nginx:1.27"  # the stable pods keep the old template
    canary = w.child("Deployment", "shop-canary")
    assert (image(canary), canary["spec"]["replicas"]) == ("nginx:1.28", 1)
    assert canary["spec"]["selector"]["matchLabels"] == {"appkeeper.dev/app": "shop", "appkeeper.dev/track": "canary"}
    assert canary["metadata"]["ownerReferences"][0]["kind"] == "App"
    assert w.status()["canary"]["step"] == 1
    assert w.condition("Progressing")["reason"] == "CanaryStep"
    assert ("CanaryStep", "canary of a new pod template started: step 1/2, 1 pods") in w.events()
    settle(w, "shop-canary", 1)
    outcome = w.reconcile()
    assert outcome.requeue_after is not None
    assert outcome.requeue_after <= 10.1  # time, not an event, ends the pause
    assert "10s of the 10s pause left" in w.condition("Progressing")["message"]
    w.now += timedelta(seconds=11)
    w.reconcile()
    assert w.status()["canary"]["step"] == 2
    assert w.child("Deployment", "shop-canary")["spec"]["replicas"] == 2  # 50% of 4
    settle(w, "shop-canary", 2)
    w.reconcile()
    assert "10s of the 10s pause left" in w.condition("Progressing")["message"]  # counted from step 2's pods
    assert w.status()["canary"]["step"] == 2
    w.now += timedelta(seconds=11)
    w.reconcile()
    assert image(w.child("Deployment")) == "nginx:1.28"
    assert w.kube.obj("Deployment", NS, "shop-canary") is None  # pruned once promoted
    assert w.status()["canary"]["phase"] == "Promoted"
    assert [r for r, _ in w.events()].count("CanaryPromoted") == 1
    w.reconcile()
    assert image(w.child("Deployment")) == "nginx:1.28"  # and it stays so


def test_a_crashing_canary_is_aborted_at_once_and_stays_aborted_until_the_spec_changes(w: World) -> None:
    started(w)
    canary_pod(w, restarts=3)
    w.reconcile()
    assert w.kube.obj("Deployment", NS, "shop-canary") is None
    assert image(w.child("Deployment")) == "nginx:1.27"
    degraded = w.condition("Degraded")
    assert degraded["reason"] == "CanaryFailed"
    assert "step 1/2: container shop: CrashLoopBackOff, exit code 1 (Error)" in degraded["message"]
    assert w.status()["canary"]["phase"] == "Aborted"
    w.restart()  # a new process remembers from status
    w.reconcile()
    assert w.kube.obj("Deployment", NS, "shop-canary") is None
    assert w.condition("Degraded")["reason"] == "CanaryFailed"
    w.now += timedelta(seconds=30)
    w.put_app(**dict(CANARY, image="nginx:1.29"))
    w.reconcile()  # the aborted canary's pod, still there, is not this one's
    assert image(w.child("Deployment", "shop-canary")) == "nginx:1.29"  # a new canary
    assert w.condition("Degraded")["reason"] == "Healthy"


def test_the_annotation_promotes_now_and_is_removed(w: World) -> None:
    started(w)
    w.kube.edit("App", NS, "shop", ["metadata", "annotations"], {"appkeeper.dev/canary": "promote"})
    w.reconcile()
    assert image(w.child("Deployment")) == "nginx:1.28"
    assert w.kube.obj("Deployment", NS, "shop-canary") is None
    assert "appkeeper.dev/canary" not in (w.app()["metadata"].get("annotations") or {})


def test_the_annotation_aborts(w: World) -> None:
    started(w)
    w.kube.edit("App", NS, "shop", ["metadata", "annotations"], {"appkeeper.dev/canary": "abort"})
    w.reconcile()
    assert image(w.child("Deployment")) == "nginx:1.27"
    assert "aborted by the annotation" in w.condition("Degraded")["message"]


def test_the_first_rollout_and_a_replica_count_change_go_the_ordinary_way(w: World) -> None:
    w.put_app(**CANARY)
    w.reconcile()
    assert w.kube.obj("Deployment", NS, "shop-canary") is None
    settle(w, "shop", 4)
    w.put_app(**dict(CANARY, replicas=6))
    w.reconcile()
    assert w.child("Deployment")["spec"]["replicas"] == 6
    assert w.kube.obj("Deployment", NS, "shop-canary") is None


def test_the_analysis_counts_answers_and_fails_below_the_rate() -> None:
    check = HttpCheck("/healthz", "http", 80)
    ports = (Port("http", 8080, "TCP", 80),)
    pods = [{"status": {"podIP": "10.0.0.9"}}, {"status": {"podIP": "10.0.0.8"}}]
    answers = iter([200, 200, 500, 200, 200, 200, 200, 200, 200, 200])
    failure, evidence = http_analysis(check, ports, pods, lambda ip, port, path, timeout: next(answers))
    assert failure is None
    assert evidence == "httpGet /healthz on port http of 2 canary pods: 9/10 succeeded"

    def refused(ip: str, port: int, path: str, timeout: float) -> int:
        raise ConnectionRefusedError(ip)

    failure, _ = http_analysis(check, ports, pods, refused)
    assert failure is not None
    assert "0/10 succeeded, below 80%" in failure


def test_pods_that_never_answer_hold_the_analysis_two_seconds_at_most() -> None:
    """A tenant's canary pods that accept connections and say nothing must not hold a worker."""
    now = [0.0]
    asked: list[float] = []

    def silent(ip: str, port: int, path: str, timeout: float) -> int:
        asked.append(timeout)
        now[0] += timeout  # waits its whole timeout, then nothing
        raise TimeoutError(ip)

    pods = [{"status": {"podIP": f"10.0.0.{i}"}} for i in range(10)]
    failure, evidence = http_analysis(HttpCheck("/", "http", 95), (Port("http", 8080, "TCP", 80),), pods, silent,
                                      clock=lambda: now[0])
    assert now[0] <= 2.0
    assert len(asked) == 2  # two 1 s waits spend the budget; the rest are not tried
    assert "0/20 succeeded" in evidence  # 4 pods at most, 5 tries each: all failures
    assert failure is not None


def test_the_prometheus_analysis_compares_the_first_value_and_never_passes_unjudged() -> None:
    from appkeeper.analysis import prometheus_analysis
    from appkeeper.api import PromCheck

    check = PromCheck("sum(rate(ok[1m])) / sum(rate(all[1m]))", 0.99)

    def answer(value: str) -> Any:
        return lambda url, query: {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]}

    assert prometheus_analysis(check, "http://p:9090", answer("0.995"))[0] is None
    failure, evidence = prometheus_analysis(check, "http://p:9090", answer("0.9"))
    assert failure == f"{evidence}, below the threshold"
    assert evidence == "Prometheus: sum(rate(ok[1m])) / sum(rate(all[1m])) = 0.9 (threshold 0.99)"
    assert "below" in str(prometheus_analysis(check, "http://p:9090", answer("NaN"))[0])
    assert "no data" in str(prometheus_analysis(check, "http://p:9090", lambda u, q: {"resultType": "vector",
                                                                                          "result": []})[0])
    assert "no Prometheus" in str(prometheus_analysis(check, None)[0])

    def down(url: str, query: str) -> Any:
        raise ConnectionRefusedError("refused")

    assert "the Prometheus query failed" in str(prometheus_analysis(check, "http://p:9090", down)[0])
