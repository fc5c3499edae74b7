"""The CRD is the single source: the reference docs and the chart follow it; its schema is structural
and carries the contract's names."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.load((ROOT / "crds" / "apps.appkeeper.dev.yaml").read_text(), Loader=yaml.CSafeLoader)


def hack(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "hack" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # in this process: a second interpreter costs most of a second
    return module


def test_reference_docs_are_generated_from_the_crd() -> None:
    gen = hack("gen_reference")
    assert gen.render() == gen.OUT.read_text(), "docs/reference.md is out of date: run python3 hack/gen_reference.py"


def test_the_admission_policy_checks_every_child_kind_of_the_table() -> None:
    """Finding 5 / one table: the policy's per-child checks are generated from kinds.py."""
    gen = hack("gen_admission")
    assert gen.render() == gen.OUT.read_text(), "the admission checks are stale: run python3 hack/gen_admission.py"
    assert gen.render_rules() == gen.RULES.read_text(), "the chart's RBAC is stale: run python3 hack/gen_admission.py"
    from appkeeper.kinds import CHILDREN

    for kind in CHILDREN:
        assert f"resource('{kind.plural}')" in gen.OUT.read_text(), kind.kind


def test_the_crd_and_its_copies_are_built_from_the_source_and_the_generated_core_schemas() -> None:
    gen = hack("gen_crd")
    built = gen.build()
    for path in (gen.CRD, *gen.COPIES):
        assert path.read_text() == built, f"{path} is out of date: run python3 hack/gen_crd.py"
    assert gen.CHART_TEMPLATE.read_text() == gen.chart_template(built), \
        f"{gen.CHART_TEMPLATE} is out of date: run python3 hack/gen_crd.py"
    # Every embedded core/v1 type is expanded; none is left open to unknown fields.
    assert "x-appkeeper-core-v1" not in built
    assert "x-kubernetes-preserve-unknown-fields" not in built
    assert len(built.encode()) < 256 * 1024  # kubectl apply's last-applied annotation limit


def test_contract_names_and_subresources() -> None:
    spec = CRD["spec"]
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"], spec["scope"]) == \
        ("appkeeper.dev", "App", "apps", "Namespaced")
    assert spec["names"]["categories"] == ["appkeeper"]
    assert spec["names"]["shortNames"] == ["akapp"]  # not `app`/`apps`: Argo CD's Application has them
    [version] = spec["versions"]
    assert version["subresources"]["scale"] == {"specReplicasPath": ".spec.replicas",
                                                "statusReplicasPath": ".status.replicas",
                                                "labelSelectorPath": ".status.selector"}
    assert {"Image", "Desired", "Ready", "Phase", "Age"} <= {c["name"] for c in version["additionalPrinterColumns"]}


def walk(schema: dict[str, Any], path: str = "") -> list[str]:
    """Every object without a type or properties that is not explicitly open (non-structural)."""
    bad = []
    if "type" not in schema and "anyOf" not in schema and not schema.get("x-kubernetes-int-or-string"):
        bad.append(path)
    for name, sub in (schema.get("properties") or {}).items():
        bad += walk(sub, f"{path}.{name}")
    if "items" in schema:
        bad += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        bad += walk(schema["additionalProperties"], f"{path}{{}}")
    return bad


def test_schema_is_structural_and_documented() -> None:
    root = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(root) == []
    spec = root["properties"]["spec"]["properties"]
    undocumented = [name for name, sub in spec.items() if not sub.get("description")]
    assert undocumented == []


KEYWORDS = {"type", "format", "description", "properties", "items", "additionalProperties", "required",
            "default", "enum", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
            "pattern", "anyOf", "allOf", "oneOf", "not", "nullable", "example", "exclusiveMinimum",
            "exclusiveMaximum", "multipleOf", "uniqueItems", "minProperties", "maxProperties", "title"}


def schema_problems(schema: Any, path: str = "") -> list[str]:
    """Keys of a schema that are not schema keywords, and property names that are not plain names."""
    if not isinstance(schema, dict):
        return []
    found = [f"{path}: {key!r}" for key in schema
             if key not in KEYWORDS and not str(key).startswith("x-kubernetes-")]
    for name, sub in (schema.get("properties") or {}).items():
        if not str(name).replace("_", "").isalnum():
            found.append(f"{path}: property {name!r}")
        found += schema_problems(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties", "not"):
        found += schema_problems(schema.get(key), f"{path}[{key}]")
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in schema.get(key) or []:
            found += schema_problems(sub, f"{path}[{key}]")
    return found


def test_every_schema_key_is_a_keyword_and_every_property_a_plain_name() -> None:
    """A description with a comma in a YAML flow mapping silently becomes a key of its own; the API
    server then refuses the CRD."""
    schema = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema_problems(schema) == []
    assert schema_problems({"type": "string", "description": "a", "or b": None}) == [": 'or b'"]


def integers(schema: Any, path: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if not isinstance(schema, dict):
        return found
    if schema.get("type") == "integer":
        found.append((path, schema))
    for name, sub in (schema.get("properties") or {}).items():
        found += integers(sub, f"{path}.{name}")
    found += integers(schema.get("items"), f"{path}[]")
    return found


def test_every_spec_integer_is_int32_and_bounded() -> None:
    """2^40 replicas must be refused at apply, not stored and truncated to 0 by the Deployment."""
    spec = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    found = integers(spec, "spec")
    assert len(found) >= 12
    # int64 only where core/v1 declares it (runAsUser, terminationGracePeriodSeconds...), bounded alike.
    loose = [p for p, s in found if s.get("format") not in ("int32", "int64") or s.get("minimum", -1) < 0
             or not 0 < s.get("maximum", 2**63) <= 2**31 - 1]
    assert loose == []


def undescribed(schema: Any, path: str) -> list[str]:
    found: list[str] = []
    if not isinstance(schema, dict):
        return found
    for name, sub in (schema.get("properties") or {}).items():
        if not str((sub or {}).get("description") or "").strip():
            found.append(f"{path}.{name}")
        found += undescribed(sub, f"{path}.{name}")
    found += undescribed(schema.get("items"), f"{path}[]")
    return found


def test_kubectl_explain_has_words_for_every_field() -> None:
    root = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    assert undescribed(root["spec"], "spec") + undescribed(root["status"], "status") == []


def test_the_generator_inlines_references_keeps_only_crd_keywords_and_bounds_integers() -> None:
    gen = hack("gen_crd")
    ref = "#/components/schemas/"
    int_or_string = {"allOf": [{"$ref": ref + "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]}
    part = {"allOf": [{"$ref": ref + "io.k8s.api.core.v1.Part"}]}
    schemas = {
        "io.k8s.api.core.v1.Thing": {
            "description": "A thing.", "type": "object", "required": ["port"],
            "properties": {
                "port": {"description": "The port.", **int_or_string},
                "size": {"allOf": [{"$ref": ref + "io.k8s.apimachinery.pkg.api.resource.Quantity"}]},
                "weight": {"type": "integer", "format": "int32"},
                "seconds": {"type": "integer", "format": "int64", "default": 30},
                "parts": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "x-kubernetes-patch-strategy": "merge", "items": {"default": {}, **part}},
            }},
        "io.k8s.api.core.v1.Part": {"type": "object", "properties": {"name": {"type": "string", "default": ""}}},
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"format": "int-or-string",
                                                             "oneOf": [{"type": "integer"}, {"type": "string"}]},
        "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
    }
    got = gen.structural(schemas, schemas["io.k8s.api.core.v1.Thing"])
    props = got["properties"]
    assert props["port"] == {**gen.INT_OR_STRING, "description": "The port."}
    assert props["size"] == gen.QUANTITY
    assert props["weight"] == {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100}
    assert props["seconds"] == {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**31 - 1}
    # `name` is optional in the items, so a CRD cannot key the list by it: atomic.
    assert props["parts"] == {"type": "array", "x-kubernetes-list-type": "atomic",
                              "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
    assert got["required"] == ["port"]
    # The source's keys over the generated ones, nested mappings merged.
    laid = gen.lay_over(got, {"x-appkeeper-core-v1": "Thing", "description": "Mine.",
                              "properties": {"parts": {"maxItems": 4}}})
    assert laid["description"] == "Mine."
    assert laid["properties"]["parts"]["maxItems"] == 4
    assert laid["properties"]["parts"]["items"] == props["parts"]["items"]
    schemas["io.k8s.api.core.v1.Part"]["properties"]["again"] = part
    with pytest.raises(ValueError, match="recursive"):
        gen.structural(schemas, schemas["io.k8s.api.core.v1.Thing"])
