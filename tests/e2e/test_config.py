"""Config rollouts against a real API server (KWOK pods): a ConfigMap the pods use is snapshotted,
an edit rolls the pods, a burst of edits rolls them once or twice, a missing one is said."""

from __future__ import annotations

import json
import time
from typing import Any

from .conftest import Operator, app, apply, get, items, kubectl, wait_for
from .test_operator import condition, wait_ready

USES: dict[str, Any] = {
    "replicas": 1,
    "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
}


def settings(namespace: str, mode: str) -> None:
    apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": mode}},
          namespace)


def snapshot_in_template(namespace: str, name: str) -> str:
    deployment = get("deployment", name, namespace) or {}
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return str(env[0]["valueFrom"]["configMapKeyRef"]["name"])


def template_hashes(namespace: str, name: str) -> set[str]:
    return {rs["metadata"]["labels"]["pod-template-hash"]
            for rs in items("replicasets", namespace, f"appkeeper.dev/app={name}")}


def test_an_edit_rolls_the_pods_onto_a_new_snapshot(operator: Operator, namespace: str) -> None:
    settings(namespace, "fast")
    apply(app("cfg", **USES), namespace)
    wait_ready("cfg", namespace)
    first = snapshot_in_template(namespace, "cfg")
    snap = get("configmap", first, namespace) or {}
    assert (snap.get("immutable"), snap.get("data")) == (True, {"mode": "fast"})
    assert snap["metadata"]["ownerReferences"][0]["name"] == "cfg"
    settings(namespace, "slow")
    t0 = time.monotonic()
    second = wait_for("a new snapshot in the template",
                      lambda: (s := snapshot_in_template(namespace, "cfg")) != first and s, timeout=30)
    print(f"a ConfigMap edit reached the pod template in {time.monotonic() - t0:.1f}s (debounce 3s)")
    assert (get("configmap", second, namespace) or {}).get("data") == {"mode": "slow"}
    assert get("configmap", first, namespace) is not None  # kept for a rollback


def test_twenty_edits_in_ten_seconds_roll_the_pods_a_few_times(operator: Operator, namespace: str) -> None:
    settings(namespace, "v0")
    apply(app("burst", **USES), namespace)
    wait_ready("burst", namespace)
    before = template_hashes(namespace, "burst")
    t0 = time.monotonic()
    for i in range(1, 21):
        patch = json.dumps({"data": {"mode": f"v{i}"}})
        kubectl("patch", "configmap", "settings", "-n", namespace, "--type=merge", "-p", patch)
        time.sleep(max(0.0, t0 + i * 0.5 - time.monotonic()))
    final = wait_for("the last edit in the template", lambda: (get("configmap", snapshot_in_template(
        namespace, "burst"), namespace) or {}).get("data") == {"mode": "v20"}, timeout=30)
    assert final
    rollouts = len(template_hashes(namespace, "burst") - before)
    print(f"20 ConfigMap edits in {time.monotonic() - t0:.1f}s rolled the pods {rollouts} times")
    assert 1 <= rollouts <= 3


def test_a_missing_configmap_is_said(operator: Operator, namespace: str) -> None:
    apply(app("nocfg", **USES), namespace)
    reason = wait_for("ConfigMissing", lambda: condition("nocfg", namespace, "Degraded").get("reason")
                      == "ConfigMissing" and condition("nocfg", namespace, "Degraded"), timeout=30)
    assert reason["message"] == "ConfigMap settings (env MODE) not found; the pods cannot start until it exists"
    settings(namespace, "late")
    wait_ready("nocfg", namespace)
