"""What one reconcile tells the work loop besides success: when to come back (the earliest of the
reasons any step found), and what it repaired or created (for status and one Event)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    requeue_after: float | None = None
    repairs: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # "Deployment shop": one Event says them all
    rolled_back: bool = False  # a failed rollout was rolled back (appkeeper_rollback_latency_seconds)

    def within(self, seconds: float | None) -> None:
        """Come back at the latest in `seconds` (None: no reason to)."""
        if seconds is not None:
            self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)
