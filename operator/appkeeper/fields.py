"""Pure helpers over server-side apply's managedFields: which fields a manager owns, and which
it lost. When someone edits a field appkeeper applied, the API server moves that field's
ownership to them; a shrunken field set is how drift is seen without comparing values (which
the API server defaults and normalizes)."""

from __future__ import annotations

import json
from typing import Any

from .api import Json
from .desired import MANAGER


def owned_fields(obj: Json, manager: str = MANAGER) -> Json | None:
    """The fieldsV1 tree `manager` holds through Apply on the main resource, if any."""
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply" \
                and not entry.get("subresource"):
            fields = entry.get("fieldsV1")
            return fields if isinstance(fields, dict) else {}
    return None


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
