"""One table of every kind appkeeper touches: the children it owns and writes, and what it only
reads. Whatever lists kinds derives from here: the URL plurals (kube.py), the watches (handlers.py),
the children an App implies (`build_children`), the RBAC rules the chart must grant (a unit test
compares them with `helm template`), and the children table of docs/reference.md.

Adding a child kind: one row here, one builder in desired.py, its golden file, and its field in
api/app.source.yaml with its parser in api.py (docs/development.md: "Adding a child kind")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .api import API_VERSION, DRAIN_SECONDS, GROUP, PLURAL, App, Json
from .config import ConfigPlan
from .desired import (
    build_canary,
    build_claim,
    build_config_snapshot,
    build_hpa,
    build_ingress,
    build_network_policy,
    build_pdb,
    build_service,
    build_service_monitor,
    build_workload,
    workload_replicas,
)

WRITE = ("get", "list", "watch", "create", "update", "patch", "delete")


@dataclass(frozen=True)
class BuildContext:
    """What a builder needs besides the App: the clock, and a pod template to run instead of the
    spec's (a rollback to the last healthy revision)."""

    now: datetime
    template_override: Json | None = None
    config: ConfigPlan | None = None  # the ConfigMap snapshots the pod template names
    profile: str = "baseline"  # the Pod Security Standard the pods are built for
    drain_seconds: int = DRAIN_SECONDS  # the operator's default drain (spec.rollout.drainSeconds unset)
    canary_replicas: int = 0  # > 0: a canary Deployment of the spec's template beside the App's own (canary.py)


Builder = Callable[[App, BuildContext], list[Json]]


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    plural: str
    verbs: tuple[str, ...]
    watched: bool = False  # a label-filtered watch keeps the store up to date
    build: Builder | None = None  # set for children: the objects of this kind the App implies
    name: str = "<app>"  # how a child is named, for the docs
    own_namespace: bool = False  # needed only in the operator's own namespace (a Role there)
    cluster_scoped: bool = False  # a Role cannot grant it: only in cluster-wide mode (a ClusterRole)
    # A child's: the CEL condition (over the admission policy's variables) under which an App implies
    # one; the policy admits such an App only if its user may create one (hack/gen_admission.py).
    admit: str = ""
    # Its API may not be served (a CRD not installed, an API group turned off): a missing one is
    # looked for now and then, not warned about, and an App that asks for one says it waits for it.
    optional: bool = False
    # Granted, watched and built only when the operator is told it may (a chart value, here by its
    # path: the RBAC rules are wrapped in `if .Values.<opt_in>`; the operator's flag: OPT_INS).
    opt_in: str = ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def child(self) -> bool:
        return self.build is not None


def _workload(kind: str) -> Builder:
    def build(app: App, ctx: BuildContext) -> list[Json]:
        if ("StatefulSet" if app.spec.is_stateful else "Deployment") != kind:
            return []
        built = [build_workload(app, workload_replicas(app.spec, ctx.now).count, ctx.template_override, ctx.config,
                                ctx.profile, ctx.drain_seconds)]
        if ctx.canary_replicas > 0 and kind == "Deployment":
            built.append(build_canary(app, ctx.canary_replicas, ctx.config, ctx.profile, ctx.drain_seconds))
        return built
    return build


def _snapshots(kind: str) -> Builder:
    def build(app: App, ctx: BuildContext) -> list[Json]:
        snapshots = ctx.config.snapshots.values() if ctx.config else ()
        return [build_config_snapshot(app, snap) for snap in snapshots if snap["kind"] == kind]
    return build


SECRETS = "configRollout.secrets"  # the chart value (and `appkeeper run --config-secrets`)
OPT_INS = {SECRETS: "--config-secrets"}

KINDS: tuple[Kind, ...] = (
    # Children: config snapshots first (the pods name them), then the workload.
    Kind("ConfigMap", "v1", "configmaps", WRITE, watched=True, name="<app>-<configmap>-<hash8>",
         admit="variables.snapshots", build=_snapshots("ConfigMap")),
    Kind("Secret", "v1", "secrets", WRITE, watched=True, name="<app>-<secret>-<hash8>",
         admit="variables.secretSnapshots", build=_snapshots("Secret"), opt_in=SECRETS),
    Kind("Deployment", "apps/v1", "deployments", WRITE, watched=True, build=_workload("Deployment"),
         name="<app>, and <app>-canary while a canary runs",
         admit="!variables.stateful"),
    Kind("StatefulSet", "apps/v1", "statefulsets", WRITE, watched=True, build=_workload("StatefulSet"),
         admit="variables.stateful"),
    Kind("Service", "v1", "services", WRITE, watched=True, admit="variables.service",
         build=lambda app, _: [build_service(app)] if app.spec.ports and app.spec.service.type != "None" else []),
    Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", WRITE, watched=True, name="<app>-<volume>",
         admit="variables.claims",
         build=lambda app, _: [build_claim(app, v) for v in app.spec.volumes
                               if v.persistent and not v.persistent.per_replica]),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses", WRITE, watched=True, admit="has(variables.spec.ingress)",
         build=lambda app, _: [build_ingress(app)] if app.spec.ingress is not None else []),
    Kind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", WRITE, watched=True,
         admit="has(variables.spec.autoscaling)",
         build=lambda app, ctx: [build_hpa(app, ctx.now)]
         if app.spec.autoscaling is not None and not app.spec.suspend else []),
    Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", WRITE, watched=True,
         admit="has(variables.spec.disruption)",
         build=lambda app, _: [build_pdb(app)] if app.spec.disruption is not None else []),
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", WRITE, watched=True, optional=True,
         admit="has(variables.spec.networkPolicy)",
         build=lambda app, _: [build_network_policy(app)] if app.spec.network_policy is not None else []),
    Kind("ServiceMonitor", "monitoring.coreos.com/v1", "servicemonitors", WRITE, watched=True, optional=True,
         admit="has(variables.spec.metrics)",
         build=lambda app, _: [build_service_monitor(app)] if app.spec.metrics is not None else []),
    # Read, never written: pods say why an App cannot run; ReplicaSets hold rollback templates.
    Kind("Pod", "v1", "pods", ("get", "list", "watch"), watched=True),
    Kind("ReplicaSet", "apps/v1", "replicasets", ("list",)),
    # list: Ready means served, the Service's slices list the pods as ready endpoints (served.py)
    Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", ("list",)),
    # patch: a repeat bumps the count; list: a StatefulSet's FailedCreate is only in its Events
    Kind("Event", "v1", "events", ("create", "patch", "list")),
    # The namespace's pod-security.kubernetes.io/enforce label picks the default security profile.
    Kind("Namespace", "v1", "namespaces", ("get",), cluster_scoped=True),
    # The admission policy that checks tenants' rights (guard.py): its absence is reported.
    Kind("ValidatingAdmissionPolicy", "admissionregistration.k8s.io/v1", "validatingadmissionpolicies", ("get",),
         cluster_scoped=True),
    Kind("ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io/v1",
         "validatingadmissionpolicybindings", ("get",), cluster_scoped=True),
    # Leader election and shards, in the operator's own namespace (list: shard Leases by label;
    # delete: a replica's member Lease when it stops, or a dead one's).
    Kind("Lease", "coordination.k8s.io/v1", "leases", ("get", "list", "create", "update", "delete"),
         own_namespace=True),
    # The App itself (its watch is registered on its own).
    Kind("App", API_VERSION, PLURAL, ("get", "list", "watch", "patch")),
)
# Subresources of the App: status is patched; finalizers are updated (owner references to an App
# with blockOwnerDeletion need it).
SUBRESOURCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (GROUP, f"{PLURAL}/status", ("patch",)),
    (GROUP, f"{PLURAL}/finalizers", ("update",)),
)

BY_KIND: dict[str, Kind] = {k.kind: k for k in KINDS}
CHILDREN: tuple[Kind, ...] = tuple(k for k in KINDS if k.child)
CHILD_KINDS: dict[str, str] = {k.kind: k.api_version for k in CHILDREN}
WATCHED: tuple[Kind, ...] = tuple(k for k in KINDS if k.watched and not k.opt_in)


def watched(opted_in: frozenset[str] = frozenset()) -> tuple[Kind, ...]:
    """The kinds the informers follow, those opted in included."""
    return tuple(k for k in KINDS if k.watched and (not k.opt_in or k.opt_in in opted_in))
PLURALS: dict[str, str] = {k.kind: k.plural for k in KINDS}


def build_children(app: App, now: datetime, template_override: Json | None = None,
                   config: ConfigPlan | None = None, profile: str = "baseline",
                   drain_seconds: int = DRAIN_SECONDS, canary_replicas: int = 0) -> list[Json]:
    """Every child the App asks for, in the table's order."""
    ctx = BuildContext(now, template_override, config, profile, drain_seconds, canary_replicas)
    return [obj for kind in CHILDREN if kind.build is not None for obj in kind.build(app, ctx)]


def rbac_rules(own_namespace: bool = False, cluster_wide: bool = True,
               opted_in: frozenset[str] = frozenset()) -> set[tuple[str, str, tuple[str, ...]]]:
    """(apiGroup, resource, verbs) the operator needs, one entry per resource: where it reconciles
    Apps (`cluster_wide`: a ClusterRole; else a Role per namespace, without cluster-scoped kinds),
    or (`own_namespace`) in its own namespace."""
    rules = {(k.group, k.plural, k.verbs) for k in KINDS if k.own_namespace == own_namespace
             and (cluster_wide or not k.cluster_scoped) and (not k.opt_in or k.opt_in in opted_in)}
    return rules if own_namespace else rules | set(SUBRESOURCES)
