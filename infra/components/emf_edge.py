"""The Lambda@Edge embedding function, its model bucket, replica log groups and per-region alarms.

- The model (all-MiniLM-L6-v2, ONNX INT8, built by `infra/artifacts/edge_model.py`) goes to an encrypted, versioned,
  private bucket under a content-addressed key; the zip holds code, tokenizer and dependencies only.
- Lambda@Edge reads no environment variables: bucket, key, hash, namespace and model name are baked into the
  zip as `settings.json` (the zip name carries their hash, so each stack gets its own package).
- The function lives in us-east-1, is published (CloudFront needs a numbered version), trusts lambda and
  edgelambda, and is retained on destroy (replicas outlive the association by hours).
- Replicas log, and so emit EMF, in the region where they run: the log group `/aws/lambda/us-east-1.<name>`
  and every alarm exist in each configured edge region, each alarm notifying that region's severity topic.
- Alarm metrics and dimensions come from `lambdas/edge_inference/emf.py`, the module the handler writes its
  EMF with; `infra/validation/edge.py` runs the handler and fails the plan if an alarm watches anything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws

from infra.artifacts.packaging import LambdaPackage, build_lambda
from infra.blocks.alarms import metric_alarm
from infra.blocks.bucket import PrivateBucket
from infra.blocks.context import StackContext
from infra.blocks.function import FunctionSpec, LogicalNames, PythonFunction
from infra.components.edge_composite import EdgeOutageArgs, edge_composites
from infra.components.severity_topics import AlertTopics
from infra.config import EmfEdgeConfig
from infra.config.coverage import DISTRIBUTION_PRICE_CLASS
from infra.core import iam
from infra.core.naming import MAX_ALARM_NAME, MAX_BUCKET_NAME, MAX_IAM_ROLE_NAME, MAX_LAMBDA_NAME, Naming
from lambdas.edge_inference import emf

if TYPE_CHECKING:
    # The model build (numpy, onnxruntime) is imported where the component builds the model: this module's names
    # are also read by the plan-time rules, which run in the policy pack's venv without those (docs/policy-pack.md).
    from infra.artifacts.edge_model import EdgeModel

COMPONENT = "emf-edge"
TOKEN = "akidb:emf-edge:EmfEdge"
FUNCTION_FOLDER = "edge_inference"
EDGE_FUNCTION_REGION = "us-east-1"  # Lambda@Edge functions can only be created there
# AWS managed CloudFront policies: CachingDisabled (embeddings are per request; POST is never cached anyway).
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]

# Alarm kind -> (severity, description). Every regional alarm tickets (P2); errors are user-visible and page
# through the Region's edge-outage composite (infra/components/edge_composite.py), once per outage.
# kind -> (severity, what it means, runbook id in rules/runbooks.yaml)
ALARM_KINDS: dict[str, tuple[str, str, str]] = {
    "inference-latency-p95": ("P2", "p95 inference latency of the edge embedding function is above its threshold",
                              "edge-latency"),
    "inference-latency-avg": ("P2", "average inference latency of the edge embedding function is above threshold",
                              "edge-latency"),
    "errors": ("P2", "the edge embedding function answers 5xx (model unavailable or internal error)", "edge-errors"),
    # The automation's notify runbook for cold starts (lambdas/runbook_automation/runbook_ids.EDGE_COLD_START).
    "cache-hit-rate": ("P2", "too many requests hit a cold container (model load on the request path)",
                       "lambda-edge-cold-start"),
}


def log_group_name(function_name: str) -> str:
    """Where a replica's logs (and EMF) go, in the region where it ran."""
    return f"/aws/lambda/{EDGE_FUNCTION_REGION}.{function_name}"


def model_key(model: EdgeModel) -> str:
    # Content-addressed: a new model is a new object; the old version stays for replicas still running it.
    return f"models/all-minilm-l6-v2/{model.sha256[:16]}/model.int8.onnx"


def baked_settings(cfg: EmfEdgeConfig, bucket: str, bucket_region: str, model: EdgeModel) -> dict[str, Any]:
    meta = model.meta
    return {
        "bucket": bucket,
        "bucket_region": bucket_region,
        "model_key": model_key(model),
        "model_sha256": model.sha256,
        "model_name": cfg.model_name,
        "namespace": cfg.namespace,
        "tokenizer_file": "tokenizer.json",
        "max_tokens": int(str(meta["max_tokens"])),
        "dimension": int(str(meta["dimension"])),
        "normalize": bool(meta["normalize"]),
    }


def build_package(cfg: EmfEdgeConfig, bucket: str, bucket_region: str, model: EdgeModel) -> LambdaPackage:
    settings = json.dumps(baked_settings(cfg, bucket, bucket_region, model), indent=2, sort_keys=True) + "\n"
    # With the runtime's bytecode: importing numpy, onnxruntime and the function from source cost ~250 ms CPU of
    # each cold start (docs/performance.md), compiled again every time as /var/task is read-only.
    return build_lambda(FUNCTION_FOLDER, kind="edge-origin", bytecode=True,
                        baked={"settings.json": settings.encode(), "tokenizer.json": model.tokenizer.read_bytes()})


def function_name(naming: Naming, cfg: EmfEdgeConfig) -> str:
    """The edge function's physical name (`EmfEdge.function_name`; other components receive it from there)."""
    return naming.physical(cfg.function_name, max_len=MAX_LAMBDA_NAME)


@dataclass
class EmfEdgeArgs:
    context: StackContext
    topics: AlertTopics  # the severity topics of every alarm region


class EmfEdge(pulumi.ComponentResource):
    function_name: str
    qualified_arn: pulumi.Output[str]
    alarm_names: dict[str, list[str]]  # region -> physical alarm names
    log_group_names: dict[str, str]  # region -> log group name (the same name in every region)
    regions: list[str]  # where replicas run (and log, and are alarmed on)
    model_bucket: str
    distribution_domain: pulumi.Output[str] | None

    def __init__(self, name: str, args: EmfEdgeArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        cfg = ctx.config.emf_edge
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        child = pulumi.ResourceOptions(parent=self)
        missing = [r for r in cfg.edge_regions if r not in args.topics.arns]
        if missing:
            raise ValueError(f"no severity topics for edge regions {missing}: SeverityTopics must cover them")

        self.function_name = function_name(ctx.naming, cfg)
        from infra.artifacts.edge_model import ensure_model  # the model build: see the TYPE_CHECKING import

        model = ensure_model(quiet=True)
        bucket = self._model_bucket(name, ctx, model, child)
        pkg = build_package(cfg, self.model_bucket, ctx.region, model)
        self.regions = list(cfg.edge_regions)
        self.log_group_names = {region: log_group_name(self.function_name) for region in cfg.edge_regions}
        edge = PythonFunction(
            LogicalNames(function=f"{name}-function", role=f"{name}-role", policy=f"{name}-policy",
                         logs=f"{name}-logs-{{region}}"),
            FunctionSpec(
                name=self.function_name,
                role_name=ctx.naming.physical(cfg.function_name, "role", max_len=MAX_IAM_ROLE_NAME),
                role_description="Lambda@Edge embedding function (replicas in every edge region)",
                trusted_services=("lambda.amazonaws.com", "edgelambda.amazonaws.com"),
                package=pkg,
                region=EDGE_FUNCTION_REGION,
                description=f"POST /embed at the edge: {cfg.model_name} embeddings with EMF metrics",
                memory_mb=cfg.memory_mb,
                timeout_s=cfg.timeout_s,
                publish=True,
                # Replicas are deleted hours after the association goes: deleting the function would fail.
                retain=True,
                log_retention_days=cfg.log_retention_days,
                log_groups=[(region, log_group_name(self.function_name)) for region in cfg.edge_regions],
                log_statement_sid="ReplicaLogs",
                statements_before_logs=[iam.statement(["s3:GetObject"], [f"{bucket.arn}/{model_key(model)}"],
                                                      sid="ReadModel")],
                depends_on=[bucket.bucket],
            ),
            parent=self, ctx=ctx)
        function = edge.function
        self.qualified_arn = function.qualified_arn
        self.alarm_names = {region: self._alarms(name, ctx, region, args.topics.arns[region])
                            for region in cfg.edge_regions}
        # One page per outage: a composite per Region pages on the errors alarm, with a maintenance suppressor.
        self.composite_alarms = edge_composites(self, name, ctx, EdgeOutageArgs(
            function_name=self.function_name, alarm_names=self.alarm_names, paging_alarm_kind="errors",
            topics=args.topics.arns))
        self.distribution_domain = None
        self.distribution: aws.cloudfront.Distribution | None = None  # watched by infra/components/coverage.py
        if cfg.create_distribution:
            self.distribution_domain = self._distribution(name, cfg, function.qualified_arn, child)
        self.register_outputs({
            "functionName": self.function_name,
            "qualifiedArn": self.qualified_arn,
            "alarmNames": self.alarm_names,
            "logGroupNames": self.log_group_names,
            "modelBucket": self.model_bucket,
            "distributionDomain": self.distribution_domain,
        })

    # ------------------------------------------------------------------------------------------------- model
    def _model_bucket(self, name: str, ctx: StackContext, model: EdgeModel,
                      child: pulumi.ResourceOptions) -> PrivateBucket:
        self.model_bucket = ctx.naming.physical("edge-models", ctx.region, max_len=MAX_BUCKET_NAME)
        bucket = PrivateBucket(f"{name}-models", parent=self, ctx=ctx, name=self.model_bucket, region=ctx.region)
        aws.s3.BucketObjectv2(
            f"{name}-model-object", region=ctx.region, bucket=bucket.bucket.bucket, key=model_key(model),
            source=pulumi.FileAsset(str(model.onnx_int8)), content_type="application/octet-stream",
            opts=child)
        return bucket

    # ------------------------------------------------------------------------------------------------ alarms
    def _alarms(self, name: str, ctx: StackContext, region: str,
                topics: Mapping[str, pulumi.Input[str]]) -> list[str]:
        cfg = ctx.config.emf_edge
        a = cfg.alarms
        dims = {emf.EDGE_REGION: region}  # replicas in `region` emit EdgeRegion=<region> (AWS_REGION)
        common: dict[str, Any] = {
            "region": region,
            "evaluation_periods": a.evaluation_periods,
            "datapoints_to_alarm": a.datapoints_to_alarm,
        }
        single: dict[str, Any] = {**common, "namespace": cfg.namespace, "dimensions": dims, "period": a.period_s}
        specs: dict[str, dict[str, Any]] = {
            "inference-latency-p95": {
                **single, "metric_name": "InferenceLatency", "extended_statistic": "p95",
                "comparison_operator": "GreaterThanThreshold", "threshold": a.inference_latency_p95_ms,
                # No requests means no slow requests; a p95 of a handful of samples is noise, not a page.
                "treat_missing_data": "notBreaching", "evaluate_low_sample_count_percentiles": "ignore"},
            "inference-latency-avg": {
                **single, "metric_name": "InferenceLatency", "statistic": "Average",
                "comparison_operator": "GreaterThanThreshold", "threshold": a.inference_latency_avg_ms,
                "treat_missing_data": "notBreaching"},
            "errors": {
                **single, "metric_name": "ErrorCount", "statistic": "Sum",
                "comparison_operator": "GreaterThanThreshold", "threshold": a.error_count,
                # ErrorCount is 0/1 on every request: missing data means no requests, not a broken emitter.
                "treat_missing_data": "notBreaching"},
            "cache-hit-rate": {
                **common, "comparison_operator": "LessThanThreshold", "threshold": a.cache_hit_rate_min,
                "treat_missing_data": "notBreaching",
                "metric_queries": self._cache_hit_queries(cfg, dims, a.period_s, a.cache_hit_min_requests)},
        }
        names = []
        for kind, spec in specs.items():
            severity, description, runbook = ALARM_KINDS[kind]
            alarm_name = ctx.naming.physical("edge", kind, region, max_len=MAX_ALARM_NAME)
            metric_alarm(f"{name}-{kind}-{region}", parent=self, name=alarm_name,
                         description=f"[{severity}] {description} ({region})", runbook=runbook,
                         topic_arn=topics[severity], **spec)
            names.append(alarm_name)
        return names

    @staticmethod
    def _cache_hit_queries(cfg: EmfEdgeConfig, dims: dict[str, str], period: int,
                           min_requests: int) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
        def metric(qid: str, metric_name: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
            return aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=qid, return_data=False,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=cfg.namespace, metric_name=metric_name, dimensions=dims, period=period,
                    stat="Sum"))

        return [
            metric("hits", "CacheHit"),
            metric("requests", "RequestCount"),
            # Below `min_requests` a handful of cold starts would dominate the rate: judge it as healthy (1).
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="rate", return_data=True, label="warm-container share",
                expression=f"IF(requests >= {min_requests}, hits / requests, 1)"),
        ]

    # ------------------------------------------------------------------------------------------ distribution
    def _distribution(self, name: str, cfg: EmfEdgeConfig, qualified_arn: pulumi.Output[str],
                      child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        origin_id = "akidb-origin"
        embed = aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
            path_pattern="/embed", target_origin_id=origin_id, viewer_protocol_policy="https-only",
            allowed_methods=ALL_METHODS, cached_methods=["GET", "HEAD"], compress=True,
            cache_policy_id=CACHING_DISABLED_POLICY_ID,
            lambda_function_associations=[aws.cloudfront.DistributionOrderedCacheBehaviorLambdaFunctionAssociationArgs(
                event_type="origin-request", lambda_arn=qualified_arn, include_body=True)])
        dist = aws.cloudfront.Distribution(
            f"{name}-distribution", enabled=True, comment="AkiDB edge embeddings (POST /embed)",
            price_class=DISTRIBUTION_PRICE_CLASS, is_ipv6_enabled=True, http_version="http2and3",
            origins=[aws.cloudfront.DistributionOriginArgs(
                origin_id=origin_id, domain_name=str(cfg.origin_domain),
                custom_origin_config=aws.cloudfront.DistributionOriginCustomOriginConfigArgs(
                    http_port=80, https_port=443, origin_protocol_policy="https-only",
                    origin_ssl_protocols=["TLSv1.2"]))],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=origin_id, viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD"], cached_methods=["GET", "HEAD"],
                cache_policy_id=CACHING_DISABLED_POLICY_ID),
            ordered_cache_behaviors=[embed],
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")),
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True),
            opts=child)
        self.distribution = dist
        domain_name: pulumi.Output[str] = dist.domain_name  # pulumi_aws is not followed (pyproject): Any here
        return domain_name
