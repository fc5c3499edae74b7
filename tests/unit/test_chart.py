"""The Helm chart, checked in seconds: golden `helm template` output, lint and values schema, the CRD
copy, and its RBAC rules against the one table of kinds (operator/appkeeper/kinds.py). Uses the helm
the local cluster's build made (or one on PATH); says so plainly if there is none."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from appkeeper.kinds import rbac_rules

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "appkeeper"
GOLDEN = Path(__file__).parent / "golden"
CACHE = Path(os.environ.get("APPKEEPER_CACHE", Path.home() / ".cache" / "appkeeper"))


def helm_binary() -> str:
    pinned = (ROOT / "hack" / "versions.env").read_text()
    for built in sorted(CACHE.glob("k8s/*/versions.env")):
        if built.read_text() == pinned and (built.parent / ".complete").exists():
            return str(built.parent / "bin" / "helm")
    found = shutil.which("helm")
    if found is None:
        pytest.skip("no helm: `make binaries` builds the pinned one (the e2e suite does it too)")
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {proc.stderr}")
    return proc


VALUES = {"default": [], "namespaced": ["--set", "watchNamespaces={team-a,team-b}", "--set", "workers=4",
                                         "--set", "metrics.serviceMonitor.enabled=true", "--set", "logFormat=text"]}


def template(values: str) -> str:
    return helm("template", "appkeeper", str(CHART), "--namespace", "appkeeper-system", "--kube-version", "1.36.3",
                "--skip-crds", *VALUES[values]).stdout


@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_template_matches_golden(values: str) -> None:
    got = template(values)
    path = GOLDEN / f"helm-{values}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text(), f"{path} differs; rerun with UPDATE_GOLDEN=1 and review the diff"


def rules_of(rendered: str, kind: str) -> set[tuple[str, str, tuple[str, ...]]]:
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == kind]
    assert docs, f"no {kind} rendered"
    out = set()
    for doc in docs:
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    out.add((group, resource, tuple(rule["verbs"])))
    return out


@pytest.mark.parametrize(("values", "kind"), [("default", "ClusterRole"), ("namespaced", "Role")])
def test_chart_rbac_is_exactly_what_the_kinds_table_needs(values: str, kind: str) -> None:
    assert rules_of(template(values), kind) == rbac_rules()


def test_helm_lint_and_schema() -> None:
    helm("lint", str(CHART), "--strict")
    bad = helm("lint", str(CHART), "--set", "workers=0", check=False)
    assert bad.returncode != 0
    assert "/workers" in bad.stdout + bad.stderr
    typo = helm("lint", str(CHART), "--set", "wokers=3", check=False)
    assert typo.returncode != 0


def test_chart_crds_are_the_repository_crds() -> None:
    for crd in (ROOT / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text(), f"charts/appkeeper/crds/{crd.name} drifted"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(p.name for p in (ROOT / "crds").iterdir())
