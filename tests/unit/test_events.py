"""The Event recorder: repeats aggregate into one Event's count, a token bucket caps writes per App."""

from __future__ import annotations

from datetime import timedelta

from appkeeper.events import BURST, Recorder

from .conftest import NOW
from .fakekube import FakeKube

APP = {"name": "shop", "namespace": "demo", "uid": "uid-1"}


def recorder(kube: FakeKube, keep: int = 4096) -> tuple[Recorder, list[object]]:
    clock = [NOW]
    return Recorder(kube, lambda: clock[0], keep), clock  # type: ignore[arg-type, return-value]


def events(kube: FakeKube) -> list[dict[str, object]]:
    return [o for (k, _, _), o in kube.objects.items() if k == "Event"]


def test_a_repeat_within_ten_minutes_counts_on_one_event() -> None:
    kube = FakeKube()
    rec, clock = recorder(kube)
    for i in range(60):  # a fight over one field, once a second for a minute
        clock[0] = NOW + timedelta(seconds=i)
        rec.post(APP, "Warning", "Repaired", "Deployment shop was changed by someone else (spec.replicas)")
    [event] = events(kube)
    assert event["count"] == BURST  # the rest were rate limited
    assert event["lastTimestamp"] == "2026-11-23T12:00:24Z"
    assert event["firstTimestamp"] == "2026-11-23T12:00:00Z"


def test_different_messages_are_different_events() -> None:
    kube = FakeKube()
    rec, _ = recorder(kube)
    rec.post(APP, "Normal", "Created", "created Deployment shop")
    rec.post(APP, "Normal", "Created", "created Service shop")
    assert sorted(str(e["message"]) for e in events(kube)) == ["created Deployment shop", "created Service shop"]


def test_after_ten_minutes_a_repeat_is_a_new_event() -> None:
    kube = FakeKube()
    rec, clock = recorder(kube)
    rec.post(APP, "Warning", "Repaired", "x")
    clock[0] = NOW + timedelta(minutes=10)
    rec.post(APP, "Warning", "Repaired", "x")
    assert [e["count"] for e in events(kube)] == [1, 1]


def test_the_bucket_refills_one_token_per_five_minutes() -> None:
    kube = FakeKube()
    rec, clock = recorder(kube)
    for i in range(BURST + 5):
        rec.post(APP, "Normal", "Created", f"m{i}")
    assert len(events(kube)) == BURST
    clock[0] = NOW + timedelta(minutes=5)
    rec.post(APP, "Normal", "Created", "later")
    rec.post(APP, "Normal", "Created", "too soon")
    assert len(events(kube)) == BURST + 1
    # Another App has its own bucket.
    rec.post(dict(APP, name="cart"), "Normal", "Created", "m0")
    assert len(events(kube)) == BURST + 2


def test_a_failed_post_is_forgotten_so_the_next_creates() -> None:
    kube = FakeKube()
    rec, _ = recorder(kube)
    kube.fail("create_event", "Event", 500)
    rec.post(APP, "Normal", "Created", "x")
    rec.post(APP, "Normal", "Created", "x")
    assert [e["count"] for e in events(kube)] == [1]


def test_what_it_keeps_per_app_goes_with_the_app_and_stays_bounded() -> None:
    """Finding 8: three cycles of 500 Apps created and deleted left their buckets behind."""
    kube = FakeKube()
    rec, clock = recorder(kube, keep=256)  # the operator keeps 4096; the sweep is the same
    for cycle in range(3):
        for i in range(300):  # more than it keeps before sweeping: forget, not the sweep, empties it
            app = {"name": f"app-{cycle}-{i}", "namespace": "demo", "uid": f"u{i}"}
            rec.post(app, "Normal", "Created", "created Deployment")
            rec.forget("demo", app["name"])
    assert (len(rec._buckets), len(rec._seen)) == (0, 0)
    for i in range(600):  # never forgotten (say, a reconcile failing before the App is gone): swept
        clock[0] = NOW + timedelta(hours=3 + i)  # type: ignore[operator]
        rec.post({"name": f"x-{i}", "namespace": "demo", "uid": "u"}, "Normal", "Created", "created")
    assert len(rec._buckets) <= 256
    assert len(rec._seen) <= 256
