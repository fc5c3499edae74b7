from __future__ import annotations

from appkeeper.store import Store


def obj(kind: str, rv: str, uid: str = "u1", app: str = "shop") -> dict[str, object]:
    return {"kind": kind, "metadata": {"name": "shop", "namespace": "ns", "uid": uid, "resourceVersion": rv,
                                       "labels": {"appkeeper.dev/app": app}}}


def test_an_older_event_never_replaces_a_newer_object() -> None:
    s = Store()
    s.put_app(obj("App", "10"))
    s.put_app(obj("App", "9"))
    assert s.app(("ns", "shop"))["metadata"]["resourceVersion"] == "10"  # type: ignore[index]
    assert s.put_child(obj("Deployment", "5")) == ("ns", "shop")
    s.put_child(obj("Deployment", "4"))
    assert s.child(("ns", "shop"), ("Deployment", "shop"))["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    s.put_child(obj("Deployment", "1", uid="u2"))  # recreated: a new incarnation wins
    assert s.child(("ns", "shop"), ("Deployment", "shop"))["metadata"]["uid"] == "u2"  # type: ignore[index]


def test_delete_of_an_old_incarnation_keeps_the_new_one() -> None:
    s = Store()
    s.put_child(obj("Service", "7", uid="new"))
    s.drop_child(obj("Service", "6", uid="old"))
    assert s.child(("ns", "shop"), ("Service", "shop")) is not None
    s.drop_child(obj("Service", "8", uid="new"))
    assert s.child(("ns", "shop"), ("Service", "shop")) is None
    assert s.put_child({"kind": "Service", "metadata": {"name": "x", "labels": {}}}) is None
