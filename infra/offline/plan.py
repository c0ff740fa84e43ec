"""The offline plan (`make plan STACK=<name>`): the real program under Pulumi's mock runtime.

The stack file is parsed and fed as config, the program runs to completion,
and then: a summary is printed, `build/<stack>/plan.json` is written (one entry per resource, inputs resolved,
secrets as "[secret]"), and every plan-time validation rule runs. Exit codes: 0 clean, 1 violations,
2 invalid stack config (one line per problem, no traceback).

Secrets: the stack files hold none (the CLI would fail on a placeholder). A missing secret is an invalid config
with the `pulumi config set --secret` command to run, unless `--offline-secrets` is given: then stand-ins (marked
secret) fill the secrets the config needs, and the summary lists which values were stood in.

plan.json is byte-identical for the same config (reviewed as a diff, compared by `make plan-diff`): resources
sorted by URN, keys sorted, paths relative to the project root, no timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from infra.artifacts.packaging import LambdaPackage, read_package
from infra.config import PROJECT, ConfigError, StackConfig, load_stack_config
from infra.core.paths import BUILD_DIR, ROOT
from infra.offline.mocks import RecordingMocks, RecordingMonitor, Registration, as_plain
from infra.offline.stackfile import StackFile, StackFileError, read_stack_file, with_offline_secrets
from infra.plan.model import Plan, PlannedResource, Violation
from infra.program import build
from infra.validation import resource_region, validate

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws(\..*)?")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_kubernetes(\..*)?")


@dataclass
class PlanResult:
    stack: str
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    config_problems: list[str] = field(default_factory=list)
    plan: Plan | None = None
    plan_path: Path | None = None
    seconds: float = 0.0
    stood_in: list[str] = field(default_factory=list)  # secret keys given offline stand-ins
    # Resource options by URN (protect, retainOnDelete, ...), for the diff and the retained-resource list.
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def packages(self) -> list[LambdaPackage]:
        """Every Lambda package the plan references (a function's `code` or an uploaded object's `source`)."""
        found: dict[str, LambdaPackage] = {}
        for res in self.resources:
            for key in ("code", "source"):
                archive = res.inputs.get(key)
                pkg = read_package(archive.get("path")) if isinstance(archive, dict) else None
                if pkg is not None:
                    found[str(pkg.path)] = pkg
        return sorted(found.values(), key=lambda p: p.path.name)

    @property
    def exit_code(self) -> int:
        if self.config_problems:
            return 2
        return 1 if self.violations else 0


def _parent_name(parent_urn: str, stack_urn_suffix: str) -> str | None:
    if not parent_urn or parent_urn.endswith(stack_urn_suffix):
        return None
    return parent_urn.rsplit("::", 1)[-1]


def _redact_outputs(value: Any, secret: bool, placeholders: list[str]) -> Any:
    if secret:
        return "[secret]"
    plain = as_plain(value)
    text = json.dumps(plain)
    if any(p in text for p in placeholders):
        return "[secret]"
    return plain


def _aws_settings(stack_file: StackFile) -> dict[str, Any]:
    try:
        raw = json.loads(stack_file.values.get(f"{PROJECT}:aws", "{}"))
    except json.JSONDecodeError:
        return {}
    return raw if isinstance(raw, dict) else {}


def configure_mock_runtime(stack_file: StackFile, *, preview: bool = False) -> RecordingMonitor:
    """Fresh config and mocks for one run of the program (also used by the test harness and, with
    `preview=True`, by infra/offline/preview.py: a first preview, no computed outputs)."""
    aws_settings = _aws_settings(stack_file)
    home_region = str(aws_settings.get("region") or "us-east-1")
    accounts = aws_settings.get("allowedAccountIds") or []
    for var in [v for v in os.environ if v.startswith("PULUMI_CONFIG")]:
        del os.environ[var]  # they leak through set_all_config (pulumi.runtime.config reads them)
    pulumi.runtime.set_all_config(dict(stack_file.values), list(stack_file.secret_keys))
    mocks = RecordingMocks(home_region=home_region,
                           account_id=str(accounts[0]) if isinstance(accounts, list) and accounts else None,
                           preview=preview)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack_file.stack, preview=preview, monitor=monitor)
    return monitor


def collect(monitor: RecordingMonitor, stack: str) -> list[PlannedResource]:
    """Turn recorded registrations into planned resources (parent names, regions, plain inputs)."""
    stack_suffix = f"pulumi:pulumi:Stack::{PROJECT}-{stack}"
    providers = {r.urn: r for r in monitor.recorded if r.type.startswith("pulumi:providers:")}
    out = []
    for reg in monitor.recorded:
        out.append(PlannedResource(
            urn=reg.urn, type=reg.type, name=reg.name,
            parent=_parent_name(reg.parent_urn, stack_suffix),
            region=_region(reg, providers),
            inputs=as_plain(reg.inputs), custom=reg.custom,
            provider=_provider_name(reg.provider_ref),
            outputs=as_plain(reg.outputs),
        ))
    return out


def _provider_name(ref: str | None) -> str | None:
    if not ref:
        return None
    urn = ref.rsplit("::", 1)[0]
    return urn.rsplit("::", 1)[-1]


def _region(reg: Registration, providers: dict[str, Registration]) -> str | None:
    prov = providers.get(reg.provider_ref.rsplit("::", 1)[0]) if reg.provider_ref else None
    return resource_region(reg.type, reg.inputs, prov.inputs if prov is not None else None)


def prepare_stack_file(stack: str, config_path: Path | None, stack_file: StackFile | None, *,
                       offline_secrets: bool) -> tuple[StackFile | None, list[str], list[str]]:
    """The stack file a run uses: (file or None, stood-in secret keys, problems). Stand-ins only when asked for;
    encrypted values cannot be decrypted offline, so without the switch they are a problem, as the CLI's would be."""
    if stack_file is None:
        try:
            stack_file = read_stack_file(stack, config_path)
        except StackFileError as err:
            return None, [], [str(err)]
    if offline_secrets:
        stack_file, stood_in = with_offline_secrets(stack_file)
        return stack_file, stood_in, []
    if stack_file.encrypted:
        return None, [], [f"{key}: encrypted (`secure:`) values cannot be decrypted offline; rerun with "
                          f"--offline-secrets to plan with a stand-in" for key in stack_file.encrypted]
    return stack_file, [], []


@dataclass
class ProgramRun:
    """One run of the program under the mock runtime: the parsed config, what was registered, the outputs."""

    config: StackConfig
    monitor: RecordingMonitor
    outputs: dict[str, Any] = field(default_factory=dict)


def run_program(stack_file: StackFile, *, preview: bool = False) -> ProgramRun:
    """Run `build()` once on a fresh event loop and mock runtime; raises ConfigError for an invalid config.

    With `preview`, computed outputs stay unknown (a first `pulumi preview`) and the outputs are not resolved."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = configure_mock_runtime(stack_file, preview=preview)
    holder: dict[str, Any] = {}

    def program() -> Any:
        cfg = load_stack_config()
        holder["config"] = cfg
        outputs = build(cfg)
        return None if preview else _resolve(outputs, stack_file.placeholders, holder)

    try:
        pulumi.runtime.test(program)()
    finally:
        pulumi.runtime.reset_options()
        loop.close()
        asyncio.set_event_loop(None)
    return ProgramRun(config=holder["config"], monitor=monitor, outputs=holder.get("outputs", {}))


def run_plan(stack: str = "staging", *, config_path: Path | None = None, quiet: bool = False,
             write: bool = True, stack_file: StackFile | None = None,
             offline_secrets: bool = False) -> PlanResult:
    """Run the program for `stack` offline, validate it, and (optionally) write plan.json.

    `stack_file` replaces the file on disk (tests pass edited copies). `offline_secrets` stands in for the secrets
    the config needs and the file cannot give offline (never implicit: the CLI has no such fallback)."""
    started = time.perf_counter()
    result = PlanResult(stack=stack)
    stack_file, result.stood_in, result.config_problems = prepare_stack_file(
        stack, config_path, stack_file, offline_secrets=offline_secrets)
    if stack_file is None:
        return result
    try:
        run = run_program(stack_file)
    except ConfigError as err:
        result.config_problems = [str(p) for p in err.problems]
        return result
    monitor = run.monitor
    result.resources = collect(monitor, stack)
    result.options = {reg.urn: reg.options for reg in monitor.recorded if reg.options}
    result.outputs = run.outputs
    result.plan = Plan(resources=result.resources, config=run.config, outputs=result.outputs)
    result.violations = validate(result.plan)
    result.violations += _leaked_secrets(result, stack_file)
    if write:
        result.plan_path = write_plan(result)
    result.seconds = time.perf_counter() - started
    if not quiet:
        print(summary(result))
    return result


def _resolve(outputs: dict[str, Any], placeholders: list[str], holder: dict[str, Any]) -> Any:
    async def resolve_all() -> None:
        resolved: dict[str, Any] = {}
        for key, value in outputs.items():
            out = pulumi.Output.from_input(value)
            val = await out.future()
            resolved[key] = _redact_outputs(val, await out.is_secret(), placeholders)
        holder["outputs"] = resolved

    return asyncio.ensure_future(resolve_all())


def _leaked_secrets(result: PlanResult, stack_file: StackFile) -> list[Violation]:
    out = []
    for res in result.resources:
        text = json.dumps(res.inputs)
        for placeholder in stack_file.placeholders:
            if placeholder in text:
                out.append(Violation("secret_in_plain_text", res.label,
                                     "a secret config value reaches this resource as plain text "
                                     "(wrap it in pulumi.Output.secret or pass the secret Output)"))
    return out


ROOT_PREFIX = str(ROOT) + "/"


def _portable(value: Any) -> Any:
    """Paths under the project root as relative paths, so two checkouts write the same plan."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    if isinstance(value, str) and value.startswith(ROOT_PREFIX):
        return value[len(ROOT_PREFIX):]
    return value



def plan_entries(result: PlanResult) -> list[dict[str, Any]]:
    """One entry per resource, sorted by URN (registration order varies between runs)."""
    entries = []
    for r in sorted(result.resources, key=lambda res: res.urn):
        entry: dict[str, Any] = {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent}
        if r.region is not None:
            entry["region"] = r.region
        entry["custom"] = r.custom
        if r.provider:
            entry["provider"] = r.provider
        if result.options.get(r.urn):
            entry["options"] = result.options[r.urn]
        entry["inputs"] = _portable(r.inputs)
        entries.append(entry)
    return entries


def plan_document(result: PlanResult) -> dict[str, Any]:
    return {
        "stack": result.stack,
        "project": PROJECT,
        "resources": plan_entries(result),
        "outputs": _portable(result.outputs),
        "violations": sorted(str(v) for v in result.violations),
    }


def plan_text(doc: dict[str, Any]) -> str:
    """The exact bytes of plan.json (sorted keys, two-space indent, final newline)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_plan(result: PlanResult) -> Path:
    path = BUILD_DIR / result.stack / "plan.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan_text(plan_document(result)))
    return path


def summary(result: PlanResult) -> str:
    custom = [r for r in result.resources if r.custom and not r.type.startswith("pulumi:providers:")]
    components = [r for r in result.resources if not r.custom]
    lines = [f"Offline plan of stack '{result.stack}' ({PROJECT}), mock runtime, {result.seconds:.2f} s", ""]
    if result.stood_in:
        lines += [f"Stand-in secrets (--offline-secrets; set the real ones with `pulumi config set --secret KEY "
                  f"-s {result.stack}`): " + ", ".join(result.stood_in), ""]

    def top_component(r: PlannedResource) -> str:
        # Walk up to the day's component (a direct child of the stack).
        by_name = {c.name: c for c in components}
        node = r
        while node.parent is not None and node.parent in by_name:
            node = by_name[node.parent]
        return f"{node.type} {node.name}" if not node.custom else "(stack)"

    per_component = Counter(top_component(r) for r in custom)
    lines.append("Resources per component:")
    for comp, n in sorted(per_component.items()):
        lines.append(f"  {n:5d}  {comp}")
    lines.append("")
    lines.append("Resources per type:")
    for token, n in sorted(Counter(r.type for r in custom).items()):
        regions = sorted({r.region for r in custom if r.type == token and r.region})
        where = f"  [{', '.join(regions)}]" if regions else ""
        lines.append(f"  {n:5d}  {token}{where}")
    lines.append("")
    lines.append("Stack outputs:")
    for key, value in result.outputs.items():
        text = json.dumps(value)
        lines.append(f"  {key}: {text if len(text) <= 160 else text[:157] + '...'}")
    lines.append("")
    lines.append(f"Total: {len(custom)} resources in {len(components)} components "
                 f"(+{len(result.resources) - len(custom) - len(components)} providers)")
    if result.plan_path:
        lines.append(f"Plan written to {result.plan_path.relative_to(BUILD_DIR.parent)}")
    if result.violations:
        lines.append("")
        lines.append(f"{len(result.violations)} plan-time violation(s):")
        lines += [f"  {v}" for v in result.violations]
    else:
        lines.append("Plan-time validation: all rules pass.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Offline plan of a stack under Pulumi's mock runtime.")
    parser.add_argument("--stack", default="staging", help="stack name (Pulumi.<stack>.yaml), default staging")
    parser.add_argument("--config", type=Path, help="use this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--debug", action="store_true", help="show a traceback when the program itself fails")
    parser.add_argument("--offline-secrets", action="store_true",
                        help="stand in for the secrets the config needs (missing or encrypted); lists them")
    args = parser.parse_args(argv)
    try:
        result = run_plan(args.stack, config_path=args.config, offline_secrets=args.offline_secrets)
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"plan failed: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
                  file=sys.stderr)
        return 3
    if result.config_problems:
        print(f"Invalid stack config for '{args.stack}' ({len(result.config_problems)} problem(s)):",
              file=sys.stderr)
        for line in result.config_problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
