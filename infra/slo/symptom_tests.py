"""Generated promtool unit tests of the symptom alerts (rules/symptoms.yaml) and of the burst boundary of the
burn-rate pages. Every expected value and time is derived from the definitions: a changed threshold or `for:`
moves the tests with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from infra.slo.rules import SLO_FILE, burn_alert
from infra.slo.spec import (
    BURN_ALERT,
    BURN_RATE_TIERS,
    REFERENCE_PERIOD_DAYS,
    BurnRateTier,
    LinkSettings,
    Slo,
    duration_seconds,
)
from infra.slo.symptoms import (
    BACKLOG_ALERT,
    IN_PROGRESS,
    MEMORY_LEAK_ALERT,
    MEMORY_LIMIT,
    MEMORY_PRESSURE_ALERT,
    SERVICE_DOWN_ALERT,
    SYMPTOMS_RULE_FILE,
    TARGET_DOWN_ALERT,
    TEMPLATE,
    TRAFFIC_DROP_ALERT,
    UP,
    WORKING_SET,
    DefinedAlert,
    SymptomSpec,
    defined_rule,
    symptom_alerts,
)
from infra.slo.unit_tests import availability_series
from infra.slo.unit_tests import fmt_duration as _fmt
from infra.slo.unit_tests import fmt_num as _num

SERVICE_DOWN_LIMIT_S = 180  # issue 14: a target that stops answering pages within 3 minutes
TRAFFIC_DROP_LIMIT_S = 600  # ... and traffic that stops, within 10 minutes
BURST_MAX_S = 180  # a burst "over within 3 minutes"
DAY, WEEK = 86400, 7 * 86400


def counter(increments: Sequence[float]) -> str:
    """promtool notation of a counter from 0 with the given per-step increments (runs compressed)."""
    out: list[str] = []
    value, i = 0.0, 0
    while i < len(increments):
        j = i
        while j + 1 < len(increments) and increments[j + 1] == increments[i]:
            j += 1
        out.append(f"{_num(value)}+{_num(increments[i])}x{j - i}")
        value += increments[i] * (j - i + 1)
        i = j + 1
    out.append(_num(value))
    return " ".join(out)


def gauge(values: Sequence[float]) -> str:
    return " ".join(_num(v) for v in values)


def _rule(spec: SymptomSpec, links: LinkSettings, alert: str, severity: str | None = None) -> dict[str, Any]:
    return next(r for r in symptom_alerts(spec, links)
                if r.get("alert") == alert and (severity is None or r["labels"]["severity"] == severity))


_TEMPLATE = TEMPLATE


def render(template: str, labels: dict[str, str], value: float) -> str:
    """What Prometheus renders for the few template forms the symptom annotations use."""
    def one(m: re.Match[str]) -> str:
        if m.group(2):
            return labels.get(m.group(2), "")
        if "printf" in m.group(1):
            return f"{value:.1f}"
        if "humanizePercentage" in m.group(1):
            return f"{value * 100:.4g}%"
        return f"{value:g}"
    return _TEMPLATE.sub(one, template)


def _exp(spec: SymptomSpec, links: LinkSettings, alert: str, extra: dict[str, str],
         severity: str | None = None, value: float = 0.0) -> dict[str, Any]:
    rule = _rule(spec, links, alert, severity)
    labels = {**extra, **rule["labels"]}
    return {"exp_labels": labels,
            "exp_annotations": {k: render(v, labels, value) for k, v in rule["annotations"].items()}}


def _service_down_tests(spec: SymptomSpec, links: LinkSettings) -> list[dict[str, Any]]:
    step = 30
    onset = 10 * 60
    for_s = duration_seconds(spec.service_down.for_)
    steps = (onset + SERVICE_DOWN_LIMIT_S) // step + 4
    up = f'{UP}{{instance="10.0.0.1:8080",job="{spec.job}"}}'
    up2 = f'{UP}{{instance="10.0.0.2:8080",job="{spec.job}"}}'
    before = onset // step
    fires = {"service": spec.service, "job": spec.job}
    return [
        {"name": f"{SERVICE_DOWN_ALERT}: every target up == 0 pages within {SERVICE_DOWN_LIMIT_S // 60} min",
         "interval": _fmt(step),
         "input_series": [{"series": up, "values": f"1x{before - 1} 0x{steps - before}"}],
         "alert_rule_test": [
             {"alertname": SERVICE_DOWN_ALERT, "eval_time": _fmt(onset + for_s - step), "exp_alerts": []},
             {"alertname": SERVICE_DOWN_ALERT, "eval_time": _fmt(onset + SERVICE_DOWN_LIMIT_S),
              "exp_alerts": [_exp(spec, links, SERVICE_DOWN_ALERT, fires)]},
             {"alertname": TRAFFIC_DROP_ALERT, "eval_time": _fmt(onset + SERVICE_DOWN_LIMIT_S), "exp_alerts": []},
         ]},
        {"name": f"{SERVICE_DOWN_ALERT}: the target leaves discovery (stale, then absent) pages within "
                 f"{SERVICE_DOWN_LIMIT_S // 60} min",
         "interval": _fmt(step),
         "input_series": [{"series": up, "values": f"1x{before - 1} stale"}],
         "alert_rule_test": [
             {"alertname": SERVICE_DOWN_ALERT, "eval_time": _fmt(onset - step), "exp_alerts": []},
             {"alertname": SERVICE_DOWN_ALERT, "eval_time": _fmt(onset + SERVICE_DOWN_LIMIT_S),
              "exp_alerts": [_exp(spec, links, SERVICE_DOWN_ALERT, fires)]},
         ]},
        {"name": f"one target of two down: no {SERVICE_DOWN_ALERT}; {TARGET_DOWN_ALERT} tickets after 5m",
         "interval": _fmt(step),
         "input_series": [{"series": up, "values": f"1x{before - 1} 0x{steps - before + 10}"},
                          {"series": up2, "values": f"1x{steps + 10}"}],
         "alert_rule_test": [
             {"alertname": SERVICE_DOWN_ALERT, "eval_time": _fmt(onset + SERVICE_DOWN_LIMIT_S), "exp_alerts": []},
             {"alertname": TARGET_DOWN_ALERT, "eval_time": _fmt(onset + 4 * 60), "exp_alerts": []},
             {"alertname": TARGET_DOWN_ALERT, "eval_time": _fmt(onset + 6 * 60), "exp_alerts": [
                 _exp(spec, links, TARGET_DOWN_ALERT, {"instance": "10.0.0.1:8080", "job": spec.job})]},
         ]},
    ]


TRAFFIC_STEP_S = 300  # a week of history at 1-minute steps costs promtool 10x more for the same answer


def _traffic(spec: SymptomSpec, *, drop_at: int | None, days: float = 8, step: int = TRAFFIC_STEP_S,
             base_rps: float = 100.0) -> tuple[list[dict[str, str]], int]:
    """Requests with a daily cycle (a nightly low hour at 8%, 03:00-04:00) for `days`; zero from `drop_at`."""
    n = int(days * DAY) // step
    incs: list[float] = []
    for k in range(n):
        t = k * step
        hour = (t % DAY) // 3600
        rps = base_rps * (0.08 if hour == 3 else (1.0 + 0.5 * (hour >= 9 and hour < 21)))
        incs.append(0.0 if drop_at is not None and t >= drop_at else rps * step)
    total = spec.total_selector.replace("}", ',status="200"}', 1) if "}" in spec.total_selector else spec.total_selector
    series = [{"series": total, "values": counter(incs)},
              {"series": f'{UP}{{instance="10.0.0.1:8080",job="{spec.job}"}}', "values": f"1x{n}"}]
    return series, n


def _traffic_drop_tests(spec: SymptomSpec, links: LinkSettings) -> list[dict[str, Any]]:
    td = spec.traffic_drop
    low_hour_end = 7 * DAY + 4 * 3600 + 30 * 60
    series_low, _ = _traffic(spec, drop_at=None, days=(low_hour_end + 3600) / DAY)
    window = f"[{_fmt(low_hour_end - 7 * DAY)}]"
    onset = 7 * DAY + 12 * 3600
    series_drop, _ = _traffic(spec, drop_at=onset, days=(onset + 2 * TRAFFIC_DROP_LIMIT_S) / DAY)
    assert duration_seconds(td.for_) > 0
    return [
        {"name": f"{TRAFFIC_DROP_ALERT}: the nightly low hour (8% of the day's traffic) never fires",
         "interval": _fmt(TRAFFIC_STEP_S), "input_series": series_low,
         "promql_expr_test": [{"expr": f'max_over_time(ALERTS{{alertname="{TRAFFIC_DROP_ALERT}"}}{window})',
                               "eval_time": _fmt(low_hour_end), "exp_samples": []}]},
        {"name": f"{TRAFFIC_DROP_ALERT}: requests stop while the target is up: fires within "
                 f"{TRAFFIC_DROP_LIMIT_S // 60} min, not before its rate window and for: have passed",
         "interval": _fmt(TRAFFIC_STEP_S), "input_series": series_drop,
         "alert_rule_test": [
             # First evaluation that sees the drop: pending (for: {td.for_}), not firing.
             {"alertname": TRAFFIC_DROP_ALERT, "eval_time": _fmt(onset + TRAFFIC_STEP_S), "exp_alerts": []},
             {"alertname": TRAFFIC_DROP_ALERT, "eval_time": _fmt(onset + TRAFFIC_DROP_LIMIT_S),
              "exp_alerts": [_exp(spec, links, TRAFFIC_DROP_ALERT, {})]},
         ]},
    ]


def _memory_tests(spec: SymptomSpec, links: LinkSettings) -> list[dict[str, Any]]:
    ml, mp, bl = spec.memory_leak, spec.memory_pressure, spec.backlog
    step = 300
    limit = 1024.0 ** 3
    labels = f'container="{spec.container}",namespace="akidb",pod="akidb-rest-0"'
    ws = f"{WORKING_SET}{{{labels},id=\"/kubepods/x\"}}"
    lim = f'{MEMORY_LIMIT}{{{labels},resource="memory",unit="byte"}}'
    lookback, horizon = duration_seconds(ml.lookback), duration_seconds(ml.horizon)
    # Growth that reaches the limit `horizon` after the lookback is full, starting low enough to stay below the
    # ticket threshold until then: the leak is seen before the pressure.
    start = 0.3 * limit
    slope = (limit - start) / (lookback + horizon)  # bytes per second
    n = 2 * (lookback + horizon) // step
    rising = [min(start + slope * k * step, limit) for k in range(n + 1)]
    leak_at = lookback + duration_seconds(ml.for_) + 2 * step
    pod = {"container": spec.container, "namespace": "akidb", "pod": "akidb-rest-0"}
    flat = [0.6 * limit] * (n + 1)
    mp_for = duration_seconds(mp.for_)
    between = (mp.ticket_above + mp.page_above) / 2
    above_page = (mp.page_above + 1) / 2
    k_for = mp_for // 60 + 3
    leak_exp = {**pod, "id": "/kubepods/x", "resource": "memory", "unit": "byte"}
    return [
        {"name": f"{MEMORY_LEAK_ALERT}: steady growth toward the limit opens a ticket before the pressure alert",
         "interval": _fmt(step),
         "input_series": [{"series": ws, "values": gauge(rising)}, {"series": lim, "values": f"{_num(limit)}x{n}"}],
         "alert_rule_test": [
             {"alertname": MEMORY_LEAK_ALERT, "eval_time": _fmt(leak_at),
              "exp_alerts": [_exp(spec, links, MEMORY_LEAK_ALERT,
                                  {k: v for k, v in leak_exp.items() if k not in ("resource", "unit")})]},
             {"alertname": MEMORY_PRESSURE_ALERT, "eval_time": _fmt(leak_at), "exp_alerts": []},
         ]},
        {"name": f"{MEMORY_LEAK_ALERT}: a flat working set never fires",
         "interval": _fmt(step),
         "input_series": [{"series": ws, "values": gauge(flat)}, {"series": lim, "values": f"{_num(limit)}x{n}"}],
         "promql_expr_test": [{"expr": f'max_over_time(ALERTS{{alertname="{MEMORY_LEAK_ALERT}"}}'
                                       f"[{_fmt(n * step)}])", "eval_time": _fmt(n * step), "exp_samples": []}]},
        {"name": f"{MEMORY_PRESSURE_ALERT}: {between:.0%} of the limit tickets, {above_page:.1%} pages too",
         "interval": "1m",
         "input_series": [
             {"series": ws, "values": f"{_num(between * limit)}x{k_for}"},
             {"series": ws.replace("akidb-rest-0", "akidb-rest-1"), "values": f"{_num(above_page * limit)}x{k_for}"},
             {"series": lim, "values": f"{_num(limit)}x{k_for}"},
             {"series": lim.replace("akidb-rest-0", "akidb-rest-1"), "values": f"{_num(limit)}x{k_for}"}],
         "alert_rule_test": [
             {"alertname": MEMORY_PRESSURE_ALERT, "eval_time": _fmt(mp_for - 60), "exp_alerts": []},
             {"alertname": MEMORY_PRESSURE_ALERT, "eval_time": _fmt(mp_for + 60), "exp_alerts": [
                 _exp(spec, links, MEMORY_PRESSURE_ALERT, pod, "P2", between),
                 _exp(spec, links, MEMORY_PRESSURE_ALERT, {**pod, "pod": "akidb-rest-1"}, "P2", above_page),
                 _exp(spec, links, MEMORY_PRESSURE_ALERT, {**pod, "pod": "akidb-rest-1"}, "P1", above_page),
             ]},
         ]},
        {"name": f"{BACKLOG_ALERT}: more than {bl.above:g} in progress for {bl.for_} tickets; at the threshold, "
                 "nothing",
         "interval": "1m",
         "input_series": [
             {"series": f'{IN_PROGRESS}{{instance="10.0.0.1:8080",job="{spec.job}"}}',
              "values": f"{_num(bl.above + 1)}x{duration_seconds(bl.for_) // 60 + 3}"},
             {"series": f'{IN_PROGRESS}{{instance="10.0.0.2:8080",job="{spec.job}"}}',
              "values": f"{_num(bl.above)}x{duration_seconds(bl.for_) // 60 + 3}"}],
         "alert_rule_test": [{"alertname": BACKLOG_ALERT, "eval_time": _fmt(duration_seconds(bl.for_) - 60),
                              "exp_alerts": []},
                             {"alertname": BACKLOG_ALERT, "eval_time": _fmt(duration_seconds(bl.for_) + 60),
                              "exp_alerts": [_exp(spec, links, BACKLOG_ALERT,
                                                  {"instance": "10.0.0.1:8080", "job": spec.job},
                                                  value=bl.above + 1)]}]},
    ]


def defined_alert_tests(spec: SymptomSpec, a: DefinedAlert, links: LinkSettings) -> list[dict[str, Any]]:
    """The two cases of an `alerts:` entry: firing at `at` with the labels and annotations the rule gives it;
    on the quiet series, not even pending at any evaluation up to `at`."""
    rule = defined_rule(spec, a, links)
    labels = {**dict(a.fires.labels), **rule["labels"]}
    value = a.fires.value or 0.0
    at = duration_seconds(a.at)
    selector = f'ALERTS{{alertname="{a.alert}",service="{a.service}",severity="{a.severity}"}}'
    return [
        {"name": f"{a.alert} ({a.service}, {a.severity}): fires on its firing series by {a.at}",
         "interval": a.interval,
         "input_series": [{"series": x, "values": v} for x, v in a.fires.series],
         "alert_rule_test": [{"alertname": a.alert, "eval_time": _fmt(at), "exp_alerts": [
             {"exp_labels": labels,
              "exp_annotations": {k: render(v, labels, value) for k, v in rule["annotations"].items()}}]}]},
        {"name": f"{a.alert} ({a.service}, {a.severity}): never pending on its quiet series up to {a.at}",
         "interval": a.interval,
         "input_series": [{"series": x, "values": v} for x, v in a.quiet.series],
         "promql_expr_test": [{"expr": f"max_over_time({selector}[{_fmt(at)}])", "eval_time": _fmt(at),
                               "exp_samples": []}]},
    ]


def symptom_test_files(spec: SymptomSpec, links: LinkSettings) -> dict[str, dict[str, Any]]:
    rules = [f"../prometheus/{SYMPTOMS_RULE_FILE}"]
    # One file per evaluation interval the defined alerts use (evaluation_interval is per file).
    defined: dict[str, list[dict[str, Any]]] = {}
    for a in spec.alerts:
        defined.setdefault(a.interval, []).extend(defined_alert_tests(spec, a, links))
    return {
        **{f"symptoms-defined-{_fmt(duration_seconds(i))}.test.yml": {
            "rule_files": rules, "evaluation_interval": _fmt(duration_seconds(i)), "tests": tests}
           for i, tests in sorted(defined.items())},
        "symptoms-service-down.test.yml": {"rule_files": rules, "evaluation_interval": "30s",
                                           "tests": _service_down_tests(spec, links)},
        "symptoms-traffic-drop.test.yml": {"rule_files": rules, "evaluation_interval": _fmt(TRAFFIC_STEP_S),
                                           "tests": _traffic_drop_tests(spec, links)},
        "symptoms-memory-backlog.test.yml": {"rule_files": rules, "evaluation_interval": "1m",
                                             "tests": _memory_tests(spec, links)},
    }


# --------------------------------------------------------------------------------------------------------------
# The burst boundary of the pages
# --------------------------------------------------------------------------------------------------------------


def burst_test_files(slos: Sequence[Slo], links: LinkSettings) -> dict[str, dict[str, Any]]:
    """burst.test.yml, and a coarser file per longer tier a loose target's burst case needs (the evaluation
    interval is per file; a 6-hour tier evaluated every 30 s over 11 hours costs promtool a minute)."""
    by_step: dict[int, list[Slo]] = {}
    for slo in slos:
        by_step.setdefault(_burst_step(slo), []).append(slo)
    return {("burst.test.yml" if step == 30 else f"burst-{_fmt(step)}.test.yml"): burst_test_file(group, links)
            for step, group in sorted(by_step.items())}


def _burst_tier(slo: Slo) -> BurnRateTier | None:
    pages = [t for t in BURN_RATE_TIERS if t.severity in ("P0", "P1") and slo.reaches(t)]
    return min(pages, key=lambda t: duration_seconds(t.long_window)) if pages else None


def _burst_step(slo: Slo) -> int:
    tier = _burst_tier(slo)
    return 30 * max(1, duration_seconds(tier.long_window) // 3600) if tier else 30


def burst_test_file(slos: Sequence[Slo], links: LinkSettings, rps: float = 10.0) -> dict[str, Any]:
    """Per SLO, a burst after its quickest reachable page tier's long window (at least an hour) of clean traffic:
    spending 0.9 x that tier's budget share (of a 30-day budget, as the tiers are defined) pages nothing at any
    time; spending 1.1 x it pages that tier by the end of the burst. The burst lasts 2 minutes, longer when a
    loose target needs more than 100% errors to spend the share in 2 minutes; an SLO whose share cannot be
    spent within the tier's long window even at 100% errors has no burst case (its tier tests cover it)."""
    burst_min = 120
    assert burst_min <= BURST_MAX_S
    step = max([_burst_step(s) for s in slos] or [30])
    tests: list[dict[str, Any]] = []
    for slo in slos:
        quickest = _burst_tier(slo)
        if quickest is None:
            continue
        long_s = duration_seconds(quickest.long_window)
        # Seconds of a full outage that spend the tier's share: the threshold is of the 30-day reference budget.
        outage_s = quickest.budget_share * REFERENCE_PERIOD_DAYS * 86400 * slo.error_budget
        burst_s = max(burst_min, -(-int(1.1 * outage_s * 1.05) // step) * step)
        if burst_s > long_s:
            continue
        warm = max(3600, long_s)
        n = (warm + burst_s + 3600) // step
        for factor in (0.9, 1.1):
            share = factor * quickest.budget_share
            ratio = factor * outage_s / burst_s
            total = [rps * step] * n
            bad = [rps * step * ratio if warm <= k * step < warm + burst_s else 0.0 for k in range(n)]
            good = [t - b for t, b in zip(total, bad, strict=True)]
            if slo.kind == "availability":
                series = [{"series": availability_series(slo, "200"), "values": counter(good)},
                          {"series": availability_series(slo, "500"), "values": counter(bad)}]
            else:
                series = [{"series": str(slo.good_selector), "values": counter(good)},
                          {"series": str(slo.total_selector), "values": counter(total)}]
            sel = f'ALERTS{{alertname="{BURN_ALERT}",slo="{slo.name}",severity=~"P0|P1"}}'
            length = f"{burst_s // 60}-minute" if burst_s % 60 == 0 else f"{burst_s}-second"
            name = (f"{slo.name}: a {length} burst of {ratio:.2%} spends {share:.2%} of the budget: "
                    + ("pages nothing" if factor < 1 else f"{quickest.name} pages by its end"))
            test: dict[str, Any] = {"name": name, "interval": _fmt(step), "input_series": series}
            end = warm + burst_s
            if factor < 1:
                test["promql_expr_test"] = [{"expr": f"max_over_time({sel}[{_fmt(n * step - warm)}])",
                                             "eval_time": _fmt(n * step), "exp_samples": []}]
            else:
                labels = burn_alert(slo, quickest, links)["labels"]
                test["promql_expr_test"] = [{"expr": f'{sel[:-1]},tier="{quickest.name}"}}',
                                             "eval_time": _fmt(end), "exp_samples": [{
                                                 "labels": "ALERTS{" + ",".join(
                                                     f'{k}="{v}"' for k, v in sorted(
                                                         {"alertname": BURN_ALERT, "alertstate": "firing",
                                                          **labels}.items())) + "}",
                                                 "value": 1}]}]
            tests.append(test)
    return {"rule_files": [f"../prometheus/{SLO_FILE}"], "evaluation_interval": _fmt(step), "tests": tests}
