"""What a first `pulumi preview` must show in full: policies, alarm routing, dashboards, Lambda settings.

A first preview of a new stack has no computed outputs (no ARN, no id); an input built from one shows as
`output<string>`, exactly where review matters most (who may do what, who gets paged). The offline preview
(`python -m infra.offline.preview`) records such inputs as UNKNOWN; these rules fail the plan when one appears in
a policy document, an alarm action (or other alert routing), a dashboard body or a Lambda function's settings.
In the ordinary offline plan nothing is unknown, so they pass there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.components.dashboards import DASHBOARD_KEY_ANNOTATION
from infra.plan.model import UNKNOWN, UNKNOWN_SECRET
from infra.plan.types import FUNCTION as FUNCTION_TYPE
from infra.validation import Plan, PlannedResource, Violation, rule

# Alert routing whose value is a secret some service generates, unreadable at every preview: the SNS subscription
# endpoint of PagerDuty's CloudWatch integration (its key is PagerDuty's pick, infra/components/pagerduty.py).
# The topic and protocol, which say who is paged, must still be known.
SECRET_ROUTING_INPUTS = {"aws:sns/topicSubscription:TopicSubscription": ("endpoint",)}
__all__ = ["UNKNOWN", "UNKNOWN_SECRET", "known_at_preview", "review_critical_unknowns", "unknown_paths"]

# Input names that are policy documents (on any AWS resource), and what each policy resource attaches to.
POLICY_DOCUMENT_INPUTS = ("policy", "assumeRolePolicy", "inlinePolicies", "accessPolicies")
POLICY_TARGETS = {
    "aws:iam/rolePolicy:RolePolicy": ("role",),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("role", "policyArn"),
    "aws:sns/topicPolicy:TopicPolicy": ("arn",),
    "aws:s3/bucketPolicy:BucketPolicy": ("bucket",),
    "aws:sqs/queuePolicy:QueuePolicy": ("queueUrl",),
}
ALARM_ROUTING_INPUTS = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("alarmActions", "okActions", "insufficientDataActions"),
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": ("alarmActions", "okActions", "insufficientDataActions"),
    "aws:cloudwatch/eventTarget:EventTarget": ("arn", "rule"),
    "aws:sns/topicSubscription:TopicSubscription": ("topic", "protocol", "endpoint"),
}
DASHBOARD_INPUTS = {"aws:cloudwatch/dashboard:Dashboard": ("dashboardBody",)}


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """Dotted paths of the UNKNOWN values inside `value`."""
    if isinstance(value, str):
        return [path or "."] if value in (UNKNOWN, UNKNOWN_SECRET) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in unknown_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in unknown_paths(v, f"{path}[{i}]")]
    return []


def _inputs(res: PlannedResource, keys: tuple[str, ...]) -> list[str]:
    return [p for key in keys if key in res.inputs for p in unknown_paths(res.inputs[key], key)]


def _is_dashboard_config_map(res: PlannedResource) -> bool:
    annotations = res.get("metadata.annotations") or {}
    return res.type == "kubernetes:core/v1:ConfigMap" and DASHBOARD_KEY_ANNOTATION in annotations


def review_critical_unknowns(res: PlannedResource, secrets_visible: bool = True) -> dict[str, list[str]]:
    """kind -> unknown input paths of `res` that a reviewer must be able to read. Where secrets are not visible
    (the engine's data), an unknown secret routing input cannot be told from any unknown: `make plan`, which
    can, is the check that refuses a plain unknown one."""
    secret_unknowns = (UNKNOWN_SECRET,) if secrets_visible else (UNKNOWN_SECRET, UNKNOWN)
    found: dict[str, list[str]] = {}
    if res.type.startswith("aws:"):
        policy = _inputs(res, POLICY_DOCUMENT_INPUTS) + _inputs(res, POLICY_TARGETS.get(res.type, ()))
        if policy:
            found["policy"] = policy
    secret_routing = SECRET_ROUTING_INPUTS.get(res.type, ())
    routing = [p for p in _inputs(res, ALARM_ROUTING_INPUTS.get(res.type, ()))
               if not (p in secret_routing and res.inputs.get(p) in secret_unknowns)]
    if routing:
        found["alarm action"] = routing
    dashboard = _inputs(res, DASHBOARD_INPUTS.get(res.type, ()))
    if _is_dashboard_config_map(res):
        dashboard += _inputs(res, ("data",))
    if dashboard:
        found["dashboard body"] = dashboard
    if res.type == FUNCTION_TYPE and (settings := unknown_paths(res.inputs)):
        found["lambda setting"] = settings
    return found


@rule
def known_at_preview(plan: Plan) -> Iterator[Violation]:
    for res in plan.resources:
        for kind, paths in review_critical_unknowns(res, plan.secrets_visible).items():
            yield Violation("known_at_preview", res.label,
                            f"{kind} unknown at a first preview ({', '.join(paths)}): build it from physical "
                            "names and ctx.arns, not from a computed output")
