"""Config rollouts, the I/O half (config.py is the pure half): read the ConfigMaps (and, opted
in, Secrets) an App's pods reference (from the store, else once from the API), and delete the App's snapshots beyond
`spec.rollout.revisionHistoryLimit`."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import metrics
from .api import App, Json
from .config import CONFIG_MAP, LABEL_SNAPSHOT_OF, SECRET, ConfigPlan, config_refs, plan, snapshots_to_prune
from .deps import Deps
from .drift import owned_by
from .kube import ApiError
from .reasons import CONFIG_MISSING
from .status import Problem
from .store import ChildKey


@dataclass
class ConfigRead:
    plan: ConfigPlan | None = None
    problems: list[Problem] = field(default_factory=list)
    recheck: float | None = None  # seconds until a debounced ConfigMap change takes effect


def plan_config(deps: Deps, app: App, secrets: bool = False) -> ConfigRead:
    """The snapshots the pod template names, and a ConfigMissing problem per missing source.
    `secrets`: the operator was started with --config-secrets (it may read them)."""
    refs = config_refs(app.spec, secrets) if app.spec.config_rollout else []
    deps.store.configs.use((app.namespace, app.name), {r.source for r in refs})
    out = ConfigRead()
    if not refs:
        return out
    sources: dict[str, Json | None] = {}
    for ref in refs:
        known, obj, wait = deps.store.configs.known(app.namespace, ref.source)
        if not known:
            obj = deps.kube.get("v1", ref.kind, app.namespace, ref.name)
            deps.store.configs.read(app.namespace, ref.source, obj)
        if wait is not None:
            out.recheck = min(wait, out.recheck or wait)
        sources[ref.source] = obj
    out.plan = plan(app.name, refs, sources)
    out.problems = [Problem(CONFIG_MISSING, f"{ref.kind} {ref.name} ({ref.where}) not found; the pods cannot "
                            "start until it exists") for ref in out.plan.missing]
    return out


def prune_snapshots(deps: Deps, app: App, observed: dict[ChildKey, Json], config: ConfigPlan | None) -> None:
    snaps = [obj for (kind, _), obj in observed.items()
             if kind in (CONFIG_MAP, SECRET) and LABEL_SNAPSHOT_OF in (obj["metadata"].get("labels") or {})
             and owned_by(obj, app.uid)]
    current = {s["name"] for s in (config.snapshots.values() if config else [])}
    for snap in snapshots_to_prune(snaps, current, app.spec.rollout.revision_history_limit):
        kind, name = str(snap.get("kind")), snap["metadata"]["name"]
        try:
            deps.kube.delete("v1", kind, app.namespace, name, uid=snap["metadata"].get("uid"))
        except ApiError as e:
            if e.status not in (404, 409):
                raise
        metrics.SNAPSHOTS_PRUNED.inc()
        deps.memory.pop(((app.namespace, app.name), (kind, name)), None)
