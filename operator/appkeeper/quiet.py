"""Log lines of repeats aggregated as Events are (events.py): the first line of a kind is written;
the same kind again within `window` seconds is only counted (at debug level), and the next line
written after the window says how many it stood for. An outage fails every App the same way, and a
child fought over is repaired hundreds of times a minute: the log says so once, with a count."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Hashable

from .api import API_VERSION, KIND

KINDS_MAX = 1024  # kinds remembered at once; the oldest is forgotten first


class Window:
    """Counts lines of each kind: the first of a kind opens a window of `window` seconds; the same
    kind within it is only counted."""

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.clock = window, clock
        self._lock = threading.Lock()
        self._seen: dict[Hashable, list[float]] = {}  # kind -> [window opened at, repeats since]

    def admit(self, kind: Hashable) -> int | None:
        """None: a repeat inside the window (counted); else a new window opens, and this returns how
        many repeats the last one counted."""
        with self._lock:
            now = self.clock()
            seen = self._seen.get(kind)
            if seen is not None and now - seen[0] < self.window:
                seen[1] += 1
                return None
            self._seen.pop(kind, None)
            self._seen[kind] = [now, 0]
            if len(self._seen) > KINDS_MAX:
                del self._seen[next(iter(self._seen))]
            return int(seen[1]) if seen is not None else 0

    def note(self, repeats: int) -> str:
        return f" (and {repeats} more like it in the last {self.window:.0f}s)" if repeats else ""


class Repeats(Window):
    """For a caller that knows what makes two lines the same (an error's kind, one child's cause)."""

    def log(self, logger: logging.Logger, level: int, kind: Hashable, msg: str, *args: object,
            extra: dict[str, object] | None = None) -> bool:
        """Writes `msg % args` at `level` unless a line of `kind` was written within the window
        (then at debug level); returns whether it was written at `level`."""
        repeats = self.admit(kind)
        if repeats is None:
            logger.debug(msg, *args, extra=extra)
            return False
        logger.log(level, msg + self.note(repeats), *args, extra=extra)
        return True


def about(namespace: str, name: str) -> dict[str, object]:
    """A log record's `extra` naming the App it is about: the JSON log's `object` field, as kopf's
    own lines carry it."""
    return {"k8s_ref": {"apiVersion": API_VERSION, "kind": KIND, "namespace": namespace, "name": name}}


_VARYING = re.compile(r"[0-9]+|/[^ ]*|'[^']*'")  # numbers, paths and URLs, quoted names


class RepeatFilter(logging.Filter):
    """For the log handler, for the lines of loggers that are not ours (kopf's watch retries):
    warnings and errors whose text differs only in numbers, paths and quoted names are written
    once per window, the next one with a count."""

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.windows = Window(window, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        repeats = self.windows.admit((record.name, record.levelno, _VARYING.sub("#", record.getMessage())[:160]))
        if repeats is None:
            return False
        if repeats:
            record.msg, record.args = record.getMessage() + self.windows.note(repeats), None
        return True
