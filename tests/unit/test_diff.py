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
    hashed = {"metadata": {"name": "shop", "annotations": {"appkeeper.dev/input-hash": "1", "team": "a"}}}
    assert clean(hashed) == {"metadata": {"name": "shop", "annotations": {"team": "a"}}}
    assert clean(hashed, bookkeeping=True) == hashed
    only = {"metadata": {"name": "shop", "annotations": {"appkeeper.dev/input-hash": "1"}}}
    assert clean(only) == {"metadata": {"name": "shop"}}


def test_an_image_change_is_one_line_each_way() -> None:
    before = {"spec": {"template": {"spec": {"containers": [{"name": "shop", "image": "nginx:1.27"}]}}}}
    after = {"spec": {"template": {"spec": {"containers": [{"name": "shop", "image": "nginx:1.28"}]}}}}
    lines = unified("Deployment", "shop", before, after)
    assert [line for line in lines if line[0] in "+-" and not line.startswith(("+++", "---"))] == [
        "-      - image: nginx:1.27\n", "+      - image: nginx:1.28\n"]
    assert lines[0] == "--- Deployment shop (live)\n"
    assert unified("Deployment", "shop", before, after, "team-a")[:2] == [
        "--- Deployment team-a/shop (live)\n", "+++ Deployment team-a/shop (appkeeper)\n"]
    assert unified("Deployment", "shop", before, before) == []


def test_the_manifest_is_apps_only_and_gets_a_namespace(tmp_path: Path) -> None:
    f = tmp_path / "app.yaml"
    f.write_text("apiVersion: appkeeper.dev/v1alpha1\nkind: App\nmetadata: {name: shop}\nspec: {image: x}\n---\n")
    [doc] = list(load(str(f), "team-a"))
    assert doc["metadata"] == {"name": "shop", "namespace": "team-a"}
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: shop}\n")
    with pytest.raises(SpecError, match="expected an App"):
        list(load(str(f), None))


def test_several_files_and_a_folder_are_read_in_order(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    for name in ("b", "a"):
        (tmp_path / "apps" / f"{name}.yaml").write_text(
            f"apiVersion: appkeeper.dev/v1alpha1\nkind: App\nmetadata: {{name: {name}}}\nspec: {{image: x}}\n")
    (tmp_path / "apps" / "notes.txt").write_text("not a manifest")
    (tmp_path / "c.json").write_text('{"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", '
                                     '"metadata": {"name": "c"}, "spec": {"image": "x"}}')
    names = [d["metadata"]["name"] for d in load([str(tmp_path / "apps"), str(tmp_path / "c.json")], None)]
    assert names == ["a", "b", "c"]


def test_an_external_diff_gets_two_folders_as_kubectl_gives_it(tmp_path: Path) -> None:
    from appkeeper.diff import Change, external

    script = tmp_path / "differ"
    script.write_text(f"#!/bin/sh\nls \"$1\" > {tmp_path}/names\ncat \"$2\"/* > {tmp_path}/merged\n"
                      "diff -r \"$1\" \"$2\" >/dev/null\n")
    script.chmod(0o755)
    change = Change("apps/v1", "Deployment", "team-a", "shop", {"spec": {"replicas": 1}}, {"spec": {"replicas": 2}})
    assert external(str(script), [change]) == 1
    assert (tmp_path / "names").read_text() == "apps.v1.Deployment.team-a.shop\n"
    assert (tmp_path / "merged").read_text() == "spec:\n  replicas: 2\n"
    same = Change("v1", "Service", "team-a", "shop", {"a": 1}, {"a": 1})
    assert external(str(script), [same]) == 0
    script.write_text("#!/bin/sh\nexit 3\n")
    with pytest.raises(Exception, match="exited 3"):
        external(str(script), [change])


def test_a_secret_snapshot_shows_that_it_changes_never_its_values() -> None:
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-creds-1"}, "data": {"token": "b25l"}}
    after = dict(before, data={"token": "dHdv", "ca": "Y2E="})
    lines = unified("Secret", "shop-creds-1", clean(before), clean(after))
    text = "".join(lines)
    assert not [v for v in ("b25l", "dHdv", "Y2E=") if v in text]
    assert "***" in text
    assert clean(before) != clean(after)  # a key added is still a change
