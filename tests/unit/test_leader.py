"""Leader election on a Lease, with an injected clock: one holder, renewals, take-over after expiry,
stepping down, and a conflict counted as a failed round."""

from __future__ import annotations

from appkeeper.leader import LeaderElector, LeaseConfig

from .conftest import NOW
from .fakekube import FakeKube


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def elector(kube: FakeKube, who: str, clock: Clock) -> LeaderElector:
    return LeaderElector(kube, LeaseConfig("ops", "appkeeper", who), clock=lambda: NOW,  # type: ignore[arg-type]
                         monotonic=clock)


def lease(kube: FakeKube) -> dict[str, object]:
    obj = kube.obj("Lease", "ops", "appkeeper")
    assert obj is not None
    return dict(obj["spec"])


def test_one_holder_the_other_stands_by() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert lease(kube)["holderIdentity"] == "a"
    assert lease(kube)["leaseDurationSeconds"] == 15
    for _ in range(10):  # a renews every 2 s; b keeps seeing the Lease change, so keeps waiting
        clock.t += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert lease(kube)["leaseTransitions"] == 0


def test_a_candidate_takes_over_an_expired_lease() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.t += 10  # a stopped renewing
    assert not b.try_acquire_or_renew()
    assert not a.lost()
    clock.t += 6  # 16 s since b last saw the Lease change: expired
    assert a.lost()  # a, if it still ran, knows it must stop (renew deadline 10 s)
    assert b.try_acquire_or_renew()
    assert lease(kube)["holderIdentity"] == "b"
    assert lease(kube)["leaseTransitions"] == 1


def test_a_concurrent_writer_wins_and_the_loser_is_not_leader() -> None:
    kube, clock = FakeKube(), Clock()
    a = elector(kube, "a", clock)
    a.try_acquire_or_renew()
    kube.fail("replace", "Lease", 409)
    clock.t += 2
    assert not a.try_acquire_or_renew()
    assert not a.lost()  # one failed round is not yet a lost Lease
    clock.t += 2
    assert a.try_acquire_or_renew()


def test_a_clean_shutdown_hands_over_at_once() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert lease(kube)["holderIdentity"] == ""
    assert b.try_acquire_or_renew()
    assert lease(kube)["holderIdentity"] == "b"


def test_the_command_line_turns_it_on() -> None:
    from appkeeper import cli

    assert cli.lease_config(cli.parser().parse_args(["run"])) is None
    cfg = cli.lease_config(cli.parser().parse_args(["run", "--leader-elect", "--leader-election-namespace=ops",
                                                    "--leader-election-id=ak", "--lease-duration=30"]))
    assert cfg is not None
    assert (cfg.namespace, cfg.name, cfg.lease_duration, cfg.renew_deadline, cfg.retry) == ("ops", "ak", 30, 10, 2)
    other = cli.lease_config(cli.parser().parse_args(["run", "--leader-elect"]))
    assert other is not None
    assert other.identity != cfg.identity  # two processes on one host are two candidates
