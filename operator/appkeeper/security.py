"""Which Pod Security Standard an App's pods are built for: `spec.pod.securityProfile`, else the
one its namespace enforces (the `pod-security.kubernetes.io/enforce` label), else baseline. The
namespace is read at most once a minute per namespace; without the right to read it (the chart's
namespaced mode has no cluster-scoped rules), baseline."""

from __future__ import annotations

import time
from collections.abc import Callable

from .api import App
from .kube import ApiError, Kube

ENFORCE = "pod-security.kubernetes.io/enforce"
TTL_SECONDS = 60.0


class Profiles:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cache: dict[str, tuple[str, float]] = {}

    def profile(self, kube: Kube, app: App) -> str:
        if app.spec.pod.security_profile:
            return app.spec.pod.security_profile
        now = self.clock()
        hit = self._cache.get(app.namespace)
        if hit is not None and now - hit[1] < TTL_SECONDS:
            return hit[0]
        try:
            namespace = kube.get("v1", "Namespace", "", app.namespace)
        except ApiError:
            namespace = None  # forbidden (namespaced mode) or unreachable: the lesser standard
        labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
        found = "restricted" if labels.get(ENFORCE) == "restricted" else "baseline"
        self._cache[app.namespace] = (found, now)
        return found
