"""Plan-time rules of the PagerDuty side (infra/components/pagerduty.py): what PagerDuty's API refuses or what would
leave a page with nobody to go to, none of which the mocks enforce.

- escalation policies: at least one rule, each with targets and a delay of at least 1 minute, 0-9 loops;
- services: each names an escalation policy of this stack; support-hours urgency only with valid support hours;
- the switch: with pagerduty.manage every paging surface and severity has its service and integration, the
  Events API v2 keys reach the Alertmanager's Secret and the webhook secret reaches Secrets Manager, as secrets;
  without it the stack creates nothing in PagerDuty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from infra.components.pagerduty_surfaces import EVENTS_API_V2, PAGING_SEVERITIES, SURFACES, WEBHOOK_EVENTS
from infra.config.formats import is_time_zone
from infra.slo.alertmanager import ROUTING_KEY_SECRET
from infra.validation import Plan, PlannedResource, Violation, rule
from infra.validation.preview import UNKNOWN, UNKNOWN_SECRET

SERVICE = "pagerduty:index/service:Service"
POLICY = "pagerduty:index/escalationPolicy:EscalationPolicy"
INTEGRATION = "pagerduty:index/serviceIntegration:ServiceIntegration"
WEBHOOK = "pagerduty:index/webhookSubscription:WebhookSubscription"
K8S_SECRET = "kubernetes:core/v1:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
MAX_LOOPS = 9  # PagerDuty: num_loops 0-9
SECRET = "[secret]"
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")


def _pagerduty(plan: Plan) -> list[PlannedResource]:
    return [r for r in plan.resources if r.custom and r.type.startswith("pagerduty:")]


def _hidden(value: Any) -> bool:
    """A secret as the plan records it (redacted), or unknown at a first preview (also unreadable; the policy
    pack's engine plan has None for unknown values)."""
    return value is None or value in (SECRET, UNKNOWN, UNKNOWN_SECRET)


def _unknown(value: Any) -> bool:
    """Unknown at a first preview: the offline preview's marker, or None in the policy pack's engine plan."""
    return value is None or value in (UNKNOWN, UNKNOWN_SECRET)


@rule
def pagerduty_escalation_policies(plan: Plan) -> Iterator[Violation]:
    """Escalation policies: rules with targets, delays of at least 1 minute, 0-9 loops (PagerDuty's API)."""
    for policy in plan.of_type(POLICY):
        rules = policy.inputs.get("rules") or []
        if not rules:
            yield Violation("pagerduty_escalation_policies", policy.label, "has no escalation rule: nobody is paged")
        for i, r in enumerate(rules):
            delay = r.get("escalationDelayInMinutes", 0)
            if not _unknown(delay) and (not isinstance(delay, (int, float)) or delay < 1):
                yield Violation("pagerduty_escalation_policies", policy.label,
                                f"rules[{i}].escalationDelayInMinutes = {delay!r}: must be at least 1 minute")
            if not r.get("targets"):
                yield Violation("pagerduty_escalation_policies", policy.label, f"rules[{i}] has no target")
        loops = policy.inputs.get("numLoops", 0)
        if not isinstance(loops, (int, float)) or not 0 <= loops <= MAX_LOOPS:
            yield Violation("pagerduty_escalation_policies", policy.label,
                            f"numLoops = {loops!r}: must be 0-{MAX_LOOPS}")


def _support_hours_problems(service: PlannedResource) -> list[str]:
    hours = service.inputs.get("supportHours")
    urgency = service.inputs.get("incidentUrgencyRule") or {}
    uses = urgency.get("type") == "use_support_hours"
    if not uses:
        return ["supportHours set while incidentUrgencyRule.type is not use_support_hours"] if hours else []
    if not hours:
        return ["incidentUrgencyRule.type is use_support_hours but the service has no supportHours"]
    out = []
    if hours.get("type") != "fixed_time_per_day":
        out.append(f"supportHours.type = {hours.get('type')!r}: must be fixed_time_per_day")
    if not is_time_zone(str(hours.get("timeZone"))):
        out.append(f"supportHours.timeZone = {hours.get('timeZone')!r}: not an IANA time zone")
    days = hours.get("daysOfWeeks") or []
    if not days or any(d not in range(1, 8) for d in days) or len(set(days)) != len(days):
        out.append(f"supportHours.daysOfWeeks = {days!r}: distinct days 1 (Monday) to 7 (Sunday), at least one")
    start, end = str(hours.get("startTime")), str(hours.get("endTime"))
    if not (_TIME.fullmatch(start) and _TIME.fullmatch(end)) or end <= start:
        out.append(f"supportHours {start}-{end}: HH:MM:SS times with the end after the start")
    for when in ("duringSupportHours", "outsideSupportHours"):
        if (urgency.get(when) or {}).get("urgency") not in ("high", "low", "severity_based"):
            out.append(f"incidentUrgencyRule.{when}.urgency must be high, low or severity_based")
    return out


@rule
def pagerduty_services(plan: Plan) -> Iterator[Violation]:
    """Every service has an escalation policy of this stack; support-hours urgency has valid support hours."""
    policy_ids = {p.outputs.get("id") for p in plan.of_type(POLICY)} - {None, "", UNKNOWN}
    for service in plan.of_type(SERVICE):
        # Absent or empty: no policy; None: unknown at a preview in the policy pack (the engine plan).
        policy = service.inputs.get("escalationPolicy", "")
        if policy == "":
            yield Violation("pagerduty_services", service.label, "has no escalation policy: its pages reach nobody")
        elif not _unknown(policy) and policy_ids and policy not in policy_ids:
            yield Violation("pagerduty_services", service.label,
                            f"escalation policy {policy!r} is not one this stack creates")
        for problem in _support_hours_problems(service):
            yield Violation("pagerduty_services", service.label, problem)


def _integrations(plan: Plan) -> tuple[int, int]:
    events = cloudwatch = 0
    for integration in plan.of_type(INTEGRATION):
        if integration.inputs.get("type") == EVENTS_API_V2:
            events += 1
        elif integration.inputs.get("vendor"):
            cloudwatch += 1
    return events, cloudwatch


@rule
def pagerduty_managed_paths(plan: Plan) -> Iterator[Violation]:
    """pagerduty.manage on: a service and integration per paging surface and severity, the Events API v2 keys in
    the Alertmanager's Secret and the webhook secret in Secrets Manager, as secrets. Off: nothing in PagerDuty."""
    cfg = plan.config
    created = _pagerduty(plan)
    if not cfg.pagerduty_managed:
        for res in created:
            yield Violation("pagerduty_managed_paths", res.label,
                            "created while pagerduty.manage (or sloAlerting) is off: PagerDuty is managed "
                            "elsewhere")
        return
    name = "pagerduty_managed_paths"
    services = plan.of_type(SERVICE)
    want = len(SURFACES) * len(PAGING_SEVERITIES)
    if len(services) != want:
        yield Violation(name, "pagerduty services",
                        f"{len(services)} services; expected {want} (surfaces {sorted(SURFACES)} x "
                        f"{list(PAGING_SEVERITIES)})")
    events, cloudwatch = _integrations(plan)
    if events != len(PAGING_SEVERITIES) or cloudwatch != len(PAGING_SEVERITIES):
        yield Violation(name, "pagerduty integrations",
                        f"{events} Events API v2 and {cloudwatch} CloudWatch integrations; expected "
                        f"{len(PAGING_SEVERITIES)} of each (one per paging severity)")
    if cfg.kubernetes.enabled and cfg.slo_alerting.enabled:
        secrets = [s for s in plan.of_type(K8S_SECRET) if s.get("metadata.name") == ROUTING_KEY_SECRET]
        if not secrets:
            yield Violation(name, f"Secret {ROUTING_KEY_SECRET}",
                            "missing: the Events API v2 keys never reach the Alertmanager")
        for secret in secrets:
            data = secret.inputs.get("stringData")
            keys = data if isinstance(data, dict) else {}
            if not _hidden(data) and (set(keys) != {"routing-key", "routing-key-p1"}
                                      or not all(_hidden(v) for v in keys.values())):
                yield Violation(name, secret.label,
                                "stringData must hold routing-key (P0) and routing-key-p1 (P1), both secret: "
                                f"has {sorted(keys)}")
    if cfg.slo_alerting.enabled and cfg.slo_alerting.runbooks.enabled:
        hooks = plan.of_type(WEBHOOK)
        if len(hooks) != 1:
            yield Violation(name, "pagerduty webhook subscriptions",
                            f"{len(hooks)}; expected 1 (the runbook API's, whose one secret the receiver checks)")
        for hook in hooks:
            missing = sorted(set(WEBHOOK_EVENTS) - set(hook.inputs.get("events") or []))
            if missing:
                yield Violation(name, hook.label, f"does not subscribe to {missing} (the runbooks and the "
                                                  "incident timeline read them)")
            urls = [m.get("url") for m in hook.inputs.get("deliveryMethods") or []]
            if not urls or not all(u == UNKNOWN or str(u).startswith("https://") for u in urls):
                yield Violation(name, hook.label, f"delivers to {urls!r}: must be the runbook API's https URL")
        for version in plan.of_type(SECRET_VERSION):
            if "webhook-secret" in version.name and not _hidden(version.inputs.get("secretString")):
                yield Violation(name, version.label, "the webhook signing secret must reach Secrets Manager as a "
                                                     "Pulumi secret")
