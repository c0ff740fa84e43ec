"""Guard band of the quickest page (make slo-guard-band): bursts spending 0.8/0.9/1.1/1.2 x the tier's budget
share, the bad series new at the burst (client libraries create a status series at its first use, so rate()
extrapolates it from its first sample), the burst shifted by 0, 10 and 20 s against the 30 s evaluation; promtool
says per case whether the page fires and for how many evaluations. A measurement, not a test: it prints figures.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from infra.core.paths import RULES_DIR
from infra.slo.rules import SLO_FILE
from infra.slo.spec import BURN_ALERT, BURN_RATE_TIERS, REFERENCE_PERIOD_DAYS, Slo, duration_seconds, load_slos
from infra.slo.symptom_tests import counter
from infra.slo.unit_tests import availability_series

FACTORS = (0.8, 0.9, 1.1, 1.2)
STEP_S, EVAL_S, BURST_S, RPS = 10, 30, 120, 10.0


def case(slo: Slo, factor: float, phase: int) -> dict[str, Any]:
    quick = min((t for t in BURN_RATE_TIERS if t.severity in ("P0", "P1") and slo.reaches(t)),
                key=lambda t: duration_seconds(t.long_window), default=None)
    assert quick is not None
    outage = quick.budget_share * REFERENCE_PERIOD_DAYS * 86400 * slo.error_budget
    warm = 3600 + phase * STEP_S
    n = (warm + BURST_S + 1800) // STEP_S
    ratio = factor * outage / BURST_S
    total = [RPS * STEP_S] * n
    bad = [RPS * STEP_S * ratio if warm <= k * STEP_S < warm + BURST_S else 0.0 for k in range(n)]
    good = [t - b for t, b in zip(total, bad, strict=True)]
    if slo.kind == "availability":
        first = warm // STEP_S
        series = [{"series": availability_series(slo, "200"), "values": counter(good)},
                  {"series": availability_series(slo, "500"), "values": f"_x{first} " + counter(bad[first:])}]
    else:
        series = [{"series": str(slo.good_selector), "values": counter(good)},
                  {"series": str(slo.total_selector), "values": counter(total)}]
    sel = f'ALERTS{{alertname="{BURN_ALERT}",slo="{slo.name}",tier="{quick.name}",alertstate="firing"}}'
    return {"name": f"{slo.name} x{factor} phase {phase * STEP_S}s", "interval": f"{STEP_S}s",
            "input_series": series,
            "promql_expr_test": [{"expr": f"count_over_time({sel}[{n * STEP_S - warm}s])",
                                  "eval_time": f"{n * STEP_S}s", "exp_samples": []}]}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.test.yml"
        for slo in load_slos():
            for factor in FACTORS:
                for phase in (0, 1, 2):
                    test = case(slo, factor, phase)
                    path.write_text(yaml.safe_dump({"rule_files": [str(RULES_DIR / "prometheus" / SLO_FILE)],
                                                    "evaluation_interval": f"{EVAL_S}s", "tests": [test]}))
                    run = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True,
                                         timeout=300, check=False)
                    found = re.search(r"\} (\S+)\n", run.stdout + run.stderr)
                    evals = float(found.group(1)) if found and run.returncode else 0.0
                    print(f"{test['name']:38} {'PAGES' if evals else 'silent':6} firing {evals * EVAL_S:g} s")


if __name__ == "__main__":
    main()
