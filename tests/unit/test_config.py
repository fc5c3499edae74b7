"""config.py: which ConfigMaps the pods use, their hash, the snapshots and their pruning."""

from __future__ import annotations

from typing import Any

from appkeeper.api import parse_app
from appkeeper.config import (
    ANN_CONFIG_HASH,
    LABEL_SNAPSHOT_OF,
    ConfigRef,
    config_refs,
    data_hash,
    plan,
    rewrite,
    snapshots_to_prune,
)

from .conftest import app_body

SPEC: dict[str, Any] = {
    "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "PLAIN", "value": "x"}],
    "envFrom": [{"configMapRef": {"name": "extra", "optional": True}}, {"secretRef": {"name": "creds"}}],
    "volumes": [{"name": "conf", "mountPath": "/etc/shop", "configMap": {"name": "settings"}},
                {"name": "certs", "mountPath": "/certs", "secret": {"secretName": "tls"}}],
}


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


def test_the_configmaps_the_pod_uses_once_each_and_no_secret() -> None:
    refs = config_refs(parse_app(app_body("shop", "ns", **SPEC)).spec)
    assert refs == [ConfigRef("settings", False, "env MODE"), ConfigRef("extra", True, "envFrom")]


def test_the_hash_follows_the_data_and_nothing_else() -> None:
    a = cm("settings", mode="fast")
    assert data_hash(a) == data_hash({**cm("settings", mode="fast"), "metadata": {"name": "x", "uid": "2"}})
    assert data_hash(a) != data_hash(cm("settings", mode="slow"))
    assert data_hash(a) != data_hash({**a, "binaryData": {"k": "AA=="}})


def test_a_plan_names_snapshots_by_content_and_says_what_is_missing() -> None:
    refs = [ConfigRef("settings", False, "env MODE"), ConfigRef("extra", True, "envFrom"),
            ConfigRef("gone", False, "volume conf")]
    p1 = plan("shop", refs, {"settings": cm("settings", mode="fast"), "extra": None, "gone": None})
    assert list(p1.snapshots) == ["settings"]
    assert p1.snapshots["settings"]["name"] == "shop-settings-" + data_hash(cm("s", mode="fast"))[:8]
    assert p1.missing == [ConfigRef("gone", False, "volume conf")]  # an optional one may be absent
    p2 = plan("shop", refs, {"settings": cm("settings", mode="slow"), "extra": None, "gone": None})
    assert p2.hash != p1.hash
    assert p2.snapshots["settings"]["name"] != p1.snapshots["settings"]["name"]
    assert plan("shop", [], {}).hash is None


def test_the_template_names_the_snapshots_and_carries_the_hash() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {
        "containers": [{"name": "shop", "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
            "envFrom": [{"configMapRef": {"name": "settings"}}, {"configMapRef": {"name": "other"}}]}],
        "volumes": [{"name": "conf", "configMap": {"name": "settings"}},
                    {"name": "tls", "secret": {"secretName": "x"}}]}}
    p = plan("shop", [ConfigRef("settings", False, "env MODE")], {"settings": cm("settings", mode="fast")})
    snap = p.snapshots["settings"]["name"]
    out = rewrite(template, p)
    container = out["spec"]["containers"][0]
    assert container["env"][0]["valueFrom"]["configMapKeyRef"] == {"name": snap, "key": "mode"}
    assert container["env"][1]["valueFrom"]["secretKeyRef"]["name"] == "creds"
    assert [s["configMapRef"]["name"] for s in container["envFrom"]] == [snap, "other"]
    assert out["spec"]["volumes"] == [{"name": "conf", "configMap": {"name": snap}},
                                      {"name": "tls", "secret": {"secretName": "x"}}]
    assert out["metadata"]["annotations"] == {ANN_CONFIG_HASH: p.hash}
    assert template["spec"]["volumes"][0]["configMap"]["name"] == "settings"  # the input is untouched


def snap(name: str, source: str, created: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created, "labels": {LABEL_SNAPSHOT_OF: source}}}


def test_pruning_keeps_the_newest_of_each_source_and_always_the_current() -> None:
    snaps = [snap(f"shop-settings-{i}", "settings", f"2026-11-25T12:00:0{i}Z") for i in range(7)]
    snaps += [snap("shop-extra-0", "extra", "2026-11-25T11:00:00Z")]
    doomed = snapshots_to_prune(snaps, current={"shop-settings-2", "shop-extra-0"}, keep=3)
    # current (2) + the two newest others (6, 5) stay; 4, 3, 1, 0 go; the other source is alone.
    assert sorted(d["metadata"]["name"] for d in doomed) == [
        "shop-settings-0", "shop-settings-1", "shop-settings-3", "shop-settings-4"]
    assert snapshots_to_prune(snaps, current=set(), keep=10) == []


def test_snapshot_names_and_labels_fit_whatever_the_configmap_name() -> None:
    """Finding 8: a ConfigMap name of 64-253 characters must not make a label or name the API
    server refuses (the pods would never start)."""
    import re

    from appkeeper.config import snapshot_label, snapshot_name

    subdomain = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    label = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    for source in ("settings", "a" * 63, "a" * 64, "b." * 100 + "c", "x-" * 126 + "y", "c" * 253):
        name = snapshot_name("a" * 63, source, "0123456789abcdef")
        assert len(name) <= 253, source
        assert subdomain.match(name), name
        value = snapshot_label(source)
        assert len(value) <= 63, source
        assert label.match(value), value
    assert snapshot_label("c" * 253) != snapshot_label("c" * 252 + "d")  # still told apart
    assert snapshot_label("settings") == "settings"
