"""Whether the admission policy that keeps tenants from using the operator as a confused deputy is
in place: its ValidatingAdmissionPolicy and its binding. The operator's own guarantees hold without
it, but a tenant who may create Apps would then get what the operator may create; a platform team
must see that at once: /readyz, the metric `appkeeper_admission_policy_present` and a Warning Event."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from . import metrics
from .events import event_body
from .kube import ApiError, Kube

log = logging.getLogger("appkeeper.guard")
ADMISSION = "admissionregistration.k8s.io/v1"


@dataclass(frozen=True)
class PolicyState:
    present: bool | None  # None: could not tell (no right to read it, or no answer)
    missing: tuple[str, ...] = ()
    why: str = ""


def policy_state(kube: Kube, name: str) -> PolicyState:
    """Reads the policy `name` and its binding of the same name (the chart names both so)."""
    missing = []
    try:
        for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
            if kube.get(ADMISSION, kind, "", name) is None:
                missing.append(f"{kind} {name}")
    except ApiError as e:
        return PolicyState(None, why=str(e))
    return PolicyState(not missing, tuple(missing))


class PolicyGuard:
    """Checked at start and at every resync; tells the metric, an Event (once per change) and
    the readiness endpoint (`problem`)."""

    def __init__(self, kube: Kube, name: str, namespace: str) -> None:
        self.kube, self.name, self.namespace = kube, name, namespace
        self.problem: str | None = None
        self._last: bool | None = None
        self._told = False  # said once that it cannot tell

    def check(self) -> PolicyState:
        state = policy_state(self.kube, self.name)
        metrics.ADMISSION_POLICY.set(-1 if state.present is None else int(state.present))
        if state.present is None:
            if self._last is not None or not self._told:  # once, not every 30 s (no right to read it)
                log.info("cannot tell whether admission policy %s is in place: %s", self.name, state.why)
            self._last, self._told = None, True
            return state
        self.problem = None if state.present else (
            f"admission policy missing ({', '.join(state.missing)}): Apps are admitted without checking "
            "their users' rights")
        if state.present != self._last:
            self._last = state.present
            if self.problem is not None:
                log.error("%s", self.problem)
                self._event(self.problem)
        return state

    def _event(self, message: str) -> None:
        involved = {"apiVersion": ADMISSION, "kind": "ValidatingAdmissionPolicy", "name": self.name}
        event = event_body(self.namespace, f"{self.name}.{uuid.uuid4().hex[:12]}", involved, "Warning",
                           "AdmissionPolicyMissing", message, datetime.now(UTC))
        try:
            self.kube.create_event(event)
        except ApiError as e:
            log.warning("could not post the AdmissionPolicyMissing event: %s", e)
