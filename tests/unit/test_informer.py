"""The children's informers: watch events into the store, resume, relist on 410, back off on failure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from appkeeper import informer
from appkeeper.informer import RELIST, Informer, handle
from appkeeper.kinds import BY_KIND, Kind
from appkeeper.kube import ApiError
from appkeeper.store import Store

DEPLOYMENT, POD = BY_KIND["Deployment"], BY_KIND["Pod"]


def child(name: str, rv: str, app: str = "shop", uid: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid or name, "resourceVersion": rv,
                         "labels": {"appkeeper.dev/app": app}}}


def app(name: str = "shop") -> dict[str, Any]:
    return {"kind": "App", "metadata": {"name": name, "namespace": "ns", "uid": f"app-{name}", "resourceVersion": "1"}}


def test_events_go_into_the_store_and_name_their_app() -> None:
    store = Store()
    assert handle(store, DEPLOYMENT, {"type": "ADDED", "object": child("shop", "4")}) == (None, "4", False)  # no App
    assert store.children(("ns", "shop")) == {}
    store.put_app(app())
    assert store.unfilled(("ns", "shop")) == {"Deployment"}  # listed once, at its first reconcile
    assert handle(store, DEPLOYMENT, {"type": "ADDED", "object": child("shop", "5")}) == (("ns", "shop"), "5", False)
    held = store.child(("ns", "shop"), ("Deployment", "shop"))
    assert held is not None
    assert held["kind"] == "Deployment"  # a watch's object is typed for the store's key
    # A new version with only its status changed is routine; with its spec changed, or gone, a repair is due.
    status_only = {**child("shop", "6"), "status": {"replicas": 1}}
    assert handle(store, DEPLOYMENT, {"type": "MODIFIED", "object": status_only}) == (("ns", "shop"), "6", False)
    spec_changed = {**child("shop", "7"), "spec": {"replicas": 9}}
    assert handle(store, DEPLOYMENT, {"type": "MODIFIED", "object": spec_changed}) == (("ns", "shop"), "7", True)
    assert handle(store, DEPLOYMENT, {"type": "DELETED", "object": child("shop", "8")}) == (("ns", "shop"), "8", True)
    assert store.child(("ns", "shop"), ("Deployment", "shop")) is None
    assert handle(store, POD, {"type": "ADDED", "object": child("shop-abc", "9")}) == (("ns", "shop"), "9", False)
    assert [p["metadata"]["name"] for p in store.pods(("ns", "shop"))] == ["shop-abc"]


def test_a_bookmark_moves_the_resource_version_only() -> None:
    store = Store()
    bookmark = {"type": "BOOKMARK", "object": {"kind": "Deployment", "metadata": {"resourceVersion": "42"}}}
    assert handle(store, DEPLOYMENT, bookmark) == (None, "42", False)
    assert store.children(("ns", "shop")) == {}


def test_gone_asks_for_a_relist_and_other_errors_raise() -> None:
    store = Store()
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}
    assert handle(store, DEPLOYMENT, gone) == (None, RELIST, False)
    with pytest.raises(ApiError) as e:
        handle(store, DEPLOYMENT, {"type": "ERROR", "object": {"code": 500, "reason": "InternalError"}})
    assert e.value.status == 500


class Stream:
    def __init__(self, events: list[Any]) -> None:
        self.events, self.closed = events, False

    def __iter__(self) -> Iterator[Any]:
        return iter(self.events)

    def close(self) -> None:
        self.closed = True


class ScriptedKube:
    """Answers list_at and watch from a script; the informer is stopped when the script runs out."""

    def __init__(self, steps: list[Any]) -> None:
        self.steps = steps
        self.calls: list[tuple[str, str]] = []
        self.informer: Informer | None = None

    def _next(self, call: str, arg: str) -> Any:
        self.calls.append((call, arg))
        if not self.steps:
            assert self.informer is not None
            self.informer.stop()
            raise ApiError(0, "Unreachable", "the script is over")
        step = self.steps.pop(0)
        assert step[0] == call, f"expected {step[0]}, got {call}"
        if isinstance(step[1], Exception):
            raise step[1]
        return step[1]

    def list_at(self, api_version: str, kind: str, namespace: str, selector: str) -> tuple[list[Any], str]:
        assert selector == "appkeeper.dev/app"
        return self._next("list", namespace)  # type: ignore[no-any-return]

    def watch(self, api_version: str, kind: str, namespace: str, selector: str, rv: str,
              timeout_seconds: int) -> Stream:
        return Stream(self._next("watch", rv))


def run(kube: ScriptedKube, store: Store, kind: Kind = DEPLOYMENT) -> list[tuple[str, str]]:
    queued: list[tuple[str, str]] = []
    inf = Informer(kube, store, kind, "ns", lambda key, _: queued.append(key),  # type: ignore[arg-type]
                   optional_poll=0.0)
    kube.informer = inf
    thread = threading.Thread(target=inf.run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return queued


def test_lists_then_watches_resumes_and_relists_after_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer, "retry_delay", lambda *a: 0.0)
    store = Store()
    for name in ("old", "shop", "cart"):
        store.put_app(app(name))
    store.put_child({**child("ghost", "1", app="old"), "kind": "Deployment"})  # vanished while unwatched
    kube = ScriptedKube([
        ("list", ([child("shop", "10")], "100")),
        ("watch", [{"type": "MODIFIED", "object": child("shop", "11")},
                   {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "120"}}}]),
        ("watch", [{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}]),
        ("list", ([child("shop", "11"), child("cart", "130", app="cart")], "130")),
        ("watch", ApiError(0, "Unreachable", "connection refused")),
        ("watch", []),
    ])
    queued = run(kube, store)
    # The first list replaced the store (the ghost went, its App queued); each watch resumed where
    # the last one ended (a bookmark included); a 410 relisted; a failure resumed from the same place.
    assert kube.calls[:6] == [("list", "ns"), ("watch", "100"), ("watch", "120"), ("list", "ns"),
                              ("watch", "130"), ("watch", "130")]
    assert store.child(("ns", "old"), ("Deployment", "ghost")) is None
    assert set(queued) == {("ns", "old"), ("ns", "shop"), ("ns", "cart")}
    assert store.child(("ns", "cart"), ("Deployment", "cart")) is not None


def test_a_refusal_relists_and_backs_off_exponentially(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[int] = []
    monkeypatch.setattr(informer, "retry_delay", lambda attempt, *a: delays.append(attempt) or 0.0)
    kube = ScriptedKube([
        ("list", ApiError(403, "Forbidden", "RBAC")),
        ("list", ApiError(403, "Forbidden", "RBAC")),
        ("list", ([], "7")),
        ("watch", ApiError(401, "Unauthorized", "token rotated")),  # not resumable: start over
        ("list", ([], "9")),
    ])
    run(kube, Store())
    assert kube.calls[:6] == [("list", "ns"), ("list", "ns"), ("list", "ns"), ("watch", "7"),
                              ("list", "ns"), ("watch", "9")]
    assert delays[:3] == [1, 2, 3]  # failures in a row: only a watch that ran its course starts the count again


def test_an_optional_kind_not_served_is_looked_for_quietly_and_watched_once_it_is(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(informer, "retry_delay", lambda *a: 0.0)
    policy = BY_KIND["NetworkPolicy"]
    assert policy.optional
    store = Store()
    store.put_app(app("shop"))
    missing = ApiError(404, "NotFound", "the server could not find the requested resource")
    kube = ScriptedKube([("list", missing), ("list", missing), ("list", missing),
                         ("list", ([child("shop", "5")], "5")), ("watch", [])])
    caplog.set_level("INFO", "appkeeper.informer")
    queued = run(kube, store, policy)
    assert kube.calls[:5] == [("list", "ns")] * 4 + [("watch", "5")]
    # One line when it is found missing, one when it appears; no warning while it is away.
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "served" in r.getMessage()]
    assert [level for level, _ in lines] == ["INFO", "INFO"]
    assert "not served" in lines[0][1]
    assert "served now" in lines[1][1]
    assert store.unserved() == frozenset()
    assert queued.count(("ns", "shop")) >= 2  # queued when found missing (it waits) and when served (it gets one)
    assert store.child(("ns", "shop"), ("NetworkPolicy", "shop")) is not None


def test_a_required_kind_not_found_is_an_error_not_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer, "retry_delay", lambda *a: 0.0)
    store = Store()
    kube = ScriptedKube([("list", ApiError(404, "NotFound", "no")), ("list", ([], "3"))])
    run(kube, store)
    assert store.unserved() == frozenset()


def test_every_watch_failing_alike_is_one_warning(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(informer, "retry_delay", lambda *a: 0.0)
    monkeypatch.setattr(informer, "REPEATS", informer.Repeats())
    caplog.set_level("DEBUG", "appkeeper.informer")
    for kind in (DEPLOYMENT, BY_KIND["Service"], BY_KIND["Ingress"]):  # the API server away: each watch fails
        run(ScriptedKube([("list", ApiError(0, "Unreachable", "refused"))]), Store(), kind)
    failed = [r for r in caplog.records if "failed (0 Unreachable: refused)" in r.getMessage()]
    assert [r.levelname for r in failed] == ["WARNING", "DEBUG", "DEBUG"]
