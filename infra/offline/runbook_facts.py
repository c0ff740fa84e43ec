"""What a stack declares for its runbook pages, read from its offline plan: CloudWatch alarms naming a runbook, the
CloudWatch dashboards it provides, routing (paging on or off) and the runbook automation's guardrails."""

from __future__ import annotations

import json
import re
from typing import Any

from infra.plan.model import Plan, PlannedResource
from infra.plan.types import COMPOSITE_ALARM, DASHBOARD, FUNCTION, METRIC_ALARM, QUERY_DEFINITION
from infra.slo.stack_facts import AlarmFact, CloudWatchBoard, Guardrails, LogQuery, StackFacts, alarm_runbooks

_SEVERITY_TOPIC = re.compile(r"-alerts-(p[0-2])$")
_COMPARISON = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">=", "LessThanThreshold": "<",
               "LessThanOrEqualToThreshold": "<="}


def _severity(alarm: PlannedResource) -> str:
    for arn in alarm.inputs.get("alarmActions") or []:
        m = _SEVERITY_TOPIC.search(str(arn))
        if m:
            return m.group(1).upper()
    return ""


def _condition(alarm: PlannedResource) -> str:
    i = alarm.inputs
    if alarm.type == COMPOSITE_ALARM:
        return f"composite: {i.get('alarmRule', '')}"
    op = _COMPARISON.get(str(i.get("comparisonOperator")), str(i.get("comparisonOperator")))
    if i.get("metricQueries"):
        shown: dict[str, Any] = next((q for q in i["metricQueries"] if q.get("returnData")), {})
        what = f"{shown.get('label') or shown.get('id')} = {shown.get('expression', '')}"
        period = next((q["metric"].get("period") for q in i["metricQueries"] if q.get("metric")), None)
    else:
        what = f"{i.get('namespace')} {i.get('metricName')} {i.get('extendedStatistic') or i.get('statistic')}"
        period = i.get("period")
    points = i.get("datapointsToAlarm") or i.get("evaluationPeriods")
    return (f"{what} {op} {i.get('threshold')} in {points} of {i.get('evaluationPeriods')} periods of {period} s, "
            f"missing data {i.get('treatMissingData', 'missing')}")


def runbook_settings(plan: Plan) -> dict[str, Any]:
    """RUNBOOK_SETTINGS of the runbook functions, as planned ({} without the automation)."""
    for fn in plan.of_type(FUNCTION):
        raw = (fn.get("environment.variables") or {}).get("RUNBOOK_SETTINGS")
        if isinstance(raw, str):
            try:
                return dict(json.loads(raw))
            except ValueError:
                continue
    return {}


def stack_facts(stack: str, plan: Plan) -> StackFacts:
    cfg = plan.config.slo_alerting
    rb = cfg.runbooks
    settings = runbook_settings(plan)
    alarms = []
    for alarm in plan.of_type(METRIC_ALARM, COMPOSITE_ALARM):
        description = str(alarm.inputs.get("alarmDescription") or "")
        if alarm_runbooks(description):
            alarms.append(AlarmFact(
                name=str(alarm.inputs.get("alarmName") or alarm.inputs.get("name") or alarm.name),
                region=alarm.region or "", severity=_severity(alarm), description=description,
                condition=_condition(alarm)))
    boards = tuple(sorted((CloudWatchBoard(str(d.inputs["dashboardName"]), d.region or "")
                           for d in plan.of_type(DASHBOARD)), key=lambda b: b.name))
    return StackFacts(
        stack=stack, paging_enabled=cfg.enabled and cfg.paging_enabled,
        grafana_base_url=cfg.grafana_base_url, runbook_base_url=cfg.runbook_base_url,
        guardrails=Guardrails(enabled=cfg.enabled and rb.enabled, dry_run=rb.dry_run,
                              allowed_asgs=tuple(rb.allowed_asgs), scale_out_asg=rb.scale_out_asg,
                              scale_out_step=rb.scale_out_step, max_capacity=rb.max_capacity,
                              max_actions_per_hour=rb.max_actions_per_hour),
        edge_function_name=str(settings.get("edge_function_name", "")),
        edge_regions=tuple(settings.get("edge_regions", ())),
        boards=boards, alarms=tuple(sorted(alarms, key=lambda a: (a.name, a.region))),
        log_queries=log_queries(plan))


def log_queries(plan: Plan) -> tuple[LogQuery, ...]:
    """The stack's saved Logs Insights queries, as planned."""
    return tuple(sorted((LogQuery(str(q.inputs["name"]), q.region or "", str(q.inputs.get("queryString") or ""),
                                  tuple(str(g) for g in q.inputs.get("logGroupNames") or ()))
                         for q in plan.of_type(QUERY_DEFINITION)), key=lambda q: (q.name, q.region)))
