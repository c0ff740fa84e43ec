"""Guard band of the quickest page, and what it costs in time to detect (`make slo-guard-band`; the guard band is
asserted by tests/test_slo_guard_band.py).

Guard band: per SLO, a burst spending 0.8/0.9/1.1/1.2 x the quickest page tier's budget share never pages below 1
and always pages above it. The series are what Prometheus stores: samples only at scrape times (the stack's scrape
interval, each scrape jittered by a few seconds, the target's scrape phase drawn per seed), `_` in between on a
1-second promtool grid; the bad series is new at the burst (client libraries create a status series at its first
use, so `rate()` never sees its first increment and extrapolates from a short sampled interval), and the burst
starts at a seeded offset against the rule evaluations.

MTTD: the time from the start of a sustained burn at 1.1/1.2/2/10 x the tier's threshold (and at 100% errors) to
the first firing evaluation of the generated page, next to Sloth's default page on the same series (Sloth
generates no `for:`; its page is 14.4x over 1h and 5m, or 6x over 6h and 30m:
https://github.com/slok/sloth/blob/main/examples/_gen/getting-started.yml).
"""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.core import yamldoc
from infra.core.paths import RULES_DIR
from infra.slo.render import dump
from infra.slo.rules import SLO_FILE
from infra.slo.spec import (
    BURN_ALERT,
    BURN_RATE_TIERS,
    REFERENCE_PERIOD_DAYS,
    BurnRateTier,
    Slo,
    duration_seconds,
    load_slos,
)
from infra.slo.unit_tests import availability_series, fmt_num

FACTORS = (0.8, 0.9, 1.1, 1.2)
MTTD_FACTORS = (1.1, 1.2, 2.0, 10.0)
SEEDS = (1, 2, 3, 4)
BURST_S = 120  # the held-out replay: a 2-minute burst
SCRAPE_S = EVAL_S = 30  # the stack's (docs/kube-prometheus-stack-values.yaml; the operator's default)
JITTER_S = 3  # each scrape lands up to this far off its slot (a slow target, a busy Prometheus)
RPS = 10.0
SLOTH_PAGE = ("1h", "5m", 14.4)
SLOTH_ALERT = "SlothPage"
RATE_ALERT = "RatePage"


def quick_tier(slo: Slo) -> BurnRateTier | None:
    """The SLO's quickest reachable paging tier (the one whose guard band is measured)."""
    pages = [t for t in BURN_RATE_TIERS if t.severity in ("P0", "P1") and slo.reaches(t)]
    return min(pages, key=lambda t: duration_seconds(t.long_window)) if pages else None


def outage_seconds(slo: Slo, tier: BurnRateTier) -> float:
    """Seconds of a full outage that spend the tier's share (of the 30-day reference budget, as tiers are)."""
    return tier.budget_share * REFERENCE_PERIOD_DAYS * 86400 * slo.error_budget


@dataclass(frozen=True)
class Timing:
    scrape_s: int = SCRAPE_S
    eval_s: int = EVAL_S
    jitter_s: int = JITTER_S


def scrape_times(rng: random.Random, end_s: int, timing: Timing) -> list[int]:
    """Whole-second scrape times up to end_s: a phase drawn per target, each scrape jittered within its slot."""
    phase = rng.randrange(timing.scrape_s)
    out: list[int] = []
    k = 0
    while (slot := phase + k * timing.scrape_s) <= end_s:
        t = slot + rng.randint(-timing.jitter_s, timing.jitter_s)
        if 0 <= t <= end_s and (not out or t > out[-1]):
            out.append(t)
        k += 1
    return out


def _values(times: Sequence[int], value: Callable[[int], float], end_s: int, first: int = 0) -> str:
    """promtool notation on a 1-second grid: the value at each scrape time from `first` on, `_` elsewhere."""
    parts: list[str] = []
    last = -1
    for t in times:
        if t < first:
            continue
        gap = t - last - 1
        if gap > 0:
            parts.append(f"_x{gap}")
        parts.append(fmt_num(value(t)))
        last = t
    if end_s - last > 0:
        parts.append(f"_x{end_s - last}")
    return " ".join(parts)


def series(slo: Slo, ratio: float, start_s: int, stop_s: int, end_s: int, times: Sequence[int]
           ) -> list[dict[str, str]]:
    """Counters of the SLO's series at `RPS` requests per second, `ratio` of them bad from start_s to stop_s,
    sampled at `times`. The bad series (availability) exists from the first scrape after start_s (the first error)
    on."""

    def bad_c(t: int) -> float:
        return RPS * ratio * max(0, min(t, stop_s) - start_s)

    def total(t: int) -> float:
        return RPS * t

    def good(t: int) -> float:
        return total(t) - bad_c(t)

    if slo.kind == "availability":
        first = next((t for t in times if t > start_s), end_s + 1)
        return [{"series": availability_series(slo, "200"), "values": _values(times, good, end_s)},
                {"series": availability_series(slo, "500"), "values": _values(times, bad_c, end_s, first)}]
    return [{"series": str(slo.good_selector), "values": _values(times, good, end_s)},
            {"series": str(slo.total_selector), "values": _values(times, total, end_s)}]


def _fmt(seconds: int) -> str:
    return f"{seconds}s"


@dataclass(frozen=True)
class BurstCase:
    slo: Slo
    factor: float
    seed: int
    burst_s: int = BURST_S

    @property
    def name(self) -> str:
        return f"{self.slo.service}/{self.slo.name} burst x{self.factor:g} of {self.burst_s}s, seed {self.seed}"


def alert_selector(slo: Slo, tier: BurnRateTier) -> str:
    return (f'ALERTS{{alertname="{BURN_ALERT}",alertstate="firing",service="{slo.service}",slo="{slo.name}",'
            f'tier="{tier.name}"}}')


def burst_test(case: BurstCase, timing: Timing = Timing(), *, on_rate: bool = False) -> dict[str, Any]:
    """A promtool test of one burst: silent throughout below 1x, firing at least once above it."""
    slo = case.slo
    tier = quick_tier(slo)
    assert tier is not None
    long_s = duration_seconds(tier.long_window)
    rng = random.Random(f"{case.seed}:{slo.service}:{slo.name}:{case.factor}")
    # The long window full of clean traffic before the burst, which starts at a drawn phase against the evaluations.
    warm = long_s + 4 * timing.eval_s + rng.randrange(timing.eval_s)
    end = warm + case.burst_s + long_s + 4 * timing.eval_s
    ratio = case.factor * outage_seconds(slo, tier) / case.burst_s
    assert ratio <= 1, f"{case.name}: needs {ratio:.0%} errors"
    times = scrape_times(rng, end, timing)
    inputs = series(slo, ratio, warm, warm + case.burst_s, end, times)
    sel = (f'ALERTS{{alertname="{RATE_ALERT}",alertstate="firing",cmp_service="{slo.service}",cmp_slo="{slo.name}"}}'
           if on_rate else alert_selector(slo, tier))
    # Every evaluation from the burst's start to the end: the count of firing ones, or nothing.
    lookback = _fmt(end - warm)
    expr = f"count(count_over_time({sel}[{lookback}]))\n# {case.name}"
    exp = [] if case.factor < 1 else [{"labels": "{}", "value": 1}]
    return {"name": case.name, "interval": "1s", "input_series": inputs,
            "promql_expr_test": [{"expr": expr, "eval_time": _fmt(end), "exp_samples": exp}]}


def burst_cases(slos: Sequence[Slo], factors: Sequence[float] = FACTORS, seeds: Sequence[int] = SEEDS,
                burst_s: int = BURST_S) -> list[BurstCase]:
    """Every SLO with a reachable page whose share a burst of `burst_s` can spend (at most 100% errors)."""
    out = []
    for slo in slos:
        tier = quick_tier(slo)
        if tier is None:
            continue
        if max(factors) * outage_seconds(slo, tier) > burst_s:
            continue  # a loose target: its share takes longer than the burst even at 100% errors
        out += [BurstCase(slo, f, s, burst_s) for f in factors for s in seeds]
    return out


def quick_page_rules(slo: Slo, rule_file: Path = RULES_DIR / "prometheus" / SLO_FILE) -> dict[str, Any]:
    """The SLO's quickest page as the generated file has it: its alert and the recordings it reads, verbatim from
    its group (rules in a group run in order; the alert reads no other group). The other tiers' rules change
    nothing it computes and cost promtool three quarters of its time."""
    tier = quick_tier(slo)
    assert tier is not None
    doc = yamldoc.safe_load(rule_file.read_text(encoding="utf-8"))
    group = next(g for g in doc["groups"] if any(r.get("labels", {}).get("slo") == slo.name
                                                 and r.get("labels", {}).get("service") == slo.service
                                                 for r in g["rules"]))
    alert = next(r for r in group["rules"] if r.get("alert") == BURN_ALERT and r["labels"]["tier"] == tier.name)
    read = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", alert["expr"]))
    rules = [r for r in group["rules"] if r.get("record") in read] + [alert]
    return {"groups": [{"name": group["name"], "rules": rules}]}


def guard_band_files(cases: Sequence[BurstCase], tmp: Path, rule_file: Path = RULES_DIR / "prometheus" / SLO_FILE,
                     timing: Timing = Timing(), *, on_rate: bool = False) -> list[Path]:
    """One promtool test file per SLO (its quickest page's rules; `on_rate`: the same tier on rate(), for
    comparison), to run in one promtool process."""
    paths = []
    for slo in dict.fromkeys(c.slo for c in cases):
        rules = tmp / f"quick{'-rate' if on_rate else ''}-{slo.service}-{slo.name}.rules.yml"
        rules.write_text(dump(rate_page_rules(slo) if on_rate else quick_page_rules(slo, rule_file)), encoding="utf-8")
        path = tmp / f"guard-band{'-rate' if on_rate else ''}-{slo.service}-{slo.name}.test.yml"
        path.write_text(dump({"rule_files": [str(rules)], "evaluation_interval": _fmt(timing.eval_s),
                              "tests": [burst_test(c, timing, on_rate=on_rate) for c in cases if c.slo == slo]}),
                        encoding="utf-8")
        paths.append(path)
    return paths


# promtool (2.42) names no test in a failure; each expression ends with a comment naming its case.
_FAILED = re.compile(r'expr: "(.+?)\\n# ([^"]+)", time: .*?\n\s+exp: (.*?)\n\s+got: (.*?)\n', re.S)


def promtool_test(paths: Sequence[Path], timeout_s: int = 600) -> tuple[int, str, dict[str, str]]:
    """Run promtool on test files: (return code, output, case name -> what promtool got, for each failure)."""
    run = subprocess.run(["promtool", "test", "rules", *map(str, paths)], capture_output=True, text=True,
                         timeout=timeout_s, check=False)
    out = run.stdout + run.stderr
    return run.returncode, out, {m.group(2): m.group(4) for m in _FAILED.finditer(out)}


# --------------------------------------------------------------------------------------------------------------
# MTTD
# --------------------------------------------------------------------------------------------------------------


def _page_rules(slo: Slo, name: str, alert: str, ratio: Callable[[str], str],
                conditions: Sequence[tuple[str, str, float]]) -> dict[str, Any]:
    """A comparison page on the SLO's series: a recording per window and an alert on (long, short, burn) pairs."""
    sel = f'{{cmp_service="{slo.service}",cmp_slo="{slo.name}"}}'
    labels = {"cmp_service": slo.service, "cmp_slo": slo.name}
    budget = f"{slo.error_budget:.10g}"
    windows = sorted({w for long_w, short_w, _ in conditions for w in (long_w, short_w)}, key=duration_seconds)
    cond = "\nor\n".join(f"({name}:ratio_rate{short_w}{sel} > ({burn:g} * {budget})\n"
                          f" and {name}:ratio_rate{long_w}{sel} > ({burn:g} * {budget}))"
                          for long_w, short_w, burn in conditions)
    return {"groups": [{"name": f"{name}-{slo.service}-{slo.name}", "rules": [
        *[{"record": f"{name}:ratio_rate{w}", "expr": ratio(w), "labels": labels} for w in windows],
        {"alert": alert, "expr": cond, "labels": labels}]}]}


def sloth_page_rules(slo: Slo) -> dict[str, Any]:
    """Sloth's default page on the same SLI: its window ratios as ratios of summed rates (Sloth's rule shape),
    14.4x over 1h and 5m. (Its other page condition, 6x over 6h and 30m, fires later at any burn above 14.4x:
    6h x 6 > 1h x 14.4.)"""

    def err(w: str) -> str:
        if slo.kind == "availability":
            return f"(sum(rate({slo.bad_selector}[{w}])))\n/\n(sum(rate({slo.total_selector}[{w}])))"
        return f"1 - sum(rate({slo.good_selector}[{w}]))\n/\nsum(rate({slo.total_selector}[{w}]))"

    return _page_rules(slo, "sloth", SLOTH_ALERT, err, [SLOTH_PAGE])


def rate_page_rules(slo: Slo) -> dict[str, Any]:
    """The quickest page's windows and burn rate on ratios of extrapolated rates (the rules before counting)."""
    tier = quick_tier(slo)
    assert tier is not None
    return _page_rules(slo, "rate", RATE_ALERT, slo.error_ratio_query,
                       [(tier.long_window, tier.short_window, tier.burn_rate)])


PAGES = {"generated": "", "rate": RATE_ALERT, "sloth": SLOTH_ALERT}  # MTTD columns: the alert each one reads


@dataclass(frozen=True)
class MttdCase:
    slo: Slo
    factor: float | None  # x the quickest page's threshold; None: 100% errors
    seed: int

    @property
    def name(self) -> str:
        what = "100% errors" if self.factor is None else f"x{self.factor:g}"
        return f"{self.slo.service}/{self.slo.name} sustained {what}, seed {self.seed}"

    def ratio(self) -> float | None:
        """The burn's error ratio; None when it would take more than 100% errors."""
        tier = quick_tier(self.slo)
        assert tier is not None
        if self.factor is None:
            return 1.0
        r = self.factor * tier.burn_rate * self.slo.error_budget
        return r if r <= 1 else None


def mttd_test(case: MttdCase, horizon_s: int, timing: Timing = Timing()) -> dict[str, Any]:
    """When each page first fires after a sustained burn starts (the seconds since the start, reported by promtool
    as a mismatch: exp_samples is deliberately empty)."""
    slo = case.slo
    tier = quick_tier(slo)
    assert tier is not None
    rng = random.Random(f"mttd:{case.seed}:{slo.service}:{slo.name}:{case.factor}")
    ratio = case.ratio()
    assert ratio is not None
    start = duration_seconds(SLOTH_PAGE[0]) + 4 * timing.eval_s + rng.randrange(timing.eval_s)  # 1h of clean traffic
    end = start + horizon_s
    times = scrape_times(rng, end, timing)
    sels = [alert_selector(slo, tier)] + [f'ALERTS{{alertname="{a}",alertstate="firing",cmp_slo="{slo.name}",'
                                          f'cmp_service="{slo.service}"}}' for a in PAGES.values() if a]
    checks = [{"expr": f"min(min_over_time(timestamp({sel})[{_fmt(horizon_s)}:{_fmt(timing.eval_s)}])) - {start}"
                       f"\n# {case.name}",
               "eval_time": _fmt(end), "exp_samples": []} for sel in sels]
    return {"name": case.name, "interval": "1s", "input_series": series(slo, ratio, start, end, end, times),
            "promql_expr_test": checks}


def mttd(slos: Sequence[Slo], tmp: Path, seeds: Sequence[int] = SEEDS[:2], timing: Timing = Timing(),
         horizon_s: int = 2700) -> list[tuple[MttdCase, dict[str, float | None]]]:
    """Per case, seconds from the burn's start to the first firing evaluation of each page of PAGES (None: not
    within the horizon)."""
    cases = [MttdCase(s, f, seed) for s in slos if quick_tier(s) for f in (*MTTD_FACTORS, None) for seed in seeds]
    cases = [c for c in cases if c.ratio() is not None]
    paths = []
    for slo in dict.fromkeys(c.slo for c in cases):
        rule_files = []
        for who, doc in (("quick", quick_page_rules(slo)), ("rate", rate_page_rules(slo)),
                         ("sloth", sloth_page_rules(slo))):
            rule_files.append(tmp / f"{who}-{slo.service}-{slo.name}.rules.yml")
            rule_files[-1].write_text(dump(doc), encoding="utf-8")
        path = tmp / f"mttd-{slo.service}-{slo.name}.test.yml"
        path.write_text(dump({"rule_files": list(map(str, rule_files)), "evaluation_interval": _fmt(timing.eval_s),
                              "tests": [mttd_test(c, horizon_s, timing) for c in cases if c.slo == slo]}),
                        encoding="utf-8")
        paths.append(path)
    run = subprocess.run(["promtool", "test", "rules", *map(str, paths)], capture_output=True, text=True,
                         timeout=1800, check=False)
    found: dict[tuple[str, str], float] = {}
    for m in _FAILED.finditer(run.stdout + run.stderr):
        got = re.search(r"\} (\S+)\s*\]?$", m.group(4).strip())
        who = next((k for k, a in PAGES.items() if a and f'alertname=\\"{a}\\"' in m.group(1)), "generated")
        if got:
            found[(m.group(2), who)] = float(got.group(1))
    return [(c, {who: found.get((c.name, who)) for who in PAGES}) for c in cases]


def _seconds(values: Sequence[float | None]) -> str:
    """'557-589 s' over the seeds ('never' when one never fired within the horizon)."""
    if any(v is None for v in values):
        return "never"
    found = sorted(v for v in values if v is not None)
    return f"{found[0]:g} s" if found[0] == found[-1] else f"{found[0]:g}-{found[-1]:g} s"


def mttd_table(results: Sequence[tuple[MttdCase, dict[str, float | None]]]) -> list[str]:
    """Markdown rows: per SLO and burn, the error ratio and each page's MTTD over the seeds."""
    rows = ["| SLO | burn (x the quick page's threshold) | error ratio | generated page (counted) "
            "| same tier on rate() | Sloth's default page |", "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((c.slo, c.factor) for c, _ in results))
    for slo, factor in keys:
        mine = [r for r in results if (r[0].slo, r[0].factor) == (slo, factor)]
        ratio = mine[0][0].ratio()
        burn = "100% errors" if factor is None else f"{factor:g}x"
        rows.append(f"| {slo.service}/{slo.name} ({slo.objective:.10g}) | {burn} | {ratio:.4g} | "
                    + " | ".join(_seconds([r[1][who] for r in mine]) for who in PAGES) + " |")
    return rows


def main() -> None:
    import tempfile

    slos = load_slos()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        cases = burst_cases(slos)
        print(f"Guard band of the quickest page: {BURST_S} s bursts, scrapes every {SCRAPE_S} s +-{JITTER_S} s, "
              f"rules every {EVAL_S} s, seeds {', '.join(map(str, SEEDS))}; the same tier on rate() next to it")
        _, _, failed = promtool_test(guard_band_files(cases, tmp))
        _, _, failed_rate = promtool_test(guard_band_files(cases, tmp, on_rate=True))
        def verdict(case: BurstCase, wrong: bool) -> str:
            pages = wrong == (case.factor < 1)
            return f"{'PAGES' if pages else 'silent':6} {'WRONG' if wrong else 'ok':5}"

        for case in cases:
            print(f"  {case.name:58} generated {verdict(case, case.name in failed)}  "
                  f"rate() {verdict(case, case.name in failed_rate)}")
        print("\nMTTD: from the start of a sustained burn to the first firing evaluation (generated: the quickest "
              f"page tier; Sloth: {SLOTH_PAGE[2]:g}x over {SLOTH_PAGE[0]} and {SLOTH_PAGE[1]}), over seeds "
              f"{', '.join(map(str, SEEDS[:2]))}")
        print("\n".join(mttd_table(mttd(slos, tmp))))


if __name__ == "__main__":
    main()
