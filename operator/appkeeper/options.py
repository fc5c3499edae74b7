"""How the operator runs, as `appkeeper run`'s flags set it (cli.py) and its defaults, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from .api import DRAIN_SECONDS
from .leader import LeaseConfig


@dataclass
class Options:
    workers: int = 16
    resync_seconds: float = 300.0
    max_backoff_seconds: float = 300.0
    kubeconfig: str | None = None
    lease: LeaseConfig | None = None  # set: only the Lease holder reconciles
    shards: int = 1  # > 1 (with `lease`): the Apps are split into shards, each held through its own Lease
    namespaces: list[str] = field(default_factory=list)  # watched; []: all
    denied: list[str] = field(default_factory=list)  # never served, never written (operatorNamespacesDenied)
    admission_policy: str | None = None  # its absence is reported (guard.py)
    optional_poll_seconds: float = 30.0  # how often a missing optional kind's API is looked for
    own_namespace: str = "default"  # where the operator's Events about itself go
    drain_seconds: int = DRAIN_SECONDS  # every pod's drain where spec.rollout.drainSeconds is unset
    prometheus_url: str | None = None  # canary analyses' PromQL queries go here
    opted_in: frozenset[str] = frozenset()  # kinds.OPT_INS granted (the chart's values): Secrets in config rollouts
