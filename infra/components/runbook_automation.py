"""The PagerDuty webhook runbook automation, a child component of SloAlerting: the webhook API and its receiver
function (verify the V3 signature, dedupe, queue), the worker that runs queued runbooks with guardrails, their
KMS key, state table, job queues, audit topic and the incident timeline.

Its resources were children of SloAlerting before it was a component of its own and keep their identity through
aliases (infra/core/moves.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.artifacts.packaging import build_lambda
from infra.blocks.context import StackContext
from infra.blocks.function import FunctionSpec, LogicalNames, PythonFunction
from infra.components.incident_timeline import bounded_scale_statements, incident_timeline, webhook_dedupe_statement
from infra.components.severity_topics import AlertTopics
from infra.config.slo_alerting import RUNBOOK_RECEIVER_TIMEOUT_S
from infra.core import iam
from infra.core.iam import known_after
from infra.core.moves import moved_from
from infra.core.naming import MAX_DASHBOARD_NAME, MAX_IAM_ROLE_NAME, MAX_LAMBDA_NAME, MAX_TOPIC_NAME
from infra.dashboard_defs.edge import BOARD_KEY as EDGE_BOARD_KEY
from infra.slo.spec import cloudwatch_dashboard_url

TOKEN = "akidb:slo-alerting:RunbookAutomation"
FUNCTION_FOLDER = "runbook_automation"
WEBHOOK_ROUTE = "POST /pagerduty"
WEBHOOK_ROUTE_RPS, WEBHOOK_ROUTE_BURST = 50, 100  # the webhook route's own throttle
DEFAULT_ROUTE_RPS, DEFAULT_ROUTE_BURST = 5, 10  # every other path: nothing legitimate calls it
RECEIVER_TIMEOUT_S = RUNBOOK_RECEIVER_TIMEOUT_S  # PagerDuty waits 5 s for a 2xx (the config's latency alarm bound)
WORKER_TIMEOUT_S = 60
WORKER_FUNCTION = "worker"  # the worker's entry point, beside the receiver's `handler` in the zip's handler module
AUDIT_TICKET_DECISIONS = ("refused", "error")  # audit decisions (runbook_automation/audit.py) that open a ticket


def worker_handler(receiver_handler: str) -> str:
    """The worker's `handler` setting: the receiver's module (one zip, two functions), its WORKER_FUNCTION."""
    return f"{receiver_handler.rsplit('.', 1)[0]}.{WORKER_FUNCTION}"


@dataclass(frozen=True)
class PagerDutyKeys:
    """What PagerDuty gives the paging path when the stack manages PagerDuty (infra/components/pagerduty.py): per
    paging severity, the Events API v2 key (Alertmanager) and the CloudWatch integration key (severity topics),
    and the V3 webhook signing secret. All Pulumi secrets."""

    events: Mapping[str, pulumi.Output[str]]
    cloudwatch: Mapping[str, pulumi.Output[str]]
    webhook_secret: pulumi.Output[str] | None = None


@dataclass
class RunbookAutomationArgs:
    context: StackContext
    topics: AlertTopics
    # The edge function the runbooks act on (EmfEdge.function_name) and its regions; empty without emf-edge.
    edge_function_name: str = ""
    edge_regions: Sequence[str] = ()
    # From the PagerDuty component when pagerduty.manage; None: the webhook secret comes from the stack's secrets.
    pagerduty: PagerDutyKeys | None = None


def edge_dashboard_url(ctx: StackContext) -> str:
    """The edge board the cold-start runbook points at: the CloudWatch dashboard `dashboards` deploys (the edge
    has no Grafana board), or "" when the stack deploys none."""
    cfg = ctx.config
    if not (cfg.dashboards.enabled and cfg.emf_edge.enabled):
        return ""
    return cloudwatch_dashboard_url(ctx.region, ctx.naming.physical(EDGE_BOARD_KEY, max_len=MAX_DASHBOARD_NAME))


class RunbookAutomation(pulumi.ComponentResource):
    """What the alerting path watches of it: the attributes below."""

    webhook_url: pulumi.Output[str]
    queue_arns: dict[str, pulumi.Output[str]]
    function_names: dict[str, str]
    api_id: pulumi.Output[str]
    api_access_logs: pulumi.Output[str]
    audit_topic_arn: pulumi.Output[str]
    tables: dict[str, tuple[pulumi.Output[str], tuple[str, ...]]]

    def __init__(self, name: str, args: RunbookAutomationArgs, *, parent: pulumi.Resource, old_name: str) -> None:
        """`old_name`: the parent's name, the prefix these resources had as the parent's own children."""
        ctx = args.context
        super().__init__(TOKEN, name, None, pulumi.ResourceOptions(
            parent=parent, transformations=[moved_from(self, name, parent, old_name)]))
        self.webhook_url = self._build(name, ctx, args, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"webhookUrl": self.webhook_url})

    def _build(self, name: str, ctx: StackContext, args: RunbookAutomationArgs,
               child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        cfg, rb = ctx.config.slo_alerting, ctx.config.slo_alerting.runbooks
        region, arns, n = ctx.region, ctx.arns, ctx.naming
        stateful = pulumi.ResourceOptions(parent=self, protect=ctx.protect())
        key = aws.kms.Key(
            f"{name}-runbooks-key", region=region, description=f"{n.prefix} runbook automation",
            enable_key_rotation=True, deletion_window_in_days=30,
            policy=iam.document(iam.statement(["kms:*"], "*", sid="AccountAdministers",
                                              principals={"AWS": arns.root()})),
            opts=stateful)
        # Policies name the key by this alias: its ARN holds an id AWS picks, unknown until it exists.
        key_alias = f"alias/{n.prefix}-runbooks"
        aws.kms.Alias(f"{name}-runbooks-key-alias", region=region, name=key_alias, target_key_id=key.key_id,
                      opts=child)
        audit_name = n.physical("runbook-audit", max_len=MAX_TOPIC_NAME)
        audit = aws.sns.Topic(f"{name}-audit", region=region, name=audit_name, kms_master_key_id=key.arn, opts=child)
        audit_arn = arns.topic(region, audit_name)
        # A person hears of what the automation refused or failed to do (the ticket path); every other decision
        # stays a record in the functions' logs (audit.py logs each entry before publishing it).
        aws.sns.TopicSubscription(
            f"{name}-audit-tickets", region=region, topic=known_after(audit, audit_arn), protocol="https",
            endpoint=cfg.ticket_webhook_url, raw_message_delivery=False,
            filter_policy=json.dumps({"decision": list(AUDIT_TICKET_DECISIONS)}), opts=child)
        secret_name = n.physical("pagerduty-webhook-secret")
        managed = args.pagerduty is not None
        secret = aws.secretsmanager.Secret(
            f"{name}-webhook-secret", region=region, name=secret_name,
            description=("PagerDuty V3 webhook signing secret (issued by PagerDuty for the subscription this stack "
                         "manages)" if managed else
                         "PagerDuty V3 webhook signing secret (from the Pulumi secret pagerdutyWebhookSecret)"),
            kms_key_id=key.arn, recovery_window_in_days=7, opts=child)
        webhook_secret = (args.pagerduty.webhook_secret if args.pagerduty is not None
                          else ctx.config.secrets.pagerduty_webhook_secret)
        if webhook_secret is None:
            raise ValueError("sloAlerting.runbooks.enabled needs the secret pagerdutyWebhookSecret, or "
                             "pagerduty.manage (the subscription's secret)")
        webhook_secret_value: pulumi.Output[str] = pulumi.Output.secret(webhook_secret)
        aws.secretsmanager.SecretVersion(f"{name}-webhook-secret-value", region=region, secret_id=secret.id,
                                         secret_string=webhook_secret_value, opts=child)
        table_name = n.physical("runbook-state")
        table = aws.dynamodb.Table(
            f"{name}-state", region=region, name=table_name,
            billing_mode="PAY_PER_REQUEST", hash_key="pk",
            attributes=[aws.dynamodb.TableAttributeArgs(name="pk", type="S")],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name="expires_at", enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True, kms_key_arn=key.arn),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            # Pulumi's protect guards `pulumi destroy`; this guards the console and the API too (issue 12).
            deletion_protection_enabled=ctx.protect(),
            opts=stateful)
        dlq_name, queue_name = n.physical("runbook-jobs-dlq"), n.physical("runbook-jobs")
        dlq = aws.sqs.Queue(f"{name}-jobs-dlq", region=region, name=dlq_name,
                            kms_master_key_id=key.arn, message_retention_seconds=14 * 86400, opts=child)
        queue = aws.sqs.Queue(
            f"{name}-jobs", region=region, name=queue_name, kms_master_key_id=key.arn,
            visibility_timeout_seconds=6 * WORKER_TIMEOUT_S, message_retention_seconds=86400,
            redrive_policy=iam.json_text({"deadLetterTargetArn": known_after(dlq, arns.queue(region, dlq_name)),
                                          "maxReceiveCount": 3}, sort_keys=False),
            opts=child)
        queue_arn = arns.queue(region, queue_name)

        receiver_name = n.physical("runbook-webhook", max_len=MAX_LAMBDA_NAME)
        worker_name = n.physical("runbook-worker", max_len=MAX_LAMBDA_NAME)
        home_p2 = args.topics.arns[region]["P2"]
        timeline = incident_timeline(self, ctx, name=name, region=region, key_arn=key.arn, queue_arn=queue_arn,
                                     ticket_topic_arn=home_p2)
        # Every value built from names (known at preview); each depends on what it names.
        settings = iam.json_text({
            **timeline.settings, "timeline_table_name": known_after(timeline.table, timeline.table_name),
            "environment": ctx.config.environment, "table_name": known_after(table, table_name),
            "audit_topic_arn": known_after(audit, audit_arn),
            "queue_url": known_after(queue, arns.queue_url(region, queue_name)),
            # The name, which GetSecretValue takes as SecretId: the ARN ends in a suffix AWS picks.
            "secret_id": known_after(secret, secret_name),
            "notify_topic_arn": home_p2, "dry_run": rb.dry_run,
            "allowed_asgs": rb.allowed_asgs, "scale_out_asg": rb.scale_out_asg,
            "scale_out_step": rb.scale_out_step, "max_capacity": rb.max_capacity,
            "max_actions_per_hour": rb.max_actions_per_hour,
            "edge_function_name": args.edge_function_name,
            "edge_regions": list(args.edge_regions),
            "runbook_base_url": cfg.runbook_base_url, "grafana_base_url": cfg.grafana_base_url,
            "edge_dashboard_url": edge_dashboard_url(ctx),
        })

        runbook_key = iam.key_alias_condition(key_alias)
        receiver_statements = [
            iam.statement(["secretsmanager:GetSecretValue"], [arns.secret(region, secret_name)], sid="WebhookSecret"),
            webhook_dedupe_statement(arns.table(region, table_name)),
            iam.statement(["sqs:SendMessage"], [queue_arn], sid="QueueJobs"),  # its decision's audit: the worker's
            iam.statement(["kms:Decrypt", "kms:GenerateDataKey"], [arns.any_key(region)], sid="RunbookKey",
                          conditions=runbook_key),
        ]
        # Only the group the worker scales (runbooks.py scales scaleOutAsg, nothing else): allow-listed groups it
        # never acts on get no permission (least privilege).
        asg_arns = [arns.autoscaling_group(region, rb.scale_out_asg)] if rb.scale_out_asg else []
        worker_statements = [
            # The run ledger and the action budget (lambdas/runbook_automation/ledger.py, runbooks.py).
            iam.statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], [arns.table(region, table_name)],
                          sid="ActionBudget"),
            iam.statement(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [queue_arn],
                          sid="ConsumeJobs"),
            iam.statement(["sns:Publish"], [audit_arn, home_p2], sid="AuditAndNotify"),
            iam.statement(["kms:Decrypt", "kms:GenerateDataKey"], [arns.any_key(region)], sid="Keys",
                          conditions=iam.key_alias_condition(key_alias, args.topics.key_aliases[region])),
            iam.statement(["autoscaling:DescribeAutoScalingGroups"], "*", sid="DescribeAsgs"),
            *timeline.worker_statements, *bounded_scale_statements(asg_arns, rb.max_capacity),
        ]

        pkg = build_lambda(FUNCTION_FOLDER, kind="lambda")

        def function(suffix: str, function_name: str, statements: list[iam.Statement],
                     **spec: Any) -> PythonFunction:
            return PythonFunction(
                LogicalNames(function=f"{name}-{suffix}", role=f"{name}-{suffix}-role",
                             policy=f"{name}-{suffix}-policy", logs=f"{name}-logs-{suffix}"),
                FunctionSpec(name=function_name, package=pkg, region=region, statements=statements,
                             role_name=n.physical("runbook", suffix, "role", max_len=MAX_IAM_ROLE_NAME),
                             role_description=f"runbook automation {suffix}",
                             log_retention_days=rb.log_retention_days, memory_mb=256,
                             environment={"RUNBOOK_SETTINGS": settings}, **spec),
                parent=self, ctx=ctx)

        receiver = function("webhook", receiver_name, receiver_statements, timeout_s=RECEIVER_TIMEOUT_S,
                            description="PagerDuty V3 webhook: verify, dedupe, queue the runbook (202)")
        worker = function("worker", worker_name, worker_statements, timeout_s=WORKER_TIMEOUT_S,
                          handler=worker_handler(pkg.handler), reserved_concurrency=2,
                          description="Runs queued runbooks with guardrails and audits every decision")
        aws.lambda_.EventSourceMapping(
            f"{name}-worker-jobs", region=region, event_source_arn=known_after(queue, queue_arn),
            function_name=worker.arn, batch_size=5, function_response_types=["ReportBatchItemFailures"],
            opts=child)

        api_name = n.physical("runbook-webhook")
        api = aws.apigatewayv2.Api(f"{name}-api", region=region, name=api_name,
                                   protocol_type="HTTP", description="PagerDuty V3 webhooks", opts=child)
        integration = aws.apigatewayv2.Integration(
            f"{name}-api-integration", region=region, api_id=api.id, integration_type="AWS_PROXY",
            integration_uri=receiver.invoke_arn, payload_format_version="2.0",
            timeout_milliseconds=5000, opts=child)
        aws.apigatewayv2.Route(f"{name}-api-route", region=region, api_id=api.id, route_key=WEBHOOK_ROUTE,
                               target=pulumi.Output.concat("integrations/", integration.id), opts=child)
        access_logs_name = f"/aws/apigateway/{api_name}"
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-api-logs", region=region, name=access_logs_name,
            retention_in_days=rb.log_retention_days, kms_key_id=ctx.regional_key(region), opts=child)
        ctx.register_log_group(region, access_logs_name, access_logs, "apigateway")
        aws.apigatewayv2.Stage(
            f"{name}-api-stage", region=region, api_id=api.id, name="$default", auto_deploy=True,
            # Anything but the webhook route gets next to nothing; the webhook route its own budget, far above
            # PagerDuty's delivery rate. Unsigned requests on it are refused by the receiver's signature-shape
            # check before any AWS call, so a flood costs little (API Gateway cannot tell signed from unsigned).
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_burst_limit=DEFAULT_ROUTE_BURST, throttling_rate_limit=DEFAULT_ROUTE_RPS),
            route_settings=[aws.apigatewayv2.StageRouteSettingArgs(
                route_key=WEBHOOK_ROUTE, throttling_burst_limit=WEBHOOK_ROUTE_BURST,
                throttling_rate_limit=WEBHOOK_ROUTE_RPS)],
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=known_after(access_logs, arns.log_group(region, access_logs_name)),
                format=json.dumps({"requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
                                   "route": "$context.routeKey", "status": "$context.status",
                                   "latencyMs": "$context.responseLatency"})),
            opts=child)
        # The API id is AWS's pick: this source ARN stays unknown until the API exists.
        aws.lambda_.Permission(
            f"{name}-api-invoke", region=region, action="lambda:InvokeFunction", function=receiver.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, "/*/POST/pagerduty"), opts=child)
        # Built from the names: the alerting-path alarms name the queues by them, known at a first preview.
        self.queue_arns = {"runbook-jobs": known_after(queue, queue_arn),
                                   "runbook-jobs-dlq": known_after(dlq, arns.queue(region, dlq_name))}
        self.function_names = {"runbook-webhook": receiver_name, "runbook-worker": worker_name}
        self.api_id = api.id
        self.api_access_logs = known_after(access_logs, access_logs_name)
        self.audit_topic_arn = known_after(audit, audit_arn)
        # The operations the functions call on each table (DynamoDB publishes SystemErrors per operation).
        self.tables = {
            "runbook-state": (known_after(table, table_name), ("PutItem", "UpdateItem", "DeleteItem")),
            "incident-timeline": (known_after(timeline.table, timeline.table_name),
                                  ("PutItem", "Query", "UpdateItem"))}
        return pulumi.Output.concat(api.api_endpoint, "/pagerduty")
