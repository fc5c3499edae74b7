"""Golden-file tests of the pure builders. Regenerate with UPDATE_GOLDEN=1 after an intended change,
and read the diff."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from appkeeper.api import parse_app
from appkeeper.desired import keep_live_claim_templates, labels, workload_replicas
from appkeeper.kinds import build_children
from appkeeper.names import ANN_HASH

from .conftest import NOW, app_body

GOLDEN = Path(__file__).parent / "golden"

CASES: dict[str, dict[str, Any]] = {
    "minimal": {},
    "full": {
        "replicas": 2,
        "ports": [{"name": "http", "containerPort": 8080, "servicePort": 80},
                  {"name": "metrics", "containerPort": 9090}],
        "env": [{"name": "MODE", "value": "prod"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "probes": {"readiness": {"httpGet": {"path": "/healthz", "port": "http"}}},
        "volumes": [{"name": "data", "mountPath": "/var/lib/shop", "persistent": {"size": "1Gi"}},
                    {"name": "tmp", "mountPath": "/tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    {"name": "conf", "mountPath": "/etc/shop", "readOnly": True, "configMap": {"name": "shop"}}],
        "ingress": {"host": "shop.example.com", "tls": {"secretName": "shop-tls"}},
        "disruption": {"minAvailable": 1},
        "pod": {"labels": {"team": "web"}, "annotations": {"prometheus.io/scrape": "true"}},
        "networkPolicy": {"ingressFrom": [{"app": "frontend"}, {"namespace": "monitoring"},
                                          {"app": "agent", "namespace": "ops"}]},
        "metrics": {"port": "metrics"},
    },
    "stateful": {
        "replicas": 3,
        "ports": [{"name": "pg", "containerPort": 5432}],
        "service": {"type": "Headless"},
        "volumes": [{"name": "data", "mountPath": "/data",
                     "persistent": {"size": "5Gi", "perReplica": True, "storageClassName": "fast"}}],
    },
    "autoscaled": {
        "replicas": 4,
        "ports": [{"name": "http", "containerPort": 80}],
        "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 60},
        "schedules": [{"name": "business", "start": "0 8 * * *", "end": "0 18 * * *", "replicas": 6}],
    },
}


def render(spec: dict[str, Any], now: datetime = NOW) -> list[dict[str, Any]]:
    return build_children(parse_app(app_body(**spec)), now)


@pytest.mark.parametrize("case", sorted(CASES))
def test_children_match_golden(case: str) -> None:
    got = yaml.safe_dump_all(render(CASES[case]), sort_keys=True)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text(), f"{path} differs; rerun with UPDATE_GOLDEN=1 and review the diff"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_child_has_contract_labels_and_owner(case: str) -> None:
    for child in render(CASES[case]):
        meta = child["metadata"]
        assert meta["labels"] == labels("shop")
        assert len(meta["annotations"][ANN_HASH]) == 16
        if meta["annotations"].get("appkeeper.dev/retain") == "true":
            # Never garbage-collected with the App, whatever the timing: no ownerReference at all.
            assert "ownerReferences" not in meta
            assert meta["annotations"]["appkeeper.dev/retained-from"] == "shop"
            continue
        assert meta["ownerReferences"] == [{
            "apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "name": "shop", "uid": "uid-1",
            "controller": True, "blockOwnerDeletion": True}]


def test_kinds_and_names() -> None:
    got = [(c["kind"], c["metadata"]["name"]) for c in render(CASES["full"])]
    assert got == [("Deployment", "shop"), ("Service", "shop"), ("PersistentVolumeClaim", "shop-data"),
                   ("Ingress", "shop"), ("PodDisruptionBudget", "shop"), ("NetworkPolicy", "shop"),
                   ("ServiceMonitor", "shop")]
    assert [c["kind"] for c in render(CASES["stateful"])] == ["StatefulSet", "Service"]
    assert [c["kind"] for c in render(CASES["autoscaled"])] == ["Deployment", "Service", "HorizontalPodAutoscaler"]


def test_hash_changes_with_input_only() -> None:
    a = render({"replicas": 2})[0]["metadata"]["annotations"][ANN_HASH]
    assert a == render({"replicas": 2})[0]["metadata"]["annotations"][ANN_HASH]
    assert a != render({"replicas": 3})[0]["metadata"]["annotations"][ANN_HASH]


def test_no_service_without_ports_or_with_type_none() -> None:
    assert [c["kind"] for c in render({})] == ["Deployment"]
    assert [c["kind"] for c in render({"ports": [{"name": "h", "containerPort": 1}],
                                       "service": {"type": "None"}})] == ["Deployment"]


def test_pod_defaults_are_safe_and_overridable() -> None:
    pod = render({})[0]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False}
    own = {"runAsUser": 1000, "readOnlyRootFilesystem": True}
    pod = render({"pod": {"containerSecurityContext": own}})[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["securityContext"] == own


def test_every_pod_drains_before_it_stops_unless_told_not_to() -> None:
    def pod(spec: dict[str, Any], default: int = 5) -> dict[str, Any]:
        body = app_body(**spec)
        deployment = build_children(parse_app(body), NOW, drain_seconds=default)[0]
        return dict(deployment["spec"]["template"]["spec"])

    drained = pod({})  # the operator's default
    assert drained["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert drained["terminationGracePeriodSeconds"] == 35  # the drain, then the program's own 30 s
    own = pod({"rollout": {"drainSeconds": 12}}, default=5)
    assert own["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == 12
    assert own["terminationGracePeriodSeconds"] == 42
    for off in (pod({"rollout": {"drainSeconds": 0}}), pod({}, default=0)):
        assert "lifecycle" not in off["containers"][0]
        assert "terminationGracePeriodSeconds" not in off  # Kubernetes' own default


@pytest.mark.parametrize("bad", [-1, 601, "5", True])
def test_a_bad_drain_names_its_field(bad: object) -> None:
    from appkeeper.api import SpecError

    with pytest.raises(SpecError, match=r"spec\.rollout\.drainSeconds"):
        parse_app(app_body(rollout={"drainSeconds": bad}))


def test_suspend_scales_to_zero_and_drops_hpa() -> None:
    spec = dict(CASES["autoscaled"], suspend=True)
    children = render(spec)
    assert children[0]["spec"]["replicas"] == 0
    assert "HorizontalPodAutoscaler" not in [c["kind"] for c in children]


def test_schedule_raises_floor_or_hpa_minimum() -> None:
    plain = {"replicas": 1, "schedules": [{"name": "day", "start": "0 8 * * *", "end": "0 18 * * *", "replicas": 5}]}
    assert render(plain)[0]["spec"]["replicas"] == 5  # NOW is 12:00 UTC: the window is open
    night = datetime(2026, 11, 23, 20, 0, tzinfo=NOW.tzinfo)
    assert render(plain, night)[0]["spec"]["replicas"] == 1
    hpa = render(CASES["autoscaled"])[2]
    assert hpa["spec"]["minReplicas"] == 6
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "name": "shop"}
    # With autoscaling the workload follows spec.replicas (what the HPA decided), not the window.
    assert workload_replicas(parse_app(app_body(**CASES["autoscaled"])).spec, NOW).count == 4


def live_templates(size: str = "5Gi", annotated: bool = False) -> dict[str, Any]:
    """A StatefulSet as the API server returns it: defaulted claim templates, with a status."""
    meta: dict[str, Any] = {"name": "data", "creationTimestamp": None}
    if annotated:
        meta["annotations"] = {"appkeeper.dev/retained-from": "shop"}
    return {"kind": "StatefulSet", "spec": {"volumeClaimTemplates": [{
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                 "storageClassName": "fast", "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}]}}


@pytest.mark.parametrize(("case", "live", "kept"), [
    ("new", None, False),
    ("made-before-the-annotation", live_templates(), True),  # else refused: the templates are immutable
    ("already-annotated", live_templates(annotated=True), True),
    ("size-changed", live_templates(size="1Gi"), False),  # a real change: the API server says why not
])
def test_statefulset_claim_templates_kept_only_where_they_ask_the_same(case: str, live: dict[str, Any] | None,
                                                                        kept: bool) -> None:
    sts = render(CASES["stateful"])[0]
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["annotations"] == {"appkeeper.dev/retained-from": "shop"}
    out = keep_live_claim_templates(sts, live)
    templates = out["spec"]["volumeClaimTemplates"]
    if not kept:
        assert out == sts
        return
    assert live is not None
    assert templates == [{"metadata": live["spec"]["volumeClaimTemplates"][0]["metadata"],
                          "spec": live["spec"]["volumeClaimTemplates"][0]["spec"]}]
    assert {k: v for k, v in out["spec"].items() if k != "volumeClaimTemplates"} == \
        {k: v for k, v in sts["spec"].items() if k != "volumeClaimTemplates"}
