"""A typed model of Grafana dashboards (schema 39: rows, timeseries/stat/gauge panels, Prometheus and CloudWatch
targets) and of the CloudWatch datasource the stack provisions.

Dashboards are provisioned as ConfigMaps that Grafana's dashboard sidecar loads (not pushed with an API key,
as the seed did), so the JSON must be complete and self-contained: a `datasource` template variable instead of
the cluster's Prometheus datasource uid (which differs per cluster), and a fixed uid so links (alert
annotations, runbooks) stay stable. The CloudWatch datasource is the stack's own (a provisioning ConfigMap for
the datasource sidecar), so its uid is fixed and the panels name it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

GRID_COLUMNS = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
CLOUDWATCH_UID = "akidb-cloudwatch"
CLOUDWATCH = {"type": "cloudwatch", "uid": CLOUDWATCH_UID}


@dataclass(frozen=True)
class Target:
    """A PromQL query of the templated Prometheus datasource."""

    expr: str
    legend: str

    datasource = DATASOURCE

    def to_json(self, ref_id: str) -> dict[str, Any]:
        return {"refId": ref_id, "datasource": DATASOURCE, "expr": self.expr, "legendFormat": self.legend,
                "range": True}


@dataclass(frozen=True)
class CloudWatchTarget:
    """A metric query of the stack's CloudWatch datasource (Metric Search, builder mode). A dimension value "*"
    matches every value of that dimension (one series each); no dimensions with `matchExact` reads the series
    published without dimensions."""

    namespace: str
    metric: str
    region: str
    statistic: str  # Sum, Average, p50, ...
    period_s: int
    dimensions: tuple[tuple[str, str], ...] = ()
    label: str = ""

    datasource = CLOUDWATCH

    def to_json(self, ref_id: str) -> dict[str, Any]:
        return {"refId": ref_id, "datasource": CLOUDWATCH, "queryMode": "Metrics", "metricQueryType": 0,
                "metricEditorMode": 0, "region": self.region, "namespace": self.namespace,
                "metricName": self.metric, "dimensions": dict(self.dimensions), "statistic": self.statistic,
                "period": str(self.period_s), "matchExact": True, "label": self.label, "id": "", "expression": ""}


@dataclass(frozen=True)
class Threshold:
    value: float
    color: str
    label: str = ""


@dataclass
class Panel:
    title: str
    targets: Sequence[Target | CloudWatchTarget] = ()
    kind: str = "timeseries"  # timeseries | stat | gauge | row
    width: int = 12
    height: int = 8
    unit: str = "short"
    thresholds: Sequence[Threshold] = ()
    draw_thresholds: bool = False  # draw threshold lines on a timeseries (burn-rate tiers, alarm levels)
    base_color: str = "green"
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    x: int = 0
    y: int = 0

    def to_json(self, panel_id: int) -> dict[str, Any]:
        grid = {"x": self.x, "y": self.y, "w": self.width, "h": self.height}
        if self.kind == "row":
            return {"id": panel_id, "type": "row", "title": self.title, "collapsed": False, "gridPos": grid,
                    "panels": []}
        steps: list[dict[str, Any]] = [{"color": self.base_color, "value": None}]
        steps += [{"color": t.color, "value": t.value} for t in self.thresholds]
        defaults: dict[str, Any] = {"unit": self.unit, "thresholds": {"mode": "absolute", "steps": steps}}
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        if self.kind == "timeseries":
            defaults["custom"] = {"thresholdsStyle": {"mode": "line+area" if self.draw_thresholds else "off"},
                                  "lineWidth": 1, "fillOpacity": 0, "spanNulls": False}
        return {
            "id": panel_id, "type": self.kind, "title": self.title, "description": self.description,
            "datasource": self.datasource(), "gridPos": grid,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": ({"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                         "tooltip": {"mode": "multi", "sort": "desc"}}
                        if self.kind == "timeseries" else {"reduceOptions": {"calcs": ["lastNotNull"]}}),
            "targets": [t.to_json(chr(ord("A") + i)) for i, t in enumerate(self.targets)],
        }

    def datasource(self) -> dict[str, str]:
        """The one datasource of the panel's targets (Grafana's panel-level datasource; mixing needs "-- Mixed --",
        which these dashboards never need)."""
        kinds = {t.datasource["type"]: t.datasource for t in self.targets}
        if len(kinds) > 1:
            raise ValueError(f"panel {self.title!r} mixes datasources {sorted(kinds)}: one datasource per panel")
        return next(iter(kinds.values()), DATASOURCE)


def row(title: str) -> Panel:
    return Panel(title=title, kind="row", width=GRID_COLUMNS, height=1)


@dataclass
class GrafanaDashboard:
    key: str  # ConfigMap and file name
    uid: str
    title: str
    panels: list[Panel] = field(default_factory=list)
    tags: Sequence[str] = ()
    time_from: str = "now-6h"
    refresh: str = "1m"
    # Query variables (name, label_values(...) query, default) after the datasource variable.
    variables: list[tuple[str, str, str]] = field(default_factory=list)

    def layout(self) -> None:
        x = y = row_height = 0
        for p in self.panels:
            if p.kind == "row" or x + p.width > GRID_COLUMNS:
                x, y, row_height = 0, y + row_height, 0
            p.x, p.y = x, y
            x += p.width
            row_height = max(row_height, p.height)
            if p.kind == "row":
                x, y, row_height = 0, y + p.height, 0

    def to_json(self) -> dict[str, Any]:
        self.layout()
        # The Prometheus datasource variable only where a panel queries Prometheus (a CloudWatch-only board would
        # otherwise show a selector that changes nothing).
        prometheus = bool(self.variables) or any(p.kind != "row" and p.datasource() == DATASOURCE
                                                 for p in self.panels)
        return {
            "uid": self.uid, "title": self.title, "tags": list(self.tags), "schemaVersion": 39, "version": 1,
            "editable": False, "timezone": "utc", "refresh": self.refresh, "graphTooltip": 1,
            "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": [
                *([{"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
                    "current": {}, "hide": 0}] if prometheus else []),
                *[{"name": name, "label": name, "type": "query", "datasource": DATASOURCE, "refresh": 2,
                   "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
                   "current": {"text": default, "value": default}, "includeAll": False, "multi": False,
                   "sort": 1, "hide": 0}
                  for name, query, default in self.variables]]},
            "annotations": {"list": []},
            "panels": [p.to_json(i + 1) for i, p in enumerate(self.panels)],
        }


def expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every Prometheus target of a rendered dashboard: what the plan-time rules check
    (a target of another datasource type has no PromQL)."""
    out = []
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            if (target.get("datasource") or panel.get("datasource") or {}).get("type", "prometheus") == "prometheus":
                out.append((str(panel.get("title")), str(target.get("expr", ""))))
    return out


def cloudwatch_targets(board: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every CloudWatch target of a rendered dashboard."""
    return [(str(panel.get("title")), target) for panel in board.get("panels", [])
            for target in panel.get("targets", [])
            if (target.get("datasource") or panel.get("datasource") or {}).get("type") == "cloudwatch"]


def cloudwatch_datasource(region: str, name: str = "AkiDB CloudWatch") -> dict[str, Any]:
    """The datasource provisioning file (Grafana's `apiVersion: 1` format) for the sidecar: the AWS SDK's default
    credential chain, which inside the pod is the IRSA web identity of Grafana's service account; no keys."""
    return {"apiVersion": 1, "datasources": [{
        "name": name, "type": "cloudwatch", "uid": CLOUDWATCH_UID, "access": "proxy", "editable": False,
        "isDefault": False, "jsonData": {"authType": "default", "defaultRegion": region}}]}
