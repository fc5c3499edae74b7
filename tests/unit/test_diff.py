"""appkeeper diff's pure parts: what is compared, and how a change reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from appkeeper.api import SpecError
from appkeeper.diff import clean, load, unified


def test_bookkeeping_is_not_a_change() -> None:
    live = {"kind": "Service", "metadata": {"name": "shop", "uid": "1", "resourceVersion": "9",
                                            "managedFields": [{}], "labels": {"a": "b"}},
            "spec": {"ports": [{"port": 80}]}, "status": {"loadBalancer": {}}}
    assert clean(live) == {"kind": "Service", "metadata": {"name": "shop", "labels": {"a": "b"}},
                           "spec": {"ports": [{"port": 80}]}}
    assert clean(None) == {}


def test_an_image_change_is_one_line_each_way() -> None:
    before = {"spec": {"template": {"spec": {"containers": [{"name": "shop", "image": "nginx:1.27"}]}}}}
    after = {"spec": {"template": {"spec": {"containers": [{"name": "shop", "image": "nginx:1.28"}]}}}}
    lines = unified("Deployment", "shop", before, after)
    assert [line for line in lines if line[0] in "+-" and not line.startswith(("+++", "---"))] == [
        "-      - image: nginx:1.27\n", "+      - image: nginx:1.28\n"]
    assert lines[0] == "--- Deployment/shop (live)\n"
    assert unified("Deployment", "shop", before, before) == []


def test_the_manifest_is_apps_only_and_gets_a_namespace(tmp_path: Path) -> None:
    f = tmp_path / "app.yaml"
    f.write_text("apiVersion: appkeeper.dev/v1alpha1\nkind: App\nmetadata: {name: shop}\nspec: {image: x}\n---\n")
    [doc] = list(load(str(f), "team-a"))
    assert doc["metadata"] == {"name": "shop", "namespace": "team-a"}
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: shop}\n")
    with pytest.raises(SpecError, match="expected an App"):
        list(load(str(f), None))
