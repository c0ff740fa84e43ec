"""The whole stack config: one section per component, the shared providers, and the secret keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pulumi

from infra.config.alerting_path import AlertingPathConfig
from infra.config.anomaly import AnomalyConfig
from infra.config.cost_watch import CostWatchConfig
from infra.config.dashboards import DashboardsConfig
from infra.config.emf_edge import EmfEdgeConfig
from infra.config.game_days import GameDaysConfig
from infra.config.logs import LogsConfig
from infra.config.pagerduty import PagerDutyConfig
from infra.config.schema import setting
from infra.config.shared import AwsSettings, KubernetesSettings
from infra.config.slo_alerting import SloAlertingConfig
from infra.config.synthetics import SyntheticsConfig
from infra.config.xray import XrayConfig

# Top-level keys set with `pulumi config set --secret`. Value: (doc, required_when).
SECRET_KEYS: dict[str, str] = {
    "kubeconfig": "kubeconfig of the target cluster (optional: ambient kubeconfig otherwise)",
    "pagerdutyRoutingKey": "PagerDuty Events API v2 routing key (required when sloAlerting.pagingEnabled and "
                           "pagerduty.manage is false)",
    "pagerdutyCloudwatchKey": "PagerDuty Amazon CloudWatch integration key: P0/P1 severity topics subscribe to "
                              "it (required when sloAlerting.pagingEnabled and pagerduty.manage is false)",
    "pagerdutyWebhookSecret": "PagerDuty V3 webhook signing secret (required when runbooks are enabled and "
                              "pagerduty.manage is false)",
    "pagerdutyToken": "PagerDuty REST API token of the PagerDuty provider (required when pagerduty.manage)",
    "slackWebhookUrl": "Slack incoming-webhook URL of the chat receiver (P2 and informational alerts; optional: "
                       "without it they go to tickets only)",
}


@dataclass(frozen=True)
class Secrets:
    """Secret values, only ever as secret Outputs."""

    kubeconfig: pulumi.Output[str] | None = None
    pagerduty_routing_key: pulumi.Output[str] | None = None
    pagerduty_cloudwatch_key: pulumi.Output[str] | None = None
    pagerduty_webhook_secret: pulumi.Output[str] | None = None
    pagerduty_token: pulumi.Output[str] | None = None
    slack_webhook_url: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class StackConfig:
    environment: Literal["staging", "prod"] = setting(doc="environment name (tags, names)",
                                                      choices=("staging", "prod"))
    owner: str = setting("sre", doc="owner tag", pattern=r"^[\w.@-]{1,64}$")
    service: str = setting("akidb", doc="service tag and name prefix (of bucket names too)",
                           pattern=r"^[a-z][a-z0-9-]{1,20}$", format="s3_name_prefix")
    protect_stateful: bool = setting(False, doc="protect buckets and keys from deletion (prod)")
    aws: AwsSettings = setting(default_factory=AwsSettings, doc="AWS provider")
    kubernetes: KubernetesSettings = setting(default_factory=KubernetesSettings, doc="Kubernetes provider")
    xray: XrayConfig = setting(default_factory=XrayConfig, doc="tracing")
    emf_edge: EmfEdgeConfig = setting(default_factory=EmfEdgeConfig, doc="edge function and metrics")
    anomaly: AnomalyConfig = setting(default_factory=AnomalyConfig, doc="anomaly detection")
    slo_alerting: SloAlertingConfig = setting(default_factory=SloAlertingConfig, doc="SLO alerting")
    dashboards: DashboardsConfig = setting(default_factory=DashboardsConfig, doc="dashboards")
    synthetics: SyntheticsConfig = setting(default_factory=SyntheticsConfig, doc="synthetic probes (canaries)")
    alerting_path: AlertingPathConfig = setting(default_factory=AlertingPathConfig,
                                                doc="alarms on the alerting path itself")
    cost_watch: CostWatchConfig = setting(default_factory=CostWatchConfig,
                                          doc="budget, cost anomalies, the monthly estimate's ceiling")
    pagerduty: PagerDutyConfig = setting(default_factory=PagerDutyConfig, doc="PagerDuty as code")
    game_days: GameDaysConfig = setting(default_factory=GameDaysConfig, doc="game days: FIS experiments (staging)")
    logs: LogsConfig = setting(default_factory=LogsConfig, doc="logs: archive, saved queries, log-based alarms")
    secrets: Secrets = field(default_factory=Secrets, metadata={"doc": "secret keys", "internal": True})

    @property
    def pagerduty_managed(self) -> bool:
        """Whether this stack creates its PagerDuty side: pagerduty.manage, for the paging path of slo-alerting
        (switched off with it, as the runbooks are)."""
        return self.pagerduty.manage and self.slo_alerting.enabled

    @property
    def alarm_regions(self) -> list[str]:
        """Every region an alarm (and so a severity topic) lives in: home first, then edge and probe regions."""
        regions = [self.aws.region]
        if self.emf_edge.enabled:
            regions += [r for r in self.emf_edge.edge_regions if r not in regions]
        if self.synthetics.enabled:  # probe alarms live where probes run
            regions += [r for r in self.synthetics.probe_regions if r not in regions]
        return regions
