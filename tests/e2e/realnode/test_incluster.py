"""The operator as users run it: the image built here, installed by the Helm chart onto the real node
under the restricted Pod Security Standard, reconciling Apps whose pods really run."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from typing import Any

import pytest

from ..conftest import apply, get, kubectl, wait_for
from ..test_operator import condition, wait_healthy, wait_ready
from .conftest import ROOT, WEB_IMAGE, Release, real_app

WEB = {
    "replicas": 2,
    "ports": [{"name": "http", "containerPort": 8080, "servicePort": 80}],
    "probes": {"readiness": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1}},
    "volumes": [{"name": "data", "mountPath": "/www/data", "persistent": {"size": "64Mi"}}],
}
# A registry address on loopback where nothing listens: a real pull failure, no traffic leaves.
UNPULLABLE = "127.0.0.1:5999/appkeeper/missing:1"


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


def served(url: str, expected: str, timeout: float = 30) -> None:
    """`url` answers `expected`, once kube-proxy has programmed the Service's current endpoints
    (Ready pods reach its rules a moment later; until then the ClusterIP refuses)."""
    def answer() -> bool:
        try:
            return fetch(url) == expected
        except OSError:
            return False

    wait_for(f"{url} to serve {expected!r}", answer, timeout=timeout)


def pods(ns: str, app_name: str) -> list[dict[str, Any]]:
    out = kubectl("get", "pods", "-n", ns, "-l", f"appkeeper.dev/app={app_name}", "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def degraded_reason(name: str, ns: str) -> tuple[str, str] | None:
    c = condition(name, ns, "Degraded")
    return (c["reason"], c["message"]) if c.get("status") == "True" else None


def test_operator_pods_run_the_image_built_here_under_restricted(incluster: Release, real_node: str) -> None:
    pods = incluster.operator_pods()
    assert len(pods) == 2  # the chart's default: two replicas, one leader
    for pod in pods:
        assert pod["spec"]["nodeName"] == real_node
        assert pod["status"]["phase"] == "Running"
        [cs] = pod["status"]["containerStatuses"]
        assert cs["ready"] is True  # /healthz is green on the standby too
        assert cs["image"] == incluster.image
    leader = wait_for("a leader", incluster.leader, timeout=30)
    assert leader in {p["metadata"]["name"] for p in pods}
    labels = get("namespace", incluster.namespace, "default")["metadata"]["labels"]  # type: ignore[index]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The namespace really enforces it: a pod without the restricted settings is refused at admission.
    refused = kubectl("run", "unrestricted", "-n", incluster.namespace, f"--image={WEB_IMAGE}", check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    # The real ServiceAccount token is mounted and used: the operator lists Apps cluster-wide.
    assert "Forbidden" not in incluster.logs()


def test_web_app_serves_through_its_service_and_keeps_its_volume(incluster: Release, namespace: str,
                                                                 real_node: str) -> None:
    t0 = time.monotonic()
    apply(real_app("web", **WEB), namespace)
    body = wait_ready("web", namespace, timeout=120)
    print(f"App with 2 real replicas, readiness probe and a claim Ready in {time.monotonic() - t0:.1f}s")
    assert body["status"]["readyReplicas"] == 2
    running = pods(namespace, "web")
    assert {p["spec"]["nodeName"] for p in running} == {real_node}
    ip = get("service", "web", namespace)["spec"]["clusterIP"]  # type: ignore[index]
    # From the host, through kube-proxy's rules for the ClusterIP, to a real httpd.
    served(f"http://{ip}/", "appkeeper test-web\n")

    first = running[0]["metadata"]["name"]
    kubectl("exec", "-n", namespace, first, "--", "sh", "-c", "echo kept > /www/data/probe.txt")
    kubectl("delete", "pod", first, "-n", namespace, "--grace-period=1")
    wait_for("a replacement pod Ready", lambda: len([
        p for p in pods(namespace, "web") if p["metadata"]["name"] != first
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])]) == 2, timeout=90)
    # Both replicas (the replacement included) serve the file from the claim: four answers in a
    # row, once kube-proxy no longer sends a connection to the deleted pod's address (it lags the
    # Endpoints by a moment, longer just after the chaos tests restarted the API server).
    def every_endpoint_serves() -> bool:
        try:
            return all(fetch(f"http://{ip}/data/probe.txt", timeout=2) == "kept\n" for _ in range(4))
        except OSError:
            return False

    wait_for("every endpoint to serve the file from the claim", every_endpoint_serves, timeout=90)


def test_broken_images_say_which_container_failed_and_why(incluster: Release, namespace: str) -> None:
    apply(real_app("nopull", image=UNPULLABLE), namespace)
    apply(real_app("crash", command=["/bin/sh", "-c", "echo config missing >&2; exit 1"]), namespace)
    t0 = time.monotonic()
    reason, message = wait_for("nopull Degraded", lambda: degraded_reason("nopull", namespace), timeout=90)
    print(f"pull failure shown after {time.monotonic() - t0:.1f}s: {reason}: {message}")
    assert reason in ("ErrImagePull", "ImagePullBackOff")
    assert message.startswith(f"container nopull: {reason}")
    assert "127.0.0.1:5999" in message
    reason, message = wait_for("crash Degraded", lambda: degraded_reason("crash", namespace), timeout=90)
    print(f"crash shown after {time.monotonic() - t0:.1f}s: {reason}: {message}")
    assert reason == "CrashLoopBackOff"
    assert message == 'container crash: CrashLoopBackOff, exit code 1 (Error): "config missing"'
    for name in ("nopull", "crash"):
        st = get("app", name, namespace)["status"]  # type: ignore[index]
        assert st["phase"] == "Degraded"
        assert condition(name, namespace, "Ready").get("status") == "False"


def test_a_bad_update_is_rolled_back_for_real(incluster: Release, namespace: str) -> None:
    spec = dict(WEB, replicas=1, volumes=[], rollout={"progressDeadlineSeconds": 10})
    apply(real_app("roll", **spec), namespace)
    healthy = wait_healthy("roll", namespace, timeout=120)["status"]["lastHealthyRevision"]
    apply(real_app("roll", **dict(spec, image=UNPULLABLE)), namespace)
    t0 = time.monotonic()
    wait_for("RolledBack", lambda: condition("roll", namespace, "Degraded").get("reason") == "RolledBack",
             timeout=120)
    print(f"rolled back {time.monotonic() - t0:.1f}s after the bad update (progress deadline 10s)")
    deployment = get("deployment", "roll", namespace)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == WEB_IMAGE  # type: ignore[index]
    wait_for("the healthy image running and ready again", lambda: [
        p for p in pods(namespace, "roll") if p["spec"]["containers"][0]["image"] == WEB_IMAGE
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])], timeout=90)
    assert get("app", "roll", namespace)["status"]["lastHealthyRevision"] == healthy  # type: ignore[index]


def test_a_crashing_update_is_rolled_back_without_waiting_for_the_deadline(incluster: Release,
                                                                           namespace: str) -> None:
    spec = dict(WEB, replicas=1, volumes=[])  # the progress deadline stays the default 600 s
    apply(real_app("fast", **spec), namespace)
    wait_healthy("fast", namespace, timeout=120)
    apply(real_app("fast", **dict(spec, command=["/bin/sh", "-c", "echo listen failed >&2; exit 1"])), namespace)
    t0 = time.monotonic()
    wait_for("CrashLoopBackOff shown", lambda: (degraded_reason("fast", namespace) or ("",))[0]
             in ("CrashLoopBackOff", "RolledBack"), timeout=60)
    shown = time.monotonic() - t0
    wait_for("RolledBack", lambda: condition("fast", namespace, "Degraded").get("reason") == "RolledBack",
             timeout=120)
    rolled = time.monotonic() - t0
    because = get("app", "fast", namespace)["status"]["rolledBackBecause"]  # type: ignore[index]
    print(f"crash shown {shown:.1f}s and rolled back {rolled:.1f}s after the bad update "
          f"(threshold: 3 restarts; progress deadline 600s): {because}")
    assert because.startswith("container fast: ")
    assert 'exit code 1 (Error): "listen failed"' in because  # the log's line: FallbackToLogsOnError
    assert "restarts, threshold 3)" in because
    assert rolled < 600
    wait_for("the healthy template serving again", lambda: [
        p for p in pods(namespace, "fast") if not p["spec"]["containers"][0].get("command")
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])], timeout=90)


def test_a_failing_pull_is_rolled_back_after_its_threshold(incluster: Release, namespace: str) -> None:
    spec = dict(WEB, replicas=1, volumes=[], rollout={"failureThreshold": {"imagePullSeconds": 15}})
    apply(real_app("pull", **spec), namespace)
    wait_healthy("pull", namespace, timeout=120)
    apply(real_app("pull", **dict(spec, image=UNPULLABLE)), namespace)
    t0 = time.monotonic()
    wait_for("RolledBack", lambda: condition("pull", namespace, "Degraded").get("reason") == "RolledBack",
             timeout=120)
    rolled = time.monotonic() - t0
    because = get("app", "pull", namespace)["status"]["rolledBackBecause"]  # type: ignore[index]
    print(f"pull failure rolled back {rolled:.1f}s after the bad update (threshold 15s): {because}")
    # Pod times are whole seconds (startTime truncates): the threshold holds to within one.
    assert rolled >= 14, "rolled back before the pull had failed for the threshold"
    assert "127.0.0.1:5999" in because
    assert "threshold 15s)" in because
    deployment = get("deployment", "pull", namespace)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == WEB_IMAGE  # type: ignore[index]


# Refuses to start when its config says "bad"; else serves /www, the config mounted under it.
CHECKED = ["/bin/sh", "-c", "[ \"$(cat /www/cfg/value.txt)\" != bad ] || { echo bad config >&2; exit 1; }; "
           "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]


def site(namespace: str, kind: str, value: str) -> None:
    """The App's config source: a ConfigMap, or a Secret (the release is opted in to Secrets)."""
    data = {"value.txt": base64.b64encode(value.encode()).decode() if kind == "Secret" else value}
    apply({"apiVersion": "v1", "kind": kind, "metadata": {"name": "site"}, "data": data}, namespace)


SOURCES = {"ConfigMap": {"configMap": {"name": "site"}}, "Secret": {"secret": {"secretName": "site"}}}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_config_change_rolls_real_pods_and_a_rollback_restores_it(incluster: Release, namespace: str,
                                                                    kind: str) -> None:
    site(namespace, kind, "one\n")
    spec = dict(WEB, replicas=1, command=CHECKED, rollout={"failureThreshold": {"restarts": 2}},
                volumes=[{"name": "cfg", "mountPath": "/www/cfg", **SOURCES[kind]}])
    apply(real_app("conf", **spec), namespace)
    first = wait_healthy("conf", namespace, timeout=120)["status"]["lastHealthyRevision"]
    url = f"http://{get('service', 'conf', namespace)['spec']['clusterIP']}/cfg/value.txt"  # type: ignore[index]
    served(url, "one\n")
    site(namespace, kind, "two\n")
    t0 = time.monotonic()
    served(url, "two\n", timeout=90)  # only new pods see it: a snapshot is immutable
    rolled = time.monotonic() - t0
    template = get("deployment", "conf", namespace)["spec"]["template"]  # type: ignore[index]
    assert template["metadata"]["annotations"]["appkeeper.dev/config-hash"]
    volume = template["spec"]["volumes"][0]
    snapshot = volume["configMap"]["name"] if kind == "ConfigMap" else volume["secret"]["secretName"]
    assert snapshot.startswith("conf-site-")
    copy = get(kind.lower(), snapshot, namespace) or {}
    assert copy.get("immutable") is True
    assert copy["metadata"]["ownerReferences"][0]["kind"] == "App"
    wait_healthy("conf", namespace, timeout=60, after=first)  # the new config proved itself
    site(namespace, kind, "bad")
    t1 = time.monotonic()
    wait_for("RolledBack", lambda: condition("conf", namespace, "Degraded").get("reason") == "RolledBack",
             timeout=120)
    back = time.monotonic() - t1
    served(url, "two\n", timeout=60)  # the old pods, with the old snapshot, while the source says bad
    print(f"a {kind} change served by new pods {rolled:.1f}s after the edit; a bad one rolled back "
          f"{back:.1f}s after its edit, the previous value served again")
    held = get(kind.lower(), "site", namespace) or {}
    assert held["data"]["value.txt"] in ("bad", base64.b64encode(b"bad").decode())
    volume = get("deployment", "conf", namespace)["spec"]["template"]["spec"]["volumes"][0]  # type: ignore[index]
    assert snapshot in (volume.get("configMap", {}).get("name"), volume.get("secret", {}).get("secretName"))


def test_a_restricted_namespace_runs_pods_that_meet_the_standard(incluster: Release, namespace: str) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    nonroot = dict(WEB, replicas=1, volumes=[], pod={"securityContext": {"runAsUser": 65532}})
    apply(real_app("strict", **nonroot), namespace)
    apply(real_app("loose", **dict(nonroot, pod={"securityProfile": "baseline"})), namespace)
    t0 = time.monotonic()
    wait_ready("strict", namespace, timeout=120)
    print(f"an App in a restricted namespace Ready in {time.monotonic() - t0:.1f}s")
    reason, message = wait_for("loose refused", lambda: degraded_reason("loose", namespace), timeout=60)
    print(f"a baseline App in a restricted namespace: {reason}: {message}")
    assert reason == "PodSecurity"
    assert 'violates PodSecurity "restricted:latest"' in message
    pod = pods(namespace, "strict")[0]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_standby_takes_over_when_the_leader_is_killed(incluster: Release, namespace: str) -> None:
    apply(real_app("again", ports=WEB["ports"]), namespace)
    wait_ready("again", namespace, timeout=120)
    old = wait_for("a leader", incluster.leader, timeout=30)
    standby = next(p["metadata"]["name"] for p in incluster.operator_pods() if p["metadata"]["name"] != old)
    t0 = time.monotonic()
    kubectl("delete", "pod", old, "-n", incluster.namespace, "--grace-period=0", "--force")
    new = wait_for("another leader", lambda: (lead := incluster.leader()) and lead != old and lead, timeout=60)
    print(f"failover: {new} leads {time.monotonic() - t0:.1f}s after the leader was killed (lease 15s)")
    assert new == standby
    kubectl("delete", "service", "again", "-n", namespace)
    wait_for("the Service repaired by the new leader", lambda: (get("app", "again", namespace) or {})
             .get("status", {}).get("repairs", {}).get("lastReason") == "ServiceDeleted", timeout=60)
    assert get("service", "again", namespace) is not None
    logs = kubectl("logs", "-n", incluster.namespace, new).stdout
    assert f"repaired {namespace}/again: Service again was deleted; recreated it" in logs
    # The killed pod's replacement stands by.
    wait_for("two operator pods again", lambda: len([
        p for p in incluster.operator_pods()
        if all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])]) == 2, timeout=120)


def test_helm_test_passes(incluster: Release) -> None:
    from .conftest import helm

    out = helm("test", "appkeeper", "-n", incluster.namespace, "--timeout", "120s")
    assert "Phase:          Succeeded" in out.stdout, out.stdout



def older_crd() -> dict[str, Any]:
    """The served CRD as an older release had it: without spec.configRollout."""
    current = get("crd", "apps.appkeeper.dev", "default")
    assert current is not None
    older = {k: current[k] for k in ("apiVersion", "kind", "metadata", "spec")}
    spec_schema = older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec_schema["properties"]["configRollout"]  # a field an older release did not have
    for key in ("managedFields", "generation", "uid", "creationTimestamp"):
        older["metadata"].pop(key, None)
    return older


def test_an_upgrade_brings_the_new_crd_and_keeps_it_when_the_release_lets_it_go(incluster: Release,
                                                                                namespace: str) -> None:
    """crds.enabled (the default): the release upgrades its CRD. An upgrade to crds.enabled=false leaves
    it in place (crds.keep), and the pre-upgrade Job applies the new version's CRD instead."""
    from .conftest import CHART, helm

    app = json.dumps(real_app("upg", configRollout=False, ports=WEB["ports"]))
    try:
        for values in ([], ["--set", "crds.enabled=false"]):
            kubectl("replace", "-f", "-", stdin=json.dumps(older_crd()))
            # As an older kubectl (or --validate=false) would send it: the server prunes what it does not know.
            kubectl("apply", "--validate=false", "-n", namespace, "-f", "-", stdin=app)
            assert "configRollout" not in get("app", "upg", namespace)["spec"]  # type: ignore[index]  # pruned
            t0 = time.monotonic()
            helm("upgrade", "appkeeper", str(CHART), "-n", incluster.namespace, "--reuse-values", *values,
                 "--wait", "--timeout", "180s")
            print(f"helm upgrade {' '.join(values) or '(crds.enabled)'} took {time.monotonic() - t0:.1f}s")
            crd = get("crd", "apps.appkeeper.dev", "default")
            assert crd is not None  # kept: the Apps live on
            assert crd["metadata"].get("deletionTimestamp") is None
            kubectl("apply", "-n", namespace, "-f", "-", stdin=app)  # strict validation: the field is known again
            assert get("app", "upg", namespace)["spec"]["configRollout"] is False  # type: ignore[index]
            assert get("job", "appkeeper-crds", incluster.namespace) is None  # none, or hook-succeeded: cleaned up
    finally:  # whatever happened, the rest of the suite gets the repository's CRD
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))


def generation_ready(name: str, ns: str) -> bool:
    """The App's latest spec is reconciled and it says Ready (ready means served)."""
    body = get("app", name, ns) or {}
    st = body.get("status") or {}
    return bool(st.get("observedGeneration") == body["metadata"]["generation"] and st.get("phase") == "Ready")


def settled_pods(name: str, ns: str, want: object) -> bool:
    """`want` pods, none terminating (pods() leaves out those already going)."""
    every = json.loads(kubectl("get", "pods", "-n", ns, "-l", f"appkeeper.dev/app={name}", "-o", "json").stdout)
    return len(every["items"]) == want and len(pods(ns, name)) == want


class Traffic:
    """A client that sends GETs without pause to `url` from this machine, counting what fails."""

    def __init__(self, url: str) -> None:
        self.url, self.sent = url, 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            try:
                fetch(self.url, timeout=3)
            except OSError as e:
                self.failed.append(f"{time.monotonic():.1f}: {e}")

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_ready_means_served_and_changes_drop_no_request(incluster: Release, namespace: str) -> None:
    """A client sends without pause through the ClusterIP while the App changes its env and scales
    2 -> 1: the drain (a preStop sleep while kube-proxy stops routing) loses no request. And the
    first request right after Ready is answered: Ready waits until the Service routes."""
    spec = dict(WEB, replicas=2, volumes=[])
    apply(real_app("steady", **spec), namespace)
    wait_for("steady Ready", lambda: generation_ready("steady", namespace), timeout=120)
    ip = get("service", "steady", namespace)["spec"]["clusterIP"]  # type: ignore[index]
    assert fetch(f"http://{ip}/") == "appkeeper test-web\n"  # at once: Ready means served
    template = get("deployment", "steady", namespace)["spec"]["template"]["spec"]  # type: ignore[index]
    assert template["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert template["terminationGracePeriodSeconds"] == 35

    with Traffic(f"http://{ip}/") as traffic:
        for change in (dict(spec, env=[{"name": "CHANGED", "value": "1"}]),
                       dict(spec, env=[{"name": "CHANGED", "value": "1"}], replicas=1)):
            apply(real_app("steady", **change), namespace)
            wait_for("the change rolled out and served", lambda: generation_ready("steady", namespace), timeout=120)
            # The old pods drain and go: requests keep flowing through that window too.
            wait_for("the old pods gone", lambda want=change["replicas"]: settled_pods("steady", namespace, want),
                     timeout=90)
    print(f"drain: {traffic.sent} requests through the ClusterIP during an env change and a scale-down, "
          f"{len(traffic.failed)} failed")
    assert traffic.sent > 100
    assert traffic.failed == []


def test_a_crashing_canary_is_aborted_while_the_stable_pods_serve_and_a_good_one_promotes(
        incluster: Release, namespace: str) -> None:
    """Through the ClusterIP, without pause: a canary that crashes is aborted at its first step and
    no request fails (its pods never get ready, so never get traffic); a canary that serves passes
    its steps and the httpGet analysis, and is promoted, and no request fails either."""
    canary = {"steps": [{"replicas": 1, "pause": "5s"}, {"weight": "100%", "pause": "3s"}],
              "analysis": {"httpGet": {"path": "/index.html", "port": "http", "successRate": "100%"}}}
    spec = dict(WEB, replicas=2, volumes=[], rollout={"canary": canary, "failureThreshold": {"restarts": 2}})
    apply(real_app("can", **spec), namespace)
    wait_for("can Ready", lambda: generation_ready("can", namespace), timeout=120)
    ip = get("service", "can", namespace)["spec"]["clusterIP"]  # type: ignore[index]
    with Traffic(f"http://{ip}/") as traffic:
        apply(real_app("can", **dict(spec, command=["/bin/sh", "-c", "echo no config >&2; exit 1"])), namespace)
        t0 = time.monotonic()
        reason = wait_for("CanaryFailed", lambda: (c := condition("can", namespace, "Degraded")).get("reason")
                          == "CanaryFailed" and c["message"], timeout=120)
        aborted = time.monotonic() - t0
        wait_for("the canary's Deployment gone", lambda: get("deployment", "can-canary", namespace) is None,
                 timeout=60)
        assert "step 1/2: container can: " in str(reason)
        assert "no config" in str(reason)  # the crash's own words
        good = dict(spec, env=[{"name": "VERSION", "value": "2"}])
        apply(real_app("can", **good), namespace)
        t1 = time.monotonic()
        wait_for("promoted", lambda: ((get("app", "can", namespace) or {}).get("status") or {}).get("canary", {})
                 .get("phase") == "Promoted", timeout=180)
        promoted = time.monotonic() - t1
        wait_for("the new template rolled out and served", lambda: generation_ready("can", namespace), timeout=120)
        wait_for("the old pods gone", lambda: settled_pods("can", namespace, 2), timeout=90)
    judged = ((get("app", "can", namespace) or {}).get("status") or {})["canary"]["judged"]
    template = get("deployment", "can", namespace)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert template["env"] == [{"name": "VERSION", "value": "2"}]
    print(f"canary: a crashing one aborted {aborted:.1f}s after the change; a good one promoted {promoted:.1f}s "
          f"after its change ({judged}); {traffic.sent} requests through the ClusterIP, {len(traffic.failed)} failed")
    assert "httpGet /index.html on port http of 2 canary pods: 10/10 succeeded" in judged
    assert traffic.sent > 100
    assert traffic.failed == []
