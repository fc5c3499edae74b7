"""Pure: the ConfigMaps (and, opted in, Secrets) an App's pods use, the hash of their data, and
the immutable snapshots the pod template references instead of them.

A change of a referenced source changes its snapshot's name (`<app>-<name>-<hash8>`), so the pod
template changes and the pods roll with the App's rollout settings. A rollback returns to an older
template, which names the older snapshots: the old image runs with its old config. The last
`spec.rollout.revisionHistoryLimit` snapshots of each source are kept.

Secrets count only when the operator runs with `--config-secrets` (chart value
`configRollout.secrets`): it must then read them. A Secret's digest is keyed with the Secret's uid,
so the hash in a pod template (readable by whoever reads Deployments) cannot be used to guess a
short Secret value offline."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from .api import AppSpec, Json

ANN_CONFIG_HASH = "appkeeper.dev/config-hash"
LABEL_SNAPSHOT_OF = "appkeeper.dev/snapshot-of"


CONFIG_MAP, SECRET = "ConfigMap", "Secret"


@dataclass(frozen=True)
class ConfigRef:
    name: str
    optional: bool
    where: str  # for a person: "env FOO", "envFrom", "volume settings"
    kind: str = CONFIG_MAP

    @property
    def source(self) -> str:
        return source_id(self.kind, self.name)


def source_id(kind: str, name: str) -> str:
    """How a source is keyed (the store, the plan): a ConfigMap by its name, a Secret as
    `Secret/<name>` (a name holds no `/`, so the two never meet)."""
    return name if kind == CONFIG_MAP else f"{kind}/{name}"


@dataclass
class ConfigPlan:
    """What the pod template uses instead of the sources, and what went wrong finding them."""

    snapshots: dict[str, Json] = field(default_factory=dict)  # source_id -> {name, source, kind}
    hash: str | None = None
    missing: list[ConfigRef] = field(default_factory=list)


# Where a pod names each kind of source: (env valueFrom key, envFrom key, volume source, its name field)
REFERENCES = {CONFIG_MAP: ("configMapKeyRef", "configMapRef", "configMap", "name"),
              SECRET: ("secretKeyRef", "secretRef", "secret", "secretName")}


def config_refs(spec: AppSpec, secrets: bool = False) -> list[ConfigRef]:
    """Every ConfigMap (and, with `secrets`, Secret) the pod references, once, in spec order;
    optional only if every use is."""
    found: dict[str, ConfigRef] = {}

    def add(kind: str, name: object, optional: object, where: str) -> None:
        if not isinstance(name, str) or not name:
            return
        seen = found.get(source_id(kind, name))
        found[source_id(kind, name)] = ConfigRef(name, bool(optional) and (seen is None or seen.optional),
                                                 seen.where if seen else where, kind)

    for kind in (CONFIG_MAP, SECRET) if secrets else (CONFIG_MAP,):
        key_ref, from_ref, volume_source, name_field = REFERENCES[kind]
        for env in spec.env:
            ref = (env.get("valueFrom") or {}).get(key_ref) or {}
            add(kind, ref.get("name"), ref.get("optional"), f"env {env.get('name')}")
        for source in spec.env_from:
            ref = source.get(from_ref) or {}
            add(kind, ref.get("name"), ref.get("optional"), "envFrom")
        for volume in spec.volumes:
            if volume.source and volume.source[0] == volume_source:
                add(kind, volume.source[1].get(name_field), volume.source[1].get("optional"), f"volume {volume.name}")
    return list(found.values())


def data_hash(obj: Json) -> str:
    content: Json = {"data": obj.get("data") or {}, "binaryData": obj.get("binaryData") or {}}
    if obj.get("kind") == SECRET:  # keyed: see the module's doc
        content = {"data": content["data"], "type": obj.get("type"), "key": (obj.get("metadata") or {}).get("uid")}
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
    """`sources`: each referenced source as read, by source_id (None: it does not exist)."""
    out = ConfigPlan()
    digests = []
    for ref in refs:
        obj = sources.get(ref.source)
        if obj is None:
            if not ref.optional:
                out.missing.append(ref)
            digests.append(f"{ref.source}:absent")
            continue
        digest = data_hash(dict(obj, kind=ref.kind))
        digests.append(f"{ref.source}:{digest}")
        out.snapshots[ref.source] = {"name": snapshot_name(app_name, ref.name, digest), "source": obj,
                                     "kind": ref.kind, "of": ref.name}
    if digests:
        out.hash = hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]
    return out


def snapshot_data(source: Json, kind: str = CONFIG_MAP) -> Json:
    """What the copy holds: the source's data and binaryData, a Secret's data and type (the
    builder adds metadata, immutable)."""
    keys = ("data", "type") if kind == SECRET else ("data", "binaryData")
    return {key: copy.deepcopy(source[key]) for key in keys if source.get(key)}


def rewrite(template: Json, config: ConfigPlan) -> Json:
    """The pod template naming the snapshots instead of the sources, with the config hash."""
    out = copy.deepcopy(template)
    if config.hash:
        out.setdefault("metadata", {}).setdefault("annotations", {})[ANN_CONFIG_HASH] = config.hash
    spec = out.get("spec") or {}
    for kind, (key_ref, from_ref, volume_source, name_field) in REFERENCES.items():
        names = {snap["of"]: snap["name"] for snap in config.snapshots.values() if snap["kind"] == kind}
        for container in spec.get("containers") or []:
            for env in container.get("env") or []:
                _rename((env.get("valueFrom") or {}).get(key_ref), names, "name")
            for source in container.get("envFrom") or []:
                _rename(source.get(from_ref), names, "name")
        for volume in spec.get("volumes") or []:
            _rename(volume.get(volume_source), names, name_field)
    return out


def _rename(ref: Json | None, names: dict[str, str], name_field: str) -> None:
    if ref is not None and ref.get(name_field) in names:
        ref[name_field] = names[ref[name_field]]


def snapshots_to_prune(snapshots: Iterable[Json], current: set[str], keep: int) -> list[Json]:
    """Older snapshots beyond the newest `keep` of each source (the current ones always stay)."""
    by_source: dict[tuple[str, str], list[Json]] = {}
    for snap in snapshots:
        source = (snap["metadata"].get("labels") or {}).get(LABEL_SNAPSHOT_OF, "")
        by_source.setdefault((str(snap.get("kind")), source), []).append(snap)
    doomed = []
    for snaps in by_source.values():
        older = sorted((s for s in snaps if s["metadata"]["name"] not in current),
                       key=lambda s: (str(s["metadata"].get("creationTimestamp") or ""), s["metadata"]["name"]),
                       reverse=True)
        doomed += older[max(0, keep - 1):]  # the current one counts as one of the `keep`
    return doomed
