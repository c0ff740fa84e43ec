"""The Logs Insights queries of the stack (issue 32): one definition, two uses. The logs component saves each
as a QueryDefinition on its concern's log groups (infra/components/logs.py); the boards show the same text on the
same log groups in a log widget (`log_tables`), and the runbook pages link it (infra/slo/spec.py logs_insights_url).

A query reads the fields of lambdas/logshape's one shape. A query definition (and a log widget) names log groups
of one Region: the edge queries exist in every edge Region, each on the replicas' log groups there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infra.blocks.context import LogGroupRef
from infra.dashboard_defs.cloudwatch import GRID_COLUMNS, LogTable, Widget

CONCERNS = ("edge", "runbook", "detector")


@dataclass(frozen=True)
class Query:
    key: str
    concern: str  # which log groups: edge | runbook | detector
    title: str
    text: str


def queries(slow_ms: int) -> tuple[Query, ...]:
    """The saved queries, one per concern, on the one shape's fields (`slow_ms`: the X-Ray slow-trace threshold,
    so a slow request here is a slow trace there)."""
    return (
        Query("edge-errors-by-region", "edge", "Edge errors by region",
              "fields @timestamp, EdgeRegion, Status, Reason, request_id, trace_id\n"
              "| filter level = \"ERROR\" or Status >= 400\n"
              "| stats count(*) as requests by EdgeRegion, Status, Reason\n"
              "| sort requests desc"),
        Query("edge-slow-requests", "edge", "Slow edge requests with their trace ids",
              "fields @timestamp, EdgeRegion, TotalLatency, InferenceLatency, TokenCount, CacheHit, request_id, "
              "trace_id\n"
              f"| filter TotalLatency > {slow_ms}\n"
              "| sort TotalLatency desc\n"
              "| limit 100"),
        Query("runbook-audit-trail", "runbook", "Runbook actions by incident (audit trail)",
              "fields @timestamp, incident_id, function, decision, runbook, action, reason, request_id, trace_id\n"
              "| filter ispresent(incident_id)\n"
              "# add: | filter incident_id = \"<PagerDuty incident id>\"\n"
              "| sort incident_id asc, @timestamp asc\n"
              "| limit 1000"),
        Query("detector-decisions-by-metric", "detector", "Anomaly detector decisions by metric",
              "fields @timestamp, metric, decision, score, confidence, episode_id, reason\n"
              "| filter ispresent(metric) and ispresent(decision)\n"
              "| stats count(*) as runs, latest(decision) as last_decision, max(score) as max_score, "
              "latest(episode_id) as episode by metric, decision\n"
              "| sort metric asc"),
    )


def query_name(prefix: str, key: str) -> str:
    """Saved queries are grouped in the console by the folder before the last '/'."""
    return f"{prefix}/{key}"


@dataclass(frozen=True)
class LogOwners:
    """Physical names of the functions whose log groups each concern reads (empty: that component is off)."""

    edge: tuple[str, ...] = ()
    runbook: tuple[str, ...] = ()
    detector: tuple[str, ...] = ()

    def of(self, concern: str) -> tuple[str, ...]:
        if concern not in CONCERNS:
            raise ValueError(f"unknown log concern {concern!r}; known: {', '.join(CONCERNS)}")
        owners: tuple[str, ...] = getattr(self, concern)
        return owners


@dataclass(frozen=True)
class Placement:
    """A query on the log groups of its concern in one Region: one QueryDefinition, one log widget."""

    query: Query
    region: str
    log_groups: tuple[str, ...]


def placements(all_queries: Sequence[Query], groups: Sequence[LogGroupRef], owners: LogOwners,
               home: str) -> list[Placement]:
    """Every query in every Region holding a log group of its concern (the home Region first)."""
    out = []
    for q in all_queries:
        targets = [g for g in groups if g.owner in owners.of(q.concern)]
        for region in sorted({g.region for g in targets}, key=lambda r: (r != home, r)):
            out.append(Placement(q, region, tuple(sorted(g.name for g in targets if g.region == region))))
    return out


def log_tables(found: Sequence[Placement], key: str, region: str | None = None, width: int = GRID_COLUMNS,
               height: int = 6) -> list[Widget]:
    """The log widgets of one saved query (in one region, or in each), on the query's own log groups and text."""
    return [LogTable(width=width, height=height, title=f"{p.query.title}: {p.region} (Logs Insights)",
                     region=p.region, log_groups=p.log_groups, text=p.query.text)
            for p in found if p.query.key == key and region in (None, p.region)]
