"""A typed model of CloudWatch dashboard bodies (widgets, metrics, math, alarms) and a 24-column flow layout.

Why a model and not JSON literals: the body is generated per stack (regions, alarm names, thresholds), and the
plan-time rules in `infra/validation/dashboards.py` read the rendered JSON back, so the shapes live in one place.
Body structure: CloudWatch "Dashboard Body Structure and Syntax",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

GRID_COLUMNS = 24

# Colours shared by the dashboards and the preview (CloudWatch accepts #rrggbb).
RED = "#d62728"
ORANGE = "#ff7f0e"
GREEN = "#2ca02c"
BLUE = "#1f77b4"
GREY = "#7f7f7f"
PURPLE = "#9467bd"
PALETTE = (BLUE, ORANGE, GREEN, RED, PURPLE, "#8c564b", "#e377c2", GREY, "#bcbd22", "#17becf")


@dataclass(frozen=True)
class Metric:
    """One metric line: namespace, name, exactly the dimensions of an emitted set, and where it lives."""

    namespace: str
    name: str
    region: str
    dimensions: tuple[tuple[str, str], ...] = ()
    stat: str = "Average"
    label: str | None = None
    id: str | None = None
    period: int | None = None
    color: str | None = None
    visible: bool = True
    y_axis: str | None = None

    def to_json(self) -> list[Any]:
        opts: dict[str, Any] = {"stat": self.stat, "region": self.region}
        for key, value in (("label", self.label), ("id", self.id), ("period", self.period),
                           ("color", self.color), ("yAxis", self.y_axis)):
            if value is not None:
                opts[key] = value
        if not self.visible:
            opts["visible"] = False
        flat: list[Any] = [self.namespace, self.name]
        for key, value in self.dimensions:
            flat += [key, value]
        return [*flat, opts]


@dataclass(frozen=True)
class Expression:
    """A metric math line; evaluated in its widget's region over the metric ids it names."""

    expression: str
    id: str
    label: str
    color: str | None = None
    y_axis: str | None = None
    visible: bool = True

    def to_json(self) -> list[Any]:
        opts: dict[str, Any] = {"expression": self.expression, "id": self.id, "label": self.label}
        if self.color:
            opts["color"] = self.color
        if self.y_axis:
            opts["yAxis"] = self.y_axis
        if not self.visible:
            opts["visible"] = False
        return [opts]


@dataclass(frozen=True)
class HLine:
    """A horizontal annotation: an alarm threshold or an SLO burn-rate threshold drawn on the graph."""

    value: float
    label: str
    color: str = RED

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "label": self.label, "color": self.color}


@dataclass(frozen=True)
class AlarmRef:
    """A CloudWatch alarm by region and name; its ARN needs the account id, known only at deploy time."""

    region: str
    name: str

    def arn(self, account_id: str) -> str:
        return f"arn:aws:cloudwatch:{self.region}:{account_id}:alarm:{self.name}"


@dataclass
class Widget:
    width: int
    height: int
    x: int = 0
    y: int = 0

    def properties(self, account_id: str) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def kind(self) -> str:
        raise NotImplementedError

    def to_json(self, account_id: str) -> dict[str, Any]:
        return {"type": self.kind, "x": self.x, "y": self.y, "width": self.width, "height": self.height,
                "properties": self.properties(account_id)}


@dataclass
class Graph(Widget):
    """A metric widget. `region` is where the widget's math runs; each metric also names its own region."""

    title: str = ""
    region: str = ""
    lines: Sequence[Metric | Expression] = ()
    view: str = "timeSeries"
    stacked: bool = False
    period: int = 60
    hlines: Sequence[HLine] = ()
    y_label: str | None = None
    y_min: float | None = None
    y_max: float | None = None
    whole_range: bool = False  # singleValue over the dashboard's time range (setPeriodToTimeRange)

    @property
    def kind(self) -> str:
        return "metric"

    def properties(self, account_id: str) -> dict[str, Any]:
        props: dict[str, Any] = {
            "title": self.title, "region": self.region, "view": self.view, "stacked": self.stacked,
            "period": self.period, "metrics": [line.to_json() for line in self.lines],
        }
        if self.hlines:
            props["annotations"] = {"horizontal": [h.to_json() for h in self.hlines]}
        left: dict[str, Any] = {}
        if self.y_label:
            left.update(label=self.y_label, showUnits=False)
        if self.y_min is not None:
            left["min"] = self.y_min
        if self.y_max is not None:
            left["max"] = self.y_max
        if left and self.view == "timeSeries":
            props["yAxis"] = {"left": left}
        if self.whole_range:
            props["setPeriodToTimeRange"] = True
        return props


@dataclass
class Alarms(Widget):
    """An alarm status widget: alarms of ONE region (the ARNs carry it), at most 100."""

    title: str = ""
    alarms: Sequence[AlarmRef] = ()

    @property
    def kind(self) -> str:
        return "alarm"

    def properties(self, account_id: str) -> dict[str, Any]:
        return {"title": self.title, "alarms": [a.arn(account_id) for a in self.alarms],
                "sortBy": "stateUpdatedTimestamp"}


@dataclass
class Text(Widget):
    markdown: str = ""

    @property
    def kind(self) -> str:
        return "text"

    def properties(self, account_id: str) -> dict[str, Any]:
        return {"markdown": self.markdown}


@dataclass
class LogTable(Widget):
    """A Logs Insights widget: `text` (a saved query's, infra/dashboard_defs/log_queries.py) on log groups of ONE
    region, shown as a table ("log" widget: Dashboard Body Structure, properties query/region/view)."""

    title: str = ""
    region: str = ""
    log_groups: Sequence[str] = ()
    text: str = ""

    @property
    def kind(self) -> str:
        return "log"

    def properties(self, account_id: str) -> dict[str, Any]:
        return {"title": self.title, "region": self.region, "view": "table",
                "query": widget_query(self.log_groups, self.text)}


@dataclass
class Dashboard:
    """A named dashboard: widgets in reading order, placed by `flow()`; `start` is the default time range."""

    key: str  # short id: file name of the rendered JSON, suffix of the physical name
    title: str
    widgets: list[Widget] = field(default_factory=list)
    start: str = "-PT12H"

    def body(self, account_id: str) -> dict[str, Any]:
        flow(self.widgets)
        return {"start": self.start, "periodOverride": "inherit",
                "widgets": [w.to_json(account_id) for w in self.widgets]}


def flow(widgets: Iterable[Widget]) -> None:
    """Place widgets left to right, wrapping at 24 columns; a row is as tall as its tallest widget.

    Widgets never overlap by construction; the plan-time rule re-checks the rendered body anyway, because a
    hand-set x/y (or a future widget wider than the grid) would otherwise reach CloudWatch unnoticed."""
    x = y = row_height = 0
    for w in widgets:
        if x + w.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        w.x, w.y = x, y
        x += w.width
        row_height = max(row_height, w.height)


def section(title: str, note: str = "") -> Text:
    """A full-width heading that starts a new row."""
    text = f"## {title}" + (f"\n{note}" if note else "")
    return Text(width=GRID_COLUMNS, height=2 if note else 1, markdown=text)


def widget_query(log_groups: Sequence[str], text: str) -> str:
    """A log widget's query: its log groups as SOURCE commands before the query text (the form the console and
    AWS CDK's LogQueryWidget write)."""
    return " | ".join(f"SOURCE '{g}'" for g in log_groups) + f" | {text}"


def widget_parts(query: str) -> tuple[tuple[str, ...], str]:
    """(log groups, query text) of a log widget's query: `widget_query` read back."""
    groups = []
    rest = query
    while rest.startswith("SOURCE '"):
        name, sep, rest = rest[len("SOURCE '"):].partition("' | ")
        if not sep:
            break
        groups.append(name)
    return tuple(groups), rest
