"""CloudWatch dashboard of the Prophet anomaly detector: per metric, the actual value against the
forecast and its band, the score, the anomaly episodes; and the detector's own health.

The band is the one the detector publishes (UpperBound/LowerBound from Prophet's interval), not CloudWatch's
ANOMALY_DETECTION_BAND: the graph must show what the detector decided on. The seed's dashboard plotted
predicted/upper/lower metrics that nothing published; here every line is checked against the detector's
contract at plan time (`catalog.anomaly_metrics`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from infra.config import StackConfig
from infra.dashboard_defs.catalog import ANOMALY_DIMENSION, ANOMALY_NAMESPACE
from infra.dashboard_defs.cloudwatch import (
    BLUE,
    GREY,
    ORANGE,
    PALETTE,
    PURPLE,
    RED,
    AlarmRef,
    Alarms,
    Dashboard,
    Expression,
    Graph,
    HLine,
    Metric,
    Widget,
    section,
)
from infra.dashboard_defs.log_queries import Placement, log_tables
from lambdas.anomaly_core.metrics import (
    ACTUAL,
    CONFIDENCE,
    DETECTOR_ERRORS,
    FORECAST_AGE,
    IS_ANOMALY,
    LOWER_BOUND,
    PREDICTED,
    SCORE,
    UPPER_BOUND,
)

DETECTOR_PERIOD_S = 300  # the detector scores one point per 5-minute run
DECISIONS_QUERY = "detector-decisions-by-metric"  # infra/dashboard_defs/log_queries.py


def _m(cfg: StackConfig, name: str, metric: str | None, stat: str, label: str, color: str,
       y_axis: str | None = None) -> Metric:
    dims = ((ANOMALY_DIMENSION, metric),) if metric else ()
    return Metric(ANOMALY_NAMESPACE, name, cfg.aws.region, dimensions=dims, stat=stat, label=label, color=color,
                  y_axis=y_axis)


def _per_metric(cfg: StackConfig, metric: str) -> list[Widget]:
    home = cfg.aws.region
    return [
        Graph(width=12, height=6, title=f"{metric}: actual vs forecast (band = Prophet interval)", region=home,
              period=DETECTOR_PERIOD_S,
              lines=[_m(cfg, UPPER_BOUND, metric, "Maximum", "upper bound", GREY),
                     _m(cfg, LOWER_BOUND, metric, "Minimum", "lower bound", GREY),
                     _m(cfg, PREDICTED, metric, "Average", "predicted", ORANGE),
                     _m(cfg, ACTUAL, metric, "Average", "actual", BLUE)]),
        Graph(width=6, height=6, title=f"{metric}: score and confidence", region=home, period=DETECTOR_PERIOD_S,
              lines=[_m(cfg, SCORE, metric, "Maximum", "score", PURPLE),
                     _m(cfg, CONFIDENCE, metric, "Maximum", "confidence", RED)],
              hlines=[HLine(cfg.anomaly.confidence_threshold,
                            f"notify above {cfg.anomaly.confidence_threshold:g}")]),
        Graph(width=6, height=6, title=f"{metric}: anomaly episodes", region=home, period=DETECTOR_PERIOD_S,
              stacked=True, lines=[_m(cfg, IS_ANOMALY, metric, "Maximum", "anomalous", RED)],
              y_min=0, y_max=1, y_label="anomalous (0/1)"),
    ]


def anomaly_dashboard(cfg: StackConfig, alarms: Sequence[AlarmRef], functions: Sequence[str] = (),
                      logs: Sequence[Placement] = ()) -> Dashboard:
    home = cfg.aws.region
    names = [m.name for m in cfg.anomaly.metrics]
    widgets: list[Widget] = [section(
        "Detector health", "If these are red the graphs below are stale: no forecast, no anomaly scoring.")]
    widgets.append(Graph(width=8, height=6, title="Detector errors", region=home, period=DETECTOR_PERIOD_S,
                         lines=[_m(cfg, DETECTOR_ERRORS, None, "Sum", "errors per run", RED)], y_min=0))
    # ForecastAge is published in seconds; shown in hours, the unit of anomaly.forecastMaxAgeHours.
    age_lines: list[Metric | Expression] = []
    for i, (n, c) in enumerate(zip(names, _colors(len(names)), strict=True)):
        age_lines.append(dataclasses.replace(_m(cfg, FORECAST_AGE, n, "Maximum", n, c), id=f"age{i}",
                                             visible=False))
        age_lines.append(Expression(f"age{i} / 3600", f"hours{i}", n, color=c))
    widgets.append(Graph(width=8, height=6, title="Forecast age (hours)", region=home, period=3600,
                         lines=age_lines,
                         hlines=[HLine(cfg.anomaly.forecast_max_age_hours,
                                       f"scoring stops at {cfg.anomaly.forecast_max_age_hours} h")],
                         y_min=0, y_label="hours"))
    if functions:
        widgets.append(Graph(width=8, height=6, title="Detector and trainer functions (AWS/Lambda)", region=home,
                             period=DETECTOR_PERIOD_S, y_min=0,
                             lines=[Metric("AWS/Lambda", name, home, dimensions=(("FunctionName", fn),), stat="Sum",
                                           label=f"{fn.rsplit('-', 1)[-1]} {name.lower()}", color=color)
                                    for fn, colors in zip(functions, ((RED, ORANGE), (PURPLE, GREY)), strict=False)
                                    for name, color in zip(("Errors", "Throttles"), colors, strict=True)]))
    by_region: dict[str, list[AlarmRef]] = {}
    for ref in alarms:
        by_region.setdefault(ref.region, []).append(ref)
    for region, refs in sorted(by_region.items()):
        widgets.append(Alarms(width=8, height=6, title=f"Anomaly detector alarms ({region})", alarms=refs))
    widgets += log_tables(logs, DECISIONS_QUERY)
    for metric in names:
        widgets.append(section(f"Metric {metric}"))
        widgets += _per_metric(cfg, metric)
    return Dashboard(key="anomaly", title="AkiDB anomaly detection", widgets=widgets, start="-P2D")


def _colors(n: int) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(n)]
