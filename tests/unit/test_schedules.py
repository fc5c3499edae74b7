from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appkeeper.api import Schedule, parse_spec
from appkeeper.schedules import is_open, next_change, scheduled_minimum


def window(start: str, end: str, tz: str = "UTC", replicas: int = 3, name: str = "w") -> Schedule:
    return Schedule(name=name, start=start, end=end, time_zone=tz, replicas=replicas)


def test_open_between_start_and_end() -> None:
    w = window("0 8 * * *", "0 18 * * *")
    assert not is_open(w, datetime(2026, 3, 2, 7, 59, tzinfo=UTC))
    assert is_open(w, datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    assert is_open(w, datetime(2026, 3, 2, 17, 59, tzinfo=UTC))
    assert not is_open(w, datetime(2026, 3, 2, 18, 0, tzinfo=UTC))


def test_window_across_midnight() -> None:
    w = window("0 22 * * *", "0 6 * * *")
    assert is_open(w, datetime(2026, 3, 2, 23, 0, tzinfo=UTC))
    assert is_open(w, datetime(2026, 3, 3, 5, 0, tzinfo=UTC))
    assert not is_open(w, datetime(2026, 3, 3, 12, 0, tzinfo=UTC))


def test_time_zone_and_dst_spring_forward() -> None:
    # Europe/Berlin moves from UTC+1 to UTC+2 on 2026-03-29 at 02:00 local.
    w = window("0 8 * * *", "0 9 * * *", tz="Europe/Berlin")
    assert is_open(w, datetime(2026, 3, 28, 7, 30, tzinfo=UTC))  # 08:30 CET
    assert not is_open(w, datetime(2026, 3, 29, 7, 30, tzinfo=UTC))  # 09:30 CEST: closed
    assert is_open(w, datetime(2026, 3, 29, 6, 30, tzinfo=UTC))  # 08:30 CEST


def test_dst_fall_back_keeps_a_window_in_the_repeated_hour_consistent() -> None:
    # America/New_York repeats 01:00-02:00 on 2026-11-01. A 00:30-03:00 window stays open throughout.
    w = window("30 0 * * *", "0 3 * * *", tz="America/New_York")
    start = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)  # 00:30 EDT
    for minutes in range(0, 210, 15):  # until 02:00 EST (07:00 UTC); 03:00 EST is 08:00 UTC
        assert is_open(w, start + timedelta(minutes=minutes)), minutes
    assert not is_open(w, datetime(2026, 11, 1, 8, 1, tzinfo=UTC))


def test_overlapping_windows_take_the_highest_floor() -> None:
    spec = parse_spec({"image": "x", "schedules": [
        {"name": "day", "start": "0 8 * * *", "end": "0 18 * * *", "replicas": 3},
        {"name": "peak", "start": "0 11 * * *", "end": "0 13 * * *", "replicas": 8},
    ]})
    assert scheduled_minimum(spec, datetime(2026, 3, 2, 12, 0, tzinfo=UTC)) == (8, spec.schedules[1])
    assert scheduled_minimum(spec, datetime(2026, 3, 2, 14, 0, tzinfo=UTC)) == (3, spec.schedules[0])
    assert scheduled_minimum(spec, datetime(2026, 3, 2, 20, 0, tzinfo=UTC)) == (0, None)


def test_next_change_is_the_earliest_boundary() -> None:
    spec = parse_spec({"image": "x", "schedules": [
        {"name": "day", "start": "0 8 * * *", "end": "0 18 * * *", "replicas": 3}]})
    got = next_change(spec, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    assert got is not None
    assert got.astimezone(UTC) == datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    assert next_change(parse_spec({"image": "x"}), datetime(2026, 3, 2, tzinfo=UTC)) is None
