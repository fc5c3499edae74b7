"""Bounded work per input: every parser of user text is linear, and what the schema bounds the
parser bounds the same way (an App stored before a schema change is still refused, naming the field)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from appkeeper.api import SpecError, parse_spec, quantity_value

from .test_crd import CRD

N = 200_000  # the hostile length; the old quantity pattern took minutes on it
BOUND = 1.0  # seconds: generous for a linear parser on a loaded machine, far below a quadratic one

HOSTILE: dict[str, Callable[[str], dict[str, Any]]] = {
    "spec.resources.requests.cpu": lambda s: {"resources": {"requests": {"cpu": s}}},
    "spec.resources.limits.memory": lambda s: {"resources": {"limits": {"memory": s}}},
    "spec.volumes[0].persistent.size": lambda s: {"volumes": [{"name": "d", "mountPath": "/d",
                                                                "persistent": {"size": s}}]},
    "spec.volumes[0].emptyDir.sizeLimit": lambda s: {"volumes": [{"name": "d", "mountPath": "/d",
                                                                   "emptyDir": {"sizeLimit": s}}]},
    "spec.schedules[0].start": lambda s: {"schedules": [{"name": "w", "start": s, "end": "0 9 * * *", "replicas": 1}]},
    "spec.schedules[0].timeZone": lambda s: {"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *",
                                                            "timeZone": s, "replicas": 1}]},
    "spec.ports[0].name": lambda s: {"ports": [{"name": s, "containerPort": 80}]},
    "spec.volumes[0].name": lambda s: {"volumes": [{"name": s, "mountPath": "/d", "emptyDir": {}}]},
}
PATHOLOGICAL = ("1" * N + "e1.5", "1" * N + "x", "." * N, "1." * (N // 2) + "Q", "a-" * (N // 2) + "!", "* " * (N // 2),
                "1" * N)


@pytest.mark.parametrize("field", sorted(HOSTILE))
def test_each_parser_refuses_huge_pathological_text_quickly(field: str) -> None:
    for text in PATHOLOGICAL:
        started = time.perf_counter()
        with pytest.raises(SpecError) as err:
            parse_spec({"image": "x", **HOSTILE[field](text)})
        assert time.perf_counter() - started < BOUND, (field, text[:20])
        assert err.value.field == field
        assert len(str(err.value)) < 300  # the message quotes a prefix, not 200,000 characters


def test_quantity_values_are_compared_as_numbers() -> None:
    assert quantity_value("0.5") == quantity_value("500m")
    assert quantity_value("1e8") == quantity_value("100e6") == quantity_value("100M")
    assert quantity_value("1Gi") == 1024 ** 3
    for bad in ("1e1.5", "1K", "", "abc", "1" * 65, "1 ", "--1"):
        assert quantity_value(bad) is None, bad


def _integers(schema: dict[str, Any], path: str) -> list[tuple[str, int, int]]:
    """(path, minimum, maximum) of every integer of the spec's schema with both bounds."""
    found = []
    if schema.get("type") == "integer" and "minimum" in schema and "maximum" in schema:
        found.append((path, schema["minimum"], schema["maximum"]))
    for name, sub in (schema.get("properties") or {}).items():
        found += _integers(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _integers(schema["items"], f"{path}[0]")
    return found


def _spec_with(path: str, value: int) -> dict[str, Any]:
    """A valid spec but for `value` at `path` (spec.a.b[0].c)."""
    spec: dict[str, Any] = {"image": "x", "ports": [{"name": "http", "containerPort": 80}],
                            "autoscaling": {"minReplicas": 1, "maxReplicas": 10000},
                            "schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "replicas": 1}]}
    node: Any = spec
    parts = path.split(".")[1:]
    for part in parts[:-1]:
        key, _, index = part.partition("[")
        node = node.setdefault(key, [{}] if index else {})
        if index:
            node = node[0]
    node[parts[-1]] = value
    return spec


PARSED = ("spec.replicas", "spec.autoscaling.minReplicas", "spec.autoscaling.maxReplicas",
          "spec.autoscaling.targetCPUUtilizationPercentage", "spec.autoscaling.targetMemoryUtilizationPercentage",
          "spec.schedules[0].replicas", "spec.rollout.progressDeadlineSeconds", "spec.rollout.revisionHistoryLimit",
          "spec.rollout.failureThreshold.restarts", "spec.rollout.failureThreshold.imagePullSeconds",
          "spec.rollout.failureThreshold.unschedulableSeconds", "spec.ports[0].containerPort",
          "spec.ports[0].servicePort")


def test_every_integer_bound_of_the_schema_is_the_parsers() -> None:
    spec = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    bounds = {p: (lo, hi) for p, lo, hi in _integers(spec, "spec") if p in PARSED}
    assert sorted(bounds) == sorted(PARSED)
    for path, (lo, hi) in bounds.items():
        parse_spec(_spec_with(path, hi if "maxReplicas" not in path else 10000))
        for out in (lo - 1, hi + 1):
            with pytest.raises(SpecError) as err:
                parse_spec(_spec_with(path, out))
            assert err.value.field == path, (path, out)
