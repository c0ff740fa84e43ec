"""The drill's daemon configs: the SHIPPED Alertmanager config with only endpoints, secret file paths and the
maintenance window's times replaced (set to contain now for a maintenance scenario, to lie days away from now for
every other: the shipped window, Tuesdays 02:00-03:00 UTC, muted a drill run then), the SHIPPED rule files as they
are, and a structural diff that proves nothing else differs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from infra.core.paths import RULES_DIR

SHIPPED_ALERTMANAGER = RULES_DIR / "alertmanager" / "alertmanager-paging.yml"
SHIPPED_RULES = tuple(sorted((RULES_DIR / "prometheus").glob("*.yml")))
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Where a difference from the shipped config is allowed (a path of keys, `*` for any list index).
ENDPOINT_PATHS = (
    ("receivers", "*", "webhook_configs", "*", "url"),
    ("receivers", "*", "slack_configs", "*", "api_url_file"),
    ("receivers", "*", "pagerduty_configs", "*", "routing_key_file"),
    ("receivers", "*", "pagerduty_configs", "*", "url"),  # Events API v2 endpoint (default: PagerDuty's)
    ("receivers", "*", "sns_configs", "*", "api_url"),  # SNS endpoint (default: the region's)
)
MAINTENANCE_PATHS = (("time_intervals", "*", "time_intervals"),)


@dataclass(frozen=True)
class Endpoints:
    pagerduty_url: str
    slack_url_file: Path
    tickets_url: str
    routing_key_file: Path
    sns_url: str


def maintenance_now(now: datetime) -> list[dict[str, Any]]:
    """Alertmanager time_intervals containing `now` (UTC): from an hour before it to the end of its day, and the
    next day's first hour (a drill that runs over midnight stays inside)."""
    start = max(now - timedelta(hours=1), now.replace(hour=0, minute=0, second=0, microsecond=0))
    tomorrow = now + timedelta(days=1)
    return [{"weekdays": [WEEKDAYS[now.weekday()]],
             "times": [{"start_time": start.strftime("%H:%M"), "end_time": "24:00"}]},
            {"weekdays": [WEEKDAYS[tomorrow.weekday()]], "times": [{"start_time": "00:00", "end_time": "01:00"}]}]


def maintenance_away(now: datetime) -> list[dict[str, Any]]:
    """Alertmanager time_intervals three days from `now` (UTC), the first hour of that day: a drill that starts
    now ends before it."""
    return [{"weekdays": [WEEKDAYS[(now + timedelta(days=3)).weekday()]],
             "times": [{"start_time": "00:00", "end_time": "01:00"}]}]


def drill_alertmanager(shipped: dict[str, Any], endpoints: Endpoints, *, now: datetime,
                       maintenance: bool) -> dict[str, Any]:
    """A copy of `shipped` whose endpoints and secret files are the drill's (see ENDPOINT_PATHS) and whose
    maintenance window contains `now` when `maintenance`, else lies days away from it (a drill's outage must not
    fall into the shipped window by the hour it happens to run)."""
    doc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(shipped))
    for receiver in doc["receivers"]:
        for c in receiver.get("webhook_configs", []):
            c["url"] = endpoints.tickets_url
        for c in receiver.get("slack_configs", []):
            c["api_url_file"] = str(endpoints.slack_url_file)
        for c in receiver.get("pagerduty_configs", []):
            c["routing_key_file"] = str(endpoints.routing_key_file)
            c["url"] = endpoints.pagerduty_url
        for c in receiver.get("sns_configs", []):
            c["api_url"] = endpoints.sns_url
    for interval in doc.get("time_intervals", []):
        at = now.astimezone(UTC)
        interval["time_intervals"] = maintenance_now(at) if maintenance else maintenance_away(at)
    return doc


def differences(a: Any, b: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """Every (path, value in a, value in b) where two YAML documents differ (list indices as strings)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                yield (*path, str(key)), a.get(key), b.get(key)
            else:
                yield from differences(a[key], b[key], (*path, str(key)))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differences(x, y, (*path, str(i)))
    elif a != b:
        yield path, a, b


def _matches(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether `path` is `pattern` or lies under it (the window's times differ leaf by leaf when the drill's list
    of intervals is as long as the shipped one)."""
    return len(path) >= len(pattern) and all((p == "*" and re.fullmatch(r"\d+", k)) or p == k
                                             for k, p in zip(path, pattern, strict=False))


def unexpected_differences(shipped: dict[str, Any], drill: dict[str, Any]) -> list[str]:
    """What differs between the shipped and the drill config beyond endpoints, secret files and the maintenance
    window's times: empty when the drill runs what ships."""
    allowed = ENDPOINT_PATHS + MAINTENANCE_PATHS
    return [f"{'.'.join(p)}: {old!r} -> {new!r}" for p, old, new in differences(shipped, drill)
            if not any(_matches(p, pattern) for pattern in allowed)]


def prometheus_config(*, exporter_target: str, instance: str, alertmanager_url: str, scrape_interval_s: int,
                      evaluation_interval_s: int) -> dict[str, Any]:
    """Prometheus scraping the synthetic akidb-rest as job akidb-rest, the shipped rule files, one Alertmanager.
    The target's `instance` label is fixed (a target label set in the config wins over the address), so one
    backfilled history continues in every scenario's Prometheus whatever port its exporter got."""
    return {
        "global": {"scrape_interval": f"{scrape_interval_s}s", "evaluation_interval": f"{evaluation_interval_s}s",
                   "scrape_timeout": f"{min(scrape_interval_s, 10)}s"},
        "rule_files": [str(p) for p in SHIPPED_RULES],
        "scrape_configs": [{"job_name": "akidb-rest", "static_configs": [{"targets": [exporter_target],
                                                                       "labels": {"instance": instance}}]}],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager_url.removeprefix("http://")]}]}]},
    }


def load_shipped() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
    return doc
