"""Leader election on a Lease, with an injected clock: one holder, renewals, take-over after expiry,
stepping down, and a conflict counted as a failed round."""

from __future__ import annotations

import pytest

from appkeeper.kube import Kube
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


def test_a_leader_is_fenced_before_another_can_take_the_lease() -> None:
    """Finding 7: every write asks the fence; it closes at the renew deadline, counted from when
    the last renewal was sent, before any candidate may take the Lease (lease duration)."""
    import pytest

    from appkeeper.kube import Fenced

    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    with pytest.raises(Fenced):
        a.fence()  # not leading yet
    assert a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    a.fence()
    clock.t += 9.9
    a.fence()
    clock.t += 0.2  # past the renew deadline: a may not write, although b cannot take it yet
    with pytest.raises(Fenced):
        a.fence()
    assert not b.try_acquire_or_renew()
    clock.t += 5  # the lease duration since b saw it change: b takes it; a has not written for 5 s
    assert b.try_acquire_or_renew()
    b.fence()


def test_a_shard_write_is_fenced_by_its_own_shard() -> None:
    import pytest

    from appkeeper.kube import Fenced
    from appkeeper.leader import ShardElector, writing_for

    kube, clock = FakeKube(), Clock()
    se = ShardElector(kube, LeaseConfig("ops", "appkeeper", "a"), 2, clock=lambda: NOW,  # type: ignore[arg-type]
                      monotonic=clock)
    se.round()
    assert sorted(se.held) == [0, 1]
    writing_for(0)
    se.fence()
    writing_for(None)
    with pytest.raises(Fenced):
        se.fence()  # a write for no shard
    se.held.pop(1)
    writing_for(1)
    with pytest.raises(Fenced):
        se.fence()  # a shard handed over
    writing_for(0)
    clock.t += 10
    with pytest.raises(Fenced):
        se.fence()  # not renewed within the deadline
    writing_for(None)


class Offline:
    """A kubeconfig whose server is a closed loopback port: a request that is sent fails to connect."""
    host = "http://127.0.0.1:9"
    verify_ssl = True
    ssl_ca_cert = cert_file = key_file = None

    def get_api_key_with_prefix(self, *a: object, **k: object) -> None:
        return None


def offline_kube() -> Kube:
    return Kube(Offline(), connect_retries=0, timeout=0.5)  # type: ignore[arg-type]


def test_every_write_but_a_leases_asks_the_fence() -> None:
    """kube.Kube: the fence is asked before a write is sent, and not for reads or Leases."""
    import pytest

    from appkeeper.kube import ApiError, Fenced

    kube = offline_kube()
    asked: list[str] = []

    def fence() -> None:
        asked.append("asked")
        raise Fenced("not ours")

    kube.fence = fence
    with pytest.raises(Fenced):
        kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"}})
    with pytest.raises(Fenced):
        kube.delete("v1", "Service", "n", "x")
    assert len(asked) == 2
    for call in (lambda: kube.get("v1", "Service", "n", "x"),
                 lambda: kube.replace({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                       "metadata": {"name": "l", "namespace": "n"}})):
        with pytest.raises(ApiError) as err:
            call()
        assert err.value.status == 0  # not fenced: it went on to the (absent) server
    assert len(asked) == 2


def test_nothing_is_written_in_a_denied_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 6: operatorNamespacesDenied, enforced by the operator itself before any write."""
    import pytest

    from appkeeper.cli import denied_namespaces
    from appkeeper.kube import ApiError

    kube = offline_kube()
    kube.denied = frozenset({"kube-system"})
    with pytest.raises(ApiError) as err:
        kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "x", "namespace": "kube-system"}})
    assert (err.value.status, err.value.reason) == (403, "Forbidden")
    assert "does not write in namespace kube-system" in err.value.message
    with pytest.raises(ApiError) as err:  # elsewhere it goes on to the (absent) server
        kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "team"}})
    assert err.value.status == 0
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert denied_namespaces(None) == ["kube-node-lease", "kube-public", "kube-system"]
    monkeypatch.setenv("POD_NAMESPACE", "appkeeper-system")
    assert "appkeeper-system" in denied_namespaces(None)
    assert denied_namespaces([""]) == []
    assert denied_namespaces(["a", "b"]) == ["a", "b"]


def test_a_write_is_fenced_again_as_its_bytes_go_out() -> None:
    """A replica frozen after the first check (SIGSTOP) must send nothing once it wakes past its
    deadline: the fence is asked again when http.client writes to the socket."""
    import socket
    import threading

    from appkeeper.kube import Fenced

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.append(chunk)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    kube = offline_kube()
    kube.host = f"http://127.0.0.1:{server.getsockname()[1]}"
    calls: list[int] = []

    def fence() -> None:  # valid at the first check, expired by the time the bytes go out
        calls.append(1)
        if len(calls) > 1:
            raise Fenced("expired while frozen")

    kube.fence = fence
    with pytest.raises(Fenced):
        kube.delete("v1", "Service", "n", "x")
    kube.pool.clear()  # closes the connection: the server sees its end
    thread.join(5)
    server.close()
    assert len(calls) == 2
    assert received == []  # not one byte of the request reached the server


def test_a_child_named_like_leases_is_fenced_all_the_same() -> None:
    """The Lease exemption is by API group, not by a substring of the path."""
    from appkeeper.kube import Fenced

    kube = offline_kube()

    def fence() -> None:
        raise Fenced("not ours")

    kube.fence = fence
    with pytest.raises(Fenced):
        kube.delete("apps/v1", "Deployment", "team", "leases-web")
