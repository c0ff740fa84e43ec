"""CloudWatch alarm helpers: every alarm of this program notifies one severity topic and names its runbook.

The runbook id travels in the alarm description as `[runbook:<id>]`: PagerDuty's Amazon CloudWatch integration
shows the description in the incident, and the runbook automation reads the same marker from the incident
title/body as it does for Prometheus alerts (one marker for both sources). Ids come from rules/runbooks.yaml;
the plan-time rule `signal_paths_reach_a_person` (infra/validation/paths.py) refuses an unknown one.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from infra.slo.runbooks import marked_runbook, runbook_mark


def with_runbook(description: str, runbook: str) -> str:
    """The description with its runbook marker appended (exactly one marker per alarm)."""
    if marked_runbook(description) is not None:
        raise ValueError(f"description already names a runbook: {description!r}")
    return f"{description} {runbook_mark(runbook)}"


def metric_alarm(logical: str, *, parent: pulumi.Resource, name: str, description: str, runbook: str,
                 topic_arn: pulumi.Input[str], notify_ok: bool = True, **spec: Any) -> aws.cloudwatch.MetricAlarm:
    """An alarm (any metric or query `spec`) whose ALARM (and OK, unless `notify_ok` is off) transitions go to
    `topic_arn`, its description ending in `[runbook:<runbook>]`."""
    return aws.cloudwatch.MetricAlarm(
        logical, name=name, alarm_description=with_runbook(description, runbook), alarm_actions=[topic_arn],
        ok_actions=[topic_arn] if notify_ok else None, opts=pulumi.ResourceOptions(parent=parent), **spec)


def composite_alarm(logical: str, *, parent: pulumi.Resource, name: str, description: str, runbook: str,
                    topic_arn: pulumi.Input[str], rule: str, **spec: Any) -> aws.cloudwatch.CompositeAlarm:
    """A composite alarm over `rule` whose ALARM and OK transitions go to `topic_arn`, with its runbook."""
    return aws.cloudwatch.CompositeAlarm(
        logical, alarm_name=name, alarm_description=with_runbook(description, runbook), alarm_rule=rule,
        alarm_actions=[topic_arn], ok_actions=[topic_arn], opts=pulumi.ResourceOptions(parent=parent), **spec)


def threshold_alarm(logical: str, *, parent: pulumi.Resource, name: str, description: str, runbook: str,
                    topic_arn: pulumi.Input[str], namespace: str, metric_name: str, dimensions: dict[str, str],
                    period_s: int, statistic: str, threshold: float, treat_missing: str,
                    evaluation_periods: int = 1, comparison: str = "GreaterThanThreshold",
                    region: str | None = None) -> aws.cloudwatch.MetricAlarm:
    """One metric against a static threshold, every evaluated period breaching (N of N); in `region` (the
    provider's when None), where the metric is published."""
    extra: dict[str, Any] = {"region": region} if region else {}
    return metric_alarm(
        logical, parent=parent, name=name, description=description, runbook=runbook, topic_arn=topic_arn,
        namespace=namespace, metric_name=metric_name, dimensions=dimensions or None, period=period_s,
        statistic=statistic, threshold=threshold, comparison_operator=comparison,
        evaluation_periods=evaluation_periods, datapoints_to_alarm=evaluation_periods,
        treat_missing_data=treat_missing, **extra)
