"""`appkeeper diff -f app.yaml`: what the operator would change, before it does, like `kubectl diff`.

The children are built by the same pure builders the operator uses; each one is server-side
applied with `dryRun=All` and field manager `appkeeper` (the API server defaults, validates and
merges it as it would for real, and stores nothing), and the result is compared with what the
cluster holds. Children the App no longer implies are listed as deletions; a child the App does
not own is listed as refused, as the operator would refuse it. Exit code 0: no changes; 1: changes;
2: an error (a bad spec names its field)."""

from __future__ import annotations

import copy
import difflib
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import yaml

from .api import API_VERSION, DRAIN_SECONDS, KIND, App, Json, SpecError, parse_app
from .config import LABEL_SNAPSHOT_OF
from .deps import Deps
from .desired import child_key, selector_string
from .drift import Owner, owned_by, ownership
from .errors import OperatorError
from .events import Recorder
from .kinds import CHILDREN, build_children
from .kube import ApiError, Kube
from .security import Profiles
from .snapshots import plan_config
from .store import Store
from .verify import list_kind

NOISE = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")


def clean(obj: Json | None) -> Json:
    """The object as a person compares it: no status, no bookkeeping metadata."""
    if obj is None:
        return {}
    out = copy.deepcopy(obj)
    out.pop("status", None)
    for key in NOISE:
        out.get("metadata", {}).pop(key, None)
    return out


def unified(kind: str, name: str, before: Json, after: Json) -> list[str]:
    a = yaml.safe_dump(before, sort_keys=True).splitlines(keepends=True) if before else []
    b = yaml.safe_dump(after, sort_keys=True).splitlines(keepends=True) if after else []
    return list(difflib.unified_diff(a, b, f"{kind}/{name} (live)", f"{kind}/{name} (appkeeper)"))


def live_app(kube: Kube, body: Json) -> App:
    """The App as written, with the live object's uid (its children's ownerReferences name it)."""
    meta = body.setdefault("metadata", {})
    live = kube.get(API_VERSION, KIND, meta["namespace"], meta["name"])
    if live is not None:
        meta["uid"] = live["metadata"]["uid"]
        body["status"] = live.get("status") or {}
    meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    return parse_app(body)


def desired_children(kube: Kube, app: App, drain_seconds: int = DRAIN_SECONDS) -> tuple[list[Json], list[str]]:
    """What the operator would build (its own config reading and Pod Security choice, from the API
    rather than a watch store), and the problems it would report on the way."""
    deps = Deps(kube, Store(), Recorder(kube, lambda: datetime.now(UTC)))
    config = plan_config(deps, app)
    children = build_children(app, datetime.now(UTC), None, config.plan, Profiles().profile(kube, app),
                              drain_seconds)
    return children, [f"# {p.reason}: {p.message}\n" for p in config.problems]


def diff_app(kube: Kube, app: App, drain_seconds: int = DRAIN_SECONDS) -> list[str]:
    desired, lines = desired_children(kube, app, drain_seconds)
    listed = {kind.kind: list_kind(kube, kind, app.namespace, selector_string(app.name)) for kind in CHILDREN}
    for obj in desired:
        kind, name = child_key(obj)
        if listed.get(kind, []) is None:
            lines.append(f"# {kind}/{name}: not served by the API server ({obj['apiVersion']}); the operator creates "
                         "it once it is\n")
            continue
        live = kube.get(obj["apiVersion"], kind, app.namespace, name)
        holder = ownership(live, Owner(app.name, app.uid)) if live is not None else None
        if holder is not None:
            lines.append(f"# {kind}/{name}: refused, it is not the App's ({holder}); the operator leaves it alone\n")
            continue
        after = kube.apply(obj, dry_run=True)
        lines += unified(kind, name, clean(live), clean(after))
    wanted = {child_key(o) for o in desired}
    for kind, objects in listed.items():
        for obj in objects or []:
            name = obj["metadata"]["name"]
            snapshot = LABEL_SNAPSHOT_OF in (obj["metadata"].get("labels") or {})  # pruned by history instead
            if (kind, name) not in wanted and owned_by(obj, app.uid) and not snapshot:
                lines.append(f"# {kind}/{name}: would be deleted, the App no longer implies it\n")
                lines += unified(kind, name, clean(obj), {})
    return lines


def load(path: str, namespace: str | None) -> Iterable[Json]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if doc.get("kind") != KIND:
            raise SpecError("kind", f"expected an {KIND}, got {doc.get('kind')!r}")
        meta = doc.setdefault("metadata", {})
        meta["namespace"] = namespace or meta.get("namespace") or "default"
        yield doc


def run(kube: Kube, path: str, namespace: str | None, drain_seconds: int = DRAIN_SECONDS,
        out: TextIO = sys.stdout) -> int:
    changed = False
    try:
        for body in load(path, namespace):
            app = live_app(kube, body)
            lines = diff_app(kube, app, drain_seconds)
            out.writelines(lines)
            changed = changed or bool(lines)
    except SpecError as e:
        print(f"error: {e.field}: {e.message}", file=sys.stderr)
        return 2
    except ApiError as e:
        print(f"error: the API server said {e.status} {e.reason}: {e.message}", file=sys.stderr)
        return 2
    except OperatorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if changed else 0
