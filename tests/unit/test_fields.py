from __future__ import annotations

from appkeeper.fields import covers, field_paths, lost_fields, owned_fields, restore_lists, uncovered_lists

TREE = {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {
    "f:replicas": {},
    "f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}


def test_paths_are_readable() -> None:
    assert field_paths(TREE) == {
        "metadata.labels.app", "spec.replicas",
        "spec.template.spec.containers[name=web].image", "spec.template.spec.containers[name=web].name"}


def test_lost_fields_name_what_someone_else_took() -> None:
    after = {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {
        "f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:name": {}}}}}}}
    assert lost_fields(TREE, after) == ["spec.replicas", "spec.template.spec.containers[name=web].image"]
    assert lost_fields(TREE, TREE) == []


def test_owned_fields_reads_only_our_apply_entry() -> None:
    obj = {"metadata": {"managedFields": [
        {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {}}},
        {"manager": "appkeeper", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}},
        {"manager": "appkeeper", "operation": "Apply", "fieldsV1": TREE},
    ]}}
    assert owned_fields(obj) == TREE
    assert owned_fields({"metadata": {}}) is None


def test_restore_lists_puts_back_only_the_lists_that_lost_fields() -> None:
    observed = {"metadata": {"name": "s", "managedFields": [{}], "annotations": {"mesh": "on"}},
                "spec": {"ports": [{"name": "http", "port": 81}], "clusterIP": "10.0.0.1"}}
    desired = {"metadata": {"name": "s"}, "spec": {"ports": [{"name": "http", "port": 80}]}}
    body = restore_lists(observed, desired, ["spec.ports[port=80,protocol=TCP].name", "spec.type"])
    assert body["spec"] == {"ports": [{"name": "http", "port": 80}], "clusterIP": "10.0.0.1"}
    assert body["metadata"] == {"name": "s", "annotations": {"mesh": "on"}}
    assert observed["spec"]["ports"][0]["port"] == 81


def test_covers_ignores_defaults_but_not_changes() -> None:
    desired = {"spec": {"ports": [{"name": "http", "port": 80}], "replicas": 2, "cpu": "1"}}
    observed = {"spec": {"ports": [{"name": "http", "port": 80, "nodePort": 30000}], "replicas": 2,
                         "cpu": 1, "clusterIP": "10.0.0.1"}}
    assert covers(observed, desired)
    assert not covers({"spec": {**observed["spec"], "replicas": 3}}, desired)
    moved = {"spec": {**observed["spec"], "ports": [{"name": "http", "port": 81}]}}
    assert uncovered_lists(moved, desired) == ["spec.ports"]
    assert uncovered_lists(observed, desired) == []
