"""Pure builders: an App -> the exact children it implies, as the dicts that get applied.
No I/O. Every child carries the contract's labels, an ownerReference to the App, and the hash
of its own content, so an unchanged child is never written twice."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .api import API_VERSION, DRAIN_SECONDS, KIND, STOP_GRACE_SECONDS, App, AppSpec, Json, Volume
from .config import LABEL_SNAPSHOT_OF, ConfigPlan, rewrite, snapshot_data, snapshot_label
from .names import ANN_HASH, ANN_RETAIN, ANN_RETAINED_FROM, LABEL_APP, LABEL_TRACK, MANAGER
from .schedules import scheduled_minimum

CONTAINER_DEFAULT_SECURITY = {"allowPrivilegeEscalation": False, "privileged": False}
POD_DEFAULT_SECURITY = {"seccompProfile": {"type": "RuntimeDefault"}}
# What the restricted Pod Security Standard requires of every pod and container.
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

@dataclass(frozen=True)
class Replicas:
    """How many pods the workload runs, and why."""

    count: int
    reason: str  # Spec, Suspended, Schedule:<name>, Autoscaled


def labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGER,
        LABEL_APP: name,
    }


def selector(name: str) -> dict[str, str]:
    return {LABEL_APP: name}


def selector_string(name: str) -> str:
    return f"{LABEL_APP}={name}"


def owner_reference(app: App) -> Json:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": app.name, "uid": app.uid,
            "controller": True, "blockOwnerDeletion": True}


def content_hash(obj: Json) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _child(app: App, api_version: str, kind: str, name: str, spec_key: str, spec: Any,
           annotations: dict[str, str] | None = None, owned: bool = True,
           extra: Json | None = None, extra_labels: dict[str, str] | None = None) -> Json:
    """`owned: False` leaves out the ownerReference: the garbage collector must never delete it."""
    obj: Json = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": app.namespace,
            "labels": labels(app.name),
        },
        spec_key: spec,
        **(extra or {}),
    }
    if extra_labels:
        obj["metadata"]["labels"].update(extra_labels)
    if owned:
        obj["metadata"]["ownerReferences"] = [owner_reference(app)]
    if annotations:
        obj["metadata"]["annotations"] = dict(annotations)
    obj["metadata"].setdefault("annotations", {})[ANN_HASH] = content_hash(obj)
    return obj


def build_config_snapshot(app: App, snapshot: Json) -> Json:
    """The immutable copy of a ConfigMap or Secret that the pod template names (config.py)."""
    return _child(app, "v1", snapshot["kind"], snapshot["name"], "immutable", True,
                  extra=snapshot_data(snapshot["source"], snapshot["kind"]),
                  extra_labels={LABEL_SNAPSHOT_OF: snapshot_label(snapshot["of"])})


def workload_replicas(spec: AppSpec, now: datetime) -> Replicas:
    if spec.suspend:
        return Replicas(0, "Suspended")
    if spec.autoscaling is not None:
        # The HPA scales the App itself; its decision arrives as spec.replicas.
        return Replicas(spec.replicas, "Autoscaled")
    floor, window = scheduled_minimum(spec, now)
    if window is not None and floor > spec.replicas:
        return Replicas(floor, f"Schedule:{window.name}")
    return Replicas(spec.replicas, "Spec")


def build_workload(app: App, replicas: int, template_override: Json | None = None,
                   config: ConfigPlan | None = None, profile: str = "baseline",
                   drain_seconds: int = DRAIN_SECONDS) -> Json:
    """`template_override`: a rollback's template (it names its own snapshots); else the spec's,
    naming the current config snapshots. `drain_seconds`: the operator's default drain."""
    spec = app.spec
    if template_override:
        template = copy.deepcopy(template_override)
    else:
        template = build_pod_template(app, profile, drain_seconds)
        if config is not None:
            template = rewrite(template, config)
    if spec.is_stateful:
        return _child(app, "apps/v1", "StatefulSet", app.name, "spec", {
            "replicas": replicas,
            "serviceName": app.name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector(app.name)},
            "updateStrategy": {"type": "RollingUpdate"},
            # The policy is one for every template: the StatefulSet controller never deletes a claim.
            # A `retain: false` claim goes with the App through an ownerReference the operator adds
            # (claims.tie_replica_claims), so a `retain: true` one survives in any deletion order.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": template,
            "volumeClaimTemplates": [_claim_template(app, v) for v in spec.per_replica_volumes],
        })
    return _child(app, "apps/v1", "Deployment", app.name, "spec", {
        "replicas": replicas,
        "selector": {"matchLabels": selector(app.name)},
        "revisionHistoryLimit": spec.rollout.revision_history_limit,
        "progressDeadlineSeconds": spec.rollout.progress_deadline_seconds,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": spec.rollout.max_surge, "maxUnavailable": spec.rollout.max_unavailable}},
        "template": template,
    })


def canary_name(app_name: str) -> str:
    return f"{app_name}-canary"


def build_canary(app: App, replicas: int, config: ConfigPlan | None = None, profile: str = "baseline",
                 drain_seconds: int = DRAIN_SECONDS) -> Json:
    """The canary's Deployment (canary.py): the spec's pod template, its pods labelled for the App
    (the Service sends them their share) and as the canary's (its selector, so the two Deployments
    never count each other's pods)."""
    obj = build_workload(app, replicas, None, config, profile, drain_seconds)
    obj["metadata"]["name"] = canary_name(app.name)
    obj["spec"]["selector"]["matchLabels"][LABEL_TRACK] = "canary"
    obj["spec"]["template"]["metadata"]["labels"][LABEL_TRACK] = "canary"
    annotations = obj["metadata"]["annotations"]
    del annotations[ANN_HASH]
    if not annotations:
        del obj["metadata"]["annotations"]
    obj["metadata"].setdefault("annotations", {})[ANN_HASH] = content_hash(obj)
    return obj


def build_pod_template(app: App, profile: str = "baseline", drain_seconds: int = DRAIN_SECONDS) -> Json:
    """`profile`: the Pod Security Standard to build for (restricted | baseline). `drain_seconds`:
    the operator's default, where spec.rollout.drainSeconds is unset."""
    spec, pod = app.spec, app.spec.pod
    drain = spec.rollout.drain_seconds if spec.rollout.drain_seconds is not None else drain_seconds
    # The log's last lines stand in for a termination message the program did not write, so a
    # crash says why (podhealth.py quotes its first line).
    container: Json = {"name": app.name, "image": spec.image, "terminationMessagePolicy": "FallbackToLogsOnError"}
    optional: dict[str, Any] = {
        "imagePullPolicy": spec.image_pull_policy,
        "command": spec.command,
        "args": spec.args,
        "ports": [{"name": p.name, "containerPort": p.container_port, "protocol": p.protocol}
                  for p in spec.ports],
        "env": copy.deepcopy(spec.env),
        "envFrom": copy.deepcopy(spec.env_from),
        "resources": copy.deepcopy(spec.resources),
        "livenessProbe": copy.deepcopy(spec.probes.get("liveness")),
        "readinessProbe": copy.deepcopy(spec.probes.get("readiness")),
        "startupProbe": copy.deepcopy(spec.probes.get("startup")),
        "volumeMounts": [_mount(v) for v in spec.volumes],
    }
    container.update({k: v for k, v in optional.items() if v})
    if drain:
        # The pod keeps serving while kube-proxy stops routing to it: native, no binary in the image.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": drain}}}
    if profile == "restricted":  # the user's fields over what the standard requires
        container["securityContext"] = {**RESTRICTED_CONTAINER, **copy.deepcopy(pod.container_security_context or {})}
    else:
        container["securityContext"] = copy.deepcopy(pod.container_security_context or CONTAINER_DEFAULT_SECURITY)
    metadata: Json = {"labels": {**pod.labels, **labels(app.name)}}
    if pod.annotations:
        metadata["annotations"] = dict(pod.annotations)
    pod_spec = _pod_spec(app, container, profile)
    if drain:
        pod_spec["terminationGracePeriodSeconds"] = drain + STOP_GRACE_SECONDS
    return {"metadata": metadata, "spec": pod_spec}


def _pod_spec(app: App, container: Json, profile: str) -> Json:
    spec, pod = app.spec, app.spec.pod
    if profile == "restricted":
        security = {**RESTRICTED_POD, **copy.deepcopy(pod.security_context or {})}
    else:
        security = copy.deepcopy(pod.security_context or POD_DEFAULT_SECURITY)
    pod_spec: Json = {
        "automountServiceAccountToken": pod.automount_service_account_token,
        "enableServiceLinks": False,
        "securityContext": security,
        "containers": [container],
    }
    pod_optional: dict[str, Any] = {
        "serviceAccountName": pod.service_account_name,
        "imagePullSecrets": [{"name": s} for s in spec.image_pull_secrets],
        "nodeSelector": dict(pod.node_selector),
        "tolerations": copy.deepcopy(pod.tolerations),
        "affinity": copy.deepcopy(pod.affinity),
        "priorityClassName": pod.priority_class_name,
        "topologySpreadConstraints": copy.deepcopy(pod.topology_spread_constraints),
        "volumes": [_pod_volume(app, v) for v in spec.volumes
                    if not (v.persistent and v.persistent.per_replica)],
    }
    pod_spec.update({k: v for k, v in pod_optional.items() if v})
    return pod_spec


def _mount(v: Volume) -> Json:
    mount: Json = {"name": v.name, "mountPath": v.mount_path}
    if v.read_only:
        mount["readOnly"] = True
    if v.sub_path:
        mount["subPath"] = v.sub_path
    return mount


def claim_name(app_name: str, volume_name: str) -> str:
    return f"{app_name}-{volume_name}"


def replica_claim_volume(app: App, claim: str) -> Volume | None:
    """The perReplica volume whose claim of some pod is named `claim` (`<volume>-<app>-<ordinal>`,
    the StatefulSet controller's naming), or None."""
    for v in app.spec.per_replica_volumes:
        prefix = f"{v.name}-{app.name}-"
        if claim.startswith(prefix) and claim[len(prefix):].isdigit():
            return v
    return None


def _pod_volume(app: App, v: Volume) -> Json:
    if v.persistent is not None:
        return {"name": v.name, "persistentVolumeClaim": {"claimName": claim_name(app.name, v.name)}}
    assert v.source is not None
    kind, source = v.source
    return {"name": v.name, kind: copy.deepcopy(source)}


def _claim_spec(v: Volume) -> Json:
    assert v.persistent is not None
    spec: Json = {
        "accessModes": list(v.persistent.access_modes),
        "resources": {"requests": {"storage": v.persistent.size}},
    }
    if v.persistent.storage_class_name:
        spec["storageClassName"] = v.persistent.storage_class_name
    return spec


def _claim_template(app: App, v: Volume) -> Json:
    """The StatefulSet controller copies the template's annotations to each claim it creates, so a
    retained per-replica claim says where it came from, like the others."""
    assert v.persistent is not None
    template: Json = {"metadata": {"name": v.name}, "spec": _claim_spec(v)}
    if v.persistent.retain:
        template["metadata"]["annotations"] = {ANN_RETAINED_FROM: app.name}
    return template


def _claim_essentials(template: Json) -> tuple[Any, ...]:
    spec = template.get("spec") or {}
    return (template.get("metadata", {}).get("name"), spec.get("accessModes"),
            spec.get("resources", {}).get("requests", {}).get("storage"), spec.get("storageClassName"))


def keep_live_claim_templates(desired: Json, live: Json | None) -> Json:
    """A StatefulSet's volumeClaimTemplates cannot change. Where the live templates ask for what
    the spec asks (names, access modes, size, class) and differ only in metadata (a StatefulSet
    made before the retained-from annotation), apply the live ones rather than be refused; a real
    change still goes to the API server, which says why it cannot be made."""
    if live is None or desired["kind"] != "StatefulSet":
        return desired
    want = desired["spec"]["volumeClaimTemplates"]
    have = (live.get("spec") or {}).get("volumeClaimTemplates") or []
    if [_claim_essentials(t) for t in want] != [_claim_essentials(t) for t in have] or want == have:
        return desired
    out = copy.deepcopy(desired)
    out["spec"]["volumeClaimTemplates"] = [{"metadata": copy.deepcopy(t.get("metadata") or {}),
                                            "spec": copy.deepcopy(t.get("spec") or {})} for t in have]
    return out


def build_claim(app: App, v: Volume) -> Json:
    """A `retain: true` claim never gets an ownerReference (so no deletion of the App, whatever its
    timing, can garbage-collect it) and says where it belongs from birth."""
    assert v.persistent is not None
    annotations = {ANN_RETAIN: str(v.persistent.retain).lower()}
    if v.persistent.retain:
        annotations[ANN_RETAINED_FROM] = app.name
    return _child(app, "v1", "PersistentVolumeClaim", claim_name(app.name, v.name), "spec", _claim_spec(v),
                  annotations=annotations, owned=not v.persistent.retain)


def build_service(app: App) -> Json:
    svc = app.spec.service
    spec: Json = {
        "type": "ClusterIP" if svc.type == "Headless" else svc.type,
        "selector": selector(app.name),
        "ports": [{"name": p.name, "port": p.service_port, "targetPort": p.name, "protocol": p.protocol}
                  for p in app.spec.ports],
    }
    if svc.type == "Headless":
        spec["clusterIP"] = "None"
    if app.spec.is_stateful:
        spec["publishNotReadyAddresses"] = False
    return _child(app, "v1", "Service", app.name, "spec", spec, annotations=svc.annotations)


def build_ingress(app: App) -> Json:
    ing = app.spec.ingress
    assert ing is not None
    rule: Json = {"http": {"paths": [{
        "path": ing.path,
        "pathType": ing.path_type,
        "backend": {"service": {"name": app.name, "port": {"name": ing.port}}},
    }]}}
    if ing.host:
        rule["host"] = ing.host
    spec: Json = {"rules": [rule]}
    if ing.class_name:
        spec["ingressClassName"] = ing.class_name
    if ing.tls_secret_name:
        tls: Json = {"secretName": ing.tls_secret_name}
        if ing.host:
            tls["hosts"] = [ing.host]
        spec["tls"] = [tls]
    return _child(app, "networking.k8s.io/v1", "Ingress", app.name, "spec", spec, annotations=ing.annotations)


def build_hpa(app: App, now: datetime) -> Json:
    auto = app.spec.autoscaling
    assert auto is not None
    floor, _ = scheduled_minimum(app.spec, now)
    metrics: list[Json] = []
    for resource, target in (("cpu", auto.target_cpu), ("memory", auto.target_memory)):
        if target is not None:
            metrics.append({"type": "Resource", "resource": {
                "name": resource, "target": {"type": "Utilization", "averageUtilization": target}}})
    return _child(app, "autoscaling/v2", "HorizontalPodAutoscaler", app.name, "spec", {
        "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": app.name},
        # An open schedule window raises the floor, never above the ceiling.
        "minReplicas": min(max(auto.min_replicas, floor), auto.max_replicas),
        "maxReplicas": auto.max_replicas,
        "metrics": metrics,
    })


def build_pdb(app: App) -> Json:
    d = app.spec.disruption
    assert d is not None
    spec: Json = {"selector": {"matchLabels": selector(app.name)}}
    if d.min_available is not None:
        spec["minAvailable"] = d.min_available
    else:
        spec["maxUnavailable"] = d.max_unavailable
    return _child(app, "policy/v1", "PodDisruptionBudget", app.name, "spec", spec)


def build_network_policy(app: App) -> Json:
    """Ingress to the App's pods only from the peers listed and from its own pods, on its ports
    (any port when it declares none)."""
    policy = app.spec.network_policy
    assert policy is not None
    peers: list[Json] = [{"podSelector": {"matchLabels": selector(app.name)}}]
    for p in policy.ingress_from:
        peer: Json = {}
        if p.namespace is not None:
            peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": p.namespace}}
        if p.app is not None:
            peer["podSelector"] = {"matchLabels": selector(p.app)}
        peers.append(peer)
    rule: Json = {"from": peers}
    if app.spec.ports:
        rule["ports"] = [{"port": p.container_port, "protocol": p.protocol} for p in app.spec.ports]
    spec = {"podSelector": {"matchLabels": selector(app.name)}, "policyTypes": ["Ingress"], "ingress": [rule]}
    return _child(app, "networking.k8s.io/v1", "NetworkPolicy", app.name, "spec", spec)


def build_service_monitor(app: App) -> Json:
    """Prometheus scrapes the App's pods through its Service, on the port it names."""
    m = app.spec.metrics
    assert m is not None
    spec = {"selector": {"matchLabels": selector(app.name)}, "namespaceSelector": {"matchNames": [app.namespace]},
            "endpoints": [{"port": m.port, "path": m.path, "interval": m.interval}]}
    return _child(app, "monitoring.coreos.com/v1", "ServiceMonitor", app.name, "spec", spec)


def child_key(obj: Json) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]
