"""Alertmanager's own rules for a `time_intervals` entry (weekdays and times), so a maintenance window the stack
check accepts is one `amtool check-config` accepts too (tests/test_maintenance_windows.py runs amtool on the
generated config of accepted windows).

Alertmanager's timeinterval package (prometheus/alertmanager `timeinterval/timeinterval.go`, and the
configuration docs, "time_interval"): weekdays are names, case-insensitive, or inclusive ranges `start:end` that
ascend from sunday to saturday (`saturday:sunday` is refused: write two entries); times are `HH:MM` with two-digit
hours, from 00:00 to 24:00 (24:00 only as an end), and a range's start is before its end (within one day, UTC).
"""

from __future__ import annotations

import re

# Alertmanager's week starts on sunday (Go's time.Weekday).
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2})", re.ASCII)
MINUTES_PER_DAY = 24 * 60


def minutes(text: str) -> int | None:
    """Minutes after midnight of an `HH:MM` Alertmanager accepts (00:00 .. 24:00), None otherwise."""
    m = _TIME.fullmatch(text)
    if m is None:
        return None
    hours, mins = int(m.group(1)), int(m.group(2))
    if mins > 59 or hours * 60 + mins > MINUTES_PER_DAY:
        return None
    return hours * 60 + mins


def weekday_problem(item: str) -> str | None:
    """Why Alertmanager refuses a weekdays item (`tuesday`, `monday:friday`), or None."""
    names = item.lower().split(":")
    if len(names) > 2 or any(n not in WEEKDAYS for n in names):
        return f"{item!r}: a weekday name or a range 'start:end' of names ({', '.join(WEEKDAYS)})"
    if len(names) == 2 and WEEKDAYS.index(names[0]) > WEEKDAYS.index(names[1]):
        return (f"{item!r}: a range must ascend from sunday to saturday (Alertmanager refuses it); write two "
                f"entries, e.g. '{names[0]}:saturday' and 'sunday:{names[1]}'")
    return None


def times_problem(start: str, end: str) -> str | None:
    """Why Alertmanager refuses a times range, or None."""
    lo, hi = minutes(start), minutes(end)
    if lo is None or lo >= MINUTES_PER_DAY:
        return f"start {start!r} must be HH:MM from 00:00 to 23:59 (UTC)"
    if hi is None:
        return f"end {end!r} must be HH:MM from 00:01 to 24:00 (UTC)"
    if hi <= lo:
        return f"end {end} is not after start {start} (HH:MM, UTC, within one day: split a window over midnight)"
    return None


def window_problems(weekdays: list[str], start: str, end: str) -> list[str]:
    """Every reason Alertmanager would refuse a time interval of these weekdays and times."""
    out = [p for p in (weekday_problem(w) for w in weekdays) if p]
    if not weekdays:
        out.append("weekdays: at least one weekday or range")
    times = times_problem(start, end)
    return out + ([times] if times else [])
