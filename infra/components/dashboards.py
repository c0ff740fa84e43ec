"""Day 5: CloudWatch dashboards (edge, anomaly, SLO) and Grafana dashboards (golden signals, SLO) as code.

Definitions live in `infra/dashboard_defs/` and read the same sources as the alerts; this component only
deploys them: one `aws.cloudwatch.Dashboard` per CloudWatch dashboard (dashboards are global; the home region
is where the API call goes, every widget names its own regions), and one ConfigMap per Grafana dashboard,
labelled for Grafana's dashboard sidecar, with the folder annotation, in the observability namespace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.core.context import StackContext
from infra.core.naming import MAX_DASHBOARD_NAME
from infra.dashboard_defs.cloudwatch import Dashboard
from infra.dashboard_defs.definitions import AlarmInputs, by_region, cloudwatch_dashboards, grafana_dashboards

COMPONENT = "dashboards"
TOKEN = "akidb:dashboards:Dashboards"
# Marks our ConfigMaps in the plan, so the rules find the dashboards without guessing from names.
DASHBOARD_KEY_ANNOTATION = "akidb.io/dashboard"

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


def body_json(dashboard: Dashboard, account_id: str) -> str:
    """The dashboard body exactly as deployed and as checked in under dashboards/ (stable key order)."""
    return json.dumps(dashboard.body(account_id), indent=1, sort_keys=False)


def _body(board: Dashboard, account_id: pulumi.Input[str]) -> pulumi.Input[str]:
    """Plain text when the account id is (from config); else resolved from the invoke, known at preview too."""
    if isinstance(account_id, str):
        return body_json(board, account_id)
    return pulumi.Output.from_input(account_id).apply(lambda acct: body_json(board, acct))


class Dashboards(pulumi.ComponentResource):
    cloudwatch_names: dict[str, pulumi.Output[str]]
    grafana_config_maps: dict[str, pulumi.Output[str]]

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
                             anomaly_functions=tuple(args.anomaly_function_names))
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
                                   "grafanaConfigMaps": self.grafana_config_maps}
        self.register_outputs(outputs)
