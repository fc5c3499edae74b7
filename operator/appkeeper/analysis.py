"""A canary step's analyses (spec.rollout.canary.analysis), the I/O half of canary.py: GET
requests from the operator straight to each canary pod's IP, counted; a PromQL query to the
operator's Prometheus. A tenant writes both, so both are bounded: a few requests per pod, at most
MAX_PODS pods, and the whole of either within BUDGET seconds of a worker (what did not answer in
time counts as failed), so no App's canary holds a worker long."""

from __future__ import annotations

import http.client
import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

from .api import HttpCheck, Json, Port, PromCheck

TRIES = 5  # requests per pod
TIMEOUT = 1.0  # seconds per request, at most
BUDGET = 2.0  # seconds for a whole analysis
MAX_PODS = 4

Get = Callable[[str, int, str, float], int]  # (ip, port, path, timeout) -> HTTP status; OSError: none


def get_status(ip: str, port: int, path: str, timeout: float = TIMEOUT) -> int:
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "appkeeper-canary-analysis"})
        return conn.getresponse().status
    finally:
        conn.close()


def http_analysis(check: HttpCheck, ports: tuple[Port, ...], pods: list[Json], get: Get = get_status,
                  clock: Callable[[], float] = time.monotonic) -> tuple[str | None, str]:
    """(why the step fails, or None; what was measured, for a person)."""
    port = next(p.container_port for p in ports if p.name == check.port)
    ips = sorted(str(ip) for p in pods if (ip := (p.get("status") or {}).get("podIP")))[:MAX_PODS]
    ok = total = 0
    deadline = clock() + BUDGET
    for ip in ips:
        for _ in range(TRIES):
            total += 1
            left = deadline - clock()
            if left <= 0:
                continue  # out of time: a failure
            try:
                ok += 200 <= get(ip, port, check.path, min(TIMEOUT, left)) < 400
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
    # Prometheus stops the query itself at the budget, and the client gives up a moment later.
    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query, 'timeout': f'{BUDGET:g}s'})}"
    with urllib.request.urlopen(url, timeout=BUDGET + 0.5) as r:  # the operator's own --prometheus-url
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
