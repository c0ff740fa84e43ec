"""Alertmanager routing generated for the SLO and symptom alerts: P0/P1 to PagerDuty, P2 to tickets and chat,
informational alerts to chat, the heartbeat to the dead-man's switch; with paging off, pages become tickets.
Maintenance windows mute a service's alerts (time_intervals); a ServiceDown inhibits what it explains.

The dead-man's switch is the stack's own: the always-firing heartbeat is published to an SNS topic of the stack
(`sns_configs`, SigV4 with the SDK's default credential chain: the IRSA role of Alertmanager's service account,
no key in the config) whose `NumberOfMessagesPublished` a CloudWatch alarm watches, missing data breaching
(infra/components/alerting_path.py). Without it (`heartbeat=None`) the heartbeat goes to an external webhook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.slo.spec import ABSENT_ALERT, BUCKET_ALERT, BURN_ALERT, DEFAULT_LINKS, HEARTBEAT_ALERT, LinkSettings, Slo
from infra.slo.symptoms import SERVICE_DOWN_ALERT, SymptomSpec, explained_by_service_down

# Alertmanager receivers (names are what `amtool config routes test --verify.receivers` checks).
RECEIVER_P0 = "pagerduty-critical"
RECEIVER_P1 = "pagerduty-error"
RECEIVER_TICKETS = "tickets"
RECEIVER_HEARTBEAT = "deadmans-switch"
RECEIVER_CHAT = "chat"
# A deliberate silence: a receiver with no integration (kube-prometheus-stack's Watchdog and InfoInhibitor fire
# always; our own heartbeat is the dead-man's switch, so theirs goes nowhere on purpose).
RECEIVER_NULL = "null"
# Whatever carries a severity no route knows (a typo such as `p0`, a misspelt key such as `sevrity`, another chart's
# scale): tickets and chat under a receiver name that says so, never a silent ticket.
RECEIVER_UNROUTED = "unrouted-severity"
# Severities of our own rules (rules/slos.yaml, rules/symptoms.yaml).
OWN_SEVERITIES = ("P0", "P1", "P2", "info")
# kube-prometheus-stack's rules label severity critical, warning, info or none; its Watchdog and InfoInhibitor
# always fire. A custom Alertmanager config replaces the chart's routes, so each is routed here deliberately.
# https://github.com/prometheus-community/helm-charts/tree/main/charts/kube-prometheus-stack (values.yaml,
# alertmanager.config) and https://runbooks.prometheus-operator.dev/runbooks/general/watchdog/
CHART_SEVERITIES = ("critical", "warning", "none")
CHART_ALWAYS_FIRING = ("Watchdog", "InfoInhibitor")
KNOWN_SEVERITIES = (*OWN_SEVERITIES, *CHART_SEVERITIES)
# Where the prometheus-operator mounts Secrets listed in the Alertmanager's spec.secrets.
ROUTING_KEY_SECRET = "alertmanager-pagerduty"
ROUTING_KEY_FILE = f"/etc/alertmanager/secrets/{ROUTING_KEY_SECRET}/routing-key"
# P1's own key, when PagerDuty is managed by the stack (infra/components/pagerduty.py): P1 pages a service of its
# own, whose urgency may follow support hours while P0's is always high.
P1_ROUTING_KEY_FILE = f"/etc/alertmanager/secrets/{ROUTING_KEY_SECRET}/routing-key-p1"
SLACK_SECRET = "alertmanager-slack"
SLACK_URL_FILE = f"/etc/alertmanager/secrets/{SLACK_SECRET}/webhook-url"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# The heartbeat's route: sent at once and re-sent every minute while it fires. Alertmanager re-sends a group only
# when repeat_interval has passed at a group_interval tick, so in practice one notification every 1-2 minutes:
# each 5-minute alarm period holds at least two.
HEARTBEAT_TIMING = {"group_wait": "0s", "group_interval": "1m", "repeat_interval": "1m"}


@dataclass(frozen=True)
class SnsHeartbeat:
    """The stack's heartbeat receiver: an SNS topic Alertmanager publishes to with SigV4."""

    topic_arn: str
    region: str


# What the checked-in configs carry (so amtool checks the sns_configs syntax); stacks pass their own topic.
# (detect-secrets reads "<12 digits>:<name>" as a Telegram bot token.)
EXAMPLE_TOPIC = "arn:aws:sns:us-east-1:123456789012:akidb-example-alertmanager-heartbeat"  # pragma: allowlist secret
EXAMPLE_HEARTBEAT = SnsHeartbeat(EXAMPLE_TOPIC, "us-east-1")


@dataclass(frozen=True)
class Maintenance:
    """A recurring window (UTC) in which one service's alerts are muted."""

    service: str
    weekdays: tuple[str, ...]
    start: str
    end: str


# The window the checked-in configs carry (so amtool checks the time_intervals syntax); stacks set their own
# with sloAlerting.maintenanceWindows.
EXAMPLE_MAINTENANCE = (Maintenance("akidb-rest", ("tuesday",), "02:00", "03:00"),)


def maintenance_interval_name(service: str) -> str:
    return f"maintenance-{service}"


def alertmanager_config(slos: Sequence[Slo], links: LinkSettings = DEFAULT_LINKS, *, paging: bool,
                        routing_key_file: str = ROUTING_KEY_FILE, p1_routing_key_file: str | None = None,
                        chat: bool = True,
                        slack_url_file: str = SLACK_URL_FILE,
                        maintenance: Sequence[Maintenance] = EXAMPLE_MAINTENANCE,
                        heartbeat: SnsHeartbeat | None = EXAMPLE_HEARTBEAT,
                        symptoms: SymptomSpec | None = None) -> dict[str, Any]:
    """P0 -> PagerDuty critical, P1 -> PagerDuty error, P2 -> tickets and chat, info -> chat; with paging off,
    P0/P1 -> tickets (and chat). kube-prometheus-stack's severities: critical -> the P1 pager, warning -> tickets,
    info -> chat, none and Watchdog/InfoInhibitor -> `null` (deliberate silence); any other severity (or none at
    all) -> `unrouted-severity` (tickets and chat, titled so). Maintenance windows mute every route of the
    service's branch, never the heartbeat.

    No secret is in this text: `routing_key_file` and `slack_url_file` point to Secrets the component creates
    from Pulumi secrets and the Alertmanager mounts. Without a chat webhook (`chat=False`) there is no chat
    receiver and P2/info go to tickets only.
    """
    del slos  # the routes key on labels every generated alert carries; kept for symmetry with rule_files()

    def first(annotation: str) -> str:
        # A group (alertname, service, slo) may hold several tiers whose annotations differ, which empties
        # .CommonAnnotations: take the first alert's (same SLO, so the same runbook and dashboard).
        return f"{{{{ range $i, $a := .Alerts }}}}{{{{ if eq $i 0 }}}}{{{{ $a.Annotations.{annotation} }}}}" \
               "{{ end }}{{ end }}"

    # The first alert's start, ISO 8601 in UTC, as Go's time.Format writes it.
    started_at = ('{{ range $i, $a := .Alerts }}{{ if eq $i 0 }}'
                  '{{ $a.StartsAt.UTC.Format "2006-01-02T15:04:05Z07:00" }}{{ end }}{{ end }}')
    details = {
        "firing": "{{ .Alerts.Firing | len }}",
        "service": "{{ .CommonLabels.service }}",
        "slo": "{{ .CommonLabels.slo }}",
        # The incident timeline (lambdas/runbook_automation/timeline.py) correlates pages by these: time to detect
        # is the trigger minus the first alert's start.
        "severity": "{{ .CommonLabels.severity }}",
        "condition_started_at": started_at,
        "tiers": "{{ range .Alerts.Firing }}{{ .Labels.tier }} {{ end }}",
        "burn_rate": first("burn_rate"),
        "budget_consumed": first("budget_consumed"),
        "runbook_url": first("runbook_url"),
        "dashboard": first("dashboard"),
    }

    def pagerduty(severity: str, key_file: str) -> dict[str, Any]:
        return {"routing_key_file": key_file, "severity": severity, "send_resolved": True,
                # A V3 webhook's incident carries its title, not the event's custom details (PagerDuty's V3
                # incident object): the condition's start travels in the title too, for the timeline's time to
                # detect (lambdas/runbook_automation/timeline.py, START_MARK).
                "description": f"{first('summary')} [since:{started_at}]", "details": details,
                "links": [{"href": first("runbook_url"), "text": "runbook"},
                          {"href": first("dashboard"), "text": "dashboard"}]}

    page0 = RECEIVER_P0 if paging else RECEIVER_TICKETS
    page1 = RECEIVER_P1 if paging else RECEIVER_TICKETS
    def slack(title_prefix: str = "") -> dict[str, Any]:
        return {
            "api_url_file": slack_url_file, "channel": links.chat_channel, "send_resolved": True,
            "title": f"{title_prefix}[{{{{ .Status | toUpper }}}}] {{{{ .CommonLabels.severity }}}} "
                     "{{ .CommonLabels.alertname }} {{ .CommonLabels.service }}",
            "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
            "title_link": first("dashboard"),
            "actions": [{"type": "button", "text": "runbook", "url": first("runbook_url")},
                        {"type": "button", "text": "dashboard", "url": first("dashboard")}],
        }

    ticket = {"url": links.ticket_webhook_url, "send_resolved": True}
    unrouted: dict[str, Any] = {"name": RECEIVER_UNROUTED, "webhook_configs": [dict(ticket)]}
    if chat:
        unrouted["slack_configs"] = [slack("UNROUTED SEVERITY (known: " + ", ".join(KNOWN_SEVERITIES) + ") ")]
    receivers: list[dict[str, Any]] = [
        {"name": RECEIVER_TICKETS, "webhook_configs": [ticket]},
        heartbeat_receiver(links, heartbeat),
        {"name": RECEIVER_NULL},
        unrouted,
    ]
    if chat:
        receivers.append({"name": RECEIVER_CHAT, "slack_configs": [slack()]})
    if paging:
        receivers += [{"name": RECEIVER_P0, "pagerduty_configs": [pagerduty("critical", routing_key_file)]},
                      {"name": RECEIVER_P1, "pagerduty_configs": [
                          pagerduty("error", p1_routing_key_file or routing_key_file)]}]
    # P2 goes to the ticket system and, with `continue`, to chat as well.
    p2_continue = {"continue": True} if chat else {}
    severity_routes: list[dict[str, Any]] = [
        {"receiver": page0, "matchers": ['severity="P0"'],
         "group_wait": "5s", "group_interval": "1m", "repeat_interval": "1h"},
        {"receiver": page1, "matchers": ['severity="P1"'],
         "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
        {"receiver": RECEIVER_TICKETS, "matchers": ['severity="P2"'],
         "group_wait": "5m", "group_interval": "30m", "repeat_interval": "24h", **p2_continue},
    ]
    if chat:
        severity_routes += [
            {"receiver": RECEIVER_CHAT, "matchers": ['severity="P2"'],
             "group_wait": "5m", "group_interval": "30m", "repeat_interval": "24h"},
            {"receiver": RECEIVER_CHAT, "matchers": ['severity="info"'],
             "group_wait": "5m", "group_interval": "30m", "repeat_interval": "24h"},
        ]
    else:
        severity_routes.append({"receiver": RECEIVER_TICKETS, "matchers": ['severity="info"'],
                                "group_wait": "5m", "group_interval": "30m", "repeat_interval": "24h"})
    severity_routes += [
        # The chart's `critical` (KubeletDown, PrometheusRuleFailures, ...) pages P1, not P0: P0 is the
        # customer-facing outage our own ServiceDown and fast-burn alerts page, and when a platform fault hurts
        # users those page P0 themselves; a platform fault alone still reaches a person at once.
        {"receiver": page1, "matchers": ['severity="critical"'],
         "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
        {"receiver": RECEIVER_TICKETS, "matchers": ['severity="warning"'],
         "group_wait": "5m", "group_interval": "30m", "repeat_interval": "24h"},
        # The chart's `none` (Watchdog, InfoInhibitor only): a deliberate silence.
        {"receiver": RECEIVER_NULL, "matchers": ['severity="none"']},
    ]
    by_service: dict[str, list[Maintenance]] = {}
    for window in maintenance:
        by_service.setdefault(window.service, []).append(window)
    # A service with maintenance windows gets its own branch (the same severity routes, muted in its windows);
    # every other service falls through to the shared severity routes. The heartbeat is never muted.
    # Every child carries the mute itself: Alertmanager 0.25 does not inherit a parent's mute_time_intervals
    # (https://github.com/prometheus/alertmanager/issues/2833), so a mute on the branch alone mutes nothing.
    muted = [{"matchers": [f'service="{svc}"'], "mute_time_intervals": [maintenance_interval_name(svc)],
              "routes": [{**r, "mute_time_intervals": [maintenance_interval_name(svc)]} for r in severity_routes]}
             for svc in sorted(by_service)]
    explained = (BURN_ALERT, ABSENT_ALERT, BUCKET_ALERT, *explained_by_service_down(symptoms))
    config: dict[str, Any] = {
        "global": {"resolve_timeout": "5m"},
        "route": {
            # Only what no route below matches lands here: a severity nobody routes (see RECEIVER_UNROUTED).
            "receiver": RECEIVER_UNROUTED,
            "group_by": ["alertname", "service", "slo"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {"receiver": RECEIVER_HEARTBEAT, "matchers": [f'alertname="{HEARTBEAT_ALERT}"'],
                 **HEARTBEAT_TIMING},
                {"receiver": RECEIVER_NULL, "matchers": [f'alertname=~"{"|".join(CHART_ALWAYS_FIRING)}"']},
                *muted,
                *severity_routes,
            ],
        },
        "inhibit_rules": [
            # A P0 for a service+SLO already pages: its P1/P2 tiers would only repeat it. Only alerts that carry an
            # SLO: `equal` takes a label missing on both sides as equal (Alertmanager docs, inhibit_rule), so without
            # `slo=~".+"` a P0 without one (ServiceDown) silenced every P1/P2 of its service that has none either
            # (MemoryPressure, ProcessingBacklog, MemoryLeak), which nothing here explains.
            {"source_matchers": ['severity="P0"', 'slo=~".+"'], "target_matchers": ['severity=~"P1|P2"'],
             "equal": ["service", "slo"]},
            # A service that is down explains its burn-rate, absent-metric, traffic and target alerts: consequences
            # of no target answering. Not its memory or backlog alerts: memory comes from the kubelet and
            # kube-state-metrics, still scraped while the service's own targets are down, and pressure near the
            # limit is a likely cause (OOM kills take a service down); a backlog is the service's last state before
            # it fell over (overload), and resolves by itself once its series go stale. Both help the responder.
            {"source_matchers": [f'alertname="{SERVICE_DOWN_ALERT}"'],
             "target_matchers": [f'alertname=~"{"|".join(explained)}"'],
             "equal": ["service"]},
        ],
        "receivers": receivers,
    }
    if by_service:
        config["time_intervals"] = [{"name": maintenance_interval_name(svc), "time_intervals": [
            {"weekdays": list(w.weekdays), "times": [{"start_time": w.start, "end_time": w.end}]}
            for w in windows]} for svc, windows in sorted(by_service.items())]
    return config


def heartbeat_receiver(links: LinkSettings, heartbeat: SnsHeartbeat | None) -> dict[str, Any]:
    """The dead-man's switch. Never `send_resolved`: the heartbeat resolves only when Prometheus stopped sending
    it, and a "resolved" message would count as one more heartbeat at the moment it stopped."""
    if heartbeat is None:
        return {"name": RECEIVER_HEARTBEAT, "webhook_configs": [{"url": links.heartbeat_webhook_url,
                                                                 "send_resolved": False}]}
    return {"name": RECEIVER_HEARTBEAT, "sns_configs": [{
        "topic_arn": heartbeat.topic_arn,
        # No keys: SigV4 with the default credential chain (IRSA web identity in the pod). The first SNS notifier
        # (0.23) used only configured keys; later ones use static keys only when configured, else the chain.
        "sigv4": {"region": heartbeat.region},
        "send_resolved": False,
        "subject": "akidb heartbeat {{ .GroupLabels.alertname }}",
        "message": "{{ .Status }} {{ .GroupLabels.alertname }} from {{ .ExternalURL }}",
    }]}


def expected_receivers(severity: str, *, paging: bool, chat: bool = True) -> list[str]:
    """Every receiver an alert of `severity` reaches, in route order (what amtool prints)."""
    if severity == "heartbeat":
        return [RECEIVER_HEARTBEAT]
    if severity in CHART_ALWAYS_FIRING or severity == "none":
        return [RECEIVER_NULL]
    if severity not in KNOWN_SEVERITIES:
        return [RECEIVER_UNROUTED]
    if severity == "warning":
        return [RECEIVER_TICKETS]
    if severity == "info":
        return [RECEIVER_CHAT] if chat else [RECEIVER_TICKETS]
    if severity == "P2":
        return [RECEIVER_TICKETS, RECEIVER_CHAT] if chat else [RECEIVER_TICKETS]
    if paging:  # P0, P1 and the chart's critical
        return [RECEIVER_P0 if severity == "P0" else RECEIVER_P1]
    return [RECEIVER_TICKETS]


def expected_receiver(severity: str, *, paging: bool) -> str:
    """The first receiver of `severity` (the one that pages, or the ticket)."""
    return expected_receivers(severity, paging=paging)[0]
