"""Day 5 rules: canaries (runtime, schedule, package, artifacts), budget scope, an alarm on every notification
path (the heartbeat topic Alertmanager publishes to included), the heartbeat's receiving side, stores that can be
restored, and the monthly estimate under its ceiling."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infra.artifacts.packaging import read_package
from infra.components.alerting_path import HEARTBEAT_TOPIC, heartbeat_enabled, heartbeat_topic_name
from infra.config.synthetics import CANARY_RUNTIMES, CANARY_SCHEDULE_PATTERN, schedule_minutes
from infra.core.naming import MAX_IAM_ROLE_NAME, Naming
from infra.core.plan import UNKNOWN, PlannedResource
from infra.offline.cost import PLAN_TARGET_USD, estimate
from infra.validation import Plan, Violation, rule
from infra.validation.xray import irsa_problems

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def _by_bucket(plan: Plan, token: str) -> dict[str, PlannedResource]:
    return {str(r.inputs.get("bucket")): r for r in plan.of_type(token)}


@rule
def canary_runtime_and_schedule(plan: Plan) -> Iterator[Violation]:
    """A current Python runtime, a schedule the alarms can follow, code from the packaging, encrypted expiring
    artifacts in the canary's own region."""
    name = "canary_runtime_and_schedule"
    buckets = {str(b.inputs.get("bucket")): b for b in plan.of_type("aws:s3/bucket:Bucket")}
    lifecycles = _by_bucket(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    for c in plan.of_type("aws:synthetics/canary:Canary"):
        i = c.inputs
        if i.get("runtimeVersion") not in CANARY_RUNTIMES:
            yield Violation(name, c.label, f"runtimeVersion {i.get('runtimeVersion')!r}; allowed: "
                                           f"{', '.join(CANARY_RUNTIMES)}")
        expr = str(c.get("schedule.expression") or "")
        if not re.match(CANARY_SCHEDULE_PATTERN, expr):
            yield Violation(name, c.label, f"schedule {expr!r}: rate(N minutes) up to rate(1 hour)")
        else:
            if c.get("schedule.durationInSeconds") not in (0, 0.0):
                yield Violation(name, c.label, "schedule.durationInSeconds must be 0 (run until stopped)")
            if float(c.get("runConfig.timeoutInSeconds") or 0) > schedule_minutes(expr) * 60:
                yield Violation(name, c.label, "runConfig.timeoutInSeconds exceeds the schedule's period")
        if float(c.get("runConfig.memoryInMb") or 960) < 960:
            yield Violation(name, c.label, "runConfig.memoryInMb below the Synthetics minimum 960")
        path = i.get("zipFile")
        pkg = read_package(path)
        if pkg is None:
            yield Violation(name, c.label, f"zipFile {path!r} was not built by infra.artifacts (no manifest)")
        else:
            module = str(i.get("handler") or "").rsplit(".", 1)[0]
            with zipfile.ZipFile(Path(str(path))) as zf:
                if f"python/{module}.py" not in zf.namelist():
                    yield Violation(name, c.label, f"handler {i.get('handler')!r}: no python/{module}.py in the zip")
            for msg in pkg.problems():
                yield Violation(name, c.label, msg)
        m = re.match(r"^s3://([^/]+)/", str(i.get("artifactS3Location") or ""))
        bucket = buckets.get(m.group(1)) if m else None
        if bucket is None:
            yield Violation(name, c.label, "artifactS3Location is not a bucket of this stack")
        else:
            if bucket.region != c.region:
                yield Violation(name, c.label, f"artifact bucket in {bucket.region}, canary in {c.region}")
            life = lifecycles.get(str(bucket.inputs.get("bucket")))
            if life is None or not any(r.get("expiration") for r in life.inputs.get("rules") or []):
                yield Violation(name, c.label, "artifact bucket has no expiring lifecycle rule")
        if not c.get("artifactConfig.s3Encryption.encryptionMode"):
            yield Violation(name, c.label, "artifactConfig.s3Encryption is not set (artifacts unencrypted)")


def _provider_component(provider: PlannedResource) -> str | None:
    raw = provider.inputs.get("defaultTags")
    tags = (json.loads(raw) if isinstance(raw, str) else raw or {}).get("tags", {})
    component = tags.get("component")
    return component if isinstance(component, str) else None


def _topic_policy_allows(plan: Plan, topic_arn: str, service: str) -> bool:
    for p in plan.of_type("aws:sns/topicPolicy:TopicPolicy"):
        if p.inputs.get("arn") == topic_arn and service in str(p.inputs.get("policy")):
            return True
    return False


@rule
def budget_scope(plan: Plan) -> Iterator[Violation]:
    """The budget counts this stack only (its environment and component tags), alerts on actual and forecast
    spend, and its target topic accepts Budgets; anomaly alerts reach a topic that accepts them."""
    name = "budget_scope"
    cfg = plan.config
    components = sorted(filter(None, (_provider_component(p) for p in plan.of_type("pulumi:providers:aws"))))
    budgets = plan.of_type("aws:budgets/budget:Budget")
    if cfg.cost_watch.enabled and not budgets:
        yield Violation(name, "stack", "costWatch.enabled but no aws:budgets Budget is planned")
    for b in budgets:
        tags: dict[str, list[str]] = {}
        for part in b.get("filterExpression.ands") or []:
            t = part.get("tags") or {}
            tags[str(t.get("key"))] = list(t.get("values") or [])
        for f in b.inputs.get("costFilters") or []:
            for v in f.get("values") or []:
                key, _, value = str(v).removeprefix("user:").partition("$")
                tags.setdefault(key, []).append(value)
        if tags.get("environment") != [cfg.environment]:
            yield Violation(name, b.label, f"not scoped to environment={cfg.environment} "
                                           f"(tags filter {tags.get('environment')})")
        missing = [c for c in components if c and c not in tags.get("component", [])]
        if "component" not in tags or missing:
            yield Violation(name, b.label, f"component tag filter misses {missing or 'the stack components'}")
        kinds = {n.get("notificationType") for n in b.inputs.get("notifications") or []}
        if not {"ACTUAL", "FORECASTED"} <= kinds:
            yield Violation(name, b.label, f"needs ACTUAL and FORECASTED notifications (has {sorted(kinds)})")
        for n in b.inputs.get("notifications") or []:
            for arn in n.get("subscriberSnsTopicArns") or []:
                if not _topic_policy_allows(plan, arn, "budgets.amazonaws.com"):
                    yield Violation(name, b.label, f"topic {arn} does not let budgets.amazonaws.com publish")
    for s in plan.of_type("aws:costexplorer/anomalySubscription:AnomalySubscription"):
        for sub in s.inputs.get("subscribers") or []:
            if sub.get("type") == "SNS":
                if s.inputs.get("frequency") != "IMMEDIATE":
                    yield Violation(name, s.label, "SNS subscribers need frequency IMMEDIATE")
                if not _topic_policy_allows(plan, str(sub.get("address")), "costalerts.amazonaws.com"):
                    yield Violation(name, s.label, f"topic {sub.get('address')} does not let "
                                                   "costalerts.amazonaws.com publish")


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


def _versioned(plan: Plan) -> dict[str, Any]:
    return {str(v.inputs.get("bucket")): v.get("versioningConfiguration.status") for v in
            plan.of_type("aws:s3/bucketVersioning:BucketVersioning")}


@rule
def stores_restorable(plan: Plan) -> Iterator[Violation]:
    """What the stack stores can be restored: state buckets versioned with a noncurrent-version lifecycle,
    DynamoDB tables with point-in-time recovery (the RPO/RTO table of the README)."""
    name = "stores_restorable"
    versioned = _versioned(plan)
    lifecycles = _by_bucket(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    for b in plan.of_type("aws:s3/bucket:Bucket"):
        bucket = str(b.inputs.get("bucket"))
        if versioned.get(bucket) != "Enabled":
            yield Violation(name, b.label, "bucket holds state but versioning is not Enabled")
        life = lifecycles.get(bucket)
        if life is not None and not any(r.get("noncurrentVersionExpiration") for r in life.inputs.get("rules") or []):
            yield Violation(name, b.label, "versioned bucket without a noncurrentVersionExpiration rule")
    for t in plan.of_type("aws:dynamodb/table:Table"):
        if not t.get("pointInTimeRecovery.enabled"):
            yield Violation(name, t.label, "no point-in-time recovery")


@rule
def cost_within_ceiling(plan: Plan) -> Iterator[Violation]:
    """The monthly estimate (infra/offline/cost.py) stays below costWatch.ceilingUsd."""
    ceiling = plan.config.cost_watch.ceiling_usd
    total = estimate(plan).total
    if total > ceiling:
        yield Violation("cost_within_ceiling", "stack",
                        f"estimated ${total:,.2f}/month exceeds costWatch.ceilingUsd ${ceiling:,.2f} "
                        f"(the plan's target is +${PLAN_TARGET_USD:.0f}); `make cost` shows the lines")
