"""Symptom alerts (`rules/symptoms.yaml`): akidb-rest's service down, traffic drop, memory leak, memory pressure,
processing backlog (sections of their own: their tests are built from their thresholds), and any number of
alerts defined whole in its `alerts:` list (expression, for, severity, runbook, inhibition scope and the series
under which it must fire and stay silent). The model, its loader, the Prometheus rules and the metrics they read.

They sit next to the SLOs because they cover what a ratio of requests cannot see: no requests at all (a target
that is gone, traffic that stopped) and the causes that come before errors (memory, queueing). Each alert carries
`service`, `severity`, a runbook and a dashboard link like the burn-rate alerts, so routing, inhibition and the
runbook automation treat them alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.core import yamldoc
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


# The annotation templates the generated tests can render (symptom_tests.render): any other form would make the
# expected annotations a guess.
TEMPLATE = re.compile(r"\{\{ *(\$labels\.(\w+)|\$value|printf \"%\.1f\" \$value|\$value \| humanizePercentage) *\}\}")
_ANY_TEMPLATE = re.compile(r"\{\{.*?\}\}")
_ALERT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SCOPES = ("none", "serviceDown")  # what inhibits a defined alert: nothing, or a ServiceDown of its service


@dataclass(frozen=True)
class Case:
    """Input series (promtool notation) and what the alert carries when it fires on them."""
    series: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...] = ()
    value: float | None = None


@dataclass(frozen=True)
class DefinedAlert:
    """One entry of `alerts:`: the rule and its two promtool cases, nothing else to write."""
    alert: str
    service: str
    severity: Severity
    expr: str
    for_: str
    runbook: str
    summary: str
    description: str
    explained_by: str
    interval: str
    at: str  # when the firing case must be firing (and before which the quiet case never even pends)
    fires: Case
    quiet: Case


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
    alerts: tuple[DefinedAlert, ...] = ()

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
_TOP = {"service": str, "job": str, "container": str, **{k: dict for k in _FIELDS}, "alerts": list}
_ALERT_KEYS = ("alert", "service", "severity", "expr", "for", "runbook", "summary", "description", "explainedBy",
               "test")
_ALERT_REQUIRED = ("alert", "severity", "expr", "for", "runbook", "summary", "description", "test")
_TEST_KEYS = ("interval", "at", "fires", "quiet")
_CASE_KEYS = ("series", "labels", "value")


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


def _duration(raw: Any, where: str, p: list[str]) -> str:
    try:
        duration_seconds(raw)
        return str(raw)
    except (ValueError, TypeError) as err:
        p.append(f"{where}: {err}")
        return "1m"


def _case(raw: Any, where: str, p: list[str]) -> Case:
    if not isinstance(raw, Mapping) or set(raw) - set(_CASE_KEYS) or "series" not in raw:
        p.append(f"{where}: expected a mapping with `series` (a list of {{series, values}} in promtool notation) "
                 f"and optionally `labels`, `value`; allowed keys: {', '.join(_CASE_KEYS)}")
        return Case(())
    series: list[tuple[str, str]] = []
    raw_series = raw["series"]
    if not isinstance(raw_series, list) or not raw_series:
        p.append(f"{where}.series: a non-empty list of {{series: 'metric{{...}}', values: '1x10'}}")
        raw_series = []
    for i, item in enumerate(raw_series):
        if not (isinstance(item, Mapping) and set(item) == {"series", "values"}
                and all(isinstance(item[k], str) and item[k] for k in ("series", "values"))):
            p.append(f"{where}.series[{i}]: expected {{series: 'metric{{...}}', values: '1x10'}} (two strings)")
            continue
        series.append((item["series"], item["values"]))
    labels = raw.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and _LABEL_NAME.match(k) and isinstance(v, str) for k, v in labels.items()):
        p.append(f"{where}.labels: a mapping of label name -> string (the labels the expression gives the alert)")
        labels = {}
    value = raw.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        p.append(f"{where}.value: a number (the alert's value, needed when an annotation shows {{{{ $value }}}})")
        value = None
    return Case(tuple(series), tuple(sorted(labels.items())), None if value is None else float(value))


def _defined_alert(i: int, raw: Any, service: str, p: list[str]) -> DefinedAlert | None:
    where = f"alerts[{i}]"
    if not isinstance(raw, Mapping):
        p.append(f"{where}: expected a mapping with keys {', '.join(_ALERT_KEYS)}")
        return None
    n = len(p)
    where = f"alerts[{i}] ({raw.get('alert', '?')})"
    for key in raw:
        if key not in _ALERT_KEYS:
            p.append(f"{where}.{key}: unknown key (allowed: {', '.join(_ALERT_KEYS)})")
    for key in _ALERT_REQUIRED:
        if raw.get(key) in (None, ""):
            p.append(f"{where}.{key}: required")
    for key in ("alert", "service", "severity", "expr", "for", "runbook", "summary", "description", "explainedBy"):
        if key in raw and not isinstance(raw[key], str):
            p.append(f"{where}.{key}: must be a string, got {raw[key]!r}")
    if len(p) > n:
        return None
    if not _ALERT_NAME.match(raw["alert"]):
        p.append(f"{where}.alert: {raw['alert']!r} is not a Prometheus alert name ([a-zA-Z_][a-zA-Z0-9_]*)")
    elif raw["alert"] in SYMPTOM_ALERTS:
        p.append(f"{where}.alert: {raw['alert']!r} is a built-in symptom alert (its section defines it)")
    if raw["severity"] not in _SEVERITIES:
        p.append(f"{where}.severity: must be one of {', '.join(_SEVERITIES)}, got {raw['severity']!r}")
    if raw["runbook"] not in (catalogue := load_runbooks()):
        p.append(f"{where}.runbook: {raw['runbook']!r} is not in rules/runbooks.yaml (known: {', '.join(catalogue)})")
    scope = raw.get("explainedBy", "none")
    if scope not in SCOPES:
        p.append(f"{where}.explainedBy: must be one of {', '.join(SCOPES)}, got {scope!r}")
    for_ = _duration(raw["for"], f"{where}.for", p)
    test = raw["test"]
    if not isinstance(test, Mapping) or set(test) - set(_TEST_KEYS) or not {"fires", "quiet"} <= set(test):
        p.append(f"{where}.test: expected a mapping with `fires` and `quiet` (input series under which the alert "
                 f"must fire, and must never even pend) and optionally `interval` (default 1m) and `at` (default "
                 f"`for` + 2 intervals); allowed keys: {', '.join(_TEST_KEYS)}")
        return None
    interval = _duration(test.get("interval", "1m"), f"{where}.test.interval", p)
    default_at = duration_seconds(for_) + 2 * duration_seconds(interval)
    at = _duration(test.get("at", f"{default_at}s"), f"{where}.test.at", p)
    fires = _case(test["fires"], f"{where}.test.fires", p)
    quiet = _case(test["quiet"], f"{where}.test.quiet", p)
    texts = {"summary": raw["summary"], "description": raw["description"]}
    for key, text in texts.items():
        for tpl in _ANY_TEMPLATE.findall(text):
            if not TEMPLATE.fullmatch(tpl):
                p.append(f"{where}.{key}: template {tpl!r} is not one the generated tests can render (allowed: "
                         "{{ $labels.<name> }}, {{ $value }}, {{ printf \"%.1f\" $value }}, "
                         "{{ $value | humanizePercentage }})")
            elif "$value" in tpl and fires.value is None:
                p.append(f"{where}.{key}: shows {{{{ $value }}}}: give the firing value as test.fires.value")
    if len(p) > n:
        return None
    return DefinedAlert(
        alert=raw["alert"], service=raw.get("service", service), severity=raw["severity"], expr=raw["expr"],
        for_=for_, runbook=raw["runbook"], summary=raw["summary"], description=raw["description"],
        explained_by=scope, interval=interval, at=at, fires=fires, quiet=quiet)


def _defined_alerts(raw: Any, service: str, p: list[str]) -> tuple[DefinedAlert, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        p.append("alerts: expected a list of alert definitions")
        return ()
    out = [a for i, x in enumerate(raw) if (a := _defined_alert(i, x, service, p)) is not None]
    seen: set[tuple[str, str, str]] = set()
    for a in out:
        key = (a.alert, a.service, a.severity)
        if key in seen:
            p.append(f"alerts: {a.alert} of {a.service} at {a.severity} is defined twice")
        seen.add(key)
    return tuple(out)


def parse_symptoms(text: str, slos: Sequence[Slo], source: str = "symptoms.yaml") -> SymptomSpec:
    try:
        doc = yamldoc.safe_load(text)
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
    alerts = _defined_alerts(doc.get("alerts"), str(doc.get("service")), p)
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
        alerts=alerts,
    )


def load_symptoms(slos: Sequence[Slo], path: Path | str = SYMPTOMS_FILE) -> SymptomSpec:
    path = Path(path)
    return parse_symptoms(path.read_text(encoding="utf-8"), slos, str(path.name))


# --------------------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------------------


def _annotations(spec: SymptomSpec, runbook: str, summary: str, description: str,
                 links: LinkSettings, service: str | None = None) -> dict[str, str]:
    # The summary becomes the page's incident title, from which the webhook reads the runbook it runs: every
    # symptom names its runbook there (a page without the mark runs nothing and its figures stay unattributed).
    summary = summary if runbook_mark(runbook) in summary else f"{summary} {runbook_mark(runbook)}"
    return {"summary": summary, "description": description, "runbook_url": links.runbook(runbook),
            "dashboard": links.dashboard(GOLDEN_SIGNALS_UID, service=service or spec.service)}


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
    return rules + [defined_rule(spec, a, links) for a in spec.alerts]


def defined_rule(spec: SymptomSpec, a: DefinedAlert, links: LinkSettings) -> dict[str, Any]:
    return {"alert": a.alert, "expr": a.expr.strip() + "\n", "for": a.for_,
            "labels": {"service": a.service, "severity": a.severity},
            "annotations": _annotations(spec, a.runbook, a.summary, a.description, links, a.service)}


def symptom_rule_file(spec: SymptomSpec, links: LinkSettings) -> dict[str, Any]:
    return {"groups": [{"name": f"symptoms-{spec.service}", "rules": symptom_alerts(spec, links)}]}


# Alerts a ServiceDown explains (Alertmanager inhibits them while it fires for the same service).
EXPLAINED_BY_SERVICE_DOWN = (TARGET_DOWN_ALERT, TRAFFIC_DROP_ALERT)


def explained_by_service_down(spec: SymptomSpec | None) -> tuple[str, ...]:
    """The built-in alerts a ServiceDown explains and the defined ones whose scope says so."""
    defined = () if spec is None else tuple(a.alert for a in spec.alerts if a.explained_by == "serviceDown")
    return (*EXPLAINED_BY_SERVICE_DOWN, *dict.fromkeys(defined))
