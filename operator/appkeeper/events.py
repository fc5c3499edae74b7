"""The one place Events are posted, aggregated the way client-go's recorder does: a repeat of the
same (object, type, reason, message) within ten minutes bumps the existing Event's count and
lastTimestamp instead of creating another, and a token bucket per App (burst 25, then one per five
minutes) caps how many Event writes one App can cause. The clock is injected for tests."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .api import API_VERSION, KIND, Json
from .status import timestamp

log = logging.getLogger("appkeeper.events")

REPEAT_WINDOW = timedelta(minutes=10)
BURST = 25
REFILL = timedelta(minutes=5)


class EventSink(Protocol):
    def create_event(self, event: Json) -> Json | None: ...
    def merge_patch(self, api_version: str, kind: str, namespace: str, name: str, patch: Json,
                    subresource: str | None = None) -> Json: ...


@dataclass
class _Seen:
    name: str
    count: int
    last: datetime


@dataclass
class _Bucket:
    tokens: float
    at: datetime


class Recorder:
    def __init__(self, sink: EventSink, clock: Callable[[], datetime], keep: int = 4096) -> None:
        """`keep`: how many series and buckets are held before the old ones are swept."""
        self.sink = sink
        self.clock = clock
        self.keep = keep
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str, str, str], _Seen] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def post(self, obj: Json, type_: str, reason: str, message: str) -> None:
        """`obj`: the App's metadata (name, namespace, uid)."""
        now = self.clock()
        message = message[:1024]
        key = (obj["namespace"], obj["name"], type_, reason, message)
        with self._lock:
            if not self._take(key[:2], now):
                log.debug("event %s for %s/%s dropped: rate limited", reason, *key[:2])
                return
            seen = self._seen.get(key)
            repeat = seen is not None and now - seen.last < REPEAT_WINDOW
            if seen is not None and repeat:
                seen.count, seen.last = seen.count + 1, now
            else:
                seen = self._seen[key] = _Seen(f"{obj['name']}.{uuid.uuid4().hex[:12]}", 1, now)
            self._forget_old(now)
        try:
            if repeat:
                self.sink.merge_patch("v1", "Event", obj["namespace"], seen.name,
                                      {"count": seen.count, "lastTimestamp": timestamp(now)})
            else:
                self.sink.create_event(self._event(obj, seen.name, type_, reason, message, now))
        except Exception as e:  # an Event is worth less than the reconcile that posts it
            log.warning("could not post event %s for %s/%s: %s", reason, obj["namespace"], obj["name"], e)
            with self._lock:
                self._seen.pop(key, None)

    def _take(self, app: tuple[str, str], now: datetime) -> bool:
        bucket = self._buckets.setdefault(app, _Bucket(BURST, now))
        bucket.tokens = min(BURST, bucket.tokens + (now - bucket.at) / REFILL)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_old(self, now: datetime) -> None:
        if len(self._seen) >= self.keep:
            for key in [k for k, v in self._seen.items() if now - v.last >= REPEAT_WINDOW]:
                del self._seen[key]
        if len(self._buckets) >= self.keep:  # a bucket refilled to the burst is what a new one would be
            for app in [k for k, b in self._buckets.items() if b.tokens + (now - b.at) / REFILL >= BURST]:
                del self._buckets[app]

    def forget(self, namespace: str, name: str) -> None:
        """The App is gone: nothing of it is kept (a name never seen again costs nothing)."""
        with self._lock:
            self._buckets.pop((namespace, name), None)
            for key in [k for k in self._seen if k[:2] == (namespace, name)]:
                del self._seen[key]

    @staticmethod
    def _event(obj: Json, name: str, type_: str, reason: str, message: str, now: datetime) -> Json:
        involved = {"apiVersion": API_VERSION, "kind": KIND, "name": obj["name"], "namespace": obj["namespace"],
                    "uid": obj.get("uid", "")}
        return event_body(obj["namespace"], name, involved, type_, reason, message, now)


def event_body(namespace: str, name: str, involved: Json, type_: str, reason: str, message: str,
               now: datetime) -> Json:
    """A new core/v1 Event by appkeeper about `involved`, counted once."""
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": involved,
        "type": type_, "reason": reason, "message": message,
        "source": {"component": "appkeeper"}, "reportingComponent": "appkeeper",
        "reportingInstance": "appkeeper", "firstTimestamp": timestamp(now), "lastTimestamp": timestamp(now),
        "count": 1,
    }
