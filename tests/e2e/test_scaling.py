"""Scaling against the real controllers: the scale subresource, the HPA controller fed by the real
metrics-server (reading KWOK's simulated pod usage), schedule windows and suspend."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .conftest import Operator, app, apply, get, items, kubectl, wait_for
from .test_operator import status, wait_phase, wait_ready

USAGE = "kwok.x-k8s.io/usage-cpu"  # KWOK reports this as the pod's CPU usage


def deployment_replicas(name: str, ns: str) -> int | None:
    dep = get("deployment", name, ns)
    return None if dep is None else int(dep["spec"]["replicas"])


def test_kubectl_scale_app(operator: Operator, namespace: str) -> None:
    apply(app("web", replicas=1, ports=[{"name": "http", "containerPort": 80}]), namespace)
    wait_ready("web", namespace)
    kubectl("scale", "app/web", "--replicas=4", "-n", namespace)
    body = wait_for("4 ready replicas", lambda: (b := wait_ready("web", namespace)) and
                    b["status"]["readyReplicas"] == 4 and b)
    assert deployment_replicas("web", namespace) == 4
    scale = json.loads(kubectl("get", "--raw",
                               f"/apis/appkeeper.dev/v1alpha1/namespaces/{namespace}/apps/web/scale").stdout)
    assert scale["spec"]["replicas"] == 4
    assert scale["status"] == {"replicas": 4, "selector": "appkeeper.dev/app=web"}
    assert body["status"]["replicas"] == 4
    assert len(items("pods", namespace, scale["status"]["selector"])) == 4


def annotate_pods(ns: str, app_name: str, cpu: str) -> None:
    kubectl("annotate", "pods", "-n", ns, "-l", f"appkeeper.dev/app={app_name}", f"{USAGE}={cpu}", "--overwrite")


def pod_metrics(ns: str) -> list[dict[str, Any]]:
    proc = kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", check=False)
    return list(json.loads(proc.stdout)["items"]) if proc.returncode == 0 else []


def applies(op: Operator, kind: str) -> float:
    return op.metrics().get(f'appkeeper_child_applies_total{{kind="{kind}"}}', 0.0)


def test_hpa_scales_the_app_out_and_in_on_simulated_load(operator: Operator, namespace: str, kwok: None) -> None:
    apply(app("api", resources={"requests": {"cpu": "100m"}},
              autoscaling={"minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}), namespace)
    wait_ready("api", namespace)
    hpa = wait_for("the HPA", lambda: get("hpa", "api", namespace))
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "name": "api"}
    wait_for("metrics-server to report the pod", lambda: pod_metrics(namespace), timeout=90)

    # 200m on a 100m request is 200% against a 60% target: the HPA asks for ceil(200/60) = 4.
    annotate_pods(namespace, "api", "200m")
    wait_for("the HPA to scale the App out", lambda: (get("app", "api", namespace) or {})
             .get("spec", {}).get("replicas", 1) >= 3, timeout=120)
    wait_for("the workload to follow", lambda: deployment_replicas("api", namespace) == get(
        "app", "api", namespace)["spec"]["replicas"] and status("api", namespace).get("phase") == "Ready",  # type: ignore[index]
        timeout=60)
    app_body = get("app", "api", namespace)
    assert app_body is not None
    owners = {m["manager"] for m in app_body["metadata"]["managedFields"]
              if "f:replicas" in m.get("fieldsV1", {}).get("f:spec", {})}
    assert "appkeeper" not in owners  # the HPA decides; the operator never writes spec.replicas

    # Stable load: no replica writes by the operator (nor anybody) for a while.
    steady_from = get("deployment", "api", namespace)["metadata"]["generation"]  # type: ignore[index]
    applied = applies(operator, "Deployment")
    replicas = get("app", "api", namespace)["spec"]["replicas"]  # type: ignore[index]
    time.sleep(180)  # several minutes of stable load, HPA syncing every 5 s
    assert get("app", "api", namespace)["spec"]["replicas"] == replicas  # type: ignore[index]
    assert get("deployment", "api", namespace)["metadata"]["generation"] == steady_from  # type: ignore[index]
    assert applies(operator, "Deployment") == applied

    # Load gone: back to the minimum after the (test cluster's 20 s) stabilization window.
    annotate_pods(namespace, "api", "1m")
    wait_for("the HPA to scale the App in", lambda: deployment_replicas("api", namespace) == 1, timeout=150)
    wait_ready("api", namespace)


def test_schedule_window_opens_and_closes(operator: Operator, namespace: str) -> None:
    now = datetime.now(UTC)
    opens = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (opens - now).total_seconds() < 10:  # too close to call: take the minute after
        opens += timedelta(minutes=1)
    closes = opens + timedelta(minutes=1)
    window = {"name": "rush", "start": f"{opens.minute} * * * *", "end": f"{closes.minute} * * * *",
              "timeZone": "UTC", "replicas": 3}
    apply(app("clock", replicas=1, schedules=[window]), namespace)
    wait_ready("clock", namespace)
    assert deployment_replicas("clock", namespace) == 1
    assert "activeSchedule" not in status("clock", namespace)
    wait_for("the window to open", lambda: deployment_replicas("clock", namespace) == 3, timeout=100)
    assert datetime.now(UTC) >= opens
    wait_for("3 ready during the window", lambda: status("clock", namespace).get("readyReplicas") == 3)
    assert status("clock", namespace)["activeSchedule"] == "rush"
    wait_for("the window to close", lambda: deployment_replicas("clock", namespace) == 1, timeout=90)
    assert datetime.now(UTC) >= closes
    wait_for("status to drop the window", lambda: "activeSchedule" not in status("clock", namespace))


def test_suspend_scales_to_zero_keeps_the_rest_and_resumes(operator: Operator, namespace: str) -> None:
    spec: dict[str, Any] = {"replicas": 3, "ports": [{"name": "http", "containerPort": 80}],
                            "volumes": [{"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi"}}],
                            "env": [{"name": "MODE", "value": "prod"}]}
    apply(app("nap", **spec), namespace)
    wait_ready("nap", namespace)
    apply(app("nap", suspend=True, **spec), namespace)
    wait_phase("nap", namespace, "Suspended")
    wait_for("zero pods", lambda: not items("pods", namespace, "appkeeper.dev/app=nap"))
    assert deployment_replicas("nap", namespace) == 0
    assert get("service", "nap", namespace) is not None
    assert get("pvc", "nap-data", namespace) is not None
    dep = get("deployment", "nap", namespace)
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "prod"}]
    apply(app("nap", suspend=False, **spec), namespace)
    body = wait_ready("nap", namespace)
    assert body["status"]["readyReplicas"] == 3
