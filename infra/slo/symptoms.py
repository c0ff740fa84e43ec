"""Symptom alerts of akidb-rest (`rules/symptoms.yaml`): service down, traffic drop, memory leak, memory pressure,
processing backlog. The model, its loader, the Prometheus rules and the metrics they read (the input contract).

They sit next to the SLOs because they cover what a ratio of requests cannot see: no requests at all (a target
that is gone, traffic that stopped) and the causes that come before errors (memory, queueing). Each alert carries
`service`, `severity`, a runbook and a dashboard link like the burn-rate alerts, so routing, inhibition and the
runbook automation treat them alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.core.paths import RULES_DIR
from infra.slo.runbooks import load_runbooks, runbook_mark
from infra.slo.spec import (
    GOLDEN_SIGNALS_UID,
    LinkSettings,
    Severity,
    Slo,
    SloSpecError,
    duration_seconds,
)

SYMPTOMS_FILE = RULES_DIR / "symptoms.yaml"
SYMPTOMS_RULE_FILE = "symptoms.rules.yml"

SERVICE_DOWN_ALERT = "ServiceDown"
TARGET_DOWN_ALERT = "TargetDown"
TRAFFIC_DROP_ALERT = "TrafficDrop"
MEMORY_LEAK_ALERT = "MemoryLeakSuspected"
MEMORY_PRESSURE_ALERT = "MemoryPressure"
BACKLOG_ALERT = "ProcessingBacklog"
SYMPTOM_ALERTS = (SERVICE_DOWN_ALERT, TARGET_DOWN_ALERT, TRAFFIC_DROP_ALERT, MEMORY_LEAK_ALERT,
                  MEMORY_PRESSURE_ALERT, BACKLOG_ALERT)

# Input metrics (the contract with the cluster): Prometheus' own `up`, cAdvisor's working set, kube-state-metrics'
# container limits, and akidb-rest's in-progress gauge.
UP = "up"
WORKING_SET = "container_memory_working_set_bytes"
MEMORY_LIMIT = "kube_pod_container_resource_limits"
IN_PROGRESS = "akidb_requests_in_progress"

# Recorded series of the symptom group (labels: service).
REQUEST_RATE = "akidb:requests:rate{window}"
UP_TARGETS = "akidb:up_targets:sum"
MEMORY_RATIO = "akidb:memory_working_set:ratio_limit"

_SEVERITIES = ("P0", "P1", "P2")


@dataclass(frozen=True)
class ServiceDown:
    severity: Severity
    for_: str
    runbook: str


@dataclass(frozen=True)
class TrafficDrop:
    severity: Severity
    rate_window: str
    drop_below: float
    floor_rps: float
    for_: str
    runbook: str


@dataclass(frozen=True)
class MemoryLeak:
    severity: Severity
    lookback: str
    horizon: str
    for_: str
    runbook: str


@dataclass(frozen=True)
class MemoryPressure:
    ticket_above: float
    page_above: float
    for_: str
    runbook: str


@dataclass(frozen=True)
class Backlog:
    severity: Severity
    above: float
    for_: str
    runbook: str


@dataclass(frozen=True)
class SymptomSpec:
    service: str
    job: str
    container: str
    total_selector: str  # requests counter of the service (the availability SLO's total)
    service_down: ServiceDown
    traffic_drop: TrafficDrop
    memory_leak: MemoryLeak
    memory_pressure: MemoryPressure
    backlog: Backlog

    @property
    def labels(self) -> dict[str, str]:
        return {"service": self.service}

    def request_rate_metric(self) -> str:
        return REQUEST_RATE.format(window=self.traffic_drop.rate_window)

    def input_metrics(self) -> set[str]:
        return {UP, WORKING_SET, MEMORY_LIMIT, IN_PROGRESS}


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------

_FIELDS: dict[str, dict[str, type]] = {
    "serviceDown": {"severity": str, "for": str, "runbook": str},
    "trafficDrop": {"severity": str, "rateWindow": str, "dropBelow": float, "floorRps": float, "for": str,
                    "runbook": str},
    "memoryLeak": {"severity": str, "lookback": str, "horizon": str, "for": str, "runbook": str},
    "memoryPressure": {"ticketAbove": float, "pageAbove": float, "for": str, "runbook": str},
    "backlog": {"severity": str, "above": float, "for": str, "runbook": str},
}
_TOP = {"service": str, "job": str, "container": str, **{k: dict for k in _FIELDS}}


def _check_section(name: str, raw: Any, p: list[str]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        p.append(f"{name}: expected a mapping with keys {', '.join(_FIELDS[name])}")
        return {}
    out: dict[str, Any] = {}
    for key in raw:
        if key not in _FIELDS[name]:
            p.append(f"{name}.{key}: unknown key (allowed: {', '.join(_FIELDS[name])})")
    for key, tp in _FIELDS[name].items():
        val = raw.get(key)
        where = f"{name}.{key}"
        if val is None:
            p.append(f"{where}: required")
        elif tp is float and (isinstance(val, bool) or not isinstance(val, (int, float)) or val != val
                              or val <= 0 or val == float("inf")):
            p.append(f"{where}: must be a positive number, got {val!r}")
        elif tp is str and not isinstance(val, str):
            p.append(f"{where}: must be a string, got {val!r}")
        elif key == "runbook" and val not in (catalogue := load_runbooks()):
            p.append(f"{where}: {val!r} is not in rules/runbooks.yaml (known: {', '.join(catalogue)})")
        elif key == "severity" and val not in _SEVERITIES:
            p.append(f"{where}: must be one of {', '.join(_SEVERITIES)}, got {val!r}")
        elif key in ("for", "rateWindow", "lookback", "horizon"):
            try:
                duration_seconds(val)
                out[key] = val
            except ValueError as err:
                p.append(f"{where}: {err}")
        else:
            out[key] = float(val) if tp is float else val
    return out


def parse_symptoms(text: str, slos: Sequence[Slo], source: str = "symptoms.yaml") -> SymptomSpec:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SloSpecError([f"{source}: not valid YAML: {err}"]) from None
    p: list[str] = []
    if not isinstance(doc, Mapping):
        raise SloSpecError([f"{source}: expected a mapping with keys {', '.join(_TOP)}"])
    for key in doc:
        if key not in _TOP:
            p.append(f"{key}: unknown key (allowed: {', '.join(_TOP)})")
    for key in ("service", "job", "container"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            p.append(f"{key}: required, a non-empty string")
    sections = {name: _check_section(name, doc.get(name), p) for name in _FIELDS}
    avail = [s for s in slos if s.kind == "availability" and s.service == doc.get("service")]
    if slos and not avail:
        p.append(f"service: {doc.get('service')!r} has no availability SLO in slos.yaml (its requests counter is "
                 "the traffic the traffic-drop alert watches)")
    mp = sections["memoryPressure"]
    if {"ticketAbove", "pageAbove"} <= set(mp) and not mp["ticketAbove"] < mp["pageAbove"] <= 1:
        p.append("memoryPressure: needs ticketAbove < pageAbove <= 1 (shares of the container limit)")
    td = sections["trafficDrop"]
    if "dropBelow" in td and not td["dropBelow"] < 1:
        p.append("trafficDrop.dropBelow: must be below 1 (a share of the baseline)")
    if p:
        raise SloSpecError([f"{source}: {x}" for x in p])
    sd, ml, bl = sections["serviceDown"], sections["memoryLeak"], sections["backlog"]
    total = str(avail[0].total_selector) if avail else f'akidb_requests_total{{job="{doc["job"]}"}}'
    return SymptomSpec(
        service=doc["service"], job=doc["job"], container=doc["container"], total_selector=total,
        service_down=ServiceDown(sd["severity"], sd["for"], sd["runbook"]),
        traffic_drop=TrafficDrop(td["severity"], td["rateWindow"], td["dropBelow"], td["floorRps"], td["for"],
                                 td["runbook"]),
        memory_leak=MemoryLeak(ml["severity"], ml["lookback"], ml["horizon"], ml["for"], ml["runbook"]),
        memory_pressure=MemoryPressure(mp["ticketAbove"], mp["pageAbove"], mp["for"], mp["runbook"]),
        backlog=Backlog(bl["severity"], bl["above"], bl["for"], bl["runbook"]),
    )


def load_symptoms(slos: Sequence[Slo], path: Path | str = SYMPTOMS_FILE) -> SymptomSpec:
    path = Path(path)
    return parse_symptoms(path.read_text(encoding="utf-8"), slos, str(path.name))


# --------------------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------------------


def _annotations(spec: SymptomSpec, runbook: str, summary: str, description: str,
                 links: LinkSettings) -> dict[str, str]:
    # The summary becomes the page's incident title, from which the webhook reads the runbook it runs: every
    # symptom names its runbook there (a page without the mark runs nothing and its figures stay unattributed).
    summary = summary if runbook_mark(runbook) in summary else f"{summary} {runbook_mark(runbook)}"
    return {"summary": summary, "description": description, "runbook_url": links.runbook(runbook),
            "dashboard": links.dashboard(GOLDEN_SIGNALS_UID, service=spec.service)}


def symptom_alerts(spec: SymptomSpec, links: LinkSettings) -> list[dict[str, Any]]:
    svc = f'{{service="{spec.service}"}}'
    up = f'{UP}{{job="{spec.job}"}}'
    sd, td, ml, mp, bl = spec.service_down, spec.traffic_drop, spec.memory_leak, spec.memory_pressure, spec.backlog
    rate = spec.request_rate_metric()
    container = f'container="{spec.container}"'
    by = "namespace, pod, container"
    rules: list[dict[str, Any]] = [
        {"record": rate, "expr": f"sum(rate({spec.total_selector}[{td.rate_window}]))", "labels": spec.labels},
        {"record": UP_TARGETS, "expr": f"sum({up})", "labels": spec.labels},
        {"record": MEMORY_RATIO,
         "expr": (f"max by ({by}) ({WORKING_SET}{{{container}}})\n"
                  f"  / on({by}) max by ({by}) ({MEMORY_LIMIT}{{{container},resource=\"memory\"}} > 0)\n"),
         "labels": spec.labels},
        {
            "alert": SERVICE_DOWN_ALERT,
            # `up` and absence combined: all targets failing their scrape, or none left to scrape at all.
            "expr": f"{UP_TARGETS}{svc} == 0\nor on() absent({up})\n",
            "for": sd.for_,
            "labels": {**spec.labels, "severity": sd.severity, "job": spec.job},
            "annotations": _annotations(
                spec, sd.runbook, f"{spec.service}: no target of job {spec.job} answers its scrape "
                f"(or none is discovered) [runbook:{sd.runbook}]",
                f"Every {up} is 0 or absent for {sd.for_}: the service is down or unreachable; the SLO alerts "
                "it explains are inhibited.", links),
        },
        {
            "alert": TARGET_DOWN_ALERT,
            # One target of several: a ticket; users notice only through the SLOs, which page on their own.
            "expr": f"{up} == 0\nand on() {UP_TARGETS}{svc} > 0\n",
            "for": "5m",
            "labels": {**spec.labels, "severity": "P2"},
            "annotations": _annotations(
                spec, sd.runbook, f"{spec.service}: target {{{{ $labels.instance }}}} fails its scrape",
                "One target of the job is down for 5m while others answer.", links),
        },
        {
            "alert": TRAFFIC_DROP_ALERT,
            "expr": (f"{rate}{svc}\n"
                     f"  < {td.drop_below:g} * (\n"
                     f"    ({rate}{svc} offset 1d <= {rate}{svc} offset 1w)\n"
                     f"    or {rate}{svc} offset 1w\n"
                     f"    or {rate}{svc} offset 1d\n"
                     f"  )\n"
                     f"and on(service) (\n"
                     f"    ({rate}{svc} offset 1d <= {rate}{svc} offset 1w)\n"
                     f"    or {rate}{svc} offset 1w\n"
                     f"    or {rate}{svc} offset 1d\n"
                     f"  ) >= {td.floor_rps:g}\n"
                     f"and on(service) {UP_TARGETS}{svc} > 0\n"),
            "for": td.for_,
            "labels": {**spec.labels, "severity": td.severity},
            "annotations": _annotations(
                spec, td.runbook, f"{spec.service}: requests fell to {{{{ printf \"%.1f\" $value }}}}/s, under "
                f"{td.drop_below:.0%} of the same time a day and a week ago, while its targets are up",
                "Traffic stopped reaching the service (an upstream, DNS or CloudFront change?): the SLO ratios "
                "of nothing are nothing.", links),
        },
        {
            "alert": MEMORY_LEAK_ALERT,
            "expr": (f"predict_linear({WORKING_SET}{{{container}}}[{ml.lookback}], {duration_seconds(ml.horizon)})\n"
                     f"  > on({by}) group_left() max by ({by}) "
                     f"({MEMORY_LIMIT}{{{container},resource=\"memory\"}} > 0)\n"),
            "for": ml.for_,
            "labels": {**spec.labels, "severity": ml.severity},
            "annotations": _annotations(
                spec, ml.runbook, f"{spec.service}: pod {{{{ $labels.pod }}}} will reach its memory limit within "
                f"{ml.horizon} at the trend of the last {ml.lookback}",
                "The working set grows steadily toward the container limit: a leak, or a limit too low.", links),
        },
    ]
    for severity, above in (("P2", mp.ticket_above), ("P1", mp.page_above)):
        rules.append({
            "alert": MEMORY_PRESSURE_ALERT,
            "expr": f"{MEMORY_RATIO}{svc} > {above:g}\n",
            "for": mp.for_,
            "labels": {**spec.labels, "severity": severity, "threshold": f"{above:g}"},
            "annotations": _annotations(
                spec, mp.runbook, f"{spec.service}: pod {{{{ $labels.pod }}}} uses "
                f"{{{{ $value | humanizePercentage }}}} of its memory limit (over {above:.0%})",
                "Working set against the container limit; at the limit the OOM killer restarts the pod.", links),
        })
    rules.append({
        "alert": BACKLOG_ALERT,
        "expr": f'{IN_PROGRESS}{{job="{spec.job}"}} > {bl.above:g}\n',
        "for": bl.for_,
        "labels": {**spec.labels, "severity": bl.severity},
        "annotations": _annotations(
            spec, bl.runbook, f"{spec.service}: {{{{ $value }}}} requests in progress on {{{{ $labels.instance }}}}",
            f"More than {bl.above:g} requests in progress for {bl.for_}: work is queueing.", links),
    })
    return rules


def symptom_rule_file(spec: SymptomSpec, links: LinkSettings) -> dict[str, Any]:
    return {"groups": [{"name": f"symptoms-{spec.service}", "rules": symptom_alerts(spec, links)}]}


# Alerts a ServiceDown explains (Alertmanager inhibits them while it fires for the same service).
EXPLAINED_BY_SERVICE_DOWN = (TARGET_DOWN_ALERT, TRAFFIC_DROP_ALERT)
