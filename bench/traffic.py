#!/usr/bin/env python3
"""Requests lost while an App changes (issue 23), on the local cluster's real node.

    python3 hack/localcluster.py up; eval "$(python3 hack/localcluster.py env)"
    .venv/bin/python bench/traffic.py --runs 3 --drain 5,0 --out bench/traffic.json

For each drain (the operator's --drain-seconds) and run, an App of the test-web image (3 replicas,
a readiness probe, a NodePort Service) serves a client that sends without pause, alternately
through the ClusterIP and the NodePort, from this machine, while the App goes through each change:
its image, its env, its ConfigMap, a scale-down 3 -> 1, and a bad image that fail-fast rolls back.
A change ends when the App says Ready for its generation and no pod is terminating. Reported per
change: requests sent and failed, min/median/max over the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from tests.e2e.conftest import get, kubectl, start_operator, stop_operator, wait_for  # noqa: E402

import realnode  # type: ignore[import-not-found]  # noqa: E402

WEB, WEB2 = "appkeeper.local/web:1", "appkeeper.local/web:2"
UNPULLABLE = "127.0.0.1:5999/appkeeper/missing:1"  # nothing listens there: a pull that fails here
PLACE = {"nodeSelector": {realnode.LABEL: "true"},
         "tolerations": [{"key": realnode.LABEL, "operator": "Exists", "effect": "NoSchedule"}]}


def app(name: str, image: str = WEB, replicas: int = 3, env: str = "1") -> dict[str, Any]:
    return {"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "metadata": {"name": name}, "spec": {
        "image": image, "imagePullPolicy": "IfNotPresent", "replicas": replicas, "pod": PLACE,
        "ports": [{"name": "http", "containerPort": 8080, "servicePort": 80}], "service": {"type": "NodePort"},
        "env": [{"name": "VERSION", "value": env}], "envFrom": [{"configMapRef": {"name": f"{name}-config"}}],
        "probes": {"readiness": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1}},
        "rollout": {"failureThreshold": {"imagePullSeconds": 10}}}}


def apply(body: dict[str, Any], ns: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(body))


def settled(name: str, ns: str, replicas: int) -> bool:
    body = get("app", name, ns) or {}
    st = body.get("status") or {}
    if st.get("observedGeneration") != body["metadata"]["generation"] or st.get("phase") != "Ready":
        return False
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", f"appkeeper.dev/app={name}", "-o", "json").stdout)
    return len(pods["items"]) == replicas and not any(p["metadata"].get("deletionTimestamp") for p in pods["items"])


class Client:
    """Sends GETs without pause, alternating between the URLs; counts what fails."""

    def __init__(self, urls: list[str]) -> None:
        self.urls, self.sent, self.failed = urls, 0, 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            url = self.urls[i % len(self.urls)]
            i += 1
            self.sent += 1
            try:
                with urllib.request.urlopen(url, timeout=3) as r:
                    r.read()
            except OSError as e:
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{url}: {e}")

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def changes(name: str, ns: str) -> list[tuple[str, Callable[[], None], int]]:
    return [
        ("image", lambda: apply(app(name, image=WEB2), ns), 3),
        ("env", lambda: apply(app(name, image=WEB2, env="2"), ns), 3),
        ("configmap", lambda: set_config(name, ns, "bye"), 3),
        ("scale 3->1", lambda: apply(app(name, image=WEB2, env="2", replicas=1), ns), 1),
        ("bad image, rolled back", lambda: apply(app(name, image=UNPULLABLE, env="2", replicas=1), ns), 1),
    ]


def set_config(name: str, ns: str, value: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-config"}, "data": {"GREETING": value}}))


def rolled_back(name: str, ns: str) -> bool:
    cond: dict[str, Any] = next((c for c in ((get("app", name, ns) or {}).get("status") or {}).get("conditions") or []
                 if c["type"] == "Degraded"), {})
    return cond.get("reason") == "RolledBack" and settled_pods(name, ns, 1)


def settled_pods(name: str, ns: str, replicas: int) -> bool:
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", f"appkeeper.dev/app={name}", "-o", "json").stdout)
    ready = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")
             and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])]
    return len(pods["items"]) == replicas and len(ready) == replicas


def config_hash(name: str, ns: str) -> str:
    d = get("deployment", name, ns) or {}
    annotations = ((d.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
    return str(annotations.get("appkeeper.dev/config-hash"))


def config_changed(name: str, ns: str, before: str) -> Callable[[], bool]:
    return lambda: config_hash(name, ns) != before


def done(name: str, ns: str, replicas: int) -> Callable[[], bool]:
    return lambda: settled(name, ns, replicas)


def one_run(drain: int, tmp: Path) -> dict[str, dict[str, int]]:
    ns = f"traffic-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    op = start_operator(tmp, f"--namespace={ns}", f"--drain-seconds={drain}")
    out: dict[str, dict[str, int]] = {}
    try:
        name = "web"
        set_config(name, ns, "hello")
        apply(app(name), ns)
        wait_for("the App Ready", lambda: settled(name, ns, 3), timeout=180)
        svc = get("service", name, ns) or {}
        urls = [f"http://{svc['spec']['clusterIP']}/",
                f"http://{realnode.BRIDGE_IP}:{svc['spec']['ports'][0]['nodePort']}/"]
        for what, change, replicas in changes(name, ns):
            template = config_hash(name, ns)
            with Client(urls) as client:
                change()
                if what == "configmap":  # the App's generation does not change: its pod template does
                    wait_for("the new config rolled out", config_changed(name, ns, template), timeout=60)
                if what.startswith("bad image"):
                    wait_for("the rollback", lambda: rolled_back(name, ns), timeout=180)
                else:
                    wait_for(f"{what} done", done(name, ns, replicas), timeout=180)
            out[what] = {"sent": client.sent, "failed": client.failed}
            print(f"drain {drain}s, {what}: {client.sent} sent, {client.failed} failed {client.errors[:2]}",
                  file=sys.stderr)
    finally:
        stop_operator(op)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
    return out


def tag_second_image() -> None:
    """The image change needs a second tag of the test-web image in the real node's containerd."""
    sock = str(realnode.containerd_socket())
    subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", "images", "tag", "--force", WEB, WEB2], check=True,
                   capture_output=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--drain", default="5,0", help="the operator's --drain-seconds values to compare")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "traffic.json")
    args = p.parse_args()
    tag_second_image()
    tmp = Path(f"/tmp/appkeeper-traffic-{uuid.uuid4().hex[:6]}")
    tmp.mkdir()
    results: dict[str, Any] = {"command": " ".join(sys.argv), "runs": args.runs, "by_drain": {}}
    for drain in (int(d) for d in args.drain.split(",")):
        runs = [one_run(drain, tmp) for _ in range(args.runs)]
        summary = {}
        for what in runs[0]:
            failed = [r[what]["failed"] for r in runs]
            sent = [r[what]["sent"] for r in runs]
            summary[what] = {"sent": [min(sent), statistics.median(sent), max(sent)],
                             "failed": [min(failed), statistics.median(failed), max(failed)]}
        results["by_drain"][str(drain)] = {"runs": runs, "min_median_max": summary}
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({d: r["min_median_max"] for d, r in results["by_drain"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
