"""A canary step's httpGet analysis (spec.rollout.canary.analysis.httpGet), the I/O half of
canary.py: GET requests from the operator straight to each canary pod's IP, counted. Bounded: a
few requests per pod, each with a short timeout, at most MAX_PODS pods, so one App's analysis
cannot hold a worker long."""

from __future__ import annotations

import http.client
import json
import math
import urllib.parse
import urllib.request
from collections.abc import Callable

from .api import HttpCheck, Json, Port, PromCheck

TRIES = 5  # requests per pod
TIMEOUT = 1.0  # seconds per request
MAX_PODS = 4

Get = Callable[[str, int, str], int]  # (ip, port, path) -> HTTP status; raises OSError when there is none


def get_status(ip: str, port: int, path: str) -> int:
    conn = http.client.HTTPConnection(ip, port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"User-Agent": "appkeeper-canary-analysis"})
        return conn.getresponse().status
    finally:
        conn.close()


def http_analysis(check: HttpCheck, ports: tuple[Port, ...], pods: list[Json],
                  get: Get = get_status) -> tuple[str | None, str]:
    """(why the step fails, or None; what was measured, for a person)."""
    port = next(p.container_port for p in ports if p.name == check.port)
    ips = sorted(str(ip) for p in pods if (ip := (p.get("status") or {}).get("podIP")))[:MAX_PODS]
    ok = total = 0
    for ip in ips:
        for _ in range(TRIES):
            total += 1
            try:
                ok += 200 <= get(ip, port, check.path) < 400
            except (OSError, http.client.HTTPException):
                continue  # no answer: a failure
    evidence = f"httpGet {check.path} on port {check.port} of {len(ips)} canary pods: {ok}/{total} succeeded"
    if total == 0:
        return f"{evidence} (no canary pod has an IP)", evidence
    if ok * 100 < check.success_rate * total:
        return f"{evidence}, below {check.success_rate}%", evidence
    return None, evidence


Query = Callable[[str, str], Json]  # (base URL, PromQL) -> the API's `data`; raises OSError or ValueError


def query_prometheus(base: str, query: str) -> Json:
    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=5) as r:  # the operator's own --prometheus-url
        body = json.loads(r.read(1 << 20))
    if body.get("status") != "success":
        raise ValueError(str(body.get("error") or "the query failed"))
    return dict(body["data"])


def prometheus_analysis(check: PromCheck, base: str | None, ask: Query = query_prometheus) -> tuple[str | None, str]:
    """(why the step fails, or None; what was measured)."""
    if not base:
        why = "analysis.prometheus is set but the operator has no Prometheus (--prometheus-url)"
        return why, why
    try:
        data = ask(base, check.query)
    except (OSError, ValueError, KeyError) as e:
        why = f"the Prometheus query failed: {e}"
        return why, why
    result = data.get("result")
    sample = result[0]["value"] if data.get("resultType") == "vector" and result else \
        result if data.get("resultType") == "scalar" else None
    if not sample:
        why = f"the Prometheus query returned no data: {check.query[:200]}"
        return why, why
    value = float(sample[1])
    evidence = f"Prometheus: {check.query[:200]} = {value:g} (threshold {check.threshold:g})"
    if math.isnan(value) or value < check.threshold:
        return f"{evidence}, below the threshold", evidence
    return None, evidence
