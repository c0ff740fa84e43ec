"""Plan-time validation: the limits and consistency rules AWS and Kubernetes enforce that mocks do not.

Rules are functions `rule(plan) -> Iterable[Violation]` registered with `@rule`. Each concern keeps its rules
in its own module of this package (foundation.py, kubernetes.py, edge.py, ...); `validate()` imports them all,
so adding a module is enough to add its rules.

The same registry runs in the policy pack (policy/, `pulumi preview --policy-pack policy/`), in the pack's own
venv (policy/requirements.txt): a rule module may import, at module level, only what that venv has (the plan's
SDKs, pyyaml, kubernetes-validate), and a rule that needs more (the edge model's runtime) is marked with
`@plan_only(reason)` and runs in `make plan` only (docs/policy-pack.md; tests/test_policy_pack.py checks both).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from infra.config import StackConfig
from infra.core.archives import recorded_archive
from infra.plan.model import GLOBAL_AWS_PREFIXES, UNKNOWN, Plan, PlannedResource, Violation

__all__ = ["PLAN_ONLY", "RULES", "Plan", "PlannedResource", "Rule", "Violation", "engine_plan", "load_rules",
           "plan_only", "resource_region", "rule", "rule_description", "stack_of_urn", "validate", "violations"]


Rule = Callable[[Plan], Iterable[Violation]]
RULES: dict[str, Rule] = {}
# Rule name -> why it runs in `make plan` only, not in the policy pack (what it needs that the pack's venv lacks).
PLAN_ONLY: dict[str, str] = {}


def rule(fn: Rule) -> Rule:
    """Register a validation rule under its function name."""
    RULES[fn.__name__] = fn
    return fn


def plan_only(reason: str) -> Callable[[Rule], Rule]:
    """Mark a rule that needs more than the plan and the pack's venv (`reason` says what): `make plan` runs it, the
    policy pack lists it as not run. Its heavy imports stay inside the function, so its module still loads there."""
    if not reason.strip():
        raise ValueError("plan_only needs the reason the rule cannot run in the policy pack")

    def mark(fn: Rule) -> Rule:
        PLAN_ONLY[fn.__name__] = reason
        return fn

    return mark


def load_rules() -> dict[str, Rule]:
    """Import every rule module of this package; the registry both runners use (offline plan, policy pack)."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return RULES



def validate(plan: Plan) -> list[Violation]:
    load_rules()
    out: list[Violation] = []
    for check in RULES.values():
        out.extend(check(plan))
    return out


def violations(rule_name: str, items: Iterable[tuple[str, str]]) -> Iterator[Violation]:
    for resource, message in items:
        yield Violation(rule_name, resource, message)


# ---- runner glue: the same rules over the engine's resources (policy/__main__.py, `--policy-pack policy/`) ----

def rule_description(name: str) -> str:
    """The first line of a rule's docstring (what the policy pack shows for it)."""
    doc = (RULES[name].__doc__ or "").strip()
    return doc.splitlines()[0] if doc else f"plan-time rule {name} (infra/validation)"


def stack_of_urn(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> `<stack>`."""
    if not urn.startswith("urn:pulumi:") or "::" not in urn:
        raise ValueError(f"not a Pulumi URN: {urn!r} (expected urn:pulumi:<stack>::<project>::<type>::<name>)")
    return urn[len("urn:pulumi:"):].split("::", 1)[0]


def resource_region(type_token: str, inputs: Mapping[str, Any],
                    provider_inputs: Mapping[str, Any] | None) -> str | None:
    """Where an AWS resource lives: its own `region` input, else its provider's; None for global services."""
    if type_token.startswith("pulumi:providers:aws"):
        return inputs.get("region")
    if not type_token.startswith("aws:") or type_token.startswith(GLOBAL_AWS_PREFIXES):
        return None
    if inputs.get("region"):
        return str(inputs["region"])
    if provider_inputs is not None and provider_inputs.get("region"):
        return str(provider_inputs["region"])
    return None


def engine_plan(resources: Sequence[Any], config: StackConfig) -> Plan:
    """A Plan from the policy SDK's `PolicyResource`s (resource_type, props, urn, name, parent, provider).

    Props are what the engine has for the resource: inputs at preview, inputs and outputs after an update;
    values unknown at preview become UNKNOWN, as in the offline preview."""
    planned = []
    for res in resources:
        props = _known(res.props)
        parent = getattr(res, "parent", None)
        parent_name = None if parent is None or parent.resource_type == "pulumi:pulumi:Stack" else parent.name
        provider = getattr(res, "provider", None)
        custom = provider is not None or res.resource_type.startswith("pulumi:providers:")
        planned.append(PlannedResource(
            urn=res.urn, type=res.resource_type, name=res.name, parent=parent_name,
            region=resource_region(res.resource_type, props, _known(provider.props) if provider else None),
            inputs=props, custom=custom, provider=provider.name if provider else None, outputs=props))
    return Plan(resources=[r for r in planned if r.type != "pulumi:pulumi:Stack"], config=config,
                secrets_visible=False)


def _known(value: Any) -> Any:
    """A plain copy of the engine's props as the offline plan records them.

    The policy SDK hands maps and lists as its read-only proxies (pulumi_policy.proxy `_DictProxy`, `_ListProxy`:
    a Mapping and a Sequence, not dict and list), archives and assets as pulumi objects; the rules read plain
    dicts and lists (and json-dump some). A value unknown at preview (the proxy raises on it) becomes UNKNOWN, as
    in the offline preview: unknown is not absent (a topic's key still being created is no unencrypted topic)."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value  # most values: the checks below (abstract base classes, archives) are what this cost
    if kind is float:
        return int(value) if value.is_integer() else value  # the engine's numbers are floats; the plan has ints
    if isinstance(value, Mapping):
        return {key: _known_item(value, key) for key in list(value.keys())}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        return [_known_item(value, i) for i in range(len(value))]
    archive = recorded_archive(value, _known)  # a package's path, as the offline plan records it
    if archive is not None:
        return archive
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine's numbers are floats; the offline plan records ints
    return value


def _known_item(container: Any, key: Any) -> Any:
    try:
        return _known(container[key])
    except Exception as err:  # pulumi_policy.proxy.UnknownValueError: the SDK is in the pack's venv only
        if type(err).__name__ != "UnknownValueError":
            raise
        return UNKNOWN
