"""The daemonless image writer and the real node's generated configuration, without starting anything."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import images  # noqa: E402
import ociimage  # noqa: E402
import realnode  # noqa: E402


def tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "bin" / "alias").symlink_to("tool")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (root / "bin" / "hard").hardlink_to(root / "bin" / "tool")
    return root


def read(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def test_layer_keeps_modes_links_and_is_reproducible(tmp_path: Path) -> None:
    root = tree(tmp_path / "root")
    layer = ociimage.layer_tar(root, skip=lambda rel: rel.startswith("etc/"))
    assert layer == ociimage.layer_tar(root, skip=lambda rel: rel.startswith("etc/"))
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"bin", "bin/tool", "bin/alias", "bin/hard", "etc"}
    assert members["bin/tool"].mode == 0o755
    assert members["bin/alias"].issym()
    assert members["bin/alias"].linkname == "tool"
    # One of the two names holds the data; the other is a hard link to it.
    assert {members["bin/hard"].islnk(), members["bin/tool"].islnk()} == {True, False}
    assert all(m.mtime == 0 for m in members.values())


def test_archive_is_an_oci_layout_containerd_can_import(tmp_path: Path) -> None:
    root = tree(tmp_path / "root")
    config = ociimage.ImageConfig(entrypoint=["/bin/tool"], user="65532:65532", labels={"a": "b"},
                                  exposed_ports=["8080/tcp"])
    out = tmp_path / "img.tar"
    digest = ociimage.write_archive(out, "example.local/tool:1", [ociimage.layer_tar(root)], config)
    assert json.loads(read(out, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(read(out, "index.json"))
    [entry] = index["manifests"]
    assert entry["digest"] == digest
    assert entry["annotations"]["io.containerd.image.name"] == "example.local/tool:1"
    manifest_bytes = read(out, f"blobs/sha256/{digest.removeprefix('sha256:')}")
    assert "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() == digest
    manifest = json.loads(manifest_bytes)
    cfg = json.loads(read(out, f"blobs/sha256/{manifest['config']['digest'].removeprefix('sha256:')}"))
    assert cfg["config"]["User"] == "65532:65532"
    assert cfg["config"]["Entrypoint"] == ["/bin/tool"]
    assert cfg["config"]["ExposedPorts"] == {"8080/tcp": {}}
    [layer] = manifest["layers"]
    blob = read(out, f"blobs/sha256/{layer['digest'].removeprefix('sha256:')}")
    assert len(blob) == layer["size"]
    assert cfg["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()]
    # Same inputs, same image.
    again = ociimage.write_archive(tmp_path / "again.tar", "example.local/tool:1", [ociimage.layer_tar(root)], config)
    assert again == digest


def test_operator_image_carries_the_dockerfiles_labels_and_the_charts_version() -> None:
    labels = images.dockerfile_labels()
    assert labels["org.opencontainers.image.title"] == "appkeeper"
    assert "org.opencontainers.image.licenses" in labels
    assert images.operator_image().startswith("ghcr.io/appkeeper/appkeeper:")
    assert images.operator_image().endswith(":" + images.chart_app_version())


def test_dockerfile_gives_the_runtime_user_a_passwd_entry() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "useradd --uid 65532" in text
    assert "USER 65532:65532" in text


def test_real_node_configuration_keeps_traffic_on_the_machine(tmp_path: Path) -> None:
    realnode.write_configs(tmp_path, tmp_path / "pki", tmp_path / "containerd",
                           {"kubelet_healthz": 1, "kube_proxy_healthz": 2, "kube_proxy_metrics": 3})
    node = tmp_path / "realnode"
    kubelet = json.loads((node / "kubelet.yaml").read_text())
    assert kubelet["address"] == realnode.BRIDGE_IP
    assert kubelet["healthzBindAddress"] == "127.0.0.1"
    assert kubelet["readOnlyPort"] == 0
    assert kubelet["clusterDNS"] == [realnode.BRIDGE_IP]
    assert "nameserver 127.0.0.1" in Path(kubelet["resolvConf"]).read_text()
    assert kubelet["registerWithTaints"] == [{"key": realnode.LABEL, "value": "true", "effect": "NoSchedule"}]
    proxy = json.loads((node / "kube-proxy.yaml").read_text())
    assert proxy["nodePortAddresses"] == [f"{realnode.BRIDGE_IP}/32"]
    assert proxy["healthzBindAddress"].startswith("127.0.0.1:")
    assert proxy["metricsBindAddress"].startswith("127.0.0.1:")
    corefile = (node / "Corefile").read_text()
    assert "forward" not in corefile
    assert corefile.count(f"bind {realnode.BRIDGE_IP}") == 2
    cni = json.loads((node / "cni" / "10-appkeeper.conflist").read_text())
    assert cni["plugins"][0]["ipMasq"] is False
    assert "restrict_oom_score_adj = true" in (node / "containerd.toml").read_text()


@pytest.mark.parametrize(("before", "after", "diff"), [
    ({"links": ["lo", "eth0"]}, {"links": ["eth0", "lo"]}, {}),
    ({"links": ["lo"]}, {"links": ["lo", "akbr0"]}, {"links": {"added": ["akbr0"], "removed": []}}),
    ({"sysctls": ["a = 1"]}, {"sysctls": ["a = 0"]}, {"sysctls": {"added": ["a = 0"], "removed": ["a = 1"]}}),
])
def test_snapshot_diff_names_what_changed(before: dict[str, list[str]], after: dict[str, list[str]],
                                          diff: dict[str, object]) -> None:
    assert realnode.snapshot_diff(before, after) == diff


def test_real_node_opt_out_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKEEPER_REAL_NODE", "0")
    assert realnode.unavailable_reason() == "APPKEEPER_REAL_NODE=0"
    monkeypatch.setenv("APPKEEPER_REAL_NODE", "1")
    monkeypatch.setattr(realnode.os, "geteuid", lambda: 1000)
    assert "not root" in str(realnode.unavailable_reason())
