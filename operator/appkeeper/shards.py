"""Sharding, the pure part: Apps split into N shards by a stable hash of namespace/name, each shard
held through its own Lease (leader.ShardElector does the I/O). A replica holds at most
ceil(N / live replicas) shards, takes free or expired ones up to that, and gives back the extras
when more replicas come; it reconciles, and keeps in its store, only its shards' Apps."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field

from .store import AppKey


def shard_of(key: AppKey, shards: int) -> int:
    """Stable across processes and versions (Python's own hash() is salted per process)."""
    digest = hashlib.blake2b(f"{key[0]}/{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def limit(shards: int, live: int) -> int:
    """The most shards one replica may hold with `live` replicas alive (itself included)."""
    return math.ceil(shards / max(1, live))


@dataclass(frozen=True)
class ShardLease:
    """What a replica reads of one shard's Lease in a round."""

    holder: str  # "" when released
    expired: bool  # not renewed within its lease duration, by this replica's own clock


@dataclass(frozen=True)
class Plan:
    keep: list[int]  # held, and renewed
    give: list[int]  # held beyond the limit: stop reconciling, then release
    take: list[int]  # free or expired: try to acquire
    lost: list[int]  # held, by our account, but the Lease names another holder


def plan(shards: int, me: str, held: set[int], leases: dict[int, ShardLease], live: int, start: int = 0) -> Plan:
    """One round's decision. `start` spreads replicas' first choices over the shards, so that
    candidates do not all race for shard 0."""
    lost = sorted(i for i in held if i in leases and leases[i].holder != me)
    mine = sorted(i for i in held if i not in lost)
    most = limit(shards, live)
    keep, give = mine[:most], mine[most:]
    free = [i for i in range(shards) if i not in held
            and (i not in leases or not leases[i].holder or leases[i].expired)]
    free.sort(key=lambda i: (i - start) % shards)
    return Plan(keep, give, free[:max(0, most - len(mine))], lost)


@dataclass
class Shards:
    """The shards this process owns now, and the reconciles running in each (a shard is handed
    over only once none runs: no App is ever written by two replicas at once)."""

    count: int
    owned: set[int] = field(default_factory=set)
    running: Counter[int] = field(default_factory=Counter)

    def of(self, key: AppKey) -> int:
        return shard_of(key, self.count)

    def accepts(self, key: AppKey) -> bool:
        return self.of(key) in self.owned
