"""The Helm chart, installed for real: its RBAC is what the operator runs with (a TokenRequest token
of the chart's ServiceAccount), upgrade and uninstall work and leave nothing behind."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appkeeper.kinds import rbac_rules

from .conftest import ROOT, app, apply, get, kubectl, start_operator, stop_operator, wait_for
from .test_operator import FULL, wait_ready

CHART = ROOT / "charts" / "appkeeper"
RELEASE_LABEL = "app.kubernetes.io/instance"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture
def release(crd: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    system, watched, other = f"appkeeper-{suffix}", f"team-{suffix}", f"other-{suffix}"
    for ns in (watched, other):
        kubectl("create", "namespace", ns)
    # --take-ownership: the suite applied the CRD (conftest), or an earlier release left it (crds.keep)
    helm("install", "appkeeper", str(CHART), "-n", system, "--create-namespace", "--take-ownership",
         "--set", f"watchNamespaces={{{watched}}}", "--wait=false")
    info = {"system": system, "watched": watched, "other": other, "sa": "appkeeper"}
    try:
        yield info
    finally:
        helm("uninstall", "appkeeper", "-n", system, check=False)
        for ns in (system, watched, other):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)


def token_kubeconfig(path: Path, namespace: str, sa: str) -> tuple[Path, str, str, str]:
    token = kubectl("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
    current = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = current["clusters"][0]["cluster"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": namespace}}],
    }))
    return path, token, cluster["server"], cluster.get("certificate-authority", "")


def api_status(server: str, ca: str, token: str, path: str) -> int:
    import ssl

    ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
    req = urllib.request.Request(server + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def expected_rules() -> set[tuple[str, tuple[str, ...]]]:
    """The kinds table's rules as `kubectl auth can-i --list` names them (resource.group), for the
    release these tests install: watchNamespaces set, a Role per namespace, nothing cluster-scoped."""
    def name(group: str, resource: str) -> str:
        base, _, sub = resource.partition("/")
        return (f"{base}.{group}" if group else base) + (f"/{sub}" if sub else "")

    return {(name(group, resource), verbs) for group, resource, verbs in rbac_rules(cluster_wide=False)}


# What every authenticated identity may do (system:basic-user and friends).
BASELINE = {"selfsubjectreviews.authentication.k8s.io", "selfsubjectaccessreviews.authorization.k8s.io",
            "selfsubjectrulesreviews.authorization.k8s.io"}


def effective_rules(namespace: str, user: str) -> set[tuple[str, tuple[str, ...]]]:
    """What the API server says `user` may do in `namespace` (not what the YAML says)."""
    out = kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={user}").stdout.splitlines()[1:]
    rules = set()
    for line in out:
        resource, rest = line.split(None, 1)
        if resource.startswith("[") or resource in BASELINE:
            continue
        verbs = re.findall(r"\[([^\]]*)\]", rest)[-1].split()
        rules.add((resource, tuple(verbs)))
    return rules


def test_operator_runs_with_exactly_the_charts_rbac(release: dict[str, str], tmp_path: Path) -> None:
    system, watched, other = release["system"], release["watched"], release["other"]
    user = f"system:serviceaccount:{system}:{release['sa']}"
    wait_for("the chart's ServiceAccount", lambda: get("serviceaccount", release["sa"], system))
    # Least privilege as the API server sees it: no more (and no less) than the operator needs.
    assert effective_rules(watched, user) == expected_rules()
    assert effective_rules(other, user) == set()
    assert kubectl("auth", "can-i", "get", "secrets", "-n", watched, f"--as={user}", check=False).stdout.strip() == "no"
    assert kubectl("auth", "can-i", "list", "apps.appkeeper.dev", "-A", f"--as={user}",
                   check=False).stdout.strip() == "no"

    kubeconfig, token, server, ca = token_kubeconfig(tmp_path / "sa.kubeconfig", system, release["sa"])
    # Refused for real, with the operator's own credentials:
    assert api_status(server, ca, token, f"/api/v1/namespaces/{watched}/secrets") == 403
    assert api_status(server, ca, token, f"/apis/appkeeper.dev/v1alpha1/namespaces/{other}/apps") == 403
    assert api_status(server, ca, token, f"/apis/appkeeper.dev/v1alpha1/namespaces/{watched}/apps") == 200

    op = start_operator(tmp_path, f"--namespace={watched}", f"--kubeconfig={kubeconfig}",
                        env={"KUBECONFIG": str(kubeconfig)})
    try:
        spec = dict(FULL, autoscaling={"minReplicas": 2, "maxReplicas": 4})
        apply({"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "metadata": {"name": "shop"},
               "spec": {"image": "nginx:1.27", **spec}}, watched)
        apply({"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "metadata": {"name": "ignored"},
               "spec": {"image": "nginx:1.27"}}, other)
        body = wait_ready("shop", watched)
        kinds = {c["kind"] for c in body["status"]["children"]}
        assert kinds == {"Deployment", "Service", "PersistentVolumeClaim", "Ingress", "HorizontalPodAutoscaler",
                         "PodDisruptionBudget"}
        kubectl("delete", "deployment", "shop", "-n", watched)
        wait_for("repair under the chart's RBAC", lambda: (get("app", "shop", watched) or {}).get("status", {})
                 .get("repairs", {}).get("lastReason") == "DeploymentDeleted")
        assert op.metrics()["appkeeper_apps"] == 1.0  # it sees only the watched namespace
        assert "forbidden" not in op.log_text().lower()
    finally:
        stop_operator(op)


def test_upgrade_and_uninstall_leave_nothing_behind(release: dict[str, str], tmp_path: Path) -> None:
    system, watched = release["system"], release["watched"]
    wait_for("the operator Deployment", lambda: get("deployment", "appkeeper", system))
    # An App the release's operator (its ServiceAccount, run here) reconciled before the uninstall.
    kubeconfig, *_ = token_kubeconfig(tmp_path / "sa.kubeconfig", system, release["sa"])
    op = start_operator(tmp_path, f"--namespace={watched}", f"--kubeconfig={kubeconfig}")
    try:
        apply({"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "metadata": {"name": "kept"},
               "spec": {"image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 80}]}}, watched)
        wait_ready("kept", watched)
    finally:
        stop_operator(op)
    helm("upgrade", "appkeeper", str(CHART), "-n", system, "--reuse-values", "--set", "workers=3")
    args = get("deployment", "appkeeper", system)["spec"]["template"]["spec"]["containers"][0]["args"]  # type: ignore[index]
    assert "--workers=3" in args
    assert f"--namespace={watched}" in args
    assert int(helm("history", "appkeeper", "-n", system, "-o", "json").stdout.count('"revision"')) == 2
    helm("uninstall", "appkeeper", "-n", system, "--wait")
    selector = f"{RELEASE_LABEL}=appkeeper,app.kubernetes.io/managed-by=Helm"
    for ns in (system, watched):
        left = kubectl("get", "deployments,services,serviceaccounts,roles,rolebindings,pods", "-n", ns,
                       "-l", selector, "-o", "name").stdout.split()
        assert left == [], left
    cluster_left = kubectl("get", "clusterroles,clusterrolebindings,validatingadmissionpolicies,"
                           "validatingadmissionpolicybindings", "-l", selector, "-o", "name").stdout.split()
    assert cluster_left == []
    assert helm("status", "appkeeper", "-n", system, check=False).returncode != 0
    # The CRD stays (crds.keep, the default: the release installed it, helm.sh/resource-policy keeps
    # it; Apps would otherwise be deleted with it); so do the Apps, and their children keep running,
    # unmanaged until an operator serves them again.
    crd = get("crd", "apps.appkeeper.dev", "default")
    assert crd is not None
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-namespace"] == system  # it was the release's
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert get("app", "kept", watched) is not None
    deployment = get("deployment", "kept", watched)
    assert deployment is not None
    assert deployment["status"].get("readyReplicas") == 1
    assert get("service", "kept", watched) is not None


def tenant(namespace: str, user: str, *rules: tuple[str, str, str]) -> None:
    """A Role of (verbs, resources) pairs in `namespace`, bound to `user`."""
    for i, (verbs, resources) in enumerate(rules):
        role = f"{user}-{i}"
        kubectl("create", "role", role, "-n", namespace, f"--verb={verbs}", f"--resource={resources}")
        kubectl("create", "rolebinding", role, "-n", namespace, f"--role={role}", f"--user={user}")


def apply_as(user: str, namespace: str, name: str, **spec: object) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", "-n", namespace, f"--as={user}", "-f", "-", stdin=json.dumps(app(name, **spec)),
                   check=False)


APPS = ("get,list,create,update,patch", "apps.appkeeper.dev")
PORTS = [{"name": "http", "containerPort": 80}]


def test_an_app_needs_the_rights_to_create_what_it_implies(release: dict[str, str]) -> None:
    """No confused deputy: the chart's ValidatingAdmissionPolicy asks the authorizer about the user."""
    ns = release["watched"]
    tenant(ns, "alice", APPS)
    tenant(ns, "bob", APPS, ("create", "deployments.apps,services"))
    tenant(ns, "carol", APPS, ("create", "deployments.apps,services,persistentvolumeclaims"),
           ("get", "secrets,serviceaccounts"))

    def admitted() -> bool:  # the policy is enforced a moment after the install (a new name each try:
        # an App admitted before that would now be an update of an unchanged spec, never asked about)
        return "may not create" in apply_as("alice", ns, f"probe-{uuid.uuid4().hex[:6]}", ports=PORTS).stderr

    wait_for("the admission policy in force", admitted, timeout=30)
    refused = apply_as("alice", ns, "web", ports=PORTS)
    assert refused.returncode != 0
    assert "user alice may not create deployments.apps in namespace" in refused.stderr
    ok = apply_as("bob", ns, "web", ports=PORTS)
    assert ok.returncode == 0, ok.stderr
    # Bob may create Deployments and Services, but not claims, nor read Secrets or ServiceAccounts.
    claim = apply_as("bob", ns, "db", volumes=[{"name": "d", "mountPath": "/d", "persistent": {"size": "1Gi"}}])
    assert "may not create persistentvolumeclaims" in claim.stderr
    secret = apply_as("bob", ns, "leak", volumes=[{"name": "s", "mountPath": "/s", "secret": {"secretName": "token"}}])
    assert "may not get every Secret this App has its pods use (token)" in secret.stderr
    powerful = apply_as("bob", ns, "admin", pod={"serviceAccountName": "cluster-admin-sa"})
    assert "may not get serviceaccount cluster-admin-sa" in powerful.stderr
    # Finding 5: nor a ConfigMap bob may not read (the operator would copy it into a snapshot the
    # pods mount), nor the snapshot it would create for him.
    private = apply_as("bob", ns, "peek", envFrom=[{"configMapRef": {"name": "private"}}])
    assert "may not create configmaps in namespace" in private.stderr
    tenant(ns, "dave", APPS, ("create", "deployments.apps,services,configmaps"))
    private = apply_as("dave", ns, "peek", envFrom=[{"configMapRef": {"name": "private"}}])
    assert "may not get every ConfigMap this App has its pods use (private)" in private.stderr
    # Carol may do all of it.
    both = apply_as("carol", ns, "full", pod={"serviceAccountName": "default"}, volumes=[
        {"name": "s", "mountPath": "/s", "secret": {"secretName": "token"}},
        {"name": "d", "mountPath": "/d", "persistent": {"size": "1Gi"}}])
    assert both.returncode == 0, both.stderr
    # Writes that leave the spec as it is (metadata, status, finalizers) are not asked about.
    assert kubectl("annotate", "app/web", "-n", ns, "note=x", "--as=alice").returncode == 0
    # Outside the watched namespaces the release's policy does not apply.
    other = release["other"]
    tenant(other, "alice", APPS)
    assert apply_as("alice", other, "web", ports=PORTS).returncode == 0


def test_cluster_wide_the_policy_refuses_apps_in_kube_system_and_unlabelled_namespaces(crd: str) -> None:
    suffix = uuid.uuid4().hex[:6]
    system, served, unserved = f"appkeeper-cw-{suffix}", f"served-{suffix}", f"unserved-{suffix}"
    for ns in (served, unserved):
        kubectl("create", "namespace", ns)
    kubectl("label", "namespace", served, "appkeeper-served=true")
    # Only the policy matters here: the operator's one pod is kept off every node.
    helm("install", f"cw-{suffix}", str(CHART), "-n", system, "--create-namespace", "--take-ownership",
         "--set", "replicas=1",
         "--set-string", "nodeSelector.appkeeper-test=nowhere",
         "--set-string", "admissionPolicy.namespaceLabels.appkeeper-served=true", "--wait=false")
    try:
        def enforced() -> bool:
            return "are not served in namespace" in apply(app(f"probe-{uuid.uuid4().hex[:6]}"), unserved,
                                                          check=False).stderr

        wait_for("the admission policy in force", enforced, timeout=30)
        for ns in ("kube-system", unserved):
            proc = apply(app("web"), ns, check=False)
            assert proc.returncode != 0
            assert f"Apps are not served in namespace {ns}" in proc.stderr
        assert apply(app("web"), served).returncode == 0
    finally:
        helm("uninstall", f"cw-{suffix}", "-n", system, "--wait", check=False)
        for ns in (system, served, unserved):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)
        kubectl("delete", "app", "web", "-n", "kube-system", "--ignore-not-found", check=False)
