#!/usr/bin/env python3
"""Writes docs/reference.md, the App reference, from the CRD's source (api/app.source.yaml, the
single source of truth; an embedded core/v1 type is named, not expanded).
`python3 hack/gen_reference.py --check` fails if the file is out of date (a unit test runs it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "api" / "app.source.yaml"
OUT = ROOT / "docs" / "reference.md"


def type_of(schema: dict[str, Any]) -> str:
    if "x-appkeeper-core-v1" in schema:
        return f"core/v1 {schema['x-appkeeper-core-v1']}"
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    t = schema.get("type", "object")
    if t == "array":
        return f"[]{type_of(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(str(v) for v in schema["enum"] if v != "")
    return str(t)


def rows(schema: dict[str, Any], path: str) -> list[tuple[str, str, str, str]]:
    out = []
    required = set(schema.get("required", []))
    for name, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{name}"
        default = sub.get("default")
        extra = []
        if name in required:
            extra.append("required")
        for key in ("minimum", "maximum", "minLength", "maxLength", "maxItems", "pattern"):
            if key in sub:
                extra.append(f"{key} `{sub[key]}`")
        for rule in sub.get("x-kubernetes-validations") or []:
            extra.append(f"rule: {rule['message']}")
        desc = " ".join(str(sub.get("description", "")).split())
        if extra:
            desc = f"{desc} ({'; '.join(extra)})" if desc else "; ".join(extra)
        out.append((here, type_of(sub), "" if default is None else f"`{default}`", desc.replace("|", "\\|")))
        target = sub.get("items", {}) if sub.get("type") == "array" else sub
        out += rows(target, here + ("[]" if sub.get("type") == "array" else ""))
    return out


def children_table() -> list[str]:
    """The children an App can own and what the operator may do with each kind: from the one
    table in operator/appkeeper/kinds.py."""
    sys.path.insert(0, str(ROOT / "operator"))
    from appkeeper.kinds import KINDS

    lines = ["## Children and permissions", "",
             "Every kind the operator touches (from `operator/appkeeper/kinds.py`; the chart's RBAC is checked "
             "against it). Children carry an ownerReference to the App and are named as shown.", "",
             "| kind | apiVersion | name | child | watched | verbs |", "|---|---|---|---|---|---|"]
    for k in KINDS:
        lines.append(f"| {k.kind} | `{k.api_version}` | {f'`{k.name}`' if k.child else ''} | "
                     f"{'yes' if k.child else ''} | "
                     f"{'yes' if k.watched else ''} | {', '.join(k.verbs)}"
                     f"{f' (only with the chart value `{k.opt_in}: true`)' if k.opt_in else ''} |")
    return [*lines, ""]


def reasons_table() -> list[str]:
    """Every reason in a condition or an Event: from operator/appkeeper/reasons.py."""
    sys.path.insert(0, str(ROOT / "operator"))
    from appkeeper.reasons import REASONS

    lines = ["## Reasons", "",
             "Every reason appkeeper writes in a condition of an App's status or an Event about it (from "
             "`operator/appkeeper/reasons.py`).", "", "| reason | in | meaning |", "|---|---|---|"]
    lines += [f"| `{r.name}` | {r.where} | {r.meaning} |" for r in REASONS.values()]
    return [*lines, ""]


def render() -> str:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    lines = [
        "# App reference (appkeeper.dev/v1alpha1)",
        "",
        "Generated from `api/app.source.yaml` by `hack/gen_reference.py`; a unit test keeps it in sync.",
        "`kubectl explain app.spec.<field>` shows the same descriptions.",
        "",
    ]
    for top in ("spec", "status"):
        sub = schema["properties"][top]
        lines += [f"## {top}", "", " ".join(str(sub.get("description", "")).split()), ""]
        for rule in sub.get("x-kubernetes-validations") or []:
            lines.append(f"- rule: {rule['message']}")
        lines += ["", "| field | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{p}` | {t} | {d} | {m} |" for p, t, d, m in rows(sub, top)]
        lines.append("")
    lines += children_table()
    lines += reasons_table()
    cols = ", ".join(c["name"] for c in version["additionalPrinterColumns"])
    lines += ["## kubectl get apps", "", f"Columns: {cols} (`-o wide` adds the priority-1 ones).", ""]
    return "\n".join(lines)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python3 hack/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
