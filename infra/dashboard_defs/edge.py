"""CloudWatch dashboard of the Lambda@Edge embedding function (its EMF metrics).

Each replica publishes its EMF metrics in the region where it ran (AWS "Restrictions on Lambda@Edge"), so every
line names that region. "All regions" graphs show one line per region (stacked for counts: the stack's top is the
total);
ratios are computed inside one region only, because metric math does not combine regions. Thresholds are the
edge alarms' own settings (`cfg.emf_edge.alarms`), so the line on the graph is the line the alarm uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from infra.config import StackConfig
from infra.dashboard_defs.cloudwatch import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    PALETTE,
    RED,
    AlarmRef,
    Alarms,
    Dashboard,
    Graph,
    HLine,
    Metric,
    Widget,
    section,
)
from infra.dashboard_defs.log_queries import Placement, log_tables
from lambdas.edge_inference import emf

ERRORS_QUERY = "edge-errors-by-region"  # infra/dashboard_defs/log_queries.py
BOARD_KEY = "edge"  # the CloudWatch dashboard is named ctx.naming.physical(BOARD_KEY)

LATENCY_STATS = (("Average", "avg", BLUE), ("p95", "p95", ORANGE), ("p99", "p99", RED))


def _region_color(cfg: StackConfig, region: str) -> str:
    return PALETTE[cfg.emf_edge.edge_regions.index(region) % len(PALETTE)]


def _total_metric(cfg: StackConfig, name: str, region: str, stat: str) -> Metric:
    """The dimensionless aggregate ([] dimension set) of one region."""
    return Metric(cfg.emf_edge.namespace, name, region, stat=stat, label=region, color=_region_color(cfg, region))


def _regional(cfg: StackConfig, name: str, region: str, stat: str, label: str, color: str) -> Metric:
    """The EdgeRegion breakdown of one region (EdgeRegion is the executing region: AWS_REGION in a replica)."""
    return Metric(cfg.emf_edge.namespace, name, region, dimensions=((emf.EDGE_REGION, region),),
                  stat=stat, label=label, color=color)


def _latency_thresholds(cfg: StackConfig, stat: str) -> list[HLine]:
    a = cfg.emf_edge.alarms
    if stat == "Average":
        return [HLine(a.inference_latency_avg_ms, f"avg alarm {a.inference_latency_avg_ms:g} ms")]
    if stat == "p95":
        return [HLine(a.inference_latency_p95_ms, f"p95 alarm {a.inference_latency_p95_ms:g} ms")]
    return []


def _all_regions(cfg: StackConfig) -> list[Widget]:
    regions = cfg.emf_edge.edge_regions
    home = cfg.aws.region
    period = cfg.emf_edge.alarms.period_s
    a = cfg.emf_edge.alarms
    out: list[Widget] = [section(
        "All edge regions",
        "One line per region (each replica publishes where it ran); counts are stacked, so the top is the total.")]
    out.append(Graph(width=8, height=6, title="Requests (stacked by region)", region=home, stacked=True,
                     period=period, lines=[_total_metric(cfg, "RequestCount", r, "Sum") for r in regions],
                     y_label="requests / period"))
    out.append(Graph(width=8, height=6, title="5xx errors (stacked by region)", region=home, stacked=True,
                     period=period, lines=[_total_metric(cfg, "ErrorCount", r, "Sum") for r in regions],
                     hlines=[HLine(a.error_count, f"alarm {a.error_count:g}/period (per region)")],
                     y_label="errors / period"))
    out.append(Graph(width=8, height=6, title="Cache-hit rate (warm container) by region", region=home,
                     period=period, lines=[_total_metric(cfg, "CacheHit", r, "Average") for r in regions],
                     hlines=[HLine(a.cache_hit_rate_min, f"alarm below {a.cache_hit_rate_min:g}", ORANGE)],
                     y_min=0, y_max=1, y_label="share"))
    for metric, what in (("InferenceLatency", "Inference"), ("TotalLatency", "Total")):
        for stat, short, _ in LATENCY_STATS:
            hlines = _latency_thresholds(cfg, stat) if metric == "InferenceLatency" else []
            out.append(Graph(width=8, height=6, title=f"{what} latency {short} by region", region=home,
                             period=period, lines=[_total_metric(cfg, metric, r, stat) for r in regions],
                             hlines=hlines, y_label="ms", y_min=0))
    return out


def _one_region(cfg: StackConfig, region: str, alarms: Sequence[str], function_name: str | None,
                logs: Sequence[Placement]) -> list[Widget]:
    period = cfg.emf_edge.alarms.period_s
    a = cfg.emf_edge.alarms
    out: list[Widget] = [section(f"Edge region {region}")]
    for metric, what in (("InferenceLatency", "Inference"), ("TotalLatency", "Total")):
        lines = [_regional(cfg, metric, region, stat, short, color) for stat, short, color in LATENCY_STATS]
        hlines = ([HLine(a.inference_latency_avg_ms, "avg alarm"), HLine(a.inference_latency_p95_ms, "p95 alarm")]
                  if metric == "InferenceLatency" else [])
        out.append(Graph(width=8, height=6, title=f"{what} latency avg/p95/p99 ({region})", region=region,
                         period=period, lines=lines, hlines=hlines, y_label="ms", y_min=0))
    out.append(Graph(width=8, height=6, title=f"Requests and errors ({region})", region=region, period=period,
                     lines=[_regional(cfg, "RequestCount", region, "Sum", "requests", BLUE),
                            _regional(cfg, "ErrorCount", region, "Sum", "5xx", RED),
                            _regional(cfg, "ClientErrorCount", region, "Sum", "4xx", GREY)],
                     hlines=[HLine(a.error_count, "5xx alarm")], y_label="per period"))
    out.append(Graph(width=8, height=6, title=f"Cache-hit rate and cold-start model load ({region})",
                     region=region, period=period,
                     lines=[_regional(cfg, "CacheHit", region, "Average", "cache-hit rate", GREEN),
                            Metric(cfg.emf_edge.namespace, "ModelLoadTime", region,
                                   dimensions=((emf.EDGE_REGION, region),), stat="Maximum",
                                   label="model load ms (right)", color=PALETTE[4], y_axis="right")],
                     hlines=[HLine(a.cache_hit_rate_min, "cache-hit alarm", ORANGE)], y_min=0, y_max=1,
                     y_label="share"))
    if function_name:
        # Replicas report AWS/Lambda metrics in the executing region under "us-east-1.<function>".
        fn = f"us-east-1.{function_name}"
        out.append(Graph(width=8, height=6, title=f"Replica invocations, errors, throttles ({region})",
                         region=region, period=period,
                         lines=[Metric("AWS/Lambda", name, region, dimensions=(("FunctionName", fn),), stat="Sum",
                                       label=name, color=color)
                                for name, color in (("Invocations", BLUE), ("Errors", RED), ("Throttles", ORANGE))]))
    if alarms:
        out.append(Alarms(width=8, height=6, title=f"Edge alarms ({region})",
                          alarms=[AlarmRef(region, name) for name in alarms]))
    out += log_tables(logs, ERRORS_QUERY, region)
    return out


def edge_dashboard(cfg: StackConfig, alarm_names: Mapping[str, Sequence[str]] | None,
                   function_name: str | None = None, logs: Sequence[Placement] = ()) -> Dashboard:
    """`function_name`: the deployed (physical) name, for the replicas' AWS/Lambda metrics; `logs`: where the
    saved queries run (each region's section shows its edge errors)."""
    widgets: list[Widget] = _all_regions(cfg)
    for region in cfg.emf_edge.edge_regions:
        widgets += _one_region(cfg, region, (alarm_names or {}).get(region, ()), function_name, logs)
    return Dashboard(key=BOARD_KEY, title="AkiDB edge inference", widgets=widgets, start="-PT6H")
