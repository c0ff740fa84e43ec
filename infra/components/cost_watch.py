"""Cost watch: a tag-scoped AWS Budget per environment and a Cost Anomaly Detection monitor.

Scope: the stack's own resources, i.e. tagged `environment=<env>` AND `component` in the stack's components
(every AWS resource carries both through the providers' default tags, `infra/blocks/context.py`); the rest of the
account (AkiDB itself) is not counted. Those tag keys are activated as cost allocation tags here, without which
Budgets and Cost Explorer cannot filter on them. Actual (`actualAlertPercents`) and forecast
(`forecastAlertPercent`) alerts and anomalies go to the home region's P2 topic (its policy lets
budgets.amazonaws.com and costalerts.amazonaws.com publish: `infra/components/severity_topics.py`).

The `CostWatch` component (config section `costWatch`); its resources lived under the dashboards component before
and keep their identity through aliases (infra/core/moves.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.blocks.context import StackContext
from infra.core.moves import OldParent, moved_from

SCOPE_TAG_KEYS = ("environment", "component")
COMPONENT = "cost-watch"
TOKEN = "akidb:cost-watch:CostWatch"
# Where the budget lived before it was a component of its own: children of the dashboards component.
OLD_PARENT: OldParent = ("akidb:dashboards:Dashboards", "dashboards")


@dataclass
class CostWatchArgs:
    context: StackContext
    p2_topic_arn: pulumi.Input[str]  # the home region's P2 topic: budget and anomaly notifications
    components: Sequence[str]  # the `component` tag values of the stack's AWS providers (what the budget counts)


class CostWatch(pulumi.ComponentResource):
    names: dict[str, str]  # budget and anomaly monitor names

    def __init__(self, name: str, args: CostWatchArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        ctx = args.context
        moved = pulumi.ResourceOptions(transformations=[moved_from(self, name, OLD_PARENT, OLD_PARENT[1])])
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, pulumi.ResourceOptions.merge(moved, opts)))
        self.names = create_cost_watch(name, ctx, args.p2_topic_arn, args.components, self)
        self.register_outputs({"cost": self.names})


def create_cost_watch(name: str, ctx: StackContext, p2_topic_arn: pulumi.Input[str], components: Sequence[str],
                      parent: pulumi.Resource) -> dict[str, str]:
    """`components`: the `component` tag values of the stack's AWS providers (what the budget counts)."""
    c = ctx.config.cost_watch
    child = pulumi.ResourceOptions(parent=parent)
    env = ctx.config.environment
    components = sorted(components)
    for key in SCOPE_TAG_KEYS:
        aws.costexplorer.CostAllocationTag(f"{name}-cost-tag-{key}", tag_key=key, status="Active", opts=child)
    notifications = [aws.budgets.BudgetNotificationArgs(
        comparison_operator="GREATER_THAN", notification_type="ACTUAL", threshold=pct, threshold_type="PERCENTAGE",
        subscriber_sns_topic_arns=[p2_topic_arn]) for pct in c.actual_alert_percents]
    notifications.append(aws.budgets.BudgetNotificationArgs(
        comparison_operator="GREATER_THAN", notification_type="FORECASTED", threshold=c.forecast_alert_percent,
        threshold_type="PERCENTAGE", subscriber_sns_topic_arns=[p2_topic_arn]))
    budget_name = ctx.naming.physical("monthly-cost")
    aws.budgets.Budget(
        f"{name}-budget", name=budget_name, budget_type="COST", time_unit="MONTHLY",
        limit_amount=f"{c.monthly_budget_usd:.2f}", limit_unit="USD",
        filter_expression=aws.budgets.BudgetFilterExpressionArgs(ands=[
            aws.budgets.BudgetFilterExpressionAndArgs(tags=aws.budgets.BudgetFilterExpressionAndTagsArgs(
                key="environment", values=[env], match_options=["EQUALS"])),
            aws.budgets.BudgetFilterExpressionAndArgs(tags=aws.budgets.BudgetFilterExpressionAndTagsArgs(
                key="component", values=components, match_options=["EQUALS"])),
        ]),
        notifications=notifications, opts=child)
    monitor_name = ctx.naming.physical("cost-anomalies")
    # A custom monitor on one cost allocation tag (the service does not take an AND of tags): the component
    # values; in an account shared by staging and prod this covers both stacks' components.
    monitor = aws.costexplorer.AnomalyMonitor(
        f"{name}-cost-monitor", name=monitor_name, monitor_type="CUSTOM",
        monitor_specification=json.dumps({"Tags": {"Key": "component", "Values": components,
                                                   "MatchOptions": ["EQUALS"]}}, sort_keys=True),
        opts=child)
    aws.costexplorer.AnomalySubscription(
        f"{name}-cost-anomaly-subscription", name=ctx.naming.physical("cost-anomalies-p2"), frequency="IMMEDIATE",
        monitor_arn_lists=[monitor.arn],
        subscribers=[aws.costexplorer.AnomalySubscriptionSubscriberArgs(type="SNS", address=p2_topic_arn)],
        threshold_expression=aws.costexplorer.AnomalySubscriptionThresholdExpressionArgs(
            dimension=aws.costexplorer.AnomalySubscriptionThresholdExpressionDimensionArgs(
                key="ANOMALY_TOTAL_IMPACT_ABSOLUTE", match_options=["GREATER_THAN_OR_EQUAL"],
                values=[f"{c.anomaly_threshold_usd:g}"])),
        opts=child)
    return {"budget": budget_name, "anomalyMonitor": monitor_name}
