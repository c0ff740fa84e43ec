"""Day 2: the Lambda@Edge embedding function, its model bucket, replica log groups and per-region alarms.

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
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.artifacts.edge_model import EdgeModel, ensure_model
from infra.artifacts.packaging import RUNTIME, LambdaPackage, build_lambda
from infra.components.edge_composite import edge_composites
from infra.components.severity_topics import AlertTopics
from infra.config import EmfEdgeConfig
from infra.core import iam
from infra.core.context import StackContext
from infra.core.naming import MAX_ALARM_NAME, MAX_BUCKET_NAME, MAX_IAM_ROLE_NAME
from lambdas.edge_inference import emf

COMPONENT = "emf-edge"
TOKEN = "akidb:emf-edge:EmfEdge"
FUNCTION_FOLDER = "edge_inference"
EDGE_FUNCTION_REGION = "us-east-1"  # Lambda@Edge functions can only be created there
# AWS managed CloudFront policies: CachingDisabled (embeddings are per request; POST is never cached anyway).
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]

# Alarm kind -> (severity, description). Every regional alarm tickets (P2); errors are user-visible and page
# through the Region's edge-outage composite (infra/components/edge_composite.py), once per outage.
ALARM_KINDS: dict[str, tuple[str, str]] = {
    "inference-latency-p95": ("P2", "p95 inference latency of the edge embedding function is above its threshold"),
    "inference-latency-avg": ("P2", "average inference latency of the edge embedding function is above threshold"),
    "errors": ("P2", "the edge embedding function answers 5xx (model unavailable or internal error)"),
    "cache-hit-rate": ("P2", "too many requests hit a cold container (model load on the request path)"),
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
    return build_lambda(FUNCTION_FOLDER, kind="edge-origin",
                        baked={"settings.json": settings.encode(), "tokenizer.json": model.tokenizer.read_bytes()})


@dataclass
class EmfEdgeArgs:
    context: StackContext
    topics: AlertTopics  # the severity topics of every alarm region


class EmfEdge(pulumi.ComponentResource):
    function_name: str
    qualified_arn: pulumi.Output[str]
    alarm_names: dict[str, list[str]]  # region -> physical alarm names
    log_group_names: dict[str, str]  # region -> log group name (the same name in every region)
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

        self.function_name = ctx.naming.physical(cfg.function_name, max_len=64)
        model = ensure_model(quiet=True)
        bucket = self._model_bucket(name, ctx, model, child)
        pkg = build_package(cfg, self.model_bucket, ctx.region, model)
        role = self._role(name, ctx, bucket, model)
        self.log_group_names = {}
        for region in cfg.edge_regions:
            aws.cloudwatch.LogGroup(
                f"{name}-logs-{region}", region=region, name=log_group_name(self.function_name),
                retention_in_days=cfg.log_retention_days, opts=child)
            self.log_group_names[region] = log_group_name(self.function_name)

        function = aws.lambda_.Function(
            f"{name}-function",
            region=EDGE_FUNCTION_REGION,
            name=self.function_name,
            description=f"POST /embed at the edge: {cfg.model_name} embeddings with EMF metrics",
            role=role.arn,
            runtime=RUNTIME,
            handler=pkg.handler,
            code=pulumi.FileArchive(str(pkg.path)),
            source_code_hash=pkg.source_code_hash,
            architectures=["x86_64"],
            memory_size=cfg.memory_mb,
            timeout=cfg.timeout_s,
            publish=True,
            # Replicas are deleted hours after the association goes: deleting the function would fail.
            skip_destroy=True,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, depends_on=[bucket]),
        )
        self.qualified_arn = function.qualified_arn
        self.alarm_names = {region: self._alarms(name, ctx, region, args.topics.arns[region], child)
                            for region in cfg.edge_regions}
        # One page per outage: a composite per Region pages on the errors alarm, with a maintenance suppressor.
        self.composite_alarms = edge_composites(self, name, ctx, self.function_name, self.alarm_names, "errors",
                                                args.topics.arns)
        self.distribution_domain = None
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
                      child: pulumi.ResourceOptions) -> aws.s3.Bucket:
        self.model_bucket = ctx.naming.physical("edge-models", ctx.region, max_len=MAX_BUCKET_NAME)
        stateful = pulumi.ResourceOptions(parent=self, protect=ctx.protect())
        bucket = aws.s3.Bucket(f"{name}-models", region=ctx.region, bucket=self.model_bucket, opts=stateful)
        aws.s3.BucketVersioning(
            f"{name}-models-versioning", region=ctx.region, bucket=bucket.bucket,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-models-sse", region=ctx.region, bucket=bucket.bucket,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"),
            )],
            opts=child)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-models-public-access", region=ctx.region, bucket=bucket.bucket,
            block_public_acls=True, block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketPolicy(
            f"{name}-models-tls-only", region=ctx.region, bucket=bucket.bucket,
            policy=iam.document(iam.statement(
                ["s3:*"], [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")], sid="DenyInsecureTransport",
                effect="Deny", principals={"AWS": "*"}, conditions={"Bool": {"aws:SecureTransport": "false"}})),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]))
        aws.s3.BucketObjectv2(
            f"{name}-model-object", region=ctx.region, bucket=bucket.bucket, key=model_key(model),
            source=pulumi.FileAsset(str(model.onnx_int8)), content_type="application/octet-stream",
            opts=child)
        return bucket

    # --------------------------------------------------------------------------------------------------- IAM
    def _role(self, name: str, ctx: StackContext, bucket: aws.s3.Bucket, model: EdgeModel) -> aws.iam.Role:
        cfg = ctx.config.emf_edge
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        role = aws.iam.Role(
            f"{name}-role",
            name=ctx.naming.physical(cfg.function_name, "role", max_len=MAX_IAM_ROLE_NAME),
            assume_role_policy=iam.assume_role_policy("lambda.amazonaws.com", "edgelambda.amazonaws.com"),
            description="Lambda@Edge embedding function (replicas in every edge region)",
            opts=retained)
        log_arns = [pulumi.Output.concat("arn:aws:logs:", region, ":", ctx.account_id, ":log-group:",
                                         log_group_name(self.function_name), ":*")
                    for region in cfg.edge_regions]
        aws.iam.RolePolicy(
            f"{name}-policy", role=role.id,
            policy=iam.document(
                iam.statement(["s3:GetObject"], [pulumi.Output.concat(bucket.arn, "/", model_key(model))],
                              sid="ReadModel"),
                iam.statement(["logs:CreateLogStream", "logs:PutLogEvents"], log_arns, sid="ReplicaLogs"),
            ),
            opts=retained)
        return role

    # ------------------------------------------------------------------------------------------------ alarms
    def _alarms(self, name: str, ctx: StackContext, region: str, topics: dict[str, pulumi.Output[str]],
                child: pulumi.ResourceOptions) -> list[str]:
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
            severity, description = ALARM_KINDS[kind]
            alarm_name = ctx.naming.physical("edge", kind, region, max_len=MAX_ALARM_NAME)
            aws.cloudwatch.MetricAlarm(
                f"{name}-{kind}-{region}", name=alarm_name,
                alarm_description=f"[{severity}] {description} ({region}). Runbook: edge-inference",
                alarm_actions=[topics[severity]], ok_actions=[topics[severity]],
                opts=child, **spec)
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
            price_class="PriceClass_All", is_ipv6_enabled=True, http_version="http2and3",
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
        return dist.domain_name
