"""CloudWatch alarm helpers: every alarm of this program notifies one severity topic on ALARM and on OK."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws


def metric_alarm(logical: str, *, parent: pulumi.Resource, name: str, description: str,
                 topic_arn: pulumi.Input[str], **spec: Any) -> aws.cloudwatch.MetricAlarm:
    """An alarm (any metric or query `spec`) whose ALARM and OK transitions go to `topic_arn`."""
    return aws.cloudwatch.MetricAlarm(
        logical, name=name, alarm_description=description, alarm_actions=[topic_arn], ok_actions=[topic_arn],
        opts=pulumi.ResourceOptions(parent=parent), **spec)


def threshold_alarm(logical: str, *, parent: pulumi.Resource, name: str, description: str,
                    topic_arn: pulumi.Input[str], namespace: str, metric_name: str, dimensions: dict[str, str],
                    period_s: int, statistic: str, threshold: float, treat_missing: str,
                    evaluation_periods: int = 1,
                    comparison: str = "GreaterThanThreshold") -> aws.cloudwatch.MetricAlarm:
    """One metric against a static threshold, every evaluated period breaching (N of N)."""
    return metric_alarm(
        logical, parent=parent, name=name, description=description, topic_arn=topic_arn,
        namespace=namespace, metric_name=metric_name, dimensions=dimensions or None, period=period_s,
        statistic=statistic, threshold=threshold, comparison_operator=comparison,
        evaluation_periods=evaluation_periods, datapoints_to_alarm=evaluation_periods,
        treat_missing_data=treat_missing)
