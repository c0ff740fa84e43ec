"""The runbooks of the plan, with guardrails: allow-listed targets, bounded capacity, a budget of actions per
runbook per hour, dry-run, and an audit entry for every decision.

- error-budget-fast-burn (spot interruption cascade): add `scale_out_step` instances to the on-demand ASG, never
  beyond `max_capacity`. The plan also set the spot ASG to 0, which turns a partial outage into a full one if
  on-demand capacity is not there yet: not automated.
- latency-slo-violation: the same bounded scale-out (the plan's ECS service does not exist here; the REST tier
  runs on the ASG's nodes).
- lambda-edge-cold-start: Lambda@Edge has no provisioned concurrency (the plan's lever does not exist), so this
  runbook notifies the ticket topic with what an engineer needs: function, regions, the levers that do exist.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .audit import LOG, Audit
from .settings import Settings


@dataclass(frozen=True)
class Job:
    runbook: str
    incident_id: str
    title: str
    webhook_id: str
    urgency: str = ""
    html_url: str = ""

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: object) -> Job:
        if not isinstance(data, dict) or not isinstance(data.get("runbook"), str):
            raise TypeError("a job is an object with a runbook")
        return cls(**{k: str(data.get(k, "")) for k in cls.__dataclass_fields__})


@dataclass
class Deps:
    settings: Settings
    audit: Audit
    autoscaling: Any
    dynamodb: Any
    sns: Any
    sqs: Any = None
    cloudwatch: Any = None
    now: Callable[[], float] = time.time


class ActionBudget:
    """At most `max_actions_per_hour` actions per runbook per clock hour (a DynamoDB conditional counter).

    Taken right before the AWS call that acts and refunded when that call fails, so an action that did not
    happen (throttled, AccessDenied, a network error) costs no budget and the SQS redelivery can still act."""

    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def take(self, runbook: str) -> str | None:
        """The counter's key when a unit was taken (pass it to `refund`), None when the budget is spent."""
        s = self.d.settings
        if s.max_actions_per_hour == 0:
            return None
        hour = int(self.d.now() // 3600)
        key = f"actions#{runbook}#{hour}"
        try:
            self.d.dynamodb.update_item(
                TableName=s.table_name,
                Key={"pk": {"S": key}},
                UpdateExpression="SET #c = if_not_exists(#c, :zero) + :one, expires_at = :exp",
                ConditionExpression="attribute_not_exists(#c) OR #c < :max",
                ExpressionAttributeNames={"#c": "count"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"},
                                           ":max": {"N": str(s.max_actions_per_hour)},
                                           ":exp": {"N": str((hour + 2) * 3600)}},
            )
            return key
        except ClientError as e:
            if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise

    def refund(self, key: str) -> None:
        """Give back the unit of a failed action (the same hour's counter; never below zero)."""
        self.d.dynamodb.update_item(
            TableName=self.d.settings.table_name, Key={"pk": {"S": key}},
            UpdateExpression="SET #c = #c - :one", ConditionExpression="#c > :zero",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}})

    def act(self, runbook: str, action: Callable[[], object]) -> bool:
        """Run `action` under one unit of budget: False (nothing done) when spent; the unit is refunded and the
        error re-raised (for SQS to redeliver) when the action fails."""
        key = self.take(runbook)
        if key is None:
            return False
        try:
            action()
        except (ClientError, BotoCoreError) as failure:
            try:
                self.refund(key)
            except (ClientError, BotoCoreError) as e:
                LOG.error(json.dumps({"decision": "refund-failed", "key": key, "error": str(e),
                                      "action_error": str(failure)}))
            raise
        return True


def _scale_out(deps: Deps, job: Job, why: str) -> dict[str, Any]:
    s, audit = deps.settings, deps.audit
    asg = s.scale_out_asg
    base = {"runbook": job.runbook, "incident": job.incident_id, "webhook_id": job.webhook_id, "target": asg}
    if not asg:
        return _notify(deps, job, f"{why}; no scaleOutAsg configured, so nothing was scaled")
    if asg not in s.allowed_asgs:
        return audit.record("refused", reason=f"ASG {asg!r} is not allow-listed ({list(s.allowed_asgs)})", **base)
    found = deps.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"]
    if not found:
        return audit.record("refused", reason=f"ASG {asg!r} does not exist", **base)
    current, asg_max = int(found[0]["DesiredCapacity"]), int(found[0]["MaxSize"])
    desired = min(current + s.scale_out_step, s.max_capacity)
    if desired <= current:
        return audit.record("refused", reason=f"already at the capacity bound ({current} >= maxCapacity "
                                              f"{s.max_capacity})", current=current, **base)
    plan = {"current": current, "desired": desired, "asg_max_size": asg_max, "why": why}
    if s.dry_run:
        return audit.record("dry-run", action="scale-out", **plan, **base)
    def scale() -> None:
        if desired > asg_max:  # the IAM policy allows UpdateAutoScalingGroup only with MaxSize <= maxCapacity
            deps.autoscaling.update_auto_scaling_group(AutoScalingGroupName=asg, MaxSize=desired,
                                                       DesiredCapacity=desired)
        else:
            deps.autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=desired,
                                                  HonorCooldown=False)

    if not ActionBudget(deps).act(job.runbook, scale):
        return audit.record("refused", reason=f"action budget spent ({s.max_actions_per_hour} per hour)",
                            **plan, **base)
    return audit.record("acted", action="scale-out", **plan, **base)


def _runbook_url(s: Settings, job: Job) -> str:
    return f"{s.runbook_base_url.rstrip('/')}/{job.runbook}"


def _notify(deps: Deps, job: Job, context: str) -> dict[str, Any]:
    s = deps.settings
    base = {"runbook": job.runbook, "incident": job.incident_id, "webhook_id": job.webhook_id}
    if not s.notify_topic_arn:
        return deps.audit.record("refused", reason="no notification topic configured", **base)
    message = {"incident": job.incident_id, "title": job.title, "incident_url": job.html_url,
               "runbook_url": _runbook_url(s, job), "context": context}
    if s.dry_run:
        return deps.audit.record("dry-run", action="notify", message=message, **base)

    def publish() -> None:
        deps.sns.publish(TopicArn=s.notify_topic_arn, Subject=f"[runbook {job.runbook}] {job.title}"[:100],
                         Message=json.dumps(message, indent=2, sort_keys=True))

    if not ActionBudget(deps).act(job.runbook, publish):
        return deps.audit.record("refused", reason=f"action budget spent ({s.max_actions_per_hour} per hour)",
                                 **base)
    return deps.audit.record("acted", action="notify", message=message, **base)


def spot_cascade(deps: Deps, job: Job) -> dict[str, Any]:
    return _scale_out(deps, job, "availability burn (spot interruption cascade): add on-demand capacity")


def latency(deps: Deps, job: Job) -> dict[str, Any]:
    return _scale_out(deps, job, "latency burn: add capacity to the REST tier")


def edge_cold_start(deps: Deps, job: Job) -> dict[str, Any]:
    s = deps.settings
    regions = ", ".join(s.edge_regions) or "the edge regions"
    # The edge's metrics are EMF in CloudWatch: its board is the stack's CloudWatch edge dashboard (there is no
    # Grafana edge board to link).
    board = (f"the CloudWatch edge dashboard ({s.edge_dashboard_url})" if s.edge_dashboard_url
             else f"the stack's CloudWatch edge dashboard (linked from {_runbook_url(s, job)})")
    context = (
        f"Lambda@Edge function {s.edge_function_name or '(unknown)'} is cold-starting in {regions}. "
        "Lambda@Edge has no provisioned concurrency. Levers that exist: a larger memory size (more CPU for "
        "model load), a smaller package, loading the model at init, and fewer invocations (origin-request "
        "trigger, CloudFront caching of repeated bodies). Check the warm-container share and the cold-start "
        f"model load per region on {board} and the replica log groups "
        f"/aws/lambda/us-east-1.{s.edge_function_name} in each region."
    )
    return _notify(deps, job, context)


RUNBOOKS: dict[str, Callable[[Deps, Job], dict[str, Any]]] = {
    "error-budget-fast-burn": spot_cascade,
    "latency-slo-violation": latency,
    "lambda-edge-cold-start": edge_cold_start,
}


def run(deps: Deps, job: Job) -> dict[str, Any]:
    fn = RUNBOOKS.get(job.runbook)
    if fn is None:
        return deps.audit.record("refused", reason=f"unknown runbook {job.runbook!r} (known: "
                                                   f"{', '.join(sorted(RUNBOOKS))})", runbook=job.runbook,
                                 incident=job.incident_id, webhook_id=job.webhook_id)
    return fn(deps, job)
