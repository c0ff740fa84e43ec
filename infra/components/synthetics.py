"""Synthetic probes: one CloudWatch Synthetics canary per probe region, seen from outside like a user.

Each canary POSTs a fixed sentence to `/embed` through the CloudFront distribution (status, 384 finite floats,
latency, the X-Amzn-Trace-Id root kept) and GETs the REST tier's health endpoints; code in `lambdas/canary/`,
packaged by `infra.artifacts.canary_package`. Every check writes EMF (`AkiDB/Synthetics`, dimension `Check`)
in the probe's region, so per region the edge gets a user-perspective availability SLI (`Success` of the embed
check) and latency (`Latency`), each with its own alarm, and the canary's own health (runs at all) from
`CloudWatchSynthetics`. This also sees what request-based SLOs cannot: traffic that never arrives.

The `Synthetics` component (config section `synthetics`); its resources lived under the dashboards component
before and keep their identity through aliases (infra/core/moves.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.artifacts.canary_package import HANDLER, build_canary
from infra.blocks.alarms import metric_alarm
from infra.blocks.bucket import PrivateBucket
from infra.blocks.context import StackContext
from infra.components.severity_topics import AlertTopics
from infra.config.synthetics import schedule_minutes
from infra.core import iam
from infra.core.moves import OldParent, moved_from
from infra.core.naming import MAX_ALARM_NAME, MAX_BUCKET_NAME, MAX_IAM_ROLE_NAME
from infra.dashboard_defs import probes as probes_board
from lambdas.canary import probes

SYNTHETICS_NAMESPACE = probes_board.SYNTHETICS_NAMESPACE  # the runtime's own metrics (SuccessPercent...)
PROBE_NAMESPACE = probes.NAMESPACE  # the EMF of every check (lambdas/canary/probes.py is the definition)
CHECK_DIMENSION = probes.DIMENSION
EMBED_CHECK = probes.EMBED_CHECK
CANARY_FOLDER = "canary"
PROBE_RUNBOOK = "synthetic-probe-failure"  # every probe alarm (rules/runbooks.yaml)
COMPONENT = "synthetics"
TOKEN = "akidb:synthetics:Synthetics"
# Where the probes lived before they were a component of their own: children of the dashboards component.
OLD_PARENT: OldParent = ("akidb:dashboards:Dashboards", "dashboards")


@dataclass
class ProbeResult:
    """What the dashboards and the rules need per probe region."""

    canary_names: dict[str, str] = field(default_factory=dict)  # region -> canary name
    checks: list[str] = field(default_factory=list)  # `Check` dimension values every canary publishes
    alarm_names: dict[str, list[str]] = field(default_factory=dict)  # region -> alarm names


@dataclass
class SyntheticsArgs:
    context: StackContext
    topics: AlertTopics  # alarm targets in every probe region
    # The edge's public base URL (https://<distribution domain>) when emf-edge creates the distribution;
    # `synthetics.edgeUrl` wins when set.
    edge_url: pulumi.Input[str] | None = None


class Synthetics(pulumi.ComponentResource):
    """The canaries, their buckets and role, and the per-region probe alarms."""

    result: ProbeResult

    def __init__(self, name: str, args: SyntheticsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        ctx = args.context
        moved = pulumi.ResourceOptions(transformations=[moved_from(self, name, OLD_PARENT, OLD_PARENT[1])])
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, pulumi.ResourceOptions.merge(moved, opts)))
        self.result = create_probes(name, ctx, args.topics, self, ctx.config.synthetics.edge_url or args.edge_url)
        self.register_outputs({"canaries": self.result.canary_names, "alarms": self.result.alarm_names})


def canary_name(ctx: StackContext, region: str) -> str:
    return probes_board.canary_name(ctx.config, region)


def create_probes(name: str, ctx: StackContext, topics: AlertTopics, parent: pulumi.Resource,
                  edge_url: pulumi.Input[str] | None) -> ProbeResult:
    """Canaries, their artifact buckets, one execution role and the per-region alarms, under `parent`."""
    s = ctx.config.synthetics
    child = pulumi.ResourceOptions(parent=parent)
    account = ctx.account_id
    pkg = build_canary(CANARY_FOLDER)
    result = ProbeResult(checks=probes_board.probe_checks(ctx.config))
    if (probes.EMBED_CHECK in result.checks) != (edge_url is not None):
        raise ValueError("the edge URL and the planned checks disagree (synthetics.edgeUrl / "
                         "emfEdge.createDistribution)")
    minutes = schedule_minutes(s.schedule)
    buckets = {region: _artifact_bucket(name, ctx, region, parent) for region in s.probe_regions}
    # ARNs from the physical names (known at a first preview), each depending on what it names.
    bucket_arns = [iam.known_after(b, ctx.arns.bucket(
        ctx.naming.physical("probe-artifacts", region, max_len=MAX_BUCKET_NAME))) for region, b in buckets.items()]
    role_name = ctx.naming.physical("probe", "role", max_len=MAX_IAM_ROLE_NAME)
    role = aws.iam.Role(
        f"{name}-probe-role", name=role_name,
        assume_role_policy=iam.assume_role_policy("lambda.amazonaws.com"),
        description="CloudWatch Synthetics canaries (artifacts, logs, their own metrics)", opts=child)
    log_groups = [pulumi.Output.concat("arn:aws:logs:", region, ":", account, ":log-group:/aws/lambda/cwsyn-",
                                       canary_name(ctx, region), "-*") for region in s.probe_regions]
    role_arn = iam.known_after(role, ctx.arns.role(role_name))
    aws.iam.RolePolicy(f"{name}-probe-policy", role=iam.known_after(role, role_name), policy=iam.document(
        iam.statement(["s3:PutObject", "s3:GetObject"], [pulumi.Output.concat(a, "/*") for a in bucket_arns],
                      sid="Artifacts"),
        iam.statement(["s3:GetBucketLocation"], bucket_arns, sid="ArtifactBuckets"),
        iam.statement(["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                      [pulumi.Output.concat(lg, "*") for lg in log_groups] + log_groups, sid="CanaryLogs"),
        iam.statement(["cloudwatch:PutMetricData"], "*", sid="SyntheticsMetrics",
                      conditions={"StringEquals": {"cloudwatch:namespace": SYNTHETICS_NAMESPACE}}),
    ), opts=child)
    for region in s.probe_regions:
        cname = canary_name(ctx, region)

        def settings_json(url: str | None, c: str = cname) -> str:
            return json.dumps({
                "canary": c, "edge_url": url, "rest_url": s.rest_url, "health_paths": s.health_paths,
                "embed_text": s.embed_text, "embed_dimensions": s.embed_dimensions,
                "max_latency_ms": s.max_latency_ms,
                # every check must fit in the run: split the timeout between them, with a margin
                "request_timeout_s": round(max(1.0, (s.timeout_s - 2) / max(1, len(result.checks))), 1),
            }, sort_keys=True)

        settings = pulumi.Output.from_input(edge_url).apply(settings_json)
        aws.synthetics.Canary(
            f"{name}-probe-{region}", region=region, name=cname, runtime_version=s.runtime_version,
            zip_file=str(pkg.path), handler=HANDLER, execution_role_arn=role_arn,
            artifact_s3_location=pulumi.Output.concat("s3://", buckets[region].bucket, "/runs/"),
            artifact_config=aws.synthetics.CanaryArtifactConfigArgs(
                s3_encryption=aws.synthetics.CanaryArtifactConfigS3EncryptionArgs(encryption_mode="SSE_S3")),
            schedule=aws.synthetics.CanaryScheduleArgs(expression=s.schedule, duration_in_seconds=0),
            run_config=aws.synthetics.CanaryRunConfigArgs(
                timeout_in_seconds=s.timeout_s, memory_in_mb=s.memory_mb, active_tracing=False,
                environment_variables={"CANARY_SETTINGS": settings}),
            success_retention_period=s.success_retention_days, failure_retention_period=s.failure_retention_days,
            start_canary=True, delete_lambda=True, opts=child)
        result.canary_names[region] = cname
        result.alarm_names[region] = _alarms(name, ctx, region, cname, result.checks, minutes,
                                             topics.arns[region], parent)
    return result


def _artifact_bucket(name: str, ctx: StackContext, region: str, parent: pulumi.Resource) -> aws.s3.Bucket:
    """Run artifacts (logs, HAR, results) expire after `artifactExpirationDays`: nothing here is a record."""
    s = ctx.config.synthetics
    return PrivateBucket(f"{name}-probe-artifacts-{region}", parent=parent, ctx=ctx, region=region,
                         name=ctx.naming.physical("probe-artifacts", region, max_len=MAX_BUCKET_NAME),
                         expiration_days=s.artifact_expiration_days, suffixes={"public_access": "block"}).bucket


def _alarms(name: str, ctx: StackContext, region: str, cname: str, checks: list[str], minutes: int,
            topics: dict[str, pulumi.Output[str]], parent: pulumi.Resource) -> list[str]:
    s = ctx.config.synthetics
    period = minutes * 60
    names: list[str] = []

    def alarm(key: str, severity: str, description: str, **kwargs: Any) -> None:
        alarm_name = ctx.naming.physical("probe", region, key, max_len=MAX_ALARM_NAME)
        metric_alarm(f"{name}-probe-{region}-{key.replace('/', '-')}", parent=parent, region=region,
                     name=alarm_name, description=description, runbook=PROBE_RUNBOOK, topic_arn=topics[severity],
                     period=period, **kwargs)
        names.append(alarm_name)

    m_of_n = {"evaluation_periods": s.evaluation_periods, "datapoints_to_alarm": s.datapoints_to_alarm}
    for check in checks:
        edge = check == EMBED_CHECK
        what = "edge POST /embed through CloudFront" if edge else f"REST health check {check}"
        # No data means no proof the path works: breaching (the canary-health alarm says why).
        alarm(f"{check}-availability", "P1" if edge else "P2",
              f"Synthetic probe from {region}: {what} failed in {s.datapoints_to_alarm} of the last "
              f"{s.evaluation_periods} runs (user-perspective availability)",
              namespace=PROBE_NAMESPACE, metric_name="Success", dimensions={CHECK_DIMENSION: check},
              statistic="Average", comparison_operator="LessThanThreshold", threshold=1.0,
              treat_missing_data="breaching", **m_of_n)
        if edge:
            alarm(f"{check}-latency", "P2",
                  f"Synthetic probe from {region}: POST /embed average latency above "
                  f"{s.max_latency_ms * 0.5:.0f} ms (half the per-check limit) in {s.datapoints_to_alarm} of "
                  f"{s.evaluation_periods} runs",
                  namespace=PROBE_NAMESPACE, metric_name="Latency", dimensions={CHECK_DIMENSION: check},
                  statistic="Average", comparison_operator="GreaterThanThreshold",
                  threshold=s.max_latency_ms * 0.5, treat_missing_data="notBreaching", **m_of_n)
    # The canary's own failure: it stopped running (no SuccessPercent sample at all).
    alarm("canary-not-running", "P2",
          f"Canary {cname} has not reported a run for {2 * minutes} minutes: the probes are blind",
          namespace=SYNTHETICS_NAMESPACE, metric_name="SuccessPercent", dimensions={"CanaryName": cname},
          statistic="SampleCount", comparison_operator="LessThanThreshold", threshold=1.0,
          evaluation_periods=2, datapoints_to_alarm=2, treat_missing_data="breaching")
    return names
