"""The kind node's files agree with each other: one pod range, one Service range, everywhere."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))

import kindhost  # noqa: E402


def test_the_ranges_the_guard_keeps_are_the_clusters() -> None:
    config = yaml.safe_load((ROOT / "hack" / "kind" / "config.yaml").read_text())
    assert config["networking"]["podSubnet"] == kindhost.POD_SUBNET
    assert config["networking"]["serviceSubnet"] == kindhost.SERVICE_SUBNET
    assert config["networking"]["disableDefaultCNI"] is True  # the node carries its own (hack/kind/10-bridge.conflist)
    cni = json.loads((ROOT / "hack" / "kind" / "10-bridge.conflist").read_text())
    assert cni["plugins"][0]["ipam"]["ranges"] == [[{"subnet": kindhost.POD_SUBNET}]]


def test_pods_resolve_nothing_outside_through_the_node() -> None:
    config = yaml.safe_load((ROOT / "hack" / "kind" / "config.yaml").read_text())
    kubelet = next(yaml.safe_load(p) for p in config["kubeadmConfigPatches"] if "KubeletConfiguration" in p)
    assert kubelet["resolvConf"] == "/kind/pod-resolv.conf"
    assert "/kind/pod-resolv.conf" in (ROOT / "hack" / "kind" / "entrypoint").read_text()
