"""drift.decide, branch by branch: what the reconciler does with one child."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from appkeeper.api import Json
from appkeeper.drift import Applied, Apply, Conflict, Create, Owner, Repair, Skip, decide, ownership
from appkeeper.names import ANN_HASH

APP = Owner("shop", "uid-1")
MINE = [{"kind": "App", "name": "shop", "uid": "uid-1", "controller": True}]
FIELDS = {"f:spec": {"f:replicas": {}, "f:selector": {}}}


def desired(hash_: str = "h2") -> Json:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "shop", "annotations": {ANN_HASH: hash_}, "ownerReferences": MINE},
            "spec": {"replicas": 2, "selector": {"app": "shop"}}}


def observed(hash_: str = "h1", refs: list[Json] | None = None, fields: Json | None = None,
             annotations: dict[str, str] | None = None, **spec: Any) -> Json:
    managed = [] if fields is None else [{"manager": "appkeeper", "operation": "Apply", "fieldsV1": fields}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "shop", "uid": "d-1", "ownerReferences": MINE if refs is None else refs,
                         "annotations": {ANN_HASH: hash_, **(annotations or {})}, "managedFields": managed},
            "spec": {"replicas": 2, "selector": {"app": "shop"}, **spec}}


CASES = [
    ("absent, never listed: create", None, None, False, Create()),
    ("absent, listed in status: someone deleted it", None, None, True,
     Repair("DeploymentDeleted", "Deployment shop was deleted; recreated it")),
    ("ours, what we applied, fields intact: nothing to do", observed("h2", fields=FIELDS), Applied("h2", FIELDS),
     True, Skip()),
    ("ours, a field taken by another manager: repair naming it",
     observed("h2", fields={"f:spec": {"f:selector": {}}}), Applied("h2", FIELDS), True,
     Repair("DeploymentDrift", "Deployment shop was changed by someone else (spec.replicas); put it back",
            ["spec.replicas"])),
    ("ours, the spec changed since: apply", observed("h1", fields=FIELDS), Applied("h1", FIELDS), True,
     Apply("Changed")),
    ("ours, after a restart, still as declared: take over the record without writing",
     observed("h2", fields=FIELDS), None, True, Skip(Applied("h2", FIELDS))),
    ("ours, after a restart, changed meanwhile: repair",
     observed("h2", fields=FIELDS, replicas=9), None, True,
     Repair("DeploymentDrift", "Deployment shop was changed by someone else; put it back")),
    ("ours, after a restart, our fields gone: repair", observed("h2", fields=None), None, True,
     Repair("DeploymentDrift", "Deployment shop was changed by someone else; put it back")),
    ("unowned: conflict", observed(refs=[]), None, False, Conflict("no owner")),
    ("another controller's: conflict naming it",
     observed(refs=[{"kind": "ReplicaSet", "name": "x", "uid": "u-2", "controller": True}]), None, False,
     Conflict("ReplicaSet x (controller, uid u-2)")),
    ("an earlier App of the same name (garbage collection pending): conflict",
     observed(refs=[{"kind": "App", "name": "shop", "uid": "uid-0", "controller": True}]), None, True,
     Conflict("App shop (controller, uid uid-0)")),
    ("unowned, asks to be adopted by this App: apply", observed(refs=[], annotations={"appkeeper.dev/adopt": "shop"}),
     None, False, Apply("Adopted")),
    ("unowned, asks another App: conflict", observed(refs=[], annotations={"appkeeper.dev/adopt": "cart"}),
     None, False, Conflict("no owner")),
    ("retained-from on anything but a released claim is no consent: conflict",
     observed(refs=[], annotations={"appkeeper.dev/retained-from": "shop"}), None, False, Conflict("no owner")),
]


def claim(retain: str, **annotations: str) -> Json:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "shop-data", "annotations": {ANN_HASH: "h2", "appkeeper.dev/retain": retain,
                                                              **annotations}}, "spec": {}}


def test_a_released_claim_comes_home_only_to_an_app_that_retains_it() -> None:
    """Finding 8: a claim this App released comes home; with `retain: false` it would be deleted
    with the App, so a `retained-from` annotation (anyone may write one) is no consent then."""
    released = {**claim("true", **{"appkeeper.dev/retained-from": "shop"}), "metadata": {
        "name": "shop-data", "uid": "c1", "annotations": {"appkeeper.dev/retain": "true",
                                                          "appkeeper.dev/retained-from": "shop"}}}
    assert decide(claim("true"), released, None, APP, False) == Apply("Adopted")
    assert decide(claim("false"), released, None, APP, False) == Conflict("no owner")
    forged = copy.deepcopy(released)
    del forged["metadata"]["annotations"]["appkeeper.dev/retain"]
    assert decide(claim("true"), forged, None, APP, False) == Conflict("no owner")


@pytest.mark.parametrize(("case", "seen", "applied", "listed", "action"), CASES, ids=[c[0] for c in CASES])
def test_decide(case: str, seen: Json | None, applied: Applied | None, listed: bool, action: object) -> None:
    assert decide(desired(), seen, applied, APP, listed) == action, case


def test_decide_does_not_change_its_inputs() -> None:
    seen = observed("h2", fields={"f:spec": {}})
    before = copy.deepcopy(seen)
    decide(desired(), seen, Applied("h2", FIELDS), APP, True)
    assert seen == before


def test_ownership_by_uid_not_name() -> None:
    other_incarnation = observed(refs=[{"kind": "App", "name": "shop", "uid": "uid-1", "controller": True}])
    assert ownership(other_incarnation, APP) is None
    assert ownership(other_incarnation, Owner("shop", "uid-2")) == "App shop (controller, uid uid-1)"


def test_a_restart_takes_over_what_the_server_stored_in_another_form() -> None:
    """Finding 9: a quantity stored canonically (0.5 -> 500m, 1e8 -> 100e6) and a false field the
    server omits are what we applied: a restart skips them, it does not repair them."""
    want = desired("h2")
    want["spec"]["template"] = {"spec": {"containers": [{"name": "c", "resources": {
        "requests": {"cpu": "0.5", "memory": "1e8"}, "limits": {"memory": 134217728}}}]}}
    want["spec"]["publishNotReadyAddresses"] = False
    seen = observed("h2", fields=FIELDS, template={"spec": {"containers": [{"name": "c", "resources": {
        "requests": {"cpu": "500m", "memory": "100e6"}, "limits": {"memory": "128Mi"}}}]}})
    assert decide(want, seen, None, APP, True) == Skip(Applied("h2", FIELDS))
    changed = copy.deepcopy(seen)
    changed["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "600m"
    assert isinstance(decide(want, changed, None, APP, True), Repair)
    changed = copy.deepcopy(seen)
    changed["spec"]["publishNotReadyAddresses"] = True
    assert isinstance(decide(want, changed, None, APP, True), Repair)
