"""Scheduled scaling windows: which are open at a given instant, and when that next changes.
Pure: the caller passes the clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from .api import AppSpec, Schedule


def _local(now: datetime, tz: str) -> datetime:
    return now.astimezone(ZoneInfo(tz))


def _prev(expr: str, at: datetime) -> datetime:
    # croniter's get_prev is strict; nudge so a window opening exactly now counts as open.
    return croniter(expr, at + timedelta(microseconds=1)).get_prev(datetime)  # type: ignore[no-any-return]


def _next(expr: str, at: datetime) -> datetime:
    return croniter(expr, at).get_next(datetime)  # type: ignore[no-any-return]


def is_open(schedule: Schedule, now: datetime) -> bool:
    """A window is open when its most recent start is later than its most recent end."""
    local = _local(now, schedule.time_zone)
    return _prev(schedule.start, local) > _prev(schedule.end, local)


def open_windows(spec: AppSpec, now: datetime) -> list[Schedule]:
    return [s for s in spec.schedules if is_open(s, now)]


def scheduled_minimum(spec: AppSpec, now: datetime) -> tuple[int, Schedule | None]:
    """The largest replica floor of the open windows, and the window that sets it."""
    best: Schedule | None = None
    for s in open_windows(spec, now):
        if best is None or s.replicas > best.replicas:
            best = s
    return (best.replicas if best else 0), best


def next_change(spec: AppSpec, now: datetime) -> datetime | None:
    """The next instant at which any window opens or closes (for a requeue timer)."""
    times = []
    for s in spec.schedules:
        local = _local(now, s.time_zone)
        times += [_next(s.start, local), _next(s.end, local)]
    return min(times) if times else None
