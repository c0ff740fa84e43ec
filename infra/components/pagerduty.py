"""PagerDuty as code: the services pages land on, who is paged (schedule, escalation policy), the integrations whose
keys Alertmanager and the severity topics send to, and the V3 webhook subscription of the runbook automation.

One service per paging surface and severity. A surface is a way a page enters PagerDuty:
  - `rest`: akidb-rest's SLO and symptom alerts, Prometheus -> Alertmanager -> Events API v2;
  - `cloudwatch`: the stack's CloudWatch alarms in every alarm region (edge, anomaly, alerting path, probes)
    -> the P0/P1 severity topics -> PagerDuty's Amazon CloudWatch integration.
P0 and P1 get services of their own because urgency is a property of a service: P0 always pages with high
urgency, P1 may follow support hours (PagerDuty "Configurable Service Settings": incident urgency rules).

Every key PagerDuty generates leaves this component as a Pulumi secret and is stored encrypted in the state
(`additional_secret_outputs`: the provider does not mark them secret itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_pagerduty as pagerduty

from infra.components.pagerduty_surfaces import (
    CLOUDWATCH_VENDOR,
    EVENTS_API_V2,
    PAGING_SEVERITIES,
    SURFACES,
    WEBHOOK_EVENTS,
)
from infra.config.pagerduty import SCHEDULE_TARGET, PagerDutyConfig

TOKEN = "akidb:pagerduty:PagerDuty"


@dataclass
class PagerDutyArgs:
    settings: PagerDutyConfig
    name_prefix: str  # e.g. akidb-prod: PagerDuty names are unique per account, so they carry the stack
    token: pulumi.Input[str]  # the REST API token (a Pulumi secret)
    # The runbook API the V3 webhook subscription delivers to (SloAlerting.webhook_url); None: no subscription.
    webhook_url: pulumi.Input[str] | None = None
    # Protect the services from deletion (prod's protectStateful): deleting one deletes its incident history.
    protect: bool = False


def _hhmmss(hhmm: str) -> str:
    return f"{hhmm}:00"


def _signing_secret(methods: Sequence[Any] | None) -> str:
    """The subscription's signing secret, which PagerDuty returns once, when it creates the subscription."""
    for method in methods or []:
        secret = method.get("secret") if isinstance(method, Mapping) else getattr(method, "secret", None)
        if secret:
            return str(secret)
    raise ValueError("PagerDuty returned no signing secret for the runbook webhook subscription (it does so only "
                     "when the subscription is created, not for an imported one): replace the subscription "
                     "(pulumi up --replace <its URN>) so a new secret is issued and stored")


class PagerDuty(pulumi.ComponentResource):
    events_keys: dict[str, pulumi.Output[str]]  # severity -> Events API v2 integration key (Alertmanager)
    cloudwatch_keys: dict[str, pulumi.Output[str]]  # severity -> CloudWatch integration key (severity topics)
    webhook_secret: pulumi.Output[str] | None  # the V3 webhook signing secret (Secrets Manager)
    service_names: dict[str, str]  # "<surface>-<severity>" -> PagerDuty service name (known at preview)
    service_ids: dict[str, pulumi.Output[str]]
    escalation_policy_id: pulumi.Output[str]
    schedule_id: pulumi.Output[str] | None

    def __init__(self, name: str, args: PagerDutyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TOKEN, name, None, opts)
        cfg = args.settings
        provider = pagerduty.Provider(f"{name}-provider", token=pulumi.Output.secret(args.token),
                                      service_region=cfg.service_region,
                                      opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=provider)

        self.schedule_id = self._schedule(name, args, child)
        policy = pagerduty.EscalationPolicy(
            f"{name}-escalation", name=f"{args.name_prefix} escalation", num_loops=cfg.escalation_loops,
            teams=cfg.team, description="Who is paged for akidb (managed by Pulumi: akidb-observability)",
            rules=[pagerduty.EscalationPolicyRuleArgs(
                escalation_delay_in_minutes=rule.delay_minutes,
                targets=[self._target(t) for t in rule.targets]) for rule in cfg.escalation],
            opts=child)
        self.escalation_policy_id = policy.id

        self.service_names, self.service_ids = {}, {}
        self.events_keys, self.cloudwatch_keys = {}, {}
        vendor = pagerduty.get_vendor_output(name=CLOUDWATCH_VENDOR, opts=pulumi.InvokeOutputOptions(provider=provider))
        secret_key = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
            additional_secret_outputs=["integrationKey"]))
        for surface, what in SURFACES.items():
            for severity in PAGING_SEVERITIES:
                key = f"{surface}-{severity.lower()}"
                service_name = f"{args.name_prefix}-{key}"
                service = pagerduty.Service(
                    f"{name}-{key}", name=service_name, description=f"{severity}: {what}",
                    escalation_policy=policy.id,
                    acknowledgement_timeout=str(cfg.acknowledgement_timeout_minutes * 60),
                    auto_resolve_timeout=(str(cfg.auto_resolve_hours * 3600) if cfg.auto_resolve_hours
                                          else "null"),
                    **self._urgency(cfg, severity),
                    opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=args.protect)))
                self.service_names[key], self.service_ids[key] = service_name, service.id
                if surface == "rest":
                    integration = pagerduty.ServiceIntegration(
                        f"{name}-{key}-events", name="Alertmanager (Events API v2)", service=service.id,
                        type=EVENTS_API_V2, opts=secret_key)
                    self.events_keys[severity] = pulumi.Output.secret(integration.integration_key)
                else:
                    integration = pagerduty.ServiceIntegration(
                        f"{name}-{key}-cloudwatch", name="Amazon CloudWatch (SNS)", service=service.id,
                        vendor=vendor.id, opts=secret_key)
                    self.cloudwatch_keys[severity] = pulumi.Output.secret(integration.integration_key)

        self.webhook_secret = None
        if args.webhook_url is not None:
            self.webhook_secret = self._webhook(name, args, child)
        self.register_outputs({
            "serviceNames": self.service_names,
            "serviceIds": self.service_ids,
            "escalationPolicyId": self.escalation_policy_id,
            "scheduleId": self.schedule_id,
            "eventsKeys": self.events_keys,
            "cloudwatchKeys": self.cloudwatch_keys,
            "webhookSecret": self.webhook_secret,
        })

    def _target(self, target: str) -> pagerduty.EscalationPolicyRuleTargetArgs:
        if target == SCHEDULE_TARGET:
            # The config refuses "schedule" without a schedule (infra/config/pagerduty.py).
            assert self.schedule_id is not None
            return pagerduty.EscalationPolicyRuleTargetArgs(type="schedule_reference", id=self.schedule_id)
        return pagerduty.EscalationPolicyRuleTargetArgs(type="user_reference", id=target)

    @staticmethod
    def _schedule(name: str, args: PagerDutyArgs, child: pulumi.ResourceOptions) -> pulumi.Output[str] | None:
        sched = args.settings.schedule
        if sched is None:
            return None
        schedule = pagerduty.Schedule(
            f"{name}-schedule", name=f"{args.name_prefix} on-call", time_zone=sched.time_zone,
            teams=[args.settings.team] if args.settings.team else None,
            description="akidb on-call rotation (managed by Pulumi: akidb-observability)",
            layers=[pagerduty.ScheduleLayerArgs(
                name="rotation", start=sched.start, rotation_virtual_start=sched.start,
                rotation_turn_length_seconds=sched.rotation_hours * 3600, users=list(sched.users))],
            opts=child)
        return schedule.id

    @staticmethod
    def _urgency(cfg: PagerDutyConfig, severity: str) -> dict[str, Any]:
        """P0: high urgency at any hour. P1: high inside support hours and low (notify, never escalate) outside
        them when the config has support hours, raised to high when they start; else high at any hour."""
        hours = cfg.support_hours
        if severity == "P0" or hours is None:
            return {"incident_urgency_rule": pagerduty.ServiceIncidentUrgencyRuleArgs(type="constant",
                                                                                      urgency="high")}
        return {
            "incident_urgency_rule": pagerduty.ServiceIncidentUrgencyRuleArgs(
                type="use_support_hours",
                during_support_hours=pagerduty.ServiceIncidentUrgencyRuleDuringSupportHoursArgs(
                    type="constant", urgency="high"),
                outside_support_hours=pagerduty.ServiceIncidentUrgencyRuleOutsideSupportHoursArgs(
                    type="constant", urgency="low")),
            "support_hours": pagerduty.ServiceSupportHoursArgs(
                type="fixed_time_per_day", time_zone=hours.time_zone, days_of_weeks=list(hours.days),
                start_time=_hhmmss(hours.start), end_time=_hhmmss(hours.end)),
            # A P1 left open overnight becomes high urgency (and escalates) when support hours start. PagerDuty
            # allows this action only with exactly the rule above (high during, low outside).
            "scheduled_actions": [pagerduty.ServiceScheduledActionArgs(
                type="urgency_change", to_urgency="high",
                ats=[pagerduty.ServiceScheduledActionAtArgs(type="named_time", name="support_hours_start")])],
        }

    @staticmethod
    def _webhook(name: str, args: PagerDutyArgs, child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """The V3 webhook subscription of the runbook API. PagerDuty generates its signing secret on creation;
        the provider returns it in delivery_methods[].secret, which reaches Secrets Manager from here."""
        team = args.settings.team
        subscription = pagerduty.WebhookSubscription(
            f"{name}-runbook-webhook", type="webhook_subscription", active=True,
            description=f"{args.name_prefix} runbook automation (incident lifecycle)",
            events=list(WEBHOOK_EVENTS),
            delivery_methods=[pagerduty.WebhookSubscriptionDeliveryMethodArgs(
                type="http_delivery_method", url=args.webhook_url)],
            filters=[pagerduty.WebhookSubscriptionFilterArgs(type="team_reference", id=team) if team
                     else pagerduty.WebhookSubscriptionFilterArgs(type="account_reference")],
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                additional_secret_outputs=["deliveryMethods"])))
        secret: pulumi.Output[str] = pulumi.Output.secret(subscription.delivery_methods.apply(_signing_secret))
        return secret
