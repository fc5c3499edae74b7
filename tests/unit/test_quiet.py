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


def test_the_handler_filter_folds_lines_that_differ_in_numbers_paths_and_names() -> None:
    from appkeeper.quiet import RepeatFilter

    now = [0.0]
    folded = RepeatFilter(window=30.0, clock=lambda: now[0])

    def record(msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("kopf._cogs.clients.watching", level, __file__, 1, msg, args or None, None)

    kopf = [record(f"Request attempt #{i}/9 failed; will retry: GET https://127.0.0.1:6443/apis/{p}?watch=true")
            for i, p in [(1, "apps"), (1, "configmaps"), (2, "apps"), (3, "configmaps")]]
    assert [folded.filter(r) for r in kopf] == [True, False, False, False]
    # One template, two different errors: never folded into one (a 403 hidden behind an outage).
    assert folded.filter(record("retry %s (%s)", "attempt 1", "0 Unreachable", level=logging.WARNING))
    assert not folded.filter(record("retry %s (%s)", "attempt 2", "0 Unreachable", level=logging.WARNING))
    assert folded.filter(record("retry %s (%s)", "attempt 3", "403 Forbidden", level=logging.WARNING))
    assert folded.filter(record("something else entirely"))
    assert folded.filter(record("info lines are never folded", level=logging.INFO))
    assert folded.filter(record("info lines are never folded", level=logging.INFO))
    now[0] = 31.0
    later = record("Request attempt #5/9 failed; will retry: GET https://127.0.0.1:6443/apis/apps?watch=true")
    assert folded.filter(later)
    assert later.getMessage().endswith("(and 3 more like it in the last 30s)")
