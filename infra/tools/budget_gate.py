"""The error budget policy gate of a prod deploy (Google SRE Workbook, "Example Error Budget Policy").

    python -m infra.tools.budget_gate --stack prod --prometheus-url URL [--sigv4-region REGION]
                                      [--override-reason TEXT]

Reads every SLO's budget remaining from the recording rule the generator ships (one instant query per SLO of
rules/slos.yaml) and compares what is spent with `sloAlerting.deployGate.maxBudgetSpent` of Pulumi.<stack>.yaml.

Exit 0: go (each SLO's spent share and the allowed share printed). Exit 1: held (names the SLOs over their share).
Exit 2: the budgets could not be read (unreachable URL, an SLO without a series, authentication) or the stack
config / SLO definitions are invalid: the deploy is held as well. `--override-reason` turns a hold (1) or an
unreadable budget (2) into a go (0) and records the override: printed, and appended to $GITHUB_STEP_SUMMARY with
GITHUB_ACTOR and GITHUB_RUN_ID; an empty reason is refused. The last line printed is the outcome as JSON.
docs/error-budget-gate.md has the details.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import ConfigError, parse_stack_config
from infra.offline.stackfile import StackFileError, read_stack_file, with_offline_secrets
from infra.slo.budget_policy import Decision, decide
from infra.slo.spec import SLO_FILE, SloSpecError, load_slos
from infra.tools.budget_source import BudgetReadError, aws_signer, read_budgets

GO, HELD, UNREADABLE = 0, 1, 2


def configured_max_spent(stack: str, path: Path | None = None) -> float:
    """`sloAlerting.deployGate.maxBudgetSpent` of the stack file, checked by the project's config parser."""
    # The gate reads no secret: stand-ins let a stack file whose secrets live in Pulumi Cloud parse.
    stack_file, _ = with_offline_secrets(read_stack_file(stack, path))
    cfg = parse_stack_config(stack_file.values, set(stack_file.secret_keys), stack=stack)
    return cfg.slo_alerting.deploy_gate.max_budget_spent


@dataclass
class Outcome:
    stack: str
    code: int
    max_spent: float | None = None
    decision: Decision | None = None
    error: str | None = None
    override: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        verdict = {GO: "go", HELD: "held", UNREADABLE: "unreadable"}[self.code]
        over = {r.key for r in self.decision.over} if self.decision else set()
        return json.dumps({
            "gate": "error-budget", "stack": self.stack, "verdict": verdict,
            "exit": 0 if self.override else self.code, "max_budget_spent": self.max_spent,
            "slos": [{"service": r.slo.service, "slo": r.slo.name, "window": r.slo.window,
                      "spent": r.spent, "over": r.key in over}
                     for r in (self.decision.readings if self.decision else ())],
            "error": self.error, "override": self.override,
        }, sort_keys=True)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _evaluate(args: argparse.Namespace) -> Outcome:
    out = Outcome(stack=args.stack, code=UNREADABLE)
    try:
        out.max_spent = configured_max_spent(args.stack, args.stack_file)
        slos = load_slos(args.slo_file)
    except (StackFileError, ConfigError) as err:
        out.error = f"config: invalid stack config for '{args.stack}':\n{err}"
        return out
    except SloSpecError as err:
        out.error = f"config: {err}"
        return out
    try:
        signer = aws_signer(args.sigv4_region) if args.sigv4_region else None
        readings = read_budgets(args.prometheus_url, slos, signer)
    except BudgetReadError as err:
        out.error = str(err)
        return out
    out.decision = decide(readings, out.max_spent)
    out.code = HELD if out.decision.held else GO
    for r in out.decision.readings:
        mark = "OVER" if r in out.decision.over else "ok"
        out.lines.append(f"  {r.key}: {_pct(r.spent)} of the {r.slo.window} error budget spent "
                         f"(objective {r.slo.objective:.10g}; allowed {_pct(out.max_spent)}) {mark}")
    return out


def _override(out: Outcome, reason: str) -> dict[str, Any]:
    over = out.decision.over if out.decision else ()
    return {
        "reason": reason,
        "held_by": [{"slo": r.key, "spent": r.spent} for r in over] if over else None,
        "unreadable": out.error,
        "actor": os.environ.get("GITHUB_ACTOR"),
        "run_id": os.environ.get("GITHUB_RUN_ID"),
    }


def _summary(out: Outcome) -> str:
    """Markdown for $GITHUB_STEP_SUMMARY: the budgets, and the override when one was used."""
    lines = ["", f"### Error budget gate ({out.stack}): "
             + ("overridden" if out.override else {GO: "go", HELD: "held", UNREADABLE: "budgets unreadable"}
                [out.code]), ""]
    if out.decision:
        lines += ["| SLO | window | spent | allowed |", "|---|---|---|---|"]
        lines += [f"| {r.key} | {r.slo.window} | {_pct(r.spent)} | {_pct(out.decision.max_spent)} |"
                  for r in out.decision.readings]
    if out.error:
        lines += ["", f"Budgets could not be read: `{out.error}`"]
    if out.override:
        o = out.override
        held = ", ".join(f"{h['slo']} ({_pct(h['spent'])} spent)" for h in o["held_by"] or [])
        lines += ["", "**Override recorded**", "",
                  f"- reason: {o['reason']}",
                  f"- held by: {held or 'budgets unreadable'}",
                  f"- actor: {o['actor'] or '(GITHUB_ACTOR not set)'}",
                  f"- run: {o['run_id'] or '(GITHUB_RUN_ID not set)'}"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Hold a deploy while an SLO has spent more of its error budget than the stack allows.")
    parser.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--prometheus-url", required=True,
                        help="Prometheus API base URL (an Amazon Managed Prometheus workspace URL in CI)")
    parser.add_argument("--sigv4-region", help="sign the queries with SigV4 (service aps) for this region, with "
                        "the default AWS credential chain; without it: plain HTTP(S)")
    parser.add_argument("--override-reason", help="deploy although held, recording this reason (and "
                        "GITHUB_ACTOR, GITHUB_RUN_ID) in the output and $GITHUB_STEP_SUMMARY")
    parser.add_argument("--stack-file", type=Path, help="stack file to read instead of Pulumi.<stack>.yaml")
    parser.add_argument("--slo-file", type=Path, default=SLO_FILE,
                        help="SLO definitions (default rules/slos.yaml)")
    args = parser.parse_args(argv)
    reason = None
    if args.override_reason is not None:
        reason = " ".join(args.override_reason.split())
        if not reason:
            print("budget gate: --override-reason is empty; an override needs a reason that says why the deploy "
                  "must go ahead while the error budget policy holds it (e.g. the fix for the burning SLO)",
                  file=sys.stderr)
            return UNREADABLE

    out = _evaluate(args)
    config_problem = out.error is not None and out.error.startswith("config: ")
    if out.code == GO:
        print(f"budget gate: go for {args.stack}: no SLO has spent more than {_pct(out.max_spent or 1)} "
              f"of its error budget")
    elif out.code == HELD:
        assert out.decision is not None
        names = ", ".join(r.key for r in out.decision.over)
        print(f"budget gate: HELD for {args.stack}: {names} spent more than {_pct(out.decision.max_spent)} of "
              f"the error budget (sloAlerting.deployGate.maxBudgetSpent)", file=sys.stderr)
    else:
        print(f"budget gate: the budgets could not be read; the deploy is held: {out.error}", file=sys.stderr)
    for line in out.lines:
        print(line)

    if reason is not None and out.code != GO and not config_problem:
        out.override = _override(out, reason)
        print(f"budget gate: OVERRIDE recorded: {json.dumps(out.override, sort_keys=True)}")
    elif reason is not None and out.code != GO:
        print("budget gate: an override does not cover an invalid stack config or SLO definition",
              file=sys.stderr)
    elif reason is not None:
        print("budget gate: override not needed (nothing held); not recorded")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(_summary(out))
    print(out.as_json())
    return GO if out.override else out.code


if __name__ == "__main__":
    sys.exit(main())
