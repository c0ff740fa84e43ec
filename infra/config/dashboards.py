"""Day 5 settings: CloudWatch and Grafana dashboards."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.schema import setting


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
