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

KINDS_MAX = 1024  # kinds remembered at once; the oldest is forgotten first


class Repeats:
    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.clock = window, clock
        self._lock = threading.Lock()
        self._seen: dict[Hashable, list[float]] = {}  # kind -> [first written at, repeats since]

    def log(self, logger: logging.Logger, level: int, kind: Hashable, msg: str, *args: object) -> bool:
        """Writes `msg % args` at `level` unless a line of `kind` was written within the window;
        returns whether it was written."""
        with self._lock:
            now = self.clock()
            seen = self._seen.get(kind)
            if seen is not None and now - seen[0] < self.window:
                seen[1] += 1
                write = False
            else:
                repeats = int(seen[1]) if seen is not None else 0
                self._seen.pop(kind, None)
                self._seen[kind] = [now, 0]
                if len(self._seen) > KINDS_MAX:
                    del self._seen[next(iter(self._seen))]
                write = True
        if not write:
            logger.debug(msg, *args)
            return False
        if repeats:
            msg += f" (and {repeats} more like it in the last {self.window:.0f}s)"
        logger.log(level, msg, *args)
        return True


_VARYING = re.compile(r"[0-9]+|/[^ ]*|'[^']*'")  # numbers, paths and URLs, quoted names


class RepeatFilter(logging.Filter):
    """For the log handler: warnings and errors of any logger (kopf's watch retries, urllib3's, ours)
    whose text differs only in numbers, paths and quoted names are written once per window, the
    next one with a count (Repeats)."""

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window, self.clock = window, clock
        self._lock = threading.Lock()
        self._seen: dict[Hashable, list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, record.levelno, _VARYING.sub("#", str(record.msg))[:120])
        with self._lock:
            now = self.clock()
            seen = self._seen.get(kind)
            if seen is not None and now - seen[0] < self.window:
                seen[1] += 1
                return False
            repeats = int(seen[1]) if seen is not None else 0
            self._seen.pop(kind, None)
            self._seen[kind] = [now, 0]
            if len(self._seen) > KINDS_MAX:
                del self._seen[next(iter(self._seen))]
        if repeats:
            record.msg = f"{record.getMessage()} (and {repeats} more like it in the last {self.window:.0f}s)"
            record.args = None
        return True
