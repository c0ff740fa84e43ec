"""SLO alerting: PrometheusRules and Alertmanager routing generated from rules/slos.yaml, severity-topic
subscriptions (PagerDuty / tickets) in every alarm region, and the PagerDuty webhook runbook automation (a child
component, infra/components/runbook_automation.py).

What is deployed comes from the same generator as the checked-in files under rules/ (infra/slo/rules.py), only
rendered with this stack's link bases. Secrets (the PagerDuty routing key and webhook secret) only ever travel as
Pulumi secret Outputs: into a Kubernetes Secret the Alertmanager mounts, into SNS subscription endpoints, and into
a Secrets Manager secret the webhook function reads at init.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.blocks.context import StackContext
from infra.components.alerting_path import stack_heartbeat
from infra.components.runbook_automation import PagerDutyKeys, RunbookAutomation, RunbookAutomationArgs
from infra.components.severity_topics import SEVERITIES, AlertTopics
from infra.config import StackConfig
from infra.core import iam
from infra.core.naming import MAX_IAM_ROLE_NAME
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
from infra.slo.spec import LinkSettings, Slo

COMPONENT = "slo-alerting"
TOKEN = "akidb:slo-alerting:SloAlerting"
PAGERDUTY_SNS_URL = "https://events.pagerduty.com/integration/{key}/enqueue"


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


def stack_alertmanager_config(ctx: StackContext, account_id: str) -> dict[str, Any]:
    """The Alertmanager config this stack deploys (also what the plan-time rules compare against); the account
    id names the stack's heartbeat topic (infra/components/alerting_path.py)."""
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
    runbooks: RunbookAutomation | None
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
        # The runbook automation, a child component (what the alerting path watches of it: its attributes).
        self.runbooks = None
        self.webhook_url = None
        if cfg.runbooks.enabled:
            self.runbooks = RunbookAutomation(f"{name}-runbooks", RunbookAutomationArgs(
                context=ctx, topics=args.topics, edge_function_name=args.edge_function_name,
                edge_regions=args.edge_regions, pagerduty=args.pagerduty), parent=self, old_name=name)
            self.webhook_url = self.runbooks.webhook_url
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
