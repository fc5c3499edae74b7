"""A deduplicating work queue of App keys, as controller-runtime has: a key waits at most once,
is processed by one worker at a time, and is re-queued if it changed while being processed. Two
priorities: an urgent key (a child deleted or drifted: a repair is due) is taken before every
routine one (a resync, a status change), so repairs never wait behind a resync sweep."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from . import metrics

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, name: str = "app") -> None:
        self.name = name
        self._adds = metrics.WORKQUEUE_ADDS.labels(name)  # the labelled series, looked up once
        self._depth = metrics.WORKQUEUE_DEPTH.labels(name)
        self._waited = metrics.WORKQUEUE_QUEUE_SECONDS.labels(name)
        self._added: dict[K, float] = {}  # when each waiting key was first added
        self._urgent_at: dict[K, float] = {}  # when a repair was first asked for, until a reconcile starts
        self.taken_urgent_at: dict[K, float] = {}  # ... and for the key being processed (appkeeper_repair_latency)
        self._urgent: deque[K] = deque()
        self._routine: deque[K] = deque()
        self._ready = asyncio.Semaphore(0)  # one per key waiting
        self._waiting: dict[K, bool] = {}  # key -> urgent
        self._active: set[K] = set()
        self._dirty: dict[K, bool] = {}  # changed while active -> urgent
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, key: K, urgent: bool = False) -> None:
        self._adds.inc()
        if urgent:
            self._urgent_at.setdefault(key, time.monotonic())
        if key in self._active:
            self._dirty[key] = self._dirty.get(key, False) or urgent
        elif key not in self._waiting:
            self._waiting[key] = urgent
            self._added[key] = time.monotonic()
            (self._urgent if urgent else self._routine).append(key)
            self._ready.release()
            self._depth.set(len(self._waiting))
        elif urgent and not self._waiting[key]:  # moves up; its routine entry is skipped when reached
            self._waiting[key] = True
            self._urgent.append(key)

    def add_after(self, key: K, delay: float) -> None:
        """Adds `key` after `delay` seconds; an earlier pending timer for it wins."""
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> K:
        await self._ready.acquire()
        while self._urgent:
            key = self._urgent.popleft()
            if self._waiting.get(key) is True:
                return self._take(key)
        while True:  # a key waits once, so a routine entry still waiting is there
            key = self._routine.popleft()
            if self._waiting.get(key) is False:
                return self._take(key)

    def _take(self, key: K) -> K:
        del self._waiting[key]
        self._active.add(key)
        now = time.monotonic()
        self._waited.observe(now - self._added.pop(key, now))
        self._depth.set(len(self._waiting))
        urgent_at = self._urgent_at.pop(key, None)
        if urgent_at is not None:
            self.taken_urgent_at[key] = urgent_at
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        self.taken_urgent_at.pop(key, None)
        if key in self._dirty:
            self.add(key, self._dirty.pop(key))

    def cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


def retry_delay(attempt: int, retry_after: float | None = None, cap: float = 300.0, jitter: float = 0.0) -> float:
    """Exponential backoff from 0.5 s, capped, spread by `jitter` (a fraction, e.g. random in
    ±0.2) so failed objects do not retry in lockstep; never sooner than the server's Retry-After."""
    delay: float = min(cap, 0.5 * 2.0 ** min(attempt, 16)) * (1 + jitter)
    return max(delay, retry_after or 0.0)


def spread(keys: list[K], window: float) -> list[tuple[K, float]]:
    """A resync of every key, spread evenly over `window` seconds (in hash order, fixed for the process), so
    that N Apps cost N reconciles over the window rather than N at once."""
    ordered = sorted(keys, key=lambda k: hash(k))
    step = window / len(ordered) if ordered else 0.0
    return [(k, i * step) for i, k in enumerate(ordered)]
