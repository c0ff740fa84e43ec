"""The runbooks of the plan, with guardrails: allow-listed targets, bounded capacity, a budget of actions per
runbook per hour, dry-run, and an audit entry for every decision.

- error-budget-fast-burn (spot interruption cascade): add `scale_out_step` instances to the on-demand ASG, never
  beyond `max_capacity`. The plan also set the spot ASG to 0, which turns a partial outage into a full one if
  on-demand capacity is not there yet: not automated.
- latency-slo-violation: the same bounded scale-out (the plan's ECS service does not exist here; the REST tier
  runs on the ASG's nodes).
- lambda-edge-cold-start: Lambda@Edge has no provisioned concurrency (the plan's lever does not exist), so this
  runbook notifies the ticket topic with what an engineer needs: function, regions, the levers that do exist.
Every run's plan, budget unit, action and notices are steps of its ledger (ledger.py): a redelivery of the same
signed event does only the steps not yet recorded, so each happens once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .audit import Audit
from .ledger import Ledger, unbounded_time
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
    time_left_ms: Callable[[], float] = unbounded_time  # the invocation's (Lambda context); OutOfTime guards


class ActionBudget:
    """At most `max_actions_per_hour` actions per runbook per clock hour (a DynamoDB conditional counter).

    Idempotent per run: the counter item holds the ids of the runs that took a unit, so a redelivery of a run
    whose unit was taken (its ledger mark then failed) finds its id there instead of taking a second unit."""

    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def take(self, runbook: str, run_id: str) -> bool:
        """True when this run holds a unit of this hour's budget (taken now or by an earlier attempt)."""
        s = self.d.settings
        if s.max_actions_per_hour == 0:
            return False
        hour = int(self.d.now() // 3600)
        key = {"pk": {"S": f"actions#{runbook}#{hour}"}}
        try:
            self.d.dynamodb.update_item(
                TableName=s.table_name, Key=key,
                UpdateExpression="SET #c = if_not_exists(#c, :zero) + :one, expires_at = :exp ADD holders :me",
                ConditionExpression="(attribute_not_exists(#c) OR #c < :max) AND NOT contains(holders, :id)",
                ExpressionAttributeNames={"#c": "count"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"},
                                           ":max": {"N": str(s.max_actions_per_hour)},
                                           ":exp": {"N": str((hour + 2) * 3600)},
                                           ":me": {"SS": [run_id]}, ":id": {"S": run_id}},
            )
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        item = self.d.dynamodb.get_item(TableName=s.table_name, Key=key, ConsistentRead=True).get("Item", {})
        return run_id in item.get("holders", {}).get("SS", [])


def _ledger(deps: Deps, job: Job) -> Ledger:
    return Ledger(deps.dynamodb, deps.settings.table_name, job.webhook_id, deps.time_left_ms)


def audit_once(deps: Deps, ledger: Ledger, step: str, decision: str, **details: Any) -> dict[str, Any]:
    """The audit entry of a run's step, published once (its notice_id names the run and the step)."""
    entry: dict[str, Any] = {"decision": decision, **details}

    def send() -> None:
        entry.update(deps.audit.record(decision, notice_id=f"{ledger.run_id}#{step}", **details))

    ledger.notice(step, send)
    return entry


def _budget(deps: Deps, ledger: Ledger, job: Job) -> bool:
    return ledger.result("budget", lambda: "taken" if ActionBudget(deps).take(job.runbook, ledger.run_id)
                         else "spent") == "taken"


def _scale_plan(deps: Deps, asg: str, why: str) -> dict[str, Any]:
    """What the scale-out does, decided once per run from the group as it is now (absolute target)."""
    s = deps.settings
    if asg not in s.allowed_asgs:
        return {"decision": "refused", "reason": f"ASG {asg!r} is not allow-listed ({list(s.allowed_asgs)})"}
    found = deps.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"]
    if not found:
        return {"decision": "refused", "reason": f"ASG {asg!r} does not exist"}
    current, asg_max = int(found[0]["DesiredCapacity"]), int(found[0]["MaxSize"])
    desired = min(current + s.scale_out_step, s.max_capacity)
    if desired <= current:
        return {"decision": "refused", "reason": f"already at the capacity bound ({current} >= maxCapacity "
                                                 f"{s.max_capacity})", "current": current}
    plan = {"current": current, "desired": desired, "asg_max_size": asg_max, "why": why}
    return {"decision": "dry-run" if s.dry_run else "act", "action": "scale-out", **plan}


def _scale_out(deps: Deps, job: Job, why: str) -> dict[str, Any]:
    s = deps.settings
    asg = s.scale_out_asg
    if not asg:
        return _notify(deps, job, f"{why}; no scaleOutAsg configured, so nothing was scaled")
    ledger = _ledger(deps, job)
    base = {"runbook": job.runbook, "incident": job.incident_id, "webhook_id": job.webhook_id, "target": asg}
    plan = json.loads(ledger.result("plan", lambda: json.dumps(_scale_plan(deps, asg, why), sort_keys=True)))
    decision = plan.pop("decision")
    if decision != "act":
        return audit_once(deps, ledger, "audit", decision, **plan, **base)
    if not _budget(deps, ledger, job):
        return audit_once(deps, ledger, "audit", "refused",
                          reason=f"action budget spent ({s.max_actions_per_hour} per hour)", **plan, **base)
    desired = int(plan["desired"])

    def scale() -> None:  # absolute: a repetition sets the same capacity
        if desired > int(plan["asg_max_size"]):  # IAM allows UpdateAutoScalingGroup only with MaxSize <= maxCapacity
            deps.autoscaling.update_auto_scaling_group(AutoScalingGroupName=asg, MaxSize=desired,
                                                       DesiredCapacity=desired)
        else:
            deps.autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=desired,
                                                  HonorCooldown=False)

    ledger.effect("scale", scale)
    return audit_once(deps, ledger, "audit", "acted", **plan, **base)


def _runbook_url(s: Settings, job: Job) -> str:
    return f"{s.runbook_base_url.rstrip('/')}/{job.runbook}"


def _notify(deps: Deps, job: Job, context: str) -> dict[str, Any]:
    s = deps.settings
    ledger = _ledger(deps, job)
    base = {"runbook": job.runbook, "incident": job.incident_id, "webhook_id": job.webhook_id}
    if not s.notify_topic_arn:
        return audit_once(deps, ledger, "audit", "refused", reason="no notification topic configured", **base)
    message = {"incident": job.incident_id, "title": job.title, "incident_url": job.html_url,
               "runbook_url": _runbook_url(s, job), "context": context}
    if s.dry_run:
        return audit_once(deps, ledger, "audit", "dry-run", action="notify", message=message, **base)
    if not _budget(deps, ledger, job):
        return audit_once(deps, ledger, "audit", "refused",
                          reason=f"action budget spent ({s.max_actions_per_hour} per hour)", **base)

    def publish() -> None:
        deps.sns.publish(TopicArn=s.notify_topic_arn, Subject=f"[runbook {job.runbook}] {job.title}"[:100],
                         Message=json.dumps({**message, "notice_id": f"{ledger.run_id}#notify"}, indent=2,
                                            sort_keys=True))

    ledger.notice("notify", publish)
    return audit_once(deps, ledger, "audit", "acted", action="notify", message=message, **base)


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
        return audit_once(deps, _ledger(deps, job), "audit", "refused",
                          reason=f"unknown runbook {job.runbook!r} (known: {', '.join(sorted(RUNBOOKS))})",
                          runbook=job.runbook, incident=job.incident_id, webhook_id=job.webhook_id)
    return fn(deps, job)
