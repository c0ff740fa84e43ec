"""Plan-time rules of slo-alerting: deployed rules equal the generated ones, pages only where paging is on and
only through secret endpoints, runbook permissions scoped to the allow-listed ASGs, no secret in plain config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from infra.config.time_intervals import window_problems
from infra.plan.model import UNKNOWN, UNKNOWN_SECRET
from infra.plan.types import FUNCTION, PROMETHEUS_RULE
from infra.slo.rules import rule_files
from infra.slo.spec import LinkSettings
from infra.validation import Plan, Violation, rule

SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SCALING_ACTIONS = {"autoscaling:SetDesiredCapacity", "autoscaling:UpdateAutoScalingGroup"}


def _topic_severity(topic: Any) -> str | None:
    text = str(topic)
    for sev in ("p0", "p1", "p2"):
        if text.endswith(f"-alerts-{sev}"):
            return sev.upper()
    return None


@rule
def slo_rules_match_definitions(plan: Plan) -> Iterator[Violation]:
    """Every deployed PrometheusRule is exactly what the generator makes of rules/slos.yaml for this stack."""

    cfg = plan.config
    if not (cfg.slo_alerting.enabled and cfg.kubernetes.enabled):
        return
    s = cfg.slo_alerting
    links = LinkSettings(runbook_base_url=s.runbook_base_url, grafana_base_url=s.grafana_base_url,
                         ticket_webhook_url=s.ticket_webhook_url, heartbeat_webhook_url=s.heartbeat_webhook_url,
                         chat_channel=s.chat_channel)
    expected = {json.dumps(doc["groups"], sort_keys=True)
                for doc in rule_files(list(s.slos), links, symptoms=s.symptoms).values()}
    deployed = plan.of_type(PROMETHEUS_RULE)
    found = set()
    for r in deployed:
        labels = (r.inputs.get("metadata") or {}).get("labels") or {}
        missing = {k: v for k, v in cfg.kubernetes.prometheus_rule_labels.items() if labels.get(k) != v}
        if missing:
            yield Violation("slo_rules_match_definitions", r.label,
                            f"labels {missing} missing: the operator's ruleSelector would not load it")
        groups = json.dumps((r.inputs.get("spec") or {}).get("groups"), sort_keys=True)
        if groups not in expected:
            yield Violation("slo_rules_match_definitions", r.label,
                            "spec.groups differ from the generated rules (run `make rules`; never edit them)")
        found.add(groups)
    for missing_groups in expected - found:
        names = [g["name"] for g in json.loads(missing_groups)]
        yield Violation("slo_rules_match_definitions", "PrometheusRule", f"groups {names} are not deployed")


@rule
def slo_paging_routes(plan: Plan) -> Iterator[Violation]:
    """Paging on: P0/P1 reach PagerDuty in every alarm region through secret endpoints. Paging off: nothing
    reaches PagerDuty. A PagerDuty URL in plain text is a leaked routing key."""
    cfg = plan.config
    if not cfg.slo_alerting.enabled:
        return
    paging = cfg.slo_alerting.paging_enabled
    paged: dict[str, set[str]] = {}
    for sub in plan.of_type(SUBSCRIPTION):
        endpoint = str(sub.inputs.get("endpoint", ""))
        sev = _topic_severity(sub.inputs.get("topic"))
        if plan.secrets_visible:
            if "pagerduty" in endpoint.lower():
                yield Violation("slo_paging_routes", sub.label, "a PagerDuty endpoint in plain text: the routing "
                                                                "key must come from the Pulumi secret")
            is_secret = endpoint in ("[secret]", UNKNOWN_SECRET)
        else:
            # The engine's data (policy pack): secrets arrive unwrapped (the real endpoint, or UNKNOWN at a first
            # preview), so secrecy cannot be judged here; `make plan` judges it. Only the routing is checked.
            is_secret = "pagerduty" in endpoint.lower() or endpoint in ("[secret]", UNKNOWN, UNKNOWN_SECRET)
        if is_secret and (not paging or sev == "P2"):
            yield Violation("slo_paging_routes", sub.label,
                            f"{sev} pages PagerDuty while {'paging is off' if not paging else 'P2 is a ticket'}")
        if is_secret:
            paged.setdefault(str(sub.region), set()).add(str(sev))
    if paging:
        for region in cfg.alarm_regions:
            lacking = {"P0", "P1"} - paged.get(region, set())
            if lacking:
                yield Violation("slo_paging_routes", f"severity topics in {region}",
                                f"{sorted(lacking)} have no PagerDuty subscription")


def _statements(doc: Any) -> list[dict[str, Any]]:
    stmts = doc.get("Statement", []) if isinstance(doc, dict) else []
    return stmts if isinstance(stmts, list) else [stmts]


@rule
def runbook_scaling_scoped(plan: Plan) -> Iterator[Violation]:
    """Scaling actions only on the ARNs of the allow-listed ASGs, by name."""
    allowed = plan.config.slo_alerting.runbooks.allowed_asgs
    for pol in plan.of_type(ROLE_POLICY):
        raw = pol.inputs.get("policy")
        if not isinstance(raw, str):
            continue
        for stmt in _statements(json.loads(raw)):
            actions = stmt.get("Action", [])
            actions = actions if isinstance(actions, list) else [actions]
            if not SCALING_ACTIONS & set(actions):
                continue
            resources = stmt.get("Resource", [])
            for res in resources if isinstance(resources, list) else [resources]:
                name = str(res).rsplit("autoScalingGroupName/", 1)[-1] if "autoScalingGroupName/" in str(res) else None
                if name not in allowed:
                    yield Violation("runbook_scaling_scoped", pol.label,
                                    f"scaling allowed on {res!r}; only the allow-listed ASGs {allowed} (by ARN)")


@rule
def no_secret_in_function_environment(plan: Plan) -> Iterator[Violation]:
    """Function environments are plain text in the console and the API: no secret values there."""
    for fn in plan.of_type(FUNCTION):
        env = json.dumps(fn.inputs.get("environment") or {})
        if "[secret]" in env or "whsec" in env.lower():
            yield Violation("no_secret_in_function_environment", fn.label,
                            "a secret in the environment; store it in Secrets Manager and read it at init")


@rule
def maintenance_windows_valid(plan: Plan) -> Iterator[Violation]:
    """A maintenance window ends after it starts (Alertmanager refuses the whole config otherwise) and mutes a
    service that has alerts."""
    s = plan.config.slo_alerting
    services = {slo.service for slo in s.slos} | ({s.symptoms.service} if s.symptoms else set())
    for i, w in enumerate(s.maintenance_windows):
        where = f"sloAlerting.maintenanceWindows[{i}]"
        for why in window_problems(w.weekdays, w.start, w.end):  # Alertmanager's rules (the stack check's)
            yield Violation("maintenance_windows_valid", where, why)
        if w.service not in services:
            yield Violation("maintenance_windows_valid", where,
                            f"service {w.service!r} has no alerts; services: {', '.join(sorted(services))}")
