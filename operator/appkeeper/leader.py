"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it:
only the holder reconciles (a standby keeps its watches and caches warm, and writes nothing). A
holder renews every `retry` seconds; if it cannot renew for `renew_deadline` seconds it stops
leading at once (the process exits and its Deployment restarts it). A candidate takes the Lease
when its holder has not renewed it for `lease_duration` seconds, measured on the candidate's own
clock from when it last saw the Lease change (so clock skew between machines does not matter)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from .api import Json
from .kube import ApiError, Fenced
from .shards import ShardLease, plan

log = logging.getLogger("appkeeper.leader")
LEASE_API = "coordination.k8s.io/v1"


class LeaseApi(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None: ...
    def create(self, obj: Json) -> Json: ...
    def replace(self, obj: Json) -> Json: ...


class ShardLeaseApi(LeaseApi, Protocol):
    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[Json]: ...
    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str | None = None) -> bool: ...


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


def lease_body(cfg: LeaseConfig, name: str, old: Json | None, now: datetime,
               labels: dict[str, str] | None = None) -> Json:
    """The Lease `name` held by us from `now`: renewed if it was ours, acquired otherwise."""
    spec = dict((old or {}).get("spec") or {})
    mine = spec.get("holderIdentity") == cfg.identity
    spec.update(holderIdentity=cfg.identity, leaseDurationSeconds=int(cfg.lease_duration), renewTime=micro_time(now))
    if not mine:
        spec["acquireTime"] = micro_time(now)
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if old else 0)
    meta: Json = {"name": name, "namespace": cfg.namespace}
    if labels:
        meta["labels"] = labels
    if old is not None:
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]  # a concurrent writer gets a 409
    return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": meta, "spec": spec}


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
        started = self.monotonic()  # the renewal counts from when it was sent, not from the answer
        try:
            ok = self._round()
        except ApiError as e:
            log.warning("lease %s/%s: %s", self.cfg.namespace, self.cfg.name, e)
            ok = False
        if ok:
            self.last_renew = started
            if not self.leading:
                log.info("%s is now the leader (lease %s/%s)", self.cfg.identity, self.cfg.namespace, self.cfg.name)
        self.leading = ok
        return ok

    def lost(self) -> bool:
        """A leader that could not renew within the renew deadline must stop writing."""
        return self.last_renew > 0 and self.monotonic() - self.last_renew > self.cfg.renew_deadline

    def fence(self) -> None:
        """Before a write: raises Fenced unless we lead and renewed within the renew deadline. Another
        replica takes the Lease only `lease_duration` after it saw our last renewal, later than that."""
        if not (self.leading and self.monotonic() - self.last_renew < self.cfg.renew_deadline):
            raise Fenced(f"{self.cfg.identity} no longer provably holds lease {self.cfg.namespace}/{self.cfg.name}")

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
        return lease_body(self.cfg, self.cfg.name, old, now)

    def release(self) -> None:
        """On a clean shutdown, hand the Lease over at once instead of letting it expire."""
        if not self.leading:
            return
        hand_over(self.kube, self.cfg, self.cfg.name, self.clock())
        self.leading = False


def hand_over(kube: LeaseApi, cfg: LeaseConfig, name: str, now: datetime) -> None:
    """Release the Lease `name` if we still hold it, so a candidate takes it at once instead of
    waiting for it to expire. Best effort: a failure only means the wait."""
    try:
        lease = kube.get(LEASE_API, "Lease", cfg.namespace, name)
        if lease and _holder(lease) == cfg.identity:
            body = lease_body(cfg, name, lease, now, lease["metadata"].get("labels"))
            body["spec"].update(holderIdentity="", leaseDurationSeconds=1)
            kube.replace(body)
    except ApiError as e:
        log.warning("could not release lease %s/%s: %s", cfg.namespace, name, e)


_writing = threading.local()  # the shard whose App the calling thread reconciles (writing_for)


def writing_for(shard: int | None) -> None:
    """The calling thread now writes for an App of `shard` (None: for none)."""
    _writing.shard = shard


LABEL_GROUP = "appkeeper.dev/lease-group"  # the shard and member Leases of one deployment of appkeeper
LABEL_ROLE = "appkeeper.dev/lease-role"  # shard, or member (a replica saying it is alive)
FORGET_MEMBER_AFTER = 4  # lease durations: a dead replica's member Lease is deleted after this long


@dataclass(frozen=True)
class Round:
    taken: list[int]  # acquired in this round: fill the store, then reconcile
    give: list[int]  # held beyond our share: stop reconciling, wait, then release()
    lost: list[int]  # another replica holds it: stop at once


class ShardElector:
    """Holds some of N shard Leases (`<name>-shard-<i>`) and renews one member Lease
    (`<name>-member-<hash>`) by which the replicas count each other. One LIST of the group's Leases
    a round, then a PUT per Lease held or taken. Expiry is judged as LeaderElector judges it: by
    our own clock, from when we saw the Lease last change."""

    def __init__(self, kube: ShardLeaseApi, cfg: LeaseConfig, shards: int,
                 clock: Callable[[], datetime] | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.kube, self.cfg, self.shards = kube, cfg, shards
        self.clock = clock or (lambda: datetime.now(UTC))
        self.monotonic = monotonic
        self.held: dict[int, float] = {}  # shard -> monotonic time of our last acquire or renew
        self.next_expiry: float | None = None  # when another replica's Lease next expires (monotonic)
        self._seen: dict[str, tuple[str, float]] = {}  # Lease name -> (resourceVersion, when it changed)
        digest = hashlib.blake2b(cfg.identity.encode(), digest_size=8).digest()
        self.member = f"{cfg.name}-member-{digest.hex()[:10]}"
        self.start = int.from_bytes(digest, "big") % shards

    def shard_lease(self, shard: int) -> str:
        return f"{self.cfg.name}-shard-{shard}"

    def round(self) -> Round:
        """Renew what we hold, take what is free up to our share, say what to give back."""
        started = self.monotonic()  # a renewal counts from before it was sent
        listed = {o["metadata"]["name"]: o for o in
                  self.kube.list(LEASE_API, "Lease", self.cfg.namespace, f"{LABEL_GROUP}={self.cfg.name}")}
        now = self.monotonic()
        for name, lease in listed.items():
            rv = lease["metadata"]["resourceVersion"]
            if name not in self._seen or self._seen[name][0] != rv:
                self._seen[name] = (rv, now)
        for name in [n for n in self._seen if n not in listed]:
            del self._seen[name]
        self._write(self.member, listed.get(self.member), "member")
        live = 1 + sum(1 for name, lease in listed.items()
                       if name != self.member and _role(lease) == "member" and not self._expired(lease, now))
        self._forget_dead_members(listed, now)
        leases = {i: ShardLease(_holder(found), self._expired(found, now))
                  for i in range(self.shards) if (found := listed.get(self.shard_lease(i))) is not None}
        decided = plan(self.shards, self.cfg.identity, set(self.held), leases, live, self.start)
        # A dead replica's member Lease raises our share, its shard Leases free its shards: both
        # are worth a look as soon as they expire. While they are renewed, that is never sooner
        # than a retry period away.
        self.next_expiry = min((self._seen[name][1] + self.cfg.lease_duration for name, lease in listed.items()
                                if name != self.member and _holder(lease) not in ("", self.cfg.identity)
                                and not self._expired(lease, now)), default=None)
        for i in decided.lost:
            del self.held[i]
        for i in decided.keep + decided.give:  # a shard being given back is renewed until it is released
            if self._write(self.shard_lease(i), listed.get(self.shard_lease(i)), "shard"):
                self.held[i] = started
        taken = [i for i in decided.take if self._write(self.shard_lease(i), listed.get(self.shard_lease(i)), "shard")]
        for i in taken:
            self.held[i] = started
        return Round(taken, decided.give, decided.lost)

    def pause(self) -> float:
        """Seconds until the next round: the retry period, or less when another replica's Lease is
        about to expire, so that its shards are taken as soon as they may be."""
        if self.next_expiry is None:
            return self.cfg.retry
        return max(0.1, min(self.cfg.retry, self.next_expiry - self.monotonic() + 0.05))

    def lost(self) -> bool:
        """A shard not renewed within the renew deadline: no write may follow (the process exits)."""
        now = self.monotonic()
        return any(now - renewed > self.cfg.renew_deadline for renewed in self.held.values())

    def fence(self) -> None:
        """Before a write for an App of the calling thread's shard (`writing_for`): raises Fenced
        unless that shard is held and was renewed within the renew deadline."""
        shard = getattr(_writing, "shard", None)
        renewed = self.held.get(shard) if shard is not None else None
        if renewed is None or self.monotonic() - renewed >= self.cfg.renew_deadline:
            raise Fenced(f"{self.cfg.identity} no longer provably holds shard {shard}")

    def release(self, shard: int) -> None:
        """Hands one shard over at once (its reconciles have stopped)."""
        self.held.pop(shard, None)
        hand_over(self.kube, self.cfg, self.shard_lease(shard), self.clock())

    def release_all(self) -> None:
        for shard in list(self.held):
            self.release(shard)
        try:
            self.kube.delete(LEASE_API, "Lease", self.cfg.namespace, self.member)
        except ApiError as e:
            log.warning("could not delete lease %s/%s: %s", self.cfg.namespace, self.member, e)

    def _expired(self, lease: Json, now: float) -> bool:
        seen = self._seen.get(lease["metadata"]["name"])
        duration = float((lease.get("spec") or {}).get("leaseDurationSeconds") or self.cfg.lease_duration)
        return seen is None or now - seen[1] > duration

    def _write(self, name: str, old: Json | None, role: str) -> bool:
        """Create or renew (acquire, if it was not ours) the Lease `name`; False if another got it first."""
        body = lease_body(self.cfg, name, old, self.clock(), {LABEL_GROUP: self.cfg.name, LABEL_ROLE: role})
        try:
            if old is None:
                self.kube.create(body)
            else:
                self.kube.replace(body)
        except ApiError as e:
            if e.status != 409:
                log.warning("lease %s/%s: %s", self.cfg.namespace, name, e)
            return False
        return True

    def _forget_dead_members(self, listed: dict[str, Json], now: float) -> None:
        for name, lease in listed.items():
            seen = self._seen[name]
            if _role(lease) == "member" and name != self.member \
                    and now - seen[1] > FORGET_MEMBER_AFTER * self.cfg.lease_duration:
                try:
                    self.kube.delete(LEASE_API, "Lease", self.cfg.namespace, name, lease["metadata"].get("uid"))
                except ApiError as e:
                    log.info("could not delete the dead replica's lease %s: %s", name, e)


def _holder(lease: Json) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _role(lease: Json) -> str:
    return str((lease["metadata"].get("labels") or {}).get(LABEL_ROLE) or "")
