"""The plan-time rules as a Pulumi policy pack: `pulumi preview --policy-pack policy/`.

One StackValidationPolicy per rule of `infra.validation.RULES` (the registry `make plan` runs); the rules in
PLAN_ONLY_RULES (docs/policy-pack.md) answer "not applicable" with their reason: the pack runs in its own venv
(policy/requirements.txt), which holds the plan's SDKs but not the edge model's runtime. The engine's
resources become `PlannedResource`s (infra.validation.engine_plan), the stack's config is read from
`Pulumi.<stack>.yaml` (the stack named in the URNs: the pack runs from this checkout with `--policy-pack policy/`),
and each rule reports its violations on the resource's URN.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The CLI runs the pack from policy/; the project root must be importable for `infra.*`.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    Policy,
    PolicyPack,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.config import PROJECT, SECRET_KEYS, ConfigError, StackConfig  # noqa: E402
from infra.config.parser import parse_stack_config  # noqa: E402
from infra.offline.stackfile import StackFileError, read_stack_file, stack_file_path, with_overrides  # noqa: E402
from infra.validation import PLAN_ONLY, Plan, engine_plan, load_rules, rule_description, stack_of_urn  # noqa: E402

PACK_NAME = "akidb-observability-rules"
# The registered rules this pack does not run, each with the reason (what it needs beyond the pack's venv): they
# run in `make plan` only. Marked where the rule is defined (`@plan_only` in infra/validation), which keeps its heavy
# imports inside the rule: loading the registry here imports none of them.
load_rules()
PLAN_ONLY_RULES: dict[str, str] = dict(sorted(PLAN_ONLY.items()))
PACK_DESCRIPTION = ("AkiDB observability plan-time rules (infra/validation, as `make plan` runs them); run in "
                    "`make plan` only: " + "; ".join(f"{name} ({why})" for name, why in PLAN_ONLY_RULES.items()))


# The SDK runs every policy of an AnalyzeStack in turn on the same resources, so each one read and parsed the same
# stack config: 58 parses were a quarter of the pack's CPU per AnalyzeStack. Parsed once per content of the stack
# file; the definitions the parse also reads (rules/, the coverage map) are the checkout's, which does not change
# during the one CLI command a pack process serves.
_CONFIGS: dict[tuple[str, bytes], StackConfig] = {}


def config_of(stack: str) -> StackConfig:
    """The stack's config as the rules read it (raises ValueError on an unreadable stack config)."""
    try:
        key: tuple[str, bytes] | None = (stack, stack_file_path(stack).read_bytes())
    except OSError:
        key = None  # read_stack_file names the problem
    if key is not None and key in _CONFIGS:
        return _CONFIGS[key]
    try:
        stack_file = read_stack_file(stack)
        # The rules read no secret, and the engine has already run the program (which reports a missing secret
        # itself): a secret absent from the file is marked present so the settings the rules need can be read.
        absent = {k: "[secret]" for k in SECRET_KEYS if f"{PROJECT}:{k}" not in stack_file.secret_keys}
        stack_file = with_overrides(stack_file, {}, absent)
        config = parse_stack_config(stack_file.values, set(stack_file.secret_keys))
    except StackFileError as err:
        raise ValueError(str(err)) from None
    except ConfigError as err:
        raise ValueError("; ".join(str(p) for p in err.problems)) from None
    if key is not None:
        _CONFIGS[key] = config
    return config


def plan_of(resources: list[Any]) -> Plan:
    """The engine's resources as the Plan the rules read (raises ValueError on an unreadable stack config)."""
    stacks = {stack_of_urn(r.urn) for r in resources}
    if len(stacks) != 1:
        raise ValueError(f"expected the resources of one stack, got stacks {sorted(stacks)}")
    return engine_plan(resources, config_of(stacks.pop()))


def validation_for(rule_name: str) -> Callable[[StackValidationArgs, ReportViolation], None]:
    """The stack validation that runs one registered rule over the engine's resources."""
    check = load_rules()[rule_name]
    plan_only = PLAN_ONLY_RULES.get(rule_name)

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        if plan_only is not None:
            # Shown by the engine as not applicable, with the reason, rather than silently absent.
            args.not_applicable(f"runs in `make plan` only: {plan_only}")
        resources = list(args.resources)
        if not resources:
            return
        try:
            plan = plan_of(resources)
        except ValueError as err:
            report_violation(f"cannot read the stack config the rules need: {err}", None)
            return
        urn_of = {r.label: r.urn for r in plan.resources}
        for violation in check(plan):
            report_violation(violation.message if violation.resource in urn_of
                             else f"{violation.resource}: {violation.message}",
                             urn_of.get(violation.resource))

    return validate


def policies() -> list[Policy]:
    return [StackValidationPolicy(name=name, description=rule_description(name),
                                  validate=validation_for(name), enforcement_level=EnforcementLevel.MANDATORY)
            for name in sorted(load_rules())]


if __name__ == "__main__":
    # Starts the analyzer's gRPC server and serves the engine until it is stopped.
    PolicyPack(name=PACK_NAME, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY,
               description=PACK_DESCRIPTION)
