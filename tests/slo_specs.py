"""Hypothesis strategy of anyone's SLO definitions, and the check every generated output must pass.

1-5 services, 1-4 SLOs each (availability and latency, several latency SLOs on one histogram), targets from
90% to 99.999%, 7/28/30-day windows, any exported bucket as threshold, and twins: an SLO on the very same series as
an earlier one of its service (one requests counter with 99.9% and 99%, or one latency threshold with two targets
or windows), whose alerts fire on the other's test series too. Each spec goes through the OpenSLO text
(`to_openslo` -> `parse_slos`), so what is checked is what a user's rules/slos.yaml would produce.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from infra.core.promql import check_expressions, metric_names
from infra.dashboard_defs.grafana import expressions
from infra.dashboard_defs.grafana_boards import SATURATION, golden_signals, slo_board
from infra.slo.alert_coverage import untested
from infra.slo.render import dump
from infra.slo.rules import rule_files
from infra.slo.spec import DEFAULT_LINKS, Selector, Slo, parse_slos, prometheus_float, to_openslo
from infra.slo.symptom_tests import burst_test_files
from infra.slo.unit_tests import unit_test_files
from infra.validation.dashboards import grid_problems

BUCKETS = (0.005, 0.01, 0.025, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SERVICES = ("akidb-rest", "search-api", "ingest", "billing", "edge-gw", "auth")


@st.composite
def _slo(draw: st.DrawFn, service: str, index: int, le: float, twin_of: Slo | None = None) -> Slo:
    kind = twin_of.kind if twin_of is not None else draw(st.sampled_from(("availability", "latency")))
    objective = draw(st.integers(90000, 99999)) / 100000
    window = draw(st.sampled_from((7, 28, 30)))
    job = f'job="{service}"'
    common: dict[str, Any] = {
        "name": f"{kind}-{index}", "service": service, "kind": kind, "objective": objective, "window_days": window,
        "description": f"{objective:.3%} of {service} requests", "display_name": f"{service} {kind} {index}",
        "min_events": draw(st.sampled_from((100, 1000))), "indicator_name": f"{service}-{kind}-{index}",
        "objective_name": f"{objective:.3%}",
        "runbook": "error-budget-fast-burn" if kind == "availability" else "latency-slo-violation",
    }
    if twin_of is not None:  # the same series, its own target, window and guard
        return Slo(**common, total_selector=twin_of.total_selector, bad_selector=twin_of.bad_selector,
                   good_selector=twin_of.good_selector, threshold_seconds=twin_of.threshold_seconds,
                   histogram_buckets=twin_of.histogram_buckets)
    if kind == "availability":
        # One availability SLI per route (an SLO on an earlier one's route is a twin, drawn above).
        route = f',route="/r{index}"'
        return Slo(**common, total_selector=Selector.parse(f"akidb_requests_total{{{job}{route}}}"),
                   bad_selector=Selector.parse(f'akidb_requests_total{{{job}{route},status=~"5.."}}'))
    return Slo(**common, total_selector=Selector.parse(f"akidb_request_duration_seconds_count{{{job}}}"),
               good_selector=Selector.parse(
                   f'akidb_request_duration_seconds_bucket{{{job},le="{prometheus_float(le)}"}}'),
               threshold_seconds=le, histogram_buckets=BUCKETS)


@st.composite
def slo_specs(draw: st.DrawFn, max_services: int = 5, max_slos: int = 4) -> list[Slo]:
    services = draw(st.lists(st.sampled_from(SERVICES), min_size=1, max_size=max_services, unique=True))
    slos: list[Slo] = []
    for service in services:
        n = draw(st.integers(1, max_slos))
        les = draw(st.permutations(BUCKETS))  # latency SLOs of a service share its histogram
        mine: list[Slo] = []
        for i in range(n):
            twin = draw(st.sampled_from([None, *mine])) if mine else None
            mine.append(draw(_slo(service, i, les[i], twin)))
        slos += mine
    # Through the definition file's text: the loader must accept what the generator is asked to compile.
    text = "---\n".join(yaml.safe_dump(to_openslo(s), sort_keys=False) for s in slos)
    return parse_slos(text, "generated.yaml")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=600, check=False)


def spec_problems(slos: list[Slo], root: Path) -> list[str]:
    """Everything wrong with what the generators make of `slos` (empty when all holds)."""
    problems: list[str] = []
    rules = rule_files(slos, DEFAULT_LINKS)
    tests = {**unit_test_files(slos, DEFAULT_LINKS), **burst_test_files(slos, DEFAULT_LINKS)}
    for sub, docs in (("prometheus", rules), ("tests", tests)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name, doc in docs.items():
            (root / sub / name).write_text(dump(doc), encoding="utf-8")
    check = _promtool("check", "rules", *sorted(str(p) for p in (root / "prometheus").glob("*.yml")))
    if check.returncode != 0:
        problems.append(f"promtool check rules: {check.stdout[-2000:]}{check.stderr[-2000:]}")
    run = _promtool("test", "rules", *sorted(str(p) for p in (root / "tests").glob("*.yml")))
    if run.returncode != 0:
        problems.append(f"promtool test rules: {run.stdout[-3000:]}{run.stderr[-2000:]}")
    problems += untested(rules.values(), tests.values())
    recorded = {r["record"] for doc in rules.values() for g in doc["groups"] for r in g["rules"] if "record" in r}
    inputs = {sel.metric for s in slos for sel in (s.total_selector, s.bad_selector, s.good_selector) if sel}
    known = recorded | inputs | {m for _, _, m, _ in SATURATION} | {"ALERTS"}
    boards = [slo_board(slos)]
    if any(s.kind == "availability" for s in slos):
        boards.append(golden_signals(slos))
    exprs: list[str] = []
    for board in boards:
        doc = board.to_json()
        boxes = [(str(p["title"]), p["gridPos"]["x"], p["gridPos"]["y"], p["gridPos"]["w"], p["gridPos"]["h"])
                 for p in doc["panels"]]
        problems += [f"{board.key}: {m}" for m in grid_problems(boxes)]
        for title, expr in expressions(doc):
            exprs.append(expr)
            unknown = metric_names(expr) - known
            if unknown:
                problems.append(f"{board.key} '{title}': reads {sorted(unknown)}, neither recorded nor an input")
        lat_titles = [str(p["title"]) for p in doc["panels"] if "latency SLI" in str(p["title"])]
        if board.key == "golden-signals" and len(lat_titles) != sum(s.kind == "latency" for s in slos):
            problems.append(f"golden-signals draws {len(lat_titles)} latency SLIs for "
                            f"{sum(s.kind == 'latency' for s in slos)} latency SLOs")
    problems += [f"PromQL {e!r}: {m}" for e, m in check_expressions(exprs).items()]
    return problems
