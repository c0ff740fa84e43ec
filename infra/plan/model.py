"""The planned stack as the engine would see it: what the offline plan records and the validation rules read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra.config import StackConfig

# How a plan records a value unknown at preview (a computed output, or an input built from one): the offline preview
# (infra/offline/mocks.py) and the policy pack at a `pulumi preview` (infra.validation.engine_plan) alike.
UNKNOWN = "[unknown]"
# ... and a secret input unknown at preview. A preview never shows a secret's value, known or not ([secret]), so
# what a reviewer reads of such an input is the same either way.
UNKNOWN_SECRET = "[unknown secret]"

# AWS services without regions: their resources take no `region`, their ARNs have an empty region field.
GLOBAL_AWS_PREFIXES = ("aws:iam/", "aws:cloudfront/", "aws:route53/", "aws:organizations/", "aws:shield/")


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
    # False for the engine's data (the policy pack): pulumi_policy hands secrets unwrapped, so a secret unknown at
    # preview reads as UNKNOWN there, not UNKNOWN_SECRET (pulumi_policy/deserialize.py); the offline plan keeps it.
    secrets_visible: bool = True

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
