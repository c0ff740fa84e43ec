"""PagerDuty settings: whether this stack manages the PagerDuty side (services, escalation policy, schedule,
integrations, the V3 webhook subscription) and what it creates there.

Off by default: a stack that has paged through hand-made PagerDuty services keeps doing so (the keys come from the
secrets pagerdutyRoutingKey, pagerdutyCloudwatchKey and pagerdutyWebhookSecret) until its owners opt in; switching
on creates new services, which must not happen to anyone by surprise. Users, teams and schedules are referenced by
PagerDuty id: people are managed in PagerDuty (or its SSO), not by this stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.config.schema import Problem, setting

# The escalation target that stands for this stack's own schedule (every other target is a PagerDuty user id).
SCHEDULE_TARGET = "schedule"


@dataclass(frozen=True)
class EscalationRuleSettings:
    delay_minutes: int = setting(doc="minutes before an unacknowledged incident escalates away from this rule "
                                 "(PagerDuty's minimum is 1)", minimum=1, maximum=10080)
    targets: list[str] = setting(doc=f'who is notified: "{SCHEDULE_TARGET}" (this stack\'s on-call schedule) or '
                                 "PagerDuty user ids", min_items=1,
                                 pattern=rf"^(?:{SCHEDULE_TARGET}|[PQ][A-Z0-9]{{6,19}})\Z")


def _default_escalation() -> list[EscalationRuleSettings]:
    return [EscalationRuleSettings(delay_minutes=30, targets=[SCHEDULE_TARGET])]


@dataclass(frozen=True)
class ScheduleSettings:
    users: list[str] = setting(doc="PagerDuty user ids in rotation order", min_items=1, format="pagerduty_id")
    time_zone: str = setting("UTC", doc="time zone of the rotation", format="time_zone")
    rotation_hours: int = setting(168, doc="length of one on-call shift in hours (168: weekly)", minimum=1,
                                  maximum=8760)
    start: str = setting("2026-01-05T09:00:00Z", doc="when the rotation starts (and hands over, every "
                         "rotationHours from then)", format="rfc3339")


@dataclass(frozen=True)
class SupportHoursSettings:
    """Business hours: P1 services page with high urgency inside them and low urgency (notify, no escalation)
    outside; P0 always pages with high urgency."""

    time_zone: str = setting("UTC", doc="time zone of the support hours", format="time_zone")
    days: list[int] = setting(default_factory=lambda: [1, 2, 3, 4, 5], min_items=1,
                              doc="days of the week, 1 (Monday) to 7 (Sunday)", minimum=1, maximum=7)
    start: str = setting("09:00", doc="start time HH:MM", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")
    end: str = setting("17:00", doc="end time HH:MM, after start", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")


@dataclass(frozen=True)
class PagerDutyConfig:
    manage: bool = setting(False, doc="create the PagerDuty side with this stack (services per paging surface, "
                           "escalation policy, schedule, integrations, V3 webhook subscription; needs the secret "
                           "pagerdutyToken; off with sloAlerting). Off: keys come from the secrets "
                           "pagerdutyRoutingKey, pagerdutyCloudwatchKey, pagerdutyWebhookSecret")
    service_region: Literal["us", "eu"] = setting("us", doc="PagerDuty service region of the account",
                                                  choices=("us", "eu"))
    team: str | None = setting(None, doc="PagerDuty team id owning the escalation policy and schedule; the webhook "
                               "subscription is filtered to it (none: the whole account)", format="pagerduty_id")
    schedule: ScheduleSettings | None = setting(None, doc='on-call schedule (required when an escalation rule '
                                                f'targets "{SCHEDULE_TARGET}")')
    escalation: list[EscalationRuleSettings] = setting(default_factory=_default_escalation, min_items=1,
                                                       doc="escalation rules, in order")
    escalation_loops: int = setting(2, doc="times the escalation policy repeats when nobody acknowledges",
                                    minimum=0, maximum=9)
    support_hours: SupportHoursSettings | None = setting(None, doc="P1 urgency by support hours (none: P1 pages "
                                                         "with high urgency at any hour)")
    auto_resolve_hours: int | None = setting(None, doc="resolve incidents left open this long (none: only the "
                                             "source resolves them)", minimum=1, maximum=168)
    acknowledgement_timeout_minutes: int = setting(30, doc="an acknowledged incident triggers again after this",
                                                   minimum=1, maximum=1440)


def cross_field_problems(cfg: PagerDutyConfig, ns: str, *, slo_enabled: bool, paging: bool) -> list[Problem]:
    """What no single PagerDuty field can check. With sloAlerting off the PagerDuty side is off too (it is the
    paging path's), so nothing is checked."""
    p: list[Problem] = []
    if not (cfg.manage and slo_enabled):
        return p
    if not paging:
        p.append(Problem(f"{ns}:pagerduty.manage", True,
                         "needs sloAlerting.pagingEnabled: without it nothing pages the services it would create "
                         "(set pagerduty.manage to false for a stack that pages nobody)"))
    uses_schedule = any(SCHEDULE_TARGET in r.targets for r in cfg.escalation)
    if uses_schedule and cfg.schedule is None:
        p.append(Problem(f"{ns}:pagerduty.schedule", None,
                         f'required: an escalation rule targets "{SCHEDULE_TARGET}" (give users, timeZone, '
                         "rotationHours, start), or target PagerDuty user ids only"))
    for i, rule in enumerate(cfg.escalation):
        if len(set(rule.targets)) != len(rule.targets):
            p.append(Problem(f"{ns}:pagerduty.escalation[{i}].targets", rule.targets, "targets must be distinct"))
    if cfg.schedule is not None and len(set(cfg.schedule.users)) != len(cfg.schedule.users):
        p.append(Problem(f"{ns}:pagerduty.schedule.users", cfg.schedule.users,
                         "user ids must be distinct (one turn each per rotation)"))
    hours = cfg.support_hours
    if hours is not None:
        if hours.end <= hours.start:
            p.append(Problem(f"{ns}:pagerduty.supportHours.end", hours.end,
                             f"must be after start ({hours.start}); PagerDuty support hours do not cross midnight"))
        if len(set(hours.days)) != len(hours.days):
            p.append(Problem(f"{ns}:pagerduty.supportHours.days", hours.days, "days must be distinct"))
    return p
