"""Synthetic 5-minute series with known events, for tests and tuning beside shared/nab-dev (seeded, reproducible).

Each generator returns (timestamps, values, event indices). The kinds are the losses issue 15 names: a change of
variance around an unchanged mean, a short spike far outside everything seen, a daily spike at the same minute
(a cron job: NOT an anomaly after the first days), a sudden change of scale (a deploy), a counter restart, plus
the awkward inputs real sources return (timestamps that repeat or step back, gaps, a constant series).
"""

from __future__ import annotations

import math
import random

STEP_S = 300
DAY_POINTS = 288
START = 1_700_000_000.0 // 86400 * 86400  # midnight UTC


def _base(n: int, rng: random.Random, noise: float = 2.0) -> list[float]:
    return [50 + 20 * math.sin(2 * math.pi * i / DAY_POINTS) + rng.gauss(0, noise) for i in range(n)]


def stamps(n: int) -> list[float]:
    return [START + i * STEP_S for i in range(n)]


def variance_change(days: int = 6, at_day: float = 4.5, seed: int = 1) -> tuple[list[float], list[float], list[int]]:
    rng = random.Random(seed)
    n, at = days * DAY_POINTS, int(at_day * DAY_POINTS)
    values = _base(n, rng)
    for i in range(at, n):
        values[i] += rng.gauss(0, 12.0)  # same mean, six times the spread
    return stamps(n), values, [at]


def short_spike(days: int = 6, at_day: float = 4.3, seed: int = 2) -> tuple[list[float], list[float], list[int]]:
    rng = random.Random(seed)
    n, at = days * DAY_POINTS, int(at_day * DAY_POINTS)
    values = _base(n, rng)
    values[at] = 400.0  # one point far beyond the running range
    return stamps(n), values, [at]


def daily_cron(days: int = 8, seed: int = 3) -> tuple[list[float], list[float], list[int]]:
    """A 10-minute spike at 03:00 every day, its size varying by +-40% (a batch job's work varies): the first one
    is news, the later ones are the series' habit even when one is larger than the day before."""
    rng = random.Random(seed)
    n = days * DAY_POINTS
    values = _base(n, rng)
    for d in range(days):
        size = 60.0 * rng.uniform(0.6, 1.4)
        for k in range(2):
            values[d * DAY_POINTS + 36 + k] += size
    return stamps(n), values, []


def scale_change(days: int = 6, at_day: float = 4.0, seed: int = 4) -> tuple[list[float], list[float], list[int]]:
    rng = random.Random(seed)
    n, at = days * DAY_POINTS, int(at_day * DAY_POINTS)
    values = _base(n, rng)
    return stamps(n), [v * (10.0 if i >= at else 1.0) for i, v in enumerate(values)], [at]


def counter_restart(days: int = 4, at_day: float = 3.0) -> tuple[list[float], list[float], list[int]]:
    n, at = days * DAY_POINTS, int(at_day * DAY_POINTS)
    values, total = [], 0.0
    for i in range(n):
        total = 0.0 if i == at else total + 10 + 5 * math.sin(2 * math.pi * i / DAY_POINTS)
        values.append(total)
    return stamps(n), values, [at]


def constant(days: int = 3, value: float = 7.0) -> tuple[list[float], list[float], list[int]]:
    n = days * DAY_POINTS
    return stamps(n), [value] * n, []


def messy_timestamps(days: int = 3, seed: int = 5) -> tuple[list[float], list[float], list[int]]:
    """Repeats, a step back and a two-hour gap, as CloudWatch and Prometheus can return them."""
    n = DAY_POINTS * days
    t, values = stamps(n), _base(n, random.Random(seed))
    t[400] = t[399]  # a repeated timestamp
    t[500] = t[480]  # one late point stepping back
    del t[600:624], values[600:624]  # a gap of two hours
    return t, values, []


# ---------------------------------------------------------------------------------------------- long series
# Weekly-seasonal series of several weeks with labelled events, for the speed benchmark (90 days) and the
# synthetic corpus that judges the detector beside nab-dev (a check that is not tuned on the dev files).
WEEK_POINTS = 7 * DAY_POINTS


def _weekday(i: int) -> int:
    return int((START + i * STEP_S) // 86400 + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)


def _weekly_base(n: int, rng: random.Random, noise: float, weekend: float) -> list[float]:
    return [100 + 20 * math.sin(2 * math.pi * i / DAY_POINTS) - (weekend if _weekday(i) >= 5 else 0.0)
            + rng.gauss(0, noise) for i in range(n)]


def weekday_at(day: int, weekday: int) -> int:
    """The first day >= `day` that is `weekday` (0 = Monday)."""
    return next(d for d in range(day, day + 7) if _weekday(d * DAY_POINTS) == weekday)


def holiday(days: int = 28, seed: int = 6) -> tuple[list[float], list[float], list[int]]:
    """A weekday that looks like a weekend (a holiday) in a weekly-seasonal series: only a weekly term sees it."""
    rng = random.Random(seed)
    n = days * DAY_POINTS
    values = _weekly_base(n, rng, noise=2.0, weekend=25.0)
    day = weekday_at(days - 6, 2)  # a Wednesday in the last week (the model has a weekly term from 14 days)
    at = day * DAY_POINTS
    for i in range(at, at + DAY_POINTS):
        values[i] -= 25.0
    return stamps(n), values, [at]


def sustained_shift(days: int = 6, at_day: float = 4.4, hours: int = 3,
                    seed: int = 7) -> tuple[list[float], list[float], list[int]]:
    """A level shift held for `hours`: one excursion, so one onset (not one detection per point)."""
    rng = random.Random(seed)
    n, at = days * DAY_POINTS, int(at_day * DAY_POINTS)
    values = _base(n, rng)
    for i in range(at, at + 12 * hours):
        values[i] += 30.0
    return stamps(n), values, [at]


def weekly_seasonal(days: int = 90, seed: int = 8, noise: float = 2.0,
                    events: bool = True) -> tuple[list[float], list[float], list[int]]:
    """Daily + weekly pattern (weekend dip) with a 10-minute cron spike at 03:00 every day (the series' habit,
    not an anomaly), and, from the fourth week on, one event of each kind the issue names, a week apart:
    a holiday, a short extreme spike, a variance change around the same mean, a 3-hour level shift."""
    rng = random.Random(seed)
    n = days * DAY_POINTS
    values = _weekly_base(n, rng, noise=noise, weekend=25.0)
    for d in range(days):
        for k in range(2):
            values[d * DAY_POINTS + 36 + k] += 40.0
    onsets: list[int] = []
    if not events:
        return stamps(n), values, onsets
    first = 22
    kinds = ("holiday", "spike", "variance", "shift")
    for j, kind in enumerate(kinds):
        day = first + j * max(7, (days - first - 3) // len(kinds))
        if day >= days - 1:
            break
        if kind == "holiday":
            at = weekday_at(day, 2) * DAY_POINTS
            for i in range(at, min(n, at + DAY_POINTS)):
                values[i] -= 25.0
        elif kind == "spike":
            at = day * DAY_POINTS + 200  # 16:40, one point
            values[at] += 150.0
        elif kind == "variance":
            at = day * DAY_POINTS + 120  # 10:00, six hours at six times the spread
            for i in range(at, at + 72):
                values[i] += rng.gauss(0, 6 * noise)
        else:
            at = day * DAY_POINTS + 160  # 13:20, three hours 30 up
            for i in range(at, at + 36):
                values[i] += 30.0
        onsets.append(at)
    return stamps(n), values, onsets


def cron_then_event(days: int = 7, at_day: float = 5.6, seed: int = 9) -> tuple[list[float], list[float], list[int]]:
    """The daily 03:00 cron job of `daily_cron`, then a two-hour excursion at 14:24 smaller than the larger cron
    jobs: the cron is the largest excursion of every two days, yet the event is at a time of day the series never
    leaves its band."""
    rng = random.Random(seed)
    n, at = days * DAY_POINTS, int(at_day * DAY_POINTS)
    values = _base(n, rng)
    for d in range(days):
        size = 60.0 * rng.uniform(0.6, 1.4)
        for k in range(2):
            values[d * DAY_POINTS + 36 + k] += size
    for i in range(at, at + 24):
        values[i] += 40.0  # two hours, below the larger cron jobs (36-84)
    return stamps(n), values, [at]


def event_after_larger(days: int = 7, seed: int = 10) -> tuple[list[float], list[float], list[int]]:
    """A large 30-minute excursion on day 4, then a second, smaller one 20 hours later: the first must not mask
    the second for a whole day."""
    rng = random.Random(seed)
    n = days * DAY_POINTS
    first, second = 4 * DAY_POINTS + 120, 4 * DAY_POINTS + 120 + 20 * 12
    values = _base(n, rng)
    for i in range(first, first + 6):
        values[i] += 80.0
    for i in range(second, second + 12):
        values[i] += 40.0
    return stamps(n), values, [first, second]


def drifting_batch(days: int = 8, seed: int = 11) -> tuple[list[float], list[float], list[int]]:
    """A nightly 20-minute batch job that starts anywhere from 02:20 to 03:40 (it waits for its input): the
    series' habit, NOT an anomaly after the first days, though it is rarely at the same 5 minutes two days running."""
    rng = random.Random(seed)
    n = days * DAY_POINTS
    values = _base(n, rng)
    for d in range(days):
        start = d * DAY_POINTS + 36 + rng.randint(-8, 8)
        size = 50.0 * rng.uniform(0.8, 1.2)
        for k in range(4):
            values[start + k] += size
    return stamps(n), values, []


def stuck_sensor(days: int = 9, at_day: float = 8.3, hours: int = 2,
                 seed: int = 12) -> tuple[list[float], list[float], list[int]]:
    """A noisy daily series whose exporter freezes: it repeats its last value for `hours` (a sensor failure,
    inside the band; NAB's art_daily_flatmiddle kind)."""
    rng = random.Random(seed)
    n, at = days * DAY_POINTS, int(at_day * DAY_POINTS)
    values = _base(n, rng)
    for i in range(at, min(n, at + hours * 12)):
        values[i] = values[at - 1]
    return stamps(n), values, [at]


def nightly_flat(days: int = 9, seed: int = 13) -> tuple[list[float], list[float], list[int]]:
    """A batch queue that reads exactly 0 from 01:00 to 03:00 every night: flat as a habit, not a failure."""
    rng = random.Random(seed)
    n = days * DAY_POINTS
    values = _base(n, rng)
    for d in range(days):
        for i in range(d * DAY_POINTS + 12, d * DAY_POINTS + 36):
            values[i] = 0.0
    return stamps(n), values, []
