"""The work loop (controller.py) with a fake reconciler and a queue that records what it is told:
every result and error class to exactly one queue action, every gate, a shard handed over while a
reconcile of it runs, and the report after N failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from appkeeper import reasons
from appkeeper.controller import REPORT_AFTER, Controller, Step, next_step
from appkeeper.errors import Retry
from appkeeper.kube import ApiError
from appkeeper.outcome import Outcome
from appkeeper.shards import Shards
from appkeeper.store import AppKey

KEY: AppKey = ("demo", "shop")
Result = Outcome | Exception | Callable[[], Outcome]


class FakeQueue:
    def __init__(self) -> None:
        self.keys: asyncio.Queue[AppKey] = asyncio.Queue()
        self.later: list[tuple[AppKey, float]] = []
        self.finished: list[AppKey] = []
        self.taken_urgent_at: dict[AppKey, float] = {}

    async def get(self) -> AppKey:
        return await self.keys.get()

    def done(self, key: AppKey) -> None:
        self.finished.append(key)

    def add_after(self, key: AppKey, delay: float) -> None:
        self.later.append((key, delay))

    def __len__(self) -> int:
        return self.keys.qsize()


class FakeReconciler:
    def __init__(self, *results: Result) -> None:
        self.results = list(results)
        self.calls: list[AppKey] = []
        self.reports: list[tuple[AppKey, str, str]] = []

    def reconcile(self, key: AppKey) -> Outcome:
        self.calls.append(key)
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result() if callable(result) else result

    def report_failure(self, key: AppKey, reason: str, message: str) -> None:
        self.reports.append((key, reason, message))


def run(scenario: Callable[[Controller, FakeQueue], Awaitable[None]], *results: Result,
        shards: Shards | None = None) -> tuple[Controller, FakeQueue, FakeReconciler]:
    reconciler = FakeReconciler(*results)
    holder: dict[str, Any] = {}

    async def main() -> None:
        queue = FakeQueue()
        with ThreadPoolExecutor(2) as pool:
            control = Controller(reconciler, queue, pool, shards=shards, max_backoff=300.0, jitter=lambda: 0.0)
            control.leading.set()
            control.api_up.set()
            holder.update(control=control, queue=queue)
            await asyncio.wait_for(scenario(control, queue), 5)

    asyncio.run(main())
    return holder["control"], holder["queue"], reconciler


async def once(control: Controller, queue: FakeQueue, key: AppKey = KEY) -> None:
    queue.keys.put_nowait(key)
    await control.process_one()


async def idle() -> None:
    """Lets every ready task run until none is (a gate that holds leaves its task waiting)."""
    for _ in range(20):
        await asyncio.sleep(0)


# --- next_step: every result to one action -----------------------------------------------------

def test_success_forgets_and_comes_back_only_when_asked() -> None:
    assert next_step(Outcome(), 2, 300) == Step()
    assert next_step(Outcome(requeue_after=7.5), 0, 300) == Step(after=7.5)


def test_a_transient_error_backs_off_and_reports_on_the_nth_failure() -> None:
    error = ApiError(500, "InternalError", "etcd timeout")
    steps = [next_step(error, n, 300) for n in range(5)]
    assert [s.attempt for s in steps] == [1, 2, 3, 4, 5]
    assert [s.after for s in steps] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert [s.report is not None for s in steps] == [n + 1 == REPORT_AFTER for n in range(5)]
    report = steps[REPORT_AFTER - 1].report
    assert report is not None
    assert report[0] == reasons.API_ERROR
    assert "etcd timeout" in report[1]
    assert not any(s.unreachable for s in steps)


def test_retry_after_is_a_floor_and_the_backoff_has_a_cap() -> None:
    assert next_step(ApiError(429, "TooManyRequests", "slow down", retry_after=42), 0, 300).after == 42
    assert next_step(ApiError(503, "ServiceUnavailable", "x"), 30, 300).after == 300


def test_no_answer_holds_every_worker() -> None:
    step = next_step(ApiError(0, "Unreachable", "connection refused"), 0, 300)
    assert step.unreachable
    assert step.after == 1.0
    assert step.report is None


def test_a_terminal_error_is_reported_at_once_and_retried_slowly() -> None:
    step = next_step(ApiError(403, "Forbidden", "no"), 0, 300)
    assert (step.attempt, step.after) == (1, 300)
    assert step.report is not None
    assert step.report[0] == reasons.API_ERROR
    assert "403" in step.report[1]


def test_a_changed_read_is_retried_soon() -> None:
    step = next_step(Retry("Service shop existed a moment ago and is gone"), 0, 300)
    assert (step.after, step.report, step.unreachable) == (1.0, None, False)


@pytest.mark.parametrize("error", [KeyError("spec"), ZeroDivisionError(), RuntimeError("boom")],
                         ids=lambda e: type(e).__name__)
def test_our_own_bug_is_reported_at_once_and_retried_with_backoff(error: Exception) -> None:
    step = next_step(error, 0, 300)
    assert step.after == 1.0
    assert step.report is not None
    assert step.report[0] == reasons.INTERNAL_ERROR
    assert type(error).__name__ in step.report[1]


# --- process_one: the loop carries the step out --------------------------------------------------

def test_a_success_requeues_as_asked_and_clears_the_failures() -> None:
    async def scenario(control: Controller, queue: FakeQueue) -> None:
        control.failures[KEY] = 2
        await once(control, queue)

    control, queue, reconciler = run(scenario, Outcome(requeue_after=3.0))
    assert reconciler.calls == [KEY]
    assert queue.later == [(KEY, 3.0)]
    assert queue.finished == [KEY]
    assert control.failures == {}


def test_failures_in_a_row_are_reported_once_on_the_nth() -> None:
    async def scenario(control: Controller, queue: FakeQueue) -> None:
        for _ in range(REPORT_AFTER + 1):
            await once(control, queue)

    error = ApiError(500, "InternalError", "etcd timeout")
    control, queue, reconciler = run(scenario, *[error] * (REPORT_AFTER + 1))
    assert [d for _, d in queue.later] == [1.0, 2.0, 4.0, 8.0]
    assert len(reconciler.reports) == 1
    assert reconciler.reports[0][1] == reasons.API_ERROR
    assert control.failures == {KEY: REPORT_AFTER + 1}
    assert queue.finished == [KEY] * (REPORT_AFTER + 1)


def test_a_bug_in_one_app_does_not_stop_the_next() -> None:
    other: AppKey = ("demo", "other")

    async def scenario(control: Controller, queue: FakeQueue) -> None:
        await once(control, queue)
        await once(control, queue, other)

    control, _queue, reconciler = run(scenario, KeyError("spec"), Outcome())
    assert reconciler.calls == [KEY, other]
    assert [(k, r) for k, r, _ in reconciler.reports] == [(KEY, reasons.INTERNAL_ERROR)]
    assert control.failures == {KEY: 1}


def test_a_standby_takes_no_key() -> None:
    async def scenario(control: Controller, queue: FakeQueue) -> None:
        control.leading.clear()
        queue.keys.put_nowait(KEY)
        task = asyncio.create_task(control.process_one())
        await idle()
        assert queue.keys.qsize() == 1  # not taken
        control.leading.set()
        await task

    _, _, reconciler = run(scenario, Outcome())
    assert reconciler.calls == [KEY]


def test_no_answer_holds_the_workers_until_the_api_server_is_back() -> None:
    other: AppKey = ("demo", "other")

    async def scenario(control: Controller, queue: FakeQueue) -> None:
        await once(control, queue)
        assert not control.api_up.is_set()
        queue.keys.put_nowait(other)
        task = asyncio.create_task(control.process_one())
        await idle()
        assert queue.keys.qsize() == 1  # held at the gate
        assert control.take_failed() == {KEY}  # the probe hears the server: retry what failed now
        assert control.failures == {}
        control.api_up.set()
        await task

    _, _, reconciler = run(scenario, ApiError(0, "Unreachable", "refused"), Outcome())
    assert reconciler.calls == [KEY, other]
    assert reconciler.reports == []


def test_a_key_whose_shard_was_handed_over_while_it_waited_is_dropped() -> None:
    shards = Shards(4)
    shards.owned = set(range(4)) - {shards.of(KEY)}

    async def scenario(control: Controller, queue: FakeQueue) -> None:
        await once(control, queue)

    _, queue, reconciler = run(scenario, Outcome(), shards=shards)
    assert reconciler.calls == []
    assert queue.finished == [KEY]
    assert shards.running[shards.of(KEY)] == 0


def test_a_hand_over_waits_for_the_reconcile_of_its_shard_that_runs() -> None:
    shards = Shards(4)
    shard = shards.of(KEY)
    shards.owned = {shard}
    started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow() -> Outcome:
        started.set()
        release.wait(5)
        return Outcome()

    async def scenario(control: Controller, queue: FakeQueue) -> None:
        task = asyncio.create_task(once(control, queue))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        shards.owned.discard(shard)  # the hand-over begins: it must wait while this counts 1
        seen.append(shards.running[shard])
        release.set()
        await task
        seen.append(shards.running[shard])

    _, _, reconciler = run(scenario, slow, shards=shards)
    assert seen == [1, 0]
    assert reconciler.calls == [KEY]


def test_a_retry_that_fires_while_the_api_server_is_away_is_held_not_tried() -> None:
    async def scenario(control: Controller, queue: FakeQueue) -> None:
        task = asyncio.create_task(control.process_one())
        await idle()  # the worker passed the gates and waits for a key
        control.api_up.clear()  # the server goes away meanwhile
        queue.keys.put_nowait(KEY)  # a retry fires
        await idle()
        assert queue.keys.qsize() == 0  # taken, but held at the gate
        assert not control.reconciler.calls  # type: ignore[attr-defined]
        control.api_up.set()
        await task

    _, queue, reconciler = run(scenario, Outcome())
    assert reconciler.calls == [KEY]
    assert queue.finished == [KEY]


def test_a_repair_is_timed_from_the_event_that_asked_for_it() -> None:
    from appkeeper import metrics

    def count() -> float:
        return sum(s.value for m in metrics.REPAIR_LATENCY.collect() for s in m.samples if s.name.endswith("_count"))

    before = count()

    async def scenario(control: Controller, queue: FakeQueue) -> None:
        queue.taken_urgent_at[KEY] = 0.0  # the watch showed the deletion (at monotonic 0)
        await once(control, queue)

    run(scenario, Outcome(repairs=["ServiceDeleted"]))
    assert count() == before + 1


def test_a_rollback_is_timed_and_a_running_reconcile_shows_in_the_in_flight_gauges() -> None:
    from appkeeper import metrics

    def sample(name: str) -> float:
        return sum(s.value for m in metrics.REGISTRY.collect() for s in m.samples if s.name == name)

    before = sample("appkeeper_rollback_latency_seconds_count")
    seen: list[float] = []

    def slow() -> Outcome:
        seen.append(sample("workqueue_longest_running_processor_seconds"))
        return Outcome(rolled_back=True)

    async def scenario(control: Controller, queue: FakeQueue) -> None:
        metrics.INFLIGHT[("stuck", "app")] = 0.0  # a reconcile running since monotonic 0
        try:
            await once(control, queue)
        finally:
            metrics.INFLIGHT.pop(("stuck", "app"), None)

    run(scenario, slow)
    assert sample("appkeeper_rollback_latency_seconds_count") == before + 1
    assert seen[0] > 1.0  # the stuck one shows, however long the machine has been up
    assert sample("workqueue_unfinished_work_seconds") == 0.0  # nothing runs now
