"""Generated promtool unit tests: for every SLO and every burn-rate tier, from the same definitions as the rules.

Per tier (one file each, because `evaluation_interval` is per file and a 3-day tier needs a coarser step than a
10-minute one): the tier fires just above its burn rate (exact labels and annotations of every alert expected at
that burn), stays silent just below it, and resolves once its short window has seen no errors. Per SLO: the
low-traffic guard, silence at zero traffic (no NaN series), absent metrics, a missing latency bucket, the error
budget remaining, and the heartbeat. Expected values are computed here, not copied from a run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from infra.slo.rules import BUDGET_FILE, GAP_HOLD, META_FILE, SLO_FILE, burn_alert, meta_alerts
from infra.slo.runbooks import runbook_mark
from infra.slo.spec import (
    ABSENT_ALERT,
    BUCKET_ALERT,
    BURN_ALERT,
    BURN_RATE_TIERS,
    DEFAULT_LINKS,
    HEARTBEAT_ALERT,
    NEW_SERIES_LOOKBACK,
    BurnRateTier,
    LinkSettings,
    Selector,
    Slo,
    duration_seconds,
    error_budget_remaining_metric,
    sli_error_ratio_metric,
)

RPS = 10.0  # request rate of the synthetic series: enough for every tier's low-traffic guard


def fmt_duration(seconds: int) -> str:
    """A duration as promtool writes it (the largest whole unit)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def fmt_num(x: float) -> str:
    """A float for a promtool test, which compares exactly: 12 significant digits."""
    return f"{x:.12g}"


def _labels_text(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__") + "}"


def availability_series(slo: Slo, status: str) -> str:
    """A requests series of the SLO: every equality matcher of its total selector, and the status."""
    labels = {n: v for n, op, v in slo.total_selector.matchers if op == "="} | {"status": status}
    return slo.total_selector.metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _series(slo: Slo, ratio: float, interval_s: int, steps: int, *, rps: float = RPS,
            stop_after: int | None = None) -> list[dict[str, str]]:
    """Counters at `rps` with an error ratio `ratio` for `steps` intervals (errors stop after `stop_after`)."""
    total_inc = rps * interval_s
    bad_inc = total_inc * ratio

    def counter(inc: float) -> str:
        if stop_after is None or stop_after >= steps:
            return f"0+{fmt_num(inc)}x{steps}"
        return f"0+{fmt_num(inc)}x{stop_after} {fmt_num(inc * stop_after)}+0x{steps - stop_after}"

    def counter_good() -> str:
        good_inc = total_inc - bad_inc
        if stop_after is None or stop_after >= steps:
            return f"0+{fmt_num(good_inc)}x{steps}"
        base = good_inc * stop_after
        return f"0+{fmt_num(good_inc)}x{stop_after} {fmt_num(base)}+{fmt_num(total_inc)}x{steps - stop_after}"

    if slo.kind == "availability":
        assert slo.bad_selector is not None
        return [{"series": availability_series(slo, "200"), "values": counter_good()},
                {"series": availability_series(slo, "500"), "values": counter(bad_inc)}]
    assert slo.good_selector is not None
    return [
        {"series": str(slo.good_selector), "values": counter_good()},
        {"series": str(slo.total_selector), "values": f"0+{fmt_num(total_inc)}x{steps}"},
    ]


def render_burn_annotations(slo: Slo, tier: BurnRateTier, burn: float, links: LinkSettings) -> dict[str, str]:
    """What Prometheus renders for a burn alert whose long window burns at `burn` (mirrors the templates)."""
    ann = dict(burn_alert(slo, tier, links)["annotations"])
    long_s = duration_seconds(tier.long_window)
    consumed = burn * slo.error_budget * 100 * long_s / (slo.window_days * 86400 * slo.error_budget)
    ann["summary"] = (f"{slo.service} {slo.name}: error budget burning at {burn:.1f}x ({tier.severity} "
                      f"{tier.name}: {tier.long_window} and {tier.short_window} above {tier.burn_rate:g}x) "
                      f"{runbook_mark(slo.runbook)}")
    ann["burn_rate"] = f"{burn:.2f}"
    ann["budget_consumed"] = (f"{consumed:.2f}% of the {slo.window} error budget burned in the last "
                              f"{tier.long_window}")
    return ann


LOOKBACK_S = 300  # Prometheus' default lookback delta: an instant selector reads the last sample this old at most


def _ratio_recorded(window: str, interval_s: int, eval_s: int) -> bool:
    """Whether a window's recorded ratio (spec.window_count) has a sample at eval_s, counters sampled every
    interval_s from t=0 (a tier's file samples every quarter of its short window, so other tiers' short windows
    can be shorter than a step). Whenever it has one, a constant burn from t=0 gives the exact ratio."""
    w = duration_seconds(window)
    start = eval_s - w
    if start < 0:
        return True  # no sample before the window: every series is new in it, counted whole
    gap = start % interval_s  # since the last sample at or before the window's start
    new_s = duration_seconds(NEW_SERIES_LOOKBACK)
    outcomes = set()
    if gap <= LOOKBACK_S:
        outcomes.add(True)  # the difference of the samples at the window's ends
    if gap >= LOOKBACK_S:
        outcomes.add(gap >= new_s or w > interval_s)  # new (none in the lookback before) or increase()
    assert len(outcomes) == 1, f"{window} at {eval_s}s sampled every {interval_s}s is on an edge of the lookbacks"
    return outcomes.pop()


def _fires(tier: BurnRateTier, burn: float, rps: float, slo: Slo, interval_s: int, eval_s: int) -> bool:
    """Whether a tier fires at eval_s on a constant burn from t=0: both windows' ratios recorded, and the long
    window's request rate (rate(), two samples in it) above the low-traffic guard."""
    ratios = all(_ratio_recorded(w, interval_s, eval_s) for w in (tier.long_window, tier.short_window))
    rate = min(duration_seconds(tier.long_window), eval_s) >= interval_s
    guard = rps * duration_seconds(tier.long_window) >= slo.min_events
    return slo.reaches(tier) and burn > tier.burn_rate and ratios and rate and guard


def _seen_ratio(reader: Slo, slo: Slo, ratio: float) -> float | None:
    """The error ratio `reader` computes from the series `_series(slo, ratio, ...)` writes: `ratio` for `slo` and
    for a twin on the same series (whatever its target), None for an SLO that selects none of them."""
    if slo.kind == "availability":
        written = [(availability_series(slo, "200"), 1 - ratio), (availability_series(slo, "500"), ratio)]
    else:
        assert slo.good_selector is not None
        written = [(str(slo.good_selector), 1 - ratio), (str(slo.total_selector), 1.0)]
    parsed = [(Selector.parse(text), share) for text, share in written]

    def share(sel: Selector | None) -> float | None:
        found = [x for series, x in parsed if sel is not None and _selects(sel, series)]
        return sum(found) if found else None

    total = share(reader.total_selector)
    if not total:
        return None
    if reader.kind == "availability":
        return (share(reader.bad_selector) or 0.0) / total  # no 5xx series counts as zero errors
    good = share(reader.good_selector)
    return None if good is None else max(0.0, 1 - good / total)  # a missing bucket yields no sample


def _expected_burns(slos: Sequence[Slo], slo: Slo, ratio: float, rps: float, interval_s: int, eval_s: int,
                    links: LinkSettings) -> list[dict[str, Any]]:
    """Every burn alert firing at eval_s on `slo`'s series at `ratio`: its own, and its twins' at their burn."""
    out = []
    for reader in slos:
        seen = _seen_ratio(reader, slo, ratio)
        if seen is None:
            continue
        burn = seen / reader.error_budget
        out += [{"exp_labels": {**burn_alert(reader, t, links)["labels"], **reader.labels},
                 "exp_annotations": render_burn_annotations(reader, t, burn, links)}
                for t in BURN_RATE_TIERS if _fires(t, burn, rps, reader, interval_s, eval_s)]
    return out


def _tier_file(tier: BurnRateTier, slos: Sequence[Slo], links: LinkSettings) -> dict[str, Any]:
    short_s = duration_seconds(tier.short_window)
    interval_s = short_s // 4
    eval_s = 2 * short_s
    steps = 2 * eval_s // interval_s
    tests: list[dict[str, Any]] = []
    for slo in [s for s in slos if s.reaches(tier)]:
        # 30% above the tier's rate, or halfway to 100% errors when that is closer (a loose target).
        hi, lo = min(tier.burn_rate * 1.3, (tier.burn_rate + 1 / slo.error_budget) / 2), tier.burn_rate * 0.7
        tests.append({
            "name": f"{slo.name}: {tier.name} fires at {hi:g}x with every tier at or below that burn",
            "interval": fmt_duration(interval_s),
            "input_series": _series(slo, hi * slo.error_budget, interval_s, steps),
            "alert_rule_test": [{
                "alertname": BURN_ALERT,
                "eval_time": fmt_duration(eval_s),
                "exp_alerts": _expected_burns(slos, slo, hi * slo.error_budget, RPS, interval_s, eval_s, links),
            }],
        })
        tier_sel = f'ALERTS{{alertname="{BURN_ALERT}",slo="{slo.name}",tier="{tier.name}"}}'
        tests.append({
            "name": f"{slo.name}: {tier.name} stays silent at {lo:g}x",
            "interval": fmt_duration(interval_s),
            "input_series": _series(slo, lo * slo.error_budget, interval_s, steps),
            "promql_expr_test": [{"expr": tier_sel, "eval_time": fmt_duration(eval_s), "exp_samples": []}],
        })
        # Errors stop at eval_s; one short window (+2 steps) later the tier has resolved.
        stop = eval_s // interval_s
        after = eval_s + short_s + 2 * interval_s
        tests.append({
            "name": f"{slo.name}: {tier.name} resolves one short window ({tier.short_window}) after recovery",
            "interval": fmt_duration(interval_s),
            "input_series": _series(slo, hi * slo.error_budget, interval_s, steps + 8, stop_after=stop),
            "promql_expr_test": [
                {"expr": tier_sel, "eval_time": fmt_duration(eval_s), "exp_samples": [{
                    "labels": _labels_text({"__name__": "ALERTS", "alertname": BURN_ALERT, "alertstate": "firing",
                                            **burn_alert(slo, tier, links)["labels"]}),
                    "value": 1}]},
                {"expr": tier_sel, "eval_time": fmt_duration(after), "exp_samples": []},
            ],
        })
    return {
        "rule_files": [f"../prometheus/{SLO_FILE}"],
        "evaluation_interval": fmt_duration(interval_s),
        "tests": tests,
    }


def _guard_file(slos: Sequence[Slo], links: LinkSettings) -> dict[str, Any]:
    """Low traffic (a handful of requests at 50% errors) and zero traffic, per SLO."""
    tests: list[dict[str, Any]] = []
    interval_s, eval_s = 60, 3600
    steps = eval_s // interval_s + 5
    for slo in slos:
        rps = 0.5
        tests.append({
            "name": f"{slo.name}: at {rps} req/s, 50% errors page only tiers whose long window holds "
                    f"{slo.min_events} requests",
            "interval": "1m",
            "input_series": _series(slo, 0.5, interval_s, steps, rps=rps),
            "alert_rule_test": [{
                "alertname": BURN_ALERT, "eval_time": "1h",
                "exp_alerts": _expected_burns(slos, slo, 0.5, rps, interval_s, eval_s, links),
            }],
        })
        tests.append({
            "name": f"{slo.name}: zero traffic gives no error ratio (no NaN) and no alert",
            "interval": "1m",
            "input_series": _series(slo, 0.0, interval_s, steps, rps=0.0),
            "promql_expr_test": [
                {"expr": sli_error_ratio_metric("5m"), "eval_time": "1h", "exp_samples": []},
                {"expr": f'ALERTS{{alertname="{BURN_ALERT}"}}', "eval_time": "1h", "exp_samples": []},
            ],
        })
    return {"rule_files": [f"../prometheus/{SLO_FILE}"], "evaluation_interval": "1m", "tests": tests}


def _selects(sel: Selector, series: Selector) -> bool:
    """Does `sel` select the series written as `series` (equality matchers only)?"""
    labels = {n: v for n, _, v in series.matchers}

    def ok(op: str, have: str, want: str) -> bool:
        if op in ("=", "!="):
            return (have == want) == (op == "=")
        return (re.fullmatch(want, have) is not None) == (op == "=~")

    return sel.metric == series.metric and all(ok(op, labels.get(n, ""), v) for n, op, v in sel.matchers)


def _meta_file(slos: Sequence[Slo], links: LinkSettings) -> dict[str, Any]:

    meta = meta_alerts(slos, links)

    def alert(name: str, slo: Slo | None) -> dict[str, Any]:
        # By service and name: two services may each have an SLO of the same name.
        rule = next(r for r in meta if r["alert"] == name
                    and (slo is None or (r["labels"].get("slo") == slo.name
                                         and r["labels"].get("service") == slo.service)))
        # absent() returns the selector's equality matchers as labels.
        sel = None if slo is None else (slo.good_selector if name == BUCKET_ALERT else slo.total_selector)
        from_absent = {n: v for n, op, v in sel.matchers if op == "="} if sel else {}
        return {"exp_labels": {**from_absent, **rule["labels"]}, "exp_annotations": rule["annotations"]}

    tests: list[dict[str, Any]] = [{
        "name": "no metrics at all: every SLO reports its absent metric after 10m; the heartbeat always fires",
        "interval": "1m",
        "input_series": [{"series": 'up{job="akidb-rest"}', "values": "1x30"}],
        "alert_rule_test": [
            {"alertname": ABSENT_ALERT, "eval_time": "9m", "exp_alerts": []},
            {"alertname": ABSENT_ALERT, "eval_time": "11m", "exp_alerts": [alert(ABSENT_ALERT, s) for s in slos]},
            {"alertname": HEARTBEAT_ALERT, "eval_time": "1m", "exp_alerts": [alert(HEARTBEAT_ALERT, None)]},
        ],
    }]
    thresholds = {s.good_selector.label("le") for s in slos if s.good_selector is not None}
    missing_le = next(le for le in ("0.0001", "0.00011", "0.00012", "0.00013", "0.00014", "0.00015")
                      if le not in thresholds)
    for slo in slos:
        if slo.kind != "latency":
            continue
        assert slo.good_selector is not None
        wrong = str(slo.good_selector).replace(f'le="{slo.good_selector.label("le")}"', f'le="{missing_le}"')
        inputs = [Selector.parse(wrong), Selector.parse(str(slo.total_selector))]
        # Every SLO counts what these two series give it: a latency SLO on the same histogram misses its bucket
        # too; an SLO on other metrics has none at all.
        seen = [s for s in slos if any(_selects(s.total_selector, x) for x in inputs)]
        tests.append({
            "name": f"{slo.name}: histogram without the {slo.good_selector.label('le')} bucket -> bucket alert",
            "interval": "1m",
            "input_series": [{"series": wrong, "values": "0+590x30"},
                             {"series": str(slo.total_selector), "values": "0+600x30"}],
            "alert_rule_test": [
                {"alertname": BUCKET_ALERT, "eval_time": "9m", "exp_alerts": []},
                {"alertname": BUCKET_ALERT, "eval_time": "11m", "exp_alerts": [
                    alert(BUCKET_ALERT, s) for s in seen if s.good_selector is not None
                    and not any(_selects(s.good_selector, x) for x in inputs)]},
                {"alertname": ABSENT_ALERT, "eval_time": "11m",
                 "exp_alerts": [alert(ABSENT_ALERT, s) for s in slos if s not in seen]},
            ],
        })
    return {"rule_files": [f"../prometheus/{META_FILE}"], "evaluation_interval": "1m", "tests": tests}


def _budget_file(slos: Sequence[Slo]) -> dict[str, Any]:
    """A constant burn b over a day leaves 1 - b of the budget (the ratio of extrapolated rates is exact)."""
    tests = []
    for slo in slos:
        burn = 0.25
        tests.append({
            "name": f"{slo.name}: burning at {burn}x leaves {1 - burn:g} of the error budget",
            "interval": "5m",
            "input_series": _series(slo, burn * slo.error_budget, 300, 288),
            "promql_expr_test": [{
                "expr": f'round({error_budget_remaining_metric()}{{slo="{slo.name}"}}, 0.0001)',
                "eval_time": "1d",
                "exp_samples": [{"labels": f'{{service="{slo.service}",slo="{slo.name}"}}', "value": 1 - burn}],
            }],
        })
    return {"rule_files": [f"../prometheus/{BUDGET_FILE}"],
            "evaluation_interval": "5m", "tests": tests}


def _gap_file(slos: Sequence[Slo], links: LinkSettings, *, slow: bool = False) -> dict[str, Any]:
    """Per SLO, its quickest reachable page tier fires on a steady burn; the target then stops answering (a stale
    marker, then no samples): the page stays firing through a 10-minute gap and after it while the burn goes on;
    a gap longer than the hold (GAP_HOLD after the ratio's last sample) resolves it: a held page is bounded.

    `interval_s`: the scrape and evaluation step of the file; `slow` picks the SLOs whose quickest page has a long
    window over an hour (low targets: only page-slow is reachable), whose hours of onset a 30-second step makes
    ~4x as costly to evaluate as a 1-minute one (promtool's cost grows with steps x samples in each range)."""
    hold_s = duration_seconds(GAP_HOLD)
    interval_s = 60 if slow else 30
    tests: list[dict[str, Any]] = []
    for slo in slos:
        pages = [t for t in BURN_RATE_TIERS if t.severity in ("P0", "P1") and slo.reaches(t)]
        if not pages:
            continue
        tier = min(pages, key=lambda t: duration_seconds(t.long_window))
        if (duration_seconds(tier.long_window) > 3600) != slow:
            continue
        burn = min(tier.burn_rate * 1.3, (tier.burn_rate + 1 / slo.error_budget) / 2)
        onset = duration_seconds(tier.long_window) + 10 * 60  # firing well before the gap
        sel = (f'ALERTS{{alertname="{BURN_ALERT}",alertstate="firing",service="{slo.service}",slo="{slo.name}",'
               f'tier="{tier.name}"}}')
        labels = _labels_text({"alertname": BURN_ALERT, "alertstate": "firing",
                               **burn_alert(slo, tier, links)["labels"]})
        for gap_s, held in ((hold_s, True), (3 * hold_s, False)):
            before, gap, after = onset // interval_s, gap_s // interval_s, 20 * 60 // interval_s
            series = []
            for item in _series(slo, burn * slo.error_budget, interval_s, before + gap + after):
                first, inc = item["values"].split("+", 1)[0], item["values"].split("+", 1)[1].split("x")[0]
                step = float(inc)
                resume = step * (before + gap)
                item = {**item, "values": f"{first}+{inc}x{before - 1} stale _x{gap - 1} "
                                          f"{fmt_num(resume)}+{inc}x{after}"}
                series.append(item)
                assert step >= 0
            end_of_gap = onset + gap_s
            if held:
                n = (end_of_gap + 5 * 60 - onset) // interval_s
                tests.append({
                    "name": f"{slo.name}: {tier.name} stays firing through a {gap_s // 60}-minute scrape gap "
                            "(stale, then absent) and after it while the burn goes on",
                    "interval": fmt_duration(interval_s), "input_series": series,
                    "promql_expr_test": [{
                        # Half a step short of n evaluations: the count is n whether the range includes its
                        # left end (Prometheus 2) or not (3).
                        "expr": f"count_over_time({sel}[{fmt_duration(n * interval_s - interval_s // 2)}])",
                        "eval_time": fmt_duration(end_of_gap + 5 * 60),
                        "exp_samples": [{"labels": labels.replace("ALERTS", "", 1), "value": n}]}]})
            else:
                tests.append({
                    "name": f"{slo.name}: {tier.name} held at most {GAP_HOLD} after the data stops: a "
                            f"{gap_s // 60}-minute gap resolves it",
                    "interval": fmt_duration(interval_s), "input_series": series,
                    "promql_expr_test": [
                        {"expr": sel, "eval_time": fmt_duration(onset), "exp_samples": [
                            {"labels": "ALERTS" + labels, "value": 1}]},
                        {"expr": sel, "eval_time": fmt_duration(onset + hold_s + 5 * 60), "exp_samples": []}]})
    return {"rule_files": [f"../prometheus/{SLO_FILE}"], "evaluation_interval": fmt_duration(interval_s),
            "tests": tests}


def unit_test_files(slos: Sequence[Slo], links: LinkSettings = DEFAULT_LINKS) -> dict[str, dict[str, Any]]:
    files = {f"tier-{t.name}.test.yml": _tier_file(t, slos, links) for t in BURN_RATE_TIERS}
    files["guards.test.yml"] = _guard_file(slos, links)
    files["meta.test.yml"] = _meta_file(slos, links)
    files["budget.test.yml"] = _budget_file(slos)
    files["gaps.test.yml"] = _gap_file(slos, links)
    if (slow := _gap_file(slos, links, slow=True))["tests"]:
        files["gaps-slow.test.yml"] = slow
    return files
