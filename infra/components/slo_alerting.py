"""Day 4: SLO alerting — PrometheusRules and Alertmanager routing generated from rules/slos.yaml, severity-topic
subscriptions (PagerDuty / tickets) in every alarm region, and the PagerDuty webhook runbook automation.

What is deployed comes from the same generator as the checked-in files under rules/ (infra/slo/rules.py), only
rendered with this stack's link bases. Secrets (the PagerDuty routing key and webhook secret) only ever travel as
Pulumi secret Outputs: into a Kubernetes Secret the Alertmanager mounts, into SNS subscription endpoints, and into
a Secrets Manager secret the webhook function reads at init.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.artifacts.packaging import build_lambda
from infra.components.incident_timeline import bounded_scale_statements, incident_timeline, webhook_dedupe_statement
from infra.components.severity_topics import SEVERITIES, AlertTopics
from infra.core import iam
from infra.core.context import StackContext
from infra.core.naming import MAX_IAM_ROLE_NAME, MAX_LAMBDA_NAME, MAX_TOPIC_NAME
from infra.slo.alertmanager import ROUTING_KEY_SECRET, alertmanager_config, expected_receiver
from infra.slo.render import dump
from infra.slo.rules import LinkSettings, rule_files
from infra.slo.spec import load_slos

COMPONENT = "slo-alerting"
TOKEN = "akidb:slo-alerting:SloAlerting"
FUNCTION_FOLDER = "runbook_automation"
WEBHOOK_ROUTE = "POST /pagerduty"
RECEIVER_TIMEOUT_S = 4  # PagerDuty waits 5 s for a 2xx
WORKER_TIMEOUT_S = 60
PAGERDUTY_SNS_URL = "https://events.pagerduty.com/integration/{key}/enqueue"


@dataclass
class SloAlertingArgs:
    context: StackContext
    topics: AlertTopics  # the foundation's severity topics and their KMS keys, per region


def links_for(ctx: StackContext) -> LinkSettings:
    cfg = ctx.config.slo_alerting
    return LinkSettings(runbook_base_url=cfg.runbook_base_url, grafana_base_url=cfg.grafana_base_url,
                        ticket_webhook_url=cfg.ticket_webhook_url, heartbeat_webhook_url=cfg.heartbeat_webhook_url)


class SloAlerting(pulumi.ComponentResource):
    prometheus_rules: list[str]
    alertmanager_secret: str | None
    alertmanager_routes: dict[str, str]  # severity -> receiver (the config itself is a Secret: redacted in plans)
    subscriptions: dict[str, dict[str, str]]  # region -> severity -> "pagerduty" | "tickets"
    webhook_url: pulumi.Output[str] | None

    def __init__(self, name: str, args: SloAlertingArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        cfg = ctx.config.slo_alerting
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        child = pulumi.ResourceOptions(parent=self)
        slos = load_slos()
        links = links_for(ctx)
        self.prometheus_rules, self.alertmanager_secret = [], None
        self.alertmanager_routes = {sev: expected_receiver(sev, paging=cfg.paging_enabled)
                                    for sev in (*SEVERITIES, "heartbeat")}
        if ctx.config.kubernetes.enabled:
            self._kubernetes(name, ctx, slos, links, child)
        self.subscriptions = self._subscriptions(name, ctx, args, child)
        self.webhook_url = None
        if cfg.runbooks.enabled:
            self.webhook_url = self._runbooks(name, ctx, args, child)
        self.register_outputs({
            "prometheusRules": self.prometheus_rules,
            "alertmanagerSecret": self.alertmanager_secret,
            "alertmanagerRoutes": self.alertmanager_routes,
            "subscriptions": self.subscriptions,
            "runbookWebhookUrl": self.webhook_url,
        })

    # ------------------------------------------------------------------------------------------ Kubernetes
    def _kubernetes(self, name: str, ctx: StackContext, slos: list, links: LinkSettings,
                    child: pulumi.ResourceOptions) -> None:
        kcfg, cfg = ctx.config.kubernetes, ctx.config.slo_alerting
        labels = {"app.kubernetes.io/part-of": "akidb-observability", "app.kubernetes.io/component": COMPONENT}
        for file_name, doc in rule_files(slos, links).items():
            stem = file_name.removesuffix(".rules.yml")
            rule_name = ctx.naming.k8s("akidb", stem)
            k8s.apiextensions.CustomResource(
                f"{name}-{stem}",
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=rule_name, namespace=kcfg.namespace,
                    labels={**labels, **kcfg.prometheus_rule_labels}),
                spec={"groups": doc["groups"]},
                opts=child,
            )
            self.prometheus_rules.append(rule_name)
        # The Alertmanager (its spec.configSecret) reads this Secret; no key in it: routing_key_file points to
        # the next Secret, which the Alertmanager mounts through spec.secrets.
        config = dump(alertmanager_config(slos, links, paging=cfg.paging_enabled))
        k8s.core.v1.Secret(
            f"{name}-alertmanager-config",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=cfg.alertmanager_secret_name, namespace=kcfg.namespace,
                                                labels=labels),
            type="Opaque",
            string_data={"alertmanager.yaml": config},
            opts=child,
        )
        self.alertmanager_secret = cfg.alertmanager_secret_name
        key = ctx.config.secrets.pagerduty_routing_key
        if cfg.paging_enabled and key is not None:
            k8s.core.v1.Secret(
                f"{name}-pagerduty-routing-key",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ROUTING_KEY_SECRET, namespace=kcfg.namespace,
                                                    labels=labels),
                type="Opaque",
                string_data={"routing-key": pulumi.Output.secret(key)},
                opts=child,
            )

    # ------------------------------------------------------------------------------------- SNS subscriptions
    def _subscriptions(self, name: str, ctx: StackContext, args: SloAlertingArgs,
                       child: pulumi.ResourceOptions) -> dict[str, dict[str, str]]:
        """P0/P1 -> PagerDuty (secret endpoint) when paging; P2, and everything in staging -> tickets."""
        cfg = ctx.config.slo_alerting
        # PagerDuty's Amazon CloudWatch integration: its own key (the Events API v2 key is Alertmanager's).
        key = ctx.config.secrets.pagerduty_cloudwatch_key
        paging = cfg.paging_enabled and key is not None
        out: dict[str, dict[str, str]] = {}
        for region in ctx.config.alarm_regions:
            out[region] = {}
            for severity in SEVERITIES:
                to_pagerduty = paging and severity in ("P0", "P1")
                endpoint: pulumi.Input[str]
                if to_pagerduty:
                    assert key is not None
                    endpoint = pulumi.Output.secret(key.apply(lambda k: PAGERDUTY_SNS_URL.format(key=k)))
                else:
                    endpoint = cfg.ticket_webhook_url
                aws.sns.TopicSubscription(
                    f"{name}-{region}-{severity.lower()}-{'pagerduty' if to_pagerduty else 'tickets'}",
                    region=region,
                    topic=args.topics.arns[region][severity],
                    protocol="https",
                    endpoint=endpoint,
                    endpoint_auto_confirms=to_pagerduty,  # PagerDuty confirms; the ticket hook confirms itself
                    raw_message_delivery=False,
                    opts=child,
                )
                out[region][severity] = "pagerduty" if to_pagerduty else "tickets"
        return out

    # -------------------------------------------------------------------------------------- runbook automation
    def _runbooks(self, name: str, ctx: StackContext, args: SloAlertingArgs,
                  child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        cfg, rb = ctx.config.slo_alerting, ctx.config.slo_alerting.runbooks
        region, account = ctx.region, ctx.account_id
        stateful = pulumi.ResourceOptions(parent=self, protect=ctx.protect())
        key = aws.kms.Key(
            f"{name}-runbooks-key", region=region, description=f"{ctx.naming.prefix} runbook automation",
            enable_key_rotation=True, deletion_window_in_days=30,
            policy=account.apply(lambda a: json.dumps({"Version": "2012-10-17", "Statement": [
                iam.statement(["kms:*"], "*", sid="AccountAdministers",
                              principals={"AWS": f"arn:aws:iam::{a}:root"})]}, sort_keys=True)),
            opts=stateful)
        audit = aws.sns.Topic(f"{name}-audit", region=region,
                              name=ctx.naming.physical("runbook-audit", max_len=MAX_TOPIC_NAME),
                              kms_master_key_id=key.arn, opts=child)
        secret = aws.secretsmanager.Secret(
            f"{name}-webhook-secret", region=region, name=ctx.naming.physical("pagerduty-webhook-secret"),
            description="PagerDuty V3 webhook signing secret (from the Pulumi secret pagerdutyWebhookSecret)",
            kms_key_id=key.arn, recovery_window_in_days=7, opts=child)
        webhook_secret = ctx.config.secrets.pagerduty_webhook_secret
        if webhook_secret is None:
            raise ValueError("sloAlerting.runbooks.enabled needs the secret pagerdutyWebhookSecret")
        aws.secretsmanager.SecretVersion(f"{name}-webhook-secret-value", region=region, secret_id=secret.id,
                                         secret_string=pulumi.Output.secret(webhook_secret), opts=child)
        table = aws.dynamodb.Table(
            f"{name}-state", region=region, name=ctx.naming.physical("runbook-state"),
            billing_mode="PAY_PER_REQUEST", hash_key="pk",
            attributes=[aws.dynamodb.TableAttributeArgs(name="pk", type="S")],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name="expires_at", enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True, kms_key_arn=key.arn),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            opts=stateful)
        dlq = aws.sqs.Queue(f"{name}-jobs-dlq", region=region, name=ctx.naming.physical("runbook-jobs-dlq"),
                            kms_master_key_id=key.arn, message_retention_seconds=14 * 86400, opts=child)
        queue = aws.sqs.Queue(
            f"{name}-jobs", region=region, name=ctx.naming.physical("runbook-jobs"), kms_master_key_id=key.arn,
            visibility_timeout_seconds=6 * WORKER_TIMEOUT_S, message_retention_seconds=86400,
            redrive_policy=dlq.arn.apply(lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})),
            opts=child)

        receiver_name = ctx.naming.physical("runbook-webhook", max_len=MAX_LAMBDA_NAME)
        worker_name = ctx.naming.physical("runbook-worker", max_len=MAX_LAMBDA_NAME)
        for fn in (receiver_name, worker_name):
            aws.cloudwatch.LogGroup(f"{name}-logs-{fn.rsplit('-', 1)[-1]}", region=region,
                                    name=f"/aws/lambda/{fn}", retention_in_days=rb.log_retention_days,
                                    opts=child)
        home_p2 = args.topics.arns[region]["P2"]
        timeline = incident_timeline(self, ctx, name=name, region=region, key_arn=key.arn, queue_arn=queue.arn,
                                     ticket_topic_arn=home_p2)
        settings = pulumi.Output.all(table.name, audit.arn, queue.url, secret.arn, home_p2,
                                     timeline.table.name).apply(
            lambda v: json.dumps({**timeline.settings, "timeline_table_name": v[5],
                "environment": ctx.config.environment, "table_name": v[0], "audit_topic_arn": v[1],
                "queue_url": v[2], "secret_arn": v[3], "notify_topic_arn": v[4], "dry_run": rb.dry_run,
                "allowed_asgs": rb.allowed_asgs, "scale_out_asg": rb.scale_out_asg,
                "scale_out_step": rb.scale_out_step, "max_capacity": rb.max_capacity,
                "max_actions_per_hour": rb.max_actions_per_hour,
                "edge_function_name": ctx.naming.physical(ctx.config.emf_edge.function_name, max_len=64),
                "edge_regions": ctx.config.emf_edge.edge_regions,
                "runbook_base_url": cfg.runbook_base_url, "grafana_base_url": cfg.grafana_base_url,
            }, sort_keys=True))

        kms_use = iam.statement(["kms:Decrypt", "kms:GenerateDataKey"], [key.arn], sid="RunbookKey")
        receiver_role = self._role(name, ctx, "webhook", receiver_name, [
            iam.statement(["secretsmanager:GetSecretValue"], [secret.arn], sid="WebhookSecret"),
            webhook_dedupe_statement(table.arn),
            iam.statement(["sqs:SendMessage"], [queue.arn], sid="QueueJobs"),
            iam.statement(["sns:Publish"], [audit.arn], sid="Audit"),
            kms_use,
        ], child)
        asg_arns = [pulumi.Output.concat("arn:aws:autoscaling:", region, ":", account,
                                         ":autoScalingGroup:*:autoScalingGroupName/", asg)
                    for asg in rb.allowed_asgs]
        worker_statements = [
            iam.statement(["dynamodb:UpdateItem"], [table.arn], sid="ActionBudget"),
            iam.statement(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [queue.arn],
                          sid="ConsumeJobs"),
            iam.statement(["sns:Publish"], [audit.arn, home_p2], sid="AuditAndNotify"),
            iam.statement(["kms:Decrypt", "kms:GenerateDataKey"], [key.arn, args.topics.key_arns[region]],
                          sid="Keys"),
            iam.statement(["autoscaling:DescribeAutoScalingGroups"], "*", sid="DescribeAsgs"),
            *timeline.worker_statements, *bounded_scale_statements(asg_arns, rb.max_capacity),
        ]
        worker_role = self._role(name, ctx, "worker", worker_name, worker_statements, child)

        pkg = build_lambda(FUNCTION_FOLDER, kind="lambda")
        common: dict[str, Any] = {
            "region": region, "runtime": "python3.12", "code": pulumi.FileArchive(str(pkg.path)),
            "source_code_hash": pkg.source_code_hash, "architectures": ["arm64"],
            "environment": aws.lambda_.FunctionEnvironmentArgs(variables={"RUNBOOK_SETTINGS": settings}),
        }
        receiver = aws.lambda_.Function(
            f"{name}-webhook", name=receiver_name, role=receiver_role.arn, handler=pkg.handler,
            description="PagerDuty V3 webhook: verify, dedupe, queue the runbook (202)",
            memory_size=256, timeout=RECEIVER_TIMEOUT_S, opts=child, **common)
        worker = aws.lambda_.Function(
            f"{name}-worker", name=worker_name, role=worker_role.arn,
            handler=pkg.handler.removesuffix(".handler") + ".worker",
            description="Runs queued runbooks with guardrails and audits every decision",
            memory_size=256, timeout=WORKER_TIMEOUT_S, reserved_concurrent_executions=2, opts=child, **common)
        aws.lambda_.EventSourceMapping(
            f"{name}-worker-jobs", region=region, event_source_arn=queue.arn, function_name=worker.arn,
            batch_size=5, function_response_types=["ReportBatchItemFailures"], opts=child)

        api = aws.apigatewayv2.Api(f"{name}-api", region=region, name=ctx.naming.physical("runbook-webhook"),
                                   protocol_type="HTTP", description="PagerDuty V3 webhooks", opts=child)
        integration = aws.apigatewayv2.Integration(
            f"{name}-api-integration", region=region, api_id=api.id, integration_type="AWS_PROXY",
            integration_uri=receiver.invoke_arn, payload_format_version="2.0",
            timeout_milliseconds=5000, opts=child)
        aws.apigatewayv2.Route(f"{name}-api-route", region=region, api_id=api.id, route_key=WEBHOOK_ROUTE,
                               target=pulumi.Output.concat("integrations/", integration.id), opts=child)
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-api-logs", region=region, name=f"/aws/apigateway/{ctx.naming.physical('runbook-webhook')}",
            retention_in_days=rb.log_retention_days, opts=child)
        aws.apigatewayv2.Stage(
            f"{name}-api-stage", region=region, api_id=api.id, name="$default", auto_deploy=True,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_burst_limit=20, throttling_rate_limit=10),
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=access_logs.arn,
                format=json.dumps({"requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
                                   "route": "$context.routeKey", "status": "$context.status",
                                   "latencyMs": "$context.responseLatency"})),
            opts=child)
        aws.lambda_.Permission(
            f"{name}-api-invoke", region=region, action="lambda:InvokeFunction", function=receiver.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, "/*/POST/pagerduty"), opts=child)
        return pulumi.Output.concat(api.api_endpoint, "/pagerduty")

    def _role(self, name: str, ctx: StackContext, suffix: str, function_name: str,
              statements: list[dict[str, Any]], child: pulumi.ResourceOptions) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-{suffix}-role",
            name=ctx.naming.physical("runbook", suffix, "role", max_len=MAX_IAM_ROLE_NAME),
            assume_role_policy=iam.assume_role_policy("lambda.amazonaws.com"),
            description=f"runbook automation {suffix}", opts=child)
        aws.iam.RolePolicy(
            f"{name}-{suffix}-policy", role=role.id,
            policy=iam.document(iam.lambda_logs_statement(ctx.region, ctx.account_id, function_name), *statements),
            opts=child)
        return role
