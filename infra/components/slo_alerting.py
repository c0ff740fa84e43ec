"""Day 4: SLO alerting — PrometheusRules and Alertmanager routing generated from rules/slos.yaml, severity-topic
subscriptions (PagerDuty / tickets) in every alarm region, and the PagerDuty webhook runbook automation.

What is deployed comes from the same generator as the checked-in files under rules/ (infra/slo/rules.py), only
rendered with this stack's link bases. Secrets (the PagerDuty routing key and webhook secret) only ever travel as
Pulumi secret Outputs: into a Kubernetes Secret the Alertmanager mounts, into SNS subscription endpoints, and into
a Secrets Manager secret the webhook function reads at init.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.artifacts.packaging import build_lambda
from infra.blocks.function import FunctionSpec, LogicalNames, PythonFunction
from infra.components.alerting_path import stack_heartbeat
from infra.components.incident_timeline import bounded_scale_statements, incident_timeline, webhook_dedupe_statement
from infra.components.severity_topics import SEVERITIES, AlertTopics
from infra.config import StackConfig
from infra.config.slo_alerting import RUNBOOK_RECEIVER_TIMEOUT_S
from infra.core import iam
from infra.core.context import StackContext
from infra.core.iam import known_after
from infra.core.naming import MAX_DASHBOARD_NAME, MAX_IAM_ROLE_NAME, MAX_LAMBDA_NAME, MAX_TOPIC_NAME
from infra.dashboard_defs.edge import BOARD_KEY as EDGE_BOARD_KEY
from infra.slo.alertmanager import (
    P1_ROUTING_KEY_FILE,
    ROUTING_KEY_SECRET,
    SLACK_SECRET,
    Maintenance,
    alertmanager_config,
    expected_receivers,
)
from infra.slo.render import dump
from infra.slo.rules import rule_files
from infra.slo.spec import LinkSettings, Slo, cloudwatch_dashboard_url

COMPONENT = "slo-alerting"
TOKEN = "akidb:slo-alerting:SloAlerting"
FUNCTION_FOLDER = "runbook_automation"
WEBHOOK_ROUTE = "POST /pagerduty"
WEBHOOK_ROUTE_RPS, WEBHOOK_ROUTE_BURST = 50, 100  # the webhook route's own throttle
DEFAULT_ROUTE_RPS, DEFAULT_ROUTE_BURST = 5, 10  # every other path: nothing legitimate calls it
RECEIVER_TIMEOUT_S = RUNBOOK_RECEIVER_TIMEOUT_S  # PagerDuty waits 5 s for a 2xx (the config's latency alarm bound)
WORKER_TIMEOUT_S = 60
AUDIT_TICKET_DECISIONS = ("refused", "error")  # audit decisions (runbook_automation/audit.py) that open a ticket
PAGERDUTY_SNS_URL = "https://events.pagerduty.com/integration/{key}/enqueue"


@dataclass(frozen=True)
class PagerDutyKeys:
    """What PagerDuty gives the paging path when the stack manages PagerDuty (infra/components/pagerduty.py): per
    paging severity, the Events API v2 key (Alertmanager) and the CloudWatch integration key (severity topics),
    and the V3 webhook signing secret. All Pulumi secrets."""

    events: Mapping[str, pulumi.Output[str]]
    cloudwatch: Mapping[str, pulumi.Output[str]]
    webhook_secret: pulumi.Output[str] | None = None


@dataclass
class SloAlertingArgs:
    context: StackContext
    topics: AlertTopics  # the foundation's severity topics and their KMS keys, per region
    # The edge function the runbooks act on (EmfEdge.function_name) and its regions; empty without emf-edge.
    edge_function_name: str = ""
    edge_regions: Sequence[str] = ()
    # From the PagerDuty component when pagerduty.manage; None: the keys come from the stack's secrets.
    pagerduty: PagerDutyKeys | None = None


def links_for(ctx: StackContext) -> LinkSettings:
    return config_links(ctx.config)


def config_links(stack: StackConfig) -> LinkSettings:
    cfg = stack.slo_alerting
    return LinkSettings(runbook_base_url=cfg.runbook_base_url, grafana_base_url=cfg.grafana_base_url,
                        ticket_webhook_url=cfg.ticket_webhook_url, heartbeat_webhook_url=cfg.heartbeat_webhook_url,
                        chat_channel=cfg.chat_channel)


def maintenance_for(ctx: StackContext) -> list[Maintenance]:
    return config_maintenance(ctx.config)


def config_maintenance(stack: StackConfig) -> list[Maintenance]:
    return [Maintenance(w.service, tuple(w.weekdays), w.start, w.end)
            for w in stack.slo_alerting.maintenance_windows]


def edge_dashboard_url(ctx: StackContext) -> str:
    """The edge board the cold-start runbook points at: the CloudWatch dashboard `dashboards` deploys (the edge
    has no Grafana board), or "" when the stack deploys none."""
    cfg = ctx.config
    if not (cfg.dashboards.enabled and cfg.emf_edge.enabled):
        return ""
    return cloudwatch_dashboard_url(ctx.region, ctx.naming.physical(EDGE_BOARD_KEY, max_len=MAX_DASHBOARD_NAME))


def stack_alertmanager_config(ctx: StackContext, account_id: str) -> dict[str, Any]:
    """The Alertmanager config this stack deploys (also what the plan-time rules compare against); the account
    id names the stack's heartbeat topic (Day 5, infra/components/alerting_path.py)."""
    return config_alertmanager(ctx.config, account_id)


def config_alertmanager(stack: StackConfig, account_id: str) -> dict[str, Any]:
    """`stack_alertmanager_config` from the stack's config alone (what the plan-time rules rebuild: the
    deployed config is a Secret, redacted in plans). A stack that manages PagerDuty pages P1 through a service
    (and key) of its own."""
    cfg = stack.slo_alerting
    return alertmanager_config(cfg.slos, config_links(stack), paging=cfg.paging_enabled,
                               p1_routing_key_file=P1_ROUTING_KEY_FILE if stack.pagerduty_managed else None,
                               chat=stack.secrets.slack_webhook_url is not None,
                               maintenance=config_maintenance(stack), heartbeat=stack_heartbeat(stack, account_id),
                               symptoms=cfg.symptoms)


class SloAlerting(pulumi.ComponentResource):
    prometheus_rules: list[str]
    alertmanager_secret: str | None
    alertmanager_routes: dict[str, str]  # severity -> receiver (the config itself is a Secret: redacted in plans)
    subscriptions: dict[str, dict[str, str]]  # region -> severity -> "pagerduty" | "tickets"
    webhook_url: pulumi.Output[str] | None
    chat_channel: str | None  # the AWS Chatbot configuration P2 notifies, when configured

    def __init__(self, name: str, args: SloAlertingArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        cfg = ctx.config.slo_alerting
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        child = pulumi.ResourceOptions(parent=self)
        slos = list(cfg.slos)
        links = links_for(ctx)
        self.prometheus_rules, self.alertmanager_secret = [], None
        chat = ctx.config.secrets.slack_webhook_url is not None
        self.alertmanager_routes = {sev: ",".join(expected_receivers(sev, paging=cfg.paging_enabled, chat=chat))
                                    for sev in (*SEVERITIES, "heartbeat")}
        if ctx.config.kubernetes.enabled:
            self._kubernetes(name, ctx, args, slos, links, child)
        self.subscriptions = self._subscriptions(name, ctx, args, child)
        self.chat_channel = self._chatbot(name, ctx, args, child) if cfg.chatbot is not None else None
        self.webhook_url = None
        # What Day 5 watches of the runbook path (infra/components/alerting_path.py); empty without runbooks.
        self.runbook_queue_arns: dict[str, pulumi.Output[str]] = {}
        self.runbook_function_names: dict[str, str] = {}
        self.runbook_api_id: pulumi.Output[str] | None = None
        self.runbook_api_access_logs: pulumi.Output[str] | None = None
        self.audit_topic_arn: pulumi.Output[str] | None = None
        self.runbook_tables: dict[str, tuple[pulumi.Output[str], tuple[str, ...]]] = {}
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
    def _kubernetes(self, name: str, ctx: StackContext, args: SloAlertingArgs, slos: list[Slo],
                    links: LinkSettings, child: pulumi.ResourceOptions) -> None:
        kcfg, cfg = ctx.config.kubernetes, ctx.config.slo_alerting
        labels = {"app.kubernetes.io/part-of": "akidb-observability", "app.kubernetes.io/component": COMPONENT}
        for file_name, doc in rule_files(slos, links, symptoms=cfg.symptoms).items():
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
        # The account id is config text or an invoke result: known at preview either way.
        config = pulumi.Output.from_input(ctx.account_id).apply(
            lambda account: dump(stack_alertmanager_config(ctx, account)))
        k8s.core.v1.Secret(
            f"{name}-alertmanager-config",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=cfg.alertmanager_secret_name, namespace=kcfg.namespace,
                                                labels=labels),
            type="Opaque",
            string_data={"alertmanager.yaml": config},
            opts=child,
        )
        self.alertmanager_secret = cfg.alertmanager_secret_name
        keys = self._routing_keys(ctx, args)
        if cfg.paging_enabled and keys:
            k8s.core.v1.Secret(
                f"{name}-pagerduty-routing-key",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ROUTING_KEY_SECRET, namespace=kcfg.namespace,
                                                    labels=labels),
                type="Opaque",
                string_data=keys,
                opts=child,
            )
        slack = ctx.config.secrets.slack_webhook_url
        if slack is not None:
            slack_url: pulumi.Output[str] = pulumi.Output.secret(slack)
            # Mounted through the Alertmanager's spec.secrets; the config reads it with api_url_file.
            k8s.core.v1.Secret(
                f"{name}-slack-webhook",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=SLACK_SECRET, namespace=kcfg.namespace, labels=labels),
                type="Opaque",
                string_data={"webhook-url": slack_url},
                opts=child,
            )

    @staticmethod
    def _routing_keys(ctx: StackContext, args: SloAlertingArgs) -> dict[str, pulumi.Output[str]]:
        """The routing-key file(s) of the Alertmanager's PagerDuty Secret: P0's key in `routing-key`, and with a
        managed PagerDuty P1's in `routing-key-p1` (infra/slo/alertmanager.py reads both paths)."""
        if args.pagerduty is not None:
            return {"routing-key": pulumi.Output.secret(args.pagerduty.events["P0"]),
                    "routing-key-p1": pulumi.Output.secret(args.pagerduty.events["P1"])}
        key = ctx.config.secrets.pagerduty_routing_key
        if key is None:
            return {}
        # Annotated: without the target type mypy infers Output.secret's type variable as Never.
        routing_key: pulumi.Output[str] = pulumi.Output.secret(key)
        return {"routing-key": routing_key}

    # ------------------------------------------------------------------------------------- SNS subscriptions
    def _subscriptions(self, name: str, ctx: StackContext, args: SloAlertingArgs,
                       child: pulumi.ResourceOptions) -> dict[str, dict[str, str]]:
        """P0/P1 -> PagerDuty (secret endpoint) when paging; P2, and everything in staging -> tickets."""
        cfg = ctx.config.slo_alerting
        # PagerDuty's Amazon CloudWatch integration: its own key (the Events API v2 key is Alertmanager's); one per
        # paging severity when the stack manages PagerDuty, else the one from the stack's secrets.
        key = ctx.config.secrets.pagerduty_cloudwatch_key
        keys: dict[str, pulumi.Output[str]] = (
            dict(args.pagerduty.cloudwatch) if args.pagerduty is not None
            else {sev: key for sev in ("P0", "P1")} if key is not None else {})
        paging = cfg.paging_enabled and bool(keys)
        out: dict[str, dict[str, str]] = {}
        for region in ctx.config.alarm_regions:
            out[region] = {}
            for severity in SEVERITIES:
                to_pagerduty = paging and severity in ("P0", "P1")
                endpoint: pulumi.Input[str]
                if to_pagerduty:
                    endpoint = pulumi.Output.secret(
                        keys[severity].apply(lambda k: PAGERDUTY_SNS_URL.format(key=k)))
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

    # ------------------------------------------------------------------------------------------------ chat
    def _chatbot(self, name: str, ctx: StackContext, args: SloAlertingArgs,
                 child: pulumi.ResourceOptions) -> str:
        """P2 of every alarm region -> the Slack channel through AWS Chatbot (SNS cannot post to a Slack
        webhook: Slack would never confirm the subscription). The channel role may do nothing."""
        chat = ctx.config.slo_alerting.chatbot
        assert chat is not None
        role = aws.iam.Role(
            f"{name}-chatbot-role", name=ctx.naming.physical("chatbot", "role", max_len=MAX_IAM_ROLE_NAME),
            assume_role_policy=iam.assume_role_policy("chatbot.amazonaws.com"),
            description="AWS Chatbot channel role: notifications only, no permissions", opts=child)
        config_name = ctx.naming.physical("alerts-chat", max_len=128)
        aws.chatbot.SlackChannelConfiguration(
            f"{name}-chatbot", region=chat.region, configuration_name=config_name, iam_role_arn=role.arn,
            slack_team_id=chat.slack_team_id, slack_channel_id=chat.slack_channel_id,
            sns_topic_arns=[args.topics.arns[r]["P2"] for r in ctx.config.alarm_regions],
            # Nobody in the channel may run commands through it.
            guardrail_policy_arns=["arn:aws:iam::aws:policy/AWSDenyAll"], logging_level="ERROR",
            opts=child)
        return config_name

    # -------------------------------------------------------------------------------------- runbook automation
    def _runbooks(self, name: str, ctx: StackContext, args: SloAlertingArgs,
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
            iam.statement(["sqs:SendMessage"], [queue_arn], sid="QueueJobs"),
            iam.statement(["sns:Publish"], [audit_arn], sid="Audit"),
            iam.statement(["kms:Decrypt", "kms:GenerateDataKey"], [arns.any_key(region)], sid="RunbookKey",
                          conditions=runbook_key),
        ]
        # Only the group the worker scales (runbooks.py scales scaleOutAsg, nothing else): allow-listed groups it
        # never acts on get no permission (least privilege).
        asg_arns = [arns.autoscaling_group(region, rb.scale_out_asg)] if rb.scale_out_asg else []
        worker_statements = [
            iam.statement(["dynamodb:UpdateItem"], [arns.table(region, table_name)], sid="ActionBudget"),
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
                          handler=pkg.handler.removesuffix(".handler") + ".worker", reserved_concurrency=2,
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
        self.runbook_queue_arns = {"runbook-jobs": known_after(queue, queue_arn),
                                   "runbook-jobs-dlq": known_after(dlq, arns.queue(region, dlq_name))}
        self.runbook_function_names = {"runbook-webhook": receiver_name, "runbook-worker": worker_name}
        self.runbook_api_id = api.id
        self.runbook_api_access_logs = known_after(access_logs, access_logs_name)
        self.audit_topic_arn = known_after(audit, audit_arn)
        # The operations the functions call on each table (DynamoDB publishes SystemErrors per operation).
        self.runbook_tables = {
            "runbook-state": (known_after(table, table_name), ("PutItem", "UpdateItem", "DeleteItem")),
            "incident-timeline": (known_after(timeline.table, timeline.table_name),
                                  ("PutItem", "Query", "UpdateItem"))}
        return pulumi.Output.concat(api.api_endpoint, "/pagerduty")
