"""Alertmanager routing generated for the SLO alerts: P0/P1 to PagerDuty, P2 to tickets, the heartbeat to the
dead-man's switch; with paging off, everything to tickets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.slo.rules import DEFAULT_LINKS, LinkSettings
from infra.slo.spec import HEARTBEAT_ALERT, Slo

# Alertmanager receivers (names are what `amtool config routes test --verify.receivers` checks).
RECEIVER_P0 = "pagerduty-critical"
RECEIVER_P1 = "pagerduty-error"
RECEIVER_TICKETS = "tickets"
RECEIVER_HEARTBEAT = "deadmans-switch"
# Where the prometheus-operator mounts Secrets listed in the Alertmanager's spec.secrets.
ROUTING_KEY_SECRET = "alertmanager-pagerduty"
ROUTING_KEY_FILE = f"/etc/alertmanager/secrets/{ROUTING_KEY_SECRET}/routing-key"


def alertmanager_config(slos: Sequence[Slo], links: LinkSettings = DEFAULT_LINKS, *, paging: bool,
                        routing_key_file: str = ROUTING_KEY_FILE) -> dict[str, Any]:
    """P0 -> PagerDuty critical, P1 -> PagerDuty error, P2 -> tickets; with paging off, everything -> tickets.

    The routing key is never in this text: `routing_key_file` points to a Secret the component creates from the
    Pulumi secret and the Alertmanager mounts.
    """
    del slos  # the routes key on labels every generated alert carries; kept for symmetry with rule_files()

    def first(annotation: str) -> str:
        # A group (alertname, service, slo) may hold several tiers whose annotations differ, which empties
        # .CommonAnnotations: take the first alert's (same SLO, so the same runbook and dashboard).
        return f"{{{{ range $i, $a := .Alerts }}}}{{{{ if eq $i 0 }}}}{{{{ $a.Annotations.{annotation} }}}}" \
               "{{ end }}{{ end }}"

    details = {
        "firing": "{{ .Alerts.Firing | len }}",
        "service": "{{ .CommonLabels.service }}",
        "slo": "{{ .CommonLabels.slo }}",
        "tiers": "{{ range .Alerts.Firing }}{{ .Labels.tier }} {{ end }}",
        "burn_rate": first("burn_rate"),
        "budget_consumed": first("budget_consumed"),
        "runbook_url": first("runbook_url"),
        "dashboard": first("dashboard"),
    }

    def pagerduty(severity: str) -> dict[str, Any]:
        return {"routing_key_file": routing_key_file, "severity": severity, "send_resolved": True,
                "description": first("summary"), "details": details,
                "links": [{"href": first("runbook_url"), "text": "runbook"},
                          {"href": first("dashboard"), "text": "dashboard"}]}

    page0 = RECEIVER_P0 if paging else RECEIVER_TICKETS
    page1 = RECEIVER_P1 if paging else RECEIVER_TICKETS
    receivers: list[dict[str, Any]] = [
        {"name": RECEIVER_TICKETS, "webhook_configs": [{"url": links.ticket_webhook_url, "send_resolved": True}]},
        {"name": RECEIVER_HEARTBEAT, "webhook_configs": [{"url": links.heartbeat_webhook_url,
                                                          "send_resolved": False}]},
    ]
    if paging:
        receivers += [{"name": RECEIVER_P0, "pagerduty_configs": [pagerduty("critical")]},
                      {"name": RECEIVER_P1, "pagerduty_configs": [pagerduty("error")]}]
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": RECEIVER_TICKETS,
            "group_by": ["alertname", "service", "slo"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {"receiver": RECEIVER_HEARTBEAT, "matchers": [f'alertname="{HEARTBEAT_ALERT}"'],
                 "group_wait": "0s", "group_interval": "1m", "repeat_interval": "1m"},
                {"receiver": page0, "matchers": ['severity="P0"'],
                 "group_wait": "5s", "group_interval": "1m", "repeat_interval": "1h"},
                {"receiver": page1, "matchers": ['severity="P1"'],
                 "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
                {"receiver": RECEIVER_TICKETS, "matchers": ['severity="P2"'],
                 "group_wait": "5m", "group_interval": "30m", "repeat_interval": "24h"},
            ],
        },
        # A P0 for a service+SLO already pages: its P1/P2 tiers would only repeat it.
        "inhibit_rules": [{"source_matchers": ['severity="P0"'], "target_matchers": ['severity=~"P1|P2"'],
                           "equal": ["service", "slo"]}],
        "receivers": receivers,
    }


def expected_receiver(severity: str, *, paging: bool) -> str:
    if severity == "heartbeat":
        return RECEIVER_HEARTBEAT
    if paging and severity == "P0":
        return RECEIVER_P0
    if paging and severity == "P1":
        return RECEIVER_P1
    return RECEIVER_TICKETS
