"""Which alert rules no promtool test exercises both firing and not firing.

A rule is identified by its alert name and its static labels (the ten burn-rate rules share one name and differ
by `slo`, `tier` and `severity`). A test case covers a rule

- firing: an `alert_rule_test` for its name expects an alert whose labels include the rule's, or a
  `promql_expr_test` on `ALERTS{...}` expects a firing sample with them;
- not firing: an `alert_rule_test` for its name expects no alert with the rule's labels (promtool compares the
  whole set, so another rule's alert there still says this one is silent), or a `promql_expr_test` whose
  `ALERTS{...}` selector matches the rule's labels expects no sample with them.

An always-firing rule (`vector(1)`, the dead-man's switch) cannot be silent; it needs the firing case only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_ALERTS_SELECTOR = re.compile(r"ALERTS\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass(frozen=True)
class AlertRule:
    name: str
    labels: tuple[tuple[str, str], ...]
    always_fires: bool

    def __str__(self) -> str:
        return self.name + "{" + ",".join(f"{k}={v}" for k, v in self.labels) + "}"


def alert_rules(rule_docs: Iterable[Mapping[str, Any]]) -> list[AlertRule]:
    return [AlertRule(str(r["alert"]), tuple(sorted((str(k), str(v)) for k, v in r.get("labels", {}).items())),
                      str(r["expr"]).strip() == "vector(1)")
            for doc in rule_docs for g in doc.get("groups", []) for r in g["rules"] if "alert" in r]


def _matchers(text: str) -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in _MATCHER.finditer(text)]


def _matches(matchers: list[tuple[str, str, str]], labels: Mapping[str, str]) -> bool:
    for name, op, value in matchers:
        have = labels.get(name, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None, "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


def _sample_labels(text: str) -> dict[str, str]:
    body = text[text.index("{") + 1:text.rindex("}")] if "{" in text else ""
    return {n: v for n, _, v in _matchers(body)}


def _has(labels: Mapping[str, Any], rule: AlertRule) -> bool:
    return all(str(labels.get(k)) == v for k, v in rule.labels)


def coverage(rule: AlertRule, test_docs: Iterable[Mapping[str, Any]]) -> tuple[bool, bool]:
    """(firing covered, not-firing covered) of one rule."""
    fires = silent = False
    for doc in test_docs:
        for case in doc.get("tests", []):
            for check in case.get("alert_rule_test", []) or []:
                if check.get("alertname") != rule.name:
                    continue
                if any(_has(a.get("exp_labels", {}), rule) for a in check.get("exp_alerts") or []):
                    fires = True
                else:
                    silent = True
            for check in case.get("promql_expr_test", []) or []:
                for sel in _ALERTS_SELECTOR.findall(str(check.get("expr", ""))):
                    ms = _matchers(sel)
                    if not _matches(ms, {"alertname": rule.name, **dict(rule.labels), "alertstate": "firing"}):
                        continue
                    samples = [_sample_labels(str(s.get("labels", ""))) for s in check.get("exp_samples") or []]
                    if any(_has(s, rule) and s.get("alertstate", "firing") == "firing" for s in samples):
                        fires = True
                    elif not any(_has(s, rule) for s in samples):
                        silent = True
    return fires, silent


def untested(rule_docs: Iterable[Mapping[str, Any]], test_docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per alert rule lacking its firing or its not-firing case."""
    tests = list(test_docs)
    out = []
    for rule in alert_rules(rule_docs):
        fires, silent = coverage(rule, tests)
        missing = [what for what, ok in (("firing", fires), ("not firing", silent or rule.always_fires)) if not ok]
        if missing:
            out.append(f"{rule}: no promtool test of it {' or '.join(missing)}")
    return out
