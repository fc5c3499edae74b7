"""Sharding: the stable hash, the share each replica may hold, the round's decision as a table, and
replicas electing shards on the fake API with an injected clock (join, hand-over, a replica dying)."""

from __future__ import annotations

from collections import Counter

import pytest

from appkeeper.leader import LeaseConfig, ShardElector
from appkeeper.shards import Plan, ShardLease, Shards, limit, plan, shard_of
from appkeeper.store import Store

from .conftest import NOW
from .fakekube import FakeKube
from .test_leader import Clock


def test_the_hash_is_pinned_and_spreads_evenly() -> None:
    # Pinned: a version that hashed differently would disagree with the last one during a rolling upgrade.
    assert [shard_of(("default", f"app{i}"), 6) for i in range(8)] == [5, 5, 2, 3, 4, 5, 1, 5]
    counts = Counter(shard_of((f"ns{i % 7}", f"app-{i}"), 6) for i in range(6000))
    assert sorted(counts) == list(range(6))
    assert all(850 <= n <= 1150 for n in counts.values()), counts


@pytest.mark.parametrize(("shards", "live", "most"), [(6, 1, 6), (6, 2, 3), (6, 3, 2), (6, 4, 2), (6, 7, 1),
                                                       (6, 0, 6)])
def test_a_replica_holds_at_most_its_share(shards: int, live: int, most: int) -> None:
    assert limit(shards, live) == most


FREE, EXPIRED = ShardLease("", False), ShardLease("b", True)


def other(holder: str = "b") -> ShardLease:
    return ShardLease(holder, False)


@pytest.mark.parametrize(("held", "leases", "live", "want"), [
    # alone, nothing exists yet: take everything
    (set(), {}, 1, Plan([], [], [0, 1, 2, 3], [])),
    # a second replica appears: keep half, give the rest back
    ({0, 1, 2, 3}, {i: other("a") for i in range(4)}, 2, Plan([0, 1], [2, 3], [], [])),
    # a newcomer takes only what is free or expired, up to its share
    (set(), {0: other(), 1: FREE, 2: EXPIRED, 3: other()}, 2, Plan([], [], [1, 2], [])),
    (set(), {0: other(), 1: FREE, 2: FREE, 3: FREE}, 2, Plan([], [], [1, 2], [])),
    # our Lease now names someone else: lost, never renewed
    ({0, 1}, {0: other("a"), 1: other("b")}, 2, Plan([0], [], [2], [1])),
    # below our share with nothing free: wait
    ({0}, {0: other("a"), 1: other(), 2: other(), 3: other()}, 2, Plan([0], [], [], [])),
])
def test_each_round_decides_from_the_leases(held: set[int], leases: dict[int, ShardLease], live: int,
                                            want: Plan) -> None:
    assert plan(4, "a", held, leases, live) == want


def test_candidates_start_at_different_shards() -> None:
    assert plan(4, "a", set(), {}, 2, start=3).take == [3, 0]


def test_a_sharded_store_keeps_only_its_shards_apps() -> None:
    shards = Shards(6, owned={5})
    store = Store(shards.accepts)
    mine, theirs = ("default", "app0"), ("default", "app2")  # shards 5 and 2 (the pinned table above)

    def body(key: tuple[str, str]) -> dict[str, object]:
        return {"kind": "App", "metadata": {"namespace": key[0], "name": key[1], "uid": key[1], "resourceVersion": "1"}}

    def child(key: tuple[str, str]) -> dict[str, object]:
        return {"kind": "Service", "metadata": {"namespace": key[0], "name": key[1], "uid": "s" + key[1],
                                                "resourceVersion": "2", "labels": {"appkeeper.dev/app": key[1]}}}

    assert store.put_app(body(mine))
    assert not store.put_app(body(theirs))
    assert store.put_child(child(mine)) == mine
    assert store.put_child(child(theirs)) is None
    assert store.app_keys() == [mine]
    shards.owned = {2}
    assert store.keep_only(shards.accepts) == [mine]  # handed over: forgotten, children too
    assert store.app_keys() == []
    assert store.children(mine) == {}


def electors(kube: FakeKube, clock: Clock, *names: str) -> dict[str, ShardElector]:
    return {n: ShardElector(kube, LeaseConfig("ops", "ak", n), 6,  # type: ignore[arg-type]
                            clock=lambda: NOW, monotonic=clock) for n in names}


def run_round(e: ShardElector) -> None:
    """One round as the operator runs it: what it must give back is released at once (no reconciles run here)."""
    for shard in e.round().give:
        e.release(shard)


def holders(kube: FakeKube) -> Counter[str]:
    return Counter(str(o["spec"]["holderIdentity"]) for (k, _, name), o in kube.objects.items()
                   if k == "Lease" and "-shard-" in name)


def test_replicas_share_the_shards_and_take_over_from_a_dead_one() -> None:
    kube, clock = FakeKube(), Clock()
    e = electors(kube, clock, "a", "b", "c")
    run_round(e["a"])
    assert holders(kube) == {"a": 6}  # alone: everything
    for _ in range(3):  # b and c join; a sees them and gives back its extras, which they take
        clock.t += 2
        for n in ("b", "c", "a"):
            run_round(e[n])
    assert holders(kube) == {"a": 2, "b": 2, "c": 2}
    assert sorted(set(e["a"].held) | set(e["b"].held) | set(e["c"].held)) == list(range(6))
    taken_from_c = set(e["c"].held)
    for _ in range(10):  # c dies: 20 s without a renewal (expired 15 s after a and b last saw it change)
        clock.t += 2
        for n in ("a", "b"):
            run_round(e[n])
    assert e["c"].lost()  # had it only stalled, it would know to stop writing (renew deadline 10 s)
    assert holders(kube) == {"a": 3, "b": 3}
    assert taken_from_c <= set(e["a"].held) | set(e["b"].held)
    assert not e["a"].lost()
    assert not e["b"].lost()


def test_no_shard_is_taken_while_its_holder_renews() -> None:
    kube, clock = FakeKube(), Clock()
    e = electors(kube, clock, "a", "b")
    run_round(e["a"])
    for _ in range(20):
        clock.t += 2
        run_round(e["b"])
        run_round(e["a"])
        assert not set(e["a"].held) & set(e["b"].held)
    assert holders(kube) == {"a": 3, "b": 3}
    lease = kube.obj("Lease", "ops", "ak-shard-0")
    assert lease is not None
    assert lease["metadata"]["labels"] == {"appkeeper.dev/lease-group": "ak", "appkeeper.dev/lease-role": "shard"}


def test_a_clean_stop_hands_everything_over_and_leaves_no_member_lease() -> None:
    kube, clock = FakeKube(), Clock()
    e = electors(kube, clock, "a", "b")
    run_round(e["a"])
    run_round(e["b"])
    e["a"].release_all()
    assert kube.obj("Lease", "ops", e["a"].member) is None
    run_round(e["b"])
    assert holders(kube) == {"b": 6}


def test_a_dead_replicas_member_lease_is_deleted_in_time() -> None:
    kube, clock = FakeKube(), Clock()
    e = electors(kube, clock, "a", "b")
    run_round(e["a"])
    run_round(e["b"])
    for _ in range(35):  # b stops; 70 s > 4 lease durations
        clock.t += 2
        run_round(e["a"])
    assert kube.obj("Lease", "ops", e["b"].member) is None
    assert kube.obj("Lease", "ops", e["a"].member) is not None


def test_the_command_line_needs_leader_election_for_shards() -> None:
    from appkeeper import cli

    with pytest.raises(SystemExit):
        cli.main(["run", "--shards=3"])
    args = cli.parser().parse_args(["run", "--leader-elect", "--shards=6"])
    assert args.shards == 6


def test_a_replica_looks_again_when_another_ones_lease_is_due_to_expire() -> None:
    kube, clock = FakeKube(), Clock()
    e = electors(kube, clock, "a", "b")
    run_round(e["a"])  # a takes all six, then dies before it sees b
    run_round(e["b"])  # none free: b waits for a's Leases to expire
    assert e["b"].pause() == 2.0
    clock.t += 14
    run_round(e["b"])
    assert e["b"].pause() == pytest.approx(1.05)  # looks again just after the expiry, not a whole retry later
    clock.t += e["b"].pause()
    run_round(e["b"])
    assert holders(kube) == {"b": 6}
    assert e["b"].pause() == 2.0  # nobody else's Lease left to wait for


def test_while_every_lease_is_renewed_the_retry_period_holds() -> None:
    kube, clock = FakeKube(), Clock()
    e = electors(kube, clock, "a", "b")
    for _ in range(3):
        clock.t += 2
        run_round(e["a"])
        run_round(e["b"])
    assert holders(kube) == {"a": 3, "b": 3}
    assert e["a"].pause() == e["b"].pause() == 2.0
