"""Typed, validated stack configuration: the only place settings are read.

Every setting of every component lives in this package as a frozen dataclass field with its default, type and range.
`load_stack_config()` reads the project namespace from Pulumi config (the real CLI, or the offline plan that
feeds the same stack file to the mock runtime), rejects unknown keys, checks every range and cross-field rule,
and raises one `ConfigError` listing every problem before a single resource is registered.

YAML keys are camelCase (the Pulumi convention); fields are snake_case. Secrets are top-level keys that must
be set with `pulumi config set --secret`; a secret given in plain text is an error, not a warning.

The settings live in one module per component (xray.py, emf_edge.py, anomaly.py, slo_alerting.py, dashboards.py,
synthetics.py, alerting_path.py, cost_watch.py, pagerduty.py; shared.py for the providers); stack.py assembles
them, rules.py holds the cross-field rules, parser.py reads and checks the Pulumi config, reference.py renders
docs/configuration.md. Import from here.
"""

from infra.config.alerting_path import AlertingPathConfig
from infra.config.anomaly import AnomalyConfig, AnomalyMetricSettings
from infra.config.cost_watch import CostWatchConfig
from infra.config.dashboards import DashboardsConfig
from infra.config.emf_edge import EdgeAlarmSettings, EmfEdgeConfig
from infra.config.game_days import GameDaysConfig
from infra.config.pagerduty import PagerDutyConfig
from infra.config.parser import load_stack_config, parse_stack_config
from infra.config.schema import (
    AWS_REGION_PATTERN,
    K8S_NAME_PATTERN,
    LOG_RETENTION_DAYS,
    OIDC_PROVIDER_ARN_PATTERN,
    PINNED_IMAGE_PATTERN,
    PROJECT,
    ROLE_ARN_PATTERN,
    ConfigError,
    Problem,
    camel,
    setting,
    snake,
)
from infra.config.shared import AwsSettings, KubernetesSettings
from infra.config.slo_alerting import RunbookSettings, SloAlertingConfig
from infra.config.stack import SECRET_KEYS, Secrets, StackConfig
from infra.config.synthetics import SyntheticsConfig
from infra.config.xray import SamplingRuleSettings, XrayConfig

__all__ = [
    "AWS_REGION_PATTERN", "K8S_NAME_PATTERN", "LOG_RETENTION_DAYS", "OIDC_PROVIDER_ARN_PATTERN",
    "PINNED_IMAGE_PATTERN", "PROJECT", "ROLE_ARN_PATTERN", "SECRET_KEYS", "AlertingPathConfig", "AnomalyConfig",
    "AnomalyMetricSettings", "AwsSettings", "ConfigError", "CostWatchConfig", "DashboardsConfig",
    "EdgeAlarmSettings", "EmfEdgeConfig", "GameDaysConfig", "KubernetesSettings", "PagerDutyConfig", "Problem",
    "RunbookSettings", "SamplingRuleSettings", "Secrets", "SloAlertingConfig", "StackConfig", "SyntheticsConfig",
    "XrayConfig", "camel", "load_stack_config", "parse_stack_config", "setting", "snake",
]
