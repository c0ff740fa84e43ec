"""`python -m infra.tools.check_prometheus_values <values.yaml>`: does a kube-prometheus-stack values file give
Prometheus what the shipped rules need?

The requirements are derived from the rules the definitions generate (rules/slos.yaml, rules/symptoms.yaml through
`infra.slo.rules.all_groups`), never typed in: every range selector `[w]` and `offset o` of every rule expression,
every alert's `for:`. Three requirements follow:

- retention >= the longest lookback of any rule (range + offset; the SLO period's budget rule reads `[30d]`) plus
  a margin of RETENTION_MARGIN: with retention equal to the range, the oldest samples of the window are the next
  ones deleted, so the period's ratio would silently cover less than the period;
- scrapeInterval <= the shortest range / 4: "the range should be at least 4x the scrape interval ... to allow for
  various races, and to be resilient to a failed scrape" (Robust Perception, "What range should I use with
  rate()?", https://www.robustperception.io/what-range-should-i-use-with-rate/);
- evaluationInterval <= the shortest range of a rule in a group without its own `interval` (consecutive
  evaluations of a windowed recording then overlap: no burst falls between two windows) and <= half the shortest
  `for:` (an alert is confirmed by at least two evaluations before it fires).

Absent keys take the chart's defaults: `prometheus.prometheusSpec.retention: 10d`, and `scrapeInterval` /
`evaluationInterval` empty, which the Prometheus Operator turns into 30s each (kube-prometheus-stack values.yaml,
https://github.com/prometheus-community/helm-charts/blob/main/charts/kube-prometheus-stack/values.yaml, and the
Prometheus Operator API reference, https://prometheus-operator.dev/docs/api-reference/api/). `retentionSize`
cannot be checked against time: when set it is reported as a condition to size for.

Exit 0: every requirement met; 1: at least one problem (each one named with what is allowed); 2: the file cannot be
read as a YAML mapping.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.core import yamldoc
from infra.slo.rules import all_groups
from infra.slo.spec import SLO_FILE, load_slos
from infra.slo.symptoms import SYMPTOMS_FILE, load_symptoms

CHART_DEFAULTS: Mapping[str, str] = {"retention": "10d", "scrapeInterval": "30s", "evaluationInterval": "30s"}
RETENTION_MARGIN = "1d"
SAMPLES_PER_RANGE = 4  # Robust Perception: the range should be at least 4x the scrape interval
EVALUATIONS_PER_FOR = 2  # an alert's `for:` spans at least two evaluations
SPEC_PATH = "prometheus.prometheusSpec"

# Prometheus durations as the Operator's CRD validates them: units in descending order, each at most once.
_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001))
_DURATION = re.compile("^" + "".join(rf"(?:(\d+){u}(?![a-z]))?" for u, _ in _UNITS) + "$")
_SIZE = re.compile(r"^(0|([0-9]*[.])?[0-9]+((K|M|G|T|E|P)i?)?B)$")
_RANGE = re.compile(r"\[(\d+(?:ms|[smhdwy]))(?::[^\]]*)?\]")
_OFFSET = re.compile(r"\boffset\s+(\d+(?:ms|[smhdwy]))")
# What one selector reads back: its range (or the 5m lookback delta of an instant selector) plus its own offset.
_READ = re.compile(r"(?:\[(\d+(?:ms|[smhdwy]))(?::[^\]]*)?\]|\})(?:\s+offset\s+(\d+(?:ms|[smhdwy])))?")


class UnreadableValues(Exception):
    """The values file cannot be read as a YAML mapping (exit 2)."""


def parse_duration(text: str) -> float:
    """'1d12h' -> 129600.0 seconds; raises ValueError naming the allowed form."""
    m = _DURATION.match(text) if text else None
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a Prometheus duration (e.g. 30s, 5m, 35d, 1d12h; units y w d h m s ms)")
    return sum(int(v) * factor for v, (_, factor) in zip(m.groups(), _UNITS, strict=True) if v)


def format_duration(seconds: float) -> str:
    for unit, factor in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Requirements:
    """What the shipped rules need from Prometheus, with the rule that sets each bound."""

    min_retention: float
    retention_why: str
    max_scrape: float
    scrape_why: str
    max_evaluation: float
    evaluation_why: str


def _rules(groups: Iterable[Mapping[str, Any]]) -> Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    for group in groups:
        for rule in group.get("rules", []):
            yield group, rule


def _name(rule: Mapping[str, Any]) -> str:
    return str(rule.get("alert") or rule.get("record"))


def derive_requirements(groups: Sequence[Mapping[str, Any]]) -> Requirements:
    """The bounds every rule of `groups` (plain Prometheus rule groups) puts on retention and intervals."""
    lookback: tuple[float, str] = (0.0, "")
    shortest_range: tuple[float, str] | None = None
    eval_bounds: list[tuple[float, str]] = []
    for group, rule in _rules(groups):
        expr, name = str(rule.get("expr", "")), _name(rule)
        ranges = [parse_duration(r) for r in _RANGE.findall(expr)]
        offsets = [parse_duration(o) for o in _OFFSET.findall(expr)]
        if ranges or offsets:
            # Per selector, its range plus its own offset (x[30d] and x offset 30d read 30d back, not 60d); an
            # instant selector reads the 5m lookback delta before its offset.
            reads = [(parse_duration(r) if r else 300.0) + (parse_duration(o) if o else 0.0)
                     for r, o in _READ.findall(expr)]
            need = max(reads, default=max(offsets, default=0.0) + 300.0)  # `up offset 1h`: no braces to anchor
            if need > lookback[0]:
                lookback = (need, f"{name} reads {format_duration(need)} back")
        for r in ranges:
            if shortest_range is None or r < shortest_range[0]:
                shortest_range = (r, name)
        if "interval" in group:
            continue  # the group's own interval overrides evaluationInterval
        eval_bounds += [(r, f"{name} records a {format_duration(r)} window") for r in ranges]
        if rule.get("for"):
            f = parse_duration(str(rule["for"]))
            eval_bounds.append((f / EVALUATIONS_PER_FOR, f"{name} has for: {rule['for']} "
                                                         f"(>= {EVALUATIONS_PER_FOR} evaluations)"))
    if shortest_range is None or not eval_bounds:
        raise ValueError("the rules read no range windows: nothing to derive")
    margin = parse_duration(RETENTION_MARGIN)
    max_eval = min(eval_bounds)
    return Requirements(
        min_retention=lookback[0] + margin,
        retention_why=f"{lookback[1]} + {RETENTION_MARGIN} margin",
        max_scrape=shortest_range[0] / SAMPLES_PER_RANGE,
        scrape_why=(f"{shortest_range[1]} uses a {format_duration(shortest_range[0])} range, "
                    f"which needs >= {SAMPLES_PER_RANGE} scrapes"),
        max_evaluation=max_eval[0],
        evaluation_why=max_eval[1],
    )


def shipped_requirements(slo_file: Path | str = SLO_FILE, symptoms_file: Path | str = SYMPTOMS_FILE) -> Requirements:
    slos = load_slos(slo_file)
    return derive_requirements(all_groups(slos, symptoms=load_symptoms(slos, symptoms_file)))


def read_values(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableValues(f"{path}: cannot read: {exc}") from exc
    try:
        doc = yamldoc.safe_load(text)
    except yaml.YAMLError as exc:
        raise UnreadableValues(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if doc is None:
        return {}  # an empty values file: every chart default applies
    if not isinstance(doc, Mapping):
        raise UnreadableValues(f"{path}: a Helm values file is a YAML mapping, got {type(doc).__name__}")
    return doc


def _spec(values: Mapping[str, Any], problems: list[str]) -> Mapping[str, Any]:
    node: Any = values
    for i, key in enumerate(SPEC_PATH.split(".")):
        node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            return {}
        if not isinstance(node, Mapping):
            problems.append(f"{'.'.join(SPEC_PATH.split('.')[:i + 1])} must be a mapping, got {node!r}")
            return {}
    found: Mapping[str, Any] = node
    return found


def _setting(spec: Mapping[str, Any], key: str, problems: list[str]) -> tuple[float | None, str]:
    raw = spec.get(key)
    if raw is None or raw == "":
        text, source = CHART_DEFAULTS[key], "chart default"
    elif isinstance(raw, str):
        text, source = raw, "set"
    else:
        problems.append(f"{SPEC_PATH}.{key}: {raw!r} must be a duration string such as '30s' or '35d'")
        return None, ""
    try:
        return parse_duration(text), f"{text} ({source})"
    except ValueError as exc:
        problems.append(f"{SPEC_PATH}.{key}: {exc}")
        return None, ""


def check(values: Mapping[str, Any], req: Requirements) -> tuple[list[str], list[str]]:
    """(report lines, problems) for a parsed values mapping."""
    problems: list[str] = []
    spec = _spec(values, problems)
    lines: list[str] = []
    bounds = (("retention", ">=", req.min_retention, req.retention_why),
              ("scrapeInterval", "<=", req.max_scrape, req.scrape_why),
              ("evaluationInterval", "<=", req.max_evaluation, req.evaluation_why))
    for key, op, bound, why in bounds:
        value, shown = _setting(spec, key, problems)
        if value is None:
            continue
        ok = value >= bound if op == ">=" else value <= bound
        lines.append(f"{'ok  ' if ok else 'FAIL'} {SPEC_PATH}.{key} = {shown}: needs {op} "
                     f"{format_duration(bound)} ({why})")
        if not ok:
            problems.append(f"{SPEC_PATH}.{key} = {shown} must be {op} {format_duration(bound)}: {why}")
    size = spec.get("retentionSize")
    if size not in (None, ""):
        if not isinstance(size, str) or not _SIZE.match(size):
            problems.append(f"{SPEC_PATH}.retentionSize: {size!r} is not a size like 50GB or 100GiB")
        else:
            lines.append(f"note {SPEC_PATH}.retentionSize = {size}: the oldest blocks go once the TSDB passes "
                         f"it, whatever the retention; size the volume to hold {format_duration(req.min_retention)}")
    return lines, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("values", type=Path, help="kube-prometheus-stack values file")
    parser.add_argument("--slos", type=Path, default=SLO_FILE, help="SLO definitions (default rules/slos.yaml)")
    parser.add_argument("--symptoms", type=Path, default=SYMPTOMS_FILE,
                        help="symptom definitions (default rules/symptoms.yaml)")
    args = parser.parse_args(argv)
    try:
        values = read_values(args.values)
    except UnreadableValues as exc:
        print(f"check-prometheus-values: {exc}", file=sys.stderr)
        return 2
    try:
        req = shipped_requirements(args.slos, args.symptoms)
    except (OSError, ValueError) as exc:
        print(f"check-prometheus-values: cannot derive the requirements: {exc}", file=sys.stderr)
        return 2
    lines, problems = check(values, req)
    print("\n".join(lines))
    if problems:
        print(f"\n{len(problems)} problem(s) in {args.values}:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"\n{args.values}: Prometheus keeps and samples what the shipped rules read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
