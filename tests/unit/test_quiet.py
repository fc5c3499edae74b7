from __future__ import annotations

import logging

import pytest

from appkeeper.quiet import Repeats


def test_repeats_are_written_once_per_window_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    repeats = Repeats(window=30.0, clock=lambda: now[0])
    log = logging.getLogger("test.quiet")
    caplog.set_level(logging.INFO, "test.quiet")
    written = []
    for t in range(0, 65):  # one a second for 65 s, of one kind
        now[0] = float(t)
        written.append(repeats.log(log, logging.WARNING, "API 0", "retry %s", t))
    assert [t for t, w in enumerate(written) if w] == [0, 30, 60]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == ["retry 0", "retry 30 (and 29 more like it in the last 30s)",
                     "retry 60 (and 29 more like it in the last 30s)"]
    assert repeats.log(log, logging.WARNING, "API 403", "another kind")  # kinds are counted apart
