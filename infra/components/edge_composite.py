"""One page per edge outage, and a suppressor the deploy workflow raises: CloudWatch composite alarms of emf-edge.

CloudWatch composite alarms can only watch alarms of their own account and Region (AWS "Creating a composite
alarm"), and alarms cannot read another Region's metrics (AWS "Restrictions on Lambda@Edge": a replica logs, and so
publishes EMF, in the Region where it ran), so the fan-in is per Region: in every edge
Region the regional metric alarms (errors, latencies, cold starts) only ticket (P2), and ONE composite alarm,
`<prefix>-edge-outage` (the same name in every Region, so PagerDuty's CloudWatch integration sees one alarm name
per outage), pages (P1) when the errors alarm fires, whatever else fires with it. Its actions are suppressed while
the Region's maintenance suppressor is in ALARM:

    aws cloudwatch put-metric-data --region <r> --namespace AkiDB/Maintenance --metric-name MaintenanceActive \\
        --dimensions Service=<function> --value 1        # once a minute while the deploy runs

The suppressor goes back to OK by itself one period after the last datapoint (missing data is not breaching), and
the composite stays quiet `extension_period` longer, so a deploy's brief error bump never pages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.blocks.alarms import composite_alarm, metric_alarm
from infra.blocks.context import StackContext
from infra.core.naming import MAX_ALARM_NAME

TOKEN = "akidb:emf-edge:EdgeOutage"
MAINTENANCE_NAMESPACE = "AkiDB/Maintenance"
MAINTENANCE_METRIC = "MaintenanceActive"
MAINTENANCE_DIMENSION = "Service"
SUPPRESSOR_WAIT_S = 120  # a suppressor raised right after a composite fires still suppresses its actions
SUPPRESSOR_EXTENSION_S = 600  # quiet for 10 minutes after the deploy stops raising it


@dataclass(frozen=True)
class EdgeOutageArgs:
    """Explicit inputs of the fan-in: the edge function, its regional alarms and the severity topics."""

    function_name: str
    alarm_names: Mapping[str, Sequence[str]]  # region -> the edge's regional alarm names
    paging_alarm_kind: str  # the regional alarm whose name contains it decides the page
    topics: Mapping[str, Mapping[str, pulumi.Input[str]]]  # region -> severity -> topic ARN


def edge_composites(parent: pulumi.Resource, name: str, ctx: StackContext,
                    args: EdgeOutageArgs) -> dict[str, dict[str, str]]:
    """Per edge Region: the maintenance suppressor and the paging composite. Returns region -> {"composite",
    "suppressor"} physical names. `alarm_names[region]` are the regional alarms; the one whose name contains
    `paging_alarm_kind` decides the page."""
    function_name, alarm_names, paging_alarm_kind, topics = (
        args.function_name, args.alarm_names, args.paging_alarm_kind, args.topics)
    # Their own component under emf-edge: the regional alarms stay the edge's four per Region, these are the fan-in.
    group = pulumi.ComponentResource(TOKEN, "edge-outage", None, pulumi.ResourceOptions(parent=parent))
    out: dict[str, dict[str, str]] = {}
    for region, names in alarm_names.items():
        paging = [n for n in names if f"-{paging_alarm_kind}-" in n]
        if not paging:
            raise ValueError(f"no {paging_alarm_kind} alarm in {region} among {list(names)}: nothing would page")
        suppressor_name = ctx.naming.physical("edge", "maintenance", region, max_len=MAX_ALARM_NAME)
        suppressor = metric_alarm(
            f"{name}-maintenance-{region}", parent=group, region=region, name=suppressor_name,
            runbook="edge-maintenance", notify_ok=False,
            description=(f"Maintenance of {function_name} in {region}: raised by the deploy workflow "
                               f"(put-metric-data {MAINTENANCE_NAMESPACE}/{MAINTENANCE_METRIC} "
                               f"{MAINTENANCE_DIMENSION}={function_name} = 1); suppresses the edge-outage page"),
            namespace=MAINTENANCE_NAMESPACE, metric_name=MAINTENANCE_METRIC,
            dimensions={MAINTENANCE_DIMENSION: function_name}, statistic="Maximum", period=60,
            evaluation_periods=1, comparison_operator="GreaterThanOrEqualToThreshold", threshold=1,
            # Raising it leaves a record on the ticket topic (who suppressed pages, when); the end is not news.
            treat_missing_data="notBreaching", topic_arn=topics[region]["P2"])
        composite_name = ctx.naming.physical("edge", "outage", max_len=MAX_ALARM_NAME)
        rule = " OR ".join(f'ALARM("{n}")' for n in paging)
        composite_alarm(
            f"{name}-outage-{region}", parent=group, region=region, name=composite_name,
            description=(f"[P1] the edge embedding function answers 5xx in {region}: one page per outage "
                         "(the regional alarms only ticket)"), runbook="edge-errors",
            rule=rule, topic_arn=topics[region]["P1"],
            actions_suppressor=aws.cloudwatch.CompositeAlarmActionsSuppressorArgs(
                alarm=suppressor.name, wait_period=SUPPRESSOR_WAIT_S, extension_period=SUPPRESSOR_EXTENSION_S))
        out[region] = {"composite": composite_name, "suppressor": suppressor_name}
    group.register_outputs({"alarms": out})
    return out
