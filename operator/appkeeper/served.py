"""Ready means served: an App with a Service is Ready only once the Service's EndpointSlices list
its current pods as ready endpoints, so `kubectl wait --for=condition=Ready` then a request works
at once. Pure: the reconcile lists the slices (only when the pods alone would say Ready) and asks.

A pod is Ready a moment before the EndpointSlice controller lists it and kube-proxy routes to it;
an old revision's pods leave the slices as they terminate. Counted: distinct pods of the App's
workload, not terminating, whose endpoint is ready (an unset `ready` means ready, as the API says).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from .api import Json
from .reasons import ENDPOINTS_PENDING

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # the EndpointSlice controller's label: its Service
RECHECK_FIRST, RECHECK_MAX = 1.0, 30.0  # seconds between looks at a Service that does not route yet
# kube-proxy applies a slice change within its minimum sync period (1 s by default) of the last sync:
# Ready waits this long after this process first saw the slices as they are, so a request right
# after Ready is routed. (The slices' last-change-trigger-time annotation is no clock for this: it
# is the oldest change a write folds in, to the second, and often absent; measured, Ready came 0.1 s
# after the slices changed and the new Service refused connections for 0.3 s more.)
ROUTE_SECONDS = 2.0


def slice_selector(service: str) -> str:
    return f"{SERVICE_NAME_LABEL}={service}"


def ready_endpoint_pods(slices: Iterable[Json]) -> set[str]:
    """Names of the pods the slices list as ready endpoints."""
    out = set()
    for s in slices:
        for endpoint in s.get("endpoints") or []:
            ref = endpoint.get("targetRef") or {}
            if ref.get("kind") == "Pod" and (endpoint.get("conditions") or {}).get("ready") is not False:
                out.add(str(ref.get("name")))
    return out


def endpoints_pending(service: str, want: int, pods: Iterable[Json], slices: Iterable[Json]) -> str | None:
    """None when at least `want` of the workload's live pods are ready endpoints of `service`; else
    what is missing, for a person."""
    live = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
    served = len(ready_endpoint_pods(slices) & live)
    if served >= want:
        return None
    return f"{served}/{want} ready pods are endpoints of Service {service}: traffic does not reach the others yet"


def slice_versions(slices: Iterable[Json]) -> tuple[tuple[str, str], ...]:
    """What identifies the slices as they are now: a change of any makes a new one."""
    return tuple(sorted((str(m.get("name")), str(m.get("resourceVersion"))) for s in slices
                        for m in [s.get("metadata") or {}]))


def routed_in(seen_at: datetime, now: datetime) -> float:
    """Seconds until kube-proxy has surely applied the slices first seen as they are at `seen_at` (0: it has)."""
    return max(0.0, ROUTE_SECONDS - (now - seen_at).total_seconds())


def served_recheck(old_status: Json, now: datetime) -> float:
    """Seconds until the slices are asked again (no watch says when they change): soon at first,
    then less often the longer the App has not been Ready (its Ready condition's last transition),
    so a Service that never routes (a broken network) costs a list every 30 s, not every second."""
    ready: Json = next((c for c in old_status.get("conditions") or [] if c.get("type") == "Ready"), {})
    if ready.get("reason") != ENDPOINTS_PENDING or not ready.get("lastTransitionTime"):
        return RECHECK_FIRST
    since = datetime.strptime(ready["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return min(RECHECK_MAX, max(RECHECK_FIRST, (now - since).total_seconds() / 2))


def served(service: str, want: int, pods: Iterable[Json], slices: list[Json], now: datetime,
           seen_at: datetime) -> tuple[str | None, float]:
    """(what keeps the App from being served, for a person; seconds until kube-proxy surely routes
    the last change, when that is all): (None, 0) when a request now reaches every current pod.
    `seen_at`: when this process first saw the slices as they are (memory.Memory.slices_seen)."""
    pending = endpoints_pending(service, want, pods, slices)
    if pending is not None:
        return pending, 0.0
    wait = routed_in(seen_at, now)
    if wait:
        return f"the endpoints of Service {service} changed a moment ago; kube-proxy is routing to them", wait
    return None, 0.0
