"""Plan-time rule over the signal paths (infra/plan/signal_paths.py): no dead end between a fault and a person.

Refused, one violation each, naming the resource and the fix:
- a topic something publishes to with no subscriber;
- an alarm, budget, cost-anomaly subscription or Prometheus alert whose route reaches no person;
- an alert kube-prometheus-stack's rules can fire (infra/slo/chart_alerts.py) that no route matches (only the
  catch-all takes it), that reaches no person, or that is silenced though it is not an always-firing one;
- a paging/ticketing signal without a runbook id, an id not in rules/runbooks.yaml, an automated id the automation
  does not dispatch (lambdas/runbook_automation/runbook_ids.py; `manual` ids are fine), an id without its page;
- a link (runbook, dashboard) that does not resolve to something the stack or the repository provides.

Who reads the topics is the stack's business only when it routes its own alerts (`sloAlerting.enabled`: the
severity topics' subscriptions, Alertmanager): with slo-alerting off the operator subscribes them outside the
stack, so reachability is not judged (as `slo_paging_routes` does); runbooks and links still are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.components.dashboards import DASHBOARD_KEY_ANNOTATION
from infra.components.slo_alerting import config_alertmanager
from infra.core.paths import DASHBOARDS_DIR
from infra.plan.model import Plan
from infra.plan.signal_paths import PathGraph, SignalPath, build_paths, topic_label
from infra.slo.runbooks import RUNBOOK_PAGES_DIR, Runbook, load_runbooks
from infra.slo.spec import cloudwatch_dashboard_of
from infra.slo.stack_facts import LinkTargets, grafana_uids, link_problem
from infra.validation import Violation, rule
from lambdas.runbook_automation.runbook_ids import RUNBOOK_IDS

RULE = "signal_paths_reach_a_person"
CHART_KIND = "chart alert"
GRAFANA_BOARDS_DIR = DASHBOARDS_DIR / "grafana"
ADD_RUNBOOK = "name one with `runbook=` of infra/blocks/alarms.py (CloudWatch) or the definition's runbook (rules/)"


@dataclass(frozen=True)
class Catalogue:
    """What runbook ids and links are checked against (parameters so tests can build each dead end)."""

    runbooks: Mapping[str, Runbook]
    pages_dir: Path
    dispatched: tuple[str, ...]
    grafana_dir: Path = GRAFANA_BOARDS_DIR


def default_catalogue() -> Catalogue:
    return Catalogue(load_runbooks(), RUNBOOK_PAGES_DIR, RUNBOOK_IDS)


def stack_alertmanager(plan: Plan) -> dict[str, object] | None:
    """The Alertmanager config this plan deploys (rebuilt from the config: the Secret is redacted in plans)."""
    cfg = plan.config
    if not (cfg.slo_alerting.enabled and cfg.kubernetes.enabled):
        return None
    # Only the heartbeat topic's ARN holds the account; topics are matched by region and name.
    accounts = {str(r.inputs.get("topic")).split(":")[4] for r in plan.of_type("aws:sns/topicSubscription:"
                                                                                "TopicSubscription")
                if str(r.inputs.get("topic")).count(":") == 5}
    return config_alertmanager(cfg, sorted(accounts)[0] if accounts else "000000000000")


def plan_paths(plan: Plan) -> PathGraph:
    return build_paths(plan, stack_alertmanager(plan))


def _grafana_uids(plan: Plan, boards_dir: Path) -> set[str]:
    """Boards the stack deploys (dashboard ConfigMaps) and the repository ships (`dashboards/grafana/*.json`,
    for a Grafana the stack does not provision)."""
    uids = grafana_uids(boards_dir)
    for cm in plan.of_type("kubernetes:core/v1:ConfigMap"):
        if DASHBOARD_KEY_ANNOTATION not in ((cm.inputs.get("metadata") or {}).get("annotations") or {}):
            continue
        for text in (cm.inputs.get("data") or {}).values():
            try:
                uids.add(str(json.loads(text).get("uid")))
            except (ValueError, AttributeError):
                continue
    return uids


def _cloudwatch_boards(plan: Plan) -> set[tuple[str | None, str]]:
    return {(d.region, str(d.inputs.get("dashboardName"))) for d in plan.of_type("aws:cloudwatch/dashboard:Dashboard")}


def _runbook_problems(runbook: str, cat: Catalogue) -> list[str]:
    entry = cat.runbooks.get(runbook)
    if entry is None:
        return [f"runbook id {runbook!r} is not in rules/runbooks.yaml (known: {', '.join(cat.runbooks)}): add it "
                "there (automation: manual unless the automation dispatches it) or name a catalogued id"]
    problems = []
    if entry.automated and runbook not in cat.dispatched:
        problems.append(f"runbook {runbook!r} is catalogued as automated ({entry.automation}) but the automation "
                        f"dispatches only {', '.join(cat.dispatched)}: mark it manual or add it to "
                        "lambdas/runbook_automation/runbook_ids.py and runbooks.py")
    page = cat.pages_dir / f"{runbook}.md"
    if not page.is_file():
        problems.append(f"runbook {runbook!r} has no page {page.name} in {cat.pages_dir}: write it")
    return problems


def link_targets(plan: Plan, cat: Catalogue) -> LinkTargets:
    s = plan.config.slo_alerting
    return LinkTargets(s.runbook_base_url, s.grafana_base_url, frozenset(_grafana_uids(plan, cat.grafana_dir)),
                       frozenset(_cloudwatch_boards(plan)),
                       lambda rid: next(iter(_runbook_problems(rid, cat)), None),
                       frozenset((q.region or "", tuple(str(g) for g in q.inputs.get("logGroupNames") or ()),
                                  str(q.inputs.get("queryString") or ""))
                                 for q in plan.of_type("aws:cloudwatch/queryDefinition:QueryDefinition")))


def _runbook_url(plan: Plan, runbook: str) -> str:
    return f"{plan.config.slo_alerting.runbook_base_url.rstrip('/')}/{runbook}"


def _is_link(url: str, plan: Plan) -> bool:
    """Settings hold endpoints too (queue URLs, base URLs): only what names a runbook or a board is a link."""
    s = plan.config.slo_alerting
    bases = (s.runbook_base_url.rstrip("/") + "/", s.grafana_base_url.rstrip("/") + "/d/")
    return url.startswith(bases) or cloudwatch_dashboard_of(url) is not None


def _signal_problems(p: SignalPath, cat: Catalogue, routed: bool) -> Iterator[str]:
    if routed and p.kind == CHART_KIND:
        yield from _chart_problems(p)
    elif routed and p.kind != "publisher" and not p.people:
        where = ", ".join(p.targets) or "no target at all"
        yield (f"reaches no person through {p.route} ({where}): subscribe a person-facing endpoint (PagerDuty's "
               "CloudWatch integration, the ticket webhook, chat) to the topic, or route the alert to a receiver "
               "with an integration")
    if p.needs_runbook:
        if p.runbook is None:
            yield f"names no runbook: {ADD_RUNBOOK}"
        else:
            yield from _runbook_problems(p.runbook, cat)


def _chart_problems(p: SignalPath) -> Iterator[str]:
    """A chart alert reaches a person by a route meant for it, or is deliberately silenced where that is right."""
    if p.silenced and p.may_silence:
        return
    where = ", ".join(p.targets) or "no receiver"
    if p.silenced:
        yield (f"is silenced ({where}) but it is not an always-firing alert: route its severity to a receiver "
               "that reaches a person (infra/slo/alertmanager.py)")
    elif p.by_default:
        yield (f"matches no route of the Alertmanager config, which replaces kube-prometheus-stack's; only the "
               f"catch-all takes it ({where}): route its severity deliberately (infra/slo/alertmanager.py)")
    elif not p.people:
        yield (f"reaches no person through {p.route} ({where}): route it to a receiver with an integration, or "
               f"to the deliberate `null` receiver if it must never notify")


def path_violations(plan: Plan, catalogue: Catalogue | None = None,
                    graph: PathGraph | None = None) -> Iterator[Violation]:
    cat = catalogue or default_catalogue()
    graph = graph or plan_paths(plan)
    routed = plan.config.slo_alerting.enabled
    for key, node in graph.topics.items():
        if routed and node.publishers and not node.endpoints:
            yield Violation(RULE, topic_label(key),
                            f"published to by {', '.join(dict.fromkeys(node.publishers))} but nobody subscribes: "
                            "what is published reaches no one; subscribe the ticket webhook or a person-facing "
                            "endpoint (aws.sns.TopicSubscription)")
    targets = link_targets(plan, cat)
    for p in graph.paths:
        for message in _signal_problems(p, cat, routed):
            yield Violation(RULE, p.signal, message)
        for url in p.links:
            if p.runbook is not None and url == _runbook_url(plan, p.runbook):
                continue  # the signal's own runbook: judged above, once
            problem = link_problem(url, targets)
            if problem is not None:
                yield Violation(RULE, p.signal, problem)
    for where, url in graph.links:
        if _is_link(url, plan):
            problem = link_problem(url, targets)
            if problem is not None:
                yield Violation(RULE, where, problem)


@rule
def signal_paths_reach_a_person(plan: Plan) -> Iterable[Violation]:
    """Every signal (alarm, budget, alert, published topic) reaches a person, names a catalogued runbook with a
    page, and links only what the stack or the repository provides."""
    return list(path_violations(plan))
