"""Plan-time validation: the limits and consistency rules AWS and Kubernetes enforce that mocks do not.

Rules are functions `rule(plan) -> Iterable[Violation]` registered with `@rule`. Each concern keeps its rules
in its own module of this package (foundation.py, kubernetes.py, edge.py, ...); `validate()` imports them all,
so adding a module is enough to add its rules.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator

from infra.core.plan import Plan, PlannedResource, Violation

__all__ = ["RULES", "Plan", "PlannedResource", "Rule", "Violation", "rule", "validate", "violations"]


Rule = Callable[[Plan], Iterable[Violation]]
RULES: dict[str, Rule] = {}


def rule(fn: Rule) -> Rule:
    """Register a validation rule under its function name."""
    RULES[fn.__name__] = fn
    return fn


def _load_rule_modules() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def validate(plan: Plan) -> list[Violation]:
    _load_rule_modules()
    out: list[Violation] = []
    for check in RULES.values():
        out.extend(check(plan))
    return out


def violations(rule_name: str, items: Iterable[tuple[str, str]]) -> Iterator[Violation]:
    for resource, message in items:
        yield Violation(rule_name, resource, message)
