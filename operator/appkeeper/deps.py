"""What the reconciler's parts share: the API, the watch store, the Event recorder, and the
record of what this process applied (the baseline drift is measured against)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import Recorder
from .kube import Kube
from .memory import Memory
from .store import Store


@dataclass
class Deps:
    kube: Kube
    store: Store
    recorder: Recorder
    memory: Memory = field(default_factory=Memory)  # per App: applied fields, settled inputs, a rollback
