"""The operator's own /healthz and /readyz, and waiting for the App CRD."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest

from appkeeper import cli
from appkeeper.health import Health, answer, serve
from appkeeper.kube import ApiError


def test_alive_but_not_ready_while_waiting_for_the_crd() -> None:
    health = Health()
    health.waiting("waiting for the CRD apps.appkeeper.dev")
    assert answer(health, "/healthz")[0] == 200
    assert answer(health, "/readyz") == (503, {"ready": False, "state": "waiting for the CRD apps.appkeeper.dev"})


def test_ready_once_the_run_says_so() -> None:
    health = Health()
    flag = health.running()
    assert answer(health, "/readyz")[0] == 503
    flag.set()
    assert answer(health, "/readyz") == (200, {"ready": True, "state": "serving Apps"})
    health.waiting("waiting for the CRD apps.appkeeper.dev")  # a new wait forgets the old run's flag
    assert answer(health, "/readyz")[0] == 503


def test_served_over_http_on_the_given_address() -> None:
    health = Health()
    health.running().set()
    health.details = lambda: {"queue": 3}
    server = serve(health, "127.0.0.1", 0, poll=0.01)
    port = server.server_address[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert json.loads(r.read())["queue"] == 3
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
        assert e.value.code == 404
    finally:
        server.shutdown()


class Discovery:
    """Answers `serves` from a script: True, False, or an ApiError to raise."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)

    def serves(self, group_version: str, plural: str) -> bool:
        assert (group_version, plural) == ("appkeeper.dev/v1alpha1", "apps")
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, ApiError):
            raise answer
        return bool(answer)


def test_waits_through_a_missing_crd_and_an_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.time, "sleep", lambda _s: None)
    health = Health()
    kube = Discovery(False, ApiError(0, "Unreachable", "refused"), False, True)
    cli.wait_for_crd(kube, health)  # type: ignore[arg-type]
    assert kube.answers == [True]
    assert answer(health, "/readyz")[1]["state"] == "waiting for the CRD apps.appkeeper.dev"


class NotFound(Exception):
    status = 404


def test_a_failed_run_is_restarted_only_for_a_lost_crd_or_api_server() -> None:
    try:
        try:
            raise NotFound("404 page not found")
        except NotFound as e:
            raise RuntimeError("watcher failed") from e
    except RuntimeError as e:
        wrapped = e
    crd = "the CRD apps.appkeeper.dev was deleted"
    assert cli.worth_restarting(wrapped, Discovery(True)) == crd  # type: ignore[arg-type]  # already back
    assert cli.worth_restarting(RuntimeError("boom"), Discovery(False)) == crd  # type: ignore[arg-type]
    assert cli.worth_restarting(RuntimeError("boom"), Discovery(True)) is None  # type: ignore[arg-type]
    unreachable = Discovery(ApiError(0, "Unreachable", "x"))
    assert cli.worth_restarting(RuntimeError("x"), unreachable) == "the API server does not answer"  # type: ignore[arg-type]


def test_kopf_connects_where_our_client_does() -> None:
    from kubernetes.client import Configuration

    from appkeeper.kube import connection_fields

    cfg = Configuration(host="https://127.0.0.1:6443")
    cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file = "/ca.crt", "/me.crt", "/me.key"
    cfg.api_key = {"BearerToken": "Bearer abc"}
    fields = connection_fields(cfg)
    assert fields == {"server": "https://127.0.0.1:6443", "ca_path": "/ca.crt", "insecure": False,
                      "scheme": "Bearer", "token": "abc", "certificate_path": "/me.crt", "private_key_path": "/me.key"}
    cfg.api_key = {}
    assert connection_fields(cfg)["token"] is None


def test_json_logs_carry_the_fields_and_kopfs_object_reference(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    cli.configure_logging("json", "info")
    logging.getLogger("kopf.objects").warning("patched", extra={"k8s_ref": {"kind": "App", "name": "shop"}})
    try:
        raise ZeroDivisionError("x")
    except ZeroDivisionError:
        logging.getLogger("appkeeper").exception("failed")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert {k: first[k] for k in ("level", "logger", "message", "object")} == {
        "level": "warning", "logger": "kopf.objects", "message": "patched", "object": {"kind": "App", "name": "shop"}}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second["level"] == "error"
    assert "ZeroDivisionError" in second["exception"]


def test_our_lines_about_an_app_name_it_in_fields(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from appkeeper.quiet import Repeats, about

    cli.configure_logging("json", "info")
    Repeats().log(logging.getLogger("appkeeper.reconcile"), logging.INFO, "k", "%s", "repaired shop/web: ...",
                  extra=about("shop", "web"))
    line = json.loads(capsys.readouterr().err.splitlines()[0])
    assert line["object"] == {"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "namespace": "shop",
                              "name": "web"}


def test_kopf_keeps_no_diff_base_for_raw_event_handlers() -> None:
    """No deep copy and diff of every watched object per event: nothing reads them."""
    import kopf

    from appkeeper.handlers import NoDiffBase, configure

    settings = kopf.OperatorSettings()
    configure(settings)  # what the operator's startup handler does
    storage = settings.persistence.diffbase_storage
    assert isinstance(storage, NoDiffBase)
    body = kopf.Body({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"a": 1}})
    assert storage.build(body=body) is None
    assert storage.fetch(body=body) is None
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch  # nothing written to the object either


def test_liveness_fails_once_the_event_loop_stops_beating() -> None:
    """Finding 8: /healthz said 200 with the event loop wedged."""
    health = Health()
    now = [100.0]
    health.clock = lambda: now[0]
    assert answer(health, "/healthz")[0] == 200  # no loop yet (waiting for the CRD): alive
    health.beat()
    now[0] += 29
    assert answer(health, "/healthz")[0] == 200
    now[0] += 2
    code, body = answer(health, "/healthz")
    assert code == 503
    assert "has not answered for 31s" in body["state"]
    health.waiting("stopping")  # a run that ended is not a wedged loop
    assert answer(health, "/healthz")[0] == 200


def test_glibc_is_told_to_give_large_blocks_back() -> None:
    import platform

    from appkeeper.malloc import fix_mmap_threshold

    assert fix_mmap_threshold() is (platform.libc_ver()[0] == "glibc")


def test_a_missing_admission_policy_is_said_on_readyz_in_a_metric_and_an_event() -> None:
    from appkeeper import metrics
    from appkeeper.guard import PolicyGuard

    from .fakekube import FakeKube

    kube = FakeKube()
    guard = PolicyGuard(kube, "appkeeper-app-rights", "appkeeper-system")  # type: ignore[arg-type]
    health = Health()
    health.running().set()
    health.problem = lambda: guard.problem
    assert guard.check().present is False
    assert metrics.ADMISSION_POLICY._value.get() == 0
    code, body = answer(health, "/readyz")
    assert code == 503
    assert "admission policy missing (ValidatingAdmissionPolicy appkeeper-app-rights" in body["state"]
    guard.check()  # still missing: one Event, not one per check
    events = [o for (k, _, _), o in kube.objects.items() if k == "Event"]
    assert [(e["reason"], e["metadata"]["namespace"]) for e in events] == [("AdmissionPolicyMissing",
                                                                            "appkeeper-system")]
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        kube.add({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                  "metadata": {"name": "appkeeper-app-rights"}})
    assert guard.check().present is True
    assert metrics.ADMISSION_POLICY._value.get() == 1
    assert answer(health, "/readyz")[0] == 200
