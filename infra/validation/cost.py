"""Rules of the cost watch: the budget counts this stack only and reaches a topic that accepts it, and the monthly
estimate (infra/plan/cost.py) stays under its ceiling."""

from __future__ import annotations

import json
from collections.abc import Iterator

from infra.plan.cost import PLAN_TARGET_USD, estimate
from infra.plan.model import PlannedResource
from infra.validation import Plan, Violation, rule


def _provider_component(provider: PlannedResource) -> str | None:
    raw = provider.inputs.get("defaultTags")
    tags = (json.loads(raw) if isinstance(raw, str) else raw or {}).get("tags", {})
    component = tags.get("component")
    return component if isinstance(component, str) else None


def _topic_policy_allows(plan: Plan, topic_arn: str, service: str) -> bool:
    for p in plan.of_type("aws:sns/topicPolicy:TopicPolicy"):
        if p.inputs.get("arn") == topic_arn and service in str(p.inputs.get("policy")):
            return True
    return False


@rule
def budget_scope(plan: Plan) -> Iterator[Violation]:
    """The budget counts this stack only (its environment and component tags), alerts on actual and forecast
    spend, and its target topic accepts Budgets; anomaly alerts reach a topic that accepts them."""
    name = "budget_scope"
    cfg = plan.config
    components = sorted(filter(None, (_provider_component(p) for p in plan.of_type("pulumi:providers:aws"))))
    budgets = plan.of_type("aws:budgets/budget:Budget")
    if cfg.cost_watch.enabled and not budgets:
        yield Violation(name, "stack", "costWatch.enabled but no aws:budgets Budget is planned")
    for b in budgets:
        tags: dict[str, list[str]] = {}
        for part in b.get("filterExpression.ands") or []:
            t = part.get("tags") or {}
            tags[str(t.get("key"))] = list(t.get("values") or [])
        for f in b.inputs.get("costFilters") or []:
            for v in f.get("values") or []:
                key, _, value = str(v).removeprefix("user:").partition("$")
                tags.setdefault(key, []).append(value)
        if tags.get("environment") != [cfg.environment]:
            yield Violation(name, b.label, f"not scoped to environment={cfg.environment} "
                                           f"(tags filter {tags.get('environment')})")
        missing = [c for c in components if c and c not in tags.get("component", [])]
        if "component" not in tags or missing:
            yield Violation(name, b.label, f"component tag filter misses {missing or 'the stack components'}")
        kinds = {n.get("notificationType") for n in b.inputs.get("notifications") or []}
        if not {"ACTUAL", "FORECASTED"} <= kinds:
            yield Violation(name, b.label, f"needs ACTUAL and FORECASTED notifications (has {sorted(kinds)})")
        for n in b.inputs.get("notifications") or []:
            for arn in n.get("subscriberSnsTopicArns") or []:
                if not _topic_policy_allows(plan, arn, "budgets.amazonaws.com"):
                    yield Violation(name, b.label, f"topic {arn} does not let budgets.amazonaws.com publish")
    for s in plan.of_type("aws:costexplorer/anomalySubscription:AnomalySubscription"):
        for sub in s.inputs.get("subscribers") or []:
            if sub.get("type") == "SNS":
                if s.inputs.get("frequency") != "IMMEDIATE":
                    yield Violation(name, s.label, "SNS subscribers need frequency IMMEDIATE")
                if not _topic_policy_allows(plan, str(sub.get("address")), "costalerts.amazonaws.com"):
                    yield Violation(name, s.label, f"topic {sub.get('address')} does not let "
                                                   "costalerts.amazonaws.com publish")


@rule
def cost_within_ceiling(plan: Plan) -> Iterator[Violation]:
    """The monthly estimate (infra/plan/cost.py) stays below costWatch.ceilingUsd."""
    ceiling = plan.config.cost_watch.ceiling_usd
    total = estimate(plan).total
    if total > ceiling:
        yield Violation("cost_within_ceiling", "stack",
                        f"estimated ${total:,.2f}/month exceeds costWatch.ceilingUsd ${ceiling:,.2f} "
                        f"(the plan's target is +${PLAN_TARGET_USD:.0f}); `make cost` shows the lines")
