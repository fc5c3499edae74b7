from __future__ import annotations

from typing import Any

import pytest

from appkeeper.api import SpecError, parse_app, parse_spec
from appkeeper.kinds import build_children

from .conftest import NOW, app_body


def test_defaults_follow_the_contract() -> None:
    app = parse_app(app_body(ports=[{"name": "http", "containerPort": 8080}],
                             volumes=[{"name": "data", "mountPath": "/d", "persistent": {"size": "1Gi"}}]))
    spec = app.spec
    assert spec.replicas == 1
    assert spec.ports[0].protocol == "TCP"
    assert spec.ports[0].service_port == 8080
    assert spec.service.type == "ClusterIP"
    assert spec.rollout.auto_rollback is True
    assert spec.rollout.progress_deadline_seconds == 600
    p = spec.volumes[0].persistent
    assert p is not None
    assert p.access_modes == ("ReadWriteOnce",)
    assert p.retain is True
    assert p.per_replica is False
    assert spec.pod.automount_service_account_token is False
    assert not spec.is_stateful


def test_service_account_turns_token_mount_on() -> None:
    spec = parse_spec({"image": "x", "pod": {"serviceAccountName": "robot"}})
    assert spec.pod.automount_service_account_token is True


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.image"),
        ({"image": "  "}, "spec.image"),
        ({"image": "x", "replicas": -1}, "spec.replicas"),
        ({"image": "x", "replicas": "3"}, "spec.replicas"),
        ({"image": "x", "ports": [{"name": "http", "containerPort": 0}]}, "spec.ports[0].containerPort"),
        ({"image": "x", "ports": [{"name": "http", "containerPort": 70000}]}, "spec.ports[0].containerPort"),
        ({"image": "x", "ports": [{"name": "Http", "containerPort": 80}]}, "spec.ports[0].name"),
        ({"image": "x", "ports": [{"name": "a-very-long-port-name", "containerPort": 80}]}, "spec.ports[0].name"),
        ({"image": "x", "ports": [{"name": "a", "containerPort": 80}, {"name": "a", "containerPort": 81}]},
         "spec.ports[1].name"),
        ({"image": "x", "ports": [{"name": "a", "containerPort": 80, "protocol": "HTTP"}]}, "spec.ports[0].protocol"),
        ({"image": "x", "volumes": [{"name": "d", "mountPath": "/d"}]}, "spec.volumes[0]"),
        ({"image": "x", "volumes": [{"name": "d", "mountPath": "/d", "emptyDir": {}, "secret": {"secretName": "s"}}]},
         "spec.volumes[0]"),
        ({"image": "x", "volumes": [{"name": "d", "mountPath": "d", "emptyDir": {}}]}, "spec.volumes[0].mountPath"),
        ({"image": "x", "volumes": [{"name": "d", "mountPath": "/d", "persistent": {"size": "lots"}}]},
         "spec.volumes[0].persistent.size"),
        ({"image": "x", "ports": [{"name": "http", "containerPort": 80}], "ingress": {"port": "grpc"}},
         "spec.ingress.port"),
        ({"image": "x", "ingress": {"host": "a.example"}}, "spec.ingress"),
        ({"image": "x", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "spec.autoscaling.minReplicas"),
        ({"image": "x", "schedules": [{"name": "w", "start": "not cron", "end": "0 9 * * *", "replicas": 1}]},
         "spec.schedules[0].start"),
        ({"image": "x", "schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "replicas": 1,
                                       "timeZone": "Mars/Olympus"}]}, "spec.schedules[0].timeZone"),
        ({"image": "x", "schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 0 30 2 *", "replicas": 1}]},
         "spec.schedules[0].end"),  # valid, but 30 February never comes
        ({"image": "x", "rollout": {"failureThreshold": {"restarts": 0}}}, "spec.rollout.failureThreshold.restarts"),
        ({"image": "x", "rollout": {"revisionHistoryLimit": 0}}, "spec.rollout.revisionHistoryLimit"),
        ({"image": "x", "disruption": {"minAvailable": 1, "maxUnavailable": 1}}, "spec.disruption"),
        ({"image": "x", "resources": {"requests": {"cpu": "fast"}}}, "spec.resources.requests.cpu"),
        ({"image": "x", "service": {"type": "Magic"}}, "spec.service.type"),
    ],
)
def test_bad_specs_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert err.value.field == field
    assert field in str(err.value)


def test_any_garbage_becomes_a_spec_error_not_a_crash() -> None:
    import random

    rng = random.Random(7)
    keys = ["image", "replicas", "ports", "env", "volumes", "service", "ingress", "autoscaling", "schedules",
            "rollout", "disruption", "pod", "resources", "probes", "name", "containerPort", "persistent",
            "size", "start", "end", "timeZone", "minReplicas", "maxReplicas", "type", "port", "mountPath"]

    def value(depth: int) -> Any:
        kind = rng.randrange(7 if depth < 3 else 4)
        if kind == 0:
            return rng.choice([None, True, 0, -1, 70000, "x", "", "1Gi", "0 8 * * *"])
        if kind == 1:
            return rng.randrange(-5, 100)
        if kind == 2:
            return rng.choice(["nginx", "Mars/Olympus", "/d", "http", "a b"])
        if kind == 3:
            return 3.5
        if kind in (4, 5):
            return {rng.choice(keys): value(depth + 1) for _ in range(rng.randrange(4))}
        return [value(depth + 1) for _ in range(rng.randrange(3))]

    built = 0
    for _ in range(3000):
        raw = {rng.choice(keys): value(0) for _ in range(rng.randrange(6))}
        if rng.random() < 0.7:
            raw["image"] = "nginx:1.27"
        try:
            body = app_body()
            body["spec"] = raw
            app = parse_app(body)
        except SpecError:
            continue
        built += 1
        children = build_children(app, NOW)  # whatever parses also builds
        assert children[0]["kind"] in ("Deployment", "StatefulSet")
    assert built > 100


def test_an_empty_ingress_still_asks_for_an_ingress() -> None:
    spec = parse_spec({"image": "x", "ports": [{"name": "http", "containerPort": 80}], "ingress": {}})
    assert spec.ingress is not None
    assert (spec.ingress.port, spec.ingress.path, spec.ingress.path_type) == ("http", "/", "Prefix")
    with pytest.raises(SpecError, match=r"spec\.autoscaling\.maxReplicas"):
        parse_spec({"image": "x", "autoscaling": {}})


def test_a_network_policy_peer_names_an_app_or_a_namespace() -> None:
    from appkeeper.api import Peer, SpecError, parse_spec

    spec = parse_spec({"image": "nginx", "networkPolicy": {"ingressFrom": [{"app": "web"}, {"namespace": "ops"}]}})
    assert spec.network_policy is not None
    assert spec.network_policy.ingress_from == (Peer("web", None), Peer(None, "ops"))
    assert parse_spec({"image": "nginx"}).network_policy is None
    with pytest.raises(SpecError) as e:
        parse_spec({"image": "nginx", "networkPolicy": {"ingressFrom": [{"app": "web"}, {}]}})
    assert e.value.field == "spec.networkPolicy.ingressFrom[1]"
    with pytest.raises(SpecError) as e:
        parse_spec({"image": "nginx", "networkPolicy": {"ingressFrom": [{"app": "Not_A_Name"}]}})
    assert e.value.field == "spec.networkPolicy.ingressFrom[0].app"


def test_metrics_name_a_port_of_the_service() -> None:
    from appkeeper.api import Metrics, SpecError, parse_spec

    ports = [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]
    assert parse_spec({"image": "nginx", "ports": ports, "metrics": {"port": "metrics"}}).metrics == \
        Metrics("metrics", "/metrics", "30s")
    for metrics, field in [({"port": "nope"}, "spec.metrics.port"), ({"port": "http", "interval": "0s"},
                                                                      "spec.metrics.interval"),
                           ({"port": "http", "path": "metrics"}, "spec.metrics.path")]:
        with pytest.raises(SpecError) as e:
            parse_spec({"image": "nginx", "ports": ports, "metrics": metrics})
        assert e.value.field == field
    with pytest.raises(SpecError) as e:
        parse_spec({"image": "nginx", "ports": ports, "service": {"type": "None"}, "metrics": {"port": "http"}})
    assert e.value.field == "spec.metrics"
