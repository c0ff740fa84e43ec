"""A real Prometheus 2.42 (Debian package, loopback) holding 32 days of backfilled SLI history for services that
each spent a given share of their error budgets, and the shipped budget rules backfilled over it: what the error
budget gate reads (tests/test_budget_gate.py) and what the deploy workflow's gate step reads in the offline
workflow run (tests/test_workflow_steps.py).

Counters are written as OpenMetrics and backfilled with `promtool tsdb create-blocks-from openmetrics`; the
shipped generator's budget rules (infra/slo/rules.py, the same code that writes
rules/prometheus/slo-budget.rules.yml) are then backfilled with `promtool tsdb create-blocks-from rules`, twice,
because the backfiller evaluates against Prometheus and the budget-remaining rule reads the other two recordings
(the second pass sees the first's blocks after a restart). Prometheus' own evaluation waits for the group's next
2-minute slot: loading the same rules into it gave the first value after 106 s (measured), the two backfill
passes and restarts take about 1.5 s.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from infra.core.paths import ROOT
from infra.slo.render import dump
from infra.slo.rules import BUDGET_FILE, rule_files
from infra.slo.spec import Selector, Slo, load_slos, to_openslo
from infra.tools import daemons

STEP_S = 600  # one sample every 10 minutes: 4,700 per series over 32 days
REQUESTS_PER_STEP = 600.0
DAY = 86400
OLD_INCIDENT_BUDGETS = 40.0  # healthy: 40x the budget's error ratio for 12 h, ending a day before the window


def _relabelled(sel: Selector | None, job: str) -> Selector | None:
    if sel is None:
        return None
    return Selector(sel.metric, tuple((n, op, job if n == "job" else v) for n, op, v in sel.matchers))


def service_slos(service: str) -> list[Slo]:
    """The shipped SLOs, for `service` (job label and service name replaced)."""
    return [dataclasses.replace(s, service=service, total_selector=_relabelled(s.total_selector, service),
                                bad_selector=_relabelled(s.bad_selector, service),
                                good_selector=_relabelled(s.good_selector, service))
            for s in load_slos()]


def _labels(sel: Selector, **extra: str) -> str:
    pairs = {n: v for n, op, v in sel.matchers if op == "="} | extra
    return ",".join(f'{k}="{v}"' for k, v in pairs.items())


def counters(slo: Slo, share: float, times: np.ndarray, end: float,
             old_incident: bool = False) -> dict[str, np.ndarray]:
    """Cumulative counters of one SLO's SLI: `share` of the budget spent at a constant rate in the window (and,
    with `old_incident`, a big incident just before the window, which must not count)."""
    ratio = np.full(times.shape, share * slo.error_budget)
    if old_incident:
        window_start = end - slo.window_days * DAY
        old = (times > window_start - 1.5 * DAY) & (times <= window_start - DAY)
        ratio[old] = min(1.0, OLD_INCIDENT_BUDGETS * slo.error_budget)
    ratio[0] = 0.0  # the first sample is the counters' start
    total = np.cumsum(np.where(np.arange(times.size) == 0, 0.0, REQUESTS_PER_STEP))
    bad = np.cumsum(ratio * np.where(np.arange(times.size) == 0, 0.0, REQUESTS_PER_STEP))
    if slo.kind == "availability":
        assert slo.bad_selector is not None
        return {f"{slo.bad_selector.metric}{{{_labels(slo.total_selector, status='500')}}}": bad,
                f"{slo.total_selector.metric}{{{_labels(slo.total_selector, status='200')}}}": total - bad}
    assert slo.good_selector is not None
    return {f"{slo.good_selector.metric}{{{_labels(slo.good_selector)}}}": total - bad,
            f"{slo.total_selector.metric}{{{_labels(slo.total_selector)}}}": total}


def openmetrics(series: dict[str, np.ndarray], times: np.ndarray) -> str:
    lines = [f"{name} {value:.6f} {int(t)}"
             for name, values in series.items() for t, value in zip(times, values, strict=True)]
    return "\n".join(lines) + "\n# EOF\n"


@dataclass(frozen=True)
class World:
    url: str
    slos: dict[str, list[Slo]]  # service -> its SLOs
    tmp: Path
    build_s: float

    def slo_file(self, *services: str) -> Path:
        path = self.tmp / f"slos-{'-'.join(services)}.yaml"
        path.write_text(yaml.safe_dump_all([to_openslo(s) for svc in services for s in self.slos[svc]],
                                           sort_keys=False))
        return path


def _promtool(*args: str) -> None:
    done = subprocess.run(["promtool", "tsdb", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


@contextmanager
def budget_world(tmp: Path, shares: Mapping[str, float], old_incident: tuple[str, ...] = ()) -> Iterator[World]:
    """Prometheus holding the history of `shares` (service -> share of each budget spent in its window)."""
    started = time.monotonic()
    tsdb, config = tmp / "tsdb", tmp / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1m}\n")
    slos = {svc: service_slos(svc) for svc in shares}
    window_days = max(s.window_days for group in slos.values() for s in group)
    end = float(int(time.time()) // STEP_S * STEP_S)
    times = end - np.arange((window_days + 2) * DAY // STEP_S, -1, -1) * STEP_S
    series = {k: v for svc, group in slos.items() for s in group for k, v in
              counters(s, shares[svc], times, end, svc in old_incident).items()}
    (tmp / "history.om").write_text(openmetrics(series, times))
    # One block for the whole history (Prometheus docs, "Storage", backfilling: --max-block-duration): with the
    # default 2-hour blocks promtool re-reads the file once per block, 23 s instead of 0.4 s here.
    _promtool("create-blocks-from", "openmetrics", "--quiet", f"--max-block-duration={(window_days + 3) * 24}h",
              str(tmp / "history.om"), str(tsdb))
    # The generator that writes the shipped file, run for the three services (checked: same text for akidb-rest).
    assert dump(rule_files(load_slos())[BUDGET_FILE]) == (ROOT / "rules/prometheus" / BUDGET_FILE).read_text()
    rules = tmp / BUDGET_FILE
    rules.write_text(dump(rule_files([s for group in slos.values() for s in group])[BUDGET_FILE]))
    # Evaluations in the last 10 minutes (every 2 m, the group interval); an instant query looks back 5 minutes.
    now = int(time.time())
    for _ in range(2):
        with daemons.prometheus(config, tsdb=tsdb) as prom:
            _promtool("create-blocks-from", "rules", f"--start={now - 600}", f"--end={now}", f"--url={prom.url}",
                      f"--output-dir={tsdb}", "--quiet", str(rules))
    # The world then evaluates the same rules itself, as the shipped Prometheus does: the backfilled recordings
    # cover the first minutes (an instant query looks back 5 minutes), its own evaluations every 2 minutes after
    # that, so a reader that comes late (the deploy workflow's gate, minutes into the workflow run on a loaded
    # machine) still finds the budgets (the last backfilled sample alone went stale after 5 minutes).
    serving = tmp / "prometheus-evaluating.yml"
    serving.write_text(f"global: {{scrape_interval: 1m}}\nrule_files: [{rules.name}]\n")
    with daemons.prometheus(serving, tsdb=tsdb) as prom:
        yield World(url=prom.url, slos=slos, tmp=tmp, build_s=time.monotonic() - started)


