"""Replays of traffic scenarios through promtool: what pages, when, and for how long.

The detection goals of the SLO alerts are measured, not argued: each scenario becomes counters of akidb-rest
(`akidb_requests_total` by status, the latency histogram's `le="0.03"` bucket and `_count`) with Poisson noise,
is fed to `promtool test rules` together with a rule file, and probe expressions over the `ALERTS` series
report the first and last firing time of every alert. promtool prints the value of a probe whose expectation
fails, so probes expect nothing and their results are read from the report.

`python -m infra.slo.replay` (`make slo-replay`) prints the MTTD table for the generated rules and for the
plan's original rules (rules/reference/plan-original.rules.yml).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from infra.core.paths import RULES_DIR
from infra.slo.render import dump as dump_rules
from infra.slo.rules import META_FILE, SLO_FILE, rule_files
from infra.slo.spec import BURN_RATE_TIERS, duration_seconds, load_slos
from infra.slo.symptoms import IN_PROGRESS, MEMORY_LIMIT, SYMPTOMS_RULE_FILE, UP, WORKING_SET, load_symptoms

ORIGINAL_RULES = RULES_DIR / "reference" / "plan-original.rules.yml"
JOB = "akidb-rest"
DAY = 86400


@dataclass
class Scenario:
    """Per-second request rate, error share and slow (> 30 ms) share as functions of time (seconds)."""

    name: str
    duration_s: int
    step_s: int
    rate: Callable[[np.ndarray], np.ndarray]
    error_share: Callable[[np.ndarray], np.ndarray]
    slow_share: Callable[[np.ndarray], np.ndarray]
    onset_s: int | None = None  # incident start and end (for MTTD / time to stop paging)
    end_s: int | None = None
    seed: int = 15
    extra: dict[str, str] = field(default_factory=dict)  # more input series (promtool notation), e.g. gauges

    def counters(self) -> dict[str, np.ndarray]:
        """Cumulative counters sampled every step (Poisson counts of requests, errors and slow requests)."""
        rng = np.random.default_rng(self.seed)
        n = self.duration_s // self.step_s
        # Integrate the shares over 1 s sub-steps so 30-second blips inside a 1-minute step keep their size.
        t = np.arange(n * self.step_s, dtype=float)
        lam = self.rate(t)
        req = rng.poisson(lam)
        err = rng.binomial(req, np.clip(self.error_share(t), 0, 1))
        slow = rng.binomial(req, np.clip(self.slow_share(t), 0, 1))
        def per_step(x: np.ndarray) -> np.ndarray:
            totals: np.ndarray = x.reshape(n, self.step_s).sum(axis=1)
            return totals

        def cum(x: np.ndarray) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(x)])

        req_s, err_s, slow_s = per_step(req), per_step(err), per_step(slow)
        return {
            f'akidb_requests_total{{job="{JOB}",status="200"}}': cum(req_s - err_s),
            f'akidb_requests_total{{job="{JOB}",status="500"}}': cum(err_s),
            f'akidb_request_duration_seconds_bucket{{job="{JOB}",le="0.03"}}': cum(req_s - slow_s),
            f'akidb_request_duration_seconds_count{{job="{JOB}"}}': cum(req_s),
        }


def _values(series: np.ndarray) -> str:
    """promtool series notation, runs of equal increments compressed as `a+bxN`."""
    out: list[str] = []
    i, n = 0, len(series)
    while i < n:
        j = i + 1
        if j < n:
            inc = series[j] - series[i]
            while j + 1 < n and series[j + 1] - series[j] == inc:
                j += 1
            if j - i >= 2:
                out.append(f"{int(series[i])}+{int(inc)}x{j - i}")
                i = j + 1
                continue
        out.append(str(int(series[i])))
        i += 1
    return " ".join(out)


@dataclass
class Firing:
    alertname: str
    labels: dict[str, str]
    first_s: float
    last_s: float
    episodes: int = 1  # separate times it started firing (an alert that fires twice is two notifications)


@dataclass
class ReplayResult:
    scenario: str
    rules: str
    firings: list[Firing]
    seconds: float

    def pages(self, slo_or_component: str | None = None) -> list[Firing]:
        return [f for f in self.firings if f.labels.get("severity") in ("P0", "P1")
                and (slo_or_component is None
                     or slo_or_component in (f.labels.get("slo"), f.labels.get("component")))]

    def tickets(self) -> list[Firing]:
        return [f for f in self.firings if f.labels.get("severity") == "P2"]


def _probes(duration_s: int, step_s: int) -> list[str]:
    rng = f"[{duration_s}s:{step_s}s]"
    sel = 'ALERTS{alertstate="firing",severity=~"P0|P1|P2"}'
    started = f"({sel} unless {sel} offset {step_s}s)"
    return [f"min_over_time(timestamp({sel}){rng})", f"max_over_time(timestamp({sel}){rng})",
            f"sum_over_time({started}{rng})"]


_GOT = re.compile(r'\{([^{}]*)\} ([-+0-9.eE]+|NaN)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _parse(report: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """promtool failure report -> expr -> [(labels, value)] (an expression with no result is absent)."""
    results: dict[str, list[tuple[dict[str, str], float]]] = {}
    current = None
    for line in report.splitlines():
        m = re.match(r'\s*expr: (".*"), time: ', line)
        if m:
            current = json.loads(m.group(1))
            continue
        m = re.match(r"\s*got: (.*)$", line)
        if m and current is not None:
            results[current] = [(dict(_LABEL.findall(lbl)), float(v)) for lbl, v in _GOT.findall(m.group(1))]
            current = None
    return results


def replay(scenario: Scenario, rules: Sequence[Path], rules_name: str) -> ReplayResult:
    """Run one scenario through promtool against `rules`; return every alert's first/last firing time."""
    counters = scenario.counters()
    probes = _probes(scenario.duration_s, scenario.step_s)
    test = {
        "rule_files": [str(p) for p in rules],
        "evaluation_interval": f"{scenario.step_s}s",
        "tests": [{
            "name": scenario.name,
            "interval": f"{scenario.step_s}s",
            "input_series": [{"series": k, "values": _values(v)} for k, v in counters.items()]
            + [{"series": k, "values": v} for k, v in scenario.extra.items()],
            "promql_expr_test": [{"expr": p, "eval_time": f"{scenario.duration_s}s", "exp_samples": []}
                                 for p in probes],
        }],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replay.test.yml"
        path.write_text(yaml.safe_dump(test, width=1 << 30), encoding="utf-8")
        started = time.monotonic()
        proc = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True,
                              timeout=900, check=False)
        seconds = time.monotonic() - started
    got = _parse(proc.stdout + proc.stderr)
    if proc.returncode not in (0, 1) or ("FAILED" in proc.stdout and not got and "expr:" not in proc.stdout):
        raise RuntimeError(f"promtool failed on {scenario.name}:\n{proc.stdout}\n{proc.stderr}")
    first = {json.dumps(lbl, sort_keys=True): v for lbl, v in got.get(probes[0], [])}
    last = {json.dumps(lbl, sort_keys=True): v for lbl, v in got.get(probes[1], [])}
    starts = {json.dumps({k: v for k, v in lbl.items() if k != "__name__"}, sort_keys=True): v
              for lbl, v in got.get(probes[2], [])}
    firings = []
    for key, t0 in sorted(first.items(), key=lambda kv: kv[1]):
        labels = json.loads(key)
        episodes = max(1, int(starts.get(key, 1)))
        firings.append(Firing(labels.pop("alertname", "?"), labels, t0, last.get(key, t0), episodes))
    return ReplayResult(scenario.name, rules_name, firings, seconds)


# --------------------------------------------------------------------------------------------------------------
# Scenarios (Week 14 incidents from seeds 001; traffic shape from the plan: ~600 req/s)
# --------------------------------------------------------------------------------------------------------------

RPS = 600.0
BASE_ERRORS = 0.0001  # 0.01% 5xx
BASE_SLOW = 0.0002  # 0.02% of requests above 30 ms
WARMUP_S = 7 * 3600  # the 6h window of the slowest paging tier is full at onset


def _flat(value: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: np.full_like(t, value)


def _window(base: float, value: float, start: int, end: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: np.where((t >= start) & (t < end), value, base)


def error_incident(share: float = 0.05, minutes: int = 8) -> Scenario:
    """Spot interruption cascade: 5% errors for 8 minutes."""
    onset, end = WARMUP_S, WARMUP_S + minutes * 60
    return Scenario(f"errors {share:.0%} for {minutes} min", end + 3600, 30, _flat(RPS),
                    _window(BASE_ERRORS, share, onset, end), _flat(BASE_SLOW), onset, end)


def latency_incident(slow: float = 0.05, minutes: int = 15) -> Scenario:
    """Cold-start storm: p95 45 ms -> 4.5 s for 15 minutes, so at least 5% of requests take more than 30 ms."""
    onset, end = WARMUP_S, WARMUP_S + minutes * 60
    return Scenario(f"{slow:.0%} of requests > 30 ms for {minutes} min", end + 3600, 30, _flat(RPS),
                    _flat(BASE_ERRORS), _window(BASE_SLOW, slow, onset, end), onset, end)


def sustained_burn(share: float = 0.002, hours: int = 30, warmup_s: int = 3 * DAY, step_s: int = 300) -> Scenario:
    """A slow leak: 0.2% errors (4x the 99.95% budget rate) after `warmup_s` of healthy traffic (3 days fill
    the slowest ticket window, so its ratio is not inflated by a short history)."""
    end = warmup_s + hours * 3600
    return Scenario(f"sustained {share:.1%} errors for {hours} h (step {step_s}s)", end, step_s, _flat(RPS),
                    _window(BASE_ERRORS, share, warmup_s, end), _flat(BASE_SLOW), warmup_s, None)


def normal_month(days: int = 30, step_s: int = 60, seed: int = 42, deploy_bump: float = 0.0) -> Scenario:
    """~600 req/s with a daily cycle, a nightly low-traffic hour, Poisson noise, 0.01% errors, 0.02% slow, and
    isolated 30-second blips of 2-6% errors or slow requests (three of each a day, at random times)."""
    rng = np.random.default_rng(seed)
    blips_err = rng.uniform(0, days * DAY - 30, size=3 * days).astype(int)
    blips_slow = rng.uniform(0, days * DAY - 30, size=3 * days).astype(int)
    size_err = rng.uniform(0.02, 0.06, size=blips_err.size)
    size_slow = rng.uniform(0.02, 0.06, size=blips_slow.size)

    def rate(t: np.ndarray) -> np.ndarray:
        hour = (t % DAY) / 3600
        daily = RPS * (1 + 0.45 * np.sin(2 * np.pi * (hour - 9) / 24))
        return np.where((hour >= 3) & (hour < 4), RPS * 0.08, daily)

    def blips(base: float, starts: np.ndarray, sizes: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        def share(t: np.ndarray) -> np.ndarray:
            out = np.full_like(t, base)
            for s, p in zip(starts, sizes, strict=True):
                out[int(s):int(s) + 30] = p
            return out
        return share

    def errors(t: np.ndarray) -> np.ndarray:
        out = blips(BASE_ERRORS, blips_err, size_err)(t)
        if deploy_bump:
            # A weekly deploy (day 1 of each week, 14:00): DEPLOY_BUMP_S of `deploy_bump` errors while pods roll.
            for start in range(DAY + 14 * 3600, days * DAY, 7 * DAY):
                out[start:start + DEPLOY_BUMP_S] = deploy_bump
        return out

    name = f"normal traffic ({days} d{', weekly deploys' if deploy_bump else ''})"
    return Scenario(name, days * DAY, step_s, rate, errors, blips(BASE_SLOW, blips_slow, size_slow), seed=seed)


DEPLOY_BUMP_S = 120
DEPLOY_BUMP = 0.03  # 3% errors for 2 minutes: 0.28% of the 30-day budget at 99.95%


def _healthy_gauges(days: int, step_s: int) -> dict[str, str]:
    """The symptom alerts' inputs in a healthy month: two targets up, a working set breathing between 40% and 60%
    of its limit every day (allocation and GC), a few requests in progress following the traffic."""
    n = days * DAY // step_s
    t = np.arange(n + 1) * step_s
    limit = 2.0 * 1024 ** 3
    phase = 2 * np.pi * (t % DAY) / DAY
    out: dict[str, str] = {}
    for i in range(2):
        pod = f'container="{JOB}",namespace="akidb",pod="{JOB}-{i}"'
        out[f'{UP}{{instance="10.0.0.{i + 1}:8080",job="{JOB}"}}'] = f"1x{n}"
        out[f'{MEMORY_LIMIT}{{{pod},resource="memory",unit="byte"}}'] = f"{int(limit)}x{n}"
        ws = (0.5 + 0.1 * np.sin(phase + i)) * limit
        out[f"{WORKING_SET}{{{pod}}}"] = " ".join(str(int(v)) for v in ws)
        busy = 4 + 3 * np.sin(phase - np.pi / 2)
        out[f'{IN_PROGRESS}{{instance="10.0.0.{i + 1}:8080",job="{JOB}"}}'] = " ".join(str(int(v)) for v in busy)
    return out


# --------------------------------------------------------------------------------------------------------------
# Rule sets
# --------------------------------------------------------------------------------------------------------------


def generated_rules(tmp: Path, tier_names: Sequence[str] | None = None) -> list[Path]:
    """The generated SLO rules (same generator as rules/prometheus), optionally only some tiers."""

    tiers = [t for t in BURN_RATE_TIERS if tier_names is None or t.name in tier_names]
    if not tiers:
        raise ValueError(f"no tier named {tier_names}; tiers: {[t.name for t in BURN_RATE_TIERS]}")
    path = tmp / f"slo-{'-'.join(t.name for t in tiers)}.rules.yml"
    path.write_text(dump_rules(rule_files(load_slos(), tiers=tiers, sloth=False)[SLO_FILE]), encoding="utf-8")
    return [path]


def paging_tier_names() -> list[str]:
    return [t.name for t in BURN_RATE_TIERS if t.severity in ("P0", "P1")]


def original_rules(tmp: Path, fix_bucket: bool = False) -> list[Path]:
    """The plan's rules as written (le="0.030"), or with the bucket spelled as exported (le="0.03")."""
    text = ORIGINAL_RULES.read_text(encoding="utf-8")
    if not fix_bucket:
        return [ORIGINAL_RULES]
    path = tmp / "plan-original-le-fixed.rules.yml"
    path.write_text(text.replace('le="0.030"', 'le="0.03"'), encoding="utf-8")
    return [path]


def month_step_s(tier_names: Sequence[str]) -> int:
    """Coarsest step (60 s or 300 s) at which every short window still holds two samples."""
    shortest = min(duration_seconds(t.short_window) for t in BURN_RATE_TIERS if t.name in tier_names)
    return 300 if shortest >= 300 else 60


def plan_month(tmp: Path, days: int = 30) -> tuple[Scenario, list[Path]]:
    """The normal month through the plan's rules (1h..3d windows: 5-minute steps), `le` fixed, for comparison."""
    return normal_month(days, 300), original_rules(tmp, fix_bucket=True)


BUDGET_TICKET_STEP_S = 900  # the 1d/3d ticket tiers: windows >= 2h hold 8+ samples at 15-minute steps


def alert_budget_plan(tmp: Path, days: int = 30) -> list[tuple[Scenario, list[Path]]]:
    """The healthy month with weekly deploys through EVERY Prometheus rule, each at the coarsest step its windows
    allow: the 2m-window tier at 1 minute, the other paging tiers and the symptom alerts at 5 minutes, the ticket
    tiers at 15 minutes; absent/bucket/budget rules with the symptoms (heartbeat excluded: it always fires)."""
    slos = load_slos()
    files = rule_files(slos, symptoms=load_symptoms(slos))
    rest = tmp / "symptoms-meta.rules.yml"
    meta = [g | {"rules": [r for r in g["rules"] if r.get("labels", {}).get("severity") != "heartbeat"]}
            for g in files[META_FILE]["groups"]]
    rest.write_text(dump_rules({"groups": files[SYMPTOMS_RULE_FILE]["groups"] + meta}), encoding="utf-8")
    fine = [t.name for t in BURN_RATE_TIERS if month_step_s([t.name]) == 60]
    mid = [t.name for t in BURN_RATE_TIERS if month_step_s([t.name]) == 300 and t.severity in ("P0", "P1")]
    tickets = [t.name for t in BURN_RATE_TIERS if t.severity == "P2"]
    assert set(fine) | set(mid) | set(tickets) == {t.name for t in BURN_RATE_TIERS}

    def month(step: int, gauges: bool = False) -> Scenario:
        sc = normal_month(days, step, deploy_bump=DEPLOY_BUMP)
        if gauges:
            sc.extra = _healthy_gauges(days, step)
        return sc

    runs = [(month(60), generated_rules(tmp, fine)), (month(300, gauges=True), [*generated_rules(tmp, mid), rest])]
    runs.append((month(BUDGET_TICKET_STEP_S), generated_rules(tmp, tickets)))
    return runs


ALERT_BUDGET_PER_WEEK = 10  # the plan's budget: fewer alerts than this a week
# `make test` replays 3 days of it (the deploy of day 1, 9 blips of each kind; per week extrapolated, which is
# stricter: one ticket counts as 2.3 a week); `make slo-replay` the whole month. A week took 91 s of promtool CPU
# from a fresh clone, a tenth of the suite's share of one core.
SUITE_BUDGET_DAYS = 3


@dataclass
class AlertBudget:
    """A healthy period through every Prometheus rule: what paged, how many ticket episodes, one line per run."""

    days: int
    pages: list[Firing]
    tickets: int
    lines: list[str]

    @property
    def per_week(self) -> float:
        return self.tickets * 7 / self.days


def alert_budget(tmp: Path, days: int = 30) -> AlertBudget:
    """The healthy period of `alert_budget_plan`, one promtool process per step size side by side (each is one
    single-threaded evaluation loop)."""
    runs = alert_budget_plan(tmp, days)
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        results = list(pool.map(lambda run: replay(run[0], run[1], "generated"), runs))
    pages: list[Firing] = []
    tickets, seconds, lines = 0, 0.0, []
    for (sc, rules), r in zip(runs, results, strict=True):
        pages += r.pages()
        episodes = sum(f.episodes for f in r.tickets())
        tickets += episodes
        seconds += r.seconds
        which = sorted({(f.alertname, f.labels.get("tier", ""), f.labels.get("severity", "")) for f in r.firings})
        lines.append(f"{sc.name}, {sc.step_s}s steps, rules {[p.name for p in rules]}: {len(r.pages())} pages, "
                     f"{episodes} tickets {which} (promtool {r.seconds:.1f}s)")
    out = AlertBudget(days, pages, tickets, lines)
    lines.append(f"alert budget, healthy {days} days through every rule: {len(pages)} pages, {tickets} tickets "
                 f"({out.per_week:.1f} alerts/week; budget < {ALERT_BUDGET_PER_WEEK}) (promtool {seconds:.1f}s)")
    return out


def mttd(result: ReplayResult, scenario: Scenario, slo: str) -> float | None:
    pages = result.pages(slo)
    if not pages or scenario.onset_s is None:
        return None
    return min(p.first_s for p in pages) - scenario.onset_s


def stops_after_end(result: ReplayResult, scenario: Scenario, slo: str) -> float | None:
    """Seconds from the incident's end to the last evaluation at which a page was still firing (+1 step)."""
    pages = result.pages(slo)
    if not pages or scenario.end_s is None:
        return None
    return max(p.last_s for p in pages) + scenario.step_s - scenario.end_s


def minutes(x: float | None) -> str:
    """Seconds as minutes for the reports, "never" for None."""
    return "never" if x is None else f"{x / 60:.1f} min"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MTTD and noise replays of the SLO alerts through promtool")
    parser.add_argument("--month-days", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        ours, ours_page = generated_rules(tmp), generated_rules(tmp, paging_tier_names())
        # Pages only depend on the P0/P1 tiers; their rule subset needs no 1d/3d ranges (much faster replays).
        plan, plan_fixed = original_rules(tmp), original_rules(tmp, fix_bucket=True)
        rows = []
        for sc, slo, comp in ((error_incident(), "availability", "availability"),
                              (latency_incident(), "latency", "latency"),
                              (latency_incident(0.5), "latency", "latency")):
            for name, rules in (("generated", ours_page), ("plan", plan), ("plan, le fixed", plan_fixed)):
                r = replay(sc, rules, name)
                key = slo if name == "generated" else comp
                rows.append((sc.name, name, minutes(mttd(r, sc, key)), minutes(stops_after_end(r, sc, key)),
                             f"{r.seconds:.1f}s"))
        print(f"{'scenario':36} {'rules':16} {'MTTD':>10} {'stops after end':>16} {'promtool':>9}")
        for row in rows:
            print(f"{row[0]:36} {row[1]:16} {row[2]:>10} {row[3]:>16} {row[4]:>9}")
        sc = sustained_burn()
        for name, rules in (("generated", ours), ("plan", plan)):
            r = replay(sc, rules, name)
            p2 = min((f.first_s - (sc.onset_s or 0) for f in r.tickets()), default=None)
            print(f"{sc.name}: {name}: first P2 after {minutes(p2)}, pages: {len(r.pages())} "
                  f"({r.seconds:.1f}s)")
        sc, rules = plan_month(tmp, args.month_days)
        r = replay(sc, rules, "plan, le fixed")
        print(f"{sc.name}: plan, le fixed: {len(r.pages())} paging alerts "
              f"{[(f.alertname, f.first_s) for f in r.pages()]} ({r.seconds:.1f}s)")
        budget = alert_budget(tmp, args.month_days)
        print("\n".join(budget.lines))
        if budget.pages or budget.per_week >= ALERT_BUDGET_PER_WEEK:
            print(f"FAIL: the healthy {args.month_days} days page or exceed the alert budget")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
