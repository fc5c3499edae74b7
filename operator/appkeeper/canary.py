"""Canary steps (spec.rollout.canary), the pure half: what runs while a new pod template is tried on
a few pods first, and when it is promoted or aborted.

A change of the pod template (status.templateHash says which one the stable Deployment last took
from the spec) does not reach the App's Deployment at once. The new template runs in a second
Deployment, `<app>-canary`, whose pods carry the App's label, so the one Service sends them a share
of the traffic by pod count; the stable Deployment keeps its template and its full count. Each
step wants its canary pods all ready, then serving for the step's pause with none crossing
spec.rollout.failureThreshold (failfast.py, the judge of every rollout), then the httpGet analysis
when one is set. The last step passed, the stable Deployment takes the new template (an ordinary
rolling update) and the canary's is pruned. A failure aborts at once: the canary is pruned, the
App is Degraded with CanaryFailed until the spec's template changes again.

What a step has reached lives in status.canary, so a restarted operator carries on where it was.
The first rollout of an App and a StatefulSet's do not go through steps."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime

from .api import AppSpec, Canary, Json
from .desired import canary_name
from .failfast import parse_time, rollout_failure
from .podhealth import workload_pods
from .reasons import CANARY_FAILED, CANARY_PROMOTED, CANARY_STEP
from .status import Problem, workload_counts, workload_settled


@dataclass(frozen=True)
class CanaryPlan:
    """What one reconcile does about the canary. `stable_template`: the template the App's own
    Deployment keeps instead of the spec's (None: the spec's). `replicas`: the canary Deployment's
    pods (0: there is none, and any is pruned). `analyze`: the step's pause is over and its httpGet
    analysis is due; `after_analysis` then finishes the step."""

    stable_template: Json | None = None
    replicas: int = 0
    state: Json | None = None  # status.canary
    template_hash: str | None = None  # status.templateHash
    problem: Problem | None = None
    progress: str | None = None  # for a person, in the Progressing condition
    event: tuple[str, str, str] | None = None  # (type, reason, message)
    consumed: bool = False  # the annotation was acted on: it is removed
    recheck: float | None = None
    analyze: bool = False


def stamp(now: datetime) -> str:
    """RFC 3339 to the millisecond: a pause counted from a time cut to the second ends up to 1 s early."""
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def template_hash(template: Json) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def canary_pods(app_name: str, pods: list[Json]) -> list[Json]:
    """The pods the canary Deployment's ReplicaSets made, of the App's pods (`pods`)."""
    return workload_pods(canary_name(app_name), pods)


def stable_template(stable: Json) -> Json:
    template: Json = copy.deepcopy(stable["spec"]["template"])
    template.get("metadata", {}).pop("creationTimestamp", None)
    return template


def decide(spec: AppSpec, new_template: Json, status: Json, stable: Json | None, canary: Json | None,
           pods: list[Json], annotation: str | None, now: datetime) -> CanaryPlan:
    """`new_template`: the pod template the spec asks for; `stable`, `canary`: the two Deployments
    as held (None: absent); `pods`: the canary's."""
    new, recorded = template_hash(new_template), status.get("templateHash")
    state: Json | None = status.get("canary")
    config = spec.rollout.canary
    if config is None or spec.is_stateful or stable is None or recorded in (None, new):
        return CanaryPlan(template_hash=new, state=state)  # no steps: the spec's template, the ordinary way
    held = CanaryPlan(stable_template(stable), 0, state, str(recorded))
    if not state or state.get("revision") != new:
        first = config.steps[0].count(spec.replicas)
        state = {"revision": new, "step": 1, "steps": len(config.steps), "startedAt": stamp(now),
                 "since": stamp(now), "replicas": first, "phase": "Progressing", "judged": "started"}
        held = replace(held, state=state, event=("Normal", CANARY_STEP, f"canary of a new pod template started: step "
                                                 f"1/{len(config.steps)}, {first} pods"))
    if state["phase"] == "Aborted":
        return replace(held, problem=Problem(CANARY_FAILED, str(state.get("judged"))))
    if annotation == "abort":
        return replace(_abort(held, state, "aborted by the annotation appkeeper.dev/canary=abort"), consumed=True)
    if annotation == "promote" or state["phase"] == "Promoted":
        return replace(_promote(held, state, new, "promoted by the annotation appkeeper.dev/canary=promote"),
                       consumed=annotation == "promote")
    return _step(spec, config, held, dict(state), canary, pods, now)


def _step(spec: AppSpec, config: Canary, held: CanaryPlan, state: Json, canary: Json | None, pods: list[Json],
          now: datetime) -> CanaryPlan:
    n, i = int(state["steps"]), int(state["step"])
    step = config.steps[min(i, len(config.steps)) - 1]
    want = step.count(spec.replicas)
    state["replicas"] = want
    # Only this revision's pods are judged: an earlier canary's may still be going away.
    since = (parse_time(state.get("since")) or now).replace(microsecond=0)  # pods' times are to the second
    mine = [p for p in pods if (parse_time((p.get("metadata") or {}).get("creationTimestamp")) or now) >= since]
    failure = rollout_failure(mine, None, spec.rollout.failure_threshold, now)
    if failure is not None:
        return _abort(held, state, f"step {i}/{n}: {failure}")
    if not workload_settled(canary, want):
        ready = workload_counts(canary)["readyReplicas"]
        state.pop("servingSince", None)
        return replace(held, replicas=want, state=state,
                       progress=f"canary step {i}/{n}: {ready}/{want} canary pods ready")
    serving = parse_time(state.get("servingSince")) or now
    state["servingSince"] = stamp(serving)
    left = step.pause_seconds - (now - serving).total_seconds()
    if left > 0:
        return replace(held, replicas=want, state=state, recheck=left + 0.1,
                       progress=f"canary step {i}/{n}: {want} canary pods serving, {left:.0f}s of the "
                                f"{step.pause_seconds}s pause left")
    running = replace(held, replicas=want, state=state,
                      progress=f"canary step {i}/{n}: {want} canary pods served {step.pause_seconds}s")
    if config.http is not None or config.prometheus is not None:
        return replace(running, analyze=True)
    return next_step(spec, config, running, state, f"step {i}/{n} passed: {want} pods served {step.pause_seconds}s, "
                     "none failing", now)


def after_analysis(spec: AppSpec, plan: CanaryPlan, failure: str | None, evidence: str, now: datetime) -> CanaryPlan:
    """The step's httpGet analysis answered: `failure` (None: passed) and `evidence`, for a person."""
    state, config = dict(plan.state or {}), spec.rollout.canary
    if config is None:
        return plan
    n, i = int(state["steps"]), int(state["step"])
    if failure is not None:
        return _abort(replace(plan, analyze=False), state, f"step {i}/{n}: {failure}")
    return next_step(spec, config, replace(plan, analyze=False), state, f"step {i}/{n} passed: {evidence}", now)


def next_step(spec: AppSpec, config: Canary, plan: CanaryPlan, state: Json, judged: str, now: datetime) -> CanaryPlan:
    n, i = int(state["steps"]), int(state["step"])
    if i >= n:
        return _promote(plan, dict(state, judged=judged), str(state["revision"]), f"all {n} steps passed; {judged}")
    want = config.steps[i].count(spec.replicas)
    state = {**state, "step": i + 1, "startedAt": stamp(now), "replicas": want, "judged": judged}
    state.pop("servingSince", None)
    return replace(plan, replicas=want, state=state, recheck=None,
                   progress=f"canary step {i + 1}/{n}: {want} canary pods starting",
                   event=("Normal", CANARY_STEP, f"canary {judged}; step {i + 1}/{n}: {want} pods"))


def _abort(plan: CanaryPlan, state: Json, why: str) -> CanaryPlan:
    state = {**state, "phase": "Aborted", "judged": why, "replicas": 0}
    state.pop("servingSince", None)
    message = f"canary aborted, the stable pods keep the old template: {why}"
    return replace(plan, replicas=0, state=state, progress=None, recheck=None, problem=Problem(CANARY_FAILED, message),
                   event=("Warning", CANARY_FAILED, message))


def _promote(plan: CanaryPlan, state: Json, revision: str, why: str) -> CanaryPlan:
    state = {**state, "phase": "Promoted", "judged": why, "replicas": 0}
    state.pop("servingSince", None)
    return replace(plan, stable_template=None, replicas=0, state=state, template_hash=revision, progress=None,
                   recheck=None, event=("Normal", CANARY_PROMOTED, f"canary promoted: {why}"))
