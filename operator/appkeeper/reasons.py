"""Every reason appkeeper writes, in a condition of an App's status or an Event about it, named
once here with what it means. docs/reference.md's table of reasons is generated from REASONS
(hack/gen_reference.py); code compares reasons only with these constants, never by their text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    name: str
    where: str  # condition | event | both
    meaning: str


REASONS: dict[str, Reason] = {}


def _reason(name: str, where: str, meaning: str) -> str:
    REASONS[name] = Reason(name, where, meaning)
    return name


# How the App is doing (Ready / Progressing / Degraded conditions).
HEALTHY = _reason("Healthy", "condition", "Degraded=False: nothing keeps the App from converging")
ALL_REPLICAS_READY = _reason("AllReplicasReady", "condition", "every replica of the current revision is ready")
SCALED_TO_ZERO = _reason("ScaledToZero", "condition", "zero replicas are asked for, and none run")
ROLLOUT_COMPLETE = _reason("RolloutComplete", "condition", "Progressing=False: the rollout is done")
ENDPOINTS_PENDING = _reason("EndpointsPending", "condition",
                            "the pods are ready, but the Service does not list them all as ready endpoints yet")
WAITING_FOR_PODS = _reason("WaitingForPods", "condition", "no pod is ready yet and no revision was healthy before")
CREATING = _reason("Creating", "condition", "the first replicas are being created")
ROLLING_OUT = _reason("RollingOut", "condition", "a new revision is replacing the old one")
PAUSED = _reason("Paused", "condition", "spec.paused: children are not changed")
SUSPENDED = _reason("Suspended", "condition", "spec.suspend: scaled to zero")
SUSPENDING = _reason("Suspending", "condition", "spec.suspend: replicas are still going away")
DEADLINE = _reason("ProgressDeadlineExceeded", "condition",
                   "the rollout missed spec.rollout.progressDeadlineSeconds (and could not be rolled back)")
ROLLED_BACK = _reason("RolledBack", "both", "a failed rollout went back to status.lastHealthyRevision")
CANARY_STEP = _reason("CanaryStep", "both", "a canary (spec.rollout.canary) runs a step, or passed one")
CANARY_PROMOTED = _reason("CanaryPromoted", "event", "every canary step passed (or it was promoted): the stable "
                          "Deployment takes the new pod template")
CANARY_FAILED = _reason("CanaryFailed", "both", "a canary step failed (or it was aborted): the canary is scaled away "
                        "and the stable pods keep the old template until the spec changes")
# What keeps it from converging (Degraded=True).
INVALID_SPEC = _reason("InvalidSpec", "both", "the spec is invalid; the message names the field")
CHILD_CONFLICT = _reason("ChildConflict", "both", "a child's name is taken by an object this App does not own")
CONFIG_MISSING = _reason("ConfigMissing", "condition", "a ConfigMap the pods reference does not exist")
REJECTED = "<Kind>Rejected"
REASONS[REJECTED] = Reason(REJECTED, "condition",
                           "the API server refused a child for good (invalid, forbidden, over quota); tried again "
                           "every 30 s")
NOT_SERVED = _reason("NotServed", "condition", "the App asks for a child of an optional kind whose API the API server "
                                               "does not serve (its CRD or API group is missing); created once it is")
POD_SECURITY = _reason("PodSecurity", "condition", "the namespace's Pod Security level refuses the pods")
REPLICA_FAILURE = _reason("ReplicaFailure", "condition", "the workload cannot create its pods; the message says why")
# A container that will not start without a change: the kubelet's waiting reason, passed on.
PULL_FAILURES = tuple(_reason(r, "condition", "the image cannot be pulled (the kubelet's reason, passed on)")
                      for r in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"))
CRASH_LOOP = _reason("CrashLoopBackOff", "condition", "a container keeps exiting (the kubelet's reason, passed on)")
STUCK_WAITING = (*PULL_FAILURES, CRASH_LOOP,
                 *(_reason(r, "condition", "a container cannot be created or started (the kubelet's reason, passed on)")
                   for r in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")))
UNSCHEDULABLE = _reason("Unschedulable", "condition", "a pod fits no node (the scheduler's reason, passed on)")
API_ERROR = _reason("APIError", "both", "the API server failed this App's requests several times in a row, or "
                                        "refused one for good")
INTERNAL_ERROR = _reason("InternalError", "both", "the operator itself failed on this App; it retries with backoff")
# What the operator did (Events).
CREATED = _reason("Created", "event", "children created (one Event names them all)")
REPAIRED = _reason("Repaired", "event", "a deleted or drifted child was put back")
ADOPTED = _reason("Adopted", "event", "an existing object that asked to be (appkeeper.dev/adopt) was adopted")
DELETED = _reason("Deleted", "event", "a child the spec no longer asks for was deleted")
RETAINED = _reason("Retained", "event", "a retain: true claim was kept when its volume left the spec")


def rejected(kind: str) -> str:
    """The reason for a child of `kind` the API server refused for good (REJECTED)."""
    return f"{kind}Rejected"
