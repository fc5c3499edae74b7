"""A deduplicating work queue of App keys, as controller-runtime has: a key waits at most once,
is processed by one worker at a time, and is re-queued if it changed while being processed."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

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
        key = await self._queue.get()
        self._waiting.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

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
