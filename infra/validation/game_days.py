"""Plan-time rules of the game days (FIS experiment templates): where they may exist, what stops them, how much
they may hit, and that each experiment role reaches its targets only."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from infra.validation import Plan, PlannedResource, Violation, rule
from infra.validation.foundation import STAR_ONLY_ACTIONS

TEMPLATE = "aws:fis/experimentTemplate:ExperimentTemplate"
ALARM_TYPES = ("aws:cloudwatch/metricAlarm:MetricAlarm", "aws:cloudwatch/compositeAlarm:CompositeAlarm")
ALARM_ARN = re.compile(r"^arn:aws[a-z-]*:cloudwatch:(?P<region>[a-z0-9-]+):\d{12}:alarm:(?P<name>.+)$")
SELECTION = re.compile(r"^(?:COUNT\((?P<count>\d+)\)|PERCENT\((?P<percent>\d+)\))$")
ISO_DURATION = re.compile(r"^PT(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?$")
MAX_DURATION_MINUTES = 60  # a game day is an hour at most: longer is an outage, not an experiment
MAX_STOP_CONDITIONS = 5  # AWS FIS quotas: stop conditions per experiment template
# One-shot actions: no `duration` parameter, bounded by what they do (FIS actions reference).
ONE_SHOT = {"aws:ec2:send-spot-instance-interruptions": "durationBeforeInterruption"}


def _minutes(text: str) -> float | None:
    m = ISO_DURATION.fullmatch(text or "")
    if not m or not any(m.groupdict().values()):
        return None
    return int(m["h"] or 0) * 60 + int(m["m"] or 0) + int(m["s"] or 0) / 60


def _alarm_names(plan: Plan) -> set[tuple[str | None, str]]:
    return {(a.region, str(a.inputs.get("alarmName") or a.inputs.get("name"))) for a in plan.of_type(*ALARM_TYPES)}


@rule
def game_days_only_in_allowed_stacks(plan: Plan) -> Iterator[Violation]:
    """FIS experiment templates exist only where gameDays is enabled and the environment is allowed (staging)."""
    cfg = plan.config
    allowed = cfg.game_days.enabled and cfg.environment in cfg.game_days.allowed_environments
    for t in plan.of_type(TEMPLATE):
        if not allowed:
            yield Violation("game_days_only_in_allowed_stacks", t.label,
                            f"an experiment template in {cfg.environment}: allowed only with gameDays.enabled in "
                            f"{cfg.game_days.allowed_environments}")


@rule
def game_days_stop_on_existing_alarms(plan: Plan) -> Iterator[Violation]:
    """Every experiment stops on CloudWatch alarms of this plan (1-5 of them); `none` is no stop condition."""
    name = "game_days_stop_on_existing_alarms"
    alarms = _alarm_names(plan)
    for t in plan.of_type(TEMPLATE):
        conditions = t.inputs.get("stopConditions") or []
        if not conditions:
            yield Violation(name, t.label, "no stop condition: add the stack's user-facing alarms")
        if len(conditions) > MAX_STOP_CONDITIONS:
            yield Violation(name, t.label, f"{len(conditions)} stop conditions; FIS takes at most "
                                           f"{MAX_STOP_CONDITIONS}")
        for c in conditions:
            value = str(c.get("value") or "")
            match = ALARM_ARN.fullmatch(value)
            if c.get("source") != "aws:cloudwatch:alarm" or not match:
                yield Violation(name, t.label, f"stop condition {c.get('source')!r} {value!r} is not a CloudWatch "
                                               "alarm ARN (source aws:cloudwatch:alarm)")
            elif (match["region"], match["name"]) not in alarms:
                yield Violation(name, t.label, f"stop condition alarm {match['name']!r} ({match['region']}) is not "
                                               "in this plan: the experiment could never be stopped by it")


def _target_problems(target: dict[str, Any]) -> Iterator[str]:
    mode = str(target.get("selectionMode"))
    m = SELECTION.fullmatch(mode)
    if not m:
        yield f"target {target.get('name')!r} selects {mode}: use COUNT(n) or PERCENT(p), never ALL"
    elif (m["count"] is not None and int(m["count"]) < 1) or (
            m["percent"] is not None and not 1 <= int(m["percent"]) <= 100):
        yield f"target {target.get('name')!r} selects {mode}: COUNT from 1, PERCENT from 1 to 100"
    if not (target.get("resourceTags") or target.get("resourceArns") or target.get("parameters")):
        yield f"target {target.get('name')!r} names no tags, ARNs or cluster selector: it would match everything"


@rule
def game_days_bounded(plan: Plan) -> Iterator[Violation]:
    """Bounded blast radius and time: COUNT(n)/PERCENT(p) targets that name what they hit, and every action a
    duration of at most an hour (or a bounded one-shot action)."""
    name = "game_days_bounded"
    for t in plan.of_type(TEMPLATE):
        for target in t.inputs.get("targets") or []:
            for problem in _target_problems(target):
                yield Violation(name, t.label, problem)
        for action in t.inputs.get("actions") or []:
            params = {p.get("key"): p.get("value") for p in action.get("parameters") or []}
            key = ONE_SHOT.get(str(action.get("actionId")), "duration")
            minutes = _minutes(str(params.get(key) or ""))
            if minutes is None:
                yield Violation(name, t.label, f"action {action.get('name')!r} ({action.get('actionId')}) has no "
                                               f"{key} (an ISO 8601 PTnM)")
            elif minutes > MAX_DURATION_MINUTES:
                yield Violation(name, t.label, f"action {action.get('name')!r} lasts {minutes:g} min; at most "
                                               f"{MAX_DURATION_MINUTES}")


def _role_policies(plan: Plan, role_arn: str) -> list[tuple[PlannedResource, dict[str, Any]]]:
    role_name = role_arn.rsplit("/", 1)[-1]
    return [(p, json.loads(p.inputs["policy"])) for p in plan.of_type("aws:iam/rolePolicy:RolePolicy")
            if p.inputs.get("role") == role_name and isinstance(p.inputs.get("policy"), str)]


def _wildcard(resource: str) -> bool:
    """`*`, or an ARN whose resource part is all wildcard (`instance/*`, `function:*`): any resource of a kind."""
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return False
    rest = re.split(r"[/:]", parts[5], maxsplit=1)
    return (rest[-1] if len(rest) > 1 else rest[0]) == "*"


def _tag_conditions(stmt: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op, values in (stmt.get("Condition") or {}).items():
        if op.startswith(("StringEquals", "ForAnyValue:StringEquals")):
            out.update({k.split("/", 1)[1]: v for k, v in values.items() if k.startswith("aws:ResourceTag/")})
    return out


def _services(principal: Any) -> list[str] | None:
    """The service principals of a trust statement's Principal, or None for any other kind of principal."""
    if not isinstance(principal, dict) or set(principal) != {"Service"}:
        return None
    service = principal["Service"]
    return [service] if isinstance(service, str) else sorted(service)


@rule
def game_days_roles_scoped(plan: Plan) -> Iterator[Violation]:
    """Each experiment role is trusted by FIS only and reaches its targets only: any resource of a kind (`*`,
    `instance/*`) only with an aws:ResourceTag condition matching the template's target tags (read-only
    discovery and log delivery excepted)."""
    name = "game_days_roles_scoped"
    roles = {str(r.inputs.get("name")): r for r in plan.of_type("aws:iam/role:Role")}
    for t in plan.of_type(TEMPLATE):
        role_arn = str(t.inputs.get("roleArn") or "")
        role = roles.get(role_arn.rsplit("/", 1)[-1])
        if role is None:
            yield Violation(name, t.label, f"role {role_arn!r} is not planned in this stack")
            continue
        trust = json.loads(str(role.inputs.get("assumeRolePolicy") or "{}"))
        principals = [s.get("Principal") for s in trust.get("Statement", [])]
        # IAM reads a one-element list as the string itself: both spellings are "FIS only".
        if [_services(p) for p in principals] != [["fis.amazonaws.com"]]:
            yield Violation(name, role.label, f"trusted by {principals}: only fis.amazonaws.com")
        wanted: dict[str, str] = {}
        for target in t.inputs.get("targets") or []:
            wanted.update({str(tag.get("key")): str(tag.get("value")) for tag in target.get("resourceTags") or []})
        for policy, doc in _role_policies(plan, role_arn):
            for stmt in doc.get("Statement", []):
                if stmt.get("Effect") != "Allow":
                    continue
                actions = stmt.get("Action") if isinstance(stmt.get("Action"), list) else [stmt.get("Action")]
                resources = stmt.get("Resource") if isinstance(stmt.get("Resource"), list) else [stmt.get("Resource")]
                if not any(_wildcard(str(r)) for r in resources):
                    continue
                if all(a in STAR_ONLY_ACTIONS for a in actions):
                    continue
                tags = _tag_conditions(stmt)
                if not tags:
                    yield Violation(name, policy.label, f"{', '.join(map(str, actions))} on {resources} without an "
                                                        "aws:ResourceTag condition: any resource of that kind")
                elif any(tags.get(k) != v for k, v in wanted.items()):
                    yield Violation(name, policy.label, f"tag condition {tags} does not match the template's "
                                                        f"target tags {wanted}")
