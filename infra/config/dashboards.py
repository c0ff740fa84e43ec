"""Dashboards' settings (the `dashboards` section): CloudWatch and Grafana boards, Grafana's CloudWatch datasource."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.alerting_path import AlertingPathConfig
from infra.config.schema import Problem, setting


@dataclass(frozen=True)
class GrafanaCloudwatchSettings:
    """Grafana's CloudWatch datasource (the outcome panels read the incident timeline's metrics through it)."""

    enabled: bool = setting(True, doc="provision a read-only CloudWatch datasource for Grafana (IRSA, no keys) and "
                                      "the Grafana outcomes board")
    datasource_label: str = setting("grafana_datasource", format="k8s_label_key",
                                    doc="label (value \"1\") Grafana's datasource sidecar watches "
                                        "(sidecar.datasources.label)")
    service_account: str = setting("kube-prometheus-stack-grafana", format="k8s_name",
                                   doc="Grafana's service account in kubernetes.namespace: the only identity the "
                                       "read-only role trusts (annotate it with that role)")


@dataclass(frozen=True)
class DashboardsConfig:
    enabled: bool = setting(True, doc="deploy CloudWatch and Grafana dashboards")
    grafana_folder: str = setting("AkiDB", doc="Grafana folder the dashboards appear in",
                                  pattern=r"^[\w ./-]{1,100}$")
    grafana_folder_annotation: str = setting(
        "grafana_folder", doc="annotation key the sidecar reads the folder from (sidecar.dashboards.folderAnnotation)",
        format="k8s_label_key")
    grafana_dashboard_label: str = setting("grafana_dashboard", doc="label (value \"1\") Grafana's sidecar watches",
                                           format="k8s_label_key")
    grafana_cloudwatch: GrafanaCloudwatchSettings = setting(default_factory=GrafanaCloudwatchSettings,
                                                            doc="Grafana's CloudWatch datasource")


def irsa_problems(d: DashboardsConfig, a: AlertingPathConfig, ns: str, *,
                  cluster_roles: bool | None = None) -> list[Problem]:
    """The workloads that need an IRSA role (`cluster_roles`: Kubernetes is on, and False when the cluster has no
    OIDC provider, None: not checked)."""
    p: list[Problem] = []
    if cluster_roles is False:
        # Grafana's datasource and Alertmanager's heartbeat get AWS access only through IRSA (no keys).
        for key, on in ((f"{ns}:dashboards.grafanaCloudwatch.enabled", d.enabled and d.grafana_cloudwatch.enabled),
                        (f"{ns}:alertingPath.heartbeat.enabled", a.enabled and a.heartbeat.enabled)):
            if on:
                p.append(Problem(key, True, "needs kubernetes.oidcProviderArn (the role of the workload's service "
                                            "account is trusted through IRSA, never with static keys); set it or "
                                            "set this to false"))
    return p
