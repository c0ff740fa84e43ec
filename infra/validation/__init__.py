"""Plan-time validation: the limits and consistency rules AWS and Kubernetes enforce that mocks do not.

Rules are functions `rule(plan) -> Iterable[Violation]` registered with `@rule`. Each concern keeps its rules
in its own module of this package (foundation.py, kubernetes.py, edge.py, ...); `validate()` imports them all,
so adding a module is enough to add its rules.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from infra.config import StackConfig


@dataclass(frozen=True)
class PlannedResource:
    """One registered resource, as the engine would see it."""

    urn: str
    type: str
    name: str
    parent: str | None
    region: str | None
    inputs: dict[str, Any]
    custom: bool
    provider: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str, default: Any = None) -> Any:
        """Nested input by dotted path: `plan_res.get("metadata.name")`."""
        node: Any = self.inputs
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def label(self) -> str:
        return f"{self.type} {self.name}"


@dataclass
class Plan:
    resources: list[PlannedResource]
    config: StackConfig
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, *tokens: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type in tokens]

    def with_prefix(self, prefix: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type.startswith(prefix)]

    def children_of(self, component: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.parent == component]

    def by_urn(self, urn: str) -> PlannedResource | None:
        return next((r for r in self.resources if r.urn == urn), None)


@dataclass(frozen=True)
class Violation:
    rule: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.resource}: {self.message}"


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
