"""`appkeeper status app/<name>` (and `kubectl appkeeper status`, the same program as a kubectl
plugin): an App at a glance, as `kubectl argo rollouts get rollout` shows a Rollout: phase,
conditions, children, repairs, the last rollback and the canary. And `promote` / `abort`, which
ask the operator (by the annotation appkeeper.dev/canary) to end a canary. The rendering is pure."""

from __future__ import annotations

import sys
from typing import TextIO

from .api import API_VERSION, KIND, Json
from .kube import Kube
from .names import ANN_CANARY


class NotFound(LookupError):
    pass


def app_name(ref: str) -> str:
    """`app/x`, `apps/x`, `akapp/x`, `app.appkeeper.dev/x` or `x` -> x."""
    kind, _, name = ref.rpartition("/")
    if kind and kind.split(".")[0] not in ("app", "apps", "akapp", "akapps"):
        raise ValueError(f"{ref}: not an App (use app/<name> or <name>)")
    if not name:
        raise ValueError(f"{ref}: no name")
    return name


def render(app: Json) -> list[str]:
    meta, spec, st = app["metadata"], app.get("spec") or {}, app.get("status") or {}
    current = st.get("observedGeneration") == meta.get("generation")
    lines = [f"Name:         {meta['name']}", f"Namespace:    {meta.get('namespace', '')}",
             f"Phase:        {st.get('phase', 'Unknown')}" + ("" if current or not st else
                                                                " (for an older generation: the operator is behind)"),
             f"Image:        {st.get('image') or spec.get('image', '')}",
             f"Replicas:     {spec.get('replicas', 1)} desired, {st.get('readyReplicas', 0)} ready, "
             f"{st.get('updatedReplicas', 0)} updated, {st.get('availableReplicas', 0)} available"]
    if st.get("url"):
        lines.append(f"URL:          {st['url']}")
    lines.append("Conditions:")
    for c in st.get("conditions") or []:
        lines.append(f"  {c.get('type', ''):<12} {c.get('status', ''):<6} {c.get('reason', ''):<20} "
                     f"{c.get('message', '')}")
    children = ", ".join(f"{c['kind']}/{c['name']}" for c in st.get("children") or [])
    lines.append(f"Children:     {children or 'none yet'}")
    repairs = st.get("repairs") or {}
    lines.append(f"Repairs:      {repairs.get('count', 0)}" + (
        f", last {repairs.get('lastReason')} at {repairs.get('lastTime')}" if repairs.get("count") else ""))
    if st.get("rolledBackGeneration"):
        lines.append(f"Rollback:     generation {st['rolledBackGeneration']} rolled back to revision "
                     f"{st.get('lastHealthyRevision')}: {st.get('rolledBackBecause', '')}")
    else:
        target = st.get("lastHealthyRevision") or "(none yet)"
        lines.append(f"Rollback:     none; the rollback target is revision {target}")
    canary = st.get("canary")
    if canary:
        lines.append(f"Canary:       {canary.get('phase')}, step {canary.get('step')}/{canary.get('steps')} "
                     f"({canary.get('replicas', 0)} pods) since {canary.get('startedAt')}; {canary.get('judged', '')}")
    return lines


def show(kube: Kube, namespace: str, ref: str, out: TextIO = sys.stdout) -> int:
    name = app_name(ref)
    app = kube.get(API_VERSION, KIND, namespace, name)
    if app is None:
        raise NotFound(f"App {namespace}/{name} not found")
    out.write("\n".join(render(app)) + "\n")
    return 0


def request(kube: Kube, namespace: str, ref: str, action: str, out: TextIO = sys.stdout) -> int:
    """Ask the operator to promote or abort the App's canary (it removes the annotation once done)."""
    name = app_name(ref)
    app = kube.get(API_VERSION, KIND, namespace, name)
    if app is None:
        raise NotFound(f"App {namespace}/{name} not found")
    canary = (app.get("status") or {}).get("canary") or {}
    if canary.get("phase") != "Progressing":
        raise NotFound(f"App {namespace}/{name} has no canary running (status.canary.phase is "
                       f"{canary.get('phase') or 'unset'})")
    kube.merge_patch(API_VERSION, KIND, namespace, name, {"metadata": {"annotations": {ANN_CANARY: action}}})
    out.write(f"app/{name}: {action} requested (annotation {ANN_CANARY}={action}); "
              f"`kubectl appkeeper status app/{name} -n {namespace}` shows when it is done\n")
    return 0
