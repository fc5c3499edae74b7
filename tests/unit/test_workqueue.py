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
