"""The App resource as typed values: parse a raw body once, default it, and check what the
CRD schema cannot (so a bad spec becomes a condition naming the field, never a traceback)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

GROUP = "appkeeper.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "App"
PLURAL = "apps"

Json = dict[str, Any]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kubernetes' quantity grammar (resource.ParseQuantity): a number, then a binary suffix, a decimal
# suffix or an integer exponent. Each part starts with a character the one before cannot take, so
# a failed match gives up after one pass: linear (the old `[0-9.]+...[eE...]*[0-9]*` backtracked
# quadratically on "1"*N + "e1.5", which the CRD's pattern let through).
QUANTITY = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
QUANTITY_MAX = 64  # the CRD's maxLength for a quantity; a longer one is refused before any parsing
_SUFFIX = {"": 0, "n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
MAX_REPLICAS = 10000  # the CRD's maximum for every replica count
MAX_DRAIN_SECONDS = 600  # the CRD's maximum for spec.rollout.drainSeconds
DRAIN_SECONDS = 5  # the operator's default drain (--drain-seconds, the chart's rollout.drainSeconds)
STOP_GRACE_SECONDS = 30  # the program's own time to stop after the drain (Kubernetes' default grace)
MESSAGE_MAX = 240  # characters of a SpecError's message
CRON_MAX = 128  # the CRD's maxLength of a cron expression: croniter never sees a longer one
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "Headless", "None")


class SpecError(ValueError):
    """A spec the API server accepted but that cannot work; `field` is its path."""

    def __init__(self, field: str, message: str) -> None:
        if len(message) > MESSAGE_MAX:  # a huge value is quoted by its start: status and Events stay small
            message = f"{message[:MESSAGE_MAX - 40]}... ({len(message)} characters)"
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Port:
    name: str
    container_port: int
    protocol: str
    service_port: int


@dataclass(frozen=True)
class Persistent:
    size: str
    storage_class_name: str | None
    access_modes: tuple[str, ...]
    retain: bool
    per_replica: bool


@dataclass(frozen=True)
class Volume:
    name: str
    mount_path: str
    read_only: bool
    sub_path: str | None
    persistent: Persistent | None = None
    # The other sources are core/v1 volume sources, passed through as written.
    source: tuple[str, Json] | None = None


@dataclass(frozen=True)
class Service:
    type: str
    annotations: dict[str, str]


@dataclass(frozen=True)
class Ingress:
    host: str | None
    path: str
    path_type: str
    class_name: str | None
    port: str
    tls_secret_name: str | None
    annotations: dict[str, str]


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu: int | None
    target_memory: int | None


@dataclass(frozen=True)
class Schedule:
    name: str
    start: str
    end: str
    time_zone: str
    replicas: int


@dataclass(frozen=True)
class FailureThreshold:
    """spec.rollout.failureThreshold: when a new revision has failed badly enough to roll back now."""
    restarts: int = 3
    image_pull_seconds: int = 60
    unschedulable_seconds: int = 120


@dataclass(frozen=True)
class CanaryStep:
    replicas: int | None  # exactly one of replicas, weight (a percentage of spec.replicas)
    weight: int | None
    pause_seconds: int

    def count(self, replicas: int) -> int:
        """Canary pods at this step, for an App of `replicas`."""
        if self.replicas is not None:
            return self.replicas
        return max(1, -(-replicas * (self.weight or 0) // 100))


@dataclass(frozen=True)
class HttpCheck:
    path: str
    port: str  # a name of spec.ports
    success_rate: int  # percent


@dataclass(frozen=True)
class PromCheck:
    query: str
    threshold: float


@dataclass(frozen=True)
class Canary:
    steps: tuple[CanaryStep, ...]
    http: HttpCheck | None = None
    prometheus: PromCheck | None = None


@dataclass(frozen=True)
class Rollout:
    max_surge: int | str
    max_unavailable: int | str
    progress_deadline_seconds: int
    auto_rollback: bool
    failure_threshold: FailureThreshold = FailureThreshold()
    revision_history_limit: int = 5
    drain_seconds: int | None = None  # None: the operator's default (options.Options.drain_seconds)
    canary: Canary | None = None


@dataclass(frozen=True)
class Disruption:
    min_available: int | str | None
    max_unavailable: int | str | None


@dataclass(frozen=True)
class Metrics:
    port: str  # a name in spec.ports
    path: str
    interval: str


@dataclass(frozen=True)
class Peer:
    app: str | None  # an App's pods; None: every pod of `namespace`
    namespace: str | None  # None: the App's own namespace


@dataclass(frozen=True)
class NetworkPolicy:
    ingress_from: tuple[Peer, ...]


@dataclass(frozen=True)
class PodOptions:
    labels: dict[str, str]
    annotations: dict[str, str]
    service_account_name: str | None
    automount_service_account_token: bool
    node_selector: dict[str, str]
    tolerations: list[Json]
    affinity: Json | None
    security_context: Json | None
    container_security_context: Json | None
    priority_class_name: str | None
    topology_spread_constraints: list[Json]
    security_profile: str | None = None  # restricted | baseline; None: what the namespace enforces


@dataclass(frozen=True)
class AppSpec:
    image: str
    image_pull_policy: str | None
    image_pull_secrets: tuple[str, ...]
    command: list[str]
    args: list[str]
    replicas: int
    ports: tuple[Port, ...]
    env: list[Json]
    env_from: list[Json]
    resources: Json
    probes: dict[str, Json]
    volumes: tuple[Volume, ...]
    service: Service
    ingress: Ingress | None
    autoscaling: Autoscaling | None
    schedules: tuple[Schedule, ...]
    suspend: bool
    paused: bool
    rollout: Rollout
    disruption: Disruption | None
    pod: PodOptions
    config_rollout: bool = True  # a change of a referenced ConfigMap rolls the pods (config.py)
    network_policy: NetworkPolicy | None = None
    metrics: Metrics | None = None

    @property
    def per_replica_volumes(self) -> tuple[Volume, ...]:
        return tuple(v for v in self.volumes if v.persistent is not None and v.persistent.per_replica)

    @property
    def is_stateful(self) -> bool:
        return bool(self.per_replica_volumes)


@dataclass(frozen=True)
class App:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: AppSpec
    status: Json = field(default_factory=dict)
    deleting: bool = False
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> Json:
        """Name, namespace and uid: what an Event's involvedObject needs."""
        return {"name": self.name, "namespace": self.namespace, "uid": self.uid}


def parse_app(body: Json) -> App:
    """Body (as the API returns it) -> App. Raises SpecError naming the offending field."""
    meta = body.get("metadata", {})
    return App(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation", 0)),
        spec=parse_spec(body.get("spec") or {}),
        status=dict(body.get("status") or {}),
        deleting=bool(meta.get("deletionTimestamp")),
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
    )


def parse_spec(raw: Json) -> AppSpec:
    """Raises SpecError, and only SpecError, for anything that cannot become an AppSpec."""
    if not isinstance(raw, dict):
        raise SpecError("spec", f"must be an object, got {type(raw).__name__}")
    try:
        return _parse_spec(raw)
    except SpecError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        # The schema normally prevents these; an App stored before a schema change may not.
        raise SpecError("spec", f"cannot be read ({type(e).__name__}: {e})") from e


def _image(raw: Json) -> str:
    image = raw.get("image")
    if not isinstance(image, str) or not image.strip():
        raise SpecError("spec.image", "is required and must be a non-empty string")
    return image.strip()


def _parse_spec(raw: Json) -> AppSpec:
    replicas = _int(raw.get("replicas", 1), "spec.replicas", 0, MAX_REPLICAS)
    ports = tuple(_port(p, i) for i, p in enumerate(raw.get("ports") or []))
    _unique([p.name for p in ports], "spec.ports", "name")
    _unique([p.service_port for p in ports], "spec.ports", "servicePort")
    volumes = tuple(_volume(v, i) for i, v in enumerate(raw.get("volumes") or []))
    _unique([v.name for v in volumes], "spec.volumes", "name")
    _unique([v.mount_path for v in volumes], "spec.volumes", "mountPath")
    service = _service(raw.get("service") or {})
    ingress = _ingress(raw["ingress"], ports, service) if raw.get("ingress") is not None else None
    autoscaling = _autoscaling(raw["autoscaling"]) if raw.get("autoscaling") is not None else None
    schedules = tuple(_schedule(s, i) for i, s in enumerate(raw.get("schedules") or []))
    _unique([s.name for s in schedules], "spec.schedules", "name")
    flags = {"suspend": bool(raw.get("suspend", False)), "paused": bool(raw.get("paused", False)),
             "config_rollout": bool(raw.get("configRollout", True))}
    return AppSpec(
        image=_image(raw),
        image_pull_policy=raw.get("imagePullPolicy"),
        image_pull_secrets=tuple(raw.get("imagePullSecrets") or ()),
        command=list(raw.get("command") or []),
        args=list(raw.get("args") or []),
        replicas=replicas,
        ports=ports,
        env=list(raw.get("env") or []),
        env_from=list(raw.get("envFrom") or []),
        resources=_resources(raw.get("resources") or {}),
        probes=_probes(raw.get("probes") or {}),
        volumes=volumes,
        service=service,
        ingress=ingress,
        autoscaling=autoscaling,
        schedules=schedules,
        **flags,
        rollout=_rollout(raw.get("rollout") or {}, ports),
        disruption=_disruption(raw["disruption"]) if raw.get("disruption") is not None else None,
        pod=_pod(raw.get("pod") or {}),
        network_policy=_network_policy(raw["networkPolicy"]) if raw.get("networkPolicy") is not None else None,
        metrics=_metrics(raw["metrics"], ports, service) if raw.get("metrics") is not None else None,
    )


def _resources(raw: Json) -> Json:
    resources = dict(raw)
    for kind in ("requests", "limits"):
        for res, qty in (resources.get(kind) or {}).items():
            _quantity(qty, f"spec.resources.{kind}.{res}")
    return resources


def _probes(raw: Json) -> Json:
    probes = {k: v for k, v in raw.items() if v}
    for name in probes:
        if name not in ("liveness", "readiness", "startup"):
            raise SpecError(f"spec.probes.{name}", "unknown probe; use liveness, readiness or startup")
    return probes


def _int(value: Any, path: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(path, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SpecError(path, f"must be <= {maximum}, got {value}")
    return value


def _dns_label(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not DNS_LABEL.match(value):
        raise SpecError(path, f"must be a DNS-1123 label (lowercase letters, digits, '-'), got {value!r}")
    return value


def quantity_value(text: str) -> Decimal | None:
    """A quantity's value (`"0.5"`, `"500m"` -> 0.5; `"1e8"`, `"100M"` -> 1e8), or None when `text` is
    not one. Linear in the length, and refused past QUANTITY_MAX characters."""
    if len(text) > QUANTITY_MAX:
        return None
    m = QUANTITY.fullmatch(text)
    if m is None:
        return None
    sign, number, suffix = m.group(1), m.group(2), m.group(3) or ""
    try:
        value = Decimal(sign + number)
        if suffix in _BINARY:
            return value * Decimal(1024 ** _BINARY[suffix])
        if suffix[:1] in ("e", "E"):
            return value.scaleb(int(suffix[1:]))
        return value.scaleb(_SUFFIX[suffix])
    except (InvalidOperation, ValueError, OverflowError):
        return None


def _quantity(value: Any, path: str) -> str:
    text = value if isinstance(value, str) else str(value) if isinstance(value, int) else None
    if text is None or quantity_value(text) is None:
        raise SpecError(path, f"is not a valid quantity (e.g. 500m, 1Gi; at most {QUANTITY_MAX} characters): {value!r}")
    return text


def _unique(values: list[Any], path: str, key: str) -> None:
    seen: set[Any] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise SpecError(f"{path}[{i}].{key}", f"duplicate value {v!r}")
        seen.add(v)


def _port(raw: Json, i: int) -> Port:
    path = f"spec.ports[{i}]"
    container_port = _int(raw.get("containerPort"), f"{path}.containerPort", 1, 65535)
    protocol = raw.get("protocol", "TCP")
    if protocol not in ("TCP", "UDP", "SCTP"):
        raise SpecError(f"{path}.protocol", f"must be TCP, UDP or SCTP, got {protocol!r}")
    name = _dns_label(raw.get("name"), f"{path}.name")
    if len(name) > 15:
        raise SpecError(f"{path}.name", f"must be at most 15 characters (an IANA_SVC_NAME), got {name!r}")
    return Port(
        name=name,
        container_port=container_port,
        protocol=protocol,
        service_port=_int(raw.get("servicePort", container_port), f"{path}.servicePort", 1, 65535),
    )


def _volume(raw: Json, i: int) -> Volume:
    path = f"spec.volumes[{i}]"
    name = _dns_label(raw.get("name"), f"{path}.name")
    mount_path = raw.get("mountPath")
    if not isinstance(mount_path, str) or not mount_path.startswith("/"):
        raise SpecError(f"{path}.mountPath", f"must be an absolute path, got {mount_path!r}")
    sources = [k for k in ("persistent", "emptyDir", "configMap", "secret") if raw.get(k) is not None]
    if len(sources) != 1:
        raise SpecError(path, f"needs exactly one of persistent, emptyDir, configMap, secret; got {sources or 'none'}")
    persistent = None
    source: tuple[str, Json] | None = None
    if sources[0] == "persistent":
        p = raw["persistent"]
        modes = tuple(p.get("accessModes") or ("ReadWriteOnce",))
        persistent = Persistent(
            size=_quantity(p.get("size"), f"{path}.persistent.size"),
            storage_class_name=p.get("storageClassName"),
            access_modes=modes,
            retain=bool(p.get("retain", True)),
            per_replica=bool(p.get("perReplica", False)),
        )
    else:
        source = (sources[0], dict(raw[sources[0]]))
        if sources[0] == "emptyDir" and source[1].get("sizeLimit") is not None:
            _quantity(source[1]["sizeLimit"], f"{path}.emptyDir.sizeLimit")
    return Volume(name=name, mount_path=mount_path, read_only=bool(raw.get("readOnly", False)),
                  sub_path=raw.get("subPath"), persistent=persistent, source=source)


def _service(raw: Json) -> Service:
    svc_type = raw.get("type", "ClusterIP")
    if svc_type not in SERVICE_TYPES:
        raise SpecError("spec.service.type", f"must be one of {', '.join(SERVICE_TYPES)}, got {svc_type!r}")
    return Service(type=svc_type, annotations=dict(raw.get("annotations") or {}))


def _ingress(raw: Json, ports: tuple[Port, ...], service: Service) -> Ingress:
    if not ports:
        raise SpecError("spec.ingress", "needs at least one entry in spec.ports")
    if service.type == "None":
        raise SpecError("spec.ingress", "needs a Service; spec.service.type is None")
    port = raw.get("port") or ports[0].name
    if port not in {p.name for p in ports}:
        raise SpecError("spec.ingress.port", f"names no port in spec.ports: {port!r}")
    path = raw.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise SpecError("spec.ingress.path", f"must start with '/', got {path!r}")
    tls = raw.get("tls") or {}
    return Ingress(
        host=raw.get("host"),
        path=path,
        path_type=raw.get("pathType", "Prefix"),
        class_name=raw.get("className"),
        port=port,
        tls_secret_name=tls.get("secretName"),
        annotations=dict(raw.get("annotations") or {}),
    )


def _autoscaling(raw: Json) -> Autoscaling:
    path = "spec.autoscaling"
    lo = _int(raw.get("minReplicas", 1), f"{path}.minReplicas", 1, MAX_REPLICAS)
    hi = _int(raw.get("maxReplicas"), f"{path}.maxReplicas", 1, MAX_REPLICAS)
    if lo > hi:
        raise SpecError(f"{path}.minReplicas", f"must be <= maxReplicas ({lo} > {hi})")
    cpu = raw.get("targetCPUUtilizationPercentage")
    mem = raw.get("targetMemoryUtilizationPercentage")
    if cpu is None and mem is None:
        cpu = 80
    return Autoscaling(
        min_replicas=lo,
        max_replicas=hi,
        target_cpu=None if cpu is None else _int(cpu, f"{path}.targetCPUUtilizationPercentage", 1, 1000),
        target_memory=None if mem is None else _int(mem, f"{path}.targetMemoryUtilizationPercentage", 1, 1000),
    )


def _fires(expr: str, path: str) -> None:
    """A valid expression may still never fire (`0 0 30 2 *`): croniter gives up looking, some years
    ahead; the window would never open or close, so say so now."""
    now = datetime.now(UTC)
    try:
        croniter(expr, now).get_next(datetime)
        croniter(expr, now).get_prev(datetime)
    except CroniterBadDateError:
        raise SpecError(path, f"never fires: {expr!r} names a date that does not occur (e.g. 30 February)") from None


def _schedule(raw: Json, i: int) -> Schedule:
    path = f"spec.schedules[{i}]"
    for key in ("start", "end"):
        expr = raw.get(key)
        if not isinstance(expr, str) or len(expr) > CRON_MAX or not croniter.is_valid(expr):
            raise SpecError(f"{path}.{key}", f"is not a valid cron expression: {expr!r}")
        _fires(expr, f"{path}.{key}")
    tz = raw.get("timeZone", "UTC")
    try:
        if not isinstance(tz, str) or len(tz) > 64:
            raise ValueError(tz)
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise SpecError(f"{path}.timeZone", f"is not an IANA time zone: {tz!r}") from e
    return Schedule(
        name=_dns_label(raw.get("name"), f"{path}.name"),
        start=raw["start"],
        end=raw["end"],
        time_zone=tz,
        replicas=_int(raw.get("replicas"), f"{path}.replicas", 0, MAX_REPLICAS),
    )


def _rollout(raw: Json, ports: tuple[Port, ...] = ()) -> Rollout:
    return Rollout(
        max_surge=raw.get("maxSurge", "25%"),
        max_unavailable=raw.get("maxUnavailable", "25%"),
        progress_deadline_seconds=_int(raw.get("progressDeadlineSeconds", 600),
                                       "spec.rollout.progressDeadlineSeconds", 1, 604800),
        auto_rollback=bool(raw.get("autoRollback", True)),
        failure_threshold=_failure_threshold(raw.get("failureThreshold") or {}),
        revision_history_limit=_int(raw.get("revisionHistoryLimit", 5), "spec.rollout.revisionHistoryLimit", 1, 100),
        drain_seconds=None if raw.get("drainSeconds") is None else _int(
            raw["drainSeconds"], "spec.rollout.drainSeconds", 0, MAX_DRAIN_SECONDS),
        canary=None if raw.get("canary") is None else _canary(raw["canary"], ports),
    )


PERCENT = re.compile(r"([0-9]|[1-9][0-9]|100)%")
PAUSE = re.compile(r"([0-9]{1,5})(s|m)")


def _percent(value: Any, path: str) -> int:
    text = str(value)
    if not PERCENT.fullmatch(text):
        raise SpecError(path, f"must be a percentage like 20%, got {text[:16]!r}")
    return int(text[:-1])


def _canary(raw: Json, ports: tuple[Port, ...]) -> Canary:
    path = "spec.rollout.canary"
    steps = []
    for i, step in enumerate(raw.get("steps") or []):
        at = f"{path}.steps[{i}]"
        if (step.get("replicas") is None) == (step.get("weight") is None):
            raise SpecError(at, "set exactly one of replicas, weight")
        pause = PAUSE.fullmatch(str(step.get("pause", "30s")))
        if pause is None:
            raise SpecError(f"{at}.pause", f"must be like 30s or 5m, got {str(step.get('pause'))[:16]!r}")
        weight = None if step.get("weight") is None else _percent(step["weight"], f"{at}.weight")
        if weight == 0:
            raise SpecError(f"{at}.weight", "must be at least 1%")
        steps.append(CanaryStep(
            replicas=None if step.get("replicas") is None else _int(step["replicas"], f"{at}.replicas", 1, 10000),
            weight=weight, pause_seconds=int(pause.group(1)) * (60 if pause.group(2) == "m" else 1)))
    if not 1 <= len(steps) <= 20:
        raise SpecError(f"{path}.steps", "needs 1 to 20 steps")
    prom = _prom_check((raw.get("analysis") or {}).get("prometheus"), f"{path}.analysis.prometheus")
    http = (raw.get("analysis") or {}).get("httpGet")
    if http is None:
        return Canary(tuple(steps), None, prom)
    at = f"{path}.analysis.httpGet"
    if http.get("port") not in {p.name for p in ports}:
        raise SpecError(f"{at}.port", f"must name one of spec.ports, got {str(http.get('port'))[:64]!r}")
    check_path = str(http.get("path", ""))
    if not check_path.startswith("/") or len(check_path) > 1024:
        raise SpecError(f"{at}.path", "must start with / (at most 1024 characters)")
    return Canary(tuple(steps), HttpCheck(check_path, str(http["port"]),
                                          _percent(http.get("successRate", "95%"), f"{at}.successRate")), prom)


def _prom_check(raw: Json | None, path: str) -> PromCheck | None:
    if raw is None:
        return None
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip() or len(query) > 4096:
        raise SpecError(f"{path}.query", "must be a PromQL query of at most 4096 characters")
    threshold = raw.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise SpecError(f"{path}.threshold", f"must be a number, got {str(threshold)[:32]!r}")
    return PromCheck(query, float(threshold))


def _failure_threshold(raw: Json) -> FailureThreshold:
    path = "spec.rollout.failureThreshold"
    return FailureThreshold(
        restarts=_int(raw.get("restarts", 3), f"{path}.restarts", 1, 1000),
        image_pull_seconds=_int(raw.get("imagePullSeconds", 60), f"{path}.imagePullSeconds", 1, 86400),
        unschedulable_seconds=_int(raw.get("unschedulableSeconds", 120), f"{path}.unschedulableSeconds", 1, 86400),
    )


def _disruption(raw: Json) -> Disruption:
    lo, hi = raw.get("minAvailable"), raw.get("maxUnavailable")
    if (lo is None) == (hi is None):
        raise SpecError("spec.disruption", "needs exactly one of minAvailable, maxUnavailable")
    return Disruption(min_available=lo, max_unavailable=hi)


INTERVAL = re.compile(r"[1-9][0-9]{0,5}(s|m)")


def _metrics(raw: Json, ports: tuple[Port, ...], service: Service) -> Metrics:
    port = raw.get("port")
    if port not in {p.name for p in ports}:
        raise SpecError("spec.metrics.port", f"must name one of spec.ports, got {str(port)[:64]!r}")
    if service.type == "None":
        raise SpecError("spec.metrics", "needs the App's Service (spec.service.type is None)")
    path, interval = str(raw.get("path", "/metrics")), str(raw.get("interval", "30s"))
    if not path.startswith("/") or len(path) > 1024:
        raise SpecError("spec.metrics.path", "must start with / (at most 1024 characters)")
    if not INTERVAL.fullmatch(interval):
        raise SpecError("spec.metrics.interval", f"must be like 30s or 1m, got {interval[:16]!r}")
    return Metrics(str(port), path, interval)


def _network_policy(raw: Json) -> NetworkPolicy:
    peers = []
    for i, peer in enumerate(raw.get("ingressFrom") or []):
        path = f"spec.networkPolicy.ingressFrom[{i}]"
        app = _dns_label(peer["app"], f"{path}.app") if peer.get("app") is not None else None
        namespace = _dns_label(peer["namespace"], f"{path}.namespace") if peer.get("namespace") is not None else None
        if app is None and namespace is None:
            raise SpecError(path, "set app, namespace or both")
        peers.append(Peer(app, namespace))
    return NetworkPolicy(tuple(peers))


def _pod(raw: Json) -> PodOptions:
    return PodOptions(
        labels=dict(raw.get("labels") or {}),
        annotations=dict(raw.get("annotations") or {}),
        service_account_name=raw.get("serviceAccountName"),
        # A pod gets an API token only when it asks for one (or names a ServiceAccount).
        automount_service_account_token=bool(
            raw.get("automountServiceAccountToken", raw.get("serviceAccountName") is not None)),
        node_selector=dict(raw.get("nodeSelector") or {}),
        tolerations=list(raw.get("tolerations") or []),
        affinity=raw.get("affinity"),
        security_context=raw.get("securityContext"),
        container_security_context=raw.get("containerSecurityContext"),
        priority_class_name=raw.get("priorityClassName"),
        topology_spread_constraints=list(raw.get("topologySpreadConstraints") or []),
        security_profile=_enum(raw.get("securityProfile"), "spec.pod.securityProfile", ("restricted", "baseline")),
    )


def _enum(value: Any, path: str, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value in allowed:
        return str(value)
    raise SpecError(path, f"must be one of {', '.join(allowed)}, got {value!r}")
