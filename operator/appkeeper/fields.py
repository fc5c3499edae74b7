"""Pure helpers over server-side apply's managedFields: which fields a manager owns, and which
it lost. When someone edits a field appkeeper applied, the API server moves that field's
ownership to them; a shrunken field set is how drift is seen without comparing values (which
the API server defaults and normalizes)."""

from __future__ import annotations

import copy
import json
from typing import Any

from .api import Json, quantity_value
from .names import MANAGER


def owned_fields(obj: Json, manager: str = MANAGER) -> Json | None:
    """The fieldsV1 tree `manager` holds through Apply on the main resource, if any; else through
    the create that made it (a child's first write is a create: until the first apply, what it set
    is ours)."""
    found: Json | None = None
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("subresource"):
            continue
        fields = entry.get("fieldsV1")
        if entry.get("operation") == "Apply":
            return fields if isinstance(fields, dict) else {}
        if entry.get("operation") == "Update" and found is None:
            found = fields if isinstance(fields, dict) else {}
    return found


def created_not_applied(obj: Json, manager: str = MANAGER) -> bool:
    """We created it (a POST: operation Update) and have not applied to it since."""
    ours = [e for e in obj.get("metadata", {}).get("managedFields") or []
            if e.get("manager") == manager and not e.get("subresource")]
    return any(e.get("operation") == "Update" for e in ours) and not any(e.get("operation") == "Apply" for e in ours)


def created_entry_patch(entries: list[Json], manager: str = MANAGER) -> list[Json]:
    """The JSON patch that makes our create's entry (operation Update) our Apply entry; none when
    we already have an Apply entry or no such entry."""
    mains = [(i, e) for i, e in enumerate(entries) if e.get("manager") == manager and not e.get("subresource")]
    if any(e.get("operation") == "Apply" for _, e in mains):
        return []
    for i, e in mains:
        if e.get("operation") == "Update":
            at = f"/metadata/managedFields/{i}"
            return [{"op": "test", "path": f"{at}/manager", "value": manager},
                    {"op": "test", "path": f"{at}/operation", "value": "Update"},
                    {"op": "replace", "path": f"{at}/operation", "value": "Apply"}]
    return []


def field_paths(tree: Json, prefix: str = "") -> set[str]:
    """Flattens a fieldsV1 tree to readable paths: spec.template.spec.containers[name=web].image."""
    paths: set[str] = set()
    for key, sub in tree.items():
        if key == ".":
            continue
        if key.startswith("f:"):
            part = key[2:]
            here = f"{prefix}.{part}" if prefix else part
        elif key.startswith("k:"):
            try:
                ident: dict[str, Any] = json.loads(key[2:])
                here = f"{prefix}[{','.join(f'{k}={v}' for k, v in sorted(ident.items()))}]"
            except ValueError:
                here = f"{prefix}[{key[2:]}]"
        elif key.startswith("v:"):
            here = f"{prefix}[{key[2:]}]"
        else:
            here = f"{prefix}.{key}"
        if isinstance(sub, dict) and any(k != "." for k in sub):
            paths |= field_paths(sub, here)
        else:
            paths.add(here)
    return paths


def lost_fields(before: Json, after: Json | None) -> list[str]:
    """Paths in `before` that are no longer in `after` (sorted; empty when nothing was lost)."""
    if after is None:
        return sorted(field_paths(before)) or ["(all fields)"]
    return sorted(field_paths(before) - field_paths(after))


QUANTITIES = ("requests", "limits", "sizeLimit", "capacity")  # under these keys a value is a quantity


def covers(observed: Any, desired: Any, quantity: bool = False) -> bool:
    """Whether every value in `desired` is in `observed` (which may hold more: defaults, others'),
    as the API server stores it: a quantity in another form (`0.5` is stored as `500m`, `1e8` as
    `100e6`) is equal by value, and a field it omits is equal to its zero value (`false`, 0, "",
    an empty list or map)."""
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            covers(observed[k], v, quantity or k in QUANTITIES) if k in observed else not v  # omitted: zero
            for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(observed, list) and len(observed) == len(desired) \
            and all(covers(o, d, quantity) for o, d in zip(observed, desired, strict=True))
    if observed == desired or str(observed) == str(desired):
        return True
    if quantity and isinstance(observed, str | int) and isinstance(desired, str | int):
        value = quantity_value(str(desired))
        return value is not None and value == quantity_value(str(observed))
    return False


def uncovered_lists(observed: Any, desired: Any, prefix: str = "") -> list[str]:
    """Paths (a.b.c) of lists in `desired` that `observed` does not cover."""
    paths: list[str] = []
    if isinstance(desired, dict) and isinstance(observed, dict):
        for k, v in desired.items():
            here = f"{prefix}.{k}" if prefix else k
            if isinstance(v, list):
                if not covers(observed.get(k), v):
                    paths.append(here)
            else:
                paths += uncovered_lists(observed.get(k), v, here)
    return paths


def restore_lists(observed: Json, desired: Json, paths: list[str]) -> Json:
    """`observed` with each list named in `paths` (a lost field below it counts: spec.ports[port=80]
    names spec.ports) set to its desired value: the body of an update that undoes a re-keyed list
    entry, which apply alone cannot take back. Everything else stays."""
    body = copy.deepcopy(observed)
    body["metadata"].pop("managedFields", None)
    for path in paths:
        keys = path.split("[", 1)[0].split(".")
        src: Any = desired
        dst: Any = body
        for k in keys[:-1]:
            src, dst = src.get(k, {}), dst.setdefault(k, {})
        if isinstance(src, dict) and isinstance(src.get(keys[-1]), list):
            dst[keys[-1]] = copy.deepcopy(src[keys[-1]])
    return body
