"""A child's first write is a create (no read before it); later applies still own, and so remove,
what the spec drops (the create's managedFields entry becomes the operator's Apply entry)."""

from __future__ import annotations

from typing import Any

from .conftest import Operator, app, apply, get, wait_for


def ours(obj: dict[str, Any]) -> list[str]:
    return [e["operation"] for e in obj["metadata"].get("managedFields") or []
            if e["manager"] == "appkeeper" and not e.get("subresource")]


def env_of(namespace: str) -> list[str] | None:
    d = get("deployment", "web", namespace)
    return [e["name"] for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])] if d else None


def test_what_the_spec_drops_after_the_create_goes_from_the_child(operator: Operator, namespace: str) -> None:
    ports = [{"name": "http", "containerPort": 80}, {"name": "admin", "containerPort": 9000}]
    apply(app("web", ports=ports, env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]), namespace)
    wait_for("the Deployment", lambda: env_of(namespace) == ["A", "B"])
    created = get("deployment", "web", namespace)
    assert created is not None
    assert ours(created) == ["Update"]  # made by a create
    apply(app("web", ports=ports[:1], env=[{"name": "A", "value": "1"}]), namespace)
    wait_for("B gone from the pod template", lambda: env_of(namespace) == ["A"])
    service = wait_for("the admin port gone from the Service", lambda: (
        s := get("service", "web", namespace)) and [p["name"] for p in s["spec"]["ports"]] == ["http"] and s)
    deployment = get("deployment", "web", namespace)
    assert deployment is not None
    assert ours(deployment) == ["Apply"]
    assert ours(service) == ["Apply"]
