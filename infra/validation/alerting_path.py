"""Rules of the alerting path: an alarm on every notification path (the heartbeat topic Alertmanager publishes to
included) and the heartbeat's receiving side."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from infra.components.alerting_path import HEARTBEAT_TOPIC, heartbeat_enabled, heartbeat_topic_name
from infra.core.naming import MAX_IAM_ROLE_NAME, Naming
from infra.plan.model import UNKNOWN, PlannedResource
from infra.plan.types import METRIC_ALARM as ALARM
from infra.validation import Plan, Violation, rule
from infra.validation.xray import irsa_problems


def _alarms(plan: Plan) -> list[PlannedResource]:
    return plan.of_type(ALARM)


def _watched(plan: Plan, namespace: str, metric_names: tuple[str, ...], dim: str, value: str,
             region: str | None, on_silence: bool = False) -> bool:
    for a in _alarms(plan):
        if a.region != region:
            continue
        if on_silence and not (a.inputs.get("treatMissingData") == "breaching"
                               and str(a.inputs.get("comparisonOperator", "")).startswith("LessThan")):
            continue
        queries = a.inputs.get("metricQueries") or []
        metrics = [(a.inputs.get("namespace"), a.inputs.get("metricName"), a.inputs.get("dimensions") or {})]
        metrics += [((q.get("metric") or {}).get("namespace"), (q.get("metric") or {}).get("metricName"),
                     (q.get("metric") or {}).get("dimensions") or {}) for q in queries]
        for ns, metric, dims in metrics:
            if ns == namespace and metric in metric_names and str(dims.get(dim)) == value:
                return True
    return False


def _arn_region_name(arn: str) -> tuple[str | None, str]:
    parts = arn.split(":")
    return (parts[3] or None) if len(parts) > 5 else None, parts[-1]


def _statements(doc_text: Any) -> list[dict[str, Any]]:
    doc = json.loads(doc_text) if isinstance(doc_text, str) else {}
    stmts = doc.get("Statement") or []
    return [s for s in (stmts if isinstance(stmts, list) else [stmts]) if isinstance(s, dict)]


def _actions(stmt: dict[str, Any]) -> list[str]:
    actions = stmt.get("Action") or []
    return [str(a) for a in (actions if isinstance(actions, list) else [actions])]


def _resources(stmt: dict[str, Any]) -> list[str]:
    res = stmt.get("Resource") or []
    return [str(r) for r in (res if isinstance(res, list) else [res])]


def workload_roles(plan: Plan) -> dict[str, PlannedResource]:
    """Roles a cluster workload assumes with its service account's token (IRSA): name -> role."""
    out = {}
    for role in plan.of_type("aws:iam/role:Role"):
        if any(s.get("Action") == "sts:AssumeRoleWithWebIdentity" for s in _statements(role.inputs.get(
                "assumeRolePolicy"))):
            out[str(role.inputs.get("name"))] = role
    return out


def workload_published_topics(plan: Plan) -> list[str]:
    """Topics a cluster workload may publish to: the messages come from outside AWS (a heartbeat), so the path
    is watched by its publishes stopping, not by delivery failures."""
    roles = workload_roles(plan)
    found: set[str] = set()
    for pol in plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        if str(pol.inputs.get("role")) not in roles:
            continue
        for stmt in _statements(pol.inputs.get("policy")):
            if stmt.get("Effect") == "Allow" and "sns:Publish" in _actions(stmt):
                found |= {r for r in _resources(stmt) if r.startswith("arn:aws:sns:")}
    return sorted(found)


def notification_paths(plan: Plan) -> list[tuple[str, str, str | None, str]]:
    """Every way a notification travels in the plan: (kind, label, region, name/id).

    Topics any alarm, budget or anomaly subscription notifies; queues that receive failures (dead letters,
    on-failure destinations) or feed a function; functions behind an API or a queue or subscribed to a topic;
    HTTP APIs; canaries."""
    out: dict[tuple[str, str | None, str], str] = {}
    for a in plan.of_type(ALARM, "aws:cloudwatch/compositeAlarm:CompositeAlarm"):
        for key in ("alarmActions", "okActions"):
            for arn in a.inputs.get(key) or []:
                if str(arn).startswith("arn:aws:sns:"):
                    region, topic = _arn_region_name(str(arn))
                    out[("topic", region, topic)] = f"SNS topic {topic} ({region})"
    for sub in plan.of_type("aws:sns/topicSubscription:TopicSubscription"):
        region, topic = _arn_region_name(str(sub.inputs.get("topic") or ""))
        out[("topic", region, topic)] = f"SNS topic {topic} ({region})"
    for b in plan.of_type("aws:budgets/budget:Budget"):
        for n in b.inputs.get("notifications") or []:
            for arn in n.get("subscriberSnsTopicArns") or []:
                region, topic = _arn_region_name(str(arn))
                out[("topic", region, topic)] = f"SNS topic {topic} ({region})"
    for queue in plan.of_type("aws:sqs/queue:Queue"):
        policy = queue.inputs.get("redrivePolicy")
        if isinstance(policy, str):
            region, dlq = _arn_region_name(json.loads(policy).get("deadLetterTargetArn", ""))
            out[("queue", region, dlq)] = f"SQS queue {dlq} ({region})"
    for cfg in plan.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"):
        dest = str(cfg.get("destinationConfig.onFailure.destination") or "")
        if dest.startswith("arn:aws:sqs:"):
            region, q = _arn_region_name(dest)
            out[("queue", region, q)] = f"SQS queue {q} ({region})"
    for m in plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
        region, q = _arn_region_name(str(m.inputs.get("eventSourceArn") or ""))
        out[("queue", region, q)] = f"SQS queue {q} ({region})"
        fn = str(m.inputs.get("functionName") or "").rsplit(":", 1)[-1]
        out[("function", m.region, fn)] = f"Lambda function {fn} ({m.region})"
    for i in plan.of_type("aws:apigatewayv2/integration:Integration"):
        found = re.search(r":function:([\w-]+)", str(i.inputs.get("integrationUri") or ""))
        if found:
            out[("function", i.region, found.group(1))] = f"Lambda function {found.group(1)} ({i.region})"
    for s in plan.of_type("aws:sns/topicSubscription:TopicSubscription"):
        if s.inputs.get("protocol") in ("lambda", "sqs"):
            region, target = _arn_region_name(str(s.inputs.get("endpoint") or ""))
            kind = "function" if s.inputs.get("protocol") == "lambda" else "queue"
            out[(kind, region, target)] = f"{kind} {target} ({region})"
    for api in plan.of_type("aws:apigatewayv2/api:Api"):
        api_id = str(api.outputs.get("id") or api.outputs.get("arn", "").rsplit("/", 1)[-1])
        out[("api", api.region, api_id)] = f"HTTP API {api.inputs.get('name')} ({api.region})"
    for c in plan.of_type("aws:synthetics/canary:Canary"):
        out[("canary", c.region, str(c.inputs.get("name")))] = f"canary {c.inputs.get('name')} ({c.region})"
    for arn in workload_published_topics(plan):
        region, topic = _arn_region_name(arn)
        out[("published", region, topic)] = f"SNS topic {topic} ({region}), published to by a cluster workload"
    return [(kind, label, region, ident) for (kind, region, ident), label in sorted(
        out.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2]))]


PATH_METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "topic": ("AWS/SNS", ("NumberOfNotificationsFailed",), "TopicName"),
    "queue": ("AWS/SQS", ("ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible"), "QueueName"),
    "function": ("AWS/Lambda", ("Errors",), "FunctionName"),
    "api": ("AWS/ApiGateway", ("5xx",), "ApiId"),
    "canary": ("CloudWatchSynthetics", ("SuccessPercent", "Failed"), "CanaryName"),
    "published": ("AWS/SNS", ("NumberOfMessagesPublished",), "TopicName"),
}
# Kinds whose alarm must fire on silence: the watched metric is a heartbeat (missing data = breaching, and the
# alarm fires when too FEW messages arrive).
SILENCE_KINDS = ("published",)


@rule
def alerting_path_watched(plan: Plan) -> Iterator[Violation]:
    """Every notification path (topic, queue, function, API, canary) has an alarm of its own.

    Off only when the operator switched the watching off (alertingPath.enabled)."""
    if not plan.config.alerting_path.enabled:
        return
    for kind, label, region, ident in notification_paths(plan):
        if ident in ("", UNKNOWN):
            continue  # an id AWS assigns, unknown at a preview: checked once known (make plan, after `pulumi up`)
        namespace, metrics, dim = PATH_METRICS[kind]
        silence = kind in SILENCE_KINDS
        if not _watched(plan, namespace, metrics, dim, ident, region, on_silence=silence):
            how = " that fires when it drops (LessThan..., treatMissingData breaching)" if silence else ""
            yield Violation("alerting_path_watched", label,
                            f"no alarm on {namespace} {'/'.join(metrics)} with {dim}={ident} in {region}{how}: "
                            "a failure on this path would go unnoticed")


@rule
def alertmanager_heartbeat_received(plan: Plan) -> Iterator[Violation]:
    """Where the stack receives Alertmanager's heartbeat: its topic exists, only the role of Alertmanager's
    service account may publish there (and nothing else), and the missing-heartbeat alarm pages P1."""
    name = "alertmanager_heartbeat_received"
    cfg = plan.config
    if not heartbeat_enabled(cfg):
        return
    naming = Naming(cfg.service, cfg.environment)
    home = cfg.aws.region
    topic_name = heartbeat_topic_name(naming)
    topic = next((t for t in plan.of_type("aws:sns/topic:Topic") if t.inputs.get("name") == topic_name
                  and t.region == home), None)
    if topic is None:
        yield Violation(name, "stack", f"no heartbeat topic {topic_name} in {home}: the Alertmanager config "
                                       "publishes to it")
    role_name = naming.physical(HEARTBEAT_TOPIC, max_len=MAX_IAM_ROLE_NAME)
    role = workload_roles(plan).get(role_name)
    if role is None:
        yield Violation(name, "stack", f"no IRSA role {role_name}: Alertmanager could not publish its heartbeat")
    else:
        trust = json.loads(str(role.inputs.get("assumeRolePolicy")))
        for msg in irsa_problems(trust, cfg.kubernetes.oidc_provider_arn, cfg.kubernetes.namespace,
                                 cfg.alerting_path.heartbeat.service_account):
            yield Violation(name, role.label, msg)
        for pol in plan.of_type("aws:iam/rolePolicy:RolePolicy"):
            if pol.inputs.get("role") != role_name:
                continue
            for stmt in _statements(pol.inputs.get("policy")):
                for action in _actions(stmt):
                    if action == "sns:Publish":
                        wrong = [r for r in _resources(stmt) if _arn_region_name(r) != (home, topic_name)]
                        if wrong:
                            yield Violation(name, pol.label, f"Alertmanager's role may publish to {wrong}: the "
                                                             "heartbeat role publishes the heartbeat only")
                    elif action not in ("kms:Decrypt", "kms:GenerateDataKey"):
                        yield Violation(name, pol.label, f"Alertmanager's role also allows {action}")
                    elif "kms:ResourceAliases" not in json.dumps(stmt.get("Condition") or {}):
                        yield Violation(name, pol.label, f"{action} without the alert key's alias condition")
    p1 = f"{naming.physical('alerts', 'p1')}"
    alarms = [a for a in _alarms(plan) if a.region == home and a.inputs.get("namespace") == "AWS/SNS"
              and a.inputs.get("metricName") == "NumberOfMessagesPublished"
              and (a.inputs.get("dimensions") or {}).get("TopicName") == topic_name]
    if not any(a.inputs.get("treatMissingData") == "breaching" for a in alarms):
        yield Violation(name, "stack", f"no alarm on {topic_name}'s NumberOfMessagesPublished with missing data "
                                       "breaching: a stopped heartbeat sends no data at all")
    for a in alarms:
        targets = [str(t) for t in a.inputs.get("alarmActions") or []]
        if not any(_arn_region_name(t) == (home, p1) for t in targets):
            yield Violation(name, a.label, f"the missing heartbeat notifies {targets}, not the P1 topic {p1}")


