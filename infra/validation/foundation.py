"""Rules every component is held to: providers and tags, names, packages, alarms, logs, encryption, IAM."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from infra.artifacts.packaging import read_package
from infra.blocks.context import REQUIRED_TAGS
from infra.config import LOG_RETENTION_DAYS
from infra.validation import Plan, Violation, rule

SUPPORTED_RUNTIMES = ("python3.12", "python3.13", "python3.14")
# Actions that support no resource-level permissions: "*" is the only valid Resource (Service Authorization
# Reference). cloudwatch:PutMetricData additionally needs a namespace condition (checked below).
STAR_ONLY_ACTIONS = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries", "xray:GetTraceSummaries", "xray:BatchGetTraces",
    "cloudwatch:PutMetricData", "cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics",
    "cloudwatch:ListMetrics", "autoscaling:DescribeAutoScalingGroups", "aps:QueryMetrics",
    "ec2:DescribeInstances", "logs:DescribeLogGroups",
    # FIS target resolution and experiment log delivery (AWS Service Authorization Reference: no resource types).
    "tag:GetResources", "ec2:DescribeSubnets", "logs:CreateLogDelivery", "logs:DescribeResourcePolicies",
    "logs:PutResourcePolicy",
}
BROAD_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")
NAME_KEYS = ("name", "alarmName", "functionName", "bucket", "dashboardName", "ruleName", "groupName")


def _aws_custom(plan: Plan) -> list[Any]:
    return [r for r in plan.resources if r.custom and r.type.startswith("aws:")]


@rule
def explicit_providers(plan: Plan) -> Iterator[Violation]:
    """Every AWS/Kubernetes/PagerDuty resource uses a provider built from stack config, never the ambient
    default."""
    for r in plan.resources:
        if r.custom and r.type.startswith(("aws:", "kubernetes:", "pagerduty:")) and (
                not r.provider or r.provider.startswith("default")):
            yield Violation("explicit_providers", r.label,
                                "created with the default provider; pass the component's providers "
                                "(StackContext.component_opts) so region, role and tags come from config")


@rule
def aws_default_tags(plan: Plan) -> Iterator[Violation]:
    for p in plan.of_type("pulumi:providers:aws"):
        raw = p.inputs.get("defaultTags")
        tags = (json.loads(raw) if isinstance(raw, str) else raw or {}).get("tags", {})
        missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
        if missing:
            yield Violation("aws_default_tags", p.label, f"default tags miss {', '.join(missing)}")


@rule
def unique_urns(plan: Plan) -> Iterator[Violation]:
    for urn, n in Counter(r.urn for r in plan.resources).items():
        if n > 1:
            yield Violation("unique_urns", urn, f"registered {n} times (the engine rejects duplicate URNs)")


@rule
def unique_physical_names(plan: Plan) -> Iterator[Violation]:
    seen: dict[tuple[str, str | None, str], str] = {}
    for r in _aws_custom(plan):
        for key in NAME_KEYS:
            value = r.inputs.get(key)
            if isinstance(value, str) and value:
                # Some names are unique only within their owner (an inline policy within its role).
                scope = str(r.inputs.get("role") or "") if r.type == "aws:iam/rolePolicy:RolePolicy" else ""
                ident = (r.type, r.region, f"{scope}/{key}={value}")
                if ident in seen:
                    yield Violation("unique_physical_names", r.label,
                                    f"{key} '{value}' is also used by {seen[ident]} in {r.region or 'global'}")
                seen[ident] = r.label
                break


@rule
def lambda_packages(plan: Plan) -> Iterator[Violation]:
    """Runtime is current, code comes from infra.artifacts.packaging, and the package is within its AWS limits."""
    for fn in plan.of_type("aws:lambda/function:Function"):
        runtime = fn.inputs.get("runtime")
        if runtime not in SUPPORTED_RUNTIMES:
            yield Violation("lambda_packages", fn.label,
                            f"runtime {runtime!r}; allowed: {', '.join(SUPPORTED_RUNTIMES)}")
        code = fn.inputs.get("code")
        path = code.get("path") if isinstance(code, dict) else None
        pkg = read_package(path)
        if path and pkg is None:
            yield Violation("lambda_packages", fn.label, (f"code {path} was not built by infra.artifacts.packaging "
                                                          "(no manifest beside it)"))
            continue
        if pkg is None:
            continue  # deployed from S3: the object's source is checked below
        if fn.inputs.get("s3Bucket"):
            continue
        for msg in pkg.problems():
            yield Violation("lambda_packages", fn.label, msg)
    for obj in plan.of_type("aws:s3/bucketObjectv2:BucketObjectv2", "aws:s3/bucketObject:BucketObject"):
        source = obj.inputs.get("source")
        pkg = read_package(source.get("path")) if isinstance(source, dict) else None
        if pkg is not None:
            for msg in pkg.problems():
                yield Violation("lambda_packages", obj.label, msg)


def valid_period(period: int) -> bool:
    return period in (10, 20, 30) or (period >= 60 and period % 60 == 0)


@rule
def alarm_settings(plan: Plan) -> Iterator[Violation]:
    for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        i = a.inputs
        periods = [i["period"]] if i.get("period") is not None else []
        for q in i.get("metricQueries") or []:
            metric = q.get("metric") or {}
            if metric.get("period") is not None:
                periods.append(metric["period"])
        if not periods:
            yield Violation("alarm_settings", a.label, "no period (on the alarm or its metric queries)")
        evals = int(i.get("evaluationPeriods") or 0)
        for period in periods:
            if not valid_period(int(period)):
                yield Violation("alarm_settings", a.label,
                                f"period {period}: CloudWatch accepts 10, 20, 30 or a multiple of 60 seconds")
            elif int(period) < 3600 and int(period) * evals > 86400:
                yield Violation("alarm_settings", a.label,
                                f"period {period} x evaluationPeriods {evals} exceeds one day")
        if i.get("datapointsToAlarm") and int(i["datapointsToAlarm"]) > evals:
            yield Violation("alarm_settings", a.label, "datapointsToAlarm exceeds evaluationPeriods")
        if i.get("statistic") and i.get("extendedStatistic"):
            yield Violation("alarm_settings", a.label, "statistic and extendedStatistic are exclusive")
        if i.get("treatMissingData") not in ("missing", "ignore", "breaching", "notBreaching"):
            yield Violation("alarm_settings", a.label,
                            "treatMissingData must be set deliberately: missing, ignore, breaching or notBreaching")
        if not i.get("alarmActions"):
            yield Violation("alarm_settings", a.label, "no alarmActions: this alarm notifies nobody")


_ARN_REGION = re.compile(r"^arn:aws:[a-z0-9-]+:([a-z0-9-]*):")


@rule
def alarm_actions_in_region(plan: Plan) -> Iterator[Violation]:
    """CloudWatch alarms can only notify SNS topics in their own region."""
    for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm", "aws:cloudwatch/compositeAlarm:CompositeAlarm"):
        for key in ("alarmActions", "okActions", "insufficientDataActions"):
            for arn in a.inputs.get(key) or []:
                m = _ARN_REGION.match(str(arn))
                if m and m.group(1) and m.group(1) != a.region:
                    yield Violation("alarm_actions_in_region", a.label,
                                    f"{key} {arn} is in {m.group(1)}, the alarm in {a.region}")


@rule
def log_retention(plan: Plan) -> Iterator[Violation]:
    for lg in plan.of_type("aws:cloudwatch/logGroup:LogGroup"):
        days = lg.inputs.get("retentionInDays")
        if days not in LOG_RETENTION_DAYS:
            yield Violation("log_retention", lg.label,
                            f"retentionInDays {days!r}; CloudWatch accepts {', '.join(map(str, LOG_RETENTION_DAYS))}")


@rule
def encryption_at_rest(plan: Plan) -> Iterator[Violation]:
    for t in plan.of_type("aws:sns/topic:Topic"):
        if not t.inputs.get("kmsMasterKeyId"):
            yield Violation("encryption_at_rest", t.label, "topic is not KMS-encrypted (kmsMasterKeyId)")
    for lg in plan.of_type("aws:cloudwatch/logGroup:LogGroup"):
        if not lg.inputs.get("kmsKeyId"):
            yield Violation("encryption_at_rest", lg.label, "log group has no KMS key (kmsKeyId): the stack's "
                            "regional key makes each use of the logs visible in CloudTrail and revocable")
    buckets = plan.of_type("aws:s3/bucket:Bucket")
    sse = {r.inputs.get("bucket") for r in plan.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")}
    blocks = {r.inputs.get("bucket"): r.inputs for r in plan.of_type(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")}
    for b in buckets:
        name = b.outputs.get("bucket") or b.inputs.get("bucket")
        if name not in sse:
            yield Violation("encryption_at_rest", b.label, "no BucketServerSideEncryptionConfiguration")
        block = blocks.get(name)
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        if block is None or not all(block.get(f) for f in flags):
            yield Violation("encryption_at_rest", b.label, "public access is not fully blocked")


def identity_policy_docs(plan: Plan) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every identity policy of the plan (role and managed policies, roles' inline ones), parsed."""
    for r in plan.of_type("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
        doc = r.inputs.get("policy")
        if isinstance(doc, str):
            yield r.label, json.loads(doc)
    for r in plan.of_type("aws:iam/role:Role"):
        for inline in r.inputs.get("inlinePolicies") or []:
            if isinstance(inline.get("policy"), str):
                yield f"{r.label} (inline {inline.get('name')})", json.loads(inline["policy"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@rule
def iam_least_privilege(plan: Plan) -> Iterator[Violation]:
    """No wildcard actions; Resource "*" only where AWS allows nothing else, PutMetricData by namespace."""
    for label, doc in identity_policy_docs(plan):
        for stmt in _as_list(doc.get("Statement", [])):
            if stmt.get("Effect") != "Allow":
                continue
            actions = _as_list(stmt.get("Action", []))
            resources = _as_list(stmt.get("Resource", []))
            for action in actions:
                if action == "*" or str(action).endswith(":*"):
                    yield Violation("iam_least_privilege", label, f"wildcard action {action}")
            if "*" in resources:
                broad = [a for a in actions if a not in STAR_ONLY_ACTIONS]
                if broad:
                    yield Violation("iam_least_privilege", label,
                                    f"Resource '*' for {', '.join(broad)}: scope to ARNs")
                if "cloudwatch:PutMetricData" in actions and "cloudwatch:namespace" not in json.dumps(
                        stmt.get("Condition", {})):
                    yield Violation("iam_least_privilege", label,
                                    "cloudwatch:PutMetricData without a cloudwatch:namespace condition")
    for att in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        arn = str(att.inputs.get("policyArn", ""))
        if arn.endswith(BROAD_MANAGED_POLICIES):
            yield Violation("iam_least_privilege", att.label, f"attaches the broad managed policy {arn}")
