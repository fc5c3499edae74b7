"""Pure: the ConfigMaps an App's pods use, the hash of their data, and the immutable snapshots the
pod template references instead of them.

A change of a referenced ConfigMap changes its snapshot's name (`<app>-<name>-<hash8>`), so the
pod template changes and the pods roll with the App's rollout settings. A rollback returns to an
older template, which names the older snapshots: the old image runs with its old config. The last
`spec.rollout.revisionHistoryLimit` snapshots of each source are kept.

Secrets are left as they are: the operator does not read them (least privilege)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from .api import AppSpec, Json

ANN_CONFIG_HASH = "appkeeper.dev/config-hash"
LABEL_SNAPSHOT_OF = "appkeeper.dev/snapshot-of"


@dataclass(frozen=True)
class ConfigRef:
    name: str
    optional: bool
    where: str  # for a person: "env FOO", "envFrom", "volume settings"


@dataclass
class ConfigPlan:
    """What the pod template uses instead of the sources, and what went wrong finding them."""

    snapshots: dict[str, Json] = field(default_factory=dict)  # source name -> snapshot ConfigMap
    hash: str | None = None
    missing: list[ConfigRef] = field(default_factory=list)


def config_refs(spec: AppSpec) -> list[ConfigRef]:
    """Every ConfigMap the pod references, once, in spec order; optional only if every use is."""
    found: dict[str, ConfigRef] = {}

    def add(name: object, optional: object, where: str) -> None:
        if not isinstance(name, str) or not name:
            return
        seen = found.get(name)
        found[name] = ConfigRef(name, bool(optional) and (seen is None or seen.optional),
                                seen.where if seen else where)

    for env in spec.env:
        ref = (env.get("valueFrom") or {}).get("configMapKeyRef") or {}
        add(ref.get("name"), ref.get("optional"), f"env {env.get('name')}")
    for source in spec.env_from:
        ref = source.get("configMapRef") or {}
        add(ref.get("name"), ref.get("optional"), "envFrom")
    for volume in spec.volumes:
        if volume.source and volume.source[0] == "configMap":
            add(volume.source[1].get("name"), volume.source[1].get("optional"), f"volume {volume.name}")
    return list(found.values())


def data_hash(obj: Json) -> str:
    content = {"data": obj.get("data") or {}, "binaryData": obj.get("binaryData") or {}}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


NAME_MAX, LABEL_MAX = 253, 63  # an object name (DNS subdomain) and a label value


def snapshot_name(app_name: str, source: str, digest: str) -> str:
    """`<app>-<source>-<hash8>`; a source too long for that (ConfigMap names go to 253) is cut and
    told apart by a hash of its whole name."""
    room = NAME_MAX - len(app_name) - 10
    if len(source) > room:
        source = f"{_cut(source, room - 9)}-{_short(source)}"
    return f"{app_name}-{source}-{digest[:8]}"


def snapshot_label(source: str) -> str:
    """The `appkeeper.dev/snapshot-of` value: the source's name, or (past 63 characters, which a
    label value cannot hold) its start and a hash of it; it groups a source's snapshots."""
    return source if len(source) <= LABEL_MAX else f"{_cut(source, LABEL_MAX - 9)}-{_short(source)}"


def _cut(name: str, length: int) -> str:
    """A prefix that ends in a letter or digit, as names and label values must."""
    return name[:length].rstrip(".-_")


def _short(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def plan(app_name: str, refs: Iterable[ConfigRef], sources: dict[str, Json | None]) -> ConfigPlan:
    """`sources`: each referenced ConfigMap as read (None: it does not exist)."""
    out = ConfigPlan()
    digests = []
    for ref in refs:
        obj = sources.get(ref.name)
        if obj is None:
            if not ref.optional:
                out.missing.append(ref)
            digests.append(f"{ref.name}:absent")
            continue
        digest = data_hash(obj)
        digests.append(f"{ref.name}:{digest}")
        out.snapshots[ref.name] = {"name": snapshot_name(app_name, ref.name, digest), "source": obj}
    if digests:
        out.hash = hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]
    return out


def snapshot_data(source: Json) -> Json:
    """What the copy holds: the source's data and binaryData (the builder adds metadata, immutable)."""
    return {key: copy.deepcopy(source[key]) for key in ("data", "binaryData") if source.get(key)}


def rewrite(template: Json, config: ConfigPlan) -> Json:
    """The pod template naming the snapshots instead of the sources, with the config hash."""
    out = copy.deepcopy(template)
    names = {source: snap["name"] for source, snap in config.snapshots.items()}
    if config.hash:
        out.setdefault("metadata", {}).setdefault("annotations", {})[ANN_CONFIG_HASH] = config.hash
    spec = out.get("spec") or {}
    for container in spec.get("containers") or []:
        for env in container.get("env") or []:
            _rename((env.get("valueFrom") or {}).get("configMapKeyRef"), names)
        for source in container.get("envFrom") or []:
            _rename(source.get("configMapRef"), names)
    for volume in spec.get("volumes") or []:
        _rename(volume.get("configMap"), names)
    return out


def _rename(ref: Json | None, names: dict[str, str]) -> None:
    if ref is not None and ref.get("name") in names:
        ref["name"] = names[ref["name"]]


def snapshots_to_prune(snapshots: Iterable[Json], current: set[str], keep: int) -> list[Json]:
    """Older snapshots beyond the newest `keep` of each source (the current ones always stay)."""
    by_source: dict[str, list[Json]] = {}
    for snap in snapshots:
        source = (snap["metadata"].get("labels") or {}).get(LABEL_SNAPSHOT_OF, "")
        by_source.setdefault(source, []).append(snap)
    doomed = []
    for snaps in by_source.values():
        older = sorted((s for s in snaps if s["metadata"]["name"] not in current),
                       key=lambda s: (str(s["metadata"].get("creationTimestamp") or ""), s["metadata"]["name"]),
                       reverse=True)
        doomed += older[max(0, keep - 1):]  # the current one counts as one of the `keep`
    return doomed
