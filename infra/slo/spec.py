"""SLO definitions: the model, the loader of `rules/slos.yaml` (OpenSLO v1), and the names every consumer shares.

This module is the contract between the alerting rules (`infra/slo/rules.py` generates them) and the Grafana SLO
dashboards: both build their PromQL from `load_slos()`, `BURN_RATE_TIERS` and the metric-name functions below,
so a dashboard can never plot a recording rule that does not exist.

The definitions are OpenSLO v1 `kind: SLO` documents restricted to what can be compiled to correct PromQL:
ratio SLIs over counters given as plain selectors (the generator counts each window's events itself,
`window_count`, so every recorded window ratio is a ratio of summed counts), an `Occurrences` budget over a rolling
window, and, for latency, a histogram bucket that akidb-rest really exports. Anything else is refused with one
message per problem (`SloSpecError`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import yaml

from infra.core import yamldoc
from infra.core.paths import RULES_DIR
from infra.slo.runbooks import load_runbooks

SLO_FILE = RULES_DIR / "slos.yaml"

ANNOTATION_BUCKETS = "akidb.io/histogram-buckets"
ANNOTATION_MIN_EVENTS = "akidb.io/min-events"
ANNOTATION_RUNBOOK = "akidb.io/runbook"
# "true": the rules also record the SLO as Sloth does (its sloth_* labels and metadata series), so Sloth's Grafana
# dashboards work on it (infra/slo/rules.py, sloth_recordings). An annotation, not a file-level switch: every
# document stays a plain OpenSLO v1 SLO that other OpenSLO tools read and the export round-trips.
ANNOTATION_SLOTH = "akidb.io/sloth-compatible"
KNOWN_ANNOTATIONS = (ANNOTATION_BUCKETS, ANNOTATION_MIN_EVENTS, ANNOTATION_RUNBOOK, ANNOTATION_SLOTH)

SliKind = Literal["availability", "latency"]
Severity = Literal["P0", "P1", "P2"]

_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"^\s*({_METRIC})\s*\{{(.*)\}}\s*$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_RUNBOOK = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class SloSpecError(ValueError):
    """The SLO definitions are unusable; `problems` lists every one of them."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid SLO definitions:\n  - " + "\n  - ".join(self.problems))


# --------------------------------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------------------------------


def duration_seconds(text: str) -> int:
    """'5m' -> 300. Only single-unit Prometheus durations, which is all the rules use."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h, 3d")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


# --------------------------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """A parsed instant-vector selector `metric{label op "value", ...}` (the only query form accepted)."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...]

    @classmethod
    def parse(cls, text: str) -> Selector:
        m = _SELECTOR.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a plain selector metric{{label=\"value\",...}}")
        body, pos, found = m.group(2), 0, []
        while pos < len(body.rstrip()):
            mm = _MATCHER.match(body, pos)
            if not mm:
                raise ValueError(f"{text!r}: cannot read label matchers from {body[pos:]!r}")
            found.append((mm.group(1), mm.group(2), mm.group(3)))
            pos = mm.end()
        return cls(m.group(1), tuple(found))

    def label(self, name: str) -> str | None:
        """Value of an equality matcher on `name`, if any."""
        return next((v for n, op, v in self.matchers if n == name and op == "="), None)

    def without(self, name: str) -> Selector:
        return Selector(self.metric, tuple(x for x in self.matchers if x[0] != name))

    def __str__(self) -> str:
        return self.metric + "{" + ",".join(f'{n}{op}"{v}"' for n, op, v in self.matchers) + "}"


def prometheus_float(value: float) -> str:
    """How Prometheus client libraries write a bucket bound in `le` (Go FormatFloat 'f', -1): 0.03, 1, 2.5."""
    if math.isinf(value):
        return "+Inf"
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.17f}".rstrip("0")
    return text[:-2] if text.endswith(".0") else text


# --------------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------------


REFERENCE_PERIOD_DAYS = 30  # the budget shares below are of a 30-day budget (the period of both SLOs)


@dataclass(frozen=True)
class BurnRateTier:
    """One multiwindow burn-rate alert: fires when BOTH windows burn faster than `burn_rate` x the budget rate.

    The tier is defined by the share of the 30-day budget its long window must have burned before it fires
    (the SRE workbook's way of reading its table): burn_rate = budget_share x period / long_window.
    """

    name: str
    severity: Severity
    long_window: str
    short_window: str
    budget_share: float
    why: str

    @property
    def burn_rate(self) -> float:
        return round(self.budget_share * REFERENCE_PERIOD_DAYS * 86400 / duration_seconds(self.long_window), 6)

    def budget_consumed(self, period_days: int) -> float:
        """Share of the period's budget burned when the long window alone reaches the threshold."""
        return self.burn_rate * duration_seconds(self.long_window) / (period_days * 86400)


# Budget arithmetic (Google SRE Workbook, "Alerting on SLOs", https://sre.google/workbook/alerting-on-slos/): a
# tier fires once its long window has burned `budget_share` of the 30-day budget, whatever the error ratio e, and
# that takes (budget_share x period x (1 - SLO)) / e of a sudden incident.
# - page-quick needs 0.5% of the budget (10m at 21.6x): a self-resolving burst that spends less (5% errors for
#   2 minutes is 0.46%) never pages, whatever its shape, because no window can hold more than what was spent.
#   A full outage spends 0.5% in 0.5% x 43200 min x 0.0005 = 6.5 s (pages at the first evaluation); 5% errors
#   in 2.2 min; 5% of requests slower than 30 ms (latency, 99.9%) in 4.3 min: all under the 5-minute goal.
#   (The former 10m/14.4x tier fired at 0.33%: a 2-minute 5% blip paged.)
# - the other tiers are the SRE workbook's (2%, 5%, 10%) and Sloth's 1d ticket (10%); all far above 0.5%.
# Paging tiers keep short windows of at most 5m so a page resolves within minutes of recovery (the workbook's
# 30m short window would keep paging half an hour after the incident).
BURN_RATE_TIERS: tuple[BurnRateTier, ...] = (
    BurnRateTier("page-quick", "P0", "10m", "2m", 0.005,
                 "a hard outage: 0.5% of a 30-day budget within 10 minutes; shorter bursts that spend less "
                 "never page"),
    BurnRateTier("page-fast", "P0", "1h", "5m", 0.02, "workbook fast burn: 2% of the budget in an hour"),
    BurnRateTier("page-slow", "P1", "6h", "5m", 0.05, "workbook medium burn: 5% of the budget in six hours"),
    BurnRateTier("ticket-fast", "P2", "1d", "2h", 0.10, "Sloth's ticket: 10% of the budget in a day"),
    BurnRateTier("ticket-slow", "P2", "3d", "6h", 0.10, "workbook slow burn: the budget will run out"),
)
PAGE_BURST_BUDGET_SHARE = min(t.budget_share for t in BURN_RATE_TIERS if t.severity in ("P0", "P1"))


@dataclass(frozen=True)
class Slo:
    """One SLO. `error_query(w)` / `total_query(w)` / `error_ratio_query(w)` give the SLI's PromQL over window w."""

    name: str
    service: str
    kind: SliKind
    objective: float
    window_days: int
    description: str
    display_name: str
    total_selector: Selector
    bad_selector: Selector | None = None  # availability: counter of bad events
    good_selector: Selector | None = None  # latency: the bucket counting good events
    threshold_seconds: float | None = None  # latency only
    histogram_buckets: tuple[float, ...] = ()
    min_events: int = 1000
    runbook: str = ""
    indicator_name: str = ""
    objective_name: str = ""
    sloth_compatible: bool = False  # annotation akidb.io/sloth-compatible

    @property
    def error_budget(self) -> float:
        return 1.0 - self.objective

    @property
    def labels(self) -> dict[str, str]:
        return {"service": self.service, "slo": self.name}

    def reaches(self, tier: BurnRateTier) -> bool:
        """Whether any error ratio can burn at the tier's rate: at a 90% target, 21.6x the budget is 216% errors,
        so the 10-minute page can never fire (its rule would be dead code no test can make fire)."""
        return tier.burn_rate * self.error_budget < 1

    @property
    def window(self) -> str:
        return f"{self.window_days}d"

    def total_query(self, window: str = "$__rate_interval") -> str:
        """Rate of all events (requests per second)."""
        return f"sum(rate({self.total_selector}[{window}]))"

    def error_query(self, window: str = "$__rate_interval") -> str:
        """Rate of bad events. Availability: `or vector(0)` because no 5xx series exists until the first 5xx."""
        if self.kind == "availability":
            return f"(sum(rate({self.bad_selector}[{window}])) or vector(0))"
        return f"({self.total_query(window)} - sum(rate({self.good_selector}[{window}])))"

    def error_ratio_query(self, window: str = "$__rate_interval") -> str:
        """Bad / total as a ratio of summed rates; no sample (never NaN) when there was no traffic.

        Latency: a missing bucket gives no sample (and the missing-bucket alert), never a 100% error ratio.
        """
        guarded_total = f"({self.total_query(window)} > 0)"
        if self.kind == "availability":
            return f"{self.error_query(window)} / {guarded_total}"
        good = f"sum(rate({self.good_selector}[{window}]))"
        return f"clamp_min(1 - {good} / {guarded_total}, 0)"

    def window_error_ratio_query(self, window: str) -> str:
        """Bad / total over `window` as the rules record it: ratios of counted events (`window_count`), not of
        extrapolated rates, so a burst inside the window counts what it spent, whatever the scrape timing."""
        total = f"({window_count(self.total_selector, window)} > 0)"
        if self.kind == "availability":
            assert self.bad_selector is not None
            return f"({window_count(self.bad_selector, window)} or vector(0))\n/ {total}"
        assert self.good_selector is not None
        return f"clamp_min(1 - {window_count(self.good_selector, window)}\n/ {total}, 0)"


# A series with no sample in this long before a window is new in it (a status a client library creates at its first
# use); one seen in it, absent at the window's start, was in a gap (a failed scrape writes a stale marker).
NEW_SERIES_LOOKBACK = "1h"


def window_count(selector: Selector, window: str) -> str:
    """Events counted by `selector`'s counters over `window`, summed, without rate()'s extrapolation.

    rate() extrapolates each series from its own samples (Prometheus, "rate()", and its extrapolatedRate: up to
    1.1 x the scrape interval past the last sample and half an interval before the first), and never counts a new
    series' first sample: a 2-minute burst on a status series new at the burst, scraped every 30 s, reads from
    -25% to +37% of what it spent, wider than any guard band. Counted instead, per series:
    - present at both ends: the difference of its samples at the window's ends (a negative one is a reset);
    - new in the window (no sample in NEW_SERIES_LOOKBACK before it): its value, all of it spent in the window
      (client libraries start a counter at 0 when they create it);
    - anything else (a reset, a series gone or in a gap at an end): increase(), which handles resets.
    """
    x = str(selector)
    return (f"sum(\n  (({x} - {x} offset {window}) >= 0)\n"
            f"  or ({x} unless present_over_time({x}[{NEW_SERIES_LOOKBACK}] offset {window}))\n"
            f"  or increase({x}[{window}])\n)")


# --------------------------------------------------------------------------------------------------------------
# Names of the recorded series (labels service and slo on each)
# --------------------------------------------------------------------------------------------------------------


def sli_error_ratio_metric(window: str) -> str:
    """Error ratio of an SLI over `window`, e.g. slo:sli_error:ratio_rate1h."""
    duration_seconds(window)
    return f"slo:sli_error:ratio_rate{window}"


def sli_total_rate_metric(window: str) -> str:
    """Requests per second over `window` (the low-traffic guard and the dashboards' traffic panels)."""
    duration_seconds(window)
    return f"slo:sli_total:rate{window}"


def objective_metric() -> str:
    """The objective as a series (e.g. 0.9995), so dashboards and rules read it from the definition."""
    return "slo:objective:ratio"


def error_budget_remaining_metric() -> str:
    """Share of the period's error budget left (1 = untouched, 0 = spent, negative = overspent)."""
    return "slo:error_budget_remaining:ratio"


def windows(slos: Iterable[Slo] = ()) -> list[str]:
    """Every window a rule records, shortest first: tier windows plus each SLO's period."""
    found = {w for t in BURN_RATE_TIERS for w in (t.long_window, t.short_window)}
    found |= {s.window for s in slos}
    return sorted(found, key=duration_seconds)


# --------------------------------------------------------------------------------------------------------------
# Loading (OpenSLO v1 -> Slo) and the way back (Slo -> OpenSLO v1)
# --------------------------------------------------------------------------------------------------------------


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _query(ratio: Mapping[str, Any], key: str) -> str | None:
    src = _get(ratio, f"{key}.metricSource")
    if not isinstance(src, Mapping):
        return None
    return _get(src, "spec.query") if src.get("type") == "Prometheus" else None


def _parse_buckets(text: Any, where: str, problems: list[str]) -> tuple[float, ...]:
    try:
        buckets = tuple(float(b) for b in str(text).split(","))
    except ValueError:
        problems.append(f"{where}: annotation {ANNOTATION_BUCKETS}={text!r} is not a comma-separated list of numbers")
        return ()
    if list(buckets) != sorted(set(buckets)):
        problems.append(f"{where}: annotation {ANNOTATION_BUCKETS} must list distinct buckets in increasing order")
    return buckets


# What the loader maps, per level of the document: any other key is refused by name (never silently dropped).
_MAPPED_KEYS = {
    "": ("apiVersion", "kind", "metadata", "spec"),
    "metadata": ("name", "displayName", "annotations"),
    "spec": ("description", "service", "budgetingMethod", "timeWindow", "indicator", "objectives"),
    "spec.indicator": ("metadata", "spec"),
    "spec.indicator.spec": ("ratioMetric",),
    "spec.indicator.spec.ratioMetric": ("counter", "good", "bad", "total"),
    "spec.objectives[0]": ("displayName", "target", "op", "value"),
}


def _unmapped_keys(doc: Mapping[str, Any], where: str, p: list[str]) -> None:
    """Each key OpenSLO allows but the compiler cannot map (alertPolicies, thresholdMetric, timeSliceTarget...)."""
    objectives = _get(doc, "spec.objectives")
    for level, known in _MAPPED_KEYS.items():
        node = (objectives[0] if isinstance(objectives, list) and objectives else None) \
            if level == "spec.objectives[0]" else (_get(doc, level) if level else doc)
        if not isinstance(node, Mapping):
            continue
        for key in node:
            if key not in known:
                p.append(f"{where}: {(level + '.') if level else ''}{key} cannot be mapped to Prometheus rules "
                         f"(mapped here: {', '.join(known)})")


def _check_header(doc: Mapping[str, Any], name: Any, where: str, p: list[str]) -> Mapping[str, Any]:
    """apiVersion/kind, metadata.name and the akidb.io annotations; returns the annotations."""
    if doc.get("apiVersion") != "openslo/v1" or doc.get("kind") != "SLO":
        p.append(f"{where}: apiVersion/kind must be openslo/v1 / SLO, got "
                 f"{doc.get('apiVersion')!r} / {doc.get('kind')!r}")
    if not isinstance(name, str) or not _NAME.match(name):
        p.append(f"{where}: metadata.name must match {_NAME.pattern} (it becomes the `slo` label)")
    annotations = _get(doc, "metadata.annotations") or {}
    if not isinstance(annotations, Mapping):
        p.append(f"{where}: metadata.annotations must be a mapping")
        return {}
    for key in annotations:
        if str(key).startswith("akidb.io/") and key not in KNOWN_ANNOTATIONS:
            p.append(f"{where}: unknown annotation {key!r} (known: {', '.join(KNOWN_ANNOTATIONS)})")
    return annotations


def _window_days(spec: Mapping[str, Any], where: str, p: list[str]) -> int:
    """One rolling window of 1d..90d -> its days (0 after a problem)."""
    if spec.get("budgetingMethod") != "Occurrences":
        p.append(f"{where}: spec.budgetingMethod must be Occurrences (ratio of requests), "
                 f"got {spec.get('budgetingMethod')!r}")
    tw = spec.get("timeWindow") or []
    if not (isinstance(tw, list) and len(tw) == 1 and isinstance(tw[0], Mapping) and tw[0].get("isRolling")):
        p.append(f"{where}: spec.timeWindow must be one rolling window")
        return 0
    m = re.match(r"^(\d+)d$", str(tw[0].get("duration", "")))
    if not m or not 1 <= int(m.group(1)) <= 90:
        p.append(f"{where}: spec.timeWindow[0].duration must be 1d..90d, got {tw[0].get('duration')!r}")
        return 0
    return int(m.group(1))


def _objective(spec: Mapping[str, Any], where: str, p: list[str]) -> tuple[Mapping[str, Any], float]:
    """The one objective and its target in [0.5, 1) (0.0 after a problem)."""
    objectives = spec.get("objectives") or []
    objective = objectives[0] if isinstance(objectives, list) and objectives and isinstance(
        objectives[0], Mapping) else {}
    target = objective.get("target") if isinstance(objectives, list) and len(objectives) == 1 else None
    if not isinstance(target, (int, float)) or isinstance(target, bool) or not 0.5 <= target < 1:
        p.append(f"{where}: spec.objectives must hold exactly one objective with a target in [0.5, 1), "
                 f"got {target!r}")
        return objective, 0.0
    return objective, float(target)


def _selectors(ratio: Mapping[str, Any], where: str, p: list[str]) -> dict[str, Selector]:
    """ratioMetric's good/bad/total Prometheus queries, each a plain selector."""
    sel: dict[str, Selector] = {}
    for key in ("good", "bad", "total"):
        if key not in ratio:
            continue
        q = _query(ratio, key)
        if q is None:
            p.append(f"{where}: ratioMetric.{key} needs a metricSource of type Prometheus with spec.query")
            continue
        try:
            sel[key] = Selector.parse(q)
        except ValueError as e:
            p.append(f"{where}: ratioMetric.{key}: {e}")
    if "total" not in ratio or ("good" in ratio) == ("bad" in ratio):
        p.append(f"{where}: ratioMetric needs total and exactly one of good / bad")
    return sel


def _min_events(annotations: Mapping[str, Any], where: str, p: list[str]) -> int:
    try:
        min_events = int(annotations.get(ANNOTATION_MIN_EVENTS, 1000))
        if min_events < 1:
            raise ValueError
    except (TypeError, ValueError):
        p.append(f"{where}: annotation {ANNOTATION_MIN_EVENTS} must be a positive integer")
        return 0
    return min_events


def _sloth_compatible(annotations: Mapping[str, Any], where: str, p: list[str]) -> bool:
    value = str(annotations.get(ANNOTATION_SLOTH, "false"))
    if value not in ("true", "false"):
        p.append(f"{where}: annotation {ANNOTATION_SLOTH} must be \"true\" or \"false\", got {value!r}")
    return value == "true"


def _runbook(annotations: Mapping[str, Any], where: str, p: list[str]) -> str:
    runbook = str(annotations.get(ANNOTATION_RUNBOOK, ""))
    if not _RUNBOOK.match(runbook):
        p.append(f"{where}: annotation {ANNOTATION_RUNBOOK} must be a runbook id matching {_RUNBOOK.pattern}")
    elif runbook not in (catalogue := load_runbooks()):
        # Found here, not when an incident names a runbook nobody wrote.
        p.append(f"{where}: annotation {ANNOTATION_RUNBOOK}={runbook!r} is not in rules/runbooks.yaml "
                 f"(known: {', '.join(catalogue)})")
    return runbook


def slo_from_openslo(doc: Any, index: int = 0) -> tuple[Slo | None, list[str]]:
    """One OpenSLO v1 SLO document -> (Slo, []) or (None, problems), each problem naming its field."""
    if not isinstance(doc, Mapping):
        return None, [f"document {index}: expected a mapping, got {type(doc).__name__}"]
    name = _get(doc, "metadata.name")
    where = f"document {index} ({name or 'unnamed'})"
    p: list[str] = []
    annotations = _check_header(doc, name, where, p)
    raw_spec = doc.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    service = spec.get("service")
    if not isinstance(service, str) or not _NAME.match(service):
        p.append(f"{where}: spec.service must match {_NAME.pattern}")
    window_days = _window_days(spec, where, p)
    objective, target = _objective(spec, where, p)
    _unmapped_keys(doc, where, p)
    ratio = _get(spec, "indicator.spec.ratioMetric")
    if not isinstance(ratio, Mapping) or ratio.get("counter") is not True:
        p.append(f"{where}: spec.indicator.spec.ratioMetric with counter: true is required")
        return None, p
    sel = _selectors(ratio, where, p)
    kind: SliKind = "availability"
    threshold: float | None = None
    buckets: tuple[float, ...] = ()
    good = sel.get("good")
    if good is not None:
        kind = "latency"
        threshold, buckets = _check_latency(good, sel.get("total"), objective, annotations, where, p)
    elif "op" in objective or "value" in objective:
        p.append(f"{where}: objective op/value describe a latency threshold; a bad/total SLI has none")
    min_events = _min_events(annotations, where, p)
    runbook = _runbook(annotations, where, p)
    sloth = _sloth_compatible(annotations, where, p)
    if p:
        return None, p
    assert isinstance(service, str) and isinstance(name, str)  # no problem: the checks above held
    return Slo(
        name=name, service=service, kind=kind, objective=target, window_days=window_days,
        description=str(spec.get("description", "")), display_name=str(_get(doc, "metadata.displayName") or name),
        total_selector=sel["total"], bad_selector=sel.get("bad"), good_selector=good,
        threshold_seconds=threshold, histogram_buckets=buckets, min_events=min_events, runbook=runbook,
        indicator_name=str(_get(spec, "indicator.metadata.name") or f"{name}-sli"),
        objective_name=str(objective.get("displayName", "")), sloth_compatible=sloth,
    ), []


def _check_latency(good: Selector, total: Selector | None, objective: Mapping[str, Any],
                   annotations: Mapping[str, Any], where: str, p: list[str]) -> tuple[float | None, tuple[float, ...]]:
    """A latency SLI counts good events with one histogram bucket: refuse a threshold that is not a bucket."""
    if ANNOTATION_BUCKETS not in annotations:
        p.append(f"{where}: a latency SLO needs annotation {ANNOTATION_BUCKETS} (the buckets akidb-rest exports)")
        return None, ()
    buckets = _parse_buckets(annotations[ANNOTATION_BUCKETS], where, p)
    names = ", ".join(prometheus_float(b) for b in buckets)
    le = good.label("le")
    if not good.metric.endswith("_bucket") or le is None:
        p.append(f"{where}: the good selector must be a histogram _bucket series with an le=\"...\" matcher")
        return None, buckets
    try:
        threshold = float(le)
    except ValueError:
        p.append(f"{where}: le={le!r} is not a number")
        return None, buckets
    if threshold not in buckets:
        p.append(f"{where}: threshold {le} s is not a bucket of {good.metric} (buckets: {names}); "
                 f"with no such bucket the SLI evaluates to nothing")
    elif le != prometheus_float(threshold):
        p.append(f"{where}: le=\"{le}\" never matches: client libraries export that bucket as "
                 f"le=\"{prometheus_float(threshold)}\"")
    value = objective.get("value")
    if objective.get("op") != "lte" or not isinstance(value, (int, float)) or float(value) != threshold:
        p.append(f"{where}: the objective must state op: lte and value: {le} (the bucket the good selector counts)")
    expected_total = good.metric[: -len("_bucket")] + "_count"
    if total is not None and (total.metric != expected_total or total.matchers != good.without("le").matchers):
        p.append(f"{where}: total must be {Selector(expected_total, good.without('le').matchers)} "
                 f"(the same histogram and labels as the good bucket)")
    return threshold, buckets


def parse_slos(text: str, source: str = "slos.yaml") -> list[Slo]:
    """Parse the YAML text of the definitions; raise SloSpecError with every problem."""
    try:
        docs = [d for d in yamldoc.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise SloSpecError([f"{source}: not valid YAML: {e}"]) from None
    problems: list[str] = []
    slos: list[Slo] = []
    for i, doc in enumerate(docs):
        slo, p = slo_from_openslo(doc, i)
        problems += p
        if slo:
            slos.append(slo)
    if not docs:
        problems.append(f"{source}: no SLO documents")
    keys = [(s.service, s.name) for s in slos]
    for k in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"{source}: SLO {k[1]!r} of service {k[0]!r} is defined more than once")
    if problems:
        raise SloSpecError(problems)
    return slos


def load_slos(path: Path | str = SLO_FILE) -> list[Slo]:
    """The SLOs of `rules/slos.yaml` (or `path`), validated."""
    path = Path(path)
    return parse_slos(path.read_text(encoding="utf-8"), str(path))


def to_openslo(slo: Slo) -> dict[str, Any]:
    """Slo -> the OpenSLO v1 document it was loaded from (round-trip tested)."""

    def source(sel: Selector) -> dict[str, Any]:
        return {"metricSource": {"type": "Prometheus", "spec": {"query": str(sel)}}}

    ratio: dict[str, Any] = {"counter": True}
    annotations: dict[str, str] = {}
    objective: dict[str, Any] = {"displayName": slo.objective_name, "target": slo.objective}
    if slo.kind == "latency":
        assert slo.good_selector is not None and slo.threshold_seconds is not None
        ratio["good"] = source(slo.good_selector)
        annotations[ANNOTATION_BUCKETS] = ",".join(prometheus_float(b) for b in slo.histogram_buckets)
        objective |= {"op": "lte", "value": slo.threshold_seconds}
    else:
        assert slo.bad_selector is not None
        ratio["bad"] = source(slo.bad_selector)
    ratio["total"] = source(slo.total_selector)
    annotations |= {ANNOTATION_MIN_EVENTS: str(slo.min_events), ANNOTATION_RUNBOOK: slo.runbook}
    if slo.sloth_compatible:
        annotations[ANNOTATION_SLOTH] = "true"
    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": slo.name, "displayName": slo.display_name, "annotations": annotations},
        "spec": {
            "description": slo.description,
            "service": slo.service,
            "budgetingMethod": "Occurrences",
            "timeWindow": [{"duration": slo.window, "isRolling": True}],
            "indicator": {"metadata": {"name": slo.indicator_name}, "spec": {"ratioMetric": ratio}},
            "objectives": [objective],
        },
    }


# Alert names and the Grafana dashboard alert links open (the dashboards component uses the same uid).
BURN_ALERT = "SLOErrorBudgetBurn"
ABSENT_ALERT = "SLOMetricAbsent"
BUCKET_ALERT = "SLOLatencyBucketMissing"
HEARTBEAT_ALERT = "SLOAlertingHeartbeat"
SLO_DASHBOARD_UID = "akidb-slo"
GOLDEN_SIGNALS_UID = "akidb-golden-signals"  # the Grafana board of traffic, errors, latency and saturation


@dataclass(frozen=True)
class LinkSettings:
    """What differs per stack in the generated text: link bases and receivers' endpoints."""

    runbook_base_url: str = "https://runbooks.akidb.internal"
    grafana_base_url: str = "https://grafana.akidb.internal"
    ticket_webhook_url: str = "https://tickets.akidb.internal/alertmanager"
    heartbeat_webhook_url: str = "https://heartbeat.akidb.internal/ping"
    chat_channel: str = "#akidb-alerts"

    def runbook(self, runbook_id: str) -> str:
        return f"{self.runbook_base_url.rstrip('/')}/{runbook_id}"

    def dashboard(self, uid: str, **variables: str) -> str:
        query = "&".join(f"var-{k}={v}" for k, v in variables.items())
        return f"{self.grafana_base_url.rstrip('/')}/d/{uid}/" + (f"?{query}" if query else "")


DEFAULT_LINKS = LinkSettings()
# A CloudWatch dashboard in the console (the link form of AWS's "Share a CloudWatch dashboard").
CLOUDWATCH_DASHBOARD_URL = "https://console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"


# ... and what reads one back: that form, a regional console host (which must agree with region=), or the older
# `#dashboards:name=` fragment.
CLOUDWATCH_DASHBOARD_LINK = re.compile(r"^https://(?:([a-z0-9-]+)\.)?console\.aws\.amazon\.com/cloudwatch/home"
                                       r"\?region=([a-z0-9-]+)#dashboards(?:/dashboard/|:name=)([^&?/#]+)$")


def cloudwatch_dashboard_url(region: str, name: str) -> str:
    return CLOUDWATCH_DASHBOARD_URL.format(region=region, name=name)


def cloudwatch_dashboard_of(url: str) -> tuple[str, str] | None:
    """(region, name) of a CloudWatch dashboard's console URL; None for any other URL."""
    found = CLOUDWATCH_DASHBOARD_LINK.match(url)
    if found is None or found.group(1) not in (None, found.group(2)):
        return None
    return found.group(2), unquote(found.group(3))


# A Logs Insights query in the console, its text and log groups filled in. AWS documents no format for this link;
# the console's own encoding, as worked out in the public Q&A "Is there a way to generate the AWS Console URLs for
# CloudWatch Log Group filters?" (stackoverflow.com/questions/60796991): queryDetail is an object written
# `~(key~value~...)`, an array `(~v~v)`, a string `'` + its UTF-8 bytes as `*XX`; that text is JS-escape()d, then
# `?queryDetail=<it>` is percent-encoded once more with `$` for `%`.
LOGS_INSIGHTS_LINK = re.compile(r"^https://([a-z0-9-]+)\.console\.aws\.amazon\.com/cloudwatch/home"
                                r"\?region=([a-z0-9-]+)#logsV2:logs-insights([$A-Za-z0-9*._-]+)$")
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._")


def _console_string(value: str) -> str:
    return "'" + "".join(chr(b) if chr(b) in _PLAIN else f"*{b:02X}" for b in value.encode("utf-8"))


def _console_value(token: str) -> str:
    return unquote(token[1:].replace("*", "%")) if token.startswith("'") else token


def _percent(text: str, keep: str) -> str:
    """Percent-encode every character of ASCII `text` but letters, digits and `keep`."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in keep else f"%{ord(c):02X}" for c in text)


def logs_insights_url(region: str, log_groups: Sequence[str], text: str, start_s: int = 3600) -> str:
    """A console link opening Logs Insights on `log_groups` of `region` with the query `text`, over the last
    `start_s` seconds."""
    detail = (f"~(end~0~start~-{start_s}~timeType~'RELATIVE~unit~'seconds~editorString~{_console_string(text)}"
              f"~isLiveTail~false~source~({''.join('~' + _console_string(g) for g in log_groups)}))")
    escaped = _percent(detail, "@*_+-./")  # JavaScript's escape()
    fragment = _percent(f"?queryDetail={escaped}", "-_.!~*'()")  # encodeURIComponent()
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:logs-insights"
            + fragment.replace("%", "$"))


def logs_insights_of(url: str) -> tuple[str, tuple[str, ...], str] | None:
    """(region, log groups, query text) of a Logs Insights console link; None for any other URL or a link
    whose detail does not read back."""
    found = LOGS_INSIGHTS_LINK.match(url)
    if found is None or found.group(1) != found.group(2):
        return None
    fragment = unquote(unquote(found.group(3).replace("$", "%")))
    body = re.fullmatch(r"\?queryDetail=~\((.*)\)", fragment)
    if body is None:
        return None
    source = re.search(r"~source~\(((?:~'[^~()']*)*)\)", body.group(1))
    rest = body.group(1).replace(source.group(0), "") if source else body.group(1)
    tokens = rest.split("~")
    fields = dict(zip(tokens[::2], tokens[1::2], strict=False))
    if source is None or "editorString" not in fields:
        return None
    groups = tuple(_console_value(t) for t in source.group(1).split("~")[1:])
    return found.group(2), groups, _console_value(fields["editorString"])
