"""The drill's scenario catalogue, as data: what the synthetic akidb-rest does over time and what must follow.

A scenario is a healthy baseline, then a fault held for `fault_s` (or until the expected page arrives, plus
`hold_after_page_s`), then recovery. Times are seconds from the fault's start. Expectations are counts of pages
(PagerDuty incidents) per outage, which alerts must fire, and whether the heartbeat must keep reaching SNS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Healthy traffic of the synthetic service: enough that every tier's min-events guard (1000 requests in the long
# window) holds, and a latency profile well inside the 30 ms objective.
BASE_RPS = 50.0


@dataclass(frozen=True)
class Traffic:
    """What akidb-rest answers: requests per second, the share of 5xx, the share slower than the SLO threshold."""

    rps: float = BASE_RPS
    error_ratio: float = 0.0
    slow_ratio: float = 0.0
    up: bool = True  # False: the exporter stops answering (the scrape fails, up == 0)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    fault: Traffic
    # The alerts that must fire in Prometheus (alertname) and the pages PagerDuty must open (one per outage).
    expect_firing: tuple[str, ...] = ()
    expect_pages: int = 1
    # Hold the fault at least this long (s); the page must arrive within `page_timeout_s` of the fault's start
    # (with no page expected: the fault is held `fault_s`, then the run watches until `page_timeout_s`).
    fault_s: float = 0.0
    page_timeout_s: float = 420.0
    # After the page (or after fault_s when no page is expected) keep the fault this long, then recover.
    hold_after_page_s: float = 0.0
    # Wait this long for PagerDuty's resolve after recovery (0: do not wait for it).
    resolve_timeout_s: float = 240.0
    # A maintenance window containing now (Alertmanager's time_intervals), the service's pages muted.
    maintenance: bool = False
    # The PagerDuty stand-in signs its webhooks with a secret the webhook does not have.
    wrong_webhook_secret: bool = False
    # Stop Alertmanager at the fault (the dead-man's switch must notice the silence).
    stop_alertmanager: bool = False
    # Backfill history for the TrafficDrop baseline (the same time a day and a week ago).
    backfill_baseline: bool = False
    # Healthy history before the fault (s), backfilled with promtool so every window starts full (the longest
    # burn-rate window is the ticket-slow tier's 3 days; the 30-day budget gauges read what there is).
    history_s: float = 3 * 86400.0 + 3600.0
    expect_heartbeat: bool = True
    # Alerts that must fire and be held back by an inhibition in Alertmanager (never paged).
    expect_inhibited: tuple[str, ...] = ()
    # With no page expected: end once the alerts have sat in Alertmanager this long unpaged (and, in a
    # maintenance window, a heartbeat went out), instead of watching until `page_timeout_s`.
    quiet_after_alert_s: float = 0.0
    # The webhook's first answer to each page arrives after PagerDuty's 5 s timeout: PagerDuty retries the
    # delivery the webhook already processed (exactly-once, end to end).
    late_first_answer: bool = False
    # The anomaly detector (from its zip) watches this scenario's Prometheus; its episode notice must reach the
    # ticket stand-in through the anomaly topic (and, with resolves awaited, its recovery notice too).
    anomaly: bool = False
    # After the page and `hold_after_page_s`, the scrape target disappears for this long (its exporter stops
    # answering, the fault goes on), comes back with the fault still on and is watched `after_gap_s` before the
    # recovery: the SLO page must stay firing in Prometheus through the gap, get no resolve and no second trigger.
    gap_s: float = 0.0
    after_gap_s: float = 0.0
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


SERVICE_DOWN = "ServiceDown"
BURN = "SLOErrorBudgetBurn"
TRAFFIC_DROP = "TrafficDrop"

CATALOGUE: tuple[Scenario, ...] = (
    # A full outage's P0 group holds page-fast (1h/5m windows): it resolves once the 5m window is clean again.
    Scenario("outage", "Full outage: every request answers 5xx; the webhook's first answer comes too late "
             "(PagerDuty retries: one runbook action)", Traffic(error_ratio=1.0),
             expect_firing=(BURN,), resolve_timeout_s=480.0, late_first_answer=True, tags=("short",)),
    Scenario("service-down", "ServiceDown: no target answers its scrape (one page)",
             Traffic(up=False), expect_firing=(SERVICE_DOWN,), tags=("short",)),
    # Watched 30 s after the alerts reached Alertmanager (the P0 route's group_wait is 5 s: the unmuted outage
    # pages 5 s after), and until a heartbeat went out inside the window.
    Scenario("maintenance", "Full outage inside a maintenance window: muted, the heartbeat still goes out",
             Traffic(error_ratio=1.0), expect_firing=(BURN,), expect_pages=0, maintenance=True,
             page_timeout_s=180.0, quiet_after_alert_s=30.0, tags=("short",)),
    # The SLO alerts a dark service fires: without scrapes the burn-rate rules have no data, the SLO meta alert
    # SLOMetricAbsent (for: 10m) fires and is inhibited by ServiceDown; ServiceDown's is the only page.
    Scenario("service-down-inhibits", "ServiceDown held until the SLO alert it explains fires, inhibited",
             Traffic(up=False), expect_firing=(SERVICE_DOWN, "SLOMetricAbsent"),
             expect_inhibited=("SLOMetricAbsent",), page_timeout_s=900.0, resolve_timeout_s=0.0),
    # Gaps in the data are not recoveries (rules/prometheus/slo.rules.yml, GAP_HOLD 10m): the target leaves for
    # 10 minutes in the middle of an outage. ServiceDown pages for the dark target (its own incident, and it
    # inhibits the SLO alerts in Alertmanager meanwhile); the SLO page is one incident, triggered once, open
    # until the recovery; in Prometheus the burn alert is firing at every poll of the gap.
    Scenario("outage-scrape-gap", "Full outage; the target is gone for 10 minutes of it: the SLO page holds",
             Traffic(error_ratio=1.0), expect_firing=(BURN, SERVICE_DOWN), expect_pages=2,
             hold_after_page_s=60.0, gap_s=600.0, after_gap_s=150.0, page_timeout_s=1200.0,
             resolve_timeout_s=480.0),
    Scenario("errors-5pct", "5% of requests answer 5xx", Traffic(error_ratio=0.05), expect_firing=(BURN,),
             resolve_timeout_s=480.0),
    Scenario("latency-brownout", "5% of requests slower than 30 ms", Traffic(slow_ratio=0.05),
             expect_firing=(BURN,)),
    Scenario("burst-under-budget", "5% errors for 2 minutes (0.46% of the budget): no page",
             Traffic(error_ratio=0.05), expect_pages=0, fault_s=120.0, page_timeout_s=420.0,
             notes="watched for 7 minutes after the fault's start"),
    Scenario("traffic-drop", "Requests fall to 5% of a day and a week ago while targets are up",
             Traffic(rps=BASE_RPS * 0.05), expect_firing=(TRAFFIC_DROP,), backfill_baseline=True,
             page_timeout_s=720.0, resolve_timeout_s=360.0),  # P1's group_interval (5m) paces the resolve
    # A surge no SLO rule pages on: the detector's request_rate leaves its forecast band; the episode notice goes
    # to the anomaly topic, whose only subscriber is the ticket webhook; the P1 page alarm needs 30 minutes.
    Scenario("anomaly-episode", "Requests surge to 4x the forecast: an anomaly episode reaches the ticket webhook",
             Traffic(rps=BASE_RPS * 4), expect_pages=0, anomaly=True, page_timeout_s=240.0,
             resolve_timeout_s=600.0, tags=("short",)),
    Scenario("alertmanager-stopped", "Alertmanager stopped: the heartbeat stops reaching SNS",
             Traffic(), expect_pages=0, stop_alertmanager=True, fault_s=200.0, page_timeout_s=200.0,
             expect_heartbeat=False),
    Scenario("wrong-webhook-secret", "Full outage, the PagerDuty webhook signed with a wrong secret: 401s",
             Traffic(error_ratio=1.0), expect_firing=(BURN,), wrong_webhook_secret=True, resolve_timeout_s=0.0),
)

SHORT = tuple(s for s in CATALOGUE if "short" in s.tags)


def by_name(names: str) -> tuple[Scenario, ...]:
    """The scenarios named in a comma-separated list ("all" and "short" are the whole catalogue and the subset)."""
    if names == "all":
        return CATALOGUE
    if names == "short":
        return SHORT
    known = {s.name: s for s in CATALOGUE}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown) or '(none given)'}; known: all, short, "
                         + ", ".join(known))
    return tuple(known[n] for n in wanted)
