"""The work loop, as controller-runtime's: workers take App keys from the queue, reconcile one each,
and every result or error maps to exactly one queue action (`next_step`, pure):

- success: forget the failures; come back when the reconcile asked to (`Outcome.requeue_after`);
- a transient error: retry with exponential backoff (never sooner than a Retry-After), and say so in
  the App's status after REPORT_AFTER failures in a row;
- a terminal error (the same request will fail the same way): say so at once, retry at the slowest
  pace only (an RBAC or quota fix is picked up then, or by the next event);
- any other exception (ours): say so at once, retry with backoff; one bad object never stops the others.

The gates a key passes before its reconcile: this process leads (a standby reconciles nothing), the
API server answers (no answer at all holds every worker until a probe hears one), and, sharded, its
shard is still ours (a key whose shard was handed over while it waited is dropped; a hand-over waits
for the reconciles of its shard that run)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import metrics, reasons
from .errors import OperatorError
from .leader import writing_for
from .outcome import Outcome
from .quiet import Repeats, about
from .shards import Shards
from .store import AppKey
from .workqueue import retry_delay

log = logging.getLogger("appkeeper")
T = TypeVar("T")
REPORT_AFTER = 3  # transient failures in a row before the App's status says the API keeps failing
CONTROLLER = "app"  # the controller's name in controller-runtime's metrics


class Reconcile(Protocol):
    def reconcile(self, key: AppKey) -> Outcome: ...

    def report_failure(self, key: AppKey, reason: str, message: str) -> None: ...


class Queue(Protocol):
    async def get(self) -> AppKey: ...

    def done(self, key: AppKey) -> None: ...

    def add_after(self, key: AppKey, delay: float) -> None: ...

    def __len__(self) -> int: ...

    @property
    def taken_urgent_at(self) -> dict[AppKey, float]: ...


@dataclass(frozen=True)
class Step:
    """What the work loop does after one reconcile: come back in `after` seconds (None: only on the
    next event); `attempt`: failures in a row (0: it succeeded); `report`: (reason, message) for the
    App's status; `unreachable`: hold every worker until the API server answers."""

    after: float | None = None
    attempt: int = 0
    report: tuple[str, str] | None = None
    unreachable: bool = False
    why: str = ""


def next_step(result: Outcome | BaseException, failures: int, max_backoff: float, jitter: float = 0.0) -> Step:
    """Pure: the one queue action for a reconcile's `result` (its Outcome or what it raised), after
    `failures` failures in a row before it."""
    if isinstance(result, Outcome):
        return Step(after=result.requeue_after)
    attempt, why = failures + 1, f"{type(result).__name__}: {result}"
    if isinstance(result, OperatorError):
        if result.terminal:
            return Step(max_backoff, attempt, (reasons.API_ERROR, f"the API server refused this App's request: "
                                                                  f"{result}; retrying every {max_backoff:.0f}s"),
                        why=why)
        delay = retry_delay(attempt, result.retry_after, max_backoff, jitter)
        report = (reasons.API_ERROR, f"the API server keeps failing this App's requests: {result}") \
            if attempt == REPORT_AFTER else None
        return Step(delay, attempt, report, result.unreachable, why)
    return Step(retry_delay(attempt, None, max_backoff, jitter), attempt,
                (reasons.INTERNAL_ERROR, f"the operator failed reconciling this App ({why}); it retries with backoff"),
                why=why)


class Controller:
    """Runs `workers` loops of `process_one` over `queue`, reconciles in `pool`'s threads."""

    def __init__(self, reconciler: Reconcile, queue: Queue, pool: Executor | None = None, *,
                 shards: Shards | None = None, max_backoff: float = 300.0,
                 jitter: Callable[[], float] = lambda: random.uniform(-0.2, 0.2)) -> None:
        self.reconciler, self.queue, self.pool, self.shards = reconciler, queue, pool, shards
        self.max_backoff, self.jitter = max_backoff, jitter
        self.leading = asyncio.Event()
        self.api_up = asyncio.Event()  # cleared while the API server is away
        self.failures: dict[AppKey, int] = {}
        self.repeats = Repeats()

    def start(self, workers: int) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self.run(), name=f"reconcile-worker-{i}") for i in range(workers)]

    async def run(self) -> None:
        while True:
            await self.process_one()

    async def process_one(self) -> None:
        """Waits for the gates and a key; reconciles it; does what `next_step` says."""
        await self.leading.wait()
        await self.api_up.wait()
        key = await self.queue.get()
        # Waiting for a key may outlast a gate (a retry that fires while the API server is away):
        # the key is held, not tried, until both are open again.
        await self.leading.wait()
        await self.api_up.wait()
        shard = self._enter(key)
        try:
            if shard is not False:
                await self._process(key, shard)
        finally:
            self.queue.done(key)
            if isinstance(shard, int) and self.shards is not None:
                self.shards.running[shard] -= 1

    def _enter(self, key: AppKey) -> int | bool | None:
        """The key's shard, counted as running (None: not sharded); False: no longer ours."""
        if self.shards is None:
            return None
        if not self.shards.accepts(key):
            return False
        shard = self.shards.of(key)
        self.shards.running[shard] += 1  # checked and counted with no await between: a hand-over waits for it
        return shard

    async def _process(self, key: AppKey, shard: int | None) -> None:
        loop = asyncio.get_running_loop()
        result: Outcome | BaseException
        started = time.monotonic()
        metrics.started(key)
        try:
            result = await loop.run_in_executor(self.pool, _for_shard, shard, self.reconciler.reconcile, key)
        except Exception as e:  # one bad object must never stop the others
            result = e
        finally:
            metrics.finished(key)
        _observe(result, started, self.queue.taken_urgent_at.get(key))
        step = next_step(result, self.failures.get(key, 0), self.max_backoff, self.jitter())
        if step.attempt == 0:
            self.failures.pop(key, None)
        elif isinstance(result, BaseException):
            self._failed(key, step, result)
        if step.after is not None:
            self.queue.add_after(key, step.after)
        if step.report is not None:
            await loop.run_in_executor(self.pool, _for_shard, shard, self.reconciler.report_failure, key, *step.report)

    def _failed(self, key: AppKey, step: Step, error: BaseException) -> None:
        _RETRIES.inc()
        self.failures[key] = step.attempt
        if step.unreachable:
            self.api_up.clear()  # no answer at all: hold every worker until the probe hears one
        if not isinstance(error, OperatorError):
            log.error("reconcile of %s/%s failed", *key, exc_info=error, extra=about(*key))
        # One line per kind of failure while it repeats (an outage fails every App the same way).
        self.repeats.log(log, logging.WARNING, f"{type(error).__name__} {getattr(error, 'status', '')}",
                         "reconcile of %s/%s will retry in %.1fs (attempt %d): %s", *key, step.after or 0.0,
                         step.attempt, step.why, extra=about(*key))

    def take_failed(self) -> set[AppKey]:
        """The Apps waiting out a backoff (the API server is back: retry them now)."""
        failed = set(self.failures)
        self.failures.clear()
        return failed


_TIME = metrics.RECONCILE_TIME.labels(CONTROLLER)  # the labelled series, looked up once
_WORK = metrics.WORKQUEUE_WORK_SECONDS.labels(CONTROLLER)
_RESULTS = {r: metrics.RECONCILE_TOTAL.labels(CONTROLLER, r) for r in ("success", "error", "requeue_after")}
_ERRORS = metrics.RECONCILE_ERRORS.labels(CONTROLLER)
_RETRIES = metrics.WORKQUEUE_RETRIES.labels(CONTROLLER)


def _observe(result: Outcome | BaseException, started: float, urgent_at: float | None) -> None:
    """The reconcile's metrics, under controller-runtime's names; a repair's latency since the watch event."""
    now = time.monotonic()
    _TIME.observe(now - started)
    _WORK.observe(now - started)
    if not isinstance(result, Outcome):
        _RESULTS["error"].inc()
        _ERRORS.inc()
        return
    _RESULTS["requeue_after" if result.requeue_after else "success"].inc()
    if result.repairs and urgent_at is not None:
        metrics.REPAIR_LATENCY.observe(now - urgent_at)
    if result.rolled_back:
        metrics.ROLLBACK_LATENCY.observe(now - started)


def _for_shard(shard: int | None, fn: Callable[..., T], *args: Any) -> T:
    """Runs `fn` in a pool thread whose writes the shard fence judges against `shard`'s Lease."""
    writing_for(shard)
    try:
        return fn(*args)
    finally:
        writing_for(None)

