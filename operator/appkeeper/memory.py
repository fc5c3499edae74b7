"""What this process remembers of each App between reconciles, in one record behind one lock: the
baseline drift is measured against (what it applied to each child), the inputs of its last
reconcile that changed nothing (a settled App is answered from memory), and a rollback in force.
`forget` drops an App's record whole, safe while other Apps' reconciles write theirs (a shard handed
over, an App deleted)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from .api import Json
from .drift import Applied
from .store import AppKey, ChildKey


@dataclass
class AppRecord:
    applied: dict[ChildKey, Applied] = field(default_factory=dict)
    settled: tuple[object, ...] | None = None  # the inputs of the last reconcile that changed nothing
    rollback: tuple[int, Json] | None = None  # (generation rolled back, the template run instead)
    slices: tuple[tuple[str, str], ...] = ()  # the Service's EndpointSlices (name, resourceVersion) last seen
    slices_seen: datetime | None = None  # when they were first seen so (served.py)


class Memory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apps: dict[AppKey, AppRecord] = {}

    # What was applied to each child, keyed (App, child) as the reconcile names it.
    def get(self, key: tuple[AppKey, ChildKey]) -> Applied | None:
        with self._lock:
            record = self._apps.get(key[0])
            return record.applied.get(key[1]) if record else None

    def __setitem__(self, key: tuple[AppKey, ChildKey], value: Applied) -> None:
        with self._lock:
            self._apps.setdefault(key[0], AppRecord()).applied[key[1]] = value

    def pop(self, key: tuple[AppKey, ChildKey], default: Applied | None = None) -> Applied | None:
        with self._lock:
            record = self._apps.get(key[0])
            return record.applied.pop(key[1], default) if record else default

    def settled(self, app: AppKey) -> tuple[object, ...] | None:
        with self._lock:
            record = self._apps.get(app)
            return record.settled if record else None

    def settle(self, app: AppKey, inputs: tuple[object, ...] | None) -> None:
        with self._lock:
            if inputs is not None or app in self._apps:
                self._apps.setdefault(app, AppRecord()).settled = inputs

    def rollback(self, app: AppKey) -> tuple[int, Json] | None:
        with self._lock:
            record = self._apps.get(app)
            return record.rollback if record else None

    def roll_back(self, app: AppKey, generation_template: tuple[int, Json] | None) -> None:
        with self._lock:
            if generation_template is not None or app in self._apps:
                self._apps.setdefault(app, AppRecord()).rollback = generation_template

    def slices_seen(self, app: AppKey, versions: tuple[tuple[str, str], ...], now: datetime) -> datetime:
        """When this process first saw the App's Service's slices at `versions` (now, if they changed)."""
        with self._lock:
            record = self._apps.setdefault(app, AppRecord())
            if record.slices != versions or record.slices_seen is None:
                record.slices, record.slices_seen = versions, now
            return record.slices_seen

    def forget(self, app: AppKey) -> None:
        with self._lock:
            self._apps.pop(app, None)

    def __contains__(self, app: object) -> bool:
        with self._lock:
            return app in self._apps

    def __len__(self) -> int:
        with self._lock:
            return len(self._apps)
