"""Synthetic probes' settings (the `synthetics` section): CloudWatch Synthetics canaries that see the edge and the
REST tier from outside, like a user (infra/components/synthetics.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.config.schema import AWS_REGION_PATTERN, Problem, setting

# Synthetics runtimes accepted here: the Python 3.12 generation of syn-python-selenium (12.0 to 14.0, the newest
# listed on the AWS "Runtime versions using Python and Selenium Webdriver" page); older ones run Python 3.9/3.11.
CANARY_RUNTIMES = ("syn-python-selenium-12.0", "syn-python-selenium-13.0", "syn-python-selenium-14.0")
# A canary period this code can turn into an alarm period: rate(N minutes) or rate(1 hour).
CANARY_SCHEDULE_PATTERN = r"^rate\((1 minute|[2-9] minutes|[1-5][0-9] minutes|60 minutes|1 hour)\)$"
URL_PATTERN = r"^https://[A-Za-z0-9.-]+(:\d+)?(/[\w./-]*)?$"


def schedule_minutes(expression: str) -> int:
    """Minutes between runs of a canary schedule that matched CANARY_SCHEDULE_PATTERN."""
    m = re.match(r"^rate\((\d+) (minute|minutes|hour)\)$", expression)
    if m is None:
        raise ValueError(f"canary schedule {expression!r}: expected rate(N minutes) or rate(1 hour)")
    return int(m.group(1)) * (60 if m.group(2) == "hour" else 1)


@dataclass(frozen=True)
class SyntheticsConfig:
    enabled: bool = setting(True, doc="deploy CloudWatch Synthetics canaries from every probe region")
    probe_regions: list[str] = setting(default_factory=lambda: ["us-east-1"], min_items=1, pattern=AWS_REGION_PATTERN,
                                       doc="regions a canary probes from (one canary per region)")
    schedule: str = setting("rate(5 minutes)", doc="canary schedule (also the alarm period)",
                            pattern=CANARY_SCHEDULE_PATTERN)
    runtime_version: str = setting("syn-python-selenium-14.0", doc="Synthetics runtime", choices=CANARY_RUNTIMES)
    edge_url: str | None = setting(None, pattern=URL_PATTERN, format="https_url",
                                   doc="base URL of the CloudFront distribution serving POST /embed (default: the "
                                       "distribution emf-edge creates; none: no edge probe)")
    rest_url: str | None = setting(None, pattern=URL_PATTERN, format="https_url",
                                   doc="base URL of the REST tier (none: no health probe)")
    health_paths: list[str] = setting(default_factory=lambda: ["/health/live", "/health/ready"],
                                      pattern=r"^/[\w./-]*$", doc="REST health endpoints probed with GET")
    embed_text: str = setting("AkiDB synthetic probe: is the edge embedding endpoint answering?",
                              pattern=r"^[^\x00-\x1f]{1,500}$", format="edge_probe_text",
                              doc="fixed sentence POSTed to /embed")
    embed_dimensions: int = setting(384, doc="floats the embedding must have", minimum=1, maximum=4096)
    max_latency_ms: int = setting(3000, doc="a check slower than this fails (seen from the probe region)",
                                  minimum=50, maximum=60000)
    timeout_s: int = setting(60, doc="canary run timeout", minimum=3, maximum=840)
    memory_mb: int = setting(960, doc="canary memory (Synthetics minimum 960)", minimum=960, maximum=3008)
    artifact_expiration_days: int = setting(30, doc="days canary artifacts (logs, HAR) stay in S3",
                                            minimum=1, maximum=455)
    success_retention_days: int = setting(7, doc="days successful run records are kept", minimum=1, maximum=455)
    failure_retention_days: int = setting(31, doc="days failed run records are kept", minimum=1, maximum=455)
    evaluation_periods: int = setting(3, doc="runs an availability alarm looks at (N of M-of-N)", minimum=1,
                                      maximum=60)
    datapoints_to_alarm: int = setting(2, doc="failed runs among them that fire it (M of M-of-N)", minimum=1,
                                       maximum=60)


def cross_field_problems(s: SyntheticsConfig, ns: str, *, stack_distribution: bool) -> list[Problem]:
    """Rules of the section no single field can check (`stack_distribution`: emf-edge creates one). Probe regions
    are alarm regions (StackConfig.alarm_regions), so each has its severity topics."""
    p: list[Problem] = []
    key = f"{ns}:synthetics"
    if s.enabled and not (s.edge_url or stack_distribution or s.rest_url):
        p.append(Problem(f"{key}.edgeUrl", None, "set edgeUrl and/or restUrl (https://...), or disable synthetics: "
                                                 "a canary needs something to probe"))
    if len(set(s.probe_regions)) != len(s.probe_regions):
        p.append(Problem(f"{key}.probeRegions", s.probe_regions, "regions must be distinct"))
    if s.datapoints_to_alarm > s.evaluation_periods:
        p.append(Problem(f"{key}.datapointsToAlarm", s.datapoints_to_alarm,
                         f"must be <= evaluationPeriods ({s.evaluation_periods})"))
    minutes = schedule_minutes(s.schedule)
    if minutes * 60 * s.evaluation_periods > 86400:
        p.append(Problem(f"{key}.evaluationPeriods", s.evaluation_periods,
                         f"schedule period x evaluationPeriods must be <= 1 day ({minutes} min per run)"))
    if s.timeout_s > minutes * 60:
        p.append(Problem(f"{key}.timeoutS", s.timeout_s, f"must not exceed the schedule's {minutes * 60} s"))
    if len(set(s.health_paths)) != len(s.health_paths):
        p.append(Problem(f"{key}.healthPaths", s.health_paths, "paths must be distinct"))
    return p
