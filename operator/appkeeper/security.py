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
        return app.spec.pod.security_profile or self.enforced(kube, app.namespace)

    def enforced(self, kube: Kube, namespace: str) -> str:
        """The namespace's enforced standard, as far as the pods' build cares (cached for a minute)."""
        now = self.clock()
        hit = self._cache.get(namespace)
        if hit is not None and now - hit[1] < TTL_SECONDS:
            return hit[0]
        try:
            found_ns = kube.get("v1", "Namespace", "", namespace)
        except ApiError:
            found_ns = None  # forbidden (namespaced mode) or unreachable: the lesser standard
        labels = ((found_ns or {}).get("metadata") or {}).get("labels") or {}
        found = "restricted" if labels.get(ENFORCE) == "restricted" else "baseline"
        self._cache[namespace] = (found, now)
        return found
