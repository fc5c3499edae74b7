"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it:
only the holder reconciles (a standby keeps its watches and caches warm, and writes nothing). A
holder renews every `retry` seconds; if it cannot renew for `renew_deadline` seconds it stops
leading at once (the process exits and its Deployment restarts it). A candidate takes the Lease
when its holder has not renewed it for `lease_duration` seconds, measured on the candidate's own
clock from when it last saw the Lease change (so clock skew between machines does not matter)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from .api import Json
from .kube import ApiError

log = logging.getLogger("appkeeper.leader")
LEASE_API = "coordination.k8s.io/v1"


class LeaseApi(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None: ...
    def create(self, obj: Json) -> Json: ...
    def replace(self, obj: Json) -> Json: ...


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0


def micro_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, kube: LeaseApi, cfg: LeaseConfig, clock: Callable[[], datetime] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.cfg = cfg
        self.clock = clock or (lambda: datetime.now(UTC))
        self.monotonic = monotonic
        self.leading = False
        self.last_renew = 0.0  # monotonic time of our last successful acquire or renew
        self._seen: tuple[str, float] | None = None  # (the Lease's resourceVersion, when it changed)

    def try_acquire_or_renew(self) -> bool:
        """One round: True while we hold the Lease. API errors count as a failed round."""
        try:
            ok = self._round()
        except ApiError as e:
            log.warning("lease %s/%s: %s", self.cfg.namespace, self.cfg.name, e)
            ok = False
        if ok:
            self.last_renew = self.monotonic()
            if not self.leading:
                log.info("%s is now the leader (lease %s/%s)", self.cfg.identity, self.cfg.namespace, self.cfg.name)
        self.leading = ok
        return ok

    def lost(self) -> bool:
        """A leader that could not renew within the renew deadline must stop writing."""
        return self.last_renew > 0 and self.monotonic() - self.last_renew > self.cfg.renew_deadline

    def _round(self) -> bool:
        lease = self.kube.get(LEASE_API, "Lease", self.cfg.namespace, self.cfg.name)
        now = self.clock()
        if lease is None:
            self.kube.create(self._lease(None, now))
            return True
        spec = lease.get("spec") or {}
        rv = lease["metadata"]["resourceVersion"]
        if self._seen is None or self._seen[0] != rv:
            self._seen = (rv, self.monotonic())
        holder = spec.get("holderIdentity") or ""
        expired = self.monotonic() - self._seen[1] > float(spec.get("leaseDurationSeconds") or self.cfg.lease_duration)
        if holder and holder != self.cfg.identity and not expired:
            return False
        self.kube.replace(self._lease(lease, now))
        return True

    def _lease(self, old: Json | None, now: datetime) -> Json:
        spec = dict((old or {}).get("spec") or {})
        mine = spec.get("holderIdentity") == self.cfg.identity
        spec.update(holderIdentity=self.cfg.identity, leaseDurationSeconds=int(self.cfg.lease_duration),
                    renewTime=micro_time(now))
        if not mine:
            spec["acquireTime"] = micro_time(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if old else 0)
        meta: Json = {"name": self.cfg.name, "namespace": self.cfg.namespace}
        if old is not None:
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]  # a concurrent writer gets a 409
        return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": meta, "spec": spec}

    def release(self) -> None:
        """On a clean shutdown, hand the Lease over at once instead of letting it expire."""
        if not self.leading:
            return
        try:
            lease = self.kube.get(LEASE_API, "Lease", self.cfg.namespace, self.cfg.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.cfg.identity:
                body = self._lease(lease, self.clock())
                body["spec"].update(holderIdentity="", leaseDurationSeconds=1)
                self.kube.replace(body)
        except ApiError as e:
            log.warning("could not release lease %s/%s: %s", self.cfg.namespace, self.cfg.name, e)
        self.leading = False
