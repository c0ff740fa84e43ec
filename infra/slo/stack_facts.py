"""What each stack provides to its runbook pages (filled from the offline plans by infra/offline/runbook_facts.py),
and whether a URL a page or the automation writes reaches it: a runbook page, a Grafana board the repository
provides (dashboards/grafana, by uid), one of the stack's CloudWatch dashboards or saved Logs Insights queries
(console addresses)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.slo.runbooks import RUNBOOK_MARK
from infra.slo.spec import cloudwatch_dashboard_of, cloudwatch_dashboard_url, logs_insights_of, logs_insights_url

# --------------------------------------------------------------------------------------------------------------
# What each stack declares (filled from the offline plans by infra/offline/runbook_facts.py)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guardrails:
    """sloAlerting.runbooks.* of a stack."""

    enabled: bool
    dry_run: bool
    allowed_asgs: tuple[str, ...]
    scale_out_asg: str | None
    scale_out_step: int
    max_capacity: int
    max_actions_per_hour: int


@dataclass(frozen=True)
class LogQuery:
    """A CloudWatch Logs Insights saved query of the stack (infra/components/logs.py): `<prefix>/<key>`, its text
    and the log groups (of `region`) it reads."""

    name: str
    region: str
    text: str = ""
    log_groups: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def url(self) -> str:
        """The console link that opens the query on its log groups."""
        return logs_insights_url(self.region, self.log_groups, self.text)


@dataclass(frozen=True)
class CloudWatchBoard:
    name: str
    region: str

    @property
    def key(self) -> str:
        return self.name.rsplit("-", 1)[-1]

    @property
    def url(self) -> str:
        return cloudwatch_dashboard_url(self.region, self.name)


@dataclass(frozen=True)
class AlarmFact:
    """A CloudWatch alarm whose description names a runbook."""

    name: str
    region: str
    severity: str  # P0/P1/P2 from the topic it notifies, "" when none
    description: str
    condition: str  # the metric and threshold, or the composite's rule


@dataclass(frozen=True)
class StackFacts:
    stack: str
    paging_enabled: bool
    grafana_base_url: str
    runbook_base_url: str
    guardrails: Guardrails
    edge_function_name: str = ""
    edge_regions: tuple[str, ...] = ()
    boards: tuple[CloudWatchBoard, ...] = ()
    alarms: tuple[AlarmFact, ...] = field(default_factory=tuple)
    log_queries: tuple[LogQuery, ...] = ()

    def board(self, key: str) -> CloudWatchBoard | None:
        return next((b for b in self.boards if b.key == key), None)

    def link_targets(self, uids: set[str], runbook_ids: set[str]) -> LinkTargets:
        return LinkTargets(self.runbook_base_url, self.grafana_base_url, frozenset(uids),
                           frozenset((b.region, b.name) for b in self.boards),
                           lambda rid: None if rid in runbook_ids else f"no runbook page {rid!r} "
                                                                       f"(known: {sorted(runbook_ids)})",
                           frozenset((q.region, q.log_groups, q.text) for q in self.log_queries))


def alarm_runbooks(description: str) -> list[str]:
    return RUNBOOK_MARK.findall(description or "")


# --------------------------------------------------------------------------------------------------------------
# Links: every URL a page or the automation writes must reach something the stack or the repository provides
# --------------------------------------------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>()\"'`|]+")


def grafana_uids(folder: Path) -> set[str]:
    """The uids of the Grafana dashboards the repository provides (dashboards/grafana/*.json)."""
    return {str(json.loads(p.read_text(encoding="utf-8"))["uid"]) for p in sorted(folder.glob("*.json"))}


def urls_in(text: str) -> list[str]:
    return [u.rstrip(".,;:]") for u in _URL.findall(text)]


@dataclass(frozen=True)
class LinkTargets:
    """What a link may reach: a runbook page under the runbook base, a Grafana board by uid under the Grafana base,
    a CloudWatch dashboard by (region, name), a saved Logs Insights query by (region, log groups, text). The one
    resolver of the runbook pages, the automation's messages and the paths rule (infra/validation/paths.py);
    `runbook_problem` says why a runbook id has no page (None: it has)."""

    runbook_base_url: str
    grafana_base_url: str
    grafana_uids: frozenset[str]
    boards: frozenset[tuple[str | None, str]]
    runbook_problem: Callable[[str], str | None]
    # (region, log groups, text) of each saved Logs Insights query of the stack (its QueryDefinitions)
    log_queries: frozenset[tuple[str, tuple[str, ...], str]] = frozenset()


def link_problem(url: str, t: LinkTargets) -> str | None:
    """Why `url` does not resolve to something the stack or the repository provides, or None."""
    runbook_base, grafana_base = t.runbook_base_url.rstrip("/") + "/", t.grafana_base_url.rstrip("/") + "/"
    if url.startswith(runbook_base):
        problem = t.runbook_problem(url[len(runbook_base):].split("?")[0].split("#")[0].rstrip("/"))
        return f"link {url}: {problem}" if problem else None
    if url.startswith(grafana_base):
        found = re.match(r"d/([^/?#]+)", url[len(grafana_base):])
        if found is None or found.group(1) not in t.grafana_uids:
            return (f"link {url}: no Grafana dashboard of this stack or the repository has that uid (known: "
                    f"{', '.join(sorted(t.grafana_uids)) or 'none'}); link a board the stack deploys")
        return None
    board = cloudwatch_dashboard_of(url)
    if board is not None:
        if board not in t.boards:
            return (f"link {url}: no CloudWatch dashboard {board[1]} in {board[0]} in this stack "
                    f"(deployed: {', '.join(sorted(n for _, n in t.boards)) or 'none'})")
        return None
    query = logs_insights_of(url)
    if query is not None:
        if query not in t.log_queries:
            return (f"link {url}: opens no saved Logs Insights query of this stack (the text and log groups of a "
                    f"QueryDefinition in {query[0]}; saved: {len(t.log_queries)})")
        return None
    return (f"link {url}: not a runbook ({runbook_base}<id>), Grafana board ({grafana_base}d/<uid>), CloudWatch "
            "dashboard or saved Logs Insights query of this stack")
