"""What the reconciler's parts share: the API, the watch store, the Event recorder, and the
record of what this process applied (the baseline drift is measured against)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .drift import Applied
from .events import Recorder
from .kube import Kube
from .store import AppKey, ChildKey, Store


class TransientError(Exception):
    """Worth retrying with backoff (API unavailable, conflict, throttled)."""


@dataclass
class Deps:
    kube: Kube
    store: Store
    recorder: Recorder
    applied: dict[tuple[AppKey, ChildKey], Applied] = field(default_factory=dict)
