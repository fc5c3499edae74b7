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
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
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
from .kinds import CHILDREN, SECRETS, build_children
from .kube import ApiError, Kube
from .names import ANN_HASH
from .security import Profiles
from .snapshots import plan_config
from .store import Store
from .verify import list_kind

NOISE = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")
BOOKKEEPING = (ANN_HASH,)  # annotations that change with every change: shown with --show-bookkeeping


@dataclass
class Change:
    """One child as the cluster has it and as the operator would leave it ({}: absent)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    before: Json
    after: Json


def clean(obj: Json | None, bookkeeping: bool = False) -> Json:
    """The object as a person compares it: no status, no bookkeeping metadata."""
    if obj is None:
        return {}
    out = copy.deepcopy(obj)
    out.pop("status", None)
    if out.get("kind") == "Secret":  # as kubectl diff does: a change shows, its values do not
        for key in ("data", "stringData"):
            if key in out:
                out[key] = {k: "***" if i == 0 else f"*** ({i + 1})" for i, k in enumerate(sorted(out[key]))}
    meta = out.get("metadata", {})
    for key in NOISE:
        meta.pop(key, None)
    if not bookkeeping and meta.get("annotations"):
        for key in BOOKKEEPING:
            meta["annotations"].pop(key, None)
        if not meta["annotations"]:
            del meta["annotations"]
    return out


def unified(kind: str, name: str, before: Json, after: Json, namespace: str = "") -> list[str]:
    a = yaml.safe_dump(before, sort_keys=True).splitlines(keepends=True) if before else []
    b = yaml.safe_dump(after, sort_keys=True).splitlines(keepends=True) if after else []
    where = f"{namespace}/{name}" if namespace else name
    return list(difflib.unified_diff(a, b, f"{kind} {where} (live)", f"{kind} {where} (appkeeper)"))


def external(command: str, changes: list[Change]) -> int:
    """KUBECTL_EXTERNAL_DIFF, as kubectl diff runs it: two folders, one file per object named
    <group>.<version>.<Kind>.<namespace>.<name>, the live ones and the ones the operator would
    leave; the program's exit code (0 same, 1 different) is ours, anything else is an error."""
    with tempfile.TemporaryDirectory(prefix="appkeeper-diff-") as tmp:
        live, merged = Path(tmp) / "LIVE", Path(tmp) / "MERGED"
        live.mkdir()
        merged.mkdir()
        for c in changes:
            group_version = c.api_version.replace("/", ".") if "/" in c.api_version else f"core.{c.api_version}"
            file = f"{group_version}.{c.kind}.{c.namespace}.{c.name}"
            (live / file).write_text(yaml.safe_dump(c.before, sort_keys=True) if c.before else "")
            (merged / file).write_text(yaml.safe_dump(c.after, sort_keys=True) if c.after else "")
        code = subprocess.run([*shlex.split(command), str(live), str(merged)]).returncode
    if code in (0, 1):
        return code
    raise OperatorError(f"KUBECTL_EXTERNAL_DIFF ({command}) exited {code}")


def live_app(kube: Kube, body: Json) -> App:
    """The App as written, with the live object's uid (its children's ownerReferences name it)."""
    meta = body.setdefault("metadata", {})
    live = kube.get(API_VERSION, KIND, meta["namespace"], meta["name"])
    if live is not None:
        meta["uid"] = live["metadata"]["uid"]
        body["status"] = live.get("status") or {}
    meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    return parse_app(body)


def desired_children(kube: Kube, app: App, drain_seconds: int = DRAIN_SECONDS,
                     secrets: bool = False) -> tuple[list[Json], list[str]]:
    """What the operator would build (its own config reading and Pod Security choice, from the API
    rather than a watch store), and the problems it would report on the way."""
    deps = Deps(kube, Store(), Recorder(kube, lambda: datetime.now(UTC)))
    config = plan_config(deps, app, secrets)
    children = build_children(app, datetime.now(UTC), None, config.plan, Profiles().profile(kube, app),
                              drain_seconds)
    return children, [f"# {p.reason}: {p.message}\n" for p in config.problems]


def diff_app(kube: Kube, app: App, drain_seconds: int = DRAIN_SECONDS,
             bookkeeping: bool = False, secrets: bool = False) -> tuple[list[str], list[Change]]:
    """Notes for a person (a problem, a child refused or not served) and every child that would change."""
    desired, notes = desired_children(kube, app, drain_seconds, secrets)
    changes: list[Change] = []

    def change(obj: Json, before: Json | None, after: Json | None) -> None:
        a, b = clean(before, bookkeeping), clean(after, bookkeeping)
        if a != b:
            changes.append(Change(obj["apiVersion"], child_key(obj)[0], app.namespace, child_key(obj)[1], a, b))

    listed = {kind.kind: list_kind(kube, kind, app.namespace, selector_string(app.name)) for kind in CHILDREN
              if not kind.opt_in or (kind.opt_in == SECRETS and secrets)}
    for obj in desired:
        kind, name = child_key(obj)
        if listed.get(kind, []) is None:
            notes.append(f"# {kind} {app.namespace}/{name}: not served by the API server ({obj['apiVersion']}); "
                         "the operator creates it once it is\n")
            continue
        live = kube.get(obj["apiVersion"], kind, app.namespace, name)
        holder = ownership(live, Owner(app.name, app.uid)) if live is not None else None
        if holder is not None:
            notes.append(f"# {kind} {app.namespace}/{name}: refused, it is not the App's ({holder}); the operator "
                         "leaves it alone\n")
            continue
        change(obj, live, kube.apply(obj, dry_run=True))
    wanted = {child_key(o) for o in desired}
    for kind, objects in listed.items():
        for obj in objects or []:
            name = obj["metadata"]["name"]
            snapshot = LABEL_SNAPSHOT_OF in (obj["metadata"].get("labels") or {})  # pruned by history instead
            if (kind, name) not in wanted and owned_by(obj, app.uid) and not snapshot:
                notes.append(f"# {kind} {app.namespace}/{name}: would be deleted, the App no longer implies it\n")
                change(obj, obj, None)
    return notes, changes


def manifests(paths: list[str]) -> Iterable[tuple[str, str]]:
    """(where, text) of each -f: a file, stdin ("-"), or every .yaml/.yml/.json file of a folder."""
    for path in paths:
        if path == "-":
            yield "stdin", sys.stdin.read()
        elif Path(path).is_dir():
            for f in sorted(p for p in Path(path).iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file()):
                yield str(f), f.read_text(encoding="utf-8")
        else:
            yield path, Path(path).read_text(encoding="utf-8")


def load(paths: str | list[str], namespace: str | None) -> Iterable[Json]:
    for _, text in manifests([paths] if isinstance(paths, str) else paths):
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            if doc.get("kind") != KIND:
                raise SpecError("kind", f"expected an {KIND}, got {doc.get('kind')!r}")
            meta = doc.setdefault("metadata", {})
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            yield doc


def run(kube: Kube, paths: str | list[str], namespace: str | None, drain_seconds: int = DRAIN_SECONDS,
        out: TextIO = sys.stdout, bookkeeping: bool = False, secrets: bool = False) -> int:
    """0: no changes; 1: changes; 2: an error (one line on stderr)."""
    notes: list[str] = []
    changes: list[Change] = []
    try:
        for body in load(paths, namespace):
            more_notes, more_changes = diff_app(kube, live_app(kube, body), drain_seconds, bookkeeping, secrets)
            notes += more_notes
            changes += more_changes
        out.writelines(notes)
        command = os.environ.get("KUBECTL_EXTERNAL_DIFF")
        if command and changes:
            return external(command, changes)
        for c in changes:
            out.writelines(unified(c.kind, c.name, c.before, c.after, c.namespace))
    except SpecError as e:
        print(f"error: {e.field}: {e.message}", file=sys.stderr)
        return 2
    except ApiError as e:
        print(f"error: the API server said {e.status} {e.reason}: {e.message}", file=sys.stderr)
        return 2
    except OperatorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if changes or notes else 0  # a note names a change to come, or one refused
