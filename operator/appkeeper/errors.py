"""The one family of errors a reconcile raises, and what the work loop (controller.py) does with
each: `terminal` (the same request will fail the same way: an invalid object, forbidden) is
reported at once and retried only at the slowest pace; anything else is retried with backoff and
reported after a few failures in a row; `unreachable` (no answer at all) also holds every worker
until the API server answers again. `retry_after` is the earliest a retry makes sense (a 429's or
503's Retry-After header)."""

from __future__ import annotations


class OperatorError(Exception):
    terminal: bool = False
    unreachable: bool = False
    retry_after: float | None = None


class Retry(OperatorError):
    """Worth another try soon: what this reconcile read changed under it (an object that existed a
    moment ago and is gone). Never terminal."""
