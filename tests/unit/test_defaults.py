"""One source for defaults and for the version: the CRD's OpenAPI defaults are the ones api.py
applies when a field is absent, and the package version, the chart's appVersion and the image's
label agree."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import appkeeper
from appkeeper import cli
from appkeeper.api import parse_spec

from .test_crd import CRD

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
# The smallest valid value of each top-level field that holds a defaulted field.
MINIMAL: dict[str, Any] = {
    "ports": [{"name": "http", "containerPort": 80}],
    "volumes": [{"name": "d", "mountPath": "/d", "persistent": {"size": "1Gi"}}],
    "service": {},
    "ingress": {"host": "a.example.com"},
    "autoscaling": {"maxReplicas": 3},
    "schedules": [{"name": "s", "start": "0 8 * * *", "end": "0 9 * * *", "replicas": 1}],
    "rollout": {"canary": {"steps": [{"replicas": 1}], "analysis": {"httpGet": {"path": "/", "port": "http"}}}},
    "metrics": {"port": "http"},
}


def defaults(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, schema["default"])] if "default" in schema and path else []
    for name, sub in (schema.get("properties") or {}).items():
        found += defaults(sub, (*path, name))
    if "items" in schema:
        found += defaults(schema["items"], (*path, "[]"))
    return found


def with_value(spec: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    node: Any = out
    for part in path[:-1]:
        node = node[0] if part == "[]" else node.setdefault(part, {})
    if path[-1] == "[]":
        raise AssertionError(f"a default on list items themselves at {path}")
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(("path", "default"), defaults(SCHEMA), ids=lambda v: ".".join(v) if isinstance(v, tuple)
                         else repr(v))
def test_crd_default_is_what_the_model_assumes(path: tuple[str, ...], default: Any) -> None:
    top = path[0]
    base: dict[str, Any] = {"image": "nginx:1.27"}
    if top in MINIMAL:
        base[top] = copy.deepcopy(MINIMAL[top])
    if top in ("ingress", "metrics", "rollout"):
        base["ports"] = copy.deepcopy(MINIMAL["ports"])
    elif len(path) > 1:
        assert top in MINIMAL, f"add a minimal spec.{top} to MINIMAL to check its defaults"
    assert parse_spec(with_value(base, path, default)) == parse_spec(base), f"spec.{'.'.join(path)}"


def test_every_crd_default_is_checked() -> None:
    assert len(defaults(SCHEMA)) >= 12


def test_one_version_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    chart = yaml.safe_load((ROOT / "charts" / "appkeeper" / "Chart.yaml").read_text())
    assert chart["appVersion"] == appkeeper.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M), "the version lives in appkeeper/__init__.py"
    assert 'version = {attr = "appkeeper.__version__"}' in pyproject
    sys.path.insert(0, str(ROOT / "hack"))
    import images

    assert images.operator_image().endswith(f":{appkeeper.__version__}")
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"appkeeper {appkeeper.__version__}"
