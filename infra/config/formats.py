"""String formats a setting can require (`setting(format=...)`): what AWS, Kubernetes and the Lambdas accept.

Each format is a check plus the sentence shown when it fails, so the plan rejects what the service (or our own
function at run time) would reject, with the rule named. Patterns use `re.fullmatch` with ASCII classes only.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import ipaddress
import itertools
import re
import urllib.parse
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from infra.config.aws_limits import AMP_HOST_PATTERN, AMP_PATH_PATTERN, namespace_problem, s3_prefix_problem

# Commercial partition (`aws`), the partition this program's ARNs are built for (botocore endpoints.json; a test
# compares). GovCloud, China and ISO partitions are other partitions, not regions of this one.
AWS_REGIONS = (
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1",
    "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
    "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
)

_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_K8S_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"  # DNS-1123 label: lower case, 63 characters
_K8S_LABEL_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"


def full(pattern: str, text: str) -> bool:
    """The whole string matches (no trailing newline), with ASCII-only classes (no Arabic-Indic digits)."""
    return re.fullmatch(pattern, text, re.ASCII) is not None


def is_dns_name(text: str) -> bool:
    """A public DNS host name: at most 253 characters, 2+ labels of letters, digits and inner hyphens."""
    labels = text.split(".")
    return (len(text) <= 253 and len(labels) >= 2 and all(full(_DNS_LABEL, label) for label in labels)
            and not labels[-1].isdigit())


def is_k8s_subdomain(text: str) -> bool:
    """DNS-1123 subdomain (most Kubernetes object names, label-key prefixes): 253 characters, lower case."""
    return len(text) <= 253 and all(full(_K8S_DNS_LABEL, label) for label in text.split("."))


def is_k8s_label_key(text: str) -> bool:
    """`[prefix/]name`: prefix a DNS-1123 subdomain, name 1-63 alphanumerics with `-_.` inside."""
    prefix, _, name = text.rpartition("/")
    if "/" in text and not is_k8s_subdomain(prefix):
        return False
    return full(_K8S_LABEL_NAME, name)


def is_k8s_label_value(text: str) -> bool:
    return text == "" or full(_K8S_LABEL_NAME, text)


def url_problem(text: str, schemes: tuple[str, ...]) -> str | None:
    """Why a URL is not one the Lambdas' urllib (and the service behind it) can use, or None."""
    if not full(r"[!-~]{1,2048}", text):
        return "1-2048 printable ASCII characters, no spaces"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError:
        return "the port must be a number from 1 to 65535"
    if parts.scheme not in schemes:
        return f"the scheme must be {' or '.join(schemes)}"
    if "@" in parts.netloc:
        return "no credentials in the URL"
    if parts.fragment:
        return "no #fragment (it is never sent)"
    if port == 0:
        return "port 0 is not a port a server listens on (1-65535)"
    host = parts.hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None if is_dns_name(host) else f"host {host!r} is not a DNS name or an IP address"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return f"host {host} is not an address a client can reach (unspecified, multicast or reserved)"
    if ip.is_loopback or ip.is_link_local:
        # The callers are Lambdas, Alertmanager pods and canaries: their own loopback is not the service.
        return f"host {host} is a loopback or link-local address: the Lambdas and pods calling it reach themselves"
    return None


def is_url(text: str, schemes: tuple[str, ...]) -> bool:
    """An absolute URL the Lambdas' urllib accepts: printable ASCII, no whitespace, a reachable host, a port."""
    return url_problem(text, schemes) is None


def prometheus_url_problem(text: str) -> str | None:
    """A Prometheus HTTP API base URL; an Amazon Managed Service for Prometheus one needs https (SigV4) and the
    workspace path (`https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>`: AMP API reference)."""
    problem = url_problem(text, ("http", "https"))
    if problem:
        return problem
    parts = urllib.parse.urlsplit(text)
    if parts.query:
        return "no ?query: the detector appends /api/v1/query?... to the base URL"
    amp = re.fullmatch(AMP_HOST_PATTERN, parts.hostname or "", re.ASCII)
    if amp is None:
        return None
    if parts.scheme != "https":
        return "Amazon Managed Prometheus takes https only (SigV4-signed)"
    if amp.group(1) not in AWS_REGIONS:
        return f"{amp.group(1)!r} is not an AWS commercial region"
    if not full(AMP_PATH_PATTERN, parts.path):
        return "an AMP URL names its workspace: https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>"
    return None


def edge_text_problem(text: str) -> str | None:
    """Why the edge function refuses a text the canary POSTs to /embed, asked of the function's own request
    parser (lambdas/edge_inference/events.read_text) with the body the canary sends (lambdas/canary/probes.py:
    `json.dumps({"text": ...})`)."""
    import base64
    import json

    from lambdas.edge_inference import events  # the function's stdlib-only request module

    body = base64.b64encode(json.dumps({"text": text}).encode()).decode()
    req = events.EdgeRequest(method="POST", uri=events.EMBED_PATH, headers={"content-type": "application/json"},
                             body={"data": body, "encoding": "base64"}, request_id="config-check")
    try:
        events.read_text(req)
    except events.ClientError as err:
        return f"the edge answers {err.status}: {err.reason}"
    return None


def is_emf_dimension_value(text: str) -> bool:
    """CloudWatch dimension value: 1-1024 printable ASCII characters, not only blanks."""
    return full(r"[ -~]{1,1024}", text) and text.strip() != ""


def is_query(text: str) -> bool:
    """A query the detector accepts: not blank (its own settings check), printable, at most 10,000 characters."""
    return text.strip() != "" and len(text) <= 10_000 and full(r"[ -~\t\n]+", text)


# ------------------------------------------------------------------------------------ EventBridge schedules
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # JAN=1.. / SUN=1..
    question: bool = False  # `?` allowed (day-of-month, day-of-week)
    slash: bool = True


CRON_FIELDS = (
    CronField("minutes", 0, 59),
    CronField("hours", 0, 23),
    CronField("day-of-month", 1, 31, question=True),
    CronField("month", 1, 12, _MONTHS),
    CronField("day-of-week", 1, 7, _DAYS, question=True, slash=False),
    CronField("year", 1970, 2199),
)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: `rate_s` for rate(), the expanded cron fields otherwise (None: `?`/L/W/# forms)."""

    rate_s: int | None = None
    cron: tuple[frozenset[int] | None, ...] | None = None
    fields: tuple[str, ...] = ()  # the cron fields as written (L, W and # are resolved per month)


class ScheduleError(ValueError):
    pass


def _number(text: str, f: CronField) -> int:
    if f.names and text.upper() in f.names:
        return f.names.index(text.upper()) + 1
    if not full(r"[0-9]{1,4}", text):
        raise ScheduleError(f"{f.name}: {text!r} is not a number{' or name' if f.names else ''}")
    value = int(text)
    if not f.low <= value <= f.high:
        raise ScheduleError(f"{f.name}: {value} is outside {f.low}-{f.high}")
    return value


def _cron_item(item: str, f: CronField) -> set[int] | None:
    """Values of one comma-separated item; None for the calendar forms (L, W, #) that do not expand simply."""
    if f.name == "day-of-month" and (full(r"L(-[0-9]{1,2})?|LW|[0-9]{1,2}W", item)):
        if item.endswith("W") and item != "LW":
            _number(item[:-1], f)
        return None
    if f.name == "day-of-week" and (full(r"L|[0-9A-Za-z]{1,3}L|[0-9A-Za-z]{1,3}#[1-5]", item)):
        head = item.split("#")[0].removesuffix("L")
        if head:
            _number(head, f)
        return None
    base, slash, step_text = item.partition("/")
    if slash and not f.slash:
        raise ScheduleError(f"{f.name}: '/' is not allowed in this field")
    if base == "*":
        lo, hi = f.low, f.high
    elif "-" in base:
        a, _, b = base.partition("-")
        lo, hi = _number(a, f), _number(b, f)
        if lo > hi:
            raise ScheduleError(f"{f.name}: range {base} runs backwards")
    else:
        lo = _number(base, f)
        hi = f.high if slash else lo
    step = 1
    if slash:
        if not full(r"[0-9]{1,4}", step_text) or int(step_text) < 1:
            raise ScheduleError(f"{f.name}: increment {step_text!r} must be a positive number")
        step = int(step_text)
    return set(range(lo, hi + 1, step))


def parse_schedule(expr: str) -> Schedule:
    """An EventBridge schedule expression, checked the way EventBridge checks it (rules + Scheduler docs)."""
    rate = re.fullmatch(r"rate\(([0-9]+) (minute|minutes|hour|hours|day|days)\)", expr, re.ASCII)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            raise ScheduleError("rate value must be a positive integer")
        if (value == 1) != (not unit.endswith("s")):
            raise ScheduleError(f"use the {'singular' if value == 1 else 'plural'} unit for {value}: "
                                f"rate({value} {unit.rstrip('s') + ('' if value == 1 else 's')})")
        return Schedule(rate_s=value * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")])
    cron = re.fullmatch(r"cron\(([^()]*)\)", expr, re.ASCII)
    if not cron:
        raise ScheduleError("not rate(N unit) or cron(6 fields)")
    fields = cron.group(1).split(" ")
    if len(fields) != 6 or any(not part for part in fields):
        raise ScheduleError(f"cron needs 6 fields separated by single spaces, got {len(fields)}")
    dom, dow = fields[2], fields[4]
    if (dom == "?") == (dow == "?"):
        raise ScheduleError("exactly one of day-of-month and day-of-week must be '?'")
    expanded: list[frozenset[int] | None] = []
    for text, f in zip(fields, CRON_FIELDS, strict=True):
        if text == "?":
            if not f.question:
                raise ScheduleError(f"{f.name}: '?' is only allowed in day-of-month or day-of-week")
            expanded.append(None)
            continue
        items = text.split(",")
        if f.name == "day-of-week" and "#" in text and len(items) > 1:
            raise ScheduleError("day-of-week: a '#' item must be the only one")
        values: set[int] | None = set()
        for item in items:
            got = _cron_item(item, f)
            values = None if got is None or values is None else values | got
        expanded.append(frozenset(values) if values is not None else None)
    return Schedule(cron=tuple(expanded), fields=tuple(fields))


def interval_s(schedule: Schedule) -> int | None:
    """The time between two runs when it is constant (rate, or a cron firing every hour of every day at evenly
    spaced minutes); None otherwise."""
    gap = max_gap_s(schedule)
    if gap is None or schedule.rate_s is not None:
        return gap
    assert schedule.cron is not None and schedule.cron[0] is not None
    return gap if len(schedule.cron[0]) * gap == 3600 else None


def max_gap_s(schedule: Schedule) -> int | None:
    """Longest time between two runs, when it can be told from the expression alone (None otherwise)."""
    if schedule.rate_s is not None:
        return schedule.rate_s
    assert schedule.cron is not None
    minutes, hours, dom, month, dow, year = schedule.cron
    every = (minutes is not None and hours == frozenset(range(24)) and month == frozenset(range(1, 13))
             and year == frozenset(range(1970, 2200))
             and (dom == frozenset(range(1, 32)) or dow == frozenset(range(1, 8))))
    if not every or minutes is None:
        return None
    ordered = sorted(minutes)
    gaps = [b - a for a, b in itertools.pairwise(ordered)] + [ordered[0] + 60 - ordered[-1]]
    return max(gaps) * 60


# ------------------------------------------------------------------ when a schedule fires (EventBridge, UTC)
# A recurring job that fires less often than once a year (`cron(0 3 29 2 ? *)`), or never again (a past year,
# `cron(0 3 31 2 ? *)`), is a schedule that does not do its job.
SCHEDULE_HORIZON_DAYS = 2 * 366
MAX_SCHEDULE_GAP_S = 366 * 86400


def _eb_weekday(day: dt.date) -> int:
    return (day.weekday() + 1) % 7 + 1  # EventBridge: SUN=1 .. SAT=7; Python: MON=0 .. SUN=6


def _dom_matches(text: str, f: CronField, day: dt.date) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    for item in text.split(","):
        if item == "L":
            if day.day == last:
                return True
        elif item.startswith("L-"):
            if day.day == last - int(item[2:]):
                return True
        elif item.endswith("W"):  # the weekday (MON-FRI) nearest to day N (LW: to the last day), same month
            target = last if item == "LW" else min(int(item[:-1]), last)
            wd = dt.date(day.year, day.month, target).weekday()
            if wd == 5:
                target = target - 1 if target > 1 else target + 2
            elif wd == 6:
                target = target + 1 if target < last else target - 2
            if day.day == target:
                return True
        elif day.day in (_cron_item(item, f) or set()):
            return True
    return False


def _dow_matches(text: str, f: CronField, day: dt.date) -> bool:
    weekday = _eb_weekday(day)
    last = calendar.monthrange(day.year, day.month)[1]
    for item in text.split(","):
        if item == "L":
            if weekday == 7:
                return True
        elif "#" in item:
            head, _, nth = item.partition("#")
            if weekday == _number(head, f) and (day.day - 1) // 7 + 1 == int(nth):
                return True
        elif item.endswith("L"):
            if weekday == _number(item[:-1], f) and day.day + 7 > last:
                return True
        elif weekday in (_cron_item(item, f) or set()):
            return True
    return False


def fire_gaps_s(schedule: Schedule, now: dt.datetime | None = None) -> tuple[int | None, int]:
    """(first fire after `now` in seconds or None if it never fires within SCHEDULE_HORIZON_DAYS, the longest
    time without a fire over that horizon, counting the horizon's end)."""
    if schedule.rate_s is not None:
        return schedule.rate_s, schedule.rate_s
    assert schedule.cron is not None and len(schedule.fields) == 6
    start = (now or dt.datetime.now(dt.UTC)).replace(second=0, microsecond=0, tzinfo=None)
    minutes, hours, _, months, _, years = schedule.cron
    dom_text, dow_text = schedule.fields[2], schedule.fields[4]
    assert minutes is not None and hours is not None and months is not None and years is not None
    times = sorted(h * 60 + m for h in hours for m in minutes)  # minutes after midnight
    day_gap = max((b - a for a, b in itertools.pairwise(times)), default=0) * 60
    fires_first: int | None = None
    previous_last: dt.datetime | None = None
    longest = day_gap
    for offset in range(SCHEDULE_HORIZON_DAYS + 1):
        day = start.date() + dt.timedelta(days=offset)
        if day.year not in years or day.month not in months:
            continue
        on_day = (_dow_matches(dow_text, CRON_FIELDS[4], day) if dom_text == "?"
                  else _dom_matches(dom_text, CRON_FIELDS[2], day))
        if not on_day:
            continue
        midnight = dt.datetime.combine(day, dt.time())
        stamps = [midnight + dt.timedelta(minutes=t) for t in times if midnight + dt.timedelta(minutes=t) >= start]
        if not stamps:
            continue
        if fires_first is None:
            fires_first = int((stamps[0] - start).total_seconds())
            longest = max(longest, fires_first)
        elif previous_last is not None:
            longest = max(longest, int((stamps[0] - previous_last).total_seconds()))
        previous_last = stamps[-1]
    end = start + dt.timedelta(days=SCHEDULE_HORIZON_DAYS)
    if previous_last is not None:
        longest = max(longest, int((end - previous_last).total_seconds()))
    return fires_first, longest


def schedule_problem(text: str, now: dt.datetime | None = None) -> str | None:
    """Why EventBridge refuses an expression, or why it does not work as a recurring schedule."""
    try:
        schedule = parse_schedule(text)
    except ScheduleError as err:
        return str(err)
    first, longest = fire_gaps_s(schedule, now)
    years = schedule.cron[5] if schedule.cron else None
    start = now or dt.datetime.now(dt.UTC)
    horizon = range(start.year, (start + dt.timedelta(days=SCHEDULE_HORIZON_DAYS)).year + 1)
    if first is not None and years is not None and not all(y in years for y in horizon):
        return (f"the year field stops it: it fires in {min(years)}-{max(years)} only (a recurring job must keep "
                "running: use *)")
    if first is None:
        return f"never fires in the next {SCHEDULE_HORIZON_DAYS} days (a date that does not exist, or a past year)"
    if longest > MAX_SCHEDULE_GAP_S:
        return (f"goes {longest // 86400} days without firing (a recurring job needs to run at least once a year; "
                "a year field that ends stops it)")
    return None


def is_schedule(text: str) -> bool:
    return schedule_problem(text) is None


def is_time_zone(text: str) -> bool:
    """An IANA time zone name of the tz database (what PagerDuty's time_zone fields take), e.g. Europe/Berlin."""
    return full(r"[A-Za-z0-9_+/-]{1,64}", text) and text in _time_zones()


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone_problem(text: str) -> str | None:
    if not _time_zones():
        return "this machine has no time zone database: install the tzdata package (Debian or PyPI)"
    return None


def is_rfc3339(text: str) -> bool:
    """A date and time with seconds and an explicit offset (Z or +HH:MM), as PagerDuty's API takes them."""
    if not full(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})", text):
        return False
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


# An Auto Scaling group name: ASCII 33-126 without a colon, 1-255 characters (AWS Auto Scaling API reference,
# CreateAutoScalingGroup: "You cannot use a colon (:) in the name").
ASG_NAME_PATTERN = r"^[!-9;-~]{1,255}$"


# PagerDuty object ids (users, teams, schedules): upper-case letters and digits, P followed by six in older
# accounts (PXPGF42), longer ids starting with P or Q in newer ones. Emails and names are not ids.
PAGERDUTY_ID = r"[PQ][A-Z0-9]{6,19}"


@dataclass(frozen=True)
class Format:
    doc: str
    check: Callable[[str], bool]
    # A more precise reason than `doc` for a given value (schedules say which field is wrong).
    why: Callable[[str], str | None] | None = None


FORMATS: dict[str, Format] = {
    "aws_region": Format("an AWS commercial region (formats.AWS_REGIONS)", lambda s: s in AWS_REGIONS,
                         lambda s: "known: " + ", ".join(AWS_REGIONS)),
    "dns_name": Format("a DNS host name (labels of letters, digits and inner hyphens, 253 characters at most)",
                       is_dns_name),
    "url": Format("an http(s) URL: 1-2048 printable ASCII characters without spaces, a valid host name or a "
                  "reachable IP, a port in 1-65535, no credentials",
                  lambda s: is_url(s, ("http", "https")), lambda s: url_problem(s, ("http", "https"))),
    "https_url": Format("an https URL: 1-2048 printable ASCII characters without spaces, a valid host name or a "
                        "reachable IP, a port in 1-65535, no credentials",
                        lambda s: is_url(s, ("https",)), lambda s: url_problem(s, ("https",))),
    "prometheus_url": Format("a Prometheus HTTP API base URL: http(s), a reachable host and port, no query; for "
                             "Amazon Managed Prometheus https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>",
                             lambda s: prometheus_url_problem(s) is None, prometheus_url_problem),
    "cloudwatch_namespace": Format("a CloudWatch namespace to publish to: 1-255 printable ASCII characters, not "
                                   "starting with ':' or the reserved 'AWS/'",
                                   lambda s: namespace_problem(s, publishing=True) is None,
                                   lambda s: namespace_problem(s, publishing=True)),
    "s3_name_prefix": Format("a prefix of S3 bucket names: not one S3 reserves (xn--, sthree-, amzn-s3-demo-)",
                             lambda s: s3_prefix_problem(s + "-") is None, lambda s: s3_prefix_problem(s + "-")),
    "k8s_namespace": Format("a DNS-1123 label: 1-63 lower-case letters, digits and inner hyphens",
                            lambda s: full(_K8S_DNS_LABEL, s)),
    "k8s_name": Format("a DNS-1123 subdomain: lower-case labels of letters, digits and inner hyphens, "
                       "253 characters at most", is_k8s_subdomain),
    "k8s_label_key": Format("a Kubernetes label/annotation key: [DNS-1123 prefix/]name, name 1-63 characters "
                            "of letters, digits and inner '-_.'", is_k8s_label_key),
    "k8s_label_value": Format("a Kubernetes label value: empty or 1-63 letters, digits and inner '-_.'",
                              is_k8s_label_value),
    "emf_dimension_value": Format("a CloudWatch dimension value: 1-1024 printable ASCII characters, not blank",
                                  is_emf_dimension_value),
    "query": Format("a non-blank query of printable ASCII (tabs and newlines allowed), 10,000 characters at most",
                    is_query),
    "edge_probe_text": Format("a text the edge function embeds: not blank, valid Unicode (no lone surrogates), "
                              "within its size limit", lambda s: edge_text_problem(s) is None, edge_text_problem),
    "printable": Format("1-1024 printable ASCII characters, no leading or trailing blank",
                        lambda s: full(r"[!-~](?:[ -~]{0,1022}[!-~])?", s)),
    "schedule": Format("an EventBridge schedule: rate(1 minute|hour|day), rate(N minutes|hours|days) with N > 1, "
                       "or cron(minutes hours day-of-month month day-of-week year) with '?' in exactly one of the "
                       "two day fields, firing at least once a year", is_schedule, schedule_problem),
    "time_zone": Format("an IANA time zone name, e.g. UTC, Europe/Berlin, America/New_York", is_time_zone,
                        time_zone_problem),
    "rfc3339": Format("a date and time with seconds and an offset, e.g. 2026-01-05T09:00:00Z or "
                      "2026-01-05T09:00:00+01:00", is_rfc3339),
    "pagerduty_id": Format("a PagerDuty object id: P or Q and 6-19 upper-case letters or digits, e.g. PXPGF42 "
                           "(an id from the PagerDuty URL or API, not an email or a name)",
                           lambda s: full(PAGERDUTY_ID, s)),
}
