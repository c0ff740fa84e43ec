"""CloudWatch dashboards (edge, anomaly, SLO, probes, outcomes) and Grafana dashboards (golden signals,
SLO, outcomes) as code.

Definitions live in `infra/dashboard_defs/` and read the same sources as the alerts; this component only
deploys them: one `aws.cloudwatch.Dashboard` per CloudWatch dashboard (dashboards are global; the home region
is where the API call goes, every widget names its own regions), and one ConfigMap per Grafana dashboard,
labelled for Grafana's dashboard sidecar, with the folder annotation, in the observability namespace. Grafana
reads CloudWatch (the outcome panels) through a datasource provisioned the same way (a ConfigMap for the
datasource sidecar) and a read-only IRSA role of Grafana's service account: no keys anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

from infra.blocks.context import StackContext
from infra.blocks.irsa import WorkloadRole, workload_role
from infra.core import iam
from infra.core.naming import MAX_DASHBOARD_NAME
from infra.dashboard_defs.cloudwatch import Dashboard
from infra.dashboard_defs.definitions import (
    AlarmInputs,
    by_region,
    cloudwatch_dashboards,
    grafana_cloudwatch_enabled,
    grafana_dashboards,
)
from infra.dashboard_defs.grafana import CLOUDWATCH_UID, cloudwatch_datasource
from infra.dashboard_defs.log_queries import LogOwners, placements, queries

COMPONENT = "dashboards"
TOKEN = "akidb:dashboards:Dashboards"
# Marks our ConfigMaps in the plan, so the rules find the dashboards without guessing from names.
DASHBOARD_KEY_ANNOTATION = "akidb.io/dashboard"
DATASOURCE_KEY_ANNOTATION = "akidb.io/datasource"
# What Grafana's CloudWatch datasource may do: read metrics (these actions take no resource: "*" with the
# stack's regions as the only scope). No alarms, logs or EC2 calls: the panels need none.
GRAFANA_CLOUDWATCH_ACTIONS = ["cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics"]
GRAFANA_CLOUDWATCH_ROLE = "grafana-cloudwatch"

AlarmNames = Mapping[str, Sequence[str]] | Sequence[str] | None


@dataclass
class DashboardsArgs:
    context: StackContext
    edge_alarm_names: AlarmNames = None  # EmfEdge.alarm_names (region -> names); None when disabled
    anomaly_alarm_names: AlarmNames = None
    slo_alarm_names: AlarmNames = None
    edge_function_name: str | None = None  # EmfEdge.function_name (physical)
    anomaly_function_names: Sequence[str] = ()  # detector and trainer (their AWS/Lambda health metrics)
    # True when the slo-alerting component deployed its recording rules (the SLO board plots only those).
    slo_rules_deployed: bool = False
    # The probes board: the synthetics' and the alerting path's alarms (region -> names); empty without canaries.
    probe_alarm_names: Mapping[str, Sequence[str]] | None = None
    # Whose log groups the saved queries read (the boards' log widgets); None with logs off.
    log_owners: LogOwners | None = None


def body_json(dashboard: Dashboard, account_id: str) -> str:
    """The dashboard body exactly as deployed and as checked in under dashboards/ (stable key order)."""
    return json.dumps(dashboard.body(account_id), indent=1, sort_keys=False)


def _body(board: Dashboard, account_id: pulumi.Input[str]) -> pulumi.Input[str]:
    """Plain text when the account id is (from config); else resolved from the invoke, known at preview too."""
    if isinstance(account_id, str):
        return body_json(board, account_id)
    # Annotated: without the target type mypy cannot pick a from_input overload for Awaitable | Output.
    account: pulumi.Output[str] = pulumi.Output.from_input(account_id)
    return account.apply(lambda acct: body_json(board, acct))


class Dashboards(pulumi.ComponentResource):
    cloudwatch_names: dict[str, pulumi.Output[str]]
    grafana_config_maps: dict[str, pulumi.Output[str]]
    grafana_cloudwatch_role: WorkloadRole | None

    def __init__(self, name: str, args: DashboardsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        ctx = args.context
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        cfg = ctx.config
        home = ctx.region
        child = pulumi.ResourceOptions(parent=self)
        alarms = AlarmInputs(edge=by_region(args.edge_alarm_names, home),
                             anomaly=by_region(args.anomaly_alarm_names, home),
                             slo=by_region(args.slo_alarm_names, home),
                             edge_function_name=args.edge_function_name,
                             anomaly_functions=tuple(args.anomaly_function_names),
                             probes={r: list(n) for r, n in (args.probe_alarm_names or {}).items()},
                             logs=placements(queries(cfg.xray.latency_threshold_ms), ctx.log_groups,
                                             args.log_owners, home) if args.log_owners else ())
        self.cloudwatch_names = {}
        for board in cloudwatch_dashboards(cfg, alarms):
            dash = aws.cloudwatch.Dashboard(
                f"{name}-{board.key}",
                dashboard_name=ctx.naming.physical(board.key, max_len=MAX_DASHBOARD_NAME),
                dashboard_body=_body(board, ctx.account_id),
                region=home,
                opts=child)
            self.cloudwatch_names[board.key] = dash.dashboard_name
        self.grafana_config_maps = {}
        self.grafana_cloudwatch_role = None
        if grafana_cloudwatch_enabled(cfg):
            self.grafana_cloudwatch_role = self._grafana_cloudwatch(name, ctx, child)
        if cfg.kubernetes.enabled:
            dcfg = cfg.dashboards
            for gboard in grafana_dashboards(cfg, args.slo_rules_deployed):
                cm = k8s.core.v1.ConfigMap(
                    f"{name}-grafana-{gboard.key}",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=ctx.naming.k8s(ctx.naming.prefix, "dashboard", gboard.key),
                        namespace=cfg.kubernetes.namespace,
                        labels={dcfg.grafana_dashboard_label: "1",
                                "app.kubernetes.io/part-of": cfg.service,
                                "app.kubernetes.io/component": COMPONENT},
                        annotations={dcfg.grafana_folder_annotation: dcfg.grafana_folder,
                                     DASHBOARD_KEY_ANNOTATION: gboard.key}),
                    data={f"{gboard.key}.json": json.dumps(gboard.to_json(), indent=1)},
                    opts=child)
                self.grafana_config_maps[gboard.key] = cm.metadata.apply(lambda m: m.name)
        outputs: dict[str, Any] = {"cloudwatchDashboards": self.cloudwatch_names,
                                   "grafanaConfigMaps": self.grafana_config_maps,
                                   "grafanaCloudwatchRoleArn": (self.grafana_cloudwatch_role.arn
                                                                if self.grafana_cloudwatch_role else None)}
        self.register_outputs(outputs)

    def _grafana_cloudwatch(self, name: str, ctx: StackContext, child: pulumi.ResourceOptions) -> WorkloadRole:
        """Grafana's CloudWatch datasource (a provisioning file for the datasource sidecar) and the read-only role
        its service account assumes through IRSA (the datasource uses the SDK's default credential chain)."""
        cfg = ctx.config
        gc = cfg.dashboards.grafana_cloudwatch
        role = workload_role(
            f"{name}-grafana-cloudwatch", ctx, key=GRAFANA_CLOUDWATCH_ROLE, service_account=gc.service_account,
            setting="dashboards.grafanaCloudwatch", parent=self,
            description=f"IRSA role of Grafana ({cfg.kubernetes.namespace}/{gc.service_account}): read CloudWatch "
                        "metrics of the stack's regions",
            statements=[iam.statement(GRAFANA_CLOUDWATCH_ACTIONS, "*", sid="ReadMetrics", conditions={
                "StringEquals": {"aws:RequestedRegion": list(cfg.alarm_regions)}})])
        provisioning = yaml.safe_dump(cloudwatch_datasource(cfg.aws.region), sort_keys=False)
        k8s.core.v1.ConfigMap(
            f"{name}-grafana-datasource-cloudwatch",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=ctx.naming.k8s(ctx.naming.prefix, "datasource", "cloudwatch"),
                namespace=cfg.kubernetes.namespace,
                labels={gc.datasource_label: "1", "app.kubernetes.io/part-of": cfg.service,
                        "app.kubernetes.io/component": COMPONENT},
                annotations={DATASOURCE_KEY_ANNOTATION: CLOUDWATCH_UID}),
            data={f"{CLOUDWATCH_UID}.yaml": provisioning},
            opts=child)
        return role
