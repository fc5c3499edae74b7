"""What a person sees with kubectl, against a real API server: `get` (the printer columns answer
"is it OK and why not"), `describe`, `explain` (the CRD's descriptions). Golden files, with ages,
times, uids and generated names masked; UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import Operator, app, apply, kubectl
from .test_operator import wait_healthy

GOLDEN = Path(__file__).parent / "golden"
MASKS = [
    (re.compile(r"\b\d+(\.\d+)?(s|m|h|d)(\d+s)?\b"), "<age>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<time>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uid>"),
    (re.compile(r"e2e-[0-9a-f]{8}"), "<namespace>"),
    (re.compile(r"[0-9a-f]{16}"), "<hash>"),
]


def masked(text: str) -> str:
    for pattern, repl in MASKS:
        text = pattern.sub(repl, text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def matches_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    got = masked(text)
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"{path} missing: rerun with UPDATE_GOLDEN=1"
    assert got == path.read_text(), f"{path} differs; rerun with UPDATE_GOLDEN=1 and review the diff"


@pytest.mark.parametrize("field", ["app.spec.rollout", "app.spec.rollout.failureThreshold", "app.spec.configRollout",
                                   "app.status.rolledBackBecause"])
def test_explain_says_what_each_field_does(crd: str, field: str) -> None:
    matches_golden(f"explain-{field}", kubectl("explain", field).stdout)


def test_get_and_describe_say_whether_it_is_ok(operator: Operator, namespace: str) -> None:
    apply(app("shop", replicas=2, ports=[{"name": "http", "containerPort": 80}]), namespace)
    wait_healthy("shop", namespace)  # lastHealthyRevision too: what describe shows is then settled
    matches_golden("get-wide", kubectl("get", "akapp", "-n", namespace, "-o", "wide").stdout)
    described = kubectl("describe", "app", "shop", "-n", namespace).stdout
    start = described.index("Status:")  # the spec half echoes the manifest; the status half is ours
    matches_golden("describe-status", described[start:described.index("Events:")])
