"""constraints.txt pins every dependency and dev tool pyproject.toml names, so CI and the image
install the same versions each time."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += [d for d in extra if not d.startswith("appkeeper")]
    names = {normalized(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in declared}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not an exact pin"
            pins[normalized(name)] = version
    assert sorted(names - set(pins)) == []
    assert len(pins) > len(names)  # their dependencies are pinned too


def pins(path: Path = ROOT / "hack" / "versions.env") -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[key] = value
    return out


def test_every_go_pin_has_its_committed_sums() -> None:
    """A pin in hack/versions.env changed without `hack/build-binaries.sh --update-sums` fails here,
    before a build downloads what nothing checks."""
    v, kind = pins(), pins(ROOT / "hack" / "kind" / "versions.env")
    go_mod = (ROOT / "hack" / "k8sbuild" / "go.mod").read_text()
    go_sum = (ROOT / "hack" / "k8sbuild" / "go.sum").read_text()
    for module, version in (("k8s.io/kubernetes", v["KUBERNETES_VERSION"]),
                            ("go.etcd.io/etcd/server/v3", v["ETCD_VERSION"])):
        assert re.search(rf"^\s+{re.escape(module)} {re.escape(version)}$", go_mod, re.M), f"go.mod: {module}"
        assert re.search(rf"^{re.escape(module)} {re.escape(version)} h1:\S+=$", go_sum, re.M), f"go.sum: {module}"
    tools = {tuple(line.split()[:2]) for line in (ROOT / "hack" / "tools.sum").read_text().splitlines() if line}
    assert tools == {("sigs.k8s.io/kwok", v["KWOK_VERSION"]), ("helm.sh/helm/v3", v["HELM_VERSION"]),
                     ("sigs.k8s.io/metrics-server", v["METRICS_SERVER_VERSION"]),
                     ("github.com/coredns/coredns", v["COREDNS_VERSION"]),
                     ("sigs.k8s.io/cri-tools", v["CRI_TOOLS_VERSION"]),
                     ("github.com/rancher/local-path-provisioner", kind["LOCAL_PATH_VERSION"])}
    script = (ROOT / "hack" / "build-binaries.sh").read_text()
    assert "GOFLAGS=-mod=readonly" in script  # the committed go.sum is used, never rewritten
