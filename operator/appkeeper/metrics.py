"""Prometheus metrics of the operator, served on --metrics-port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RECONCILE_SECONDS = Histogram(
    "appkeeper_reconcile_duration_seconds", "Time one reconcile took",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
APPLIES = Counter("appkeeper_child_applies_total", "Server-side applies of children, by kind", ["kind"])
APPLY_ERRORS = Counter("appkeeper_child_apply_errors_total", "Applies the API refused, by kind", ["kind"])
REPAIRS = Counter("appkeeper_repairs_total", "Children put back after deletion or drift, by reason", ["reason"])
SNAPSHOTS_PRUNED = Counter("appkeeper_config_snapshots_pruned_total",
                           "Config snapshots deleted beyond spec.rollout.revisionHistoryLimit")
ROLLBACKS = Counter("appkeeper_rollbacks_total", "Rollouts rolled back to the last healthy revision")
API_REQUESTS = Counter("appkeeper_api_requests_total", "Requests to the API server by verb and answer "
                       "(0: no answer)", ["verb", "code"])
STATUS_PATCHES = Counter("appkeeper_status_patches_total", "App status patches written")
APPS = Gauge("appkeeper_apps", "Apps the operator watches")
LEADER = Gauge("appkeeper_leader", "1 while this process holds the leader Lease (or runs without election)")
SHARDS_HELD = Gauge("appkeeper_shards_held", "Shards whose Lease this process holds (run with --shards)")
RECONCILES_SETTLED = Counter("appkeeper_reconciles_settled_total",
                             "Reconciles answered at once: the same inputs as the last one that changed nothing")
ADMISSION_POLICY = Gauge("appkeeper_admission_policy_present",
                         "1: the admission policy and its binding are in place; 0: one is missing; -1: cannot tell")

# The work queue and the reconciles under the names controller-runtime and client-go use, so the
# dashboards and alerts written for them read appkeeper too (name / controller: "app").
QUEUE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WORKQUEUE_DEPTH = Gauge("workqueue_depth", "Current depth of the work queue", ["name"])
WORKQUEUE_ADDS = Counter("workqueue_adds_total", "Keys added to the work queue", ["name"])
WORKQUEUE_RETRIES = Counter("workqueue_retries_total", "Keys queued again after a failure", ["name"])
WORKQUEUE_QUEUE_SECONDS = Histogram("workqueue_queue_duration_seconds",
                                    "How long a key waited in the work queue before it was taken", ["name"],
                                    buckets=QUEUE_BUCKETS)
WORKQUEUE_WORK_SECONDS = Histogram("workqueue_work_duration_seconds", "How long processing one key took", ["name"],
                                   buckets=QUEUE_BUCKETS)
RECONCILE_TOTAL = Counter("controller_runtime_reconcile_total", "Reconciles, by result "
                          "(success, error, requeue_after)", ["controller", "result"])
RECONCILE_ERRORS = Counter("controller_runtime_reconcile_errors_total", "Reconciles that failed", ["controller"])
RECONCILE_TIME = Histogram("controller_runtime_reconcile_time_seconds", "Time one reconcile took", ["controller"],
                           buckets=QUEUE_BUCKETS)
REPAIR_LATENCY = Histogram("appkeeper_repair_latency_seconds",
                           "From the watch event that showed a child deleted or drifted to the end of the "
                           "reconcile that put it back", buckets=QUEUE_BUCKETS)
ROLLBACK_LATENCY = Histogram("appkeeper_rollback_latency_seconds",
                             "From the start of the reconcile that found a rollout failed (a pod past "
                             "spec.rollout.failureThreshold, or the progress deadline) to the rollback written",
                             buckets=QUEUE_BUCKETS)
LEADER_STATUS = Gauge("leader_election_master_status", "1 while this process leads (client-go's name)", ["name"])
INFLIGHT: dict[object, float] = {}  # key -> monotonic start of its reconcile, for the two gauges below
_inflight_lock = threading.Lock()


def set_leader(leading: bool, lease: str) -> None:
    LEADER.set(1 if leading else 0)
    LEADER_STATUS.labels(lease).set(1 if leading else 0)


def started(key: object) -> None:
    with _inflight_lock:
        INFLIGHT[key] = time.monotonic()


def finished(key: object) -> None:
    with _inflight_lock:
        INFLIGHT.pop(key, None)


class InFlight(Collector):
    """client-go's workqueue_unfinished_work_seconds (the work in progress, summed) and
    workqueue_longest_running_processor_seconds: a stuck worker shows as a number that only grows."""

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        with _inflight_lock:
            ages = [now - t for t in INFLIGHT.values()]
        unfinished = GaugeMetricFamily("workqueue_unfinished_work_seconds", "Seconds of work in progress not "
                                       "yet observed by work_duration (large: stuck workers)", labels=["name"])
        unfinished.add_metric(["app"], sum(ages))
        longest = GaugeMetricFamily("workqueue_longest_running_processor_seconds", "Seconds the longest running "
                                    "reconcile has been running", labels=["name"])
        longest.add_metric(["app"], max(ages, default=0.0))
        yield unfinished
        yield longest


REGISTRY.register(InFlight())
CONDITION_STATUSES = ("True", "False")  # appkeeper never writes Unknown
_exported: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}  # each App's (type, status) now
_exported_lock = threading.Lock()


class AppConditions(Collector):
    """appkeeper_app_condition{namespace,name,type,status}: 1 for the current status of each
    condition of each App, 0 for the other, as kube-state-metrics shows a Deployment's. Built at
    scrape time from one small record per App, not kept as a series object each (6 per App)."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("appkeeper_app_condition", "1 for the current status of each condition of "
                                   "each App (0 for the other)", labels=["namespace", "name", "type", "status"])
        with _exported_lock:
            held = list(_exported.items())
        for (namespace, name), conditions in held:
            for type_, current in conditions:
                for status in CONDITION_STATUSES:
                    family.add_metric([namespace, name, type_, status], 1.0 if current == status else 0.0)
        yield family


REGISTRY.register(AppConditions())


def app_conditions(namespace: str, name: str, conditions: list[dict[str, object]]) -> None:
    now = tuple((str(c.get("type")), str(c.get("status"))) for c in conditions)
    with _exported_lock:
        _exported[(namespace, name)] = now


def forget_app(namespace: str, name: str) -> None:
    """An App gone (or handed to another shard): its series go too."""
    with _exported_lock:
        _exported.pop((namespace, name), None)
