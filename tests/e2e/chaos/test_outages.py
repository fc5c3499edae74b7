"""Chaos with the API server itself, on the local cluster (its components are killed, frozen and
started again): (c) kube-apiserver killed for 20 s, then etcd frozen for 20 s; (f) a partition
between the operator and the API server longer than the watch window; (g) the CRD deleted and
created again. The operator reaches the API server through a loopback proxy (proxy.py) that can
drop every connection and counts those the operator opens. Figures are printed for bench/chaos.md."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ..conftest import ROOT, Cluster, Operator, items, kubectl, start_operator, stop_operator, wait_condition, wait_for
from .common import SPEC, apply_many, converged
from .proxy import Proxy

OUTAGE = 20.0  # seconds each outage lasts
MAX_RATE = 10.0  # connections per second the operator may open while the API server is away
QUIET_RATE = 5.0  # (j): connections per second while the API server is away, 60 Apps being changed
QUIET_LOG = 1.0  # (j): log lines per second meanwhile


@pytest.fixture
def lc(cluster: Cluster) -> ModuleType:
    if not cluster.local:
        pytest.skip("kills and restarts the local cluster's own components")
    import localcluster  # hack/ is on sys.path (chaos/conftest.py)

    return localcluster


@pytest.fixture
def proxied(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Proxy, Path]]:
    """A proxy to the API server, and a kubeconfig that goes through it."""
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    where = urlsplit(config["clusters"][0]["cluster"]["server"])
    proxy = Proxy((str(where.hostname), int(where.port or 443)))
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"  # in the serving cert
    path = tmp_path / "through-proxy.kubeconfig"
    path.write_text(json.dumps(config))
    yield proxy, path
    proxy.close()


def uids(kind: str, ns: str) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["uid"] for o in items(kind, ns)}


def replaced(ns: str, before: dict[str, dict[str, str]], names: list[str]) -> bool:
    """Every named child exists again, as a new object."""
    for kind, old in before.items():
        now = uids(kind, ns)
        if any(n not in now or now[n] == old[n] for n in names):
            return False
    return True


def requests(op: Operator) -> float:
    return sum(v for k, v in op.metrics().items() if k.startswith("appkeeper_api_requests_total{"))


def outage(proxy: Proxy, op: Operator, seconds: float) -> tuple[float, float]:
    """Wait out an outage already begun; the connections and our own requests per second in it."""
    t0, r0 = time.monotonic(), requests(op)
    time.sleep(seconds)
    t1 = time.monotonic()
    return proxy.connections_between(t0, t1) / (t1 - t0), (requests(op) - r0) / (t1 - t0)


def ready_apps(ns: str, prefix: str, n: int) -> list[str]:
    """n Apps applied at once, waited for until all are Ready; their names."""
    names = [f"{prefix}{i:02d}" for i in range(n)]
    apply_many(ns, names, **SPEC)
    wait_for(f"{n} Apps Ready", lambda: converged(ns, n), timeout=60 + 2 * n, interval=1)
    return names


def test_c_the_api_server_killed_then_etcd_frozen(ns: str, lc: ModuleType, proxied: tuple[Proxy, Path],
                                                  tmp_path: Path) -> None:
    proxy, kubeconfig = proxied
    op = start_operator(tmp_path, f"--namespace={ns}", f"--kubeconfig={kubeconfig}")
    try:
        names = ready_apps(ns, "c", 20)
        lc.signal_component("kube-apiserver", signal.SIGKILL)
        down = outage(proxy, op, OUTAGE)
        lc.restart_component("kube-apiserver")
        assert op.proc.poll() is None, "the operator died with the API server"
        lc.signal_component("etcd", signal.SIGSTOP)
        try:
            frozen = outage(proxy, op, OUTAGE)
        finally:
            lc.signal_component("etcd", signal.SIGCONT)
        t0 = time.monotonic()
        wait_for("20 Apps Ready", lambda: converged(ns, 20), timeout=120, interval=0.5)
        settled = time.monotonic() - t0
        before = {"deployments": uids("deployments", ns)}
        kubectl("delete", "deployment", names[0], "-n", ns)
        t0 = time.monotonic()
        wait_for("the deleted Deployment repaired", lambda: replaced(ns, before, names[:1]), timeout=60)
        repaired = time.monotonic() - t0
        print(f"chaos(c): kube-apiserver killed {OUTAGE:.0f}s: {down[0]:.1f} connections/s, {down[1]:.1f} "
              f"requests/s of our own; etcd frozen {OUTAGE:.0f}s: {frozen[0]:.1f} connections/s, "
              f"{frozen[1]:.1f} requests/s; all Ready {settled:.1f}s after etcd thawed; "
              f"a Deployment deleted then repaired in {repaired:.1f}s")
        assert op.proc.poll() is None, "the operator died while etcd was frozen"
        assert down[0] <= MAX_RATE, "hot loop while the API server was down"
        assert frozen[0] <= MAX_RATE, "hot loop while etcd was frozen"
        assert repaired < 10
    finally:
        stop_operator(op)
    assert "Traceback" not in op.log_text(), "the operator logged a crash"


def written(ns: str, changed: list[str]) -> bool:
    """The operator's part done: every App's status observed at its generation, and the changed
    Apps' Deployments asked for 2 replicas (their pods are the cluster's controllers' part)."""
    apps = items("apps", ns)
    observed = all((a.get("status") or {}).get("observedGeneration") == a["metadata"]["generation"] for a in apps)
    scaled = {d["metadata"]["name"] for d in items("deployments", ns) if d["spec"].get("replicas") == 2}
    return observed and scaled == set(changed)


def log_lines(op: Operator) -> int:
    return len(op.log_text().splitlines())


def test_j_quiet_while_the_api_server_is_away_and_converged_soon_after(
        ns: str, lc: ModuleType, proxied: tuple[Proxy, Path], tmp_path: Path) -> None:
    """60 Apps, 20 of them just changed by a client, when the API server is killed for 20 s: the
    operator opens few connections and writes few log lines meanwhile (its retries are the work
    loop's backoff, repeats are logged once with a count), and has written every App's new spec
    and status 15 s after the API server is back. (Their pods follow when the cluster's own
    controllers have reconnected, which is theirs to do: 60 s and more here.)"""
    proxy, kubeconfig = proxied
    op = start_operator(tmp_path, f"--namespace={ns}", f"--kubeconfig={kubeconfig}")
    try:
        names = ready_apps(ns, "j", 60)
        apply_many(ns, names[:20], **{**SPEC, "replicas": 2})  # in flight when the server dies
        lc.signal_component("kube-apiserver", signal.SIGKILL)
        lines, t0 = log_lines(op), time.monotonic()
        connections, _ = outage(proxy, op, OUTAGE)
        logged = (log_lines(op) - lines) / (time.monotonic() - t0)
        lc.restart_component("kube-apiserver")
        t0 = time.monotonic()
        wait_for("every App observed at its generation, the changed ones' Deployments at 2 replicas",
                 lambda: written(ns, names[:20]), timeout=60, interval=0.5)
        settled = time.monotonic() - t0
        print(f"chaos(j): kube-apiserver killed {OUTAGE:.0f}s with 20 of 60 Apps just changed: "
              f"{connections:.1f} connections/s, {logged:.2f} log lines/s; the operator converged {settled:.1f}s "
              "after it was back")
        assert connections <= QUIET_RATE, "too many connections while the API server was away"
        assert logged <= QUIET_LOG, "too many log lines while the API server was away:\n" + \
            "\n".join(op.log_text().splitlines()[lines:lines + 40])
        assert settled <= 15.0, "slow to converge after the API server came back"
    finally:
        stop_operator(op)


def test_f_children_deleted_in_a_partition_are_back_soon_after_it_heals(
        ns: str, lc: ModuleType, proxied: tuple[Proxy, Path], tmp_path: Path) -> None:
    proxy, kubeconfig = proxied
    names = [f"f{i:02d}" for i in range(20)]
    victims = names[:5]
    op = start_operator(tmp_path, f"--namespace={ns}", f"--kubeconfig={kubeconfig}")  # resync: 300 s
    try:
        apply_many(ns, names, **SPEC)
        wait_for("20 Apps Ready", lambda: converged(ns, 20), timeout=120, interval=1)
        before = {kind: uids(kind, ns) for kind in ("deployments", "services")}
        proxy.partition()
        t_part = time.monotonic()
        kubectl("delete", "deployments,services", *victims, "-n", ns, "--wait=true")
        revision = lc.compact_etcd()  # a watch resuming from before it gets 410 Gone: a relist
        time.sleep(max(0.0, 25 - (time.monotonic() - t_part)))
        proxy.heal()
        t0 = time.monotonic()
        wait_for("the deleted children back", lambda: replaced(ns, before, victims), timeout=60)
        back = time.monotonic() - t0
        apps = wait_for("20 Apps Ready", lambda: converged(ns, 20), timeout=60, interval=0.5)
        print(f"chaos(f): partition of {t0 - t_part:.0f}s (etcd compacted at revision {revision}); "
              f"10 children deleted during it were back {back:.1f}s after it healed")
        assert back < 10
        repairs = {a["metadata"]["name"]: a["status"].get("repairs", {}).get("count", 0) for a in apps}
        assert all(repairs[n] >= 1 for n in victims), repairs
        assert not any(repairs[n] for n in names[5:]), f"a relist counted as a repair: {repairs}"
        assert {d["metadata"]["name"] for d in items("deployments", ns)} == set(names)
        assert op.proc.poll() is None
    finally:
        stop_operator(op)


def readiness(op: Operator) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/readyz", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_g_the_operator_outlives_its_crd(ns: str, crd: str, tmp_path: Path) -> None:
    op = start_operator(tmp_path, f"--namespace={ns}")
    try:
        apply_many(ns, ["g0", "g1"], **SPEC)
        wait_for("2 Apps Ready", lambda: converged(ns, 2), timeout=60)
        kubectl("delete", "crd", crd, "--timeout=120s")
        _, body = wait_for("/readyz to say the CRD is missing",
                           lambda: (r := readiness(op))[0] == 503 and crd in r[1]["state"] and r, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/healthz", timeout=2) as r:
            assert r.status == 200, "liveness must not restart an operator waiting for its CRD"
        assert op.proc.poll() is None
        t0 = time.monotonic()
        kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        wait_condition(f"crd/{crd}", "Established")
        wait_for("/readyz to say it serves again", lambda: readiness(op)[0] == 200, timeout=30)
        apply_many(ns, ["g2"], **SPEC)
        wait_for("a new App Ready", lambda: converged(ns, 1), timeout=60)
        print(f"chaos(g): CRD deleted: /readyz 503 ({body['state']}), the process alive; "
              f"a new App Ready {time.monotonic() - t0:.1f}s after the CRD was created again")
    finally:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        wait_condition(f"crd/{crd}", "Established")
        stop_operator(op)
