"""No blind spots: the alarms and widgets rules/coverage.yaml requires that no other component makes.

- An inventory (a stack transformation started first in `build()`) records every resource of a type the map
  watches as it is registered, so the coverage dashboard draws what the map says for each without the other
  components handing their resources over.
- Edge: per edge region, AWS/Lambda Errors and Throttles of the replicas (FunctionName `us-east-1.<name>` in the
  Region where they ran); with the stack's own distribution, its 5xx rate and Lambda@Edge execution, validation
  and limit errors (AWS/CloudFront, us-east-1, Region=Global). Init failures, timeouts, out-of-memory and invalid
  responses show there, not in the handler's own EMF.

The plan-time rule `every_resource_is_covered` (infra/validation/coverage.py) checks the result against the map.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.blocks.alarms import metric_alarm
from infra.blocks.context import StackContext
from infra.components.severity_topics import AlertTopics
from infra.config.coverage import Required, load_coverage_map
from infra.core.naming import MAX_ALARM_NAME

COMPONENT = "coverage"
TOKEN = "akidb:coverage:Coverage"
MAX_DASHBOARD_NAME = 255
EDGE_FUNCTION_REGION = "us-east-1"  # where Lambda@Edge functions live; replicas are named `us-east-1.<name>`
# The statistic a widget draws a metric with (Sum for counts); CloudWatch metric docs of each service.
WIDGET_STATS = {"Duration": "Average", "Latency": "Average", "ApproximateAgeOfOldestMessage": "Maximum",
                "ApproximateNumberOfMessagesVisible": "Maximum", "SuccessPercent": "Average",
                "5xxErrorRate": "Average"}


@dataclass
class Watched:
    """One registered resource of a watched type: what names it in its metrics."""

    type: str
    name: str  # logical name
    region: str | None
    props: dict[str, Any]
    resource: pulumi.Resource


@dataclass
class Inventory:
    types: frozenset[str]
    items: list[Watched] = field(default_factory=list)

    def record(self, args: pulumi.ResourceTransformationArgs) -> None:
        if args.type_ in self.types:
            region = args.props.get("region") if isinstance(args.props, dict) else None
            self.items.append(Watched(args.type_, args.name, region if isinstance(region, str) else None,
                                      dict(args.props or {}), args.resource))


def start_inventory() -> Inventory:
    """Record every later resource of a type the map draws widgets for (call before creating any)."""
    cmap = load_coverage_map()
    inventory = Inventory(frozenset(t for t, c in cmap.types.items() if c.widgets or c.edge_widgets))

    def transformation(args: pulumi.ResourceTransformationArgs) -> None:
        inventory.record(args)  # records only: returns None, the resource is registered unchanged

    pulumi.runtime.register_stack_transformation(transformation)
    return inventory


@dataclass
class CoverageArgs:
    context: StackContext
    topics: AlertTopics
    inventory: Inventory
    edge_function_name: str | None = None
    edge_regions: list[str] = field(default_factory=list)
    distribution: aws.cloudfront.Distribution | None = None
    draw: bool = True  # the coverage dashboard (dashboards.enabled)


class Coverage(pulumi.ComponentResource):
    alarm_names: list[str]
    dashboard_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: CoverageArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        self._name, self._ctx, self._topics = name, ctx, args.topics
        self._edge_function, self._edge_regions = args.edge_function_name, list(args.edge_regions)
        cmap = load_coverage_map()
        self.alarm_names = []
        fn = cmap.types["aws:lambda/function:Function"]
        if args.edge_function_name:
            replica = f"{EDGE_FUNCTION_REGION}.{args.edge_function_name}"
            for region in args.edge_regions:
                for req in fn.edge_alarms:
                    self._alarm(f"edge-{req.metrics[0].lower()}-{region}", region, req,
                                {"FunctionName": replica}, period=300, evaluation=3, datapoints=2, threshold=0,
                                statistic="Sum", what=f"Lambda@Edge replicas of {args.edge_function_name} report "
                                f"{req.metrics[0]} (init failure, timeout, out of memory or throttling) in {region}",
                                runbook="edge-errors")
        if args.distribution is not None:
            dist = cmap.types["aws:cloudfront/distribution:Distribution"]
            dims = args.distribution.id.apply(lambda i: {"DistributionId": i, "Region": "Global"})
            for req in dist.alarms:
                metric = req.metrics[0]
                rate = metric.endswith("Rate")
                self._alarm(f"cdn-{metric.lower()}", dist.region or EDGE_FUNCTION_REGION, req, dims,
                            period=300, evaluation=3, datapoints=2 if rate else 1, threshold=1 if rate else 0,
                            statistic="Average" if rate else "Sum",
                            what=f"CloudFront {metric} of the edge distribution"
                                 + (" above 1%" if rate else ": Lambda@Edge answered users with an error"),
                            runbook="edge-errors")
        self.dashboard_name = self._dashboard(args.inventory) if args.draw else None
        self.register_outputs({"alarmNames": self.alarm_names, "dashboardName": self.dashboard_name})

    def _alarm(self, key: str, region: str, req: Required, dims: pulumi.Input[dict[str, str]], *, period: int,
               evaluation: int, datapoints: int, threshold: float, statistic: str, what: str, runbook: str) -> None:
        alarm_name = self._ctx.naming.physical("coverage", key, max_len=MAX_ALARM_NAME)
        metric_alarm(f"{self._name}-{key}", parent=self, name=alarm_name,
                     description=f"[{req.severity}] {what}", runbook=runbook,
                     topic_arn=self._topics.arns[region][req.severity], region=region,
                     namespace=req.namespace, metric_name=req.metrics[0], dimensions=dims, period=period,
                     statistic=statistic, threshold=threshold, comparison_operator="GreaterThanThreshold",
                     evaluation_periods=evaluation, datapoints_to_alarm=datapoints,
                     # No traffic is no error; a silent edge is the synthetic probes' to see.
                     treat_missing_data="notBreaching")
        self.alarm_names.append(alarm_name)

    def _dashboard(self, inventory: Inventory) -> pulumi.Output[str] | None:
        """One graph per watched resource, with the metrics the map says to draw for its type."""
        cmap = load_coverage_map()
        home = self._ctx.region
        widgets: list[pulumi.Output[list[dict[str, Any]]]] = []
        for item in inventory.items:
            tc = cmap.types[item.type]
            region = tc.region or item.region or home
            for draw, ident, where in self._draws(item, tc, region):
                widgets.append(pulumi.Output.from_input(ident).apply(_grapher(item, draw, where)))
        if not widgets:
            return None
        body = pulumi.Output.all(*widgets).apply(_layout)
        board = aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard", dashboard_name=self._ctx.naming.physical("coverage", max_len=MAX_DASHBOARD_NAME),
            dashboard_body=body, region=home, opts=pulumi.ResourceOptions(parent=self))
        name: pulumi.Output[str] = board.dashboard_name
        return name

    def _draws(self, item: Watched, tc: Any, region: str) -> list[tuple[tuple[Required, ...], Any, str]]:
        ident: dict[str, Any] = {}
        for dim, source in tc.identity.items():
            # The map allows widgets only on identities known at a preview (inputs or literals).
            ident[dim] = source[1:] if source.startswith("=") else item.props.get(source.split(".", 1)[1])
        if tc.edge_widgets and self._edge_function and ident.get("FunctionName") == self._edge_function:
            replica = {**ident, "FunctionName": f"{EDGE_FUNCTION_REGION}.{self._edge_function}"}
            return [(tc.edge_widgets, replica, r) for r in self._edge_regions]
        return [(tc.widgets, ident, region)]


def _grapher(item: Watched, draw: tuple[Required, ...],
             region: str) -> Callable[[dict[str, str]], list[dict[str, Any]]]:
    return lambda dims: [_graph(item, draw, dims, region)]


def _graph(item: Watched, draw: tuple[Required, ...], dims: dict[str, str], region: str) -> dict[str, Any]:
    pairs = [v for k in sorted(dims) for v in (k, dims[k])]
    label = dims.get("FunctionName") or dims.get("TableName") or dims.get("QueueName") or \
        dims.get("TopicName") or dims.get("CanaryName") or item.name
    return {"type": "metric", "width": 12, "height": 6, "properties": {
        "title": f"{item.type.split(':')[1].split('/')[0]} {label} ({region})", "region": region, "view": "timeSeries",
        "period": 300, "metrics": [[r.namespace, r.metrics[0], *pairs,
                                    {"stat": WIDGET_STATS.get(r.metrics[0], "Sum")}] for r in draw]}}


def _layout(groups: list[list[dict[str, Any]]]) -> str:
    widgets = [w for g in groups for w in g]
    widgets.sort(key=lambda w: str(w["properties"]["title"]))
    for i, w in enumerate(widgets):
        w["x"], w["y"] = (i % 2) * 12, (i // 2) * 6
    header = {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {
        "markdown": "## Coverage\nWhat rules/coverage.yaml requires to be drawn, one graph per resource."}}
    for w in widgets:
        w["y"] += 2
    return json.dumps({"start": "-P1D", "periodOverride": "inherit", "widgets": [header, *widgets]}, indent=1,
                      sort_keys=True)
