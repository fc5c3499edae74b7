"""Canary steps against a real API server (the KWOK tier: the Deployment controller and KWOK's pods
are real, their pods become ready at once): the state machine step by step, promotion, and an abort
by the annotation. Real pods serving through a canary: realnode/test_incluster.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import Operator, app, apply, get, wait_for
from .test_operator import condition, events, status, wait_ready


def image(obj: dict[str, Any] | None) -> str | None:
    return None if obj is None else str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def plugin(*args: str) -> str:
    """`kubectl appkeeper ...`: kubectl finds the plugin on PATH (the venv's bin, where pip put it)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["kubectl", "appkeeper", *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def canary_state(name: str, ns: str) -> dict[str, Any]:
    return dict(status(name, ns).get("canary") or {})


def test_a_canary_goes_through_every_step_then_promotes(operator: Operator, namespace: str) -> None:
    spec = {"replicas": 4, "rollout": {"canary": {"steps": [{"replicas": 1, "pause": "2s"},
                                                            {"weight": "50%", "pause": "5s"}]}}}
    apply(app("can", **spec), namespace)
    wait_ready("can", namespace, timeout=60)
    apply(app("can", image="nginx:1.28", **spec), namespace)
    first = wait_for("step 1's canary Deployment", lambda: get("deployment", "can-canary", namespace), timeout=30)
    assert (image(first), first["spec"]["replicas"]) == ("nginx:1.28", 1)
    assert image(get("deployment", "can", namespace)) == "nginx:1.27"  # the stable pods keep the old template
    seen: dict[int, int] = {}

    def promoted() -> bool:
        state = canary_state("can", namespace)
        canary = get("deployment", "can-canary", namespace)
        if canary is not None and state.get("phase") == "Progressing":
            seen[int(state["step"])] = int(canary["spec"]["replicas"])
        return state.get("phase") == "Promoted"

    wait_for("the canary promoted", promoted, timeout=90)
    assert seen.get(2) == 2  # step 2: 50% of 4
    steps = [e["message"] for e in events(namespace, "can") if e["reason"] == "CanaryStep"]
    assert any(m.endswith("step 2/2: 2 pods") for m in steps), steps
    wait_for("the stable Deployment on the new template",
             lambda: image(get("deployment", "can", namespace)) == "nginx:1.28", timeout=30)
    wait_for("the canary's Deployment gone", lambda: get("deployment", "can-canary", namespace) is None, timeout=30)
    reasons = [e["reason"] for e in events(namespace, "can")]
    assert "CanaryStep" in reasons
    assert "CanaryPromoted" in reasons
    wait_ready("can", namespace, timeout=60)


def test_a_canary_aborted_from_kubectl_leaves_the_stable_pods(operator: Operator, namespace: str) -> None:
    spec = {"replicas": 2, "rollout": {"canary": {"steps": [{"replicas": 1, "pause": "10m"}]}}}
    apply(app("stop", **spec), namespace)
    wait_ready("stop", namespace, timeout=60)
    apply(app("stop", image="nginx:1.28", **spec), namespace)
    wait_for("the canary serving its pause", lambda: "pause left" in str(
        condition("stop", namespace, "Progressing").get("message")), timeout=60)
    shown = plugin("status", "app/stop", "-n", namespace)
    assert "Canary:       Progressing, step 1/1 (1 pods)" in shown
    assert "Children:     Deployment/stop, Deployment/stop-canary" in shown
    said = plugin("abort", "app/stop", "-n", namespace)
    assert "abort requested" in said
    wait_for("CanaryFailed", lambda: condition("stop", namespace, "Degraded").get("reason") == "CanaryFailed",
             timeout=30)
    print(plugin("status", "app/stop", "-n", namespace))
    assert "aborted by the annotation" in condition("stop", namespace, "Degraded")["message"]
    wait_for("the canary's Deployment gone", lambda: get("deployment", "stop-canary", namespace) is None, timeout=30)
    assert image(get("deployment", "stop", namespace)) == "nginx:1.27"
    annotations = (get("app", "stop", namespace) or {})["metadata"].get("annotations") or {}
    assert "appkeeper.dev/canary" not in annotations  # acted on, then removed
