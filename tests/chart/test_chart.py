"""The Helm chart, checked in seconds: golden `helm template` output, lint and values schema, the CRD
copy, and its RBAC rules against the one table of kinds (operator/appkeeper/kinds.py). Uses the helm
the local cluster's build made (or one on PATH); says so plainly if there is none."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from appkeeper.kinds import SECRETS as SECRETS_VALUE
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
    return on_path("helm", "`make test` builds the pinned binaries before the unit tier",
                   "`make binaries` builds the pinned one (the e2e suite does it too)")


def on_path(tool: str, in_ci: str, here: str) -> str:
    """`tool` from PATH; missing, CI fails (`in_ci` says why it cannot be), a machine skips (`here`: how to get it)."""
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"no {tool} in CI: {in_ci}")
        pytest.skip(f"no {tool}: {here}")
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {proc.stderr}")
    return proc


VALUES = {"default": [], "namespaced": ["--set", "watchNamespaces={team-a,team-b}", "--set", "workers=4",
                                         "--set", "metrics.serviceMonitor.enabled=true", "--set", "logFormat=text"]}
SECRETS = ["--set", "configRollout.secrets=true"]  # the opt-in: rules checked, no golden of its own
OPTED_IN = {"default+secrets": VALUES["default"] + SECRETS, "namespaced+secrets": VALUES["namespaced"] + SECRETS}


@functools.cache
def template(values: str) -> str:
    return helm("template", "appkeeper", str(CHART), "--namespace", "appkeeper-system", "--kube-version", "1.36.3",
                *{**VALUES, **OPTED_IN}[values]).stdout


CRD_SPEC = "  # the spec of crds/apps.appkeeper.dev.yaml (test_the_chart_renders_the_repository_crd)\n"


def without_crd_spec(rendered: str) -> str:
    """The rendered chart with the CRD's 200 KB spec cut to one line: the golden shows its metadata,
    another test compares the spec."""
    start = rendered.find("kind: CustomResourceDefinition\n")
    if start < 0:
        return rendered
    spec = rendered.index("\nspec:\n", start) + len("\nspec:\n")
    end = rendered.find("\n---\n", spec)
    return rendered[:spec] + CRD_SPEC + (rendered[end + 1:] if end >= 0 else "")


def loaded(rendered: str) -> list[Any]:
    """Every document (libyaml's loader: the CRD alone is 200 KB)."""
    return list(yaml.load_all(rendered, Loader=yaml.CSafeLoader))


def docs_of(*values: str) -> list[dict[str, Any]]:
    """The chart rendered with these values, as documents."""
    out = helm("template", "appkeeper", str(CHART), "--namespace", "ops", "--kube-version", "1.36.3", *values).stdout
    return [d for d in loaded(out) if d]


def crds_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "CustomResourceDefinition"]


def upgrade_hooks(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "pre-upgrade"]


@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_template_matches_golden(values: str) -> None:
    got = without_crd_spec(template(values))
    path = GOLDEN / f"helm-{values}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text(), f"{path} differs; rerun with UPDATE_GOLDEN=1 and review the diff"


Rules = dict[tuple[str, str], set[str]]


def rules_of(rendered: str, kind: str, leader: bool = False) -> Rules:
    """(apiGroup, resource) -> verbs, over every rendered `kind` (the leader-election Role, or the rest)."""
    docs: list[dict[str, Any]] = [d for d in loaded(rendered) if d and d["kind"] == kind
                                  and d["metadata"]["name"].endswith("-leader-election") == leader]
    docs = [d for d in docs if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]  # the CRD Job's
    assert docs, f"no {kind} rendered"
    out: Rules = {}
    for doc in docs:
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def table(own_namespace: bool = False, cluster_wide: bool = True, opted_in: frozenset[str] = frozenset()) -> Rules:
    return {(g, r): set(v) for g, r, v in rbac_rules(own_namespace, cluster_wide, opted_in)}


@pytest.mark.parametrize(("values", "kind"), [("default", "ClusterRole"), ("namespaced", "Role"),
                                              ("default+secrets", "ClusterRole"), ("namespaced+secrets", "Role")])
def test_chart_rbac_is_exactly_what_the_kinds_table_needs(values: str, kind: str) -> None:
    opted_in = frozenset({SECRETS_VALUE} if values.endswith("+secrets") else set())
    rules = rules_of(template(values), kind)
    assert rules == table(cluster_wide=kind == "ClusterRole", opted_in=opted_in)
    assert (("", "secrets") in rules) == bool(opted_in)  # Secrets are read only when opted in
    if opted_in:
        [deployment] = [d for d in loaded(template(values)) if d and d["kind"] == "Deployment"]
        assert "--config-secrets" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    # The Lease, in the release namespace only, and get/update only on the operator's own Lease.
    assert rules_of(template(values), "Role", leader=True) == table(own_namespace=True)
    [role] = [d for d in loaded(template(values)) if d and d["kind"] == "Role"
              and d["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == "appkeeper-system"
    named = [r for r in role["rules"] if "get" in r["verbs"]]
    assert named == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                      "resourceNames": ["appkeeper"], "verbs": ["get", "update", "delete"]}]


def test_shards_are_passed_on_and_their_leases_granted() -> None:
    docs = [d for d in loaded(helm("template", "appkeeper", str(CHART), "--kube-version", "1.36.3",
                                               "--namespace", "appkeeper-system", "--set", "shards=6").stdout) if d]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    assert "--shards=6" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    [role] = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader-election")]
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "verbs": ["get", "update", "delete"]} in role["rules"]  # member Leases are named after the pods
    alone = helm("template", "appkeeper", str(CHART), "--kube-version", "1.36.3", "--set", "shards=6",
                 "--set", "leaderElection.enabled=false", "--set", "replicas=1", check=False)
    assert alone.returncode != 0
    assert "shards > 1 needs leaderElection.enabled" in alone.stderr


def test_two_replicas_elect_a_leader_by_default() -> None:
    docs = [d for d in loaded(template("default")) if d]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" in args
    assert "--leader-election-id=appkeeper" in args
    assert [d["spec"]["minAvailable"] for d in docs if d["kind"] == "PodDisruptionBudget"] == [1]
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"] == \
        "kubernetes.io/hostname"
    without = helm("template", "appkeeper", str(CHART), "--kube-version", "1.36.3", "--set",
                   "leaderElection.enabled=false", check=False)
    assert without.returncode != 0
    assert "replicas > 1 needs leaderElection.enabled" in without.stderr


def test_helm_lint_and_schema() -> None:
    helm("lint", str(CHART), "--strict")
    bad = helm("lint", str(CHART), "--set", "workers=0", check=False)
    assert bad.returncode != 0
    assert "/workers" in bad.stdout + bad.stderr
    typo = helm("lint", str(CHART), "--set", "wokers=3", check=False)
    assert typo.returncode != 0


def test_the_chart_renders_the_repository_crd_with_the_release_labels_and_kept() -> None:
    """crds.enabled (default): the release installs and upgrades the CRD; crds.keep (default): uninstall
    leaves it, and so every App. (tests/unit/test_crd.py keeps the template's text in step.)"""
    assert not (CHART / "crds").exists(), "crds/ is installed once and never upgraded: the CRD is a template"
    repository = yaml.load((ROOT / "crds" / "apps.appkeeper.dev.yaml").read_text(), Loader=yaml.CSafeLoader)
    docs = [d for d in loaded(template("default")) if d]
    [crd] = crds_of(docs)
    assert crd["spec"] == repository["spec"]
    assert crd["metadata"]["name"] == "apps.appkeeper.dev"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "appkeeper"
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert upgrade_hooks(docs) == []


def test_crds_keep_false_lets_uninstall_delete_the_crd() -> None:
    [crd] = crds_of(docs_of("--set", "crds.keep=false"))
    assert "annotations" not in crd["metadata"]


def test_crds_disabled_renders_no_crd_and_upgrades_apply_it_with_rights_to_that_crd_only() -> None:
    docs = docs_of("--set", "crds.enabled=false")
    assert crds_of(docs) == []
    hooks = upgrade_hooks(docs)
    assert sorted(d["kind"] for d in hooks) == ["ClusterRole", "ClusterRoleBinding", "Job", "ServiceAccount"]
    [role] = [d for d in hooks if d["kind"] == "ClusterRole"]
    assert role["rules"] == [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                              "resourceNames": ["apps.appkeeper.dev"], "verbs": ["get", "patch"]}]
    [job] = [d for d in hooks if d["kind"] == "Job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["crds", "apply"]
    neither = docs_of("--set", "crds.enabled=false", "--set", "crds.upgrade=false")
    assert upgrade_hooks(neither) == []
    assert crds_of(neither) == []


def test_the_overrides_users_expect() -> None:
    out = helm("template", "rel", str(CHART), "--kube-version", "1.36.3", "--set", "crds.enabled=false",
               "--set", "fullnameOverride=keeper", "--set", "nameOverride=ak",
               "--set", "image.digest=sha256:" + "a" * 64, "--set", "extraArgs={--log-level=debug}",
               "--set", "extraEnv[0].name=HTTPS_PROXY", "--set", "extraEnv[0].value=http://127.0.0.1:3128",
               "--set", "podAnnotations.team=web", "--set", "priorityClassName=ops",
               "--set", "resources.limits.memory=1Gi").stdout
    docs = [d for d in loaded(out) if d]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert deployment["metadata"]["name"] == "keeper"
    assert {d["metadata"]["name"] for d in docs if d["kind"] in ("ServiceAccount", "ClusterRole")} == \
        {"keeper", "keeper-crds"}
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "ak"
    assert container["image"] == "ghcr.io/appkeeper/appkeeper@sha256:" + "a" * 64
    assert container["args"][-1] == "--log-level=debug"
    assert {"name": "HTTPS_PROXY", "value": "http://127.0.0.1:3128"} in container["env"]
    assert pod["metadata"]["annotations"] == {"team": "web"}
    assert pod["spec"]["priorityClassName"] == "ops"
    assert container["resources"]["limits"]["memory"] == "1Gi"
    bad = helm("template", "rel", str(CHART), "--set", "image.digest=latest", check=False)
    assert bad.returncode != 0
    assert "digest" in bad.stderr


def test_chart_app_version_is_the_package_version() -> None:
    from appkeeper import __version__

    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"] == __version__


def test_pod_settings_are_values_and_the_test_pod_follows_the_image_and_its_secrets() -> None:
    docs = docs_of("--set", "image.digest=sha256:" + "a" * 64, "--set", "imagePullSecrets[0].name=regcred",
                   "--set", "podSecurityContext.runAsUser=1000", "--set", "livenessProbe.periodSeconds=30",
                   "--set", "topologySpreadConstraints[0].maxSkew=1",
                   "--set", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                   "--set", "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
                   "--set", "global.imageRegistry=example.com")  # a parent chart's globals are accepted
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["containers"][0]["livenessProbe"]["periodSeconds"] == 30
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    [test_pod] = [d for d in docs if d["kind"] == "Pod"]
    assert test_pod["spec"]["containers"][0]["image"] == "ghcr.io/appkeeper/appkeeper@sha256:" + "a" * 64
    assert test_pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert not [d for d in docs_of("--set", "metrics.service.enabled=false") if d["kind"] == "Pod"]


def test_helm_template_works_offline_and_an_old_kubernetes_is_refused() -> None:
    offline = helm("template", "appkeeper", str(CHART))  # Helm assumes v1.20.0 when no cluster answers
    assert "kind: Deployment" in offline.stdout
    old = helm("template", "appkeeper", str(CHART), "--kube-version", "1.29.0", check=False)
    assert old.returncode != 0
    assert "appkeeper needs Kubernetes 1.30 or later; this cluster is v1.29.0" in old.stderr
