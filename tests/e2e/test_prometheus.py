"""A real Prometheus (Debian's package, on loopback) scrapes the operator every second, with the
chart's alert rules loaded: the per-App condition metric and the repair histogram answer queries,
the rules evaluate, and every query of the chart's dashboard returns data. The operator is given
that Prometheus for canary analyses (--prometheus-url): a query above its threshold promotes, one
below aborts."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, Operator, app, apply, free_port, get, kubectl, start_operator, stop_operator, wait_for
from .test_operator import condition, status, wait_ready

CHART_FILES = ROOT / "charts" / "appkeeper" / "files"


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])


PROMETHEUS_PORT = free_port()  # chosen first: the operator is told it, then Prometheus scrapes the operator


@pytest.fixture(scope="module")
def operator(crd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = start_operator(tmp_path_factory.mktemp("operator"), f"--prometheus-url=http://127.0.0.1:{PROMETHEUS_PORT}")
    yield op
    stop_operator(op)


@pytest.fixture(scope="module")
def prometheus(operator: Operator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "no prometheus: make prometheus (Debian's package) installs it"
    home = tmp_path_factory.mktemp("prometheus")
    port = PROMETHEUS_PORT
    (home / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(CHART_FILES / "alerts.yaml")],
        "scrape_configs": [{"job_name": "appkeeper",
                            "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"]}]}]}))
    log = (home / "prometheus.log").open("wb")
    proc = subprocess.Popen([binary, f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(port)

    def up() -> bool:
        if proc.poll() is not None:
            said = (home / "prometheus.log").read_text()[-2000:]
            raise AssertionError(f"prometheus exited {proc.returncode}: {said}")
        try:
            return bool(prom.query('up{job="appkeeper"} == 1'))
        except OSError:
            return False

    try:
        wait_for("Prometheus scraping the operator", up, timeout=60)
        yield prom
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_prometheus_reads_an_apps_conditions_and_its_repair_latency(prometheus: Prometheus, namespace: str) -> None:
    apply(app("seen", ports=[{"name": "http", "containerPort": 8080}]), namespace)
    wait_ready("seen", namespace, timeout=60)
    ready = f'appkeeper_app_condition{{namespace="{namespace}",name="seen",type="Ready",status="True"}}'
    [sample] = wait_for("the App's Ready condition in Prometheus", lambda: prometheus.query(f"{ready} == 1"),
                        timeout=30)
    assert sample["metric"]["job"] == "appkeeper"
    kubectl("delete", "service", "seen", "-n", namespace)
    wait_for("the Service put back", lambda: get("service", "seen", namespace) is not None, timeout=30)
    latency = wait_for("a repair in the histogram", lambda: prometheus.query(
        "histogram_quantile(0.99, sum by (le) (increase(appkeeper_repair_latency_seconds_bucket[1m]))) > 0"),
        timeout=30)
    seconds = float(latency[0]["value"][1])
    print(f"repair latency p99 over the last minute, as Prometheus computes it: {seconds * 1000:.0f} ms")
    assert seconds < 5


def test_the_alert_rules_load_and_every_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    groups = prometheus.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 6
    assert {r["health"] for r in rules} == {"ok"}, [r.get("lastError") for r in rules]
    board = json.loads((CHART_FILES / "dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]

    missing: list[str] = []

    def answered() -> bool:
        missing[:] = [e for e in exprs if not prometheus.query(e)]
        return not missing

    try:
        wait_for("every panel's query to return data", answered, timeout=60)
    except AssertionError as e:
        raise AssertionError(f"{e}; no data: {missing}") from None
    print(f"{len(exprs)} dashboard queries, each with data; {len(rules)} alert rules healthy")


def test_nothing_listens_beyond_loopback(prometheus: Prometheus) -> None:
    listening = Path("/proc/net/tcp").read_text()
    port = int(prometheus.url.rsplit(":", 1)[1])
    local = [line.split()[1] for line in listening.splitlines()[1:] if line.split()[3] == "0A"]
    mine = [a for a in local if int(a.split(":")[1], 16) == port]
    assert mine == ["0100007F:" + f"{port:04X}"]  # 127.0.0.1 only


def test_a_canary_is_judged_by_a_prometheus_query(prometheus: Prometheus, namespace: str) -> None:
    ready = f'appkeeper_app_condition{{namespace="{namespace}",name="judged",type="Ready",status="True"}}'
    for name, query, passes in (("judged", f"sum({ready})", True), ("refused", "vector(0.5)", False)):
        spec = {"replicas": 2, "rollout": {"canary": {"steps": [{"replicas": 1, "pause": "1s"}], "analysis": {
            "prometheus": {"query": query, "threshold": 1}}}}}
        apply(app(name, **spec), namespace)
        wait_ready(name, namespace, timeout=60)
        apply(app(name, image="nginx:1.28", **spec), namespace)
        phase = wait_for(f"{name}'s canary judged", lambda n=name: (st := (status(n, namespace).get("canary") or {}))
                         .get("phase") in ("Promoted", "Aborted") and st, timeout=90)
        print(f"{name}: {phase['phase']}: {phase['judged']}")
        assert phase["phase"] == ("Promoted" if passes else "Aborted")
        assert "Prometheus: " in phase["judged"]
        if not passes:
            assert "vector(0.5) = 0.5 (threshold 1), below the threshold" in condition(name, namespace, "Degraded")[
                "message"]
