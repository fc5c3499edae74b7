"""What the reconciler's parts share: the API, the watch store, the Event recorder, and the
record of what this process applied (the baseline drift is measured against)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .drift import Applied
from .events import Recorder
from .kube import Kube
from .store import AppKey, ChildKey, Store


class TransientError(Exception):
    """Worth retrying with backoff (API unavailable, conflict, throttled)."""


class AppliedRecords:
    """Per App, per child, what this process last applied: one lock, so a shard handed over (its
    Apps forgotten) while reconciles of other Apps record their writes changes nothing under them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_app: dict[AppKey, dict[ChildKey, Applied]] = {}

    def get(self, key: tuple[AppKey, ChildKey]) -> Applied | None:
        with self._lock:
            return self._by_app.get(key[0], {}).get(key[1])

    def __setitem__(self, key: tuple[AppKey, ChildKey], value: Applied) -> None:
        with self._lock:
            self._by_app.setdefault(key[0], {})[key[1]] = value

    def pop(self, key: tuple[AppKey, ChildKey], default: Applied | None = None) -> Applied | None:
        with self._lock:
            return self._by_app.get(key[0], {}).pop(key[1], default)

    def forget(self, app: AppKey) -> None:
        with self._lock:
            self._by_app.pop(app, None)

    def apps(self) -> int:
        with self._lock:
            return len(self._by_app)


@dataclass
class Deps:
    kube: Kube
    store: Store
    recorder: Recorder
    applied: AppliedRecords = field(default_factory=AppliedRecords)
