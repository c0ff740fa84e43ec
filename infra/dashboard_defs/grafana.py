"""A typed model of Grafana dashboards (schema 39: rows, timeseries/stat/gauge panels, Prometheus targets).

Dashboards are provisioned as ConfigMaps that Grafana's dashboard sidecar loads (not pushed with an API key,
as the seed did), so the JSON must be complete and self-contained: a `datasource` template variable instead of
a datasource uid that differs per cluster, and a fixed uid so links (alert annotations, runbooks) stay stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

GRID_COLUMNS = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Threshold:
    value: float
    color: str
    label: str = ""


@dataclass
class Panel:
    title: str
    targets: Sequence[Target] = ()
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
            "datasource": DATASOURCE, "gridPos": grid,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": ({"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                         "tooltip": {"mode": "multi", "sort": "desc"}}
                        if self.kind == "timeseries" else {"reduceOptions": {"calcs": ["lastNotNull"]}}),
            "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr,
                         "legendFormat": t.legend, "range": True}
                        for i, t in enumerate(self.targets)],
        }


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
        return {
            "uid": self.uid, "title": self.title, "tags": list(self.tags), "schemaVersion": 39, "version": 1,
            "editable": False, "timezone": "utc", "refresh": "1m", "graphTooltip": 1,
            "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
                 "current": {}, "hide": 0},
                *[{"name": name, "label": name, "type": "query", "datasource": DATASOURCE, "refresh": 2,
                   "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
                   "current": {"text": default, "value": default}, "includeAll": False, "multi": False,
                   "sort": 1, "hide": 0}
                  for name, query, default in self.variables]]},
            "annotations": {"list": []},
            "panels": [p.to_json(i + 1) for i, p in enumerate(self.panels)],
        }


def expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a rendered dashboard: what the plan-time rules check."""
    out = []
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            out.append((str(panel.get("title")), str(target.get("expr", ""))))
    return out
