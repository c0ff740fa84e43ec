"""What each stack provides to its runbook pages (filled from the offline plans by infra/offline/runbook_facts.py),
and whether a URL a page or the automation writes reaches it: a runbook page, a Grafana board the repository
provides (dashboards/grafana, by uid), or one of the stack's CloudWatch dashboards (console address)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from infra.slo.runbooks import RUNBOOK_MARK
from infra.slo.spec import cloudwatch_dashboard_url

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

    def board(self, key: str) -> CloudWatchBoard | None:
        return next((b for b in self.boards if b.key == key), None)


def alarm_runbooks(description: str) -> list[str]:
    return RUNBOOK_MARK.findall(description or "")


# --------------------------------------------------------------------------------------------------------------
# Links: every URL a page or the automation writes must reach something the stack or the repository provides
# --------------------------------------------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>()\"'`|]+")
# The form spec.cloudwatch_dashboard_url writes (console host, region= query); a regional console host must agree.
_CONSOLE = re.compile(r"^https://(?:([a-z0-9-]+)\.)?console\.aws\.amazon\.com/cloudwatch/home\?region=([a-z0-9-]+)"
                      r"#dashboards/dashboard/([^/?#]+)$")


def grafana_uids(folder: Path) -> set[str]:
    """The uids of the Grafana dashboards the repository provides (dashboards/grafana/*.json)."""
    return {str(json.loads(p.read_text(encoding="utf-8"))["uid"]) for p in sorted(folder.glob("*.json"))}


def urls_in(text: str) -> list[str]:
    return [u.rstrip(".,;:]") for u in _URL.findall(text)]


def link_problem(url: str, facts: StackFacts, uids: set[str], runbook_ids: set[str]) -> str | None:
    """None when `url` reaches a runbook page, a provided Grafana board or one of the stack's CloudWatch boards."""
    runbook_base, grafana_base = facts.runbook_base_url.rstrip("/"), facts.grafana_base_url.rstrip("/")
    if url.startswith(runbook_base + "/"):
        rid = url[len(runbook_base) + 1:]
        return None if rid in runbook_ids else f"{url}: no runbook page {rid!r} (known: {sorted(runbook_ids)})"
    if url.startswith(grafana_base + "/"):
        path = urlsplit(url).path
        m = re.fullmatch(r"/d/([^/]+)/", path[len(urlsplit(grafana_base).path):])
        if not m:
            return f"{url}: not a Grafana dashboard link (<base>/d/<uid>/)"
        return None if m.group(1) in uids else f"{url}: no provided Grafana dashboard has uid {m.group(1)!r}"
    m = _CONSOLE.match(url)
    if m:
        region, name = m.group(2), unquote(m.group(3))
        if m.group(1) not in (None, region):
            return f"{url}: the console host and region= disagree"
        found = [b for b in facts.boards if b.name == name]
        if not found:
            return f"{url}: stack {facts.stack} has no CloudWatch dashboard {name!r}"
        return None if any(b.region == region for b in found) else f"{url}: {name} is not in {region}"
    return f"{url}: neither a runbook page, a Grafana board under {grafana_base} nor a CloudWatch dashboard"
