"""The bad-input corpus, as an attacker or a careless user writes Apps.

Two tables. REJECTED: what the schema (OpenAPI, CEL, the generated core/v1 schemas) refuses at
`kubectl apply`, the error naming the field. ANSWERED: what only the cluster can judge: the App is
accepted and the operator answers it with a status (phase, reason, the cluster's words) within
seconds, while 20 healthy Apps converge beside them and the operator logs no traceback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .conftest import Operator, app, apply, get, kubectl, wait_for

PROBE = {"httpGet": {"path": "/", "port": 80}}
PORTS = [{"name": "http", "containerPort": 80}]


def vol(**extra: Any) -> dict[str, Any]:
    return {"volumes": [{"name": "d", "mountPath": "/d", **extra}]}


def claim(**persistent: Any) -> dict[str, Any]:
    return vol(persistent={"size": "1Gi", **persistent})


def pod(**fields: Any) -> dict[str, Any]:
    return {"pod": fields}


def probe(kind: str = "liveness", **fields: Any) -> dict[str, Any]:
    return {"probes": {kind: {**PROBE, **fields}}}


def affinity(weight: int) -> dict[str, Any]:
    term = {"weight": weight, "preference": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}}
    return pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term]}})


@dataclass
class Bad:
    spec: dict[str, Any]
    field: str  # named in kubectl's error
    name: str = "bad"


LONG = "a" * 53
REJECTED: dict[str, Bad] = {
    # The App's name: it names the Service and is a label value on every child.
    "name-dots": Bad({}, "metadata.name", "a.b"),
    "name-digit-first": Bad({}, "metadata.name", "1abc"),
    "name-trailing-dash": Bad({}, "metadata.name", "abc-"),
    "name-upper": Bad({}, "metadata.name", "Shop"),
    "name-64": Bad({}, "metadata.name", "a" * 64),
    "name-53-stateful": Bad(claim(perReplica=True), "metadata.name", LONG),
    "name-plus-claim-63": Bad(vol(name="v" * 20, persistent={"size": "1Gi"}), "metadata.name", "a" * 43),
    # Image.
    "image-missing": Bad({"image": None}, "spec.image"),
    "image-empty": Bad({"image": ""}, "spec.image"),
    "image-space": Bad({"image": "a b"}, "spec.image"),
    "image-513": Bad({"image": "x" * 513}, "spec.image"),
    "pull-policy": Bad({"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy"),
    "pull-secret-name": Bad({"imagePullSecrets": ["Bad Secret"]}, "spec.imagePullSecrets[0]"),
    "unknown-field": Bad({"replicaz": 3}, "spec.replicaz"),
    # Replicas.
    "replicas-negative": Bad({"replicas": -1}, "spec.replicas"),
    "replicas-10001": Bad({"replicas": 10001}, "spec.replicas"),
    "replicas-2^40": Bad({"replicas": 2**40}, "spec.replicas"),
    "replicas-string": Bad({"replicas": "three"}, "spec.replicas"),
    "suspend-string": Bad({"suspend": "yes"}, "spec.suspend"),
    # Ports.
    "port-0": Bad({"ports": [{"name": "http", "containerPort": 0}]}, "spec.ports[0].containerPort"),
    "port-70000": Bad({"ports": [{"name": "http", "containerPort": 70000}]}, "spec.ports[0].containerPort"),
    "port-name-dup": Bad({"ports": [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]},
                         "spec.ports[1]"),
    "port-name-upper": Bad({"ports": [{"name": "HTTP", "containerPort": 80}]}, "spec.ports[0].name"),
    "port-name-digits": Bad({"ports": [{"name": "8080", "containerPort": 80}]}, "spec.ports[0].name"),
    "port-name-double-dash": Bad({"ports": [{"name": "a--b", "containerPort": 80}]}, "spec.ports[0].name"),
    "port-name-16": Bad({"ports": [{"name": "a" * 16, "containerPort": 80}]}, "spec.ports[0].name"),
    "port-name-dash-first": Bad({"ports": [{"name": "-a", "containerPort": 80}]}, "spec.ports[0].name"),
    "service-port-clash": Bad({"ports": [{"name": "a", "containerPort": 80, "servicePort": 90},
                                         {"name": "b", "containerPort": 81, "servicePort": 90}]}, "spec.ports"),
    "service-port-negative": Bad({"ports": [{"name": "a", "containerPort": 80, "servicePort": -1}]},
                                 "spec.ports[0].servicePort"),
    "protocol": Bad({"ports": [{"name": "a", "containerPort": 80, "protocol": "HTTP"}]}, "spec.ports[0].protocol"),
    "ports-33": Bad({"ports": [{"name": f"p{i}", "containerPort": 1000 + i} for i in range(33)]}, "spec.ports"),
    # Environment.
    "env-name-equals": Bad({"env": [{"name": "A=B", "value": "x"}]}, "spec.env[0].name"),
    "env-name-unicode": Bad({"env": [{"name": "ÄÖ", "value": "x"}]}, "spec.env[0].name"),
    "env-name-empty": Bad({"env": [{"name": "", "value": "x"}]}, "spec.env[0].name"),
    "env-value-and-from": Bad({"env": [{"name": "A", "value": "x", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}}}]}, "spec.env[0]"),
    "env-from-unknown": Bad({"env": [{"name": "A", "valueFrom": {"bogus": {}}}]}, "spec.env[0].valueFrom.bogus"),
    "env-from-no-key": Bad({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c"}}}]},
                           "spec.env[0].valueFrom.configMapKeyRef.key"),
    "envfrom-unknown": Bad({"envFrom": [{"configMapReff": {"name": "c"}}]}, "spec.envFrom[0].configMapReff"),
    # Resources.
    "cpu-negative": Bad({"resources": {"requests": {"cpu": "-1"}}}, "spec.resources.requests.cpu"),
    "cpu-negative-int": Bad({"resources": {"requests": {"cpu": -1}}}, "spec.resources.requests.cpu"),
    "cpu-garbage": Bad({"resources": {"requests": {"cpu": "fast"}}}, "spec.resources.requests.cpu"),
    "memory-garbage": Bad({"resources": {"limits": {"memory": "lots"}}}, "spec.resources.limits.memory"),
    # Probes: the generated core/v1 Probe, and rules core/v1 enforces in Go.
    "probe-two-handlers": Bad(probe(tcpSocket={"port": 80}), "spec.probes.liveness"),
    "probe-no-handler": Bad({"probes": {"readiness": {"periodSeconds": 5}}}, "spec.probes.readiness"),
    "probe-negative-period": Bad(probe(periodSeconds=-5), "spec.probes.liveness.periodSeconds"),
    "probe-2^40-timeout": Bad(probe(timeoutSeconds=2**40), "spec.probes.liveness.timeoutSeconds"),
    "probe-liveness-success-2": Bad(probe(successThreshold=2), "spec.probes.liveness.successThreshold"),
    "probe-startup-success-2": Bad(probe("startup", successThreshold=2), "spec.probes.startup.successThreshold"),
    "probe-http-no-port": Bad({"probes": {"startup": {"httpGet": {"path": "/"}}}}, "spec.probes.startup.httpGet.port"),
    "probe-http-typo": Bad({"probes": {"liveness": {"httpGet": {"paht": "/", "port": 80}}}},
                           "spec.probes.liveness.httpGet.paht"),
    "probe-scheme": Bad({"probes": {"liveness": {"httpGet": {"port": 80, "scheme": "FTP"}}}},
                        "spec.probes.liveness.httpGet.scheme"),
    "probe-grpc-port-0": Bad({"probes": {"liveness": {"grpc": {"port": 0}}}}, "spec.probes.liveness.grpc.port"),
    "probe-unknown": Bad(probe(everySeconds=3), "spec.probes.liveness.everySeconds"),
    # Volumes.
    "volume-two-sources": Bad(vol(emptyDir={}, secret={"secretName": "s"}), "spec.volumes[0]"),
    "volume-no-source": Bad(vol(), "spec.volumes[0]"),
    "volume-name-upper": Bad({"volumes": [{"name": "Data", "mountPath": "/d", "emptyDir": {}}]},
                             "spec.volumes[0].name"),
    "mount-relative": Bad({"volumes": [{"name": "d", "mountPath": "relative", "emptyDir": {}}]},
                          "spec.volumes[0].mountPath"),
    "mount-dup": Bad({"volumes": [{"name": "a", "mountPath": "/d", "emptyDir": {}},
                                  {"name": "b", "mountPath": "/d", "emptyDir": {}}]}, "spec.volumes"),
    "size-garbage": Bad(claim(size="lots"), "spec.volumes[0].persistent.size"),
    "size-negative": Bad(claim(size="-1Gi"), "spec.volumes[0].persistent.size"),
    "size-zero": Bad(claim(size="0"), "spec.volumes[0].persistent.size"),
    "size-zero-int": Bad(claim(size=0), "spec.volumes[0].persistent.size"),
    "rwop-mixed": Bad(claim(accessModes=["ReadWriteOncePod", "ReadWriteOnce"]),
                      "spec.volumes[0].persistent.accessModes"),
    "access-modes-empty": Bad(claim(accessModes=[]), "spec.volumes[0].persistent.accessModes"),
    "access-mode-unknown": Bad(claim(accessModes=["WriteMany"]), "spec.volumes[0].persistent.accessModes[0]"),
    "storage-class-name": Bad(claim(storageClassName="Fast_SSD"), "spec.volumes[0].persistent.storageClassName"),
    "subpath-dotdot": Bad(vol(emptyDir={}, subPath="../etc"), "spec.volumes[0].subPath"),
    "subpath-inner-dotdot": Bad(vol(emptyDir={}, subPath="a/../../b"), "spec.volumes[0].subPath"),
    "subpath-absolute": Bad(vol(emptyDir={}, subPath="/etc"), "spec.volumes[0].subPath"),
    "configmap-item-dotdot": Bad(vol(configMap={"name": "c", "items": [{"key": "k", "path": "../x"}]}),
                                 "spec.volumes[0].configMap.items[0].path"),
    "secret-item-absolute": Bad(vol(secret={"secretName": "s", "items": [{"key": "k", "path": "/etc/passwd"}]}),
                                "spec.volumes[0].secret.items[0].path"),
    "configmap-mode-1000": Bad(vol(configMap={"name": "c", "defaultMode": 1000}),
                               "spec.volumes[0].configMap.defaultMode"),
    "configmap-name": Bad(vol(configMap={"name": "Bad_Name"}), "spec.volumes[0].configMap.name"),
    "configmap-no-name": Bad(vol(configMap={"optional": True}), "spec.volumes[0].configMap.name"),
    "secret-unknown": Bad(vol(secret={"secretName": "s", "mode": 1}), "spec.volumes[0].secret.mode"),
    "emptydir-negative": Bad(vol(emptyDir={"sizeLimit": "-1Gi"}), "spec.volumes[0].emptyDir.sizeLimit"),
    "emptydir-medium": Bad(vol(emptyDir={"medium": "Disk"}), "spec.volumes[0].emptyDir.medium"),
    # Service and Ingress.
    "service-type": Bad({"service": {"type": "Magic"}}, "spec.service.type"),
    "service-annotation-key": Bad({"ports": PORTS, "service": {"annotations": {"bad key": "x"}}},
                                  "spec.service.annotations"),
    "ingress-no-ports": Bad({"ingress": {"host": "a.example.com"}}, "spec.ingress"),
    "ingress-port-unknown": Bad({"ports": PORTS, "ingress": {"port": "grpc"}}, "spec.ingress.port"),
    "ingress-no-service": Bad({"ports": PORTS, "service": {"type": "None"}, "ingress": {}}, "spec.service.type"),
    "ingress-host-upper": Bad({"ports": PORTS, "ingress": {"host": "Shop.Example.com"}}, "spec.ingress.host"),
    "ingress-host-ip": Bad({"ports": PORTS, "ingress": {"host": "10.0.0.1"}}, "spec.ingress.host"),
    "ingress-host-dash": Bad({"ports": PORTS, "ingress": {"host": "-a.example.com"}}, "spec.ingress.host"),
    "ingress-host-space": Bad({"ports": PORTS, "ingress": {"host": "a example.com"}}, "spec.ingress.host"),
    "ingress-class": Bad({"ports": PORTS, "ingress": {"className": "Nginx_Class"}}, "spec.ingress.className"),
    "ingress-tls-secret": Bad({"ports": PORTS, "ingress": {"tls": {"secretName": "Bad Secret"}}},
                              "spec.ingress.tls.secretName"),
    "ingress-path": Bad({"ports": PORTS, "ingress": {"path": "no-slash"}}, "spec.ingress.path"),
    "ingress-path-type": Bad({"ports": PORTS, "ingress": {"pathType": "Regex"}}, "spec.ingress.pathType"),
    "ingress-annotation-key": Bad({"ports": PORTS, "ingress": {"annotations": {"a/b/c": "x"}}},
                                  "spec.ingress.annotations"),
    # Autoscaling.
    "hpa-min-over-max": Bad({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "spec.autoscaling.minReplicas"),
    "hpa-max-0": Bad({"autoscaling": {"maxReplicas": 0}}, "spec.autoscaling.maxReplicas"),
    "hpa-max-2^40": Bad({"autoscaling": {"maxReplicas": 2**40}}, "spec.autoscaling.maxReplicas"),
    "hpa-no-max": Bad({"autoscaling": {"minReplicas": 2}}, "spec.autoscaling.maxReplicas"),
    "hpa-cpu-0": Bad({"autoscaling": {"maxReplicas": 3, "targetCPUUtilizationPercentage": 0}},
                     "spec.autoscaling.targetCPUUtilizationPercentage"),
    "hpa-memory-2^33": Bad({"autoscaling": {"maxReplicas": 3, "targetMemoryUtilizationPercentage": 2**33}},
                           "spec.autoscaling.targetMemoryUtilizationPercentage"),
    # Schedules.
    "cron-words": Bad({"schedules": [{"name": "w", "start": "every day", "end": "0 9 * * *", "replicas": 1}]},
                      "spec.schedules[0].start"),
    "schedule-replicas-2^40": Bad({"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *",
                                                  "replicas": 2**40}]}, "spec.schedules[0].replicas"),
    "schedule-replicas-negative": Bad({"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *",
                                                      "replicas": -1}]}, "spec.schedules[0].replicas"),
    "schedule-name": Bad({"schedules": [{"name": "Bad_Name", "start": "0 8 * * *", "end": "0 9 * * *",
                                         "replicas": 1}]}, "spec.schedules[0].name"),
    "schedule-no-end": Bad({"schedules": [{"name": "w", "start": "0 8 * * *", "replicas": 1}]},
                           "spec.schedules[0].end"),
    # Rollout.
    "surge-and-unavailable-0": Bad({"rollout": {"maxSurge": 0, "maxUnavailable": 0}}, "spec.rollout.maxUnavailable"),
    "surge-0%-unavailable-0": Bad({"rollout": {"maxSurge": "0%", "maxUnavailable": 0}},
                                  "spec.rollout.maxUnavailable"),
    "surge-garbage": Bad({"rollout": {"maxSurge": "lots"}}, "spec.rollout.maxSurge"),
    "surge-negative": Bad({"rollout": {"maxSurge": -1}}, "spec.rollout.maxSurge"),
    "unavailable-150%": Bad({"rollout": {"maxUnavailable": "150%"}}, "spec.rollout.maxUnavailable"),
    "deadline-0": Bad({"rollout": {"progressDeadlineSeconds": 0}}, "spec.rollout.progressDeadlineSeconds"),
    "deadline-2^40": Bad({"rollout": {"progressDeadlineSeconds": 2**40}}, "spec.rollout.progressDeadlineSeconds"),
    "history-0": Bad({"rollout": {"revisionHistoryLimit": 0}}, "spec.rollout.revisionHistoryLimit"),
    "restarts-0": Bad({"rollout": {"failureThreshold": {"restarts": 0}}}, "spec.rollout.failureThreshold.restarts"),
    # Disruption.
    "pdb-both": Bad({"disruption": {"minAvailable": 1, "maxUnavailable": 1}}, "spec.disruption"),
    "pdb-neither": Bad({"disruption": {}}, "spec.disruption"),
    "pdb-150%": Bad({"disruption": {"minAvailable": "150%"}}, "spec.disruption.minAvailable"),
    "pdb-negative": Bad({"disruption": {"maxUnavailable": -1}}, "spec.disruption.maxUnavailable"),
    # Pod: labels, names, the generated core/v1 schemas.
    "label-key": Bad(pod(labels={"bad key": "x"}), "spec.pod.labels"),
    "label-value-64": Bad(pod(labels={"tier": "x" * 64}), "spec.pod.labels.tier"),
    "label-value-chars": Bad(pod(labels={"tier": "bad value!"}), "spec.pod.labels.tier"),
    "annotation-key": Bad(pod(annotations={"-bad": "x"}), "spec.pod.annotations"),
    "node-selector-value": Bad(pod(nodeSelector={"zone": "a b"}), "spec.pod.nodeSelector.zone"),
    "service-account-name": Bad(pod(serviceAccountName="Admin_SA"), "spec.pod.serviceAccountName"),
    "priority-class-name": Bad(pod(priorityClassName="System Critical"), "spec.pod.priorityClassName"),
    "security-profile": Bad(pod(securityProfile="privileged"), "spec.pod.securityProfile"),
    "toleration-operator": Bad(pod(tolerations=[{"key": "a", "operator": "Maybe"}]),
                               "spec.pod.tolerations[0].operator"),
    "toleration-unknown": Bad(pod(tolerations=[{"key": "a", "efect": "NoSchedule"}]),
                              "spec.pod.tolerations[0].efect"),
    "toleration-negative-seconds": Bad(pod(tolerations=[{"key": "a", "tolerationSeconds": -1}]),
                                       "spec.pod.tolerations[0].tolerationSeconds"),
    "affinity-typo": Bad(pod(affinity={"nodeAfinity": {}}), "spec.pod.affinity.nodeAfinity"),
    "affinity-weight-0": Bad(affinity(0), "spec.pod.affinity.nodeAffinity"),
    "affinity-weight-101": Bad(affinity(101), "spec.pod.affinity.nodeAffinity"),
    "run-as-user-negative": Bad(pod(securityContext={"runAsUser": -1}), "spec.pod.securityContext.runAsUser"),
    "capabilities-not-list": Bad(pod(containerSecurityContext={"capabilities": {"drop": "ALL"}}),
                                 "spec.pod.containerSecurityContext.capabilities.drop"),
    "privileged-string": Bad(pod(containerSecurityContext={"privileged": "yes"}),
                             "spec.pod.containerSecurityContext.privileged"),
    "spread-no-key": Bad(pod(topologySpreadConstraints=[{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]),
                         "spec.pod.topologySpreadConstraints[0].topologyKey"),
    "spread-skew-0": Bad(pod(topologySpreadConstraints=[{"maxSkew": 0, "topologyKey": "zone",
                                                         "whenUnsatisfiable": "DoNotSchedule"}]),
                         "spec.pod.topologySpreadConstraints[0].maxSkew"),
    "spread-when": Bad(pod(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone",
                                                       "whenUnsatisfiable": "Sometimes"}]),
                       "spec.pod.topologySpreadConstraints[0].whenUnsatisfiable"),
}


def body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The App, with the fields set to None left out (so a case can drop the image)."""
    out = app(name, **spec)
    out["spec"] = {k: v for k, v in out["spec"].items() if v is not None}
    return out


def refusal(case: str, bad: Bad, namespace: str) -> str | None:
    """None when kubectl refused the App naming the field and nothing was stored; else what went wrong."""
    name = bad.name if bad.name != "bad" else f"bad-{abs(hash(case)) % 10**8}"
    proc = apply(body(name, bad.spec), namespace, check=False)
    if proc.returncode == 0:
        kubectl("delete", "app", name, "-n", namespace, "--wait=false", check=False)
        return f"{case}: accepted"
    if bad.field not in proc.stderr:
        return f"{case}: the error does not name {bad.field}: {proc.stderr.strip()[:600]}"
    return None


def test_the_schema_refuses_each_bad_app_naming_the_field(crd: str, namespace: str) -> None:
    assert len(REJECTED) >= 100
    with ThreadPoolExecutor(8) as pool:
        problems = [p for p in pool.map(lambda c: refusal(c, REJECTED[c], namespace), REJECTED) if p]
    assert problems == []
    assert json.loads(kubectl("get", "apps", "-n", namespace, "-o", "json").stdout)["items"] == []


@dataclass
class Answer:
    spec: dict[str, Any]
    phase: str
    reason: str  # the Degraded (or, when Failed, the Ready) condition's
    says: str  # in its message
    where: str = "plain"  # the namespace: plain, quota (1 pod), limits (a limits.cpu quota), restricted (Pod Security)
    setup: Callable[[str], None] | None = field(default=None)
    name: str | None = None  # the App's; else one made from the case


def conflicting_service(ns: str) -> None:
    apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "taken"},
           "spec": {"ports": [{"port": 80}]}}, ns)


NO_SA = pod(serviceAccountName="nobody")
NET_ADMIN = pod(containerSecurityContext={"capabilities": {"add": ["NET_ADMIN"]}})
ANSWERED: dict[str, Answer] = {
    "requests-over-limits": Answer({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
                                   "Degraded", "DeploymentRejected", "spec.template.spec.containers[0].resources"),
    "field-ref-unknown": Answer({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]},
                                "Degraded", "DeploymentRejected", "fieldRef.fieldPath"),
    "toleration-exists-value": Answer(pod(tolerations=[{"key": "a", "operator": "Exists", "value": "b"}]),
                                      "Degraded", "DeploymentRejected", "tolerations[0].operator"),
    "seccomp-localhost-no-profile": Answer(pod(securityContext={"seccompProfile": {"type": "Localhost"}}),
                                           "Degraded", "DeploymentRejected", "seccompProfile.localhostProfile"),
    "node-selector-terms-empty": Answer(pod(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}),
        "Degraded", "DeploymentRejected", "nodeSelectorTerms"),
    "time-zone": Answer({"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "replicas": 1,
                                        "timeZone": "Mars/Olympus"}]}, "Failed", "InvalidSpec",
                        "spec.schedules[0].timeZone"),
    "cron-never-fires": Answer({"schedules": [{"name": "w", "start": "0 0 30 2 *", "end": "0 9 * * *",
                                               "replicas": 1}]}, "Failed", "InvalidSpec", "spec.schedules[0].start"),
    "missing-service-account": Answer(NO_SA, "Degraded", "ReplicaFailure", "serviceaccount \"nobody\" not found"),
    "missing-service-account-stateful": Answer({**NO_SA, **claim(perReplica=True)}, "Degraded", "ReplicaFailure",
                                               "StatefulSet"),
    "missing-priority-class": Answer(pod(priorityClassName="nowhere"), "Degraded", "ReplicaFailure", "nowhere"),
    "missing-config-map": Answer({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "absent",
                                                                                         "key": "k"}}}]},
                                 "Degraded", "ConfigMissing", "absent"),
    "child-conflict": Answer({"ports": PORTS}, "Degraded", "ChildConflict", "Service taken", setup=conflicting_service,
                             name="taken"),
    "unschedulable": Answer({"resources": {"requests": {"cpu": "500"}}}, "Degraded", "Unschedulable", "cpu"),
    "quota-exceeded": Answer({"replicas": 3, "resources": {"limits": {"cpu": "100m"}}}, "Degraded", "ReplicaFailure",
                             "exceeded quota", where="quota"),
    "quota-needs-limits": Answer({}, "Degraded", "ReplicaFailure", "must specify limits.cpu", where="limits"),
    "restricted-capability": Answer(NET_ADMIN, "Degraded", "PodSecurity", "NET_ADMIN", where="restricted"),
    "restricted-capability-stateful": Answer({**NET_ADMIN, **claim(perReplica=True)}, "Degraded", "PodSecurity",
                                             "StatefulSet", where="restricted"),
    "restricted-root": Answer(pod(securityContext={"runAsNonRoot": False}), "Degraded", "PodSecurity",
                              "runAsNonRoot", where="restricted"),
}


def namespaces(base: str) -> dict[str, str]:
    """The three places the answered cases live (a quota or Pod Security would touch the healthy Apps)."""
    where = {"plain": base, **{w: f"{base}-{w}" for w in ("quota", "limits", "restricted")}}
    for w in ("quota", "limits", "restricted"):
        kubectl("create", "namespace", where[w])
    kubectl("label", "namespace", where["restricted"], "pod-security.kubernetes.io/enforce=restricted")
    for w, hard in (("quota", {"pods": "1"}), ("limits", {"limits.cpu": "1"})):
        apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "small"}, "spec": {"hard": hard}},
              where[w])
    return where


def answered(name: str, ns: str, want: Answer) -> str | None:
    """None when the App's status answers as expected for its current generation."""
    found = get("app", name, ns) or {}
    st = found.get("status") or {}
    if st.get("observedGeneration") != found.get("metadata", {}).get("generation") or st.get("phase") != want.phase:
        return f"{name}: phase {st.get('phase')!r} (gen {st.get('observedGeneration')}), want {want.phase}"
    kind = "Ready" if want.phase == "Failed" else "Degraded"
    cond = next((c for c in st.get("conditions") or [] if c["type"] == kind), {})
    if cond.get("reason") != want.reason or want.says not in str(cond.get("message")):
        return f"{name}: {kind} {cond.get('reason')}: {cond.get('message')!r}, want {want.reason} saying {want.says!r}"
    return None


def test_every_accepted_bad_app_is_answered_while_healthy_ones_converge(operator: Operator, namespace: str) -> None:
    where = namespaces(namespace)
    try:
        names = {case: want.name or f"x{i}-{case}"[:40].rstrip("-") for i, (case, want) in enumerate(ANSWERED.items())}
        for case, want in ANSWERED.items():
            if want.setup:
                want.setup(where[want.where])
            apply(app(names[case], **want.spec), where[want.where])
        t0 = time.monotonic()
        for i in range(20):
            apply(app(f"ok-{i}", replicas=1, ports=PORTS), namespace)

        def pending() -> list[str]:
            return [p for case, want in ANSWERED.items() if (p := answered(names[case], where[want.where], want))]

        def all_answered() -> bool:
            left = pending()
            if left:
                raise AssertionError("\n".join(left))
            return True

        # None is left Pending, or Healthy while it cannot run.
        wait_for("every bad App answered", all_answered, timeout=60)
        print(f"{len(ANSWERED)} accepted bad Apps answered {time.monotonic() - t0:.1f}s after the last was applied")
        def healthy() -> int:
            return sum((get("app", f"ok-{i}", namespace) or {}).get("status", {}).get("phase") == "Ready"
                       for i in range(20))

        assert wait_for("20 healthy Apps Ready", lambda: healthy() == 20, timeout=90)
        assert operator.proc.poll() is None
        assert "Traceback" not in operator.log_text()
    finally:
        for ns in (where["quota"], where["limits"], where["restricted"]):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)
