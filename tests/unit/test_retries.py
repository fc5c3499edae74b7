"""The retry taxonomy: which API answers are retried with backoff, which are reported and retried
slowly, and how long the backoff is."""

from __future__ import annotations

import pytest

from appkeeper.kube import ApiError, retry_after
from appkeeper.workqueue import retry_delay


@pytest.mark.parametrize(("status", "message", "terminal"), [
    (0, "ConnectTimeoutError", False),  # no answer at all
    (409, "the object has been modified", False),
    (429, "too many requests", False),
    (500, "etcdserver: request timed out", False),
    (503, "service unavailable", False),
    (504, "gateway timeout", False),
    (500, 'failed to create typed patch object (/v1, Kind=Deployment): .spec.x: field not declared in schema',
     True),
    (400, "bad request", True),
    (403, 'deployments.apps is forbidden: exceeded quota', True),
    (404, "not found", True),
    (422, "spec.ports[0].port: Invalid value", True),
])
def test_which_answers_are_terminal(status: int, message: str, terminal: bool) -> None:
    assert ApiError(status, "X", message).terminal is terminal


def test_backoff_doubles_is_capped_and_jittered() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay(30, cap=300) == 300
    assert retry_delay(3, jitter=0.2) == pytest.approx(4.8)
    assert retry_delay(3, jitter=-0.2) == pytest.approx(3.2)


def test_retry_after_is_honoured() -> None:
    assert retry_delay(1, retry_after=7) == 7
    assert retry_delay(8, retry_after=7) == 128
    assert retry_after("12") == 12
    assert retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert retry_after(None) is None
