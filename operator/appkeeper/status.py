"""Pure: what the operator observed -> the App's status (phase, counts, conditions).
Conditions follow metav1.Condition; lastTransitionTime moves only when a status flips."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import reasons as R
from .api import AppSpec, Json
from .desired import Replicas, selector_string

DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Problem:
    """Something that keeps the App from converging: a reason (reasons.py) and a message; `retry_in`:
    seconds after which the reconcile should look again though no event may come (None: no need)."""

    reason: str
    message: str
    retry_in: float | None = None


@dataclass
class Observed:
    name: str
    namespace: str
    generation: int
    old_status: Json
    now: datetime
    spec: AppSpec | None = None
    replicas: Replicas | None = None
    workload: Json | None = None
    children: list[tuple[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    rolled_back_to: str | None = None
    rollback_cause: str | None = None
    stable_in: float = 0.0  # seconds until every pod has run long enough to call its revision healthy
    unserved: str | None = None  # the pods are ready, the Service does not route to them all yet (served.py)
    routed_in: float = 0.0  # seconds until kube-proxy has surely applied the Service's last endpoint change
    active_schedule: str | None = None
    canary: Json | None = None  # status.canary (canary.py)
    canary_progress: str | None = None  # a canary step is running: where it stands, for a person
    template_hash: str | None = None  # status.templateHash: the pod template the stable workload took from the spec


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: list[Json], type_: str, status: bool, reason: str, message: str,
                  generation: int, now: datetime) -> list[Json]:
    """Returns the list with `type_` set; keeps lastTransitionTime unless the status flips."""
    value = "True" if status else "False"
    old = next((c for c in conditions if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value else timestamp(now)
    new = {"type": type_, "status": value, "reason": reason, "message": message,
           "lastTransitionTime": since, "observedGeneration": generation}
    return [c for c in conditions if c.get("type") != type_] + [new]


def workload_counts(workload: Json | None) -> dict[str, int]:
    st = (workload or {}).get("status") or {}
    keys = ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas")
    return {k: int(st.get(k) or 0) for k in keys}


def workload_caught_up(workload: Json) -> bool:
    gen = workload.get("metadata", {}).get("generation", 0)
    return int((workload.get("status") or {}).get("observedGeneration") or 0) >= int(gen)


def deadline_exceeded(workload: Json | None) -> bool:
    for c in ((workload or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("status") == "False" \
                and c.get("reason") == R.DEADLINE:
            return True
    return False


def workload_revision(workload: Json) -> str | None:
    if workload.get("kind") == "StatefulSet":
        rev = (workload.get("status") or {}).get("updateRevision")
        return str(rev) if rev else None
    rev = workload.get("metadata", {}).get("annotations", {}).get(DEPLOYMENT_REVISION)
    return str(rev) if rev else None


def workload_image(workload: Json) -> str | None:
    containers = workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return str(containers[0]["image"]) if containers else None


def app_url(spec: AppSpec, name: str, namespace: str) -> str | None:
    if spec.ingress is not None:
        scheme = "https" if spec.ingress.tls_secret_name else "http"
        return f"{scheme}://{spec.ingress.host or name}{spec.ingress.path}"
    if spec.ports and spec.service.type != "None":
        return f"http://{name}.{namespace}.svc.cluster.local:{spec.ports[0].service_port}"
    return None


def compute_status(obs: Observed) -> Json:
    old = obs.old_status
    counts = workload_counts(obs.workload)
    status: Json = {
        "observedGeneration": obs.generation,
        "selector": selector_string(obs.name),
        **counts,
        "children": [{"kind": k, "name": n} for k, n in sorted(obs.children)],
    }
    for keep in ("image", "lastHealthyRevision", "url", "templateHash", "canary"):
        if old.get(keep):
            status[keep] = old[keep]
    if obs.template_hash:
        status["templateHash"] = obs.template_hash
    if obs.canary:
        status["canary"] = obs.canary
    repairs = dict(old.get("repairs") or {"count": 0})
    if obs.repairs:
        repairs = {"count": int(repairs.get("count", 0)) + len(obs.repairs),
                   "lastTime": timestamp(obs.now), "lastReason": obs.repairs[-1]}
    status["repairs"] = repairs
    if obs.active_schedule:
        status["activeSchedule"] = obs.active_schedule
    if obs.rolled_back_to or old.get("rolledBackGeneration") == obs.generation:
        status["rolledBackGeneration"] = obs.generation
        if obs.rolled_back_to:  # the revision it went back to proved itself, recorded or not
            status["lastHealthyRevision"] = obs.rolled_back_to
        cause = obs.rollback_cause or old.get("rolledBackBecause")
        if cause:
            status["rolledBackBecause"] = cause

    phase, ready, progressing, degraded = _judge(obs, counts, status)
    status["phase"] = phase
    conditions: list[Json] = list(old.get("conditions") or [])
    for type_, (value, reason, message) in (("Ready", ready), ("Progressing", progressing),
                                             ("Degraded", degraded)):
        conditions = set_condition(conditions, type_, value, reason, message, obs.generation, obs.now)
    status["conditions"] = conditions
    return status


Verdict = tuple[bool, str, str]


def failed_reconcile_status(old: Json, generation: int, reason: str, message: str, now: datetime) -> Json:
    """The status of an App whose reconcile failed (our own error, or the API erring again and
    again): what was known stays, and Degraded says what failed, for this generation."""
    status = dict(old)
    status["observedGeneration"] = generation
    status["phase"] = "Degraded"
    conditions: list[Json] = list(old.get("conditions") or [])
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    conditions = set_condition(conditions, "Ready", ready.get("status") == "True", reason,
                               str(ready.get("message") or "not known: the reconcile failed"), generation, now)
    conditions = set_condition(conditions, "Progressing", False, reason, message, generation, now)
    conditions = set_condition(conditions, "Degraded", True, reason, message, generation, now)
    status["conditions"] = conditions
    return status


def _judge(obs: Observed, counts: dict[str, int], status: Json) -> tuple[str, Verdict, Verdict, Verdict]:
    """-> phase, and (status, reason, message) for Ready, Progressing and Degraded."""
    spec = obs.spec
    if spec is None:
        p = obs.problems[0]
        return "Failed", (False, p.reason, p.message), (False, p.reason, "not reconciling an invalid spec"), \
            (True, p.reason, p.message)
    status["url"] = app_url(spec, obs.name, obs.namespace)
    if status["url"] is None:
        del status["url"]
    want = obs.replicas.count if obs.replicas else spec.replicas
    settled = _settled(obs.workload, counts, want)
    if settled and obs.workload is not None:
        _record_healthy(obs, obs.workload, status)
    ready_msg = f"{counts['readyReplicas']}/{want} replicas ready"
    if status.get("image"):
        ready_msg += f", running {status['image']}"
    for judge in (_paused, _rolled_back, _problem, _past_deadline, _suspended, _canary):
        verdict = judge(obs, spec, counts, status, settled, ready_msg)
        if verdict is not None:
            return verdict
    return _rolling(obs, counts, status, settled, want, ready_msg)


HEALTHY: Verdict = (False, R.HEALTHY, "no problems")
Judgement = tuple[str, Verdict, Verdict, Verdict]


def workload_settled(wl: Json | None, want: int) -> bool:
    """Whether the workload alone says Ready: every replica updated, ready and available."""
    return _settled(wl, workload_counts(wl), want)


def _settled(wl: Json | None, counts: dict[str, int], want: int) -> bool:
    return (wl is not None and workload_caught_up(wl) and counts["updatedReplicas"] >= want
            and counts["readyReplicas"] >= want and counts["replicas"] == want
            and counts["availableReplicas"] >= want)


def _record_healthy(obs: Observed, wl: Json, status: Json) -> None:
    image, revision = workload_image(wl), workload_revision(wl)
    if image:
        status["image"] = image
    # A container with no readiness probe is ready the moment it starts, crash or not: a revision
    # is healthy only once its pods have also kept running a while (failfast.STABLE_SECONDS).
    if revision and not obs.rolled_back_to and status.get("rolledBackGeneration") != obs.generation \
            and obs.stable_in == 0:
        status["lastHealthyRevision"] = revision


def _paused(obs: Observed, spec: AppSpec, counts: dict[str, int], status: Json, settled: bool,
            ready_msg: str) -> Judgement | None:
    if not spec.paused:
        return None
    return R.PAUSED, (settled, R.PAUSED, "paused: children are not being changed; " + ready_msg), \
        (False, R.PAUSED, "spec.paused is true"), HEALTHY


def _problem(obs: Observed, spec: AppSpec, counts: dict[str, int], status: Json, settled: bool,
             ready_msg: str) -> Judgement | None:
    if not obs.problems:
        return None
    p = obs.problems[0]
    return "Degraded", (settled, p.reason, ready_msg), (False, p.reason, p.message), (True, p.reason, p.message)


def _rolled_back(obs: Observed, spec: AppSpec, counts: dict[str, int], status: Json, settled: bool,
                 ready_msg: str) -> Judgement | None:
    if status.get("rolledBackGeneration") != obs.generation:
        return None
    cause = status.get("rolledBackBecause") or "missed its progress deadline"
    msg = (f"the rollout of generation {obs.generation} failed: {cause}; rolled back to "
           f"revision {status.get('lastHealthyRevision')}. Change the spec to roll out again.")
    return "Degraded", (settled, R.ROLLED_BACK, ready_msg), (False, R.ROLLED_BACK, msg), (True, R.ROLLED_BACK, msg)


def _past_deadline(obs: Observed, spec: AppSpec, counts: dict[str, int], status: Json, settled: bool,
                   ready_msg: str) -> Judgement | None:
    if not deadline_exceeded(obs.workload):
        return None
    msg = "the rollout missed spec.rollout.progressDeadlineSeconds"
    if spec.rollout.auto_rollback and not status.get("lastHealthyRevision"):
        msg += " and there is no healthy revision to roll back to"
    return "Degraded", (False, R.DEADLINE, ready_msg), \
        (False, R.DEADLINE, msg), (True, R.DEADLINE, msg)


def _suspended(obs: Observed, spec: AppSpec, counts: dict[str, int], status: Json, settled: bool,
               ready_msg: str) -> Judgement | None:
    if not spec.suspend:
        return None
    done = counts["replicas"] == 0
    return R.SUSPENDED, (False, R.SUSPENDED, "spec.suspend is true: scaled to zero"), \
        (not done, R.SUSPENDING if not done else R.SUSPENDED,
         f"{counts['replicas']} replicas left" if not done else "scaled to zero"), HEALTHY


def _canary(obs: Observed, spec: AppSpec, counts: dict[str, int], status: Json, settled: bool,
            ready_msg: str) -> Judgement | None:
    if not obs.canary_progress:
        return None
    ready = (True, R.ALL_REPLICAS_READY, ready_msg) if settled else (False, R.ROLLING_OUT, ready_msg)
    return "Progressing", ready, (True, R.CANARY_STEP, obs.canary_progress), HEALTHY


def _rolling(obs: Observed, counts: dict[str, int], status: Json, settled: bool, want: int,
             ready_msg: str) -> Judgement:
    if settled and obs.unserved:
        return "Progressing", (False, R.ENDPOINTS_PENDING, f"{ready_msg}; {obs.unserved}"), \
            (True, R.ENDPOINTS_PENDING, obs.unserved), HEALTHY
    if settled:
        reason = R.ALL_REPLICAS_READY if want else R.SCALED_TO_ZERO
        return "Ready", (True, reason, ready_msg), (False, R.ROLLOUT_COMPLETE, _why(obs)), HEALTHY
    if obs.workload is None or (counts["readyReplicas"] == 0 and not status.get("lastHealthyRevision")):
        return "Pending", (False, R.WAITING_FOR_PODS, ready_msg), \
            (True, R.CREATING, f"waiting for {want} replicas; " + ready_msg), HEALTHY
    msg = f"{counts['updatedReplicas']}/{want} replicas updated, {counts['readyReplicas']} ready"
    return "Progressing", (False, R.ROLLING_OUT, ready_msg), (True, R.ROLLING_OUT, msg), HEALTHY


def _why(obs: Observed) -> str:
    r = obs.replicas
    if r is None or r.reason in ("Spec", "Autoscaled"):
        return "all replicas updated and ready"
    return f"all replicas updated and ready; replicas set by {r.reason}"


def status_changed(old: Json, new: Json) -> bool:
    return bool(_strip(old) != _strip(new))


def _strip(status: Json) -> Any:
    return {k: v for k, v in status.items() if v is not None}
