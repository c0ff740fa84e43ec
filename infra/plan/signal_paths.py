"""Every signal of the stack down to the person it reaches, as data derived from the plan:

    signal -> route -> topic / Alertmanager receiver -> subscription / integration -> runbook id -> runbook page

Signals: CloudWatch metric and composite alarms (their actions), budgets and cost-anomaly subscriptions, anything
allowed to publish to a topic (a function's or a workload's role: the anomaly detector, the runbook audit, the
heartbeat), the Prometheus alerts of the deployed PrometheusRules and the alert shapes of kube-prometheus-stack's
own rules (infra/slo/chart_alerts.py), both routed by the Alertmanager config the stack deploys. A
person is reached through an SNS subscription that delivers outside AWS (https/http/email/sms: PagerDuty's
CloudWatch integration, the ticket webhook; the endpoint may be a secret or unknown at preview, so its protocol
decides, never a literal key), AWS Chatbot, or an Alertmanager receiver with a PagerDuty, webhook, Slack or
e-mail integration. A topic nobody reads but an alarm on its `NumberOfMessagesPublished` (the heartbeat) reaches
whoever that alarm reaches.

This module only builds the graph; infra/validation/paths.py judges it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.plan.model import Plan, PlannedResource
from infra.plan.types import COMPOSITE_ALARM as COMPOSITE
from infra.plan.types import METRIC_ALARM as ALARM
from infra.plan.types import PROMETHEUS_RULE
from infra.slo.alertmanager import RECEIVER_NULL
from infra.slo.chart_alerts import CHART_ALERTS
from infra.slo.runbooks import marked_runbook

SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
CHATBOT = "aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TOPIC = "aws:sns/topic:Topic"
# SNS protocols that deliver outside AWS, to a system people read (AWS "Amazon SNS subscription protocols").
PERSON_PROTOCOLS = ("https", "http", "email", "email-json", "sms")
# Alertmanager integrations that reach people (a webhook is the ticket system).
PERSON_INTEGRATIONS = ("pagerduty_configs", "webhook_configs", "slack_configs", "email_configs",
                       "opsgenie_configs", "msteams_configs")
PAGING_OR_TICKETING = ("P0", "P1", "P2")  # alert severities a person acts on (info: chat only; heartbeat: none)
URL = re.compile(r"https?://[^\s'\"<>)\]]+")

TopicKey = tuple[str | None, str]  # (region, topic name)


def topic_key(arn: Any) -> TopicKey | None:
    """`arn:<partition>:sns:<region>:<account>:<name>` -> (region, name); None for anything else."""
    parts = str(arn or "").split(":")
    if len(parts) != 6 or parts[2] != "sns":
        return None
    return parts[3] or None, parts[5]


def topic_label(key: TopicKey) -> str:
    return f"SNS topic {key[1]} ({key[0]})"


@dataclass(frozen=True)
class Endpoint:
    """Who or what reads a topic."""

    label: str
    person: bool


@dataclass
class TopicNode:
    key: TopicKey
    declared: bool  # the plan creates it
    endpoints: list[Endpoint] = field(default_factory=list)
    publishers: list[str] = field(default_factory=list)

    @property
    def people(self) -> list[str]:
        return [e.label for e in self.endpoints if e.person]


@dataclass(frozen=True)
class SignalPath:
    """One signal and where it goes. `targets`: topic labels or Alertmanager receivers; `people`: the endpoints
    that reach a person (empty: a dead end)."""

    kind: str  # alarm | composite alarm | budget | cost anomaly | publisher | alert
    signal: str  # what a violation names
    route: str
    targets: tuple[str, ...]
    people: tuple[str, ...]
    runbook: str | None = None
    links: tuple[str, ...] = ()
    needs_runbook: bool = False
    silenced: bool = False  # every receiver is a deliberate silence (a receiver named `null` with no integration)
    may_silence: bool = False  # ... and that is a correct outcome for this signal
    by_default: bool = False  # no route matched: the root's catch-all took it


@dataclass
class PathGraph:
    topics: dict[TopicKey, TopicNode]
    paths: list[SignalPath]
    links: list[tuple[str, str]]  # (where, URL) of links outside the signals (the runbook functions' settings)


def _topic(graph: dict[TopicKey, TopicNode], key: TopicKey) -> TopicNode:
    if key not in graph:
        graph[key] = TopicNode(key, declared=False)
    return graph[key]


def _statements(policy: Any) -> list[dict[str, Any]]:
    try:
        doc = json.loads(policy) if isinstance(policy, str) else policy
    except ValueError:
        return []
    stmts = doc.get("Statement", []) if isinstance(doc, dict) else []
    return [s for s in (stmts if isinstance(stmts, list) else [stmts]) if isinstance(s, dict)]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


def _subscription_endpoint(sub: PlannedResource, ticket_url: str) -> Endpoint:
    protocol = str(sub.inputs.get("protocol") or "")
    endpoint = sub.inputs.get("endpoint")
    if protocol not in PERSON_PROTOCOLS:
        return Endpoint(f"{protocol} subscription {sub.name} ({endpoint})", person=False)
    if endpoint == "[secret]":
        what = "secret endpoint (e.g. PagerDuty's CloudWatch integration)"
    elif endpoint is None:
        what = "endpoint known after deploy"
    elif endpoint == ticket_url:
        what = "ticket webhook"
    else:
        what = str(endpoint)
    filtered = " (filtered)" if sub.inputs.get("filterPolicy") else ""
    return Endpoint(f"{protocol} {what}{filtered}", person=True)


def _topics(plan: Plan) -> dict[TopicKey, TopicNode]:
    graph: dict[TopicKey, TopicNode] = {}
    for t in plan.of_type(TOPIC):
        declared = (t.region, str(t.inputs.get("name")))
        graph[declared] = TopicNode(declared, declared=True)
    ticket_url = plan.config.slo_alerting.ticket_webhook_url
    for sub in plan.of_type(SUBSCRIPTION):
        key = topic_key(sub.inputs.get("topic"))
        if key is not None:
            _topic(graph, key).endpoints.append(_subscription_endpoint(sub, ticket_url))
    for chat in plan.of_type(CHATBOT):
        for arn in _listed(chat.inputs.get("snsTopicArns")):
            key = topic_key(arn)
            if key is not None:
                _topic(graph, key).endpoints.append(Endpoint(f"chat ({chat.inputs.get('configurationName')})",
                                                             person=True))
    for pol in plan.of_type(ROLE_POLICY):
        for stmt in _statements(pol.inputs.get("policy")):
            if stmt.get("Effect") == "Allow" and "sns:Publish" in _listed(stmt.get("Action")):
                for arn in _listed(stmt.get("Resource")):
                    key = topic_key(arn)
                    if key is not None:
                        _topic(graph, key).publishers.append(f"role {pol.inputs.get('role')}")
    return graph


def _alarm_topics(a: PlannedResource) -> list[TopicKey]:
    keys = [topic_key(arn) for arn in _listed(a.inputs.get("alarmActions"))]
    return [k for k in keys if k is not None]


def _heartbeat_readers(plan: Plan, graph: dict[TopicKey, TopicNode]) -> None:
    """A topic whose publishes an alarm watches (missing data breaching) is read by that alarm, and so reaches
    whoever the alarm reaches."""
    for a in plan.of_type(ALARM):
        if (a.inputs.get("namespace") != "AWS/SNS" or a.inputs.get("metricName") != "NumberOfMessagesPublished"
                or a.inputs.get("treatMissingData") != "breaching"):
            continue
        watched = (a.region, str((a.inputs.get("dimensions") or {}).get("TopicName")))
        people = sorted({p for k in _alarm_topics(a) for p in _topic(graph, k).people})
        _topic(graph, watched).endpoints.append(
            Endpoint(f"alarm {a.inputs.get('name')} on its publishes -> {', '.join(people) or 'nobody'}",
                     person=bool(people)))


def _links(*texts: Any) -> tuple[str, ...]:
    return tuple(sorted({u.rstrip(".,;") for t in texts for u in URL.findall(str(t or ""))}))


def _via(graph: dict[TopicKey, TopicNode], keys: Iterable[TopicKey]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    keys = list(dict.fromkeys(keys))
    return (tuple(topic_label(k) for k in keys),
            tuple(sorted({p for k in keys for p in _topic(graph, k).people})))


def _alarm_paths(plan: Plan, graph: dict[TopicKey, TopicNode]) -> list[SignalPath]:
    out = []
    for a in plan.of_type(ALARM, COMPOSITE):
        keys = _alarm_topics(a)
        if not keys:
            continue  # no action: a building block of a composite, or a dashboard-only alarm
        name = a.inputs.get("name") or a.inputs.get("alarmName")
        kind = "composite alarm" if a.type == COMPOSITE else "alarm"
        targets, people = _via(graph, keys)
        desc = a.inputs.get("alarmDescription")
        out.append(SignalPath(kind, f"CloudWatch {kind} {name} ({a.region})", "alarm actions", targets, people,
                              runbook=marked_runbook(desc), links=_links(desc), needs_runbook=True))
    return out


def _cost_paths(plan: Plan, graph: dict[TopicKey, TopicNode]) -> list[SignalPath]:
    out = []
    for b in plan.of_type("aws:budgets/budget:Budget"):
        keys = [topic_key(arn) for n in b.inputs.get("notifications") or []
                for arn in n.get("subscriberSnsTopicArns") or []]
        targets, people = _via(graph, [k for k in keys if k is not None])
        out.append(SignalPath("budget", f"budget {b.inputs.get('name')}", "budget notifications", targets, people))
    for s in plan.of_type("aws:costexplorer/anomalySubscription:AnomalySubscription"):
        keys = [topic_key(sub.get("address")) for sub in s.inputs.get("subscribers") or [] if sub.get("type") == "SNS"]
        targets, people = _via(graph, [k for k in keys if k is not None])
        out.append(SignalPath("cost anomaly", f"cost anomaly subscription {s.inputs.get('name')}",
                              "cost anomaly subscribers", targets, people))
    return out


def _publisher_paths(graph: dict[TopicKey, TopicNode]) -> list[SignalPath]:
    out = []
    for key, node in graph.items():
        for publisher in dict.fromkeys(node.publishers):
            if publisher.startswith("alarm "):
                continue  # an alarm is a signal path of its own
            out.append(SignalPath("publisher", f"{publisher} publishing to {topic_label(key)}", "sns:Publish",
                                  (topic_label(key),), tuple(node.people)))
    return out


# ------------------------------------------------------------------------------------------ Alertmanager
def _matches(matcher: str, labels: Mapping[str, str]) -> bool:
    found = re.fullmatch(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', matcher)
    if found is None:
        return False
    name, op, value = found.groups()
    have = labels.get(name, "")
    if op == "=":
        return have == value
    if op == "!=":
        return have != value
    hit = re.fullmatch(value, have) is not None
    return hit if op == "=~" else not hit


def route_receivers(route: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """The receivers an alert with `labels` notifies: Alertmanager's routing tree (children first, in order,
    `continue` goes on to the next sibling; a route with no matching child notifies its own receiver)."""
    return routed(route, labels)[0]


def routed(route: Mapping[str, Any], labels: Mapping[str, str]) -> tuple[list[str], bool]:
    """(receivers, by_default): `by_default` when no child route matched and the root's receiver (the catch-all
    for what nobody routes) takes the alert."""

    def walk(node: Mapping[str, Any], inherited: str) -> list[str] | None:
        if not all(_matches(m, labels) for m in node.get("matchers") or []):
            return None
        receiver = str(node.get("receiver") or inherited)
        found: list[str] = []
        for child in node.get("routes") or []:
            hit = walk(child, receiver)
            if hit is not None:
                found += hit
                if not child.get("continue"):
                    break
        return found or [receiver]

    root = str(route.get("receiver") or "")
    by_default = not any(walk(child, root) is not None for child in route.get("routes") or [])
    return walk(route, root) or [], by_default


def _receiver_people(receiver: Mapping[str, Any] | None, graph: dict[TopicKey, TopicNode]) -> list[str]:
    if receiver is None:
        return []
    people = [f"{receiver['name']}: {kind.removesuffix('_configs')}" for kind in PERSON_INTEGRATIONS
              if receiver.get(kind)]
    for sns in receiver.get("sns_configs") or []:
        key = topic_key(sns.get("topic_arn"))
        if key is not None:
            people += [f"{receiver['name']}: sns -> {p}" for p in _topic(graph, key).people]
    return people


def _alert_paths(plan: Plan, graph: dict[TopicKey, TopicNode],
                 alertmanager: Mapping[str, Any] | None) -> list[SignalPath]:
    out = []
    receivers = {r.get("name"): r for r in (alertmanager or {}).get("receivers") or []}
    for pr in plan.of_type(PROMETHEUS_RULE):
        for group in (pr.inputs.get("spec") or {}).get("groups") or []:
            for r in group.get("rules") or []:
                if "alert" not in r:
                    continue
                labels = {"alertname": str(r["alert"]), **{k: str(v) for k, v in (r.get("labels") or {}).items()}}
                names = route_receivers(alertmanager["route"], labels) if alertmanager else []
                people = tuple(sorted({p for n in names for p in _receiver_people(receivers.get(n), graph)}))
                ann = r.get("annotations") or {}
                runbook = marked_runbook(ann.get("summary")) or _runbook_from_url(ann.get("runbook_url"))
                severity = labels.get("severity", "")
                out.append(SignalPath(
                    "alert", f"Prometheus alert {r['alert']} ({labels.get('severity', 'no severity')}, "
                             f"group {group.get('name')})",
                    "Alertmanager route", tuple(dict.fromkeys(names)), people, runbook=runbook,
                    links=_links(*ann.values()), needs_runbook=severity in PAGING_OR_TICKETING))
    return out


def _silent(receiver: Mapping[str, Any] | None) -> bool:
    return receiver is not None and receiver.get("name") == RECEIVER_NULL and not any(
        k.endswith("_configs") for k in receiver)


def _chart_paths(graph: dict[TopicKey, TopicNode], alertmanager: Mapping[str, Any]) -> list[SignalPath]:
    """kube-prometheus-stack's alert shapes (infra/slo/chart_alerts.py) through the stack's routing tree, which
    replaces the chart's."""
    receivers = {r.get("name"): r for r in alertmanager.get("receivers") or []}
    out = []
    for alert in CHART_ALERTS:
        names, by_default = routed(alertmanager["route"], alert.label_set())
        names = list(dict.fromkeys(names))
        people = tuple(sorted({p for n in names for p in _receiver_people(receivers.get(n), graph)}))
        out.append(SignalPath(
            "chart alert", f"kube-prometheus-stack alert {alert.alertname} (severity {alert.severity})",
            "Alertmanager route", tuple(names), people,
            silenced=bool(names) and all(_silent(receivers.get(n)) for n in names),
            may_silence=alert.may_silence, by_default=by_default))
    return out


def _runbook_from_url(url: Any) -> str | None:
    return str(url).rstrip("/").rsplit("/", 1)[-1] if url else None


def _settings_links(plan: Plan) -> list[tuple[str, str]]:
    """Links the functions hand to people (the runbook automation's notices): every URL in their settings but
    the base URLs they build on."""
    out = []
    for fn in plan.of_type("aws:lambda/function:Function"):
        variables = (fn.inputs.get("environment") or {}).get("variables") or {}
        for key, value in variables.items():
            for url in _links(value):
                out.append((f"function {fn.inputs.get('name')} ({key})", url))
    return out


def build_paths(plan: Plan, alertmanager: Mapping[str, Any] | None = None) -> PathGraph:
    """The graph of `plan`; `alertmanager` is the config the stack deploys (None: no Alertmanager routing)."""
    graph = _topics(plan)
    for a in plan.of_type(ALARM, COMPOSITE):
        for action in _alarm_topics(a):
            _topic(graph, action).publishers.append(f"alarm {a.inputs.get('name') or a.inputs.get('alarmName')}")
    _heartbeat_readers(plan, graph)
    for receiver in (alertmanager or {}).get("receivers") or []:
        for sns in receiver.get("sns_configs") or []:
            key = topic_key(sns.get("topic_arn"))
            if key is not None:
                _topic(graph, key).publishers.append(f"Alertmanager receiver {receiver.get('name')}")
    paths = [*_alarm_paths(plan, graph), *_cost_paths(plan, graph), *_publisher_paths(graph),
             *_alert_paths(plan, graph, alertmanager),
             *(_chart_paths(graph, alertmanager) if alertmanager else [])]
    return PathGraph(topics=graph, paths=paths, links=_settings_links(plan))


def path_table(graph: PathGraph) -> list[tuple[str, str, str, str]]:
    """(signal kind, count, targets, people) rows, signals grouped by kind and destination: the report's table."""
    rows: dict[tuple[str, str, str], int] = {}
    for p in graph.paths:
        key = (p.kind, ", ".join(p.targets) or "-",
               ", ".join(p.people) or ("deliberate silence" if p.silenced else "NOBODY"))
        rows[key] = rows.get(key, 0) + 1
    return [(kind, str(n), targets, people) for (kind, targets, people), n in sorted(rows.items())]
