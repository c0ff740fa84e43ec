"""Burst guard band of the quickest page, for every SLO of rules/slos.yaml: a burst spending 0.8 or 0.9 x the tier's
budget share never pages; 1.1 or 1.2 x always does. Scrapes at the stack's interval (the values the stack documents
for kube-prometheus-stack), each jittered, the target's phase and the burst's start drawn per seed; the bad series
is new at the burst. All cases run in one promtool process (one test file per SLO); each case is a test here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra.core.paths import ROOT
from infra.slo.guard_band import FACTORS, SEEDS, BurstCase, Timing, burst_cases, guard_band_files, promtool_test
from infra.slo.spec import duration_seconds, load_slos

VALUES = ROOT / "docs" / "kube-prometheus-stack-values.yaml"
SEEDS_HERE = SEEDS[:3]  # three draws of phases and jitter per case keep the run near 10 s


def _timing() -> Timing:
    spec = yaml.safe_load(VALUES.read_text(encoding="utf-8"))["prometheus"]["prometheusSpec"]
    return Timing(scrape_s=duration_seconds(spec["scrapeInterval"]),
                  eval_s=duration_seconds(spec["evaluationInterval"]))


CASES = burst_cases(load_slos(), FACTORS, SEEDS_HERE)


@pytest.fixture(scope="module")
def promtool_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("guard-band")
    return promtool_test(guard_band_files(CASES, tmp, timing=_timing()))


def test_every_slo_with_a_page_has_its_cases() -> None:
    names = {(c.slo.service, c.slo.name) for c in CASES}
    assert names == {(s.service, s.name) for s in load_slos()}  # the shipped SLOs all page on a 2-minute burst
    assert {c.factor for c in CASES} == {0.8, 0.9, 1.1, 1.2}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_burst_pages_exactly_above_the_tiers_share(case: BurstCase,
                                                   promtool_run: tuple[int, str, dict[str, str]]) -> None:
    code, out, failed = promtool_run
    assert "SUCCESS" in out or failed, out[-3000:]  # promtool ran the cases (a broken file fails every one)
    assert case.name not in failed, (
        f"{case.name}: {'paged' if case.factor < 1 else 'never paged'} (promtool got {failed[case.name]})")
    if not failed:
        assert code == 0, out[-3000:]
