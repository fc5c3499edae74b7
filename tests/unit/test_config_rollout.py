"""Config rollouts through the real Reconciler (fakekube in place of the API): the template names
snapshots, a change rolls, snapshots are pruned, a missing ConfigMap is said, a burst is debounced."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from appkeeper.config import ANN_CONFIG_HASH, LABEL_SNAPSHOT_OF
from appkeeper.store import ConfigSources

from .test_reconcile import NS, WEB, World

USES = dict(WEB, env=[{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
            volumes=[{"name": "conf", "mountPath": "/etc/shop", "configMap": {"name": "settings"}}])


@pytest.fixture
def w() -> World:
    return World()


def set_config(w: World, mode: str) -> None:
    """Someone edits the ConfigMap; the watch delivers it (its debounce passed)."""
    held = w.kube.obj("ConfigMap", NS, "settings")
    if held is None:
        w.kube.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS},
                       "data": {"mode": mode}})
    else:
        w.kube.edit("ConfigMap", NS, "settings", ["data"], {"mode": mode})
    w.store.configs.put(NS, "settings", copy.deepcopy(w.kube.obj("ConfigMap", NS, "settings")))
    w.store.configs.debounce = w.store.configs.max_wait = 0


def template(w: World) -> dict[str, Any]:
    return dict(w.child("Deployment")["spec"]["template"])


def snapshots(w: World) -> list[str]:
    return sorted(name for (kind, _, name), obj in w.kube.objects.items()
                  if kind == "ConfigMap" and LABEL_SNAPSHOT_OF in (obj["metadata"].get("labels") or {}))


def test_the_template_names_an_immutable_snapshot_and_a_change_rolls_it(w: World) -> None:
    set_config(w, "fast")
    w.put_app(**USES)
    w.reconcile()
    [first] = snapshots(w)
    snap = w.kube.obj("ConfigMap", NS, first)
    assert snap is not None
    assert (snap["immutable"], snap["data"]) == (True, {"mode": "fast"})
    assert snap["metadata"]["ownerReferences"][0]["kind"] == "App"
    t1 = template(w)
    assert t1["spec"]["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == first
    assert t1["spec"]["volumes"][0]["configMap"]["name"] == first
    set_config(w, "slow")
    w.reconcile()
    t2 = template(w)
    assert t2["metadata"]["annotations"][ANN_CONFIG_HASH] != t1["metadata"]["annotations"][ANN_CONFIG_HASH]
    assert len(snapshots(w)) == 2  # the old one stays: a rollback names it
    assert t2["spec"]["volumes"][0]["configMap"]["name"] != first


def test_old_snapshots_beyond_the_history_limit_are_pruned(w: World) -> None:
    set_config(w, "v0")
    w.put_app(**dict(USES, rollout={"revisionHistoryLimit": 3}))
    w.reconcile()
    for i in range(1, 6):
        set_config(w, f"v{i}")
        w.reconcile()
        w.reconcile()  # the second pass sees its own snapshots through the watch
    kept = snapshots(w)
    assert len(kept) == 3
    current = template(w)["spec"]["volumes"][0]["configMap"]["name"]
    assert current in kept


def test_a_missing_configmap_is_said_and_an_optional_one_is_fine(w: World) -> None:
    w.put_app(**USES)
    w.reconcile()
    degraded = w.condition("Degraded")
    assert (degraded["reason"], degraded["message"]) == (
        "ConfigMissing", "ConfigMap settings (env MODE) not found; the pods cannot start until it exists")
    assert template(w)["spec"]["volumes"][0]["configMap"]["name"] == "settings"
    optional = dict(WEB, envFrom=[{"configMapRef": {"name": "settings", "optional": True}}])
    w.put_app(**optional)
    w.reconcile()
    assert w.condition("Degraded")["reason"] != "ConfigMissing"


def test_opting_out_leaves_the_references_alone(w: World) -> None:
    set_config(w, "fast")
    w.put_app(**dict(USES, configRollout=False))
    w.reconcile()
    assert snapshots(w) == []
    assert template(w)["spec"]["volumes"][0]["configMap"]["name"] == "settings"
    assert ANN_CONFIG_HASH not in (template(w)["metadata"].get("annotations") or {})


def test_a_burst_of_edits_takes_effect_once_after_it() -> None:
    now = [0.0]
    sources = ConfigSources(debounce=3, max_wait=10, clock=lambda: now[0])
    sources.use(("ns", "shop"), {"settings"})
    sources.read("ns", "settings", {"data": {"v": "0"}})
    seen = set()
    for i in range(1, 21):  # 20 edits in 10 s, a reconcile after each
        now[0] = i * 0.5
        assert sources.put("ns", "settings", {"data": {"v": str(i)}}) == {("ns", "shop")}
        _, obj, _ = sources.known("ns", "settings")
        seen.add(str((obj or {}).get("data")))
    now[0] = 13.1
    _, obj, wait = sources.known("ns", "settings")
    seen.add(str((obj or {}).get("data")))
    assert wait is None
    assert obj == {"data": {"v": "20"}}
    assert len(seen) <= 3, seen  # the original, maybe one at max_wait, the last: not 21


def test_configmaps_nobody_uses_are_not_kept() -> None:
    sources = ConfigSources()
    assert sources.put("ns", "other", {"data": {}}) == set()
    assert sources.known("ns", "other")[0] is False
    sources.use(("ns", "shop"), {"settings"})
    sources.read("ns", "settings", {"data": {}})
    sources.use(("ns", "shop"), set())
    assert sources.known("ns", "settings")[0] is False


def test_a_restart_takes_over_snapshots_it_holds_without_their_data(w: World) -> None:
    """The store drops a snapshot's data (immutable, named by its hash): a new process must not
    take that for drift."""
    set_config(w, "fast")
    w.put_app(**USES)
    w.reconcile()
    w.restart()
    w.reconcile()
    assert not [c for c in w.kube.calls if c[0] in ("create", "apply", "replace")]
    assert "repairs" not in w.status() or w.status()["repairs"].get("count", 0) == 0


SECRET_USES = dict(WEB, env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
                   volumes=[{"name": "tls", "mountPath": "/etc/tls", "secret": {"secretName": "creds"}}])


def set_secret(w: World, token: str) -> None:
    """Someone edits the Secret; the watch delivers it (its debounce passed)."""
    held = w.kube.obj("Secret", NS, "creds")
    if held is None:
        w.kube.add({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": "creds", "namespace": NS}, "data": {"token": token}})
    else:
        w.kube.edit("Secret", NS, "creds", ["data"], {"token": token})
    w.store.configs.put(NS, "Secret/creds", copy.deepcopy(w.kube.obj("Secret", NS, "creds")))
    w.store.configs.debounce = w.store.configs.max_wait = 0


def secret_snapshots(w: World) -> list[str]:
    return sorted(name for (kind, _, name), obj in w.kube.objects.items()
                  if kind == "Secret" and LABEL_SNAPSHOT_OF in (obj["metadata"].get("labels") or {}))


def test_secrets_are_left_alone_and_unread_unless_the_operator_is_opted_in(w: World) -> None:
    set_secret(w, "b25l")
    w.put_app(**SECRET_USES)
    w.reconcile()
    assert secret_snapshots(w) == []
    assert template(w)["spec"]["volumes"][0]["secret"]["secretName"] == "creds"
    assert ANN_CONFIG_HASH not in (template(w)["metadata"].get("annotations") or {})
    assert not [c for c in w.kube.calls if c[1] == "Secret"]


def test_opted_in_a_secret_is_snapshotted_and_its_change_rolls_the_pods(w: World) -> None:
    w.reconciler.secrets = True
    set_secret(w, "b25l")
    w.put_app(**SECRET_USES)
    w.reconcile()
    [first] = secret_snapshots(w)
    snap = w.kube.obj("Secret", NS, first)
    assert snap is not None
    assert (snap["immutable"], snap["type"], snap["data"]) == (True, "kubernetes.io/tls", {"token": "b25l"})
    assert snap["metadata"]["ownerReferences"][0]["kind"] == "App"
    t1 = template(w)
    assert t1["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == first
    assert t1["spec"]["volumes"][0]["secret"]["secretName"] == first
    set_secret(w, "dHdv")
    w.reconcile()
    t2 = template(w)
    assert t2["metadata"]["annotations"][ANN_CONFIG_HASH] != t1["metadata"]["annotations"][ANN_CONFIG_HASH]
    assert len(secret_snapshots(w)) == 2  # the old one stays: a rollback names it
    assert t2["spec"]["volumes"][0]["secret"]["secretName"] not in ("creds", first)


def test_a_secrets_digest_is_keyed_by_its_uid_so_the_template_does_not_reveal_a_short_value() -> None:
    from appkeeper.config import data_hash

    secret = {"kind": "Secret", "metadata": {"uid": "u1"}, "data": {"pin": "MTIzNA=="}}
    other = dict(secret, metadata={"uid": "u2"})
    unkeyed = {"kind": "ConfigMap", "data": {"pin": "MTIzNA=="}}
    assert len({data_hash(secret), data_hash(other), data_hash(unkeyed)}) == 3
