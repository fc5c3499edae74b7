from __future__ import annotations

import asyncio

from appkeeper.workqueue import WorkQueue


def test_dedup_and_requeue_while_active() -> None:
    async def scenario() -> list[str]:
        q: WorkQueue[str] = WorkQueue()
        q.add("a")
        q.add("a")
        q.add("b")
        assert len(q) == 2
        first = await q.get()
        q.add(first)  # changed while being processed: comes back once done
        assert len(q) == 1
        q.done(first)
        seen = [first, await q.get(), await q.get()]
        return seen

    assert asyncio.run(scenario()) == ["a", "b", "a"]


def test_add_after_keeps_the_earliest_timer() -> None:
    async def scenario() -> float:
        q: WorkQueue[str] = WorkQueue()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        q.add_after("a", 0.05)
        q.add_after("a", 5)
        await asyncio.wait_for(q.get(), 1)
        return loop.time() - t0

    assert asyncio.run(scenario()) < 1


def test_a_resync_is_spread_evenly_over_its_window() -> None:
    from appkeeper.workqueue import spread

    keys = [("ns", f"app-{i}") for i in range(1000)]
    planned = spread(keys, 150.0)
    assert sorted(k for k, _ in planned) == sorted(keys)  # every App, once
    delays = sorted(d for _, d in planned)
    assert delays[0] == 0.0
    assert delays[-1] < 150.0
    # At most ceil(N / window) per second: 1,000 Apps over 150 s is 7 a second, never 1,000 at once.
    per_second = [sum(1 for d in delays if s <= d < s + 1) for s in range(150)]
    assert max(per_second) <= 7
    assert spread([], 150.0) == []


def test_urgent_keys_go_first_and_a_waiting_key_moves_up() -> None:
    async def scenario() -> list[str]:
        q: WorkQueue[str] = WorkQueue()
        for key in ("r1", "r2", "r3"):
            q.add(key)  # a resync sweep
        q.add("repair", urgent=True)
        q.add("r3", urgent=True)  # a routine key drifts while it waits: it moves up, once
        assert len(q) == 4
        first = await q.get()
        q.add(first, urgent=True)  # drifted again while being processed
        q.done(first)
        return [first] + [await q.get() for _ in range(4)]

    assert asyncio.run(scenario()) == ["repair", "r3", "repair", "r1", "r2"]
